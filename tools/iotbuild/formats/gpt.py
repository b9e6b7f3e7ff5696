"""GUID Partition Table on a disk image file: protective MBR, primary and backup headers and entry arrays.

    layout = GptLayout(derive_guid("Product"), 512, total_sectors,
                       (GptPartition("EFIESP", ESP_TYPE, 2048, 133119, derive_guid("Product", "EFIESP")),))
    with open("disk.raw", "r+b") as f:
        write_gpt(f, layout)          # touches only the MBR/GPT sectors at the start and at the end
        assert read_gpt(f) == layout

Reference: UEFI 2.10 §5.2.3 (protective MBR), §5.3.2 (GPT header), §5.3.3 (partition entry);
/work/shared/reference/disk-and-boot-recipe.md (``sgdisk -v`` as the outside check). Always 128 entries of
128 bytes; sector size 512 or 4096. GUIDs are stored mixed-endian (``uuid.UUID.bytes_le``).
"""

from __future__ import annotations

import struct
import uuid
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import BinaryIO, ClassVar

from ..errors import FormatError, InputError
from ._struct import unpack

SIGNATURE = b"EFI PART"
REVISION = 0x00010000
HEADER_SIZE = 92
ENTRY_COUNT = 128
ENTRY_SIZE = 128
ENTRY_ARRAY_BYTES = ENTRY_COUNT * ENTRY_SIZE   # 16 KiB
SECTOR_SIZES = (512, 4096)
NAME_CHARS = 36                                # PartitionName: CHAR16[36]

ESP_TYPE = uuid.UUID("C12A7328-F81F-11D2-BA4B-00A0C93EC93B")         # sgdisk EF00
BASIC_DATA_TYPE = uuid.UUID("EBD0A0A2-B9E5-4433-87C0-68B6B72699C7")  # sgdisk 0700
MSR_TYPE = uuid.UUID("E3C9E316-0B5C-4DB8-817D-F92DF00215AE")         # sgdisk 0C01

# Attribute bits: UEFI §5.3.3 table 5.8 (0-2), Microsoft basic-data bits (60-63).
ATTR_REQUIRED = 1 << 0
ATTR_NO_BLOCK_IO = 1 << 1
ATTR_LEGACY_BIOS_BOOTABLE = 1 << 2
ATTR_READ_ONLY = 1 << 60
ATTR_SHADOW_COPY = 1 << 61
ATTR_HIDDEN = 1 << 62
ATTR_NO_DRIVE_LETTER = 1 << 63

# Namespace of derive_guid, fixed forever: changing it would change every disk's GUIDs.
GUID_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "urn:iotbuild:gpt")

_MBR_SIGNATURE = b"\x55\xaa"
_PROTECTIVE_TYPE = 0xEE
_MBR_ENTRY = struct.Struct("<B3sB3sII")  # BootIndicator StartingCHS OSType EndingCHS StartingLBA SizeInLBA


def derive_guid(*seeds: str) -> uuid.UUID:
    """A GUID that depends only on ``seeds``: ``derive_guid(product)`` for the disk,
    ``derive_guid(product, partition_name)`` for a partition."""
    if not seeds:
        raise ValueError("derive_guid needs at least one seed string")
    return uuid.uuid5(GUID_NAMESPACE, "/".join(seeds))


@dataclass(frozen=True, slots=True)
class GptPartition:  # UEFI §5.3.3 GPT Partition Entry (128 bytes)
    LAYOUT: ClassVar[struct.Struct] = struct.Struct(
        "<16s"  # PartitionTypeGUID
        "16s"   # UniquePartitionGUID
        "Q"     # StartingLBA
        "Q"     # EndingLBA (inclusive)
        "Q"     # Attributes
        "72s"   # PartitionName, CHAR16[36], UTF-16LE, NUL-padded
    )
    name: str
    type_guid: uuid.UUID
    first_lba: int
    last_lba: int
    unique_guid: uuid.UUID
    attributes: int = 0

    @property
    def sectors(self) -> int:
        return self.last_lba - self.first_lba + 1

    @classmethod
    def from_bytes(cls, buf: bytes | memoryview, offset: int = 0) -> GptPartition | None:
        """The entry at ``offset``, or None for an unused entry (type GUID all zero)."""
        ptype, unique, first, last, attrs, raw = unpack(cls.LAYOUT, buf, offset, "GPT partition entry")
        if ptype == bytes(16):
            return None
        try:
            name = raw.decode("utf-16-le").split("\0", 1)[0]
        except UnicodeDecodeError:
            raise FormatError(f"GPT partition entry name is not UTF-16LE: {raw.hex()}",
                              offset=offset + 56) from None
        if last < first:
            raise FormatError(f"GPT partition {name!r}: EndingLBA {last} < StartingLBA {first}",
                              offset=offset + 40)
        return cls(name, uuid.UUID(bytes_le=ptype), first, last, uuid.UUID(bytes_le=unique), attrs)

    def to_bytes(self) -> bytes:
        raw = self.name.encode("utf-16-le")
        if len(raw) > 2 * NAME_CHARS:
            raise InputError(f"GPT partition name {self.name!r} is longer than {NAME_CHARS} UTF-16 "
                             "characters",
                             hint="shorten the partition name")
        return self.LAYOUT.pack(self.type_guid.bytes_le, self.unique_guid.bytes_le, self.first_lba,
                                self.last_lba, self.attributes, raw)


