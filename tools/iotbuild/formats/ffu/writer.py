"""Write an FFU from a raw GPT disk image, streaming (reference: ffu.md §1, §2, §3.4–3.5, §4.3).

Two passes over the disk, never more than a few blocks in memory:

1. scan: read the disk block by block (holes of a sparse file are skipped with SEEK_DATA) and keep the
   SHA-256 of every non-zero block: 32 bytes per used block, not the blocks;
2. pick the write descriptors (the "MS" or "compat" plan), build the manifest and store metadata, the hash
   table (metadata chunk hashes + the payload hashes from pass 1) and the signed catalog over it (one
   ``HashTable.blob`` member with the SHA-1 of the hash table, as Microsoft's tools make it: ffu.md §2.2);
3. write security region, metadata, then copy the payload blocks from the disk again, checking each one
   against its pass-1 hash (a disk that changed in between is an error, not a silently wrong FFU).

CHUNK == BLOCK always. Only blocks that hold data are stored: all-zero blocks are left out (an offline
reader makes them zero; a device keeps what it had), except the GPT blocks and the MS zero-wipe entry.
"""

from __future__ import annotations

import errno
import hashlib
import io
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import BinaryIO, Union

from ...errors import FormatError, InputError
from ..authenticode import SignerLike
from ..gpt import ENTRY_ARRAY_BYTES, GptLayout, read_gpt
from .catalog import build_ffu_catalog
from .manifest import FfuLayoutInfo, build_manifest
from .records import (DEFAULT_BLOCK, WIPE_BYTES, BlockDataEntry, DescriptorPlan, FfuVersion, ImageHeader,
                      SecurityHeader, StoreHeader, align, begin, end)

# Where a payload block comes from: a disk block index (read in pass 3), or bytes built in memory.
Source = Union[int, bytes]


@dataclass(frozen=True)
class FfuInfo:
    """What :func:`write_ffu` wrote."""

    version: FfuVersion
    plan: DescriptorPlan
    block_size: int
    sector_size: int
    disk_size: int
    file_size: int
    descriptor_count: int           # = payload blocks (one block per descriptor)
    data_blocks: int                # partition blocks with data (the rest are GPT/wipe blocks)
    unpartitioned_blocks: int       # non-zero blocks outside every partition and GPT: not stored
    hash_table_sha256: bytes
    hash_table_sha1: bytes          # what the catalog's HashTable.blob member holds (ffu.md §2.2)
    catalog_size: int
    manifest: bytes


