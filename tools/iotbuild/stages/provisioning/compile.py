"""Compile an answer file into what a ``.ppkg`` holds: ``.provxml`` documents, ``RunTime.xml`` and file assets.

Reference: provisioning-ppkg.md §1.2–§1.4, modelled on the real package in shared/samples/ppkg/compiled-acer:

* every setting becomes a ``parm`` (CSP characteristic path, name, datatype, converted value) taken from the
  settings catalog (:mod:`.catalog`); settings of one *group* (e.g. all leaves of one ``Accounts/Users/User``)
  share one ``<i>__<group>.provxml``, numbered in document order across the package;
* ``RunTime.xml`` lists one ``ConfigurationSet`` per Common group, and one per (Variant group × TargetState
  the Variant applies under) carrying that TargetState's conditions as attributes, spelled as written;
* a setting whose value is a file (CommandFile, CertificatePath, ApplicationFile…) becomes an asset
  ``DataAsset/2/<n>_<h>/<file>`` (``h`` = Base64 SHA-256 of the content with ``/`` → ``.``) and a parm under
  ``Provisioning/Assets/{PackageID}/<asset path>``;
* ``SettingsGroup`` is a version-5 UUID per group (Microsoft's derivation is unknown, §1.3, so iotbuild uses
  its own namespace) with ``_0``, ``_1``… on repeated occurrences, as observed.

Everything that can be wrong with a setting (unknown name, bad value, missing asset) is found here, before any
output is written, and reported together.
"""

from __future__ import annotations

import base64
import hashlib
import re
import uuid
from collections.abc import Sequence
from copy import deepcopy
from dataclasses import dataclass, field
from pathlib import Path, PureWindowsPath
from xml.sax.saxutils import escape

from lxml import etree

from ...errors import InputError, InputErrors
from ...models.customizations import (PROVISIONING_NS, ROOT_MISSPELLED, ROOT_NAME, Condition, Customizations,
                                      Section, SectionKind, Setting)
from ...xmlsafe import parse_bytes
from .catalog import CatalogEntry, SettingsCatalog, expand, load_catalog

SETTINGS_GROUP_NS = uuid.uuid5(uuid.NAMESPACE_URL, "iotbuild:provisioning:settings-group")
BOM = "\ufeff"
CRLF = "\r\n"
_FILE_BAD = re.compile(r'[<>:"/\\|?*\x00-\x1f]')


@dataclass(frozen=True)
class Parm:
    characteristic: tuple[str, ...]
    name: str
    value: str
    datatype: str
    settings_path: str


@dataclass(frozen=True)
class Asset:
    ordinal: int
    source: Path
    file_name: str
    digest_b64: str
    asset_path: str       # "/ProvisioningCommands/PrimaryContext/Command/0/CommandFile"
    leaf: str             # "CommandFile"

    @property
    def folder(self) -> str:
        return f"{self.ordinal}_{self.digest_b64}"

    @property
    def key(self) -> str:
        return f"{self.folder}\\{self.file_name}"


@dataclass
class ProvGroup:
    """One ``.provxml``: the settings of one group in one section."""

    ordinal: int
    name: str
    template: str
    section: Section
    parms: list[Parm] = field(default_factory=list)
    settings: list[Setting] = field(default_factory=list)

    @property
    def file_name(self) -> str:
        return f"{self.ordinal}__{_FILE_BAD.sub('_', self.name.replace('/', '_'))}.provxml"

    @property
    def uuid(self) -> str:
        return str(uuid.uuid5(SETTINGS_GROUP_NS, self.template))


@dataclass(frozen=True)
class RunTimeEntry:
    group: ProvGroup
    settings_group: str
    conditions: tuple[Condition, ...] = ()

    @property
    def data(self) -> str:
        return f"$(_prov)\\RunTime\\{self.group.file_name}"


@dataclass(frozen=True)
class CompiledPackage:
    customizations: Customizations
    groups: tuple[ProvGroup, ...]
    entries: tuple[RunTimeEntry, ...]
    assets: tuple[Asset, ...]
    uncompiled: tuple[Setting, ...]   # unknown settings carried in the answer file only (--allow-unknown-settings)


