"""Feature manifests (``FeatureManifest``) and FM file lists (``FMCollectionManifest``).

Reference: iot-adk-addonkit.md §4.1–4.2. Namespace ``http://schemas.microsoft.com/embedded/2004/10/ImageUpdate``.
Tokens (``%PKGBLD_DIR% %OEM_NAME% %BSPPKG_DIR% %MSPKG_DIR%`` and environment variables) are resolved
while parsing; an unknown token is an error, where FeatureMerger left it in and failed later with
"Missing package". Every package reference keeps its FM file and line for later messages.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path, PureWindowsPath

from lxml import etree

from ..errors import InputError, InputErrors
from ..xmlsafe import localname, parse

NS = "http://schemas.microsoft.com/embedded/2004/10/ImageUpdate"
CPU_TYPES = ("ARM", "X86", "AMD64", "ARM64")

# Section name → (selector attribute or None). Order is the schema's.
SECTIONS: dict[str, str | None] = {
    "BasePackages": None,
    "DeviceLayoutPackages": "SOC",
    "OEMDevicePlatformPackages": "Device",
    "SOCPackages": "SOC",
    "SVPackages": "SV",
    "DeviceSpecificPackages": "Device",
    "ReleasePackages": "ReleaseType",
    "PrereleasePackages": "Type",
    "CPUPackages": "CPUType",
}
FEATURE_GROUPS = ("Microsoft", "OEM")
PACKAGE_ATTRS = {"Path", "Name", "Language", "Resolution", "Partition", "CPUType", "ID", "NoBasePackage",
                 "FeatureIdentifierPackage", "SOC", "SV", "Device", "ReleaseType", "Type", "Version", "PublicKey",
                 "BinaryPartition"}
FM_TOKENS = ("PKGBLD_DIR", "OEM_NAME", "BSPPKG_DIR", "MSPKG_DIR", "BLD_DIR", "BSP_ARCH")
_TOKEN = re.compile(r"%([A-Za-z_][A-Za-z0-9_]*)%")


@dataclass(frozen=True)
class Filter:
    """``*`` (everything), ``(a;b)`` (only these) or ``!(a;b)`` (all but these); case-insensitive."""

    values: frozenset[str] = frozenset()
    negate: bool = False
    any: bool = True

    @classmethod
    def parse(cls, text: str | None) -> Filter:
        if text is None or text.strip() in ("", "*"):
            return cls()
        t = text.strip()
        neg = t.startswith("!")
        if neg:
            t = t[1:].strip()
        if not (t.startswith("(") and t.endswith(")")):
            if neg or any(c in t for c in ";()"):
                raise ValueError(f"{text!r} is not '*', '(a;b)' or '!(a;b)'")
            return cls(frozenset({t.lower()}), False, False)  # a single bare value
        items = frozenset(v.strip().lower() for v in t[1:-1].split(";") if v.strip())
        if not items:
            raise ValueError(f"{text!r} lists no values")
        return cls(items, neg, False)

    def matches(self, value: str) -> bool:
        if self.any:
            return True
        return (value.lower() in self.values) != self.negate

    def __str__(self) -> str:
        if self.any:
            return "*"
        return ("!" if self.negate else "") + "(" + ";".join(sorted(self.values)) + ")"


@dataclass(frozen=True)
class PackageRef:
    """One ``PackageFile`` of an FM."""

    section: str  # BasePackages, Features/OEM, Features/Microsoft, DeviceLayoutPackages, …
    name: str  # cab file name, tokens resolved
    directory: str  # Path attribute, tokens resolved (host folder, or an iso: location)
    feature_ids: tuple[str, ...] = ()
    selector: str | None = None  # the SOC / Device / SV / ReleaseType / Type value for selector sections
    partition: str | None = None
    cpu_type: str | None = None
    language: Filter = Filter()
    resolution: Filter = Filter()
    fip: bool = False  # FeatureIdentifierPackage="true"
    fm: Path = field(default=Path(), compare=False)
    line: int = field(default=0, compare=False)

    @property
    def location(self) -> str:
        return f"{self.directory.rstrip('/')}/{self.name}" if self.directory else self.name

    @property
    def package_name(self) -> str:
        for ext in (".cab", ".spkg"):
            if self.name.lower().endswith(ext):
                return self.name[: -len(ext)]
        return self.name

    def where(self) -> str:
        return f"{self.fm}:{self.line}"


@dataclass(frozen=True)
class ConditionalFeature:
    feature_id: str
    update_action: str | None
    line: int = field(compare=False)


@dataclass(frozen=True)
class FeatureManifest:
    path: Path
    packages: tuple[PackageRef, ...]
    conditional_features: tuple[ConditionalFeature, ...] = ()
    ms_feature_groups: int = 0
    oem_feature_groups: int = 0

    def section(self, name: str) -> list[PackageRef]:
        return [p for p in self.packages if p.section == name]

    @property
    def base(self) -> list[PackageRef]:
        return self.section("BasePackages")

    def features(self, group: str | None = None) -> dict[str, list[PackageRef]]:
        """Feature ID → its packages (``group``: OEM, Microsoft or both)."""
        out: dict[str, list[PackageRef]] = {}
        for p in self.packages:
            if not p.section.startswith("Features/") or (group and p.section != f"Features/{group}"):
                continue
            for fid in p.feature_ids:
                out.setdefault(fid, []).append(p)
        return out


@dataclass(frozen=True)
class FMListEntry:
    id: str
    path: Path
    release_type: str
    owner_name: str
    owner_type: str
    cpu_type: str
    critical: bool
    line: int = field(compare=False)


@dataclass(frozen=True)
class FMFileList:
    path: Path
    product: str | None
    entries: tuple[FMListEntry, ...]
    resolutions: tuple[str, ...] = ()
    languages: tuple[str, ...] = ()
    locales: tuple[str, ...] = ()


class _Issues:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.items: list[InputError] = []

    def add(self, what: str, el, hint: str = "") -> None:
        self.items.append(InputError(what, path=self.path, line=getattr(el, "sourceline", None), hint=hint))

    def raise_if_any(self) -> None:
        if self.items:
            raise InputErrors(self.items)


def expand_tokens(text: str, tokens: Mapping[str, str]) -> str:
    """Replace ``%NAME%``; raise KeyError(name) for one that is not defined."""
    lowered = {k.upper(): v for k, v in tokens.items()}

    def sub(m: re.Match[str]) -> str:
        key = m.group(1).upper()
        if key not in lowered:
            raise KeyError(m.group(1))
        return lowered[key]
    return _TOKEN.sub(sub, text)


def host_path(text: str) -> str:
    """A Windows-style path from an FM as a host path string (backslashes become slashes)."""
    return text.replace("\\", "/")


def _root(path: Path, expected: str, issues: _Issues):
    root = parse(path, what="feature manifest" if expected == "FeatureManifest" else "FM file list")
    what = "a feature manifest" if expected == "FeatureManifest" else "an FM file list"
    if localname(root) != expected:
        raise InputError(f"root element <{localname(root)}> is not <{expected} xmlns=\"{NS}\">",
                         path=path, line=root.sourceline, hint=f"this file is not {what}")
    ns = etree.QName(root).namespace
    if ns != NS:
        raise InputError(f"root element <{expected}> has " + (f"namespace {ns!r}" if ns else "no namespace")
                         + f", not {NS!r}", path=path, line=root.sourceline, hint=f'set xmlns="{NS}" on <{expected}>')
    return root


def _kids(el):
    return [c for c in el if isinstance(c.tag, str)]


def parse_feature_manifest(path: Path, tokens: Mapping[str, str]) -> FeatureManifest:
    path = Path(path)
    issues = _Issues(path)
    root = _root(path, "FeatureManifest", issues)
    packages: list[PackageRef] = []
    conditional: list[ConditionalFeature] = []
    groups = {"MSFeatureGroups": 0, "OEMFeatureGroups": 0}

    def expand(text: str | None, el, attr: str) -> str | None:
        if text is None:
            return None
        try:
            return expand_tokens(text, tokens)
        except KeyError as e:
            name = e.args[0]
            if name.upper() == "MSPKG_DIR":
                hint = "set <MSPkgRoot> in IoTWorkspace.xml to the Microsoft packages folder or ISO"
            else:  # the FM tokens only: the rest of the environment is nobody's business in a message
                hint = ("known: " + ", ".join(f"%{k}%" for k in FM_TOKENS if k in tokens)
                        + " (or set an environment variable of that name)")
            issues.add(f"{attr}: unknown token %{name}%", el, hint=hint)
            return None

    def package(el, section: str, selector_attr: str | None) -> None:
        if localname(el) != "PackageFile" or etree.QName(el).namespace != NS:
            issues.add(f"unknown element <{localname(el)}> in <{section}>", el, hint="only <PackageFile> belongs here")
            return
        for a in el.attrib:
            if not etree.QName(a).namespace and a not in PACKAGE_ATTRS:
                issues.add(f"<PackageFile> has unknown attribute {a!r}", el,
                           hint="allowed: Path, Name, Language, Resolution, Partition, CPUType, and the section's "
                                "selector (SOC, Device, SV, ReleaseType, Type)")
        name = expand(el.get("Name"), el, "Name")
        directory = expand(el.get("Path"), el, "Path")
        if el.get("Name") is None:
            issues.add("<PackageFile> has no Name", el, hint='add Name="%OEM_NAME%.Ns.Name.cab"')
            return
        if el.get("Path") is None:
            issues.add("<PackageFile> has no Path", el, hint='add Path="%PKGBLD_DIR%"')
            return
        if name is None or directory is None:
            return
        if "/" in name or "\\" in name or name in (".", ".."):
            issues.add(f"Name={name!r} must be a file name; put folders in Path", el,
                       hint='e.g. Path="%PKGBLD_DIR%" Name="%OEM_NAME%.Ns.Name.cab"')
            return
        selector = None
        if selector_attr is not None:
            selector = el.get(selector_attr)
            if not selector:
                issues.add(f"<PackageFile> in <{section}> has no {selector_attr}", el,
                           hint=f'add {selector_attr}="…" (the OEMInput {selector_attr} that selects it)')
                return
        cpu = el.get("CPUType")
        if cpu is not None and cpu.upper() not in CPU_TYPES:
            issues.add(f"CPUType={cpu!r} is not one of {', '.join(CPU_TYPES)}", el,
                       hint="remove CPUType (the package's own architecture is used) or use one of those")
        fids: list[str] = []
        for c in _kids(el):
            if localname(c) != "FeatureIDs":
                issues.add(f"unknown element <{localname(c)}> in <PackageFile>", c, hint="only <FeatureIDs> is allowed")
                continue
            for f in _kids(c):
                if localname(f) != "FeatureID":
                    issues.add(f"unknown element <{localname(f)}> in <FeatureIDs>", f, hint="use <FeatureID>")
                    continue
                fid = (f.text or "").strip()
                if not re.fullmatch(r"[A-Za-z0-9_.\-]+", fid):
                    issues.add(f"FeatureID {fid!r} is empty or has characters other than letters, digits, _ . -", f,
                               hint="e.g. <FeatureID>CUSTOM_CMD</FeatureID>")
                elif fid in fids:
                    issues.add(f"FeatureID {fid} is listed twice for {name}", f, hint="remove one")
                else:
                    fids.append(fid)
        if section.startswith("Features/") and not fids:
            issues.add(f"feature package {name} has no <FeatureIDs>", el,
                       hint="add <FeatureIDs><FeatureID>MY_FEATURE</FeatureID></FeatureIDs>, or move it to <BasePackages>")
        if not section.startswith("Features/") and fids:
            issues.add(f"<FeatureIDs> on a package in <{section}> has no effect", el,
                       hint="move the package under <Features><OEM>")
        try:
            lang, res = Filter.parse(el.get("Language")), Filter.parse(el.get("Resolution"))
        except ValueError as e:
            issues.add(f"Language/Resolution: {e}", el, hint="use *, (a;b) or !(a;b)")
            return
        packages.append(PackageRef(section=section, name=name, directory=host_path(directory), feature_ids=tuple(fids),
                                   selector=selector, partition=el.get("Partition"), cpu_type=cpu, language=lang,
                                   resolution=res, fip=(el.get("FeatureIdentifierPackage") or "").lower() == "true",
                                   fm=path, line=el.sourceline))

    for sec in _kids(root):
        tag = localname(sec)
        if tag in SECTIONS:
            for el in _kids(sec):
                package(el, tag, SECTIONS[tag])
        elif tag == "Features":
            for grp in _kids(sec):
                g = localname(grp)
                if g in FEATURE_GROUPS:
                    for el in _kids(grp):
                        package(el, f"Features/{g}", None)
                elif g in groups:
                    groups[g] = len(_kids(grp))
                elif g == "OEMConditionalFeatures":
                    for cf in _kids(grp):
                        fid = (cf.get("FeatureID") or "").strip()
                        if localname(cf) != "ConditionalFeature" or not fid:
                            issues.add("<OEMConditionalFeatures> holds <ConditionalFeature FeatureID=…>", cf,
                                       hint='e.g. <ConditionalFeature FeatureID="CUSTOM_SMBIOS" UpdateAction="NoUpdate"/>')
                            continue
                        conditional.append(ConditionalFeature(fid, cf.get("UpdateAction"), cf.sourceline))
                else:
                    issues.add(f"unknown element <{g}> in <Features>", grp,
                               hint="allowed: Microsoft, OEM, MSFeatureGroups, OEMFeatureGroups, OEMConditionalFeatures")
        elif tag in ("BootUILanguagePackageFile", "BootLocalePackageFile", "KeyboardPackages", "SpeechPackages"):
            continue  # Microsoft-internal sections, not used by OEM FMs
        else:
            issues.add(f"unknown element <{tag}>", sec, hint="allowed: " + ", ".join([*SECTIONS, "Features"]))
    issues.raise_if_any()
    return FeatureManifest(path=path, packages=tuple(packages), conditional_features=tuple(conditional),
                           ms_feature_groups=groups["MSFeatureGroups"], oem_feature_groups=groups["OEMFeatureGroups"])


def parse_fm_list(path: Path, *, fm_directory: Path, owner_name: str, check_exists: bool = True) -> FMFileList:
    """An FM file list; ``$(FMDirectory)`` becomes ``fm_directory``, ``OEM_NAME`` the OEM name."""
    path = Path(path)
    issues = _Issues(path)
    root = _root(path, "FMCollectionManifest", issues)
    entries: list[FMListEntry] = []
    seen: dict[str, int] = {}
    lists: dict[str, tuple[str, ...]] = {}
    for el in _kids(root):
        tag = localname(el)
        if tag == "FMs":
            for fm in _kids(el):
                if localname(fm) != "FM":
                    issues.add(f"unknown element <{localname(fm)}> in <FMs>", fm, hint="use <FM ID=… Path=…/>")
                    continue
                fid, raw = fm.get("ID"), fm.get("Path")
                if not fid or not raw:
                    issues.add("<FM> needs ID and Path", fm, hint='e.g. <FM ID="OEM" Path="$(FMDirectory)\\OEMFM.xml" …/>')
                    continue
                if fid.upper() in seen:
                    issues.add(f"FM ID {fid} is used twice (also line {seen[fid.upper()]})", fm, hint="give each FM its own ID")
                    continue
                seen[fid.upper()] = fm.sourceline
                text = raw.replace("$(FMDirectory)", str(fm_directory))
                if "$(" in text:
                    issues.add(f"Path={raw!r}: only $(FMDirectory) may be used", fm,
                               hint="use $(FMDirectory)\\Name.xml")
                    continue
                p = Path(host_path(text))
                if not p.is_absolute():
                    p = fm_directory / p
                if PureWindowsPath(text).drive:
                    issues.add(f"Path={raw!r} has a drive letter", fm, hint="use $(FMDirectory)\\Name.xml")
                    continue
                if check_exists and not p.is_file():
                    issues.add(f"FM {fid}: {p} does not exist", fm,
                               hint=f"create {p.name} next to {path.name}, or remove this <FM> line")
                    continue
                cpu = fm.get("CPUType", "")
                if cpu and cpu not in CPU_TYPES and cpu != "CPU_TYPE":
                    issues.add(f"CPUType={cpu!r} is not one of {', '.join(CPU_TYPES)} (case-sensitive)", fm,
                               hint=f'write CPUType="{cpu.upper()}"' if cpu.upper() in CPU_TYPES
                               else "use " + ", ".join(CPU_TYPES))
                    continue
                owner = (fm.get("OwnerName") or owner_name).replace("OEM_NAME", owner_name)
                entries.append(FMListEntry(id=fid, path=p, release_type=fm.get("ReleaseType", "Production"),
                                           owner_name=owner, owner_type=fm.get("OwnerType", "OEM"), cpu_type=cpu,
                                           critical=(fm.get("Critical") or "").lower() == "true", line=fm.sourceline))
        elif tag in ("SupportedResolutions", "SupportedLanguages", "SupportedLocales"):
            lists[tag] = tuple((c.text or "").strip() for c in _kids(el))
        elif tag in ("IsBuildFeatureEnabled", "BuildFeatureEnabled"):
            continue
        else:
            issues.add(f"unknown element <{tag}>", el, hint="allowed: FMs, SupportedResolutions, SupportedLanguages, "
                                                            "SupportedLocales, IsBuildFeatureEnabled")
    if not entries and not issues.items:
        issues.add("the FM file list names no FM", root, hint="add <FMs><FM ID=… Path=…/></FMs>")
    issues.raise_if_any()
    return FMFileList(path=path, product=root.get("Product"), entries=tuple(entries),
                      resolutions=lists.get("SupportedResolutions", ()), languages=lists.get("SupportedLanguages", ()),
                      locales=lists.get("SupportedLocales", ()))
