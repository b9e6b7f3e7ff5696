"""NTFS partition images built from a staged folder with ``mkntfs`` and ``wimlib-imagex``, never mounted.

    info = build_ntfs(stage, Path("MainOS.img"), size=819200 * 512, label="MainOS", start_lba=133120,
                      epoch=build_epoch(), serial=0x1122334455667788, name="MainOS", workdir=work)

Reference: disk-and-boot-recipe.md step 2 (the tested commands); the NTFS layout as the Linux-NTFS project
documents it ("NTFS documentation", R. Russon and Y. Fledel) and ntfs-3g's ``layout.h`` names it: the boot
sector, FILE records with their update sequence array, attributes ($STANDARD_INFORMATION 0x10, $FILE_NAME
0x30, $DATA 0x80, $INDEX_ROOT 0x90, $INDEX_ALLOCATION 0xA0) and INDX blocks.

Steps: ``mkntfs -T`` formats a file of exactly ``size`` bytes, :func:`set_serial` sets the serial,
the folder is captured into one uncompressed WIM in ``workdir`` (with an empty exclusion list: by default
wimlib leaves out ``/pagefile.sys``, ``/System Volume Information``, ``/Windows/CSC`` and others) and
``wimlib-imagex apply`` writes it into the image through libntfs-3g (once: a second apply fails with "File
exists").

Reproducibility. Two builds of one tree with the same ``epoch`` give the same bytes (a test checks it).
Compared with ``cmp -l``, two plain builds differ in exactly these places:

* the volume serial (boot sector 0x48 and its backup in the last sector): written by :func:`set_serial`
  (``ntfslabel --new-serial=0`` would choose a random one);
* the times of the system files mkntfs creates: ``mkntfs -T`` (it writes 1970-01-01);
* every time libntfs-3g stamps while wimlib writes: the change time and, for folders, all four times of
  $STANDARD_INFORMATION, the copies in $FILE_NAME and in the parent folder's index entries. libntfs-3g reads
  the clock (no ``SOURCE_DATE_EPOCH``), wimlib has no option for it, and the WIM keeps no change time;
* stale bytes past the end of the used part of FILE records and INDX blocks: copies of attributes or index
  entries that moved (when a record is rewritten or a block split), holding those clock times.

The last two are fixed by :func:`normalize`, a post-processing step that sets all four times of every
$STANDARD_INFORMATION, $FILE_NAME and ``$I30`` index entry to ``epoch`` and zeroes the unused tail of every
FILE record and INDX block, re-applying the update sequence fixups and copying the records $MFTMirr mirrors.
It changes no size, allocation or link, so ``ntfsfix -n`` stays clean. Everything else (allocation, $UpCase,
$Secure, $LogFile, record and cluster numbers) already came out the same, also when the staged folder was
written in another order (wimlib sorts names). Files carry no security descriptors (the WIM is captured on
Linux), so ntfs-3g gives them none of their own.
"""

from __future__ import annotations

import os
import struct
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from ..errors import FormatError, InputError, ToolError
from ..run import run
from .fat import FsInfo, Tree, capacity_error, check_size, partial_output, scan_tree, tool_timeout

__all__ = ["FsInfo", "build_ntfs", "capacity_error", "normalize", "read_boot_sector", "set_serial",
           "volume_usage"]

MKNTFS = "mkntfs"
WIMLIB = "wimlib-imagex"
MIN_SIZE = 2 << 20                    # mkntfs refuses less than about 1 MiB; 2 MiB leaves room for content
LABEL_CHARS = 32                      # $VOLUME_NAME holds up to 32 UTF-16 characters for Windows
HEADS, SECTORS_PER_TRACK = 255, 63    # the geometry Windows writes into every NTFS boot sector
_FILETIME_1970 = 116444736000000000  # 100-ns intervals from 1601-01-01 to 1970-01-01
_FIXUP_STRIDE = 512                   # NTFS_BLOCK_SIZE: the update sequence covers every 512 bytes
_CHUNK = 1 << 20                      # the $MFT is read and written in pieces of this size

