"""One partition's filesystem image from its staged tree: FAT32 (mkfs.fat + mtools) or NTFS (mkntfs + wimlib).

Volume IDs and serial numbers are derived from the product and partition names, like the GPT's GUIDs, so
that the same inputs give the same bytes.
"""

from __future__ import annotations

from pathlib import Path

from ...errors import InputError
from ...formats.fat import build_fat32
from ...formats.gpt import derive_guid
from ...formats.ntfs import build_ntfs
from .layout import DiskPlan, PlacedPartition


def _derived_int(product: str, name: str, bits: int) -> int:
    return int.from_bytes(derive_guid(product, name, "volume-serial").bytes[: bits // 8], "little")


def build_filesystem(part: PlacedPartition, tree: Path, out: Path, *, plan: DiskPlan, product: str, epoch: int,
                     workdir: Path) -> Path:
    fs = (part.file_system or "").upper()
    size = part.sectors * plan.sector_size
    if fs in ("FAT", "FAT32"):
        build_fat32(tree, out, size=size, sector_size=plan.sector_size, label=part.name, hidden_sectors=part.first_lba,
                    cluster_size=part.cluster_size, epoch=epoch, volume_id=_derived_int(product, part.name, 32),
                    name=part.name)
    elif fs == "NTFS":
        build_ntfs(tree, out, size=size, sector_size=plan.sector_size, label=part.name, start_lba=part.first_lba,
                   cluster_size=part.cluster_size, epoch=epoch, serial=_derived_int(product, part.name, 64),
                   name=part.name, workdir=workdir)
    else:
        raise InputError(f"partition {part.name}: file system {part.file_system!r} cannot be built",
                         hint="use FAT32 or NTFS in DeviceLayout.xml")
    return out
