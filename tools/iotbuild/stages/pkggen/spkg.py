"""Assemble one signed SPKG cab from a package's content (cab-authenticode-registry.md §4.2).

Order: registry files → file list with short cab names → man.dsm.xml → content.cat (SHA-256 of every
file but itself — the Authenticode PE image hash for PE payloads — signed) → cab (MSZIP) → Authenticode signature. The cab appears under its final name
only when all of that succeeded.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

from ...formats import catalog as catfmt
from ...formats.authenticode import sign_cab
from ...formats.cab import CabSource, Compression, write_cab
from ...formats.regfile import render_reg, render_rga
from ...outputs import build_epoch
from .content import PackageContent
from .dsm import FileEntry, FileType, PackageManifest, short_cab_path

DSM_DIR = r"\Windows\Packages\DsmFiles"
REG_DIR = r"\Windows\Packages\RegistryFiles"
CATROOT = r"\Windows\System32\catroot\{F750E6C3-38EE-11D1-85E5-00C04FC295EE}"


@dataclass(frozen=True)
class BuiltPackage:
    name: str
    cab: Path
    files: tuple[FileEntry, ...]
    size: int




def build_spkg(content: PackageContent, *, out_dir: Path, version: str, cpu_type: str, signer,
               level: int = 6) -> BuiltPackage:
    defn = content.definition
    name = defn.package_name
    epoch = build_epoch()
    signing_time = dt.datetime.fromtimestamp(epoch, dt.timezone.utc)

    # Generated members first, then payloads; indexes count the manifest and catalog (§4.2 step 4).
    generated: list[tuple[FileType, str, bytes]] = []
    if content.registry:
        generated.append((FileType.REGISTRY, f"{REG_DIR}\\{name}.reg", render_reg(content.registry)))
    if content.appends:
        generated.append((FileType.REGISTRY_APPEND, f"{REG_DIR}\\{name}.rga", render_rga(content.appends)))

    entries: list[FileEntry] = [
        FileEntry(FileType.MANIFEST, f"{DSM_DIR}\\{name}.dsm.xml", "man.dsm.xml", "Archive", 0),
        FileEntry(FileType.CATALOG, f"{CATROOT}\\{name}.cat", "content.cat", "Archive", 0),
    ]
    sources: dict[str, CabSource] = {}
    digests: list[bytes] = []
    payload_members: list[catfmt.CatalogMember] = []  # PE payloads (.sys/.dll/.exe) get the PE-image form
    index = len(entries)
    for ftype, dev, data in generated:
        cab_path = short_cab_path(dev, index)
        entries.append(FileEntry(ftype, dev, cab_path, "Archive", len(data)))
        sources[cab_path] = CabSource(name=cab_path, data=data)
        digests.append(hashlib.sha256(data).digest())
        index += 1
    for p in content.payloads:
        cab_path = short_cab_path(p.device_path, index)
        size = p.source.stat().st_size
        entries.append(FileEntry(FileType.REGULAR, p.device_path, cab_path, "Archive Compressed", size))
        sources[cab_path] = CabSource(name=cab_path, path=p.source)
        if size:
            payload_members.append(catfmt.CatalogMember.for_file(p.source))
        index += 1

    manifest = PackageManifest(owner=defn.owner, component=defn.namespace, sub_component=defn.name, version=version,
                               release_type=defn.release_type.value, owner_type=defn.owner_type.value,
                               build_type="Retail", cpu_type=cpu_type, partition=defn.partition.value,
                               files=tuple(entries))
    dsm = manifest.to_xml()
    digests.insert(0, hashlib.sha256(dsm).digest())

    # The catalog's list identifier is derived, not random, so rebuilds are byte-identical.
    list_id = uuid.uuid5(uuid.NAMESPACE_URL, f"iotbuild:{name}:{version}:{epoch}").bytes
    members = [catfmt.CatalogMember(tag_hex=d.hex().upper(), digest=d) for d in digests] + payload_members
    cat = catfmt.build_catalog(members, package_name=name, signer=signer, signing_time=signing_time,
                               list_identifier=list_id)

    members_in_cab = [CabSource(name="man.dsm.xml", data=dsm), CabSource(name="content.cat", data=cat),
                      *sources.values()]
    out_dir.mkdir(parents=True, exist_ok=True)
    final = out_dir / f"{name}.cab"
    with tempfile.TemporaryDirectory(prefix=f".{name}.", dir=out_dir) as tmp:
        unsigned = Path(tmp) / "unsigned.cab"
        with open(unsigned, "wb") as f:
            write_cab(f, members_in_cab, compression=Compression.MSZIP, level=level, epoch=epoch)
        sign_cab(unsigned, final, signer, signing_time)
    return BuiltPackage(name=name, cab=final, files=tuple(entries), size=final.stat().st_size)