AT_STANDARD_INFORMATION = 0x10
AT_ATTRIBUTE_LIST = 0x20
AT_FILE_NAME = 0x30
AT_DATA = 0x80
AT_INDEX_ROOT = 0x90
AT_INDEX_ALLOCATION = 0xA0
AT_END = 0xFFFFFFFF
MFT_RECORD_IN_USE = 0x0001
INDEX_ENTRY_END = 0x0002
I30 = "$I30"                          # the name of a folder's filename index

_BOOT = struct.Struct(
    "<3x8s"  # jump, OEM id "NTFS    "
    "H"      # bytes_per_sector
    "B"      # sectors_per_cluster (a negative power of two above 128)
    "7x"     # reserved sectors, 0 FATs, root entries, sectors (all 0)
    "B"      # media descriptor
    "2x"     # sectors per FAT (0)
    "H"      # sectors_per_track
    "H"      # heads
    "I"      # hidden_sectors
    "4x"     # large sectors (0)
    "4x"     # physical drive, current head, extended signature, reserved
    "q"      # number_of_sectors
    "q"      # mft_lcn
    "q"      # mftmirr_lcn
    "b"      # clusters_per_mft_record (negative: 2**-n bytes)
    "3x"
    "b"      # clusters_per_index_record
    "3x"
    "Q"      # volume_serial_number
)
_RECORD = struct.Struct(
    "<4s"    # magic "FILE" / "INDX"
    "H"      # usa_ofs
    "H"      # usa_count
)
_FILE_HEADER = struct.Struct(
    "<16x"   # magic, usa_ofs, usa_count, lsn
    "H"      # sequence_number
    "H"      # link_count
    "H"      # attrs_offset
    "H"      # flags
    "I"      # bytes_in_use
    "I"      # bytes_allocated
    "Q"      # base_mft_record (0 in a base record)
)
_ATTR = struct.Struct(
    "<I"     # type
    "I"      # length
    "B"      # non_resident
    "B"      # name_length (UTF-16 units)
    "H"      # name_offset
)
_RESIDENT = struct.Struct("<16xIH")            # value_length value_offset
_NONRESIDENT = struct.Struct("<16xqqH6xqqq")   # lowest_vcn highest_vcn mapping_pairs_offset (…) allocated
#                                                data_size initialized_size
_INDEX_HEADER = struct.Struct("<III")          # entries_offset index_length allocated_size
_INDEX_ENTRY = struct.Struct("<8xHHH")         # length key_length flags
_TIMES = struct.Struct("<4Q")                  # creation, data change, MFT change, last access


@dataclass(frozen=True)
class BootSector:
    """The NTFS boot sector fields this module uses."""

    sector_size: int
    cluster_size: int
    sectors_per_track: int
    heads: int
    hidden_sectors: int
    total_sectors: int
    mft_lcn: int
    mftmirr_lcn: int
    mft_record_size: int
    index_block_size: int
    serial: int

    @property
    def clusters(self) -> int:
        return self.total_sectors * self.sector_size // self.cluster_size

    @classmethod
    def from_bytes(cls, buf: bytes) -> BootSector:
        if len(buf) < 512 or buf[3:11] != b"NTFS    " or buf[510:512] != b"\x55\xaa":
            raise FormatError("not an NTFS boot sector (no 'NTFS    ' id or 55 AA signature)", offset=0)
        (_oem, bps, spc, _media, spt, heads, hidden, sectors, mft, mirr, per_record, per_index,
         serial) = _BOOT.unpack_from(buf, 0)
        if bps not in (256, 512, 1024, 2048, 4096):
            raise FormatError(f"bytes_per_sector {bps} is not a power of two from 256 to 4096", offset=0x0B)
        sectors_per_cluster = spc if spc <= 0x80 else 1 << (256 - spc)
        cluster = bps * sectors_per_cluster

        def size(v: int, at: int) -> int:
            n = cluster * v if v > 0 else 1 << -v
            if n < _FIXUP_STRIDE or n & (n - 1):
                raise FormatError(f"record size {n} (0x{v & 0xFF:02x}) is not a power of two >= 512",
                                  offset=at)
            return n

        return cls(bps, cluster, spt, heads, hidden, sectors, mft, mirr, size(per_record, 0x40),
                   size(per_index, 0x44), serial)