@dataclass(frozen=True, slots=True)
class GptHeader:  # UEFI §5.3.2 GPT Header (92 bytes, rest of the sector zero)
    LAYOUT: ClassVar[struct.Struct] = struct.Struct(
        "<8s"   # Signature "EFI PART"
        "I"     # Revision 0x00010000
        "I"     # HeaderSize 92
        "I"     # HeaderCRC32 (over HeaderSize bytes, this field zero)
        "I"     # Reserved
        "Q"     # MyLBA
        "Q"     # AlternateLBA
        "Q"     # FirstUsableLBA
        "Q"     # LastUsableLBA
        "16s"   # DiskGUID
        "Q"     # PartitionEntryLBA
        "I"     # NumberOfPartitionEntries
        "I"     # SizeOfPartitionEntry
        "I"     # PartitionEntryArrayCRC32
    )
    my_lba: int
    alternate_lba: int
    first_usable_lba: int
    last_usable_lba: int
    disk_guid: uuid.UUID
    entries_lba: int
    entry_count: int = ENTRY_COUNT
    entry_size: int = ENTRY_SIZE
    entries_crc: int = 0

    @classmethod
    def from_bytes(cls, buf: bytes | memoryview, offset: int = 0) -> GptHeader:
        fields = unpack(cls.LAYOUT, buf, offset, "GPT header")
        sig, rev, size, crc, _res, my, alt, first, last, guid, elba, count, esize, ecrc = fields
        if sig != SIGNATURE:
            raise FormatError(f"GPT header signature {sig!r} is not 'EFI PART'", offset=offset)
        if rev != REVISION:
            raise FormatError(f"GPT header Revision 0x{rev:08x} unsupported (only 0x00010000)",
                              offset=offset + 8)
        if size != HEADER_SIZE:
            raise FormatError(f"GPT HeaderSize {size} unsupported (only 92)", offset=offset + 12)
        body = bytearray(buf[offset:offset + HEADER_SIZE])
        body[16:20] = bytes(4)
        if zlib.crc32(body) != crc:
            raise FormatError(f"GPT HeaderCRC32 0x{crc:08x} does not match the header (computed "
                              f"0x{zlib.crc32(body):08x})", offset=offset + 16)
        if esize != ENTRY_SIZE or count != ENTRY_COUNT:
            raise FormatError(f"GPT entry array of {count} x {esize} bytes unsupported (only 128 x 128)",
                              offset=offset + 80)
        return cls(my, alt, first, last, uuid.UUID(bytes_le=guid), elba, count, esize, ecrc)

    def to_bytes(self) -> bytes:
        """The 92-byte header with its CRC filled in."""
        def pack(crc: int) -> bytes:
            return self.LAYOUT.pack(SIGNATURE, REVISION, HEADER_SIZE, crc, 0, self.my_lba, self.alternate_lba,
                                    self.first_usable_lba, self.last_usable_lba, self.disk_guid.bytes_le,
                                    self.entries_lba, self.entry_count, self.entry_size, self.entries_crc)
        return pack(zlib.crc32(pack(0)))


