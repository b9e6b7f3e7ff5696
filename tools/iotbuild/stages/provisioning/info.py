"""Read a ``.ppkg`` — ours or one built by Windows Configuration Designer — without Windows.

A ppkg is a WIM (provisioning-ppkg.md §1.1): the metadata is the image XML (NAME, VERSION, ALTITUDE,
PACKAGEID, NOTES), the settings are in the embedded answer file ``Multivariant/0/customizations.xml`` (§1.2),
and the compiled form in ``Multivariant/0/Prov/RunTime.xml``. The answer file is read leniently
(``strict=False``): a package someone else built may hold settings or sections iotbuild does not build.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ...errors import FormatError, InputError
from ...formats import wim
from ...models.customizations import Customizations, load_customizations, parse_customizations
from ...xmlsafe import localname, parse_bytes

ANSWER_FILE = "/Multivariant/0/customizations.xml"
RUNTIME = "/Multivariant/0/Prov/RunTime.xml"


@dataclass(frozen=True)
class CompiledEntry:
    kind: str                   # ConfigurationSet | ProfileSet
    data: str
    settings_group: str
    conditions: dict[str, str]


@dataclass(frozen=True)
class PpkgInfo:
    path: Path
    header: wim.WimHeader
    properties: dict[str, str]
    members: tuple[str, ...]
    customizations: Customizations | None
    compiled: tuple[CompiledEntry, ...]
    warnings: tuple[str, ...] = field(default=())

    def to_dict(self) -> dict[str, object]:
        c = self.customizations
        out: dict[str, object] = {
            "file": str(self.path),
            "wim": {"version": hex(self.header.version), "flags": hex(self.header.flags),
                    "compression": self.header.compression, "chunk_size": self.header.chunk_size,
                    "images": self.header.image_count},
            "metadata": self.properties,
            "members": list(self.members),
            "runtime_entries": [{"type": e.kind, "data": e.data, "settings_group": e.settings_group,
                                 "conditions": e.conditions} for e in self.compiled],
            "warnings": list(self.warnings),
        }
        if c is not None:
            out["package"] = {"id": c.package.braced_id, "name": c.package.name, "version": c.package.version,
                              "owner_type": c.package.owner_type.value, "rank": c.package.rank,
                              "altitude": c.package.altitude}
            out["settings"] = [{"section": sec.label, "setting": s.path, "value": s.value,
                                "targets": list(sec.target_refs)} for sec, s in c.all_settings()]
            out["targets"] = [{"id": t.id, "states": [{c2.name: c2.value for c2 in st.conditions}
                                                      for st in t.states]} for t in c.targets.values()]
            out["variants"] = [{"name": v.label, "targets": list(v.target_refs), "settings": len(v.settings)}
                               for v in c.variants]
        return out


def read_ppkg(path: Path) -> PpkgInfo:
    if not path.is_file():
        raise InputError("package not found", path=path, hint="give the path of a .ppkg file")
    if not wim.is_wim(path):
        raise FormatError("not a provisioning package: no WIM magic (MSWIM) at offset 0", offset=0, path=path,
                          hint="a .ppkg is a WIM file; check that this is a built package")
    meta = wim.info(path)
    if not meta.images:
        raise FormatError("the WIM holds no image", path=path, hint="a provisioning package has one image")
    props = wim.custom_properties(meta.images[0])
    members = tuple(wim.list_files(path))
    warnings: list[str] = []
    cust = None
    if ANSWER_FILE in members:
        data = wim.read_member(path, ANSWER_FILE) or b""
        try:
            cust = parse_customizations(data, path=f"{path}:{ANSWER_FILE}", strict=False)
            warnings += [str(w) for w in cust.warnings]
        except InputError as e:
            warnings.append(f"embedded answer file not readable: {e}")
    else:
        warnings.append(f"no {ANSWER_FILE} in the package: settings are listed from RunTime.xml only")
    compiled: list[CompiledEntry] = []
    if RUNTIME in members:
        compiled = _runtime_entries(wim.read_member(path, RUNTIME) or b"", f"{path}:{RUNTIME}")
    return PpkgInfo(path, meta.header, props, members, cust, tuple(compiled), tuple(warnings))


def _runtime_entries(data: bytes, where: str) -> list[CompiledEntry]:
    root = parse_bytes(data, path=where, what="RunTime.xml")
    out = []
    fixed = {"Type", "SettingsGroup", "Data"}
    for el in root:
        if not isinstance(el.tag, str):
            continue
        conds = {k: v for k, v in el.attrib.items() if k not in fixed}
        out.append(CompiledEntry(localname(el), el.get("Data", ""), el.get("SettingsGroup", ""), conds))
    return out


def load_source(path: Path) -> Customizations:
    """A package for the simulator: a ``.ppkg`` (its embedded answer file, read leniently) or an answer file."""
    if path.is_file() and wim.is_wim(path):
        data = wim.read_member(path, ANSWER_FILE)
        if data is None:
            raise FormatError(f"the package has no {ANSWER_FILE}", path=path,
                              hint="simulate with the package's customizations.xml instead")
        return parse_customizations(data, path=f"{path}:{ANSWER_FILE}", strict=False)
    return load_customizations(path)