def read_boot_sector(image: Path) -> BootSector:
    with open(image, "rb") as f:
        try:
            return BootSector.from_bytes(f.read(512))
        except FormatError as e:
            raise e.with_path(image) from None


def set_serial(image: Path, serial: int) -> None:
    """Write the volume serial into the boot sector and its backup in the volume's last sector.

    Done here rather than with ``ntfslabel --new-serial=…``, which picks a random serial when given 0."""
    boot = read_boot_sector(image)
    backup = boot.total_sectors * boot.sector_size
    with open(image, "r+b") as f:
        primary = f.read(boot.sector_size)
        f.seek(backup)
        if f.read(boot.sector_size) != primary:
            raise FormatError("the backup boot sector differs from the boot sector", offset=backup, path=image)
        for where in (0, backup):
            f.seek(where + 0x48)
            f.write(struct.pack("<Q", serial))


def filetime(epoch: int) -> int:
    """NTFS time (100 ns since 1601, UTC) of a Unix time."""
    return epoch * 10_000_000 + _FILETIME_1970


# ------------------------------------------------------------------------------------------- records and runs


def unfix(buf: bytearray, offset: int, what: str) -> None:
    """Undo the update sequence fixups of a FILE record or INDX block in place (checking each one)."""
    usa_ofs, usa_count = _RECORD.unpack_from(buf, 0)[1:]
    if usa_count != len(buf) // _FIXUP_STRIDE + 1 or usa_ofs + 2 * usa_count > _FIXUP_STRIDE:
        raise FormatError(f"{what}: update sequence array of {usa_count} at 0x{usa_ofs:x} does not fit "
                          f"{len(buf)} bytes", offset=offset)
    usn = buf[usa_ofs:usa_ofs + 2]
    for i in range(1, usa_count):
        end = i * _FIXUP_STRIDE
        if buf[end - 2:end] != usn:
            raise FormatError(f"{what}: update sequence number mismatch in its sector {i} (torn write)",
                              offset=offset + end - 2)
        buf[end - 2:end] = buf[usa_ofs + 2 * i:usa_ofs + 2 * i + 2]


def refix(buf: bytearray) -> None:
    """Apply the update sequence fixups again (same sequence number) before writing back."""
    usa_ofs, usa_count = _RECORD.unpack_from(buf, 0)[1:]
    usn = buf[usa_ofs:usa_ofs + 2]
    for i in range(1, usa_count):
        end = i * _FIXUP_STRIDE
        buf[usa_ofs + 2 * i:usa_ofs + 2 * i + 2] = buf[end - 2:end]
        buf[end - 2:end] = usn


def decode_runs(pairs: bytes | bytearray, offset: int = 0) -> list[tuple[int | None, int]]:
    """A mapping-pairs array as ``[(lcn or None for sparse, length in clusters), …]``."""
    runs: list[tuple[int | None, int]] = []
    i, lcn = 0, 0
    while i < len(pairs) and pairs[i]:
        header = pairs[i]
        n_len, n_off = header & 0x0F, header >> 4
        if not n_len or i + 1 + n_len + n_off > len(pairs):
            raise FormatError(f"mapping pairs: bad run header 0x{header:02x}", offset=offset + i)
        length = int.from_bytes(pairs[i + 1:i + 1 + n_len], "little")
        i += 1 + n_len
        if n_off:
            lcn += int.from_bytes(pairs[i:i + n_off], "little", signed=True)
            runs.append((lcn, length))
        else:
            runs.append((None, length))
        i += n_off
    return runs