def compile_package(cust: Customizations, *, catalog: SettingsCatalog | None = None,
                    allow_unknown: bool = False, asset_dirs: Sequence[Path] = ()) -> CompiledPackage:
    catalog = catalog or load_catalog()
    errors: list[InputError] = []
    groups: dict[tuple[int, str], ProvGroup] = {}
    assets: list[Asset] = []
    uncompiled: list[Setting] = []
    base_dir = cust.path.parent
    for section in cust.sections:
        if section.kind is SectionKind.PROFILE:
            errors.append(InputError("COSA <Profile>/<Replace> sections cannot be built", path=cust.path,
                                     line=section.line, hint="use <Variant> with <TargetRefs> and <Settings>"))
            continue
        for setting in section.settings:
            entry = catalog.get(setting.schema_path)
            if entry is None:
                if allow_unknown:
                    uncompiled.append(setting)
                    continue
                errors.append(InputError(f"unknown setting {setting.schema_path}", path=cust.path, line=setting.line,
                                         hint=_unknown_hint(setting.schema_path, catalog)))
                continue
            try:
                if entry.asset:
                    asset = _asset(setting, entry, len(assets), base_dir, asset_dirs, cust)
                    assets.append(asset)
                    parm = Parm(("Provisioning", "Assets", cust.package.braced_id, asset.asset_path), asset.key,
                                asset.file_name, "string", setting.schema_path)
                    template = entry.group or entry.asset.lstrip("/")
                    gname = asset.asset_path.strip("/") if not entry.group else expand(entry.group, setting)
                else:
                    value = entry.convert(setting)
                    value = expand(entry.value, setting, value=value, package_id=cust.package.braced_id)
                    csp = tuple(expand(entry.csp, setting, package_id=cust.package.braced_id).split("/"))
                    parm = Parm(csp, expand(entry.parm, setting), value, entry.type, setting.schema_path)
                    template, gname = entry.group_template, expand(entry.group_template, setting)
            except InputError as e:
                e.path = e.path or str(cust.path)
                errors.append(e)
                continue
            key = (section.index if section.kind is SectionKind.VARIANT else -1, gname)
            group = groups.get(key)
            if group is None:
                group = groups[key] = ProvGroup(len(groups), gname, template, section)
            group.parms.append(parm)
            group.settings.append(setting)
    if errors:
        raise InputErrors(errors)
    ordered = list(groups.values())
    entries: list[RunTimeEntry] = []
    seen: dict[str, int] = {}

    def add(group: ProvGroup, conditions: tuple[Condition, ...]) -> None:
        n = seen.get(group.uuid, -1)
        seen[group.uuid] = n + 1
        entries.append(RunTimeEntry(group, group.uuid if n < 0 else f"{group.uuid}_{n}", conditions))

    for g in ordered:
        if g.section.kind is SectionKind.COMMON:
            add(g, ())
    for section in cust.variants:
        mine = [g for g in ordered if g.section is section]
        for state in cust.states_of(section):
            for g in mine:
                add(g, state.conditions)
    return CompiledPackage(cust, tuple(ordered), tuple(entries), tuple(assets), tuple(uncompiled))


def _unknown_hint(path: str, catalog: SettingsCatalog) -> str:
    parent = path.rsplit("/", 1)[0]
    near = sorted(p for p in catalog.entries if p.rsplit("/", 1)[0] == parent)
    also = f"known under {parent}: " + ", ".join(p.rsplit("/", 1)[1] for p in near) + "; " if near else ""
    return (f"{also}check the spelling against iotbuild/data/settings_catalog.json, or pass "
            "--allow-unknown-settings to carry it in the answer file without compiling it")


_WINDOWS_ABS = re.compile(r"^(?:[A-Za-z]:[\\/]|\\\\)")


