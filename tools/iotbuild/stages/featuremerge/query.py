"""Questions about features, answered from the workspace's FMs and Microsoft's (the kit's
Get-IoTProductFeatureIDs, Get-IoTProductPackagesForFeature, Test-IoTFeatures, Test-IoTPackages)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ...models.featuremanifest import FeatureManifest, PackageRef, parse_feature_manifest
from ...models.workspace import Workspace
from .load import load
from .mspackages import open_ms_packages
from .sources import fm_sets, tokens


@dataclass
class FeatureIndex:
    """Every feature ID of the workspace (and of Microsoft's FMs) with the packages that make it."""

    features: dict[str, list[PackageRef]] = field(default_factory=dict)  # key: upper-case ID
    owners: dict[str, str] = field(default_factory=dict)  # key → "OEM" | "Microsoft"
    spelled: dict[str, str] = field(default_factory=dict)  # key → ID as written
    fms: list[FeatureManifest] = field(default_factory=list)

    def add(self, fm: FeatureManifest, owner_default: str) -> None:
        self.fms.append(fm)
        for group in ("OEM", "Microsoft"):
            for fid, refs in fm.features(group).items():
                key = fid.upper()
                self.features.setdefault(key, []).extend(r for r in refs if not r.fip)
                self.owners.setdefault(key, group if owner_default == "OEM" else "Microsoft")
                self.spelled.setdefault(key, fid)

    def lookup(self, fid: str) -> tuple[str, list[PackageRef]] | None:
        """Exact ID first; then the other spelling of the kit's hidden ``OEM_`` prefix (see fip.py)."""
        key = fid.upper()
        if key in self.features:
            return self.spelled[key], self.features[key]
        alt = key[4:] if key.startswith("OEM_") else f"OEM_{key}"
        if alt in self.features:
            return self.spelled[alt], self.features[alt]
        return None


def feature_index(ws: Workspace) -> FeatureIndex:
    idx = FeatureIndex()
    ms = open_ms_packages(ws)
    try:
        toks = tokens(ws, ms.package_dir if ms else None)
        for ls in load(fm_sets(ws, "all"), toks, ws.oem_name):
            for lf in ls.fms:
                idx.add(lf.fm, "OEM")
        for p in (ms.fm_files if ms else []):
            idx.add(parse_feature_manifest(p, {**toks, "MSPKG_DIR": str(ms.package_dir)}), "Microsoft")  # type: ignore[union-attr]
    finally:
        if ms is not None:
            ms.close()
    return idx


def fm_for(idx: FeatureIndex, path: Path) -> FeatureManifest | None:
    return next((fm for fm in idx.fms if fm.path.name.lower() == path.name.lower()), None)
