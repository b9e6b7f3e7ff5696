"""From the packages' ``.reg``/``.rga`` contents to one key set per hive file, as the image step needs.

The order the image builder uses::

    keys = merge_keys([(pkg.name, pkg.registry) for pkg in packages])      # .reg: conflicts are errors
    keys = append_multi_sz(keys, [(pkg.name, pkg.appends) for pkg in packages])  # .rga
    for hive, hive_keys in split_by_hive(keys).items():
        with atomic_output(root / hive) as out:
            write_hive(out, hive_keys, root_name="ROOT", timestamp=build_epoch(), file_name=hive)

Key paths compare case-insensitively (as Windows does); the first spelling seen is kept. The roots may be
written in full (``HKEY_LOCAL_MACHINE``) or abbreviated (``HKLM``, ``HKU``, ``HKCU``, ``HKCR``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from ...errors import InputError, InputErrors
from ..regfile import RegKey, RegType, RegValue
from .records import upcase

ROOT_ALIASES = {
    "HKLM": "HKEY_LOCAL_MACHINE", "HKU": "HKEY_USERS", "HKCU": "HKEY_CURRENT_USER",
    "HKCR": "HKEY_CLASSES_ROOT",
}
# (root, first key below it or None) -> (hive file, path prefix inside the hive)
HIVES: dict[tuple[str, str | None], tuple[str, str]] = {
    ("HKEY_LOCAL_MACHINE", "SYSTEM"): ("SYSTEM", ""),
    ("HKEY_LOCAL_MACHINE", "SOFTWARE"): ("SOFTWARE", ""),
    ("HKEY_LOCAL_MACHINE", "DRIVERS"): ("DRIVERS", ""),
    ("HKEY_LOCAL_MACHINE", "SAM"): ("SAM", ""),
    ("HKEY_LOCAL_MACHINE", "SECURITY"): ("SECURITY", ""),
    # BCD is not a hive of the running registry: it is the boot configuration store on the EFI system
    # partition (\EFI\Microsoft\Boot\BCD), a file in hive format that Windows mounts at
    # HKLM\BCD00000000. Packages address it as $(hklm.bcd) = HKEY_LOCAL_MACHINE\BCD.
    ("HKEY_LOCAL_MACHINE", "BCD"): ("BCD", ""),
    ("HKEY_USERS", ".DEFAULT"): ("DEFAULT", ""),
    # HKEY_CURRENT_USER is whoever logs on: its hive is the profile's NTUSER.DAT. An image holds the
    # default profile's (Users\Default\NTUSER.DAT), which new profiles are copied from.
    ("HKEY_CURRENT_USER", None): ("NTUSER.DAT", ""),
    # $(hkcr.root) = $(hklm.software)\Classes
    ("HKEY_CLASSES_ROOT", None): ("SOFTWARE", "Classes"),
}
KNOWN_ROOTS = ", ".join(sorted({r if s is None else f"{r}\\{s}" for r, s in HIVES}))


def canonical_path(path: str) -> str:
    """``path`` without outer backslashes and with an abbreviated root (``HKLM``) spelled out."""
    parts = path.strip("\\").split("\\")
    parts[0] = ROOT_ALIASES.get(parts[0].upper(), parts[0])
    return "\\".join(parts)


def split_by_hive(keys: Sequence[RegKey]) -> dict[str, list[RegKey]]:
    """Group full-path keys by hive file, with paths made relative to the hive's root.

    ``HKEY_LOCAL_MACHINE\\SYSTEM\\X`` -> ``"SYSTEM": X``; likewise ``\\Software`` -> SOFTWARE, ``\\Drivers``
    -> DRIVERS, ``\\SAM`` -> SAM, ``\\Security`` -> SECURITY, ``\\BCD`` -> BCD (the boot store, see
    :data:`HIVES`), ``HKEY_USERS\\.Default`` -> DEFAULT, ``HKEY_CURRENT_USER`` -> NTUSER.DAT (the default
    profile's), ``HKEY_CLASSES_ROOT\\X`` -> ``"SOFTWARE": Classes\\X``. Case-insensitive. Hives appear in the
    order first used; anything else (``HKLM\\HARDWARE``, which Windows builds at boot) is an InputError.
    """
    out: dict[str, list[RegKey]] = {}
    issues: list[InputError] = []
    for key in keys:
        parts = canonical_path(key.path).split("\\")
        root = parts[0].upper()
        target = HIVES.get((root, None))
        rest = parts[1:]
        if target is None and rest:
            target = HIVES.get((root, rest[0].upper()))
            rest = rest[1:]
        if target is None:
            issues.append(InputError(f"registry key {key.path!r} is not in a hive an image holds",
                                     hint=f"use one of {KNOWN_ROOTS}"))
            continue
        hive, prefix = target
        inner = "\\".join(([prefix] if prefix else []) + rest)
        out.setdefault(hive, []).append(RegKey(inner, key.values))
    if issues:
        raise issues[0] if len(issues) == 1 else InputErrors(issues)
    return out


def describe(value: RegValue, limit: int = 60) -> str:
    """``REG_DWORD 0x00000001`` / ``REG_SZ 'text'``: a value's type and data for messages."""
    t = int(value.type)
    tname = RegType(t).name if t in RegType._value2member_map_ else f"type {t}"
    d = value.data
    if isinstance(d, int) and not isinstance(d, bool):
        shown = f"0x{d:x}"
    elif isinstance(d, bytes | bytearray):
        shown = d.hex()
    else:
        shown = repr(d)
    return f"{tname} {shown[:limit]}{'…' if len(shown) > limit else ''}"


def _same(a: RegValue, b: RegValue) -> bool:
    return int(a.type) == int(b.type) and a.raw() == b.raw()


@dataclass(slots=True)
class _Merged:
    path: str
    values: dict[str, tuple[RegValue, str]] = field(default_factory=dict)  # upcase(name) -> (value, package)


def _label(value: RegValue) -> str:
    return "@" if not value.name else repr(value.name)


def merge_keys(named: Sequence[tuple[str, Sequence[RegKey]]]) -> list[RegKey]:
    """Combine the ``.reg`` keys of several packages, given as ``(package name, keys)`` in package order.

    Keys and value names match case-insensitively. A value set by two packages (or twice by one) must
    carry the same type and bytes; every disagreement is reported, naming both packages, in one
    InputError. The result lists keys in first-seen order, each with its values in first-seen order.
    """
    merged: dict[str, _Merged] = {}
    issues: list[InputError] = []
    for package, keys in named:
        for key in keys:
            path = canonical_path(key.path)
            entry = merged.setdefault(upcase(path), _Merged(path))
            for v in key.values:
                ident = upcase(v.name or "")
                old = entry.values.get(ident)
                if old is None:
                    entry.values[ident] = (v, package)
                elif not _same(old[0], v):
                    first, by = old
                    who = (f"package {by} sets it twice" if by == package
                           else f"packages {by} and {package} disagree")
                    where = package if by != package else "one place"
                    issues.append(InputError(
                        f"registry conflict at [{entry.path}] value {_label(first)}: {who}: "
                        f"{describe(first)} ({by}) vs {describe(v)} ({package})",
                        hint=f"remove the value from {where} or make them agree"))
    if issues:
        raise issues[0] if len(issues) == 1 else InputErrors(issues)
    return [RegKey(m.path, tuple(v for v, _ in m.values.values())) for m in merged.values()]


def append_multi_sz(keys: Sequence[RegKey], appends: Sequence[tuple[str, Sequence[RegKey]]]) -> list[RegKey]:
    """Apply ``.rga`` content: append strings to REG_MULTI_SZ values, creating the value (and key) if absent.

    ``appends`` is ``(package name, keys)`` in package order; every value in them must be REG_MULTI_SZ.
    Strings already present in the value (compared case-insensitively, as Windows compares the names
    such lists hold: services, filters, groups) are not added again, so applying the same ``.rga`` twice
    changes nothing. A target value of another type is an InputError naming the package.
    """
    merged: dict[str, tuple[str, dict[str, RegValue]]] = {}
    for key in keys:
        path = canonical_path(key.path)
        _, values = merged.setdefault(upcase(path), (path, {}))
        for v in key.values:
            values.setdefault(upcase(v.name or ""), v)
    issues: list[InputError] = []
    for package, akeys in appends:
        for key in akeys:
            path = canonical_path(key.path)
            shown, values = merged.setdefault(upcase(path), (path, {}))
            for v in key.values:
                if int(v.type) != RegType.REG_MULTI_SZ:
                    issues.append(InputError(f"package {package}: .rga value {_label(v)} of [{shown}] is "
                                             f"{describe(v)}; .rga holds REG_MULTI_SZ only"))
                    continue
                ident = upcase(v.name or "")
                old = values.get(ident)
                if old is None:
                    items = tuple(v.data)  # type: ignore[arg-type]
                    values[ident] = RegValue(v.name, RegType.REG_MULTI_SZ, items)
                    continue
                if int(old.type) != RegType.REG_MULTI_SZ:
                    issues.append(InputError(f"package {package}: .rga appends to [{shown}] value "
                                             f"{_label(v)}, which is {describe(old)}, not REG_MULTI_SZ",
                                             hint="make the value REG_MULTI_SZ or drop the .rga entry"))
                    continue
                items = list(old.data)  # type: ignore[arg-type]
                have = {upcase(s) for s in items}
                for s in v.data:  # type: ignore[union-attr]
                    if upcase(s) not in have:
                        items.append(s)
                        have.add(upcase(s))
                values[ident] = RegValue(old.name, RegType.REG_MULTI_SZ, tuple(items))
    if issues:
        raise issues[0] if len(issues) == 1 else InputErrors(issues)
    return [RegKey(path, tuple(values.values())) for path, values in merged.values()]
