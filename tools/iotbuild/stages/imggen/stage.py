"""Staging: every package's files laid out per partition, the package metadata, the registry hives, the
image manifest.

Where things go (iot-adk-addonkit.md §6, cab-authenticode-registry.md §4–5):
  * a package's Regular files: its partition's tree, at their device paths;
  * its metadata — ``man.dsm.xml`` as ``\\Windows\\Packages\\DsmFiles\\<package>.dsm.xml``, ``content.cat`` into
    ``\\Windows\\System32\\catroot\\{F750E6C3-…}``, its ``.reg``/``.rga`` under ``\\Windows\\Packages\\RegistryFiles``
    — on MainOS, where the servicing stack keeps the record of every installed package, whatever its partition;
  * the registry: every package's ``.reg`` merged in package order (a value set differently by two packages is
    an error naming both), then every ``.rga`` appended, into offline hives under
    ``\\Windows\\System32\\config`` (SYSTEM, SOFTWARE, DRIVERS, DEFAULT always; SAM, SECURITY when used), the
    default profile's ``\\Users\\Default\\NTUSER.DAT`` and the EFIESP's ``\\EFI\\Microsoft\\Boot\\BCD`` when used.
    ``CurrentControlSet`` is a link that exists only on a running system: offline it is ``ControlSet001``,
    and ``Select`` says so.

Paths compare case-insensitively, as on Windows: two packages placing one device path (in any letter case)
is an error naming both; directories take the spelling of the first package that creates them.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ...errors import FormatError, InputError, InputErrors
from ...formats.cab import CabReader
from ...formats.regf import append_multi_sz, canonical_path, merge_keys, split_by_hive, write_hive
from ...formats.regfile import RegKey, RegType, RegValue, parse_reg, parse_rga
from ...outputs import atomic_output
from ..pkggen.dsm import FileType
from .packages import ImagePackage

METADATA = {FileType.MANIFEST, FileType.CATALOG, FileType.REGISTRY, FileType.REGISTRY_APPEND}
MANIFEST_SHA256 = "\\Windows\\ImageUpdate\\ImageManifest.sha256"   # read by the smoke test inside the image
HIVE_PLACES = {  # hive file → (partition, device path)
    "SYSTEM": ("MainOS", "\\Windows\\System32\\config\\SYSTEM"),
    "SOFTWARE": ("MainOS", "\\Windows\\System32\\config\\SOFTWARE"),
    "DRIVERS": ("MainOS", "\\Windows\\System32\\config\\DRIVERS"),
    "DEFAULT": ("MainOS", "\\Windows\\System32\\config\\DEFAULT"),
    "SAM": ("MainOS", "\\Windows\\System32\\config\\SAM"),
    "SECURITY": ("MainOS", "\\Windows\\System32\\config\\SECURITY"),
    "NTUSER.DAT": ("MainOS", "\\Users\\Default\\NTUSER.DAT"),
    "BCD": ("EFIESP", "\\EFI\\Microsoft\\Boot\\BCD"),
}
ALWAYS_HIVES = ("SYSTEM", "SOFTWARE", "DRIVERS", "DEFAULT")
GENERATED = "iotbuild (image)"   # the "package" of files the image step writes itself
_BAD_CHARS = re.compile(r'[\x00-\x1f<>:"|?*]')
_CCS = re.compile(r"^(HKEY_LOCAL_MACHINE|HKLM)\\SYSTEM\\CurrentControlSet(?=\\|$)", re.IGNORECASE)


@dataclass(frozen=True)
class StagedFile:
    partition: str
    path: str          # device path, backslashes, as first spelled
    size: int
    sha256: str
    sha1: str
    package: str       # the package it came from, or GENERATED

    def to_dict(self) -> dict[str, object]:
        return {"partition": self.partition, "path": self.path, "size": self.size, "sha256": self.sha256,
                "package": self.package}


@dataclass
class Staging:
    root: Path
    files: list[StagedFile] = field(default_factory=list)
    partitions: dict[str, Path] = field(default_factory=dict)      # lower name → tree
    _names: dict[str, str] = field(default_factory=dict)           # lower partition name → spelling
    _dirs: dict[tuple[str, str], str] = field(default_factory=dict)  # (partition, lower rel dir) → rel dir
    _owners: dict[tuple[str, str], tuple[str, str]] = field(default_factory=dict)  # (part, lower path) → (pkg, path)

    def tree(self, partition: str) -> Path:
        key = partition.lower()
        if key not in self.partitions:
            self._names[key] = partition
            self.partitions[key] = self.root / partition
            self.partitions[key].mkdir(parents=True, exist_ok=True)
        return self.partitions[key]

    def partition_name(self, partition: str) -> str:
        return self._names.get(partition.lower(), partition)

    def content_bytes(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for f in self.files:
            out[f.partition] = out.get(f.partition, 0) + f.size
        return out

    def find(self, partition: str, device_path: str) -> StagedFile | None:
        want = (partition.lower(), device_path.lower())
        return next((f for f in self.files if (f.partition.lower(), f.path.lower()) == want), None)

    def host_path(self, f: StagedFile) -> Path:
        return self.tree(f.partition) / self._rel(f.partition, f.path, create=False)

    # -- placing files --------------------------------------------------------------------------------------
    def _rel(self, partition: str, device_path: str, *, create: bool) -> str:
        parts = device_path.strip("\\").split("\\")
        rel_dirs: list[str] = []
        for i, part in enumerate(parts[:-1]):
            lower = "/".join(p.lower() for p in parts[: i + 1])
            spelled = self._dirs.get((partition.lower(), lower))
            if spelled is None:
                spelled = "/".join([*rel_dirs, part])
                if create:
                    self._dirs[(partition.lower(), lower)] = spelled
                    (self.tree(partition) / spelled).mkdir(exist_ok=True)
            rel_dirs = spelled.split("/")
        return "/".join([*rel_dirs, parts[-1]])

    def claim(self, partition: str, device_path: str, package: str, *, what: str = "") -> Path:
        """The host path for a new file; an InputError if another package (or this one) already placed it."""
        check_device_path(device_path, package)
        partition = self.partition_name(partition)
        key = (partition.lower(), device_path.lower())
        if key in self._owners:
            other, spelled = self._owners[key]
            who = f"package {package} places it twice" if other == package else \
                f"packages {other} and {package} both place it"
            raise InputError(f"file conflict on {partition} at {spelled}: {who}" + (f" ({what})" if what else ""),
                             hint="remove the file from one of the packages, or leave one package's feature out "
                                  "of the OEMInput")
        self._owners[key] = (package, device_path)
        dest = self.tree(partition) / self._rel(partition, device_path, create=True)
        if dest.is_dir():
            raise InputError(f"file conflict on {partition} at {device_path}: package {package} places a file "
                             "where another package has a folder", hint="rename one of them")
        return dest

    def add(self, partition: str, device_path: str, package: str, chunks, *, what: str = "") -> StagedFile:
        dest = self.claim(partition, device_path, package, what=what)
        h256, h1, size = hashlib.sha256(), hashlib.sha1(), 0
        with open(dest, "wb") as out:
            for chunk in chunks:
                h256.update(chunk)
                h1.update(chunk)
                out.write(chunk)
                size += len(chunk)
        f = StagedFile(self.partition_name(partition), device_path, size, h256.hexdigest(), h1.hexdigest(), package)
        self.files.append(f)
        return f


def check_device_path(device_path: str, package: str) -> None:
    """Device paths come from package manifests: they must stay inside their partition."""
    problem = None
    if not device_path.startswith("\\") or device_path.startswith("\\\\"):
        problem = "does not start with a single backslash"
    else:
        parts = device_path[1:].split("\\")
        if any(p in ("", ".", "..") for p in parts):
            problem = "has an empty, '.' or '..' component"
        elif any(_BAD_CHARS.search(p) for p in parts):
            problem = "holds a drive letter, a stream name or a character Windows forbids"
        elif any(p != p.rstrip(" .") for p in parts):
            problem = "has a component ending in a dot or space"
    if problem:
        raise InputError(f"package {package}: device path {device_path!r} {problem}",
                         hint="rebuild the package from a correct .wm.xml (destinationDir under $(runtime.*))")


def _offline(key: RegKey) -> RegKey:
    path = canonical_path(key.path)
    return RegKey(_CCS.sub(lambda m: "HKEY_LOCAL_MACHINE\\SYSTEM\\ControlSet001", path), key.values)


def stage_packages(packages: Sequence[ImagePackage], root: Path, *, extra_registry: Sequence[RegKey] = (),
                   epoch: int, on_package: Callable[[ImagePackage], None] | None = None) -> Staging:
    """Extract every package into ``root/<Partition>/``, then write the hives; returns what was staged."""
    st = Staging(root)
    st.tree("MainOS")
    regs: list[tuple[str, list[RegKey]]] = []
    rgas: list[tuple[str, list[RegKey]]] = []
    issues: list[InputError] = []
    for pkg in packages:
        entries = {f.cab_path: f for f in pkg.manifest.files}
        with CabReader.open(pkg.cab) as reader:
            for member, chunks in reader.iter_members():
                entry = entries.get(member.name)
                if entry is None:  # verify_package already refused cabs whose manifest does not match
                    raise InputError(f"package {pkg.name}: member {member.name} is not in its manifest", path=pkg.cab)
                partition = "MainOS" if entry.file_type in METADATA else pkg.partition
                try:
                    if entry.file_type in (FileType.REGISTRY, FileType.REGISTRY_APPEND):
                        data = b"".join(chunks)
                        parse = parse_reg if entry.file_type is FileType.REGISTRY else parse_rga
                        keys = [_offline(k) for k in parse(data, path=f"{pkg.cab}:{member.name}")]
                        (regs if entry.file_type is FileType.REGISTRY else rgas).append((pkg.name, keys))
                        st.add(partition, entry.device_path, pkg.name, [data])
                    else:
                        st.add(partition, entry.device_path, pkg.name, chunks)
                except InputError as e:
                    issues.append(e)
                    for _ in chunks:
                        pass
                except FormatError as e:
                    issues.append(InputError(f"package {pkg.name}: {e}", path=pkg.cab,
                                             hint="rebuild the package; its registry file cannot be read"))
                    for _ in chunks:
                        pass
        if on_package:
            on_package(pkg)
    if issues:
        raise issues[0] if len(issues) == 1 else InputErrors(issues)
    write_hives(st, regs, rgas, extra_registry=extra_registry, epoch=epoch)
    return st


def write_hives(st: Staging, regs: list[tuple[str, list[RegKey]]], rgas: list[tuple[str, list[RegKey]]], *,
                extra_registry: Sequence[RegKey], epoch: int) -> None:
    select = RegKey("HKEY_LOCAL_MACHINE\\SYSTEM\\Select", tuple(
        RegValue(n, RegType.REG_DWORD, v) for n, v in (("Current", 1), ("Default", 1), ("LastKnownGood", 1),
                                                        ("Failed", 0))))
    named = [*regs, (GENERATED, [_offline(k) for k in (*extra_registry, select)])]
    keys = append_multi_sz(merge_keys(named), rgas)
    by_hive = split_by_hive(keys)
    for hive in ALWAYS_HIVES:
        by_hive.setdefault(hive, [])
    for hive in sorted(by_hive):
        partition, device_path = HIVE_PLACES[hive]
        dest = st.claim(partition, device_path, GENERATED, what=f"the {hive} registry hive")
        with atomic_output(dest) as out:
            info = write_hive(out, by_hive[hive], root_name=f"CMI-CreateHive{{{hive}}}"[:255], timestamp=epoch,
                              file_name=device_path.rsplit("\\", 1)[-1])
        h1 = hashlib.sha1(dest.read_bytes()).hexdigest()
        st.files.append(StagedFile(st.partition_name(partition), device_path, info.size, info.sha256, h1, GENERATED))


def write_manifest_file(st: Staging) -> StagedFile:
    """``ImageManifest.sha256`` on MainOS: ``<sha256>  <Partition>/<path>`` per file (sha256sum -c format)."""
    lines = sorted(f"{f.sha256}  {f.partition}/{f.path.strip(chr(92)).replace(chr(92), '/')}" for f in st.files)
    data = ("\n".join(lines) + "\n").encode()
    return st.add("MainOS", MANIFEST_SHA256, GENERATED, [data], what="the image manifest")


def stamp_tree(root: Path, epoch: int) -> None:
    """Every staged file and folder gets the build time (filesystems copy these times)."""
    for dirpath, dirnames, filenames in os.walk(root):
        for name in filenames + dirnames:
            os.utime(os.path.join(dirpath, name), (epoch, epoch), follow_symlinks=False)
    os.utime(root, (epoch, epoch))
