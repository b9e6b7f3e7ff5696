"""FFU structures (reference: /work/shared/reference/ffu.md §2). Declarations only; little-endian, packed."""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass, field
from typing import ClassVar

from ...errors import FormatError
from .._struct import to_enum, unpack

SECURITY_SIGNATURE = b"SignedImage "   # one trailing space
IMAGE_SIGNATURE = b"ImageFlash  "      # two trailing spaces
CALG_SHA_256 = 0x0000800C
DEFAULT_BLOCK = 131072                 # ImageConstants.PAYLOAD_BLOCK_SIZE; CHUNK == BLOCK always here
WIPE_BYTES = 131072                    # MS phase 1 wipes the first and last 128 KiB (§3.4)
PLATFORM_ID_BYTES = 192
HASH_SIZE = 32


class FfuVersion(str, enum.Enum):
    """Store-header version pairs (§2.5): (MajorVersion, FullFlashMajorVersion)."""

    V1 = "V1"
    V2 = "V2"

    @property
    def major(self) -> int:
        return 1 if self is FfuVersion.V1 else 2


class DescriptorPlan(str, enum.Enum):
    """Which write descriptors the writer emits (§3.5)."""

    MS = "MS"          # phase-ordered, zero-wipe entry, backup GPT as DISK_END
    COMPAT = "compat"  # one DISK_BEGIN location per entry, ascending, for simple readers


class DiskAccessMethod(enum.IntEnum):  # §2.7 dwDiskAccessMethod (1 = DISK_SEQ is never used: rejected)
    DISK_BEGIN = 0
    DISK_END = 2


@dataclass(frozen=True, slots=True)
class SecurityHeader:  # §2.1 SECURITY_HEADER (32 bytes at offset 0)
    LAYOUT: ClassVar[struct.Struct] = struct.Struct(
        "<I"    # cbSize = 32
        "12s"   # signature "SignedImage "
        "I"     # dwChunkSizeInKb
        "I"     # dwAlgId = CALG_SHA_256
        "I"     # dwCatalogSize
        "I"     # dwHashTableSize
    )
    chunk_kb: int
    catalog_size: int
    hash_table_size: int

    @classmethod
    def from_bytes(cls, buf: bytes | memoryview, offset: int = 0) -> SecurityHeader:
        size, sig, chunk_kb, alg, cat, table = unpack(cls.LAYOUT, buf, offset, "SECURITY_HEADER")
        if sig != SECURITY_SIGNATURE:
            raise FormatError(f"SECURITY_HEADER.signature {sig!r} is not 'SignedImage ': not an FFU",
                              offset=offset + 4)
        if size != cls.LAYOUT.size:
            raise FormatError(f"SECURITY_HEADER.cbSize {size} is not 32", offset=offset)
        if alg != CALG_SHA_256:
            raise FormatError(f"SECURITY_HEADER.dwAlgId 0x{alg:x} unsupported (only 0x800c, SHA-256)",
                              offset=offset + 0x14)
        if not (1 <= chunk_kb <= 1024 and chunk_kb & (chunk_kb - 1) == 0):
            raise FormatError(f"SECURITY_HEADER.dwChunkSizeInKb {chunk_kb} is not a power of two in 1..1024",
                              offset=offset + 0x10)
        if table % HASH_SIZE:
            raise FormatError(f"SECURITY_HEADER.dwHashTableSize {table} is not a multiple of 32",
                              offset=offset + 0x1C)
        return cls(chunk_kb, cat, table)

    def to_bytes(self) -> bytes:
        return self.LAYOUT.pack(self.LAYOUT.size, SECURITY_SIGNATURE, self.chunk_kb, CALG_SHA_256,
                                self.catalog_size, self.hash_table_size)


@dataclass(frozen=True, slots=True)
class ImageHeader:  # §2.4 IMAGE_HEADER (24 bytes; ImageHeaderEx 28 is read, never written)
    LAYOUT: ClassVar[struct.Struct] = struct.Struct(
        "<I"    # cbSize = 24
        "12s"   # Signature "ImageFlash  "
        "I"     # ManifestLength
        "I"     # dwChunkSize (KiB)
    )
    manifest_length: int
    chunk_kb: int
    size: int = 24

    @classmethod
    def from_bytes(cls, buf: bytes | memoryview, offset: int = 0) -> ImageHeader:
        size, sig, length, chunk_kb = unpack(cls.LAYOUT, buf, offset, "IMAGE_HEADER")
        if sig != IMAGE_SIGNATURE:
            raise FormatError(f"IMAGE_HEADER.Signature {sig!r} is not 'ImageFlash  '", offset=offset + 4)
        if size not in (24, 28):
            raise FormatError(f"IMAGE_HEADER.cbSize {size} is not 24 (or 28)", offset=offset)
        return cls(length, chunk_kb, size)

    def to_bytes(self) -> bytes:
        return self.LAYOUT.pack(24, IMAGE_SIGNATURE, self.manifest_length, self.chunk_kb)