@dataclass(frozen=True)
class Attribute:
    type: int
    offset: int              # in the record
    length: int
    resident: bool
    name: str

    def value_offset(self, rec: bytes | bytearray) -> int:
        value_offset: int = _RESIDENT.unpack_from(rec, self.offset)[1]
        return self.offset + value_offset

    def nonresident(self, rec: bytes | bytearray) -> tuple[int, list[tuple[int | None, int]], int]:
        """(lowest_vcn, runs, data_size) of a non-resident attribute."""
        lowest, _highest, mp_ofs, _alloc, data_size, _init = _NONRESIDENT.unpack_from(rec, self.offset)
        runs = decode_runs(rec[self.offset + mp_ofs:self.offset + self.length], self.offset + mp_ofs)
        return lowest, runs, data_size


def attributes(rec: bytes | bytearray, offset: int) -> Iterator[Attribute]:
    """The attributes of a FILE record whose fixups are undone."""
    _seq, _links, pos, _flags, in_use, _alloc, _base = _FILE_HEADER.unpack_from(rec, 0)
    end = min(in_use, len(rec))
    while pos + 4 <= end:
        if struct.unpack_from("<I", rec, pos)[0] == AT_END:
            return
        if pos + 16 > end:
            raise FormatError("attribute header overruns its record", offset=offset + pos)
        atype, length, non_resident, name_len, name_ofs = _ATTR.unpack_from(rec, pos)
        if length < 16 or pos + length > end:
            raise FormatError(f"attribute 0x{atype:x} of length {length} overruns its record",
                              offset=offset + pos)
        name = rec[pos + name_ofs:pos + name_ofs + 2 * name_len].decode("utf-16-le", "replace")
        yield Attribute(atype, pos, length, not non_resident, name)
        pos += length


def _stamp_index_entries(buf: bytearray, header: int, stamp: bytes, offset: int) -> int:
    """Set the times of every $FILE_NAME key in the index node whose INDEX_HEADER is at ``header``;
    returns the end of the node's used part."""
    entries_ofs, index_length, _alloc = _INDEX_HEADER.unpack_from(buf, header)
    pos, end = header + entries_ofs, header + index_length
    if end > len(buf):
        raise FormatError(f"index node length {index_length} overruns its block", offset=offset + header)
    while pos + 16 <= end:
        length, key_length, flags = _INDEX_ENTRY.unpack_from(buf, pos)
        if key_length:
            if key_length < 0x42 or pos + 16 + key_length > end:
                raise FormatError(f"index entry key of {key_length} bytes is no $FILE_NAME",
                                  offset=offset + pos)
            buf[pos + 16 + 8:pos + 16 + 40] = stamp
        if flags & INDEX_ENTRY_END:
            break
        if length < 16:
            raise FormatError(f"index entry length {length}", offset=offset + pos)
        pos += length
    return int(end)


# --------------------------------------------------------------------------------------------------- volume


@dataclass
class _Stream:
    """A non-resident attribute's clusters, joined from its pieces (extension records carry later VCNs)."""

    pieces: list[tuple[int, list[tuple[int | None, int]]]] = field(default_factory=list)
    data_size: int = 0
    block_size: int = 0

    def extents(self) -> list[tuple[int, int | None, int]]:
        """``[(first vcn, lcn, clusters), …]`` in VCN order."""
        out = []
        for lowest, runs in sorted(self.pieces, key=lambda p: p[0]):
            vcn = lowest
            for lcn, length in runs:
                out.append((vcn, lcn, length))
                vcn += length
        return out


