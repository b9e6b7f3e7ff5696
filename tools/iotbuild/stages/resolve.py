"""OEMInput + feature manifests → the product's package set (iot-adk-addonkit.md §4.1, §5).

Selected, in this order: the BasePackages of every listed FM; the OEM and Microsoft features the OEMInput
names; DeviceLayoutPackages by SOC; OEMDevicePlatformPackages by Device; SOCPackages, SVPackages and
DeviceSpecificPackages by SOC, SV and Device; ReleasePackages by ReleaseType. Language and resolution
filters are applied. An undefined feature is an error (the kit only warned and built the image anyway).
Feature identifier packages come along with what they identify.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import InputError, InputErrors
from ..models.featuremanifest import FeatureManifest, PackageRef, parse_feature_manifest
from ..models.oeminput import OEMInput, parse_oeminput
from ..models.workspace import Workspace
from .featuremerge.mspackages import open_ms_packages
from .featuremerge.query import FeatureIndex
from .featuremerge.sources import tokens


@dataclass
class Resolution:
    oeminput: OEMInput
    fms: list[FeatureManifest]
    packages: list[PackageRef] = field(default_factory=list)  # in selection order, one per cab name
    reasons: dict[str, str] = field(default_factory=dict)  # cab name (lower) → why it was selected

    def to_dict(self) -> dict[str, object]:
        return {"oeminput": str(self.oeminput.path), "fms": [str(f.path) for f in self.fms],
                "packages": [{"name": p.name, "path": p.location, "partition": p.partition or "MainOS",
                              "why": self.reasons[p.name.lower()], "fm": str(p.fm), "line": p.line}
                             for p in self.packages]}


def oeminput_path(ws: Workspace, product: str, config: str) -> Path:
    cfg = {"test": "Test", "retail": "Retail", "production": "Retail"}.get(config.lower())
    if cfg is None:
        raise InputError(f"configuration {config!r} is not Test or Retail", hint="use Test or Retail")
    pdir = ws.products_dir / product
    if not pdir.is_dir():
        known = sorted(d.name for d in ws.products_dir.iterdir() if d.is_dir()) if ws.products_dir.is_dir() else []
        raise InputError(f"product {product!r} does not exist in {ws.products_dir}",
                         hint="known products: " + (", ".join(known) or "none") + "; create one with invoke newproduct")
    for cand in pdir.iterdir():
        if cand.name.lower() == f"{cfg}OEMInput.xml".lower():
            return cand
    raise InputError(f"{pdir / (cfg + 'OEMInput.xml')} does not exist",
                     hint=f"add {cfg}OEMInput.xml to the product (invoke newproduct copies the board's samples)")


def environment(ws: Workspace) -> dict[str, str]:
    ms_root = str(ws.ms_package_root) if ws.ms_package_root else ""
    return {**os.environ, **tokens(ws, None), "AKROOT": ms_root, "BLD_DIR": str(ws.build_dir),
            "IOTWKSPACE": str(ws.root)}


def load_product(ws: Workspace, product: str, config: str) -> tuple[OEMInput, list[FeatureManifest], FeatureIndex]:
    path = oeminput_path(ws, product, config)
    oi = parse_oeminput(path, environment(ws))
    issues: list[InputError] = []
    fms: list[FeatureManifest] = []
    idx = FeatureIndex()
    for ref in oi.additional_fms:
        p = ref.path
        if p is None or not p.is_file():
            merged = "MergedFMs" in ref.text
            issues.append(InputError(f"AdditionalFM {ref.text} ({p}) does not exist", path=path, line=ref.line,
                                     hint="run invoke buildfm all first" if merged else "fix the path"))
            continue
        try:
            fm = parse_feature_manifest(p, tokens(ws, None))
        except InputErrors as e:
            issues.extend(e.errors)
            continue
        fms.append(fm)
        idx.add(fm, "OEM")
    ms = open_ms_packages(ws)
    try:
        for p in (ms.fm_files if ms else []):
            fm = parse_feature_manifest(p, {**tokens(ws, ms.package_dir)})  # type: ignore[union-attr]
            idx.add(fm, "Microsoft")
    finally:
        if ms is not None:
            ms.close()
    if issues:
        raise InputErrors(issues)
    return oi, fms, idx


# Microsoft features the image step implements itself when no Microsoft FM defines them (no MSPkgRoot):
# they are image settings, not content. IOT_ENABLE_TESTSIGNING lets Windows load test-signed code; the image
# records it (stages/imggen/rules.py) and the release rules require it for test-signed packages.
BUILTIN_FEATURES = {"IOT_ENABLE_TESTSIGNING": "test signing enabled (recorded in the SYSTEM hive by buildimage)"}


def check_features(oi: OEMInput, idx: FeatureIndex, fms: list[FeatureManifest]) -> list[InputError]:
    issues: list[InputError] = []
    for group, refs in (("OEM", oi.oem_features), ("Microsoft", oi.microsoft_features)):
        for f in refs:
            hit = idx.lookup(f.id)
            if hit is None and group == "Microsoft" and f.id.upper() in BUILTIN_FEATURES:
                continue
            if hit is None:
                hint = "define it in an FM listed under AdditionalFMs, then run invoke buildfm"
                if group == "Microsoft" and not any(o == "Microsoft" for o in idx.owners.values()):
                    hint = "Microsoft features are defined in Microsoft's FMs: set <MSPkgRoot> to the IoT Core packages"
                from difflib import get_close_matches
                near = get_close_matches(f.id.upper(), [k for k, o in idx.owners.items() if o == group], n=3, cutoff=0.8)
                if near:
                    hint = f"did you mean {' or '.join(idx.spelled[k] for k in near)}? Otherwise " + hint
                issues.append(InputError(f"{group} feature {f.id} is not defined by any feature manifest",
                                         path=oi.path, line=f.line, hint=hint))
            elif idx.owners.get(hit[0].upper()) != group:
                issues.append(InputError(f"feature {f.id} is a{'n' if group == 'Microsoft' else ''} "
                                         f"{idx.owners.get(hit[0].upper())} feature, listed under <{group}>",
                                         path=oi.path, line=f.line,
                                         hint=f"move it under <Features><{idx.owners.get(hit[0].upper())}>"))
    for section, value, tag in (("DeviceLayoutPackages", oi.soc, "SOC"), ("OEMDevicePlatformPackages", oi.device, "Device")):
        choices = {r.selector for fm in fms for r in fm.section(section) if r.selector}
        if not any(c.lower() == value.lower() for c in choices):
            issues.append(InputError(f"{tag} {value!r} selects no {section} entry in the listed FMs",
                                     path=oi.path, line=oi.lines.get(tag),
                                     hint="known: " + (", ".join(sorted(choices)) or "none — list the board's merged FM "
                                                       "under AdditionalFMs")))
    return issues


def resolve(ws: Workspace, product: str, config: str) -> Resolution:
    oi, fms, idx = load_product(ws, product, config)
    issues = check_features(oi, idx, fms)
    if issues:
        raise InputErrors(issues)
    res = Resolution(oeminput=oi, fms=fms)
    wanted = {f.id.upper() for f in (*oi.oem_features, *oi.microsoft_features)}
    wanted |= {(k[4:] if k.startswith("OEM_") else f"OEM_{k}") for k in wanted}
    langs = [*oi.languages.user_interface] or ["en-us"]
    resolutions = [*oi.resolutions] or ["*"]
    selectors = {"DeviceLayoutPackages": oi.soc, "OEMDevicePlatformPackages": oi.device, "SOCPackages": oi.soc,
                 "SVPackages": oi.sv or "", "DeviceSpecificPackages": oi.device,
                 "ReleasePackages": "Production" if oi.release_type.value == "Production" else "Test"}

    def take(ref: PackageRef, why: str) -> None:
        if not any(ref.language.matches(lang) for lang in langs):
            return
        if resolutions != ["*"] and not any(ref.resolution.matches(r) for r in resolutions):
            return
        key = ref.name.lower()
        if key not in res.reasons:
            res.reasons[key] = why
            res.packages.append(ref)

    for fm in fms:
        for ref in fm.packages:
            if ref.section == "BasePackages":
                take(ref, f"BasePackages of {fm.path.name}")
            elif ref.section.startswith("Features/"):
                hit = [fid for fid in ref.feature_ids if fid.upper() in wanted]
                if hit:
                    take(ref, f"feature {hit[0]}")
            elif ref.section in selectors and ref.selector and ref.selector.lower() == selectors[ref.section].lower():
                take(ref, f"{ref.section} {ref.selector}")
    return res