@dataclass(frozen=True, slots=True)
class StoreHeader:  # §2.5 STORE_HEADER: 248 bytes (V1), 262 + 2*DevicePathLength (V2)
    LAYOUT: ClassVar[struct.Struct] = struct.Struct(
        "<I"    # dwUpdateType (0 = full)
        "H"     # MajorVersion (1 = V1, 2 = V2)
        "H"     # MinorVersion
        "H"     # FullFlashMajorVersion (2)
        "H"     # FullFlashMinorVersion
        "192s"  # szPlatformId: NUL-terminated IDs back to back, byte 191 zero
        "I"     # dwBlockSizeInBytes
        "I"     # dwWriteDescriptorCount
        "I"     # dwWriteDescriptorLength
        "I"     # dwValidateDescriptorCount
        "I"     # dwValidateDescriptorLength
        "I"     # dwInitialTableIndex
        "I"     # dwInitialTableCount
        "I"     # dwFlashOnlyTableIndex
        "I"     # dwFlashOnlyTableCount
        "I"     # dwFinalTableIndex
        "I"     # dwFinalTableCount
    )
    V2_LAYOUT: ClassVar[struct.Struct] = struct.Struct(
        "<H"    # NumOfStores
        "H"     # StoreIndex (1-based)
        "Q"     # StorePayloadSize = count * BLOCK
        "H"     # DevicePathLength (UTF-16 characters, no NUL); DevicePath follows
    )
    major_version: int
    platform_ids: tuple[str, ...]
    block_size: int
    descriptor_count: int
    descriptor_length: int
    initial_table: tuple[int, int] = (0, 0)      # (index, count)
    flash_only_table: tuple[int, int] = (0, 0)
    final_table: tuple[int, int] = (0, 0)
    validate_count: int = 0
    validate_length: int = 0
    update_type: int = 0
    store_count: int = 1                          # V2 only
    store_index: int = 1                          # V2 only
    payload_size: int = 0                         # V2 only
    device_path: str = ""                         # V2 only
    full_flash_version: tuple[int, int] = field(default=(2, 0))

    @property
    def size(self) -> int:
        if self.major_version == 1:
            return self.LAYOUT.size
        return self.LAYOUT.size + self.V2_LAYOUT.size + len(self.device_path.encode("utf-16-le"))

    @classmethod
    def from_bytes(cls, buf: bytes | memoryview, offset: int = 0) -> StoreHeader:
        (update, major, minor, ff_major, ff_minor, raw_ids, block, count, length, vcount, vlength,
         ii, ic, fi, fc, li, lc) = unpack(cls.LAYOUT, buf, offset, "STORE_HEADER")
        if (major, minor, ff_major, ff_minor) not in ((1, 0, 2, 0), (2, 0, 2, 0)):
            raise FormatError(f"STORE_HEADER version {major}.{minor}/{ff_major}.{ff_minor} unsupported "
                              "(only 1.0/2.0 = V1 and 2.0/2.0 = V2; V1_COMPRESSED is not read)",
                              offset=offset + 4)
        if raw_ids[191] != 0:
            raise FormatError("STORE_HEADER.szPlatformId byte 191 is not 0", offset=offset + 12 + 191)
        try:
            ids = tuple(p.decode("ascii") for p in raw_ids.rstrip(b"\0").split(b"\0") if p)
        except UnicodeDecodeError:
            raise FormatError("STORE_HEADER.szPlatformId is not ASCII", offset=offset + 12) from None
        extra: dict[str, object] = {}
        if major == 2:
            at = offset + cls.LAYOUT.size
            n_stores, index, payload, path_len = unpack(cls.V2_LAYOUT, buf, at, "STORE_HEADER V2 fields")
            start = at + cls.V2_LAYOUT.size
            raw = bytes(buf[start:start + 2 * path_len])
            if len(raw) != 2 * path_len:
                raise FormatError(f"STORE_HEADER.DevicePath truncated ({len(raw)} of {2 * path_len} bytes)",
                                  offset=start)
            try:
                path = raw.decode("utf-16-le")
            except UnicodeDecodeError:
                raise FormatError("STORE_HEADER.DevicePath is not UTF-16LE", offset=start) from None
            extra = dict(store_count=n_stores, store_index=index, payload_size=payload, device_path=path)
        return cls(major, ids, block, count, length, (ii, ic), (fi, fc), (li, lc), vcount, vlength, update,
                   full_flash_version=(ff_major, ff_minor), **extra)  # type: ignore[arg-type]

    def to_bytes(self) -> bytes:
        ids = b"".join(p.encode("ascii") + b"\0" for p in self.platform_ids)
        if len(ids) > PLATFORM_ID_BYTES - 1:
            raise ValueError(f"platform IDs take {len(ids)} bytes with their NULs; at most 191 fit")
        head = self.LAYOUT.pack(self.update_type, self.major_version, 0, *self.full_flash_version, ids,
                                self.block_size, self.descriptor_count, self.descriptor_length,
                                self.validate_count, self.validate_length, *self.initial_table,
                                *self.flash_only_table, *self.final_table)
        if self.major_version == 1:
            return head
        path = self.device_path.encode("utf-16-le")
        return head + self.V2_LAYOUT.pack(self.store_count, self.store_index, self.payload_size,
                                          len(path) // 2) + path


@dataclass(frozen=True, slots=True)
class DiskLocation:  # §2.7 DISK_LOCATION
    LAYOUT: ClassVar[struct.Struct] = struct.Struct("<II")  # dwDiskAccessMethod dwBlockIndex
    method: DiskAccessMethod
    block_index: int

    @classmethod
    def from_bytes(cls, buf: bytes | memoryview, offset: int = 0) -> DiskLocation:
        method, index = unpack(cls.LAYOUT, buf, offset, "DISK_LOCATION")
        return cls(to_enum(DiskAccessMethod, method, offset, "DISK_LOCATION.dwDiskAccessMethod"), index)

    def to_bytes(self) -> bytes:
        return self.LAYOUT.pack(self.method, self.block_index)

    def byte_offset(self, disk_size: int, block_size: int) -> int:
        """Where this location writes: from the start, or from the true end of the disk (MS PayloadReader)."""
        if self.method is DiskAccessMethod.DISK_BEGIN:
            return self.block_index * block_size
        return disk_size - (self.block_index + 1) * block_size


@dataclass(frozen=True, slots=True)
class BlockDataEntry:  # §2.7 BLOCK_DATA_ENTRY: 8 bytes + 8 per location
    LAYOUT: ClassVar[struct.Struct] = struct.Struct("<II")  # dwLocationCount dwBlockCount
    locations: tuple[DiskLocation, ...]
    block_count: int = 1

    @property
    def size(self) -> int:
        return self.LAYOUT.size + DiskLocation.LAYOUT.size * len(self.locations)

    @classmethod
    def from_bytes(cls, buf: bytes | memoryview, offset: int = 0) -> BlockDataEntry:
        count, blocks = unpack(cls.LAYOUT, buf, offset, "BLOCK_DATA_ENTRY")
        if count < 1:
            raise FormatError("BLOCK_DATA_ENTRY.dwLocationCount is 0", offset=offset)
        if blocks != 1:
            raise FormatError(f"BLOCK_DATA_ENTRY.dwBlockCount {blocks} unsupported (only 1, as MS writes)",
                              offset=offset + 4)
        at = offset + cls.LAYOUT.size
        if len(buf) - at < count * DiskLocation.LAYOUT.size:
            raise FormatError(f"BLOCK_DATA_ENTRY with {count} locations is truncated", offset=offset)
        locs = tuple(DiskLocation.from_bytes(buf, at + 8 * i) for i in range(count))
        return cls(locs, blocks)

    def to_bytes(self) -> bytes:
        return self.LAYOUT.pack(len(self.locations), self.block_count) + b"".join(
            loc.to_bytes() for loc in self.locations)


def begin(index: int) -> DiskLocation:
    return DiskLocation(DiskAccessMethod.DISK_BEGIN, index)


def end(index: int) -> DiskLocation:
    return DiskLocation(DiskAccessMethod.DISK_END, index)


def align(n: int, unit: int) -> int:
    return -(-n // unit) * unit