def _ranges(extents: list[tuple[int, int | None, int]], cluster: int, start: int,
            length: int) -> list[tuple[int, int]] | None:
    """Byte ranges ``[(disk offset, bytes), …]`` of ``length`` bytes from ``start`` in a stream, or None when
    part of it is sparse or missing."""
    out = []
    pos, end = start, start + length
    for vcn, lcn, count in extents:
        lo, hi = vcn * cluster, (vcn + count) * cluster
        if hi <= pos or lo >= end:
            continue
        if lcn is None or lo > pos:
            return None
        take = min(hi, end) - pos
        out.append((lcn * cluster + pos - lo, take))
        pos += take
        if pos == end:
            return out
    return None


def _read_ranges(f: BinaryIO, ranges: list[tuple[int, int]]) -> bytearray:
    buf = bytearray()
    for disk, n in ranges:
        f.seek(disk)
        buf += f.read(n)
    return buf


def _write_ranges(f: BinaryIO, ranges: list[tuple[int, int]], buf: bytes | bytearray) -> None:
    pos = 0
    for disk, n in ranges:
        f.seek(disk)
        f.write(buf[pos:pos + n])
        pos += n


def _mft_stream(f: BinaryIO, boot: BootSector, path: Path) -> tuple[list[tuple[int, int | None, int]], int]:
    """Extents and data size of the $MFT's own $DATA, from record 0."""
    where = boot.mft_lcn * boot.cluster_size
    f.seek(where)
    rec = bytearray(f.read(boot.mft_record_size))
    if rec[:4] != b"FILE":
        raise FormatError("$MFT record 0 has no FILE signature", offset=where, path=path)
    unfix(rec, where, "$MFT record 0")
    for attr in attributes(rec, where):
        if attr.type == AT_ATTRIBUTE_LIST:
            raise FormatError("$MFT has an attribute list (more fragments than one record holds), which "
                              "this reader does not follow", offset=where, path=path)
        if attr.type == AT_DATA and not attr.resident and not attr.name:
            lowest, runs, data_size = attr.nonresident(rec)
            s = _Stream([(lowest, runs)], data_size)
            return s.extents(), data_size
    raise FormatError("$MFT record 0 has no $DATA attribute", path=path)