@dataclass(frozen=True, slots=True)
class GptLayout:
    """A whole disk's partitioning; ``partitions`` in entry-array order (unused entries are not kept)."""

    disk_guid: uuid.UUID
    sector_size: int
    total_sectors: int
    partitions: tuple[GptPartition, ...] = ()

    @property
    def entry_sectors(self) -> int:
        return ENTRY_ARRAY_BYTES // self.sector_size

    @property
    def first_usable_lba(self) -> int:
        return 2 + self.entry_sectors

    @property
    def last_usable_lba(self) -> int:
        return self.total_sectors - 2 - self.entry_sectors

    @property
    def disk_bytes(self) -> int:
        return self.total_sectors * self.sector_size

    def find(self, name: str) -> GptPartition:
        for p in self.partitions:
            if p.name == name:
                return p
        raise KeyError(name)

    def check(self) -> None:
        """InputError if the layout cannot be written (sector size, sizes, overlaps, names)."""
        if self.sector_size not in SECTOR_SIZES:
            raise InputError(f"sector size {self.sector_size} unsupported", hint="use 512 or 4096")
        if self.last_usable_lba < self.first_usable_lba:
            raise InputError(f"disk of {self.total_sectors} sectors is too small for a GPT")
        if len(self.partitions) > ENTRY_COUNT:
            raise InputError(f"{len(self.partitions)} partitions; a GPT holds at most {ENTRY_COUNT}")
        names: set[str] = set()
        spans = sorted((p.first_lba, p.last_lba, p.name) for p in self.partitions)
        for p in self.partitions:
            if not self.first_usable_lba <= p.first_lba <= p.last_lba <= self.last_usable_lba:
                raise InputError(f"partition {p.name!r} spans LBA {p.first_lba}..{p.last_lba}, outside the "
                                 f"usable LBA {self.first_usable_lba}..{self.last_usable_lba}",
                                 hint="shrink the partition or grow the disk")
            if p.type_guid.int == 0:
                raise InputError(f"partition {p.name!r} has the all-zero type GUID (it marks unused entries)")
            if p.name in names:
                raise InputError(f"partition name {p.name!r} is used twice",
                                 hint="give each partition its own name")
            names.add(p.name)
            p.to_bytes()  # name length
        for (_f1, l1, n1), (f2, _l2, n2) in zip(spans, spans[1:]):
            if f2 <= l1:
                raise InputError(f"partitions {n1!r} and {n2!r} overlap at LBA {f2}")

    def entry_array(self) -> bytes:
        return b"".join(p.to_bytes() for p in self.partitions).ljust(ENTRY_ARRAY_BYTES, b"\0")

    def headers(self) -> tuple[GptHeader, GptHeader]:
        """(primary, backup) headers with their CRCs."""
        crc = zlib.crc32(self.entry_array())
        last = self.total_sectors - 1
        primary = GptHeader(1, last, self.first_usable_lba, self.last_usable_lba, self.disk_guid, 2,
                            entries_crc=crc)
        backup = GptHeader(last, 1, self.first_usable_lba, self.last_usable_lba, self.disk_guid,
                           last - self.entry_sectors, entries_crc=crc)
        return primary, backup

    def primary_bytes(self) -> bytes:
        """Sectors 0 .. first_usable_lba-1: protective MBR, primary header, entry array."""
        self.check()
        primary, _ = self.headers()
        ss = self.sector_size
        return (protective_mbr(self.total_sectors).ljust(ss, b"\0") + primary.to_bytes().ljust(ss, b"\0")
                + self.entry_array())

    def backup_bytes(self) -> bytes:
        """The last 1 + entry_sectors sectors: backup entry array, then the backup header (last sector)."""
        self.check()
        _, backup = self.headers()
        return self.entry_array() + backup.to_bytes().ljust(self.sector_size, b"\0")


def protective_mbr(total_sectors: int) -> bytes:
    """UEFI §5.2.3: one 0xEE partition from LBA 1 over the whole disk (capped at 2^32-1 sectors)."""
    size = min(total_sectors - 1, 0xFFFFFFFF)
    entry = _MBR_ENTRY.pack(0, b"\x00\x02\x00", _PROTECTIVE_TYPE, b"\xff\xff\xff", 1, size)
    return bytes(446) + entry + bytes(48) + _MBR_SIGNATURE


def write_gpt(fp: BinaryIO, layout: GptLayout) -> None:
    """Write the protective MBR and primary GPT at the start of ``fp`` and the backup GPT at its end.

    The file is extended (sparsely) to ``total_sectors * sector_size`` bytes if shorter; the sectors between
    the two GPTs (the partition contents) are not touched.
    """
    primary, backup = layout.primary_bytes(), layout.backup_bytes()
    end = fp.seek(0, 2)
    if end < layout.disk_bytes:
        fp.truncate(layout.disk_bytes)
    fp.seek(0)
    fp.write(primary)
    fp.seek(layout.disk_bytes - len(backup))
    fp.write(backup)
    fp.flush()