def write_ffu(out: BinaryIO, disk: BinaryIO, *, disk_size: int, sector_size: int, layout_info: FfuLayoutInfo,
              signer: SignerLike, signing_time: datetime, version: FfuVersion | str = "V1",
              plan: DescriptorPlan | str = "MS", block_size: int = DEFAULT_BLOCK) -> FfuInfo:
    """Write the FFU of ``disk`` (a raw GPT image of ``disk_size`` bytes) to ``out`` (written sequentially).

    The disk's file position is unspecified afterwards (blocks are read with ``pread`` where possible).
    """
    version, plan = FfuVersion(version), DescriptorPlan(plan)
    _check_sizes(disk_size, sector_size, block_size)
    total = disk_size // block_size
    gpt_primary = align((2 + ENTRY_ARRAY_BYTES // sector_size) * sector_size, block_size) // block_size
    gpt_backup = align((1 + ENTRY_ARRAY_BYTES // sector_size) * sector_size, block_size) // block_size
    if total < gpt_primary + gpt_backup + 1:
        raise InputError(f"disk of {disk_size} bytes is too small for an FFU with {block_size}-byte blocks")
    required, other = _partition_blocks(layout_info, sector_size, block_size, total)
    reader = _BlockReader(disk, block_size)

    # Pass 1: hashes of every non-zero block.
    digests = {i: d for i, d in reader.scan(disk_size) if d is not None}
    gpt_blocks = set(range(gpt_primary)) | set(range(total - gpt_backup, total))
    data_required = sorted(i for i in digests if i in required and i not in gpt_blocks)
    data_other = sorted(i for i in digests if i in other and i not in required and i not in gpt_blocks)
    unpartitioned = len(digests.keys() - gpt_blocks - required - other)

    # Descriptors and their payload sources (§3.5).
    entries: list[tuple[BlockDataEntry, Source]] = []
    primary = [(BlockDataEntry((begin(i),)), i) for i in range(gpt_primary)]
    backup_begin = [(BlockDataEntry((begin(i),)), i) for i in range(total - gpt_backup, total)]
    data = [(BlockDataEntry((begin(i),)), i) for i in sorted(data_required + data_other)]
    if plan is DescriptorPlan.COMPAT:
        entries = primary + data + backup_begin
        tables = (0, 0), (0, gpt_primary), (len(entries), 0)   # img2ffu's tiling (§3.4)
    else:
        zero = bytes(block_size)
        wipe = [(BlockDataEntry((begin(i), end(i))), zero) for i in range(max(1, WIPE_BYTES // block_size))]
        flash_only = _flash_only_gpt(reader, layout_info, gpt_primary, block_size, sector_size)
        entries = wipe + [(BlockDataEntry((begin(i),)), i) for i in data_required]
        flash_only_index = len(entries)
        entries += [(BlockDataEntry((begin(i),)), src) for i, src in enumerate(flash_only)]
        entries += [(BlockDataEntry((begin(i),)), i) for i in data_other]
        final_index = len(entries)
        entries += primary + [(BlockDataEntry((end(total - 1 - i),)), i) for _, i in backup_begin]
        tables = (0, len(wipe)), (flash_only_index, gpt_primary), (final_index, gpt_primary + gpt_backup)

    def digest_of(src: Source) -> bytes:
        if isinstance(src, bytes):
            return hashlib.sha256(src).digest()
        return digests.get(src) or reader.zero_digest

    # Metadata: image header + manifest, then the store header + descriptors, each padded to a chunk.
    manifest = build_manifest(layout_info, sector_size=sector_size, min_sector_count=disk_size // sector_size,
                              when=signing_time)
    image_region = _pad(ImageHeader(len(manifest), block_size // 1024).to_bytes() + manifest, block_size)
    descriptors = b"".join(e.to_bytes() for e, _ in entries)
    store = StoreHeader(version.major, layout_info.platform_ids, block_size, len(entries), len(descriptors),
                        *tables, payload_size=len(entries) * block_size,
                        device_path=layout_info.device_path if version is FfuVersion.V2 else "")
    store_region = _pad(store.to_bytes() + descriptors, block_size)
    metadata = image_region + store_region

    table = io.BytesIO()
    for at in range(0, len(metadata), block_size):
        table.write(hashlib.sha256(metadata[at:at + block_size]).digest())
    for _, src in entries:
        table.write(digest_of(src))
    hash_table = table.getvalue()
    table_digest = hashlib.sha256(hash_table).digest()
    catalog = build_ffu_catalog(hash_table, signer=signer, signing_time=signing_time)
    security = SecurityHeader(block_size // 1024, len(catalog), len(hash_table)).to_bytes()
    security_region = _pad(security + catalog + hash_table, block_size)

    # Pass 2: write everything, copying payload blocks from the disk and checking them against pass 1.
    out.write(security_region)
    out.write(metadata)
    for entry, src in entries:
        if isinstance(src, bytes):
            out.write(src)
            continue
        block = reader.read(src)
        if hashlib.sha256(block).digest() != digest_of(src):
            raise FormatError(f"disk block {src} changed while the FFU was being written",
                              offset=src * block_size, hint="do not modify the disk image during buildimage")
        out.write(block)
    out.flush()
    file_size = len(security_region) + len(metadata) + len(entries) * block_size
    return FfuInfo(version, plan, block_size, sector_size, disk_size, file_size, len(entries),
                   len(data_required) + len(data_other), unpartitioned, table_digest,
                   hashlib.sha1(hash_table).digest(), len(catalog), manifest)


def _check_sizes(disk_size: int, sector_size: int, block_size: int) -> None:
    if sector_size not in (512, 4096):
        raise InputError(f"sector size {sector_size} unsupported", hint="use 512 or 4096")
    if not (4096 <= block_size <= 1 << 20 and block_size & (block_size - 1) == 0) or block_size < sector_size:
        raise InputError(f"FFU block size {block_size} must be a power of two from 4 KiB to 1 MiB and at "
                         "least the sector size", hint="use 131072 (128 KiB)")
    if disk_size <= 0 or disk_size % block_size:
        raise InputError(f"disk size {disk_size} is not a multiple of the FFU block size {block_size}",
                         hint="make the disk a whole number of blocks, so DISK_BEGIN and DISK_END agree")


def _partition_blocks(info: FfuLayoutInfo, sector_size: int, block_size: int,
                      total: int) -> tuple[set[int], set[int]]:
    """Blocks overlapping a required partition, and blocks overlapping any other partition."""
    required: set[int] = set()
    other: set[int] = set()
    for p in info.partitions:
        first = p.first_lba * sector_size // block_size
        last = ((p.last_lba + 1) * sector_size - 1) // block_size
        if p.last_lba < p.first_lba or last >= total:
            raise InputError(f"partition {p.name!r} (LBA {p.first_lba}..{p.last_lba}) does not fit the disk")
        (required if p.required_to_flash else other).update(range(first, last + 1))
    return required, other


def _flash_only_gpt(reader: _BlockReader, info: FfuLayoutInfo, gpt_blocks: int, block_size: int,
                    sector_size: int) -> list[bytes]:
    """The primary GPT block(s) with only the RequiredToFlash partitions (MS phase 2, §3.4)."""
    raw = b"".join(reader.read(i) for i in range(gpt_blocks))
    if all(p.required_to_flash for p in info.partitions):
        return [raw[i:i + block_size] for i in range(0, len(raw), block_size)]
    layout = _read_disk_gpt(reader, sector_size)
    keep = {p.name for p in info.partitions if p.required_to_flash}
    reduced = GptLayout(layout.disk_guid, layout.sector_size, layout.total_sectors,
                        tuple(p for p in layout.partitions if p.name in keep))
    head = reduced.primary_bytes()
    merged = head + raw[len(head):]
    return [merged[i:i + block_size] for i in range(0, len(merged), block_size)]


def _read_disk_gpt(reader: _BlockReader, sector_size: int) -> GptLayout:
    try:
        if reader.fd is None:
            return read_gpt(reader.disk, sector_size)
        with open(os.dup(reader.fd), "rb") as f:
            return read_gpt(f, sector_size)
    except FormatError as e:
        raise FormatError(f"the disk's GPT cannot be read for the flash-only table: {e.what}",
                          offset=e.offset,
                          hint="write the disk's GPT with iotbuild.formats.gpt before the FFU") from None


def _pad(data: bytes, unit: int) -> bytes:
    return data + bytes(align(len(data), unit) - len(data))


class _BlockReader:
    """Reads whole blocks of the disk by index: ``pread`` on a real file, seek + read otherwise."""

    def __init__(self, disk: BinaryIO, block_size: int) -> None:
        self.disk, self.block_size = disk, block_size
        self.zero = bytes(block_size)
        self.zero_digest = hashlib.sha256(self.zero).digest()
        try:
            self.fd: int | None = disk.fileno()
        except (AttributeError, OSError, io.UnsupportedOperation):
            self.fd = None

    def read(self, index: int) -> bytes:
        at = index * self.block_size
        if self.fd is not None:
            block = os.pread(self.fd, self.block_size, at)
        else:
            self.disk.seek(at)
            block = self.disk.read(self.block_size)
        if len(block) != self.block_size:
            raise FormatError(f"disk ends inside block {index} ({len(block)} of {self.block_size} bytes)",
                              offset=at, hint="pass the disk's real size")
        return block

    def scan(self, disk_size: int) -> Iterator[tuple[int, bytes | None]]:
        """(index, SHA-256 or None if all zero) for every block that may hold data."""
        for index in self._candidates(disk_size):
            block = self.read(index)
            yield index, None if block == self.zero else hashlib.sha256(block).digest()

    def _candidates(self, disk_size: int) -> Iterator[int]:
        total = disk_size // self.block_size
        seek_data = getattr(os, "SEEK_DATA", None)
        if self.fd is None or seek_data is None:
            yield from range(total)
            return
        nxt = 0
        while nxt < total:
            try:
                data = os.lseek(self.fd, nxt * self.block_size, seek_data)
                hole = os.lseek(self.fd, data, os.SEEK_HOLE)
            except OSError as e:
                if e.errno != errno.ENXIO:       # no hole support here: read everything that is left
                    yield from range(nxt, total)
                    return
                size = os.fstat(self.fd).st_size  # ENXIO: no data after this point
                if size < disk_size:
                    raise FormatError(f"disk file has {size} bytes, less than the disk size {disk_size}",
                                      offset=size, hint="pass the disk's real size") from None
                return
            first, stop = data // self.block_size, min(-(-hole // self.block_size), total)
            yield from range(max(first, nxt), stop)
            nxt = max(stop, nxt + 1)
