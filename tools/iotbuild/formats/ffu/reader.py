"""Read, verify and convert FFU files (reference: ffu.md §1, §2, §5.4 and the §7 conformance checklist).

``read_ffu`` parses the headers, manifest and write descriptors (payload stays on disk); ``verify_ffu``
checks the structure (§7), the catalog signature, that the catalog lists the hash table (Microsoft's
test: its first member's hash == SHA-1 of the hash table, §2.2) and every chunk hash; ``ffu_to_raw``
replays the descriptors into a sparse raw disk image (last writer wins).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import BinaryIO

from ...errors import FormatError, InputError, IotbuildError
from ...outputs import atomic_output
from ..authenticode import AnyCertificate, SignatureInfo
from .catalog import FfuCatalog, verify_ffu_catalog
from .manifest import Manifest, parse_manifest
from .records import (HASH_SIZE, BlockDataEntry, DiskAccessMethod, ImageHeader, SecurityHeader, StoreHeader,
                      align)

_MAX_METADATA = 64 << 20  # a store's descriptors: 16 B per block, so 64 MiB covers a 512 GiB disk
DAMAGED_HINT = "the file is damaged or is not an FFU: copy it again or rebuild it"


@dataclass(frozen=True)
class FfuStore:
    header: StoreHeader
    offset: int                           # file offset of the store header
    descriptors: tuple[BlockDataEntry, ...]
    payload_offset: int                   # file offset of this store's first payload block

    def blocks(self) -> Iterator[tuple[int, BlockDataEntry, int]]:
        """(descriptor index, descriptor, file offset of its payload block)."""
        for i, entry in enumerate(self.descriptors):
            yield i, entry, self.payload_offset + i * self.header.block_size


@dataclass(frozen=True)
class FfuImage:
    security: SecurityHeader
    catalog: bytes
    hash_table: bytes
    image_offset: int                     # where hashing starts (the image header)
    image_header: ImageHeader
    manifest: Manifest
    stores: tuple[FfuStore, ...]
    file_size: int

    @property
    def chunk_size(self) -> int:
        return self.security.chunk_kb * 1024

    @property
    def expected_size(self) -> int:
        last = self.stores[-1]
        return last.payload_offset + len(last.descriptors) * last.header.block_size

    def disk_size(self, store: int = 1) -> int:
        """Bytes of the target disk: manifest ``MinSectorCount * SectorSize`` of that store (§3.1), or the
        furthest DISK_BEGIN extent if the manifest gives no size."""
        s, m = self.stores[store - 1], self.manifest.stores[min(store, len(self.manifest.stores)) - 1]
        size = m.min_sector_count * m.sector_size
        if size:
            return size
        bs = s.header.block_size
        ends = [(loc.block_index + 1) * bs for e in s.descriptors for loc in e.locations
                if loc.method is DiskAccessMethod.DISK_BEGIN]
        return max(ends, default=0)


@dataclass(frozen=True)
class FfuVerification:
    image: FfuImage
    signature: SignatureInfo
    chunks: int                           # chunks whose SHA-256 matched
    catalog: FfuCatalog                   # the catalog's first member (HashTable.blob) and its SHA-1


def _read(fp: BinaryIO, offset: int, size: int, what: str) -> bytes:
    fp.seek(offset)
    data = fp.read(size)
    if len(data) != size:
        raise FormatError(f"{what}: truncated ({len(data)} of {size} bytes)", offset=offset)
    return data


def read_ffu(fp: BinaryIO) -> FfuImage:
    """Parse the security region, image header, manifest and every store's header and descriptors.

    A FormatError names the file when ``fp`` was opened by name, and says what to do about it."""
    try:
        return _read_ffu(fp)
    except FormatError as e:
        name = getattr(fp, "name", None)
        _located(e, name if isinstance(name, str) else None)
        raise


def _located(e: IotbuildError, path: str | os.PathLike[str] | None) -> None:
    """Give ``e`` the file's name (if it has none) and, for a damaged file, a hint."""
    if e.path is None and path is not None:
        e.path = os.fspath(path)
    if isinstance(e, FormatError) and not e.hint:
        e.hint = DAMAGED_HINT