def _asset(setting: Setting, entry: CatalogEntry, ordinal: int, base_dir: Path, asset_dirs: Sequence[Path],
           cust: Customizations) -> Asset:
    """Find the file a setting names: relative to the answer file, or (a Windows path) by name in ``asset_dirs``."""
    raw = setting.value
    if not raw:
        raise InputError(f"{setting.schema_path} names no file", line=setting.line,
                         hint="give the file's path relative to the answer file")
    if _WINDOWS_ABS.match(raw):
        name = PureWindowsPath(raw).name
        found = next((d / name for d in asset_dirs if (d / name).is_file()), None)
        if found is None:
            where = ", ".join(str(d) for d in asset_dirs) or "no --assets folder given"
            raise InputError(f"{setting.schema_path}: {raw!r} is a path on a Windows build machine", line=setting.line,
                             hint=f"copy {name} next to the answer file and write just {name!r}, or pass --assets "
                                  f"DIR holding it (looked in: {where})")
        source = found
    else:
        rel = Path(raw.replace("\\", "/"))
        source = rel if rel.is_absolute() else base_dir / rel
        name = source.name
        if not source.is_file():
            raise InputError(f"{setting.schema_path}: file {raw!r} not found (looked for {source})", line=setting.line,
                             hint="put the file next to the answer file or correct the path")
    h = hashlib.sha256()
    with open(source, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    digest = base64.b64encode(h.digest()).decode().replace("/", ".")
    asset_path = expand(entry.asset, setting)
    return Asset(ordinal, source, name, digest, asset_path, setting.segments[-1].name)


# -- rendering -----------------------------------------------------------------------------------------------

def _attr(value: str) -> str:
    return escape(value, {'"': "&quot;"})


def _doc(lines: list[str], *, bom: bool, decl: str) -> bytes:
    return ((BOM if bom else "") + CRLF.join([decl, *lines])).encode("utf-8")


def render_provxml(group: ProvGroup) -> bytes:
    """An OMA-CP ``wap-provisioningdoc``: nested characteristics, one ``parm`` per setting (§1.3)."""
    tree: dict = {}
    order: list = []
    for p in group.parms:
        node = tree
        for ctype in p.characteristic:
            node = node.setdefault(ctype, {})
        node.setdefault(None, []).append(p)
        order.append(p)
    lines = ["<wap-provisioningdoc>"]

    def emit(node: dict, depth: int) -> None:
        pad = "  " * depth
        for p in node.get(None, []):
            lines.append(f'{pad}<parm SettingsPath="{_attr(p.settings_path)}" name="{_attr(p.name)}" '
                         f'value="{_attr(p.value)}" datatype="{p.datatype}" />')
        for ctype, child in node.items():
            if ctype is None:
                continue
            lines.append(f'{pad}<characteristic type="{_attr(ctype)}">')
            emit(child, depth + 1)
            lines.append(f"{pad}</characteristic>")

    emit(tree, 1)
    lines.append("</wap-provisioningdoc>")
    return _doc(lines, bom=True, decl='<?xml version="1.0" encoding="utf-8" standalone="yes"?>')


def render_runtime(entries: Sequence[RunTimeEntry]) -> bytes:
    lines = ['<ConfigurationSource Version="1.0">']
    for e in entries:
        conds = "".join(f' {c.name}="{_attr(c.value)}"' for c in e.conditions)
        lines.append(f'  <ConfigurationSet Type="provxml" SettingsGroup="{e.settings_group}" '
                     f'Data="{_attr(e.data)}"{conds} />')
    lines.append("</ConfigurationSource>")
    return _doc(lines, bom=True, decl='<?xml version="1.0" encoding="utf-8"?>')


def render_master_datastore() -> bytes:
    return _doc(['<ConfigurationSourceList Version="1.0">',
                 '  <ConfigurationSource Name="RunTime" Path="$(_prov)\\RunTime.xml">',
                 "    <EventList>", '      <Event Name="RunTime" />', "    </EventList>",
                 "  </ConfigurationSource>", "</ConfigurationSourceList>"],
                bom=True, decl='<?xml version="1.0" encoding="utf-8"?>')


def render_elements(kind: str, index: int, metadata: Sequence[tuple[str, str]] = ()) -> bytes:
    """The three index files (CommonSettings.xml, Multivariant.xml, DataAsset.xml): no BOM, as observed."""
    lines = [f'<Elements Type="{kind}">', f'  <Element Index="{index}">']
    lines += [f'    <Metadata Key="{_attr(k)}" Value="{_attr(v)}" />' for k, v in metadata]
    lines += ["  </Element>", "</Elements>"]
    return _doc(lines, bom=False, decl='<?xml version="1.0" encoding="UTF-8"?>')


def render_data_asset_index(assets: Sequence[Asset]) -> bytes:
    meta = [("Name", assets[0].leaf)] if assets else []
    meta += [(a.key, a.asset_path) for a in assets]
    return render_elements("DataAsset", 2, meta)


def render_answer_file(cust: Customizations) -> bytes:
    """``CommonSettings/1/AnswerFile.xml``: the Common part only, list-item ``Name`` attributes dropped (§1.2)."""
    nsmap = {None: PROVISIONING_NS}
    settings = etree.Element(f"{{{PROVISIONING_NS}}}Settings", nsmap=nsmap)
    if cust.common is not None:
        src = parse_bytes(cust.raw, path=cust.path, what="answer file")
        common = next(iter(src.iter(f"{{{PROVISIONING_NS}}}Common")), None)
        cust_el = etree.SubElement(settings, f"{{{PROVISIONING_NS}}}Customizations")
        if common is not None:
            copy = deepcopy(common)
            for el in copy.iter():
                if isinstance(el.tag, str) and "Name" in el.attrib:
                    del el.attrib["Name"]
            cust_el.append(copy)
    etree.indent(settings, space="  ")
    text = etree.tostring(settings, encoding="unicode")
    return _doc(text.split("\n"), bom=True, decl='<?xml version="1.0" encoding="utf-8"?>')


def answer_file_copy(cust: Customizations) -> bytes:
    """``Multivariant/0/customizations.xml``: the input as it is, with the root spelled correctly (§2.1)."""
    if cust.root_name != ROOT_MISSPELLED:
        return cust.raw
    text = cust.raw.decode("utf-8-sig")
    text = re.sub(rf"<(/?){ROOT_MISSPELLED}\b", rf"<\g<1>{ROOT_NAME}", text)
    return (BOM + text).encode("utf-8")
