"""Feature identifier packages (FIPs): small signed SPKG cabs that record which packages make a feature.

Naming as FeatureMerger's (iot-adk-addonkit.md §4.3): ``<Owner>.<Key>.<FM ID>.<Partition>`` with Key
``BASE``, ``OEM_<FeatureID>``, ``DEVICELAYOUT_<SOC>`` or ``OEMDEVICEPLATFORM_<DEVICE>`` (upper case).
FeatureMerger prefixed ``OEM_`` to every OEM feature ID, so an ID already written as ``OEM_X`` became
``OEM_OEM_X`` (issue #203 in the kit). iotbuild does not double the prefix: ``OEM_X`` and ``X`` both give
the key ``OEM_X``, and feature lookups accept either spelling.

Each FIP carries one file, ``\\Windows\\ImageUpdate\\FeatureIdentifiers\\<name>.xml``, listing the feature
and the SHA-256 of each member cab, so an image build can check it was given the packages merged here.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

from lxml import etree

from ...models.wmxml import OwnerType, PackageDefinition, Partition, ReleaseType
from ..pkggen.content import PackageContent, Payload
from ..pkggen.spkg import build_spkg
from .load import LoadedFM, partition_of
from .packages import CheckedPackage

FIP_NS = "urn:iotbuild:FeatureIdentifier.v1"
FIP_DIR = r"\Windows\ImageUpdate\FeatureIdentifiers"


@dataclass(frozen=True)
class Fip:
    name: str  # without .cab
    key: str
    feature_id: str | None
    selector: str | None  # SOC / Device for the layout keys
    section: str
    fm: LoadedFM
    partition: str
    members: tuple[CheckedPackage, ...]


def oem_key(fid: str) -> str:
    return fid.upper() if fid.upper().startswith("OEM_") else f"OEM_{fid.upper()}"


def plan(fms: list[LoadedFM], checked: dict[str, CheckedPackage]) -> list[Fip]:
    """One FIP per (feature key, partition) of every FM."""
    out: list[Fip] = []
    for lf in fms:
        groups: dict[tuple[str, str | None, str | None, str, str], list[CheckedPackage]] = {}
        for ref in lf.fm.packages:
            if ref.fip:
                continue
            cp = checked[ref.name.lower()]
            part = partition_of(ref)
            if ref.section == "BasePackages":
                keys = [("BASE", None, None)]
            elif ref.section == "Features/OEM":
                keys = [(oem_key(f), f, None) for f in ref.feature_ids]
            elif ref.section == "DeviceLayoutPackages":
                keys = [(f"DEVICELAYOUT_{ref.selector.upper()}", None, ref.selector)]  # type: ignore[union-attr]
            elif ref.section == "OEMDevicePlatformPackages":
                keys = [(f"OEMDEVICEPLATFORM_{ref.selector.upper()}", None, ref.selector)]  # type: ignore[union-attr]
            else:
                continue
            for key, fid, sel in keys:
                groups.setdefault((key, fid, sel, ref.section, part), []).append(cp)
        for (key, fid, sel, section, part), members in groups.items():
            name = f"{lf.entry.owner_name}.{key}.{lf.entry.id}.{part}"
            out.append(Fip(name, key, fid, sel, section, lf, part, tuple(members)))
    return out


def identifier_xml(f: Fip) -> bytes:
    root = etree.Element(f"{{{FIP_NS}}}FeatureIdentifier", nsmap={None: FIP_NS})
    root.set("Key", f.key)
    if f.feature_id:
        root.set("FeatureID", f.feature_id)
    if f.selector:
        root.set("Selector", f.selector)
    root.set("FMID", f.fm.entry.id)
    root.set("FM", f.fm.fm.path.name)
    root.set("Partition", f.partition)
    for m in sorted(f.members, key=lambda m: m.ref.name.lower()):
        etree.SubElement(root, f"{{{FIP_NS}}}Package", Name=m.ref.name, Sha256=m.sha256)
    return b'<?xml version="1.0" encoding="utf-8"?>\n' + etree.tostring(root, encoding="utf-8", pretty_print=True)


def build(f: Fip, *, out_dir: Path, version: str, cpu_type: str, signer) -> Path:
    release = ReleaseType.TEST if f.fm.entry.release_type.lower() == "test" else ReleaseType.PRODUCTION
    with tempfile.TemporaryDirectory(prefix=".fip.", dir=out_dir) as tmp:
        payload = Path(tmp) / f"{f.name}.xml"
        payload.write_bytes(identifier_xml(f))
        owner, _, rest = f.name.partition(".")
        defn = PackageDefinition(path=f.fm.fm.path, owner=owner, namespace=f.key, name=f"{f.fm.entry.id}.{f.partition}",
                                 legacy_name=f.name, build_wow=False, partition=Partition(f.partition),
                                 release_type=release, owner_type=OwnerType.OEM)
        content = PackageContent(definition=defn,
                                 payloads=(Payload(f"{FIP_DIR}\\{f.name}.xml", payload, "feature identifier"),),
                                 registry=(), appends=(), inputs=())
        return build_spkg(content, out_dir=out_dir, version=version, cpu_type=cpu_type, signer=signer).cab