def _read_ffu(fp: BinaryIO) -> FfuImage:
    file_size = fp.seek(0, os.SEEK_END)
    security = SecurityHeader.from_bytes(_read(fp, 0, SecurityHeader.LAYOUT.size, "SECURITY_HEADER"))
    chunk = security.chunk_kb * 1024
    catalog = _read(fp, 32, security.catalog_size, "catalog")
    hash_table = _read(fp, 32 + security.catalog_size, security.hash_table_size, "hash table")
    image_offset = align(32 + security.catalog_size + security.hash_table_size, chunk)
    raw_image = _read(fp, image_offset, ImageHeader.LAYOUT.size, "IMAGE_HEADER")
    image = _at(image_offset, lambda: ImageHeader.from_bytes(raw_image))
    if image.chunk_kb != security.chunk_kb:
        raise FormatError(f"IMAGE_HEADER.dwChunkSize {image.chunk_kb} KiB differs from the security header's "
                          f"{security.chunk_kb} KiB", offset=image_offset + 0x14)
    manifest_at = image_offset + image.size
    manifest = parse_manifest(_read(fp, manifest_at, image.manifest_length, "manifest"), manifest_at)
    # ImageHeaderEx would add DeviceTargetInfo records here; padding to the chunk covers them.
    at = align(manifest_at + image.manifest_length, chunk)
    headers: list[tuple[StoreHeader, int, tuple[BlockDataEntry, ...]]] = []
    while True:
        header, entries, size = _read_store(fp, at)
        headers.append((header, at, entries))
        at = align(at + size, header.block_size)
        if header.major_version == 1 or header.store_index >= header.store_count:
            break
    stores = []
    for header, offset, entries in headers:
        stores.append(FfuStore(header, offset, entries, at))
        at += len(entries) * header.block_size
    return FfuImage(security, catalog, hash_table, image_offset, image, manifest, tuple(stores), file_size)


def _at(base: int, parse):  # type: ignore[no-untyped-def]
    try:
        return parse()
    except FormatError as e:
        raise FormatError(e.what, offset=base + (e.offset or 0), hint=e.hint) from None


def _read_store(fp: BinaryIO, at: int) -> tuple[StoreHeader, tuple[BlockDataEntry, ...], int]:
    head = _read(fp, at, StoreHeader.LAYOUT.size + StoreHeader.V2_LAYOUT.size, "STORE_HEADER")
    if int.from_bytes(head[4:6], "little") == 2:  # MajorVersion 2: the DevicePath follows the fixed part
        head = _read(fp, at, len(head) + 2 * int.from_bytes(head[-2:], "little"), "STORE_HEADER")
    header = _at(at, lambda: StoreHeader.from_bytes(head))
    if header.block_size % 512 or header.block_size == 0:
        raise FormatError(f"STORE_HEADER.dwBlockSizeInBytes {header.block_size} is not a multiple of 512",
                          offset=at + 204)
    length = header.validate_length + header.descriptor_length
    if length > _MAX_METADATA:
        raise FormatError(f"store metadata of {length} bytes is implausibly large", offset=at + 212)
    base = at + header.size + header.validate_length
    raw = _read(fp, base, header.descriptor_length, "write descriptors")
    entries, pos = [], 0
    for _ in range(header.descriptor_count):
        entry = _at(base, lambda: BlockDataEntry.from_bytes(raw, pos))
        entries.append(entry)
        pos += entry.size
    if pos != header.descriptor_length:
        raise FormatError(f"{header.descriptor_count} write descriptors take {pos} bytes, but "
                          f"dwWriteDescriptorLength is {header.descriptor_length}", offset=at + 212)
    return header, tuple(entries), header.size + length


def check_structure(image: FfuImage) -> None:
    """The §7 conformance checks that do not need the payload: sizes, tables, descriptor locations."""
    problems: list[str] = []
    chunk = image.chunk_size
    if image.file_size != image.expected_size:
        problems.append(f"file has {image.file_size} bytes; its headers describe {image.expected_size}")
    hashed = (image.file_size - image.image_offset) // chunk
    if len(image.hash_table) != HASH_SIZE * hashed:
        problems.append(f"hash table has {len(image.hash_table) // HASH_SIZE} entries for {hashed} chunks")
    for n, store in enumerate(image.stores, 1):
        h = store.header
        if h.block_size != chunk:
            problems.append(f"store {n}: block size {h.block_size} differs from the chunk size {chunk}")
        if h.major_version == 2 and (h.store_index != n or h.store_count != len(image.stores)
                                     or h.payload_size != h.descriptor_count * h.block_size):
            problems.append(f"store {n}: StoreIndex/NumOfStores/StorePayloadSize "
                            f"{h.store_index}/{h.store_count}/{h.payload_size} are inconsistent")
        (ii, ic), (fi, fc), (li, lc) = h.initial_table, h.flash_only_table, h.final_table
        if not ii + ic <= fi + fc <= li + lc == h.descriptor_count:
            problems.append(f"store {n}: tables {ii}+{ic}, {fi}+{fc}, {li}+{lc} do not tile the "
                            f"{h.descriptor_count} descriptors (MS readers need Final index+count == count)")
        blocks = image.disk_size(n) // h.block_size
        for i, entry in enumerate(store.descriptors):
            for loc in entry.locations:
                if loc.block_index >= blocks:
                    problems.append(f"store {n}: descriptor {i} writes block {loc.block_index} "
                                    f"({loc.method.name}) of a {blocks}-block disk")
    if problems:
        more = f" (+{len(problems) - 5} more)" if len(problems) > 5 else ""
        raise FormatError("; ".join(problems[:5]) + more)


