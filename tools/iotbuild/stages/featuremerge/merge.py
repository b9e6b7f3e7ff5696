"""``buildfm``: load and cross-check the FMs, build and verify their packages, then write InputFMs,
feature identifier packages and MergedFMs (iot-adk-addonkit.md §4.3). Nothing is written until every
check has passed; each file appears atomically."""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass, field
from pathlib import Path

from lxml import etree

from ...models.featuremanifest import NS, expand_tokens, host_path
from ...models.workspace import Workspace
from ...outputs import write_atomic
from ...signing.identity import load_signer
from ...xmlsafe import parse
from . import fip as fipmod
from .load import LoadedFM, LoadedSet, load
from .mspackages import open_ms_packages
from .packages import CheckedPackage, locate, verify
from .sources import fm_sets, tokens


@dataclass
class FmResult:
    target: str
    merged_fms: list[Path] = field(default_factory=list)
    input_fms: list[Path] = field(default_factory=list)
    fips: list[Path] = field(default_factory=list)
    packages: int = 0
    logs: list[Path] = field(default_factory=list)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, object]:
        return {"target": self.target, "merged_fms": [str(p) for p in self.merged_fms],
                "input_fms": [str(p) for p in self.input_fms], "feature_identifier_packages": [str(p) for p in self.fips],
                "packages_checked": self.packages, "logs": [str(p) for p in self.logs],
                "seconds": round(self.seconds, 3)}


def merged_dir(ws: Workspace) -> Path:
    return ws.build_dir / "MergedFMs"


def input_dir(ws: Workspace) -> Path:
    return ws.build_dir / "InputFMs"


def buildfm(ws: Workspace, target: str, *, jobs: int | None = None, build_packages: bool = True) -> FmResult:
    t0 = time.monotonic()
    result = FmResult(target=target)
    ms = open_ms_packages(ws)
    try:
        toks = tokens(ws, ms.package_dir if ms else None)
        loaded = load(fm_sets(ws, target), toks, ws.oem_name)
        located = locate(ws, loaded, ms, build=build_packages)
        checked = verify(ws, loaded, located, ms, jobs=jobs)
    finally:
        if ms is not None:
            ms.close()
    # Every check passed: write.
    signer = load_signer(ws.signing, oem_name=ws.oem_name, now=dt.datetime.now(dt.timezone.utc))
    for ls in loaded:
        fips = fipmod.plan(list(ls.fms), checked)
        fip_paths = {f.name: fipmod.build(f, out_dir=ws.pkg_dir, version=ws.bsp_version, cpu_type=ws.arch.cpu_type,
                                          signer=signer) for f in fips}
        result.fips.extend(fip_paths.values())
        result.input_fms.extend(write_input_fms(ws, ls, toks))
        for lf in ls.fms:
            result.merged_fms.append(write_merged_fm(ws, lf, toks, [f for f in fips if f.fm is lf]))
        result.logs.append(write_log(ws, ls, fips, checked))
    result.packages = len(checked)
    result.seconds = time.monotonic() - t0
    return result


def write_input_fms(ws: Workspace, ls: LoadedSet, toks: dict[str, str]) -> list[Path]:
    """Token-substituted copies, as the kit fed FeatureMerger (§4.3 step 2), re-written as UTF-8."""
    out = []
    lst_text = ls.fmset.list_path.read_text(encoding="utf-8-sig").replace("OEM_NAME", ws.oem_name)
    target = input_dir(ws) / ls.fmset.list_path.name
    write_atomic(target, lst_text.encode("utf-8"))
    out.append(target)
    for lf in ls.fms:
        text = expand_tokens(lf.fm.path.read_text(encoding="utf-8-sig"), toks)
        target = input_dir(ws) / lf.fm.path.name
        write_atomic(target, text.encode("utf-8"))
        out.append(target)
    return out


def _pf(parent, name: str, directory: Path, **attrs: str):
    el = etree.SubElement(parent, f"{{{NS}}}PackageFile")
    el.set("Path", str(directory))
    el.set("Name", name)
    for k, v in attrs.items():
        el.set(k, v)
    return el


def write_merged_fm(ws: Workspace, lf: LoadedFM, toks: dict[str, str], fips: list[fipmod.Fip]) -> Path:
    """The FM with every path resolved and the FIPs listed (``FeatureIdentifierPackage="true"``)."""
    root = parse(lf.fm.path, what="feature manifest")
    for el in root.iter(f"{{{NS}}}PackageFile"):
        for attr in ("Path", "Name"):
            if el.get(attr) is not None:
                el.set(attr, host_path(expand_tokens(el.get(attr), toks)))

    def section(tag: str):
        found = root.find(f"{{{NS}}}{tag}")
        if found is None:
            found = etree.SubElement(root, f"{{{NS}}}{tag}")
        return found

    for f in fips:
        attrs = {"FeatureIdentifierPackage": "true"}
        if f.partition != "MainOS":
            attrs["Partition"] = f.partition
        name = f"{f.name}.cab"
        if f.section == "BasePackages":
            _pf(section("BasePackages"), name, ws.pkg_dir, **attrs)
        elif f.section == "Features/OEM":
            features = section("Features")
            oem = features.find(f"{{{NS}}}OEM")
            if oem is None:
                oem = etree.SubElement(features, f"{{{NS}}}OEM")
            el = _pf(oem, name, ws.pkg_dir, **attrs)
            ids = etree.SubElement(el, f"{{{NS}}}FeatureIDs")
            etree.SubElement(ids, f"{{{NS}}}FeatureID").text = f.feature_id
        else:
            sel = "SOC" if f.section == "DeviceLayoutPackages" else "Device"
            _pf(section(f.section), name, ws.pkg_dir, **{sel: f.selector or "", **attrs})
    etree.indent(root, space="  ")
    data = b'<?xml version="1.0" encoding="utf-8"?>\n' + etree.tostring(root, encoding="utf-8") + b"\n"
    target = merged_dir(ws) / lf.fm.path.name
    write_atomic(target, data)
    return target


def write_log(ws: Workspace, ls: LoadedSet, fips: list[fipmod.Fip], checked: dict[str, CheckedPackage]) -> Path:
    lines = [f"buildfm {ls.fmset.key}: FM file list {ls.fmset.list_path}"]
    for lf in ls.fms:
        lines.append(f"FM {lf.entry.id}: {lf.fm.path} ({len(lf.fm.packages)} package entries, owner {lf.entry.owner_name})")
        for ref in lf.fm.packages:
            cp = checked.get(ref.name.lower())
            state = f"ok {cp.partition} sha256 {cp.sha256[:16]}…" + (" TEST ONLY" if cp.test_only else "") if cp else "?"
            lines.append(f"  {ref.section:26} {ref.name}  [{state}]  ({ref.fm.name}:{ref.line})")
    lines.append("feature identifier packages:")
    lines.extend(f"  {f.name}.cab  ({len(f.members)} packages)" for f in fips)
    target = ws.build_dir / f"FIPPackage_{ls.fmset.key}.log"
    write_atomic(target, ("\n".join(lines) + "\n").encode())
    return target
