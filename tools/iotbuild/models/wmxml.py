"""``.wm.xml`` package definitions (``urn:Microsoft.CompPlat/ManifestSchema.v1.00``).

Reference: iot-adk-addonkit.md §2. Parsing collects every problem of a file and raises them together;
each names the file, the line, what is wrong and how to fix it. Build variables are expanded here, and
device paths and registry keys are resolved to their final form, so later stages never see a macro.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path, PureWindowsPath

from lxml import etree

from ..errors import InputError, InputErrors
from ..formats.regfile import RegType, RegValue
from ..xmlsafe import localname, parse
from . import buildfilter
from .macros import UnknownMacro, expand_variables, registry_root, runtime_path, split_leading_macro

NS = "urn:Microsoft.CompPlat/ManifestSchema.v1.00"
LEGACY_NS = "urn:Microsoft.WindowsPhone/PackageSchema.v8.00"
_NAME_RE = re.compile(r"^[0-9A-Za-z_\-.]+$")


class Partition(StrEnum):
    MAINOS = "MainOS"
    DATA = "Data"
    UPDATEOS = "UpdateOS"
    EFIESP = "EFIESP"
    PLAT = "PLAT"
    CRASHDUMP = "CrashDump"


# Partitions whose packages may carry registry settings (cab-authenticode-registry.md §4.2).
REGISTRY_PARTITIONS = frozenset({Partition.MAINOS, Partition.UPDATEOS, Partition.EFIESP})


class ReleaseType(StrEnum):
    PRODUCTION = "Production"
    TEST = "Test"


class OwnerType(StrEnum):
    OEM = "OEM"
    MICROSOFT = "Microsoft"
    SILICON_VENDOR = "SiliconVendor"
    OTHER = "Other"


def _enum(cls, value: str | None, default, what: str, el, path: Path, issues: list[InputError]):
    if value is None:
        return default
    for m in cls:
        if m.value.lower() == value.strip().lower():
            return m
    issues.append(InputError(f"{what}={value!r} is not allowed", path=path, line=el.sourceline,
                             hint="use one of " + ", ".join(m.value for m in cls)))
    return default


@dataclass(frozen=True)
class FileItem:
    source: Path  # absolute, on the build host
    device_path: str  # \Windows\System32\foo.dll, relative to the partition root
    line: int = field(compare=False)


@dataclass(frozen=True)
class RegKeyItem:
    path: str  # HKEY_LOCAL_MACHINE\Software\Contoso
    values: tuple[RegValue, ...]
    line: int = field(compare=False)
    value_lines: tuple[int, ...] = field(default=(), compare=False)


@dataclass(frozen=True)
class DriverItem:
    inf: Path
    line: int = field(compare=False)


@dataclass(frozen=True)
class FailureAction:
    type: str  # none | restartService | reboot | runCommand
    delay_ms: int


@dataclass(frozen=True)
class ServiceItem:
    name: str
    image_path: str
    display_name: str | None = None
    description: str | None = None
    start: str = "demand"
    type: str = "win32OwnProcess"
    error_control: str = "normal"
    object_name: str | None = None
    depend_on_service: tuple[str, ...] = ()
    required_privileges: tuple[str, ...] = ()
    sid_type: str | None = None
    reset_period: int | None = None
    failure_actions: tuple[FailureAction, ...] = ()
    line: int = field(default=0, compare=False)


SERVICE_TYPES = {"kernelDriver": 0x1, "fileSystemDriver": 0x2, "win32OwnProcess": 0x10, "win32ShareProcess": 0x20,
                 "win32UserOwnProcess": 0x50, "win32UserShareProcess": 0x60}
SERVICE_STARTS = {"boot": 0, "system": 1, "auto": 2, "delayedAuto": 2, "demand": 3, "disabled": 4}
ERROR_CONTROLS = {"ignore": 0, "normal": 1, "severe": 2, "critical": 3}
FAILURE_ACTION_TYPES = {"none": 0, "restartService": 1, "reboot": 2, "runCommand": 3}
SID_TYPES = {"none": 0, "unrestricted": 1, "restricted": 3}


@dataclass(frozen=True)
class PackageDefinition:
    path: Path
    owner: str
    namespace: str
    name: str
    legacy_name: str | None
    build_wow: bool
    partition: Partition
    release_type: ReleaseType
    owner_type: OwnerType
    files: tuple[FileItem, ...] = ()
    reg_keys: tuple[RegKeyItem, ...] = ()
    drivers: tuple[DriverItem, ...] = ()
    services: tuple[ServiceItem, ...] = ()

    @property
    def package_name(self) -> str:
        """The cab name without ``.cab``: legacyName, else ``owner-namespace-name`` (§2.1)."""
        if self.legacy_name:
            return self.legacy_name
        return "-".join(p for p in (self.owner, self.namespace, self.name) if p)

    @property
    def cab_name(self) -> str:
        return self.package_name + ".cab"


@dataclass
class _Ctx:
    path: Path
    variables: Mapping[str, str]
    filters: Mapping[str, str | bool]
    roots: tuple[Path, ...]
    issues: list[InputError]

    def err(self, what: str, el, hint: str = "") -> None:
        self.issues.append(InputError(what, path=self.path, line=getattr(el, "sourceline", None), hint=hint))

    def expand(self, text: str | None, el, attr: str) -> str | None:
        if text is None:
            return None
        try:
            return expand_variables(text, self.variables)
        except UnknownMacro as e:
            near = difflib.get_close_matches(e.name, e.known, n=1)
            self.err(f"{attr}: unknown macro $({e.name})", el,
                     hint=f"did you mean $({near[0]})?" if near else
                     "use a build variable (" + ", ".join(f"$({k})" for k in sorted(self.variables)) + ")")
            return None


def _check_attrs(el, allowed: set[str], ctx: _Ctx) -> None:
    for a in el.attrib:
        if etree.QName(a).namespace:  # xsi:… and friends
            continue
        if a not in allowed:
            ctx.err(f"<{localname(el)}> has unknown attribute {a!r}", el,
                    hint="allowed: " + ", ".join(sorted(allowed)))


def _q(text: str) -> str:
    """Quote a Windows path or key for a message as the user wrote it (repr() would double every backslash)."""
    return f"'{text}'"


def _included(el, ctx: _Ctx) -> bool:
    expr = el.get("buildFilter")
    if expr is None:
        return True
    try:
        return buildfilter.evaluate(expr, ctx.filters)
    except buildfilter.FilterError as e:
        ctx.err(f"buildFilter {expr!r}: {e}", el, hint="e.g. buildFilter=\"build.arch = amd64\"")
        return False


def device_path(text: str, ctx: _Ctx, el, attr: str) -> str | None:
    """Resolve ``$(runtime.x)\\rest`` to ``\\Windows\\…``; refuse anything that could leave the partition."""
    macro, rest = split_leading_macro(text)
    base = runtime_path(macro) if macro else None
    if base is None:
        ctx.err(f"{attr}={_q(text)} must start with a $(runtime.*) macro", el,
                hint="e.g. $(runtime.system32) or $(runtime.bootDrive)\\folder")
        return None
    if "$(" in rest:
        ctx.err(f"{attr}={_q(text)}: macros are only allowed at the start", el)
        return None
    return normalize_device_path(base + "\\" + rest.lstrip("\\"), ctx, el, attr)


def normalize_device_path(raw: str, ctx: _Ctx, el, attr: str) -> str | None:
    parts = [p for p in raw.replace("/", "\\").split("\\")]
    out = []
    for i, p in enumerate(parts):
        if p == "":
            continue
        if p in (".", ".."):
            ctx.err(f"{attr}: device path {_q(raw)} contains {p!r}", el, hint="write the path without . or .. parts")
            return None
        if ":" in p:
            ctx.err(f"{attr}: device path {_q(raw)} contains a drive letter or stream name", el,
                    hint="start the path with a $(runtime.*) macro instead of a drive")
            return None
        if any(c in p for c in '<>"|?*') or any(ord(c) < 32 for c in p):
            ctx.err(f"{attr}: device path {_q(raw)} contains a character Windows does not allow", el)
            return None
        if p.endswith((" ", ".")):
            ctx.err(f"{attr}: path component {p!r} ends in a space or dot, which Windows drops", el)
            return None
        out.append(p)
    return "\\" + "\\".join(out)


def resolve_source(text: str, ctx: _Ctx, el, attr: str = "source") -> Path | None:
    """A host path for a ``source=``: relative to the .wm.xml folder; must stay in the workspace or build dir."""
    win = PureWindowsPath(text)
    literal_abs = text.startswith(("/", "\\")) or bool(win.drive)
    norm = text.replace("\\", "/")
    p = Path(norm)
    if literal_abs and not Path(norm).is_absolute():
        ctx.err(f"{attr}={_q(text)} uses a drive letter or UNC path", el,
                hint="use a path relative to the .wm.xml folder or a build variable such as $(BLDDIR)")
        return None
    full = (p if p.is_absolute() else ctx.path.parent / p).resolve()
    if not any(full == r or r in full.parents for r in ctx.roots):
        ctx.err(f"{attr}={_q(text)} resolves to {full}, outside the workspace and build folders", el,
                hint="keep package sources inside the workspace (or under $(BLDDIR))")
        return None
    if not full.is_file():
        hint = "check the file name"
        if full.parent.is_dir():
            near = difflib.get_close_matches(full.name, [c.name for c in full.parent.iterdir()], n=1)
            lower = {c.name.lower(): c.name for c in full.parent.iterdir()}
            if full.name.lower() in lower:
                hint = f"the file is named {lower[full.name.lower()]!r}: Linux file names are case-sensitive"
            elif near:
                hint = f"did you mean {near[0]!r}?"
        ctx.err(f"{attr}: file {full} does not exist", el, hint=hint)
        return None
    return full


def _parse_hex(text: str, bits: int) -> int:
    t = text.strip()
    if t.lower().startswith("0x"):
        t = t[2:]
    if not t or not re.fullmatch(r"[0-9A-Fa-f]+", t):
        raise ValueError(f"{text!r} is not a hexadecimal number")
    v = int(t, 16)
    if v >= 1 << bits:
        raise ValueError(f"{text!r} does not fit in {bits} bits")
    return v


def parse_reg_value(rtype: str, text: str) -> tuple[RegType, object]:
    """Typed data from a ``regValue`` (types and notations of iot-adk-addonkit.md §2.1)."""
    try:
        t = RegType[rtype.strip().upper()]
    except KeyError:
        raise ValueError(f"type {rtype!r} unknown; use REG_SZ, REG_EXPAND_SZ, REG_MULTI_SZ, REG_DWORD, "
                         "REG_QWORD or REG_BINARY") from None
    if t in (RegType.REG_SZ, RegType.REG_EXPAND_SZ):
        return t, text
    if t is RegType.REG_MULTI_SZ:
        items = re.split(r"(?<!\\);", text)
        return t, tuple(s.replace("\\;", ";") for s in items if s)
    if t is RegType.REG_DWORD:
        return t, _parse_hex(text, 32)
    if t is RegType.REG_QWORD:
        return t, _parse_hex(text, 64)
    if t is RegType.REG_BINARY:
        h = text.replace(",", "").replace(" ", "")
        if len(h) % 2 or (h and not re.fullmatch(r"[0-9A-Fa-f]+", h)):
            raise ValueError(f"{text!r} is not a hex byte string (e.g. 12ABCDEF)")
        return t, bytes.fromhex(h)
    raise ValueError(f"type {rtype!r} is not supported in .wm.xml")


def registry_key(text: str, ctx: _Ctx, el) -> str | None:
    macro, rest = split_leading_macro(text)
    root = registry_root(macro) if macro else None
    if root is None:
        ctx.err(f"keyName={_q(text)} must start with a registry macro", el,
                hint="e.g. $(hklm.software)\\… or $(hklm.system)\\…")
        return None
    parts = [p for p in rest.split("\\") if p]
    if any(p in (".", "..") for p in parts) or "$(" in rest:
        ctx.err(f"keyName={_q(text)} has a '.', '..' or macro after its root", el)
        return None
    return "\\".join([root, *parts])


def load(path: Path, variables: Mapping[str, str], *, cpu: str, roots: tuple[Path, ...],
         wow: bool = False) -> PackageDefinition:
    """Parse one definition with the given build variables; ``roots`` bound where sources may come from."""
    path = Path(path)
    if path.name.lower().endswith(".pkg.xml"):
        raise InputError("legacy .pkg.xml package definitions are not supported", path=path, line=1,
                         hint="convert it once on Windows with 'pkggen X.pkg.xml /convert:pkg2wm /output:X.wm.xml "
                              "/useLegacyName:true /foroempkg:true', or rewrite it as .wm.xml (see README)")
    root = parse(path, what="package definition")
    if etree.QName(root).namespace == LEGACY_NS:
        raise InputError("this is a legacy pkg.xml (PackageSchema.v8.00) definition", path=path,
                         line=root.sourceline, hint="convert it with pkggen /convert:pkg2wm or rewrite it as .wm.xml")
    if localname(root) != "identity" or etree.QName(root).namespace != NS:
        raise InputError(f"root element <{etree.QName(root).text}> is not <identity xmlns=\"{NS}\">",
                         path=path, line=root.sourceline, hint="a .wm.xml starts with <identity … xmlns=\"" + NS + "\">")
    ctx = _Ctx(path=path, variables=dict(variables), filters={"build.arch": cpu, "build.isWow": wow,
                                                               "build.isFeaturePack": False},
               roots=roots, issues=[])
    _check_attrs(root, {"name", "namespace", "owner", "legacyName", "buildWow"}, ctx)
    owner = ctx.expand(root.get("owner"), root, "owner") or ""
    namespace = ctx.expand(root.get("namespace"), root, "namespace") or ""
    name = ctx.expand(root.get("name"), root, "name") or ""
    legacy = ctx.expand(root.get("legacyName"), root, "legacyName")
    for attr, value in (("owner", owner), ("name", name)):
        if not value and root.get(attr) is None:
            ctx.err(f"<identity> has no {attr}", root, hint=f'add {attr}="…"')
    for attr, value in (("owner", owner), ("namespace", namespace), ("name", name), ("legacyName", legacy)):
        if value and not _NAME_RE.match(value):
            ctx.err(f"{attr}={value!r} may only contain letters, digits, '_', '-' and '.'", root)
        if value and len(value) > 64 and attr != "legacyName":
            ctx.err(f"{attr}={value!r} is longer than 64 characters", root)
    wow_text = (root.get("buildWow") or "false").strip().lower()
    if wow_text not in ("true", "false"):
        ctx.err(f"buildWow={root.get('buildWow')!r} is not true or false", root, hint='write buildWow="false"')
    build_wow = wow_text == "true"
    if build_wow:
        # pkggen would also emit a WOW guest package (x86 on amd64, arm on arm64); iotbuild does not build those yet.
        ctx.err("buildWow=\"true\" (a second, WOW guest package) is not supported", root,
                hint="remove buildWow or set it to false; build the 32-bit files as their own package")

    info = root.find(f"{{{NS}}}onecorePackageInfo")
    issues = ctx.issues
    if info is not None:
        _check_attrs(info, {"targetPartition", "releaseType", "ownerType"}, ctx)
    get = (lambda a: info.get(a) if info is not None else None)
    partition = _enum(Partition, get("targetPartition"), Partition.MAINOS, "targetPartition", info, path, issues)
    release = _enum(ReleaseType, get("releaseType"), ReleaseType.PRODUCTION, "releaseType", info, path, issues)
    owner_type = _enum(OwnerType, get("ownerType"), OwnerType.OEM, "ownerType", info, path, issues)

    files: list[FileItem] = []
    keys: list[RegKeyItem] = []
    drivers: list[DriverItem] = []
    services: list[ServiceItem] = []
    sections = {"onecorePackageInfo", "files", "regKeys", "drivers", "service", "services"}
    registry_el = None  # the first section that writes registry values, for the partition check
    for child in root:
        if not isinstance(child.tag, str):
            continue
        tag = localname(child)
        if etree.QName(child).namespace != NS or tag not in sections:
            ctx.err(f"unknown element <{tag}>", child,
                    hint="allowed here: " + ", ".join(sorted(sections)) +
                    (" (<bcdStore> and legacy elements are not supported)" if tag else ""))
            continue
        if tag in ("regKeys", "service", "services") and registry_el is None:
            registry_el = next((c for c in child.iter() if isinstance(c.tag, str) and localname(c) in
                                ("regKey", "service")), None)
        if tag == "files":
            files.extend(_files(child, ctx))
        elif tag == "regKeys":
            keys.extend(_reg_keys(child, ctx))
        elif tag == "drivers":
            drivers.extend(_drivers(child, ctx))
        elif tag == "service":
            if (s := _service(child, ctx)) is not None:
                services.append(s)
        elif tag == "services":
            for s_el in child:
                if isinstance(s_el.tag, str):
                    if localname(s_el) != "service":
                        ctx.err(f"unknown element <{localname(s_el)}> in <services>", s_el, hint="use <service>")
                    elif (s := _service(s_el, ctx)) is not None:
                        services.append(s)

    _check_duplicate_files(files, ctx)
    if registry_el is not None and partition not in REGISTRY_PARTITIONS:
        ctx.err(f"registry settings are not allowed in a {partition.value} package", registry_el,
                hint="move the registry keys and services into a MainOS package")
    if ctx.issues:
        raise InputErrors(ctx.issues)
    return PackageDefinition(path=path, owner=owner, namespace=namespace, name=name, legacy_name=legacy,
                             build_wow=build_wow, partition=partition, release_type=release, owner_type=owner_type,
                             files=tuple(files), reg_keys=tuple(keys), drivers=tuple(drivers),
                             services=tuple(services))


def _children(el, tag: str, ctx: _Ctx):
    for c in el:
        if not isinstance(c.tag, str):
            continue
        if localname(c) != tag or etree.QName(c).namespace != NS:
            ctx.err(f"unknown element <{localname(c)}> in <{localname(el)}>", c, hint=f"only <{tag}> is allowed here")
            continue
        yield c


def _source(el, ctx: _Ctx, hint: str) -> tuple[str | None, Path | None]:
    """A required ``source=``: its expanded text and host path (None where a problem was recorded)."""
    if el.get("source") is None:
        ctx.err(f"<{localname(el)}> has no source", el, hint=hint)
        return None, None
    text = ctx.expand(el.get("source"), el, "source")
    if text is None:
        return None, None
    return text, resolve_source(text, ctx, el)


def _files(el, ctx: _Ctx) -> list[FileItem]:
    out = []
    for f in _children(el, "file", ctx):
        _check_attrs(f, {"source", "destinationDir", "name", "buildFilter"}, ctx)
        if not _included(f, ctx):
            continue
        src_text, src = _source(f, ctx, 'add source="file name relative to the .wm.xml"')
        if src_text is None:
            continue
        dest_text = ctx.expand(f.get("destinationDir", "$(runtime.system32)"), f, "destinationDir")
        name = ctx.expand(f.get("name"), f, "name")
        if dest_text is None or (f.get("name") is not None and name is None):
            continue
        if name is None:
            name = PureWindowsPath(src_text).name
        if not name or "\\" in name or "/" in name:
            ctx.err(f"name={name!r} must be a plain file name", f, hint="put folders in destinationDir")
            continue
        dev = device_path(dest_text.rstrip("\\") + "\\" + name, ctx, f, "destinationDir")
        if src is None or dev is None:
            continue
        if src.stat().st_size == 0:
            ctx.err(f"source {src.name} is empty; packages cannot hold zero-byte files", f,
                    hint="put at least one byte in the file, or drop it")
            continue
        out.append(FileItem(source=src, device_path=dev, line=f.sourceline))
    return out


def _check_duplicate_files(files: list[FileItem], ctx: _Ctx) -> None:
    seen: dict[str, FileItem] = {}
    for f in files:
        k = f.device_path.lower()
        if k in seen:
            ctx.issues.append(InputError(
                f"destination {f.device_path} is also written by the <file> on line {seen[k].line}",
                path=ctx.path, line=f.line, hint="give one of them another name= or destinationDir="))
        else:
            seen[k] = f


def _reg_keys(el, ctx: _Ctx) -> list[RegKeyItem]:
    out = []
    for k in _children(el, "regKey", ctx):
        _check_attrs(k, {"keyName", "buildFilter"}, ctx)
        if not _included(k, ctx):
            continue
        key_text = ctx.expand(k.get("keyName"), k, "keyName")
        if k.get("keyName") is None:
            ctx.err("<regKey> has no keyName", k, hint='add keyName="$(hklm.software)\\…"')
            continue
        key = registry_key(key_text, ctx, k) if key_text is not None else None
        values: list[RegValue] = []
        lines: list[int] = []
        seen: dict[str, int] = {}
        for v in _children(k, "regValue", ctx):
            _check_attrs(v, {"name", "type", "value", "buildFilter"}, ctx)
            if not _included(v, ctx):
                continue
            vname = ctx.expand(v.get("name"), v, "name")
            rtype = v.get("type")
            if rtype is None:
                ctx.err("<regValue> has no type", v, hint='add type="REG_SZ" (or REG_DWORD, …)')
                continue
            text = ctx.expand(v.get("value", ""), v, "value")
            if text is None:
                continue
            text = _expand_runtime_in_value(text)
            try:
                t, data = parse_reg_value(rtype, text)
            except ValueError as e:
                ctx.err(f"regValue {vname or '@'}: {e}", v,
                        hint={"REG_DWORD": "write 8 hex digits, e.g. 0x0000001A or 0000001A",
                              "REG_QWORD": "write up to 16 hex digits, e.g. 000000000000005B",
                              "REG_BINARY": "write hex bytes, e.g. 12ABCDEF"}.get(
                            rtype.strip().upper(), "use type REG_SZ, REG_EXPAND_SZ, REG_MULTI_SZ, REG_DWORD, "
                                                   "REG_QWORD or REG_BINARY"))
                continue
            ident = (vname or "@").lower()
            if ident in seen:
                ctx.err(f"regValue {vname or '@'} is set twice in {key_text}", v,
                        hint=f"it was already set on line {seen[ident]}; keep one")
                continue
            seen[ident] = v.sourceline
            values.append(RegValue(name=vname if vname not in (None, "") else None, type=t, data=data))  # type: ignore[arg-type]
            lines.append(v.sourceline)
        if key is not None:
            out.append(RegKeyItem(path=key, values=tuple(values), line=k.sourceline, value_lines=tuple(lines)))
    return out


def _expand_runtime_in_value(text: str) -> str:
    """In registry data, a device-path macro becomes a MainOS path (``C:\\Windows\\…``)."""
    def sub(m: re.Match[str]) -> str:
        p = runtime_path(m.group(1))
        return m.group(0) if p is None else "C:" + p
    from .macros import MACRO_RE
    return MACRO_RE.sub(sub, text)


def _drivers(el, ctx: _Ctx) -> list[DriverItem]:
    out = []
    for d in _children(el, "driver", ctx):
        _check_attrs(d, {"defaultImportPath", "buildFilter"}, ctx)
        if not _included(d, ctx):
            continue
        infs = [c for c in d if isinstance(c.tag, str)]
        for c in infs:
            if localname(c) not in ("inf", "files"):
                ctx.err(f"unknown element <{localname(c)}> in <driver>", c, hint="use <inf source=\"x.inf\"/>")
        inf_els = [c for c in infs if localname(c) == "inf"]
        if len(inf_els) != 1:
            ctx.err(f"<driver> needs exactly one <inf>, found {len(inf_els)}", d, hint='<inf source="x.inf"/>')
            continue
        inf = inf_els[0]
        _check_attrs(inf, {"source"}, ctx)
        if any(localname(c) == "files" for c in infs):
            ctx.err("<driver><files> overrides are not supported", d,
                    hint="put the driver's files next to the INF, where [SourceDisksFiles] expects them")
            continue
        _, src = _source(inf, ctx, 'add source="x.inf"')
        if src is not None:
            out.append(DriverItem(inf=src, line=inf.sourceline))
    return out


def _service(el, ctx: _Ctx) -> ServiceItem | None:
    allowed = {"name", "displayName", "description", "imagePath", "start", "type", "objectName", "errorControl",
               "dependOnService", "requiredPrivileges", "sidType", "startAfterInstall", "buildFilter"}
    _check_attrs(el, allowed, ctx)
    if not _included(el, ctx):
        return None
    a = {k: ctx.expand(el.get(k), el, k) for k in allowed if el.get(k) is not None}
    ok = True
    for req in ("name", "imagePath"):
        if not a.get(req):
            ctx.err(f"<service> has no {req}", el, hint=f'add {req}="…"')
            ok = False
    for attr, table, default in (("start", SERVICE_STARTS, "demand"), ("type", SERVICE_TYPES, "win32OwnProcess"),
                                 ("errorControl", ERROR_CONTROLS, "normal"), ("sidType", SID_TYPES, None)):
        v = a.get(attr)
        if v is not None and v not in table:
            match = next((k for k in table if k.lower() == v.lower()), None)
            if match:
                a[attr] = match
            else:
                ctx.err(f"<service {attr}={v!r}> is not allowed", el, hint="use one of " + ", ".join(table))
                ok = False
    reset = None
    actions: list[FailureAction] = []
    # Unknown children are recorded by _children; load() then refuses the file, so they need no `ok = False`.
    for c in _children(el, "failureActions", ctx):
        _check_attrs(c, {"resetPeriod"}, ctx)
        try:
            reset = int(c.get("resetPeriod", "0"))
        except ValueError:
            ctx.err(f"resetPeriod={c.get('resetPeriod')!r} is not a number of seconds", c)
            ok = False
        for acts in _children(c, "actions", ctx):
            for act in _children(acts, "action", ctx):
                _check_attrs(act, {"type", "delay"}, ctx)
                t = act.get("type", "none")
                if t not in FAILURE_ACTION_TYPES:
                    ctx.err(f"<action type={t!r}> is not allowed", act, hint="use " + ", ".join(FAILURE_ACTION_TYPES))
                    ok = False
                    continue
                try:
                    delay = int(act.get("delay", "0"))
                except ValueError:
                    ctx.err(f"<action delay={act.get('delay')!r}> is not a number of milliseconds", act)
                    ok = False
                    continue
                actions.append(FailureAction(t, delay))
    if not ok:
        return None
    split = (lambda s: tuple(x for x in re.split(r"[;,]", s) if x) if s else ())
    return ServiceItem(name=a["name"], image_path=_expand_runtime_in_value(a["imagePath"]),
                       display_name=a.get("displayName"), description=a.get("description"),
                       start=a.get("start", "demand"), type=a.get("type", "win32OwnProcess"),
                       error_control=a.get("errorControl", "normal"), object_name=a.get("objectName"),
                       depend_on_service=split(a.get("dependOnService")),
                       required_privileges=split(a.get("requiredPrivileges")), sid_type=a.get("sidType"),
                       reset_period=reset, failure_actions=tuple(actions), line=el.sourceline)