def verify_ffu(path: str | os.PathLike[str], trusted_roots: Sequence[AnyCertificate] = ()) -> FfuVerification:
    """Check the structure, the catalog signature (chain to ``trusted_roots`` if given), that the catalog
    lists the hash table as Microsoft's verifier checks it (the last 20 bytes of the first member's indirect
    data == SHA-1 of the hash table, ffu.md §2.2), and every chunk's SHA-256. Raises SigningError or
    FormatError."""
    try:
        with open(path, "rb") as fp:
            image = read_ffu(fp)
            check_structure(image)
            try:
                catalog = verify_ffu_catalog(image.catalog, image.hash_table, trusted_roots)
            except FormatError as e:
                what = " ".join(e.what.split())  # one line: parser messages may span several
                raise FormatError(f"catalog: {what}", offset=32 if e.offset is None else 32 + e.offset,
                                  hint=e.hint) from None
            bad = _bad_chunks(fp, image)
    except IotbuildError as e:
        _located(e, path)
        raise
    if bad:
        names = ", ".join(_describe_chunk(image, i) for i in bad[:5])
        more = f" (+{len(bad) - 5} more)" if len(bad) > 5 else ""
        raise FormatError(f"{len(bad)} chunk(s) do not match the hash table: {names}{more}",
                          offset=image.image_offset + bad[0] * image.chunk_size, path=os.fspath(path),
                          hint="the file is damaged: copy or rebuild it")
    return FfuVerification(image, catalog.signature, len(image.hash_table) // HASH_SIZE, catalog)


def _bad_chunks(fp: BinaryIO, image: FfuImage) -> list[int]:
    chunk, table = image.chunk_size, image.hash_table
    fp.seek(image.image_offset)
    bad = []
    for i in range(len(table) // HASH_SIZE):
        data = fp.read(chunk)
        if hashlib.sha256(data).digest() != table[i * HASH_SIZE:(i + 1) * HASH_SIZE]:
            bad.append(i)
    return bad


def _describe_chunk(image: FfuImage, index: int) -> str:
    offset = image.image_offset + index * image.chunk_size
    for n, store in enumerate(image.stores, 1):
        bs = store.header.block_size
        if store.payload_offset <= offset < store.payload_offset + len(store.descriptors) * bs:
            i = (offset - store.payload_offset) // bs
            locations = store.descriptors[i].locations
            where = ", ".join(f"{loc.method.name} {loc.block_index}" for loc in locations)
            return f"payload block {i} of store {n} (disk block {where}, file offset 0x{offset:x})"
    return f"metadata chunk {index} (file offset 0x{offset:x})"


def ffu_to_raw(ffu_path: str | os.PathLike[str], out_path: str | os.PathLike[str], *, store: int = 1) -> int:
    """Replay one store's descriptors into a raw disk image (atomically); returns the disk size.

    Sparse: the output is created empty and only written where a descriptor puts non-zero data (or zeros
    over data written earlier); then it is truncated to the disk size."""
    try:
        with open(ffu_path, "rb") as fp:
            image = read_ffu(fp)
            if not 1 <= store <= len(image.stores):
                raise InputError(f"store {store} does not exist; the FFU has {len(image.stores)}")
            check_structure(image)
            s = image.stores[store - 1]
            size, bs = image.disk_size(store), s.header.block_size
            zero = bytes(bs)
            aligned = size % bs == 0
            written: set[int] = set()
            with atomic_output(out_path) as out:
                out.truncate(size)
                fd = out.fileno()
                fp.seek(s.payload_offset)
                for i, entry in enumerate(s.descriptors):
                    block = fp.read(bs)
                    if len(block) != bs:
                        raise FormatError(f"payload block {i} truncated", offset=s.payload_offset + i * bs)
                    for loc in entry.locations:
                        at = loc.byte_offset(size, bs)
                        if not 0 <= at <= size - bs:
                            raise FormatError(f"descriptor {i} writes outside the {size}-byte disk "
                                              f"({loc.method.name} {loc.block_index})")
                        if block == zero and aligned and at not in written:
                            continue
                        os.pwrite(fd, block, at)
                        written.add(at)
                out.truncate(size)
    except IotbuildError as e:
        _located(e, ffu_path)
        raise
    return size
