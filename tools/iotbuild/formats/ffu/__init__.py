"""Microsoft Full Flash Update (FFU) images: a streaming writer, a reader, a verifier and FFU → raw.

    info = FfuLayoutInfo.from_gpt(read_gpt(disk), platform_ids=["Contoso.Board"])
    with atomic_output("Flash.ffu") as out:
        write_ffu(out, disk, disk_size=size, sector_size=512, layout_info=info, signer=signer,
                  signing_time=when)                       # V1, "MS" descriptor plan, 128 KiB blocks
    verify_ffu("Flash.ffu", trusted_roots=[root])          # catalog signature, hash table, every chunk
    ffu_to_raw("Flash.ffu", "disk.raw")

Reference: /work/shared/reference/ffu.md (§1 layout, §2 structures, §3 descriptors and GPT, §4 manifest).
The catalog is shaped like Microsoft's (:mod:`iotbuild.formats.ffu.catalog`, ffu.md §2.2): a signed
CatalogVersion 1 catalog with one member, ``HashTable.blob``, holding the SHA-1 of the hash table.
"""

from .catalog import FfuCatalog, build_ffu_catalog, verify_ffu_catalog
from .manifest import (EMMC_USER_DEVICE_PATH, FfuLayoutInfo, FfuPartition, Manifest, build_manifest,
                       parse_manifest)
from .reader import FfuImage, FfuStore, FfuVerification, check_structure, ffu_to_raw, read_ffu, verify_ffu
from .records import (DEFAULT_BLOCK, BlockDataEntry, DescriptorPlan, DiskAccessMethod, DiskLocation,
                      FfuVersion, ImageHeader, SecurityHeader, StoreHeader)
from .writer import FfuInfo, write_ffu

__all__ = [
    "DEFAULT_BLOCK", "EMMC_USER_DEVICE_PATH", "BlockDataEntry", "DescriptorPlan", "DiskAccessMethod",
    "DiskLocation", "FfuCatalog", "FfuImage", "FfuInfo", "FfuLayoutInfo", "FfuPartition", "FfuStore",
    "FfuVerification", "FfuVersion", "ImageHeader", "Manifest", "SecurityHeader", "StoreHeader",
    "build_ffu_catalog", "build_manifest", "check_structure", "ffu_to_raw", "parse_manifest", "read_ffu",
    "verify_ffu", "verify_ffu_catalog", "write_ffu",
]