def _read_at(fp: BinaryIO, offset: int, size: int, what: str) -> bytes:
    fp.seek(offset)
    data = fp.read(size)
    if len(data) != size:
        raise FormatError(f"{what}: truncated ({len(data)} of {size} bytes)", offset=offset)
    return data


def _read_entries(fp: BinaryIO, header: GptHeader, sector_size: int, which: str) -> tuple[GptPartition, ...]:
    at = header.entries_lba * sector_size
    raw = _read_at(fp, at, ENTRY_ARRAY_BYTES, f"{which} GPT entry array")
    if zlib.crc32(raw) != header.entries_crc:
        raise FormatError(f"{which} GPT PartitionEntryArrayCRC32 0x{header.entries_crc:08x} does not match "
                          f"the entry array (computed 0x{zlib.crc32(raw):08x})", offset=at)
    parts = []
    for i in range(ENTRY_COUNT):
        try:
            p = GptPartition.from_bytes(raw, i * ENTRY_SIZE)
        except FormatError as e:
            raise FormatError(e.what, offset=at + (e.offset or 0)) from None
        if p is not None:
            parts.append(p)
    return tuple(parts)


def read_gpt(fp: BinaryIO, sector_size: int | None = None) -> GptLayout:
    """Read and check a GPT disk: protective MBR, both headers and both entry arrays (signatures, CRCs, and
    that the two copies agree). ``sector_size`` is found by looking for the header at 512 and 4096."""
    mbr = _read_at(fp, 0, 512, "protective MBR")
    if mbr[510:512] != _MBR_SIGNATURE:
        raise FormatError(f"MBR signature {mbr[510:512].hex()} is not 55aa: not a partitioned disk",
                          offset=510)
    if not any(mbr[446 + 16 * i + 4] == _PROTECTIVE_TYPE for i in range(4)):
        raise FormatError("MBR has no 0xEE (GPT protective) partition: not a GPT disk", offset=446)
    if sector_size is None:
        for size in SECTOR_SIZES:
            fp.seek(size)
            if fp.read(8) == SIGNATURE:
                sector_size = size
                break
        else:
            raise FormatError("no GPT header ('EFI PART') at LBA 1 for sector size 512 or 4096", offset=512)
    elif sector_size not in SECTOR_SIZES:
        raise InputError(f"sector size {sector_size} unsupported", hint="use 512 or 4096")
    ss = sector_size
    primary = _parse_header(fp, ss, ss, "primary")
    if primary.my_lba != 1:
        raise FormatError(f"primary GPT header MyLBA is {primary.my_lba}, not 1", offset=ss + 24)
    parts = _read_entries(fp, primary, ss, "primary")
    backup = _parse_header(fp, primary.alternate_lba * ss, ss, "backup")
    if backup.my_lba != primary.alternate_lba or backup.alternate_lba != 1:
        raise FormatError(f"backup GPT header MyLBA/AlternateLBA {backup.my_lba}/{backup.alternate_lba} do "
                          f"not match the primary ({primary.alternate_lba}/1)",
                          offset=primary.alternate_lba * ss + 24)
    if (backup.disk_guid, backup.first_usable_lba, backup.last_usable_lba) != (
            primary.disk_guid, primary.first_usable_lba, primary.last_usable_lba):
        raise FormatError("backup GPT header differs from the primary (DiskGUID or usable LBAs)",
                          offset=primary.alternate_lba * ss)
    if _read_entries(fp, backup, ss, "backup") != parts:
        raise FormatError("backup GPT entry array differs from the primary", offset=backup.entries_lba * ss)
    return GptLayout(primary.disk_guid, ss, primary.alternate_lba + 1, parts)


def _parse_header(fp: BinaryIO, at: int, sector_size: int, which: str) -> GptHeader:
    raw = _read_at(fp, at, sector_size, f"{which} GPT header")
    try:
        return GptHeader.from_bytes(raw)
    except FormatError as e:
        raise FormatError(f"{which} {e.what}", offset=at + (e.offset or 0)) from None


def layout_for(disk_guid: uuid.UUID, sector_size: int, total_sectors: int,
               partitions: Sequence[GptPartition]) -> GptLayout:
    """A checked layout (InputError on overlaps, bad sizes or names)."""
    layout = GptLayout(disk_guid, sector_size, total_sectors, tuple(partitions))
    layout.check()
    return layout
