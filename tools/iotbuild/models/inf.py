"""Device INF files, parsed far enough to package a driver the way pkggen did.

What is understood: [Version], [Strings] substitution, [Manufacturer] and model sections with
platform decorations (``.NTamd64``), the DDInstall section (CopyFiles, AddReg, FeatureScore, DriverVer,
PnpLockdown), ``.HW`` (AddReg) and ``.Services`` (AddService) sections, service-install sections,
[SourceDisksNames]/[SourceDisksFiles] and [DestinationDirs]. A directive outside that list in a section
the driver actually uses is an error that names it, rather than a package that silently lacks it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import InputError, InputErrors

# DIRIDs (Microsoft "Using Dirids") → device paths.
DIRIDS = {
    10: r"\Windows", 11: r"\Windows\System32", 12: r"\Windows\System32\drivers", 17: r"\Windows\INF",
    18: r"\Windows\Help", 20: r"\Windows\Fonts", 30: "", 16422: r"\Program Files",
    16427: r"\Program Files\Common Files",
}
DRIVER_STORE_DIRID = 13
PLATFORMS = {"amd64": "amd64", "x86": "x86", "arm": "arm", "arm64": "arm64"}

DDINSTALL_DIRECTIVES = {"copyfiles", "addreg", "featurescore", "driverver", "pnplockdown", "characteristics",
                        "bustype"}
HW_DIRECTIVES = {"addreg"}
SERVICES_DIRECTIVES = {"addservice"}
SERVICE_INSTALL_DIRECTIVES = {"servicetype", "starttype", "errorcontrol", "servicebinary", "displayname",
                              "description", "loadordergroup", "dependencies", "addreg"}
ADDREG_FLAGS_SUPPORTED = 0x00000001 | 0x00000002 | 0x00000008 | 0x00000010 | 0x00004000 | 0xFFFF0000


@dataclass(frozen=True)
class InfLine:
    key: str | None  # directive name (None for a plain list line)
    fields: tuple[str, ...]
    line: int


@dataclass(frozen=True)
class InfFile:
    name: str  # file name on the device
    source: Path  # host path
    dirid: int
    subdir: str
    line: int = field(compare=False)


@dataclass(frozen=True)
class InfRegEntry:
    root: str  # HKR | HKLM | HKCR
    subkey: str
    value_name: str | None  # None: the default value; key_only entries use None too
    flags: int
    data: tuple[str, ...]
    context: str  # "driver", "device" or "service:<name>"
    line: int = field(compare=False)


@dataclass(frozen=True)
class InfService:
    name: str
    flags: int
    service_type: int
    start_type: int
    error_control: int
    binary: str
    display_name: str | None
    description: str | None
    load_order_group: str | None
    dependencies: tuple[str, ...]
    line: int = field(compare=False)


@dataclass(frozen=True)
class InfDriver:
    path: Path
    class_name: str | None
    class_guid: str | None
    provider: str | None
    catalog_file: str | None
    files: tuple[InfFile, ...]
    registry: tuple[InfRegEntry, ...]
    services: tuple[InfService, ...]
    install_sections: tuple[str, ...]


def _split_fields(text: str) -> list[str]:
    """Comma-separated fields; quotes protect commas; doubled quotes are a literal quote."""
    out, cur, inq, i = [], [], False, 0
    while i < len(text):
        c = text[i]
        if c == '"':
            if inq and i + 1 < len(text) and text[i + 1] == '"':
                cur.append('"')
                i += 2
                continue
            inq = not inq
        elif c == "," and not inq:
            out.append("".join(cur).strip())
            cur = []
        else:
            cur.append(c)
        i += 1
    out.append("".join(cur).strip())
    return out


def _strip_comment(text: str) -> str:
    inq = False
    for i, c in enumerate(text):
        if c == '"':
            inq = not inq
        elif c == ";" and not inq:
            return text[:i]
    return text


class _Inf:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.sections: dict[str, list[InfLine]] = {}
        self.section_lines: dict[str, int] = {}
        self.section_names: dict[str, str] = {}  # lower-case key -> the name as written, for messages
        self.issues: list[InputError] = []
        raw = path.read_bytes()
        if raw.startswith(b"\xff\xfe"):
            text = raw[2:].decode("utf-16-le", "replace")
        elif raw.startswith(b"\xef\xbb\xbf"):
            text = raw[3:].decode("utf-8", "replace")
        else:
            text = raw.decode("utf-8", "replace") if b"\0" not in raw else raw.decode("utf-16-le", "replace")
        current: str | None = None
        pending, pending_line = "", 0
        for n, line in enumerate(text.splitlines(), 1):
            stripped = _strip_comment(line).rstrip()
            if pending:
                stripped, n = pending + stripped.lstrip(), pending_line
                pending = ""
            if stripped.endswith("\\"):
                pending, pending_line = stripped[:-1], n
                continue
            s = stripped.strip()
            if not s:
                continue
            if s.startswith("["):
                if not s.endswith("]"):
                    self.err(f"section header {s!r} has no closing ']'", n)
                    continue
                current = s[1:-1].strip().lower()
                self.sections.setdefault(current, [])
                self.section_lines.setdefault(current, n)
                self.section_names.setdefault(current, s[1:-1].strip())
                continue
            if current is None:
                self.err(f"line {s!r} is outside any section", n)
                continue
            key, fields = None, s
            m = re.match(r'^([^=",]+?)\s*=\s*(.*)$', s)
            if m:
                key, fields = m.group(1).strip(), m.group(2)
            self.sections[current].append(InfLine(key, tuple(_split_fields(fields)), n))
        self.strings = {ln.key.lower(): ln.fields[0] if ln.fields else ""
                        for ln in self.sections.get("strings", []) if ln.key}

    def err(self, what: str, line: int | None, hint: str = "") -> None:
        self.issues.append(InputError(what, path=self.path, line=line, hint=hint))

    def subst(self, text: str, line: int) -> str:
        def sub(m: re.Match[str]) -> str:
            name = m.group(1)
            if name == "":
                return "%"
            if name.isdigit():
                return m.group(0)  # a DIRID, resolved by the caller
            if name.lower() not in self.strings:
                self.err(f"%{name}% is not defined in [Strings]", line, hint=f"add {name}=\"…\" to [Strings]")
                return m.group(0)
            return self.strings[name.lower()]
        return re.sub(r"%([^%]*)%", sub, text)

    def section(self, name: str, line: int, *, required: bool = True) -> list[InfLine] | None:
        sec = self.sections.get(name.lower())
        if sec is None and required:
            self.err(f"section [{name}] is referenced but not defined", line, hint=f"add a [{name}] section")
        return sec

    def decorated(self, base: str, arch: str) -> str | None:
        """The most specific existing section: base.NT<arch>, base.NT, base."""
        for cand in (f"{base}.nt{arch}", f"{base}.nt", base):
            if cand.lower() in self.sections:
                return cand.lower()
        return None

    def value(self, sec: str, key: str) -> str | None:
        for ln in self.sections.get(sec, []):
            if ln.key and ln.key.lower() == key.lower():
                return self.subst(ln.fields[0], ln.line) if ln.fields else ""
        return None


def _int(text: str) -> int:
    t = text.strip()
    return int(t, 16) if t.lower().startswith("0x") else int(t or "0")


def parse_inf(path: Path, *, arch: str) -> InfDriver:
    """Parse ``path`` for the pkggen CPU ``arch`` (arm, x86, amd64, arm64)."""
    inf = _Inf(path)
    if "version" not in inf.sections:
        inf.err("the INF has no [Version] section", 1, hint="add [Version] with Signature=\"$WINDOWS NT$\"")
    sig = inf.value("version", "Signature") or ""
    if sig and sig.strip('"').lower() not in ("$windows nt$", "$chicago$"):
        inf.err(f"Signature {sig!r} is not $WINDOWS NT$", inf.section_lines.get("version"))

    # Manufacturer → models → DDInstall sections
    install: list[tuple[str, int]] = []
    for ln in inf.sections.get("manufacturer", []):
        if not ln.fields or not ln.fields[0]:
            continue
        base, decorations = ln.fields[0], [d.strip().lower() for d in ln.fields[1:] if d.strip()]
        models = None
        for d in decorations:
            if d.startswith(f"nt{arch}"):
                models = f"{base}.{d}".lower()
        if models is None:
            models = base.lower() if not decorations or base.lower() in inf.sections else None
        if models is None:
            inf.err(f"manufacturer {base!r} has no models section for NT{arch}", ln.line,
                    hint=f"add NT{arch} to the [Manufacturer] line and a [{base}.NT{arch}] section")
            continue
        for m in inf.section(models, ln.line) or []:
            if len(m.fields) < 2 or not m.fields[0]:
                inf.err("model line needs 'install-section, hardware-id'", m.line)
                continue
            sec = inf.decorated(m.fields[0], arch)
            if sec is None:
                inf.err(f"install section [{m.fields[0]}] is not defined", m.line,
                        hint=f"add [{m.fields[0]}.NT{arch}] or [{m.fields[0]}]")
                continue
            if sec not in (s for s, _ in install):
                install.append((sec, m.line))
    if not install and not inf.issues:
        inf.err("the INF installs nothing: no [Manufacturer] model points to an install section", 1)

    # Source disks and destinations
    src_files: dict[str, tuple[str, str, int]] = {}
    disks: dict[str, str] = {}
    for secname in (f"sourcedisksnames.{arch}", "sourcedisksnames"):
        for ln in inf.sections.get(secname, []):
            if ln.key:
                disks.setdefault(ln.key.strip(), ln.fields[3] if len(ln.fields) > 3 else "")
    for secname in (f"sourcedisksfiles.{arch}", "sourcedisksfiles"):
        for ln in inf.sections.get(secname, []):
            if ln.key:
                disk = ln.fields[0] if ln.fields else "1"
                sub = ln.fields[1] if len(ln.fields) > 1 else ""
                src_files.setdefault(ln.key.strip().lower(), (disks.get(disk, ""), sub, ln.line))
    dest_dirs: dict[str, tuple[int, str]] = {}
    for ln in inf.sections.get("destinationdirs", []):
        if ln.key:
            try:
                dest_dirs[ln.key.strip().lower()] = (_int(ln.fields[0]), ln.fields[1] if len(ln.fields) > 1 else "")
            except ValueError:
                inf.err(f"DestinationDirs {ln.key} = {ln.fields[0]!r} is not a DIRID", ln.line)

    files: dict[str, InfFile] = {}
    registry: list[InfRegEntry] = []
    services: list[InfService] = []

    def add_file(name: str, line: int, dirid: int, subdir: str) -> None:
        key = name.lower()
        if key not in src_files:
            inf.err(f"file {name!r} is copied but not listed in [SourceDisksFiles]", line,
                    hint=f"add '{name} = 1' to [SourceDisksFiles]")
            return
        disk_path, sub, _ = src_files[key]
        rel = "/".join(p for p in (disk_path.strip("\\"), sub.strip("\\"), name) if p).replace("\\", "/")
        host = (path.parent / rel).resolve()
        if path.parent.resolve() not in host.parents:
            inf.err(f"file {name!r} resolves outside the INF folder", line, hint="keep driver files next to the INF")
            return
        if not host.is_file():
            inf.err(f"file {name!r} named by the INF does not exist ({host})", line,
                    hint=f"put {name} next to {path.name}")
            return
        if dirid not in DIRIDS and dirid != DRIVER_STORE_DIRID:
            inf.err(f"DIRID {dirid} for {name!r} is not supported", line,
                    hint="use 12 (drivers), 11 (System32), 10 (Windows) or 13 (driver store)")
            return
        files.setdefault(f"{dirid}\\{subdir}\\{key}", InfFile(name, host, dirid, subdir, line))

    def copy_files(ln: InfLine, install_name: str) -> None:
        for target in ln.fields:
            if not target:
                continue
            if target.startswith("@"):
                d = dest_dirs.get("defaultdestdir", (DRIVER_STORE_DIRID, ""))
                add_file(target[1:], ln.line, *d)
                continue
            sec = inf.section(target, ln.line)
            if sec is None:
                continue
            d = dest_dirs.get(target.lower()) or dest_dirs.get("defaultdestdir")
            if d is None:
                inf.err(f"no [DestinationDirs] entry for [{target}] and no DefaultDestDir", ln.line,
                        hint=f"add '{target} = 12' (drivers folder) to [DestinationDirs]")
                continue
            for f in sec:
                name = (f.fields[1] if len(f.fields) > 1 and f.fields[1] else f.fields[0]) if f.key is None \
                    else f.key
                add_file(name, f.line, *d)

    def add_reg(ln: InfLine, context: str) -> None:
        for target in ln.fields:
            sec = inf.section(target, ln.line) if target else None
            for r in sec or []:
                if r.key is not None:
                    inf.err(f"AddReg line {r.key}={','.join(r.fields)!r} is not 'root,subkey,value,flags,data'", r.line)
                    continue
                f = [inf.subst(x, r.line) for x in r.fields]
                root = f[0].upper() if f else ""
                if root not in ("HKR", "HKLM", "HKCR"):
                    inf.err(f"AddReg root {root!r} is not supported", r.line,
                            hint="use HKR, HKLM or HKCR (HKCU/HKU do not exist in an image)")
                    continue
                try:
                    flags = _int(f[3]) if len(f) > 3 and f[3] else 0
                except ValueError:
                    inf.err(f"AddReg flags {f[3]!r} are not a number", r.line)
                    continue
                if flags & 0x4:
                    inf.err("AddReg flag FLG_ADDREG_DELVAL (0x4) is not supported", r.line,
                            hint="packages add registry values; remove the entry")
                    continue
                if flags & 0x20:
                    inf.err("AddReg flag FLG_ADDREG_OVERWRITEONLY (0x20) is not supported", r.line)
                    continue
                registry.append(InfRegEntry(root, f[1] if len(f) > 1 else "", (f[2] or None) if len(f) > 2 else None,
                                            flags, tuple(f[4:]), context, r.line))

    for sec, line in install:
        for ln in inf.sections[sec]:
            k = (ln.key or "").lower()
            if k not in DDINSTALL_DIRECTIVES:
                inf.err(f"directive {ln.key or ','.join(ln.fields)!r} in [{inf.section_names[sec]}] is not supported",
                        ln.line,
                        hint="supported: CopyFiles, AddReg, FeatureScore, DriverVer, PnpLockdown")
            elif k == "copyfiles":
                copy_files(ln, sec)
            elif k == "addreg":
                add_reg(ln, "driver")
        for ln in inf.sections.get(f"{sec}.hw", []):
            if (ln.key or "").lower() not in HW_DIRECTIVES:
                inf.err(f"directive {ln.key!r} in [{inf.section_names[sec]}.HW] is not supported", ln.line,
                        hint="supported: AddReg")
            else:
                add_reg(ln, "device")
        for ln in inf.sections.get(f"{sec}.services", []):
            if (ln.key or "").lower() not in SERVICES_DIRECTIVES:
                inf.err(f"directive {ln.key!r} in [{inf.section_names[sec]}.Services] is not supported", ln.line,
                        hint="supported: AddService")
                continue
            f = [inf.subst(x, ln.line) for x in ln.fields]
            if len(f) < 3 or not f[0] or not f[2]:
                inf.err("AddService needs 'name, flags, service-install-section'", ln.line)
                continue
            svc_sec = inf.section(f[2], ln.line)
            if svc_sec is None:
                continue
            vals: dict[str, str] = {}
            for s in svc_sec:
                key = (s.key or "").lower()
                if key not in SERVICE_INSTALL_DIRECTIVES:
                    inf.err(f"directive {s.key!r} in [{f[2]}] is not supported", s.line,
                            hint="supported: " + ", ".join(sorted(SERVICE_INSTALL_DIRECTIVES)))
                elif key == "addreg":
                    add_reg(s, f"service:{f[0]}")
                else:
                    vals[key] = ",".join(inf.subst(x, s.line) for x in s.fields)
            try:
                services.append(InfService(
                    name=f[0], flags=_int(f[1] or "0"), service_type=_int(vals.get("servicetype", "1")),
                    start_type=_int(vals.get("starttype", "3")), error_control=_int(vals.get("errorcontrol", "1")),
                    binary=vals.get("servicebinary", ""), display_name=vals.get("displayname"),
                    description=vals.get("description"), load_order_group=vals.get("loadordergroup"),
                    dependencies=tuple(d for d in vals.get("dependencies", "").split(",") if d), line=ln.line))
            except ValueError as e:
                inf.err(f"service {f[0]}: a number field is not a number ({e})", ln.line)
            if not vals.get("servicebinary"):
                inf.err(f"service install section [{f[2]}] has no ServiceBinary", ln.line,
                        hint="add ServiceBinary = %12%\\yourdriver.sys")

    # [Version] values are substituted before the check below, so that an undefined %string% there is reported.
    class_name, class_guid = inf.value("version", "Class"), inf.value("version", "ClassGuid")
    provider = inf.value("version", "Provider")
    catalog_file = inf.value("version", f"CatalogFile.NT{arch}") or inf.value("version", "CatalogFile")
    if inf.issues:
        raise InputErrors(inf.issues)
    return InfDriver(path=path, class_name=class_name, class_guid=class_guid, provider=provider,
                     catalog_file=catalog_file, files=tuple(files.values()), registry=tuple(registry),
                     services=tuple(services), install_sections=tuple(s for s, _ in install))