def _record_windows(f: BinaryIO, boot: BootSector,
                    path: Path) -> Iterator[tuple[int, list[tuple[int, int]], bytearray]]:
    """``(first record number, disk ranges, bytes)`` for the $MFT in windows of whole records up to 1 MiB
    (a record may straddle two runs); a caller that changes the bytes writes them back to the ranges."""
    extents, data_size = _mft_stream(f, boot, path)
    rs = boot.mft_record_size
    step = max(rs, _CHUNK // rs * rs)
    for start in range(0, data_size - data_size % rs, step):
        length = min(step, data_size - data_size % rs - start)
        ranges = _ranges(extents, boot.cluster_size, start, length)
        if ranges is None:
            raise FormatError(f"$MFT has no clusters for bytes {start:,}-{start + length:,}", path=path)
        window = _read_ranges(f, ranges)
        if len(window) != length:
            raise FormatError("image ends inside the $MFT", offset=ranges[-1][0], path=path)
        yield start // rs, ranges, window


def normalize(image: Path, epoch: int) -> None:
    """Set every time of every file and folder to ``epoch`` and zero the unused tails of FILE records and
    INDX blocks (see the module doc). Only those bytes change."""
    boot = read_boot_sector(image)
    stamp = _TIMES.pack(*[filetime(epoch)] * 4)
    rs = boot.mft_record_size
    folders: dict[int, _Stream] = {}
    with open(image, "r+b") as f:
        for first, ranges, window in _record_windows(f, boot, image):
            for i in range(len(window) // rs):
                if window[i * rs:i * rs + 4] == b"FILE":
                    rec = bytearray(window[i * rs:(i + 1) * rs])
                    _stamp_record(rec, first + i, _disk_offset(ranges, i * rs), stamp, folders)
                    window[i * rs:(i + 1) * rs] = rec
            _write_ranges(f, ranges, window)
        for number, stream in folders.items():
            _stamp_index_blocks(f, boot, stream, stamp, number)
        _copy_mirror(f, boot, image)


def _disk_offset(ranges: list[tuple[int, int]], pos: int) -> int:
    """Where byte ``pos`` of a buffer read from ``ranges`` lies on disk (for messages)."""
    for disk, n in ranges:
        if pos < n:
            return disk + pos
        pos -= n
    return -1


def _stamp_record(rec: bytearray, number: int, offset: int, stamp: bytes,
                  folders: dict[int, _Stream]) -> None:
    """Stamp one FILE record in place (fixups applied again); note its folder index pieces in ``folders``."""
    unfix(rec, offset, f"MFT record {number}")
    _seq, _links, _attrs, flags, in_use, _alloc, base = _FILE_HEADER.unpack_from(rec, 0)
    if in_use > len(rec) or in_use < _FILE_HEADER.size:
        raise FormatError(f"MFT record {number}: bytes_in_use {in_use}", offset=offset + 0x18)
    rec[in_use:] = bytes(len(rec) - in_use)
    if flags & MFT_RECORD_IN_USE:
        owner = base & 0xFFFFFFFFFFFF or number
        for attr in attributes(rec, offset):
            if attr.type == AT_STANDARD_INFORMATION and attr.resident:
                v = attr.value_offset(rec)
                rec[v:v + 32] = stamp
            elif attr.type == AT_FILE_NAME and attr.resident:
                v = attr.value_offset(rec)
                rec[v + 8:v + 40] = stamp
            elif attr.type == AT_INDEX_ROOT and attr.name == I30:
                v = attr.value_offset(rec)
                block_size, = struct.unpack_from("<I", rec, v + 8)
                folders.setdefault(owner, _Stream()).block_size = block_size
                _stamp_index_entries(rec, v + 16, stamp, offset)
            elif attr.type == AT_INDEX_ALLOCATION and attr.name == I30 and not attr.resident:
                lowest, runs, data_size = attr.nonresident(rec)
                stream = folders.setdefault(owner, _Stream())
                stream.pieces.append((lowest, runs))
                if lowest == 0:
                    stream.data_size = data_size
    refix(rec)


def _stamp_index_blocks(f: BinaryIO, boot: BootSector, stream: _Stream, stamp: bytes, number: int) -> None:
    if not stream.pieces:
        return
    block = stream.block_size or boot.index_block_size
    extents = stream.extents()
    for start in range(0, stream.data_size - block + 1, block):
        ranges = _ranges(extents, boot.cluster_size, start, block)
        if ranges is None:
            continue
        buf = _read_ranges(f, ranges)
        if buf[:4] != b"INDX":
            continue   # allocated but never used
        where = ranges[0][0]
        unfix(buf, where, f"index block {start // block} of folder (MFT record {number})")
        end = _stamp_index_entries(buf, 0x18, stamp, where)
        buf[end:] = bytes(len(buf) - end)
        refix(buf)
        _write_ranges(f, ranges, buf)


def _copy_mirror(f: BinaryIO, boot: BootSector, path: Path) -> None:
    """Copy the first records of $MFT over $MFTMirr (record 1's $DATA says how many it holds)."""
    rs = boot.mft_record_size
    f.seek(boot.mft_lcn * boot.cluster_size + rs)
    rec = bytearray(f.read(rs))
    unfix(rec, boot.mft_lcn * boot.cluster_size + rs, "MFT record 1 ($MFTMirr)")
    for attr in attributes(rec, 0):
        if attr.type == AT_DATA and not attr.resident and not attr.name:
            _lowest, runs, data_size = attr.nonresident(rec)
            break
    else:
        raise FormatError("$MFTMirr has no $DATA attribute", path=path)
    if not runs or runs[0][0] != boot.mftmirr_lcn or data_size > runs[0][1] * boot.cluster_size:
        raise FormatError("$MFTMirr is not one run at the boot sector's mftmirr_lcn", path=path)
    f.seek(boot.mft_lcn * boot.cluster_size)
    data = f.read(data_size)
    f.seek(boot.mftmirr_lcn * boot.cluster_size)
    f.write(data)


def volume_usage(image: Path) -> tuple[int, int]:
    """``(clusters, free clusters)`` as $Bitmap (record 6) counts them."""
    boot = read_boot_sector(image)
    cs, rs = boot.cluster_size, boot.mft_record_size
    clusters = boot.clusters
    with open(image, "rb") as f:
        extents, _size = _mft_stream(f, boot, image)
        ranges = _ranges(extents, cs, 6 * rs, rs)
        if ranges is None:
            raise FormatError("$MFT does not reach record 6 ($Bitmap)", path=image)
        rec = _read_ranges(f, ranges)
        unfix(rec, ranges[0][0], "MFT record 6 ($Bitmap)")
        data = next((a for a in attributes(rec, ranges[0][0]) if a.type == AT_DATA and not a.name), None)
        if data is None:
            raise FormatError("$Bitmap has no $DATA attribute", path=image)
        full, rest = divmod(clusters, 8)
        if data.resident:
            v = data.value_offset(rec)
            bitmap = bytes(rec[v:v + full + 1])
            used = int.from_bytes(bitmap[:full], "little").bit_count()
            last = bitmap[full] if rest and len(bitmap) > full else 0
        else:
            lowest, runs, _data_size = data.nonresident(rec)
            pieces = _ranges(_Stream([(lowest, runs)]).extents(), cs, 0, full + (1 if rest else 0))
            if pieces is None:
                raise FormatError("$Bitmap is shorter than the volume", path=image)
            used, last, seen = 0, 0, 0
            for disk, n in pieces:
                f.seek(disk)
                left = n
                while left:
                    piece = f.read(min(left, _CHUNK))
                    if not piece:
                        raise FormatError("image ends inside $Bitmap", offset=disk, path=image)
                    counted = piece[:max(0, full - seen)]
                    used += int.from_bytes(counted, "little").bit_count()
                    if len(counted) < len(piece):
                        last = piece[len(counted)]
                    seen += len(piece)
                    left -= len(piece)
        used += (last & ((1 << rest) - 1)).bit_count()
    return clusters, clusters - used


# --------------------------------------------------------------------------------------------------- builder


def ntfs_needed_bytes(tree: Tree, cluster_size: int, record_size: int, block_size: int) -> int:
    """Conservative bytes a tree takes on a fresh NTFS: a FILE record per file and folder, clusters for data
    too big to stay in its record, and index blocks at half fill for folders too big for their record."""
    def whole(n: int, unit: int) -> int:
        return -(-n // unit) * unit
    total = record_size * (len(tree.files) + len(tree.dirs)) + 64 * 1024   # + room for the $MFT to grow
    for f in tree.files:
        name_units = len(f.path.name.encode("utf-16-le")) // 2
        # header 0x38, $STANDARD_INFORMATION 0x60, $FILE_NAME 0x18 + 0x42 + name, $DATA header 0x18, end 8
        room = record_size - 0x38 - 0x60 - whole(0x18 + 0x42 + 2 * name_units, 8) - 0x18 - 8 - 64
        if f.size > room:
            total += whole(f.size, cluster_size)
    for names in tree.children.values():
        entries = sum(whole(0x10 + 0x42 + len(n.encode("utf-16-le")), 8) for n in names) + 0x18
        if entries > record_size // 2:
            usable = (block_size - 0x40) // 2
            total += (-(-entries // usable) + 1) * whole(block_size, cluster_size)
    return total


def _check_args(name: str, size: int, sector_size: int, label: str, start_lba: int, cluster_size: int,
                epoch: int, serial: int) -> None:
    check_size(name, size, sector_size)
    problems = []
    if size < MIN_SIZE:
        problems.append(f"{size:,} bytes are less than the {MIN_SIZE:,} an NTFS volume needs")
    if not 0 <= start_lba <= 0xFFFFFFFF:
        problems.append(f"start LBA {start_lba} does not fit the boot sector's 32-bit hidden sectors")
    if not 0 <= serial <= 0xFFFFFFFFFFFFFFFF:
        problems.append(f"serial {serial} is not a 64-bit number")
    if epoch < 0:
        problems.append(f"build time {epoch} is before 1970")
    if len(label.encode("utf-16-le")) // 2 > LABEL_CHARS:
        problems.append(f"label {label!r} is longer than {LABEL_CHARS} characters")
    if cluster_size < sector_size or cluster_size > 64 * 1024 or cluster_size & (cluster_size - 1):
        problems.append(f"cluster size {cluster_size} is not a power of two from the sector size to 65536")
    if problems:
        raise InputError(f"partition {name}: " + "; ".join(problems))


def build_ntfs(tree: Path, out: Path, *, size: int, sector_size: int = 512, label: str, start_lba: int,
               cluster_size: int | None = None, epoch: int, serial: int, name: str, workdir: Path) -> FsInfo:
    """Format an NTFS image of exactly ``size`` bytes at ``out`` and put ``tree`` into it, reproducibly.

    ``start_lba`` is the partition's first LBA (the boot sector's hidden sectors, with 255 heads and 63
    sectors per track); ``cluster_size`` defaults to 4096, Windows' choice up to 16 TiB; ``epoch`` becomes
    every time on the volume; ``serial`` the 64-bit volume serial; ``workdir`` holds the temporary WIM. Raises
    :class:`InputError` (via :func:`capacity_error`) when the content does not fit.
    """
    cluster = cluster_size or max(4096, sector_size)
    _check_args(name, size, sector_size, label, start_lba, cluster, epoch, serial)
    content = scan_tree(tree, name=name)
    workdir.mkdir(parents=True, exist_ok=True)
    with partial_output(out) as tmp:
        os.truncate(tmp, size)
        run([MKNTFS, "-F", "-Q", "-q", "-T", "-s", str(sector_size), "-c", str(cluster), "-L", label,
             "-p", str(start_lba), "-H", str(HEADS), "-S", str(SECTORS_PER_TRACK), tmp],
            timeout=tool_timeout(size // 64))
        set_serial(tmp, serial)
        boot = read_boot_sector(tmp)
        clusters, free = volume_usage(tmp)
        available = free * boot.cluster_size
        needed = ntfs_needed_bytes(content, boot.cluster_size, boot.mft_record_size, boot.index_block_size)
        if needed > available:
            raise capacity_error(name, needed, available, filesystem="NTFS")
        with tempfile.TemporaryDirectory(prefix="ntfs-", dir=workdir) as scratch:
            wim = Path(scratch) / "content.wim"
            # Without --config wimlib drops \pagefile.sys, \System Volume Information, \Windows\CSC and
            # others from the capture, silently; an empty exclusion list keeps every staged file.
            config = Path(scratch) / "capture.ini"
            config.write_text("[ExclusionList]\n", encoding="ascii")
            timeout = tool_timeout(content.content_bytes)
            run([WIMLIB, "capture", tree, wim, "content", "--compress=none", f"--config={config}"],
                timeout=timeout)
            try:
                run([WIMLIB, "apply", wim, "1", tmp], timeout=timeout)
            except ToolError as e:
                if "No space left" in e.stderr:
                    detail = "an estimate; wimlib ran out of space while writing, so it needs more"
                    raise capacity_error(name, needed, available, filesystem="NTFS", detail=detail) from None
                raise
        normalize(tmp, epoch)
        clusters, free = volume_usage(tmp)
        cs = boot.cluster_size
        info = FsInfo("NTFS", size, sector_size, cs, clusters, (clusters - free) * cs, free * cs,
                      len(content.files), len(content.dirs), content.content_bytes, label, boot.serial,
                      boot.hidden_sectors)
    return info

