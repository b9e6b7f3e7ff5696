"""REGF (Windows registry hive file) structures. Declarations, constants and tiny pure helpers only.

Reference: cab-authenticode-registry.md §5.3 (the layout, verified against hivex's ``images/minimal``),
which follows the public "Windows registry file format specification" (M. Suhanov). Field names in the
comments are that specification's (and Windows' ``_HBASE_BLOCK``/``_CM_KEY_NODE``/... where they differ).

Offsets stored in cells (``root_cell``, ``parent``, list entries, ...) are relative to the start of the
first hbin, i.e. file offset minus 4096. ``NIL`` (0xFFFFFFFF, Windows' HCELL_NIL) means "none".
Every cell is an ``int32`` size (negative = allocated, positive = free, a multiple of 8, counting the size
field itself) followed by the record; ``from_bytes`` and ``to_bytes`` below handle the record without the
size, :func:`cell` and :func:`cell_size` add it.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import ClassVar

from ...errors import FormatError
from .._struct import unpack

SIGNATURE = b"regf"
HBIN_SIGNATURE = b"hbin"
BASE_BLOCK_SIZE = 4096
HBIN_ALIGN = 4096  # hbin sizes are multiples of this
HBIN_HEADER_SIZE = 32
CELL_ALIGN = 8
NIL = 0xFFFFFFFF

MAJOR_VERSION = 1
MINOR_VERSION = 5  # 1.5 (Windows XP+): "lh" hash leaves and "db" big data; what the writer emits
MINOR_VERSIONS_READ = (3, 4, 5, 6)
BIG_DATA_MIN_MINOR = 4  # "db" cells exist from 1.4 on
FILE_TYPE_PRIMARY = 0
FILE_FORMAT_DIRECT_MEMORY_LOAD = 1
CLUSTERING_FACTOR = 1
FILE_NAME_BYTES = 64

BIG_DATA_SEGMENT = 16344  # CM_KEY_VALUE_BIG: larger values are split into segments of this size
BIG_DATA_SEGMENTS_MAX = 0xFFFF
DATA_INLINE = 0x80000000  # CM_KEY_VALUE_SPECIAL_SIZE: data (<= 4 bytes) sits in the Data field itself
INLINE_DATA_MAX = 4
KEY_NAME_MAX = 255  # UTF-16 code units
VALUE_NAME_MAX = 16383
# Windows' index limits for one 4 KiB block (CmpMaxFastIndexPerHblock, CmpMaxIndexPerHblock): a hash leaf
# holds at most 506 entries, an index root at most 1013 leaves.
LEAF_MAX = 506
ROOT_MAX = 1013

# _CM_KEY_NODE.Flags
KEY_VOLATILE = 0x0001
KEY_HIVE_EXIT = 0x0002
KEY_HIVE_ENTRY = 0x0004  # the root key
KEY_NO_DELETE = 0x0008
KEY_SYM_LINK = 0x0010
KEY_COMP_NAME = 0x0020  # name stored as one byte per character
# _CM_KEY_VALUE.Flags
VALUE_COMP_NAME = 0x0001

FILETIME_UNIX_EPOCH = 116444736000000000  # 1970-01-01 in 100 ns ticks since 1601-01-01

CELL_SIZE = struct.Struct("<i")


def filetime(unix_seconds: int) -> int:
    """A Unix time as a Windows FILETIME (100 ns ticks since 1601)."""
    return FILETIME_UNIX_EPOCH + unix_seconds * 10_000_000


def unix_time(ft: int) -> int:
    return (ft - FILETIME_UNIX_EPOCH) // 10_000_000


def align(n: int, to: int) -> int:
    return (n + to - 1) // to * to


def cell_size(payload_len: int) -> int:
    """Bytes a cell holding ``payload_len`` bytes of record occupies (size field included, 8-aligned)."""
    return align(payload_len + 4, CELL_ALIGN)


def cell(payload: bytes) -> bytes:
    """An allocated cell: negative size, the record, zero padding to 8 bytes."""
    size = cell_size(len(payload))
    return CELL_SIZE.pack(-size) + payload + bytes(size - 4 - len(payload))


def free_cell(size: int) -> bytes:
    return CELL_SIZE.pack(size) + bytes(size - 4)


def checksum(header: bytes | memoryview) -> int:
    """_HBASE_BLOCK.CheckSum: XOR of the 127 dwords before it; 0xFFFFFFFF becomes 0xFFFFFFFE, 0 becomes 1."""
    x = 0
    for (d,) in struct.iter_unpack("<I", header[:0x1FC]):
        x ^= d
    if x == 0xFFFFFFFF:
        return 0xFFFFFFFE
    return x or 1


def upcase(name: str) -> str:
    """Windows' RtlUpcaseUnicodeChar applied to each UTF-16 code unit (one-to-one, unlike ``str.upper``)."""
    out = []
    for ch in name:
        up = ch.upper()
        out.append(up if len(up) == 1 and ord(up) <= 0xFFFF and ord(ch) <= 0xFFFF else ch)
    return "".join(out)


def utf16_units(name: str) -> tuple[int, ...]:
    raw = name.encode("utf-16-le", "surrogatepass")
    return struct.unpack(f"<{len(raw) // 2}H", raw)


def name_sort_key(name: str) -> tuple[int, ...]:
    """Order of subkeys in an index: upper-cased UTF-16 code units, compared unit by unit."""
    return utf16_units(upcase(name))


def lh_hash(name: str) -> int:
    """The "lh" name hash: h = h * 37 + upcase(unit) over the UTF-16 code units, modulo 2**32."""
    h = 0
    for unit in utf16_units(upcase(name)):
        h = (h * 37 + unit) & 0xFFFFFFFF
    return h


def is_compressible(name: str) -> bool:
    """Names written one byte per character: ASCII only (Windows also packs Latin-1; ASCII reads the same
    in every reader)."""
    return name.isascii()


def encode_name(name: str, compressed: bool) -> bytes:
    return name.encode("latin-1") if compressed else name.encode("utf-16-le", "surrogatepass")


def decode_name(raw: bytes, compressed: bool, offset: int, what: str) -> str:
    if compressed:
        return raw.decode("latin-1")
    if len(raw) % 2:
        raise FormatError(f"{what}: UTF-16 name has odd length {len(raw)}", offset=offset)
    return raw.decode("utf-16-le", "surrogatepass")


def name_bytes(name: str) -> int:
    """Length of a name as Windows counts it for the Max*NameLen fields: UTF-16 bytes."""
    return len(name.encode("utf-16-le", "surrogatepass"))


def _signature(buf: bytes | memoryview, offset: int, want: bytes, what: str) -> None:
    got = bytes(buf[offset:offset + len(want)])
    if got != want:
        raise FormatError(f"{what}: signature {got!r} is not {want.decode()!r}", offset=offset)


@dataclass(frozen=True, slots=True)
class BaseBlock:  # _HBASE_BLOCK, the 4096-byte file header
    LAYOUT: ClassVar[struct.Struct] = struct.Struct(
        "<4s"    # 0x000 Signature "regf"
        "I"      # 0x004 Sequence1 (primary sequence number)
        "I"      # 0x008 Sequence2 (secondary; equal to Sequence1 = clean hive)
        "Q"      # 0x00C TimeStamp (FILETIME, last written)
        "I"      # 0x014 Major
        "I"      # 0x018 Minor
        "I"      # 0x01C Type (0 = primary file)
        "I"      # 0x020 Format (1 = direct memory load)
        "I"      # 0x024 RootCell (offset of the root nk)
        "I"      # 0x028 Length (hive bins data size)
        "I"      # 0x02C Cluster (clustering factor)
        "64s"    # 0x030 FileName (UTF-16LE, last characters of the hive's path)
        "396s"   # 0x070 Reserved1 (RmId, LogId, Flags, TmId, GUID signature, ...: zero)
        "I"      # 0x1FC CheckSum
        "3576s"  # 0x200 Reserved2
        "I"      # 0xFF8 BootType
        "I"      # 0xFFC BootRecover
    )
    sequence1: int
    sequence2: int
    timestamp: int  # FILETIME
    root_cell: int
    hive_bins_size: int
    file_name: str = ""
    major: int = MAJOR_VERSION
    minor: int = MINOR_VERSION
    file_type: int = FILE_TYPE_PRIMARY
    file_format: int = FILE_FORMAT_DIRECT_MEMORY_LOAD
    clustering: int = CLUSTERING_FACTOR

    @classmethod
    def from_bytes(cls, buf: bytes | memoryview, offset: int = 0) -> BaseBlock:
        """Parse and validate (signature, checksum, version, sizes) the base block at ``offset``."""
        (sig, seq1, seq2, ts, major, minor, ftype, fmt, root, length, cluster, name, _r1, csum, _r2, _bt,
         _br) = unpack(cls.LAYOUT, buf, offset, "base block")
        if sig != SIGNATURE:
            raise FormatError(f"base block signature {sig!r} is not 'regf': not a registry hive",
                              offset=offset)
        want = checksum(bytes(buf[offset:offset + 0x1FC]))
        if csum != want:
            raise FormatError(f"base block CheckSum 0x{csum:08x} does not match 0x{want:08x}",
                              offset=offset + 0x1FC, hint="the hive is damaged")
        if major != MAJOR_VERSION or minor not in MINOR_VERSIONS_READ:
            raise FormatError(f"hive version {major}.{minor} unsupported (1.3 to 1.6 are read)",
                              offset=offset + 0x14)
        if ftype != FILE_TYPE_PRIMARY or fmt != FILE_FORMAT_DIRECT_MEMORY_LOAD:
            raise FormatError(f"base block Type {ftype} / Format {fmt}: not a primary hive file (0 / 1)",
                              offset=offset + 0x1C)
        if length % HBIN_ALIGN or root % CELL_ALIGN or root >= length:
            raise FormatError(f"base block Length 0x{length:x} / RootCell 0x{root:x} inconsistent",
                              offset=offset + 0x24)
        file_name = name.decode("utf-16-le", "replace").split("\0", 1)[0]
        return cls(seq1, seq2, ts, root, length, file_name, major, minor, ftype, fmt, cluster)

    def to_bytes(self) -> bytes:
        name = self.file_name.encode("utf-16-le")[-FILE_NAME_BYTES:]
        head = self.LAYOUT.pack(SIGNATURE, self.sequence1, self.sequence2, self.timestamp, self.major,
                                self.minor, self.file_type, self.file_format, self.root_cell,
                                self.hive_bins_size, self.clustering, name, b"", 0, b"", 0, 0)
        return head[:0x1FC] + struct.pack("<I", checksum(head)) + head[0x200:]


@dataclass(frozen=True, slots=True)
class HBin:  # _HBIN, the 32-byte header of each hive bin
    LAYOUT: ClassVar[struct.Struct] = struct.Struct(
        "<4s"  # Signature "hbin"
        "I"    # FileOffset (of this bin, relative to the first bin)
        "I"    # Size (multiple of 4096)
        "I"    # Reserved1[0]
        "I"    # Reserved1[1]
        "Q"    # TimeStamp (FILETIME; meaningful in the first bin only)
        "I"    # Spare (MemAlloc)
    )
    offset: int
    size: int
    timestamp: int = 0

    @classmethod
    def from_bytes(cls, buf: bytes | memoryview, offset: int = 0) -> HBin:
        sig, off, size, _r0, _r1, ts, _spare = unpack(cls.LAYOUT, buf, offset, "hbin header")
        if sig != HBIN_SIGNATURE:
            raise FormatError(f"hbin signature {sig!r} is not 'hbin'", offset=offset)
        if size < HBIN_ALIGN or size % HBIN_ALIGN:
            raise FormatError(f"hbin Size 0x{size:x} is not a positive multiple of 0x1000", offset=offset + 8)
        return cls(off, size, ts)

    def to_bytes(self) -> bytes:
        return self.LAYOUT.pack(HBIN_SIGNATURE, self.offset, self.size, 0, 0, self.timestamp, 0)


@dataclass(frozen=True, slots=True)
class KeyNode:  # _CM_KEY_NODE "nk" (76 bytes + name)
    LAYOUT: ClassVar[struct.Struct] = struct.Struct(
        "<2s"  # 0x00 Signature "nk"
        "H"    # 0x02 Flags (KEY_*)
        "Q"    # 0x04 LastWriteTime (FILETIME)
        "I"    # 0x0C AccessBits
        "I"    # 0x10 Parent
        "I"    # 0x14 SubKeyCounts[Stable]
        "I"    # 0x18 SubKeyCounts[Volatile]
        "I"    # 0x1C SubKeyLists[Stable]
        "I"    # 0x20 SubKeyLists[Volatile]
        "I"    # 0x24 ValueList.Count
        "I"    # 0x28 ValueList.List
        "I"    # 0x2C Security
        "I"    # 0x30 Class
        "I"    # 0x34 MaxNameLen (largest subkey name, UTF-16 bytes)
        "I"    # 0x38 MaxClassLen
        "I"    # 0x3C MaxValueNameLen (UTF-16 bytes)
        "I"    # 0x40 MaxValueDataLen
        "I"    # 0x44 WorkVar
        "H"    # 0x48 NameLength (bytes as stored)
        "H"    # 0x4A ClassLength
    )
    SIGNATURE: ClassVar[bytes] = b"nk"
    flags: int
    timestamp: int
    parent: int
    subkey_count: int
    subkey_list: int
    value_count: int
    value_list: int
    security: int
    name: str
    max_subkey_name: int = 0
    max_value_name: int = 0
    max_value_data: int = 0
    volatile_subkey_count: int = 0
    volatile_subkey_list: int = NIL
    class_cell: int = NIL
    class_length: int = 0
    max_subkey_class: int = 0
    access_bits: int = 0
    work_var: int = 0

    @classmethod
    def from_bytes(cls, buf: bytes | memoryview, offset: int = 0) -> KeyNode:
        (_sig, flags, ts, access, parent, nsub, nvsub, sub, vsub, nval, vals, sec, cls_cell, maxname, maxcls,
         maxvname, maxvdata, work, name_len, cls_len) = unpack(cls.LAYOUT, buf, offset, "nk cell")
        _signature(buf, offset, cls.SIGNATURE, "nk cell")
        start = offset + cls.LAYOUT.size
        raw = bytes(buf[start:start + name_len])
        if len(raw) != name_len:
            raise FormatError(f"nk cell: NameLength {name_len} runs past the cell", offset=offset + 0x48)
        name = decode_name(raw, bool(flags & KEY_COMP_NAME), start, "nk cell")
        return cls(flags, ts, parent, nsub, sub, nval, vals, sec, name, maxname, maxvname, maxvdata, nvsub,
                   vsub, cls_cell, cls_len, maxcls, access, work)

    def to_bytes(self) -> bytes:
        raw = encode_name(self.name, bool(self.flags & KEY_COMP_NAME))
        return self.LAYOUT.pack(
            self.SIGNATURE, self.flags, self.timestamp, self.access_bits, self.parent, self.subkey_count,
            self.volatile_subkey_count, self.subkey_list, self.volatile_subkey_list, self.value_count,
            self.value_list, self.security, self.class_cell, self.max_subkey_name, self.max_subkey_class,
            self.max_value_name, self.max_value_data, self.work_var, len(raw), self.class_length) + raw


@dataclass(frozen=True, slots=True)
class KeyValue:  # _CM_KEY_VALUE "vk" (20 bytes + name)
    LAYOUT: ClassVar[struct.Struct] = struct.Struct(
        "<2s"  # 0x00 Signature "vk"
        "H"    # 0x02 NameLength (0 = the default value)
        "I"    # 0x04 DataLength (bit 31 set: data inline in Data)
        "I"    # 0x08 Data (cell offset, or up to 4 bytes of data)
        "I"    # 0x0C Type (REG_*)
        "H"    # 0x10 Flags (VALUE_COMP_NAME)
        "H"    # 0x12 Spare
    )
    SIGNATURE: ClassVar[bytes] = b"vk"
    name: str  # "" = the default value
    data_length: int  # raw field, DATA_INLINE included
    data: int
    type: int
    flags: int = 0
    spare: int = 0

    @property
    def inline(self) -> bool:
        return bool(self.data_length & DATA_INLINE)

    @property
    def size(self) -> int:
        return self.data_length & ~DATA_INLINE

    @classmethod
    def from_bytes(cls, buf: bytes | memoryview, offset: int = 0) -> KeyValue:
        _sig, name_len, dlen, data, vtype, flags, spare = unpack(cls.LAYOUT, buf, offset, "vk cell")
        _signature(buf, offset, cls.SIGNATURE, "vk cell")
        start = offset + cls.LAYOUT.size
        raw = bytes(buf[start:start + name_len])
        if len(raw) != name_len:
            raise FormatError(f"vk cell: NameLength {name_len} runs past the cell", offset=offset + 2)
        name = decode_name(raw, bool(flags & VALUE_COMP_NAME), start, "vk cell")
        return cls(name, dlen, data, vtype, flags, spare)

    def to_bytes(self) -> bytes:
        raw = encode_name(self.name, bool(self.flags & VALUE_COMP_NAME))
        return self.LAYOUT.pack(self.SIGNATURE, len(raw), self.data_length, self.data, self.type, self.flags,
                                self.spare) + raw


@dataclass(frozen=True, slots=True)
class SecurityKey:  # _CM_KEY_SECURITY "sk" (20 bytes + self-relative security descriptor)
    LAYOUT: ClassVar[struct.Struct] = struct.Struct(
        "<2s"  # 0x00 Signature "sk"
        "H"    # 0x02 Reserved
        "I"    # 0x04 Flink (next sk in the hive's ring)
        "I"    # 0x08 Blink (previous sk)
        "I"    # 0x0C ReferenceCount (key nodes pointing here)
        "I"    # 0x10 DescriptorLength
    )
    SIGNATURE: ClassVar[bytes] = b"sk"
    flink: int
    blink: int
    reference_count: int
    descriptor: bytes

    @classmethod
    def from_bytes(cls, buf: bytes | memoryview, offset: int = 0) -> SecurityKey:
        _sig, _r, flink, blink, refs, length = unpack(cls.LAYOUT, buf, offset, "sk cell")
        _signature(buf, offset, cls.SIGNATURE, "sk cell")
        start = offset + cls.LAYOUT.size
        sd = bytes(buf[start:start + length])
        if len(sd) != length:
            raise FormatError(f"sk cell: DescriptorLength {length} runs past the cell", offset=offset + 0x10)
        return cls(flink, blink, refs, sd)

    def to_bytes(self) -> bytes:
        return self.LAYOUT.pack(self.SIGNATURE, 0, self.flink, self.blink, self.reference_count,
                                len(self.descriptor)) + self.descriptor


_LIST_HEAD = struct.Struct("<2sH")  # Signature, Count


def _offsets(buf: bytes | memoryview, offset: int, sig: bytes, what: str, width: int) -> tuple[int, ...]:
    _sig, count = unpack(_LIST_HEAD, buf, offset, what)
    _signature(buf, offset, sig, what)
    layout = struct.Struct(f"<{count * width}I")
    return unpack(layout, buf, offset + _LIST_HEAD.size, f"{what} ({count} entries)")


@dataclass(frozen=True, slots=True)
class IndexLeaf:  # "li": Count, then key node offsets
    LAYOUT: ClassVar[struct.Struct] = _LIST_HEAD
    SIGNATURE: ClassVar[bytes] = b"li"
    offsets: tuple[int, ...]

    @classmethod
    def from_bytes(cls, buf: bytes | memoryview, offset: int = 0) -> IndexLeaf:
        return cls(_offsets(buf, offset, cls.SIGNATURE, "li cell", 1))

    def to_bytes(self) -> bytes:
        return _LIST_HEAD.pack(self.SIGNATURE, len(self.offsets)) + struct.pack(f"<{len(self.offsets)}I",
                                                                              *self.offsets)


@dataclass(frozen=True, slots=True)
class IndexRoot:  # "ri": Count, then offsets of li/lf/lh leaves
    LAYOUT: ClassVar[struct.Struct] = _LIST_HEAD
    SIGNATURE: ClassVar[bytes] = b"ri"
    offsets: tuple[int, ...]

    @classmethod
    def from_bytes(cls, buf: bytes | memoryview, offset: int = 0) -> IndexRoot:
        return cls(_offsets(buf, offset, cls.SIGNATURE, "ri cell", 1))

    def to_bytes(self) -> bytes:
        return _LIST_HEAD.pack(self.SIGNATURE, len(self.offsets)) + struct.pack(f"<{len(self.offsets)}I",
                                                                              *self.offsets)


@dataclass(frozen=True, slots=True)
class HashLeaf:  # "lh" (1.5+): Count, then (key node offset, lh_hash(name)) pairs sorted by name
    LAYOUT: ClassVar[struct.Struct] = _LIST_HEAD
    SIGNATURE: ClassVar[bytes] = b"lh"
    entries: tuple[tuple[int, int], ...]

    @classmethod
    def from_bytes(cls, buf: bytes | memoryview, offset: int = 0) -> HashLeaf:
        flat = _offsets(buf, offset, cls.SIGNATURE, f"{cls.SIGNATURE.decode()} cell", 2)
        return cls(tuple(zip(flat[0::2], flat[1::2], strict=True)))

    @property
    def offsets(self) -> tuple[int, ...]:
        return tuple(off for off, _ in self.entries)

    def to_bytes(self) -> bytes:
        flat = [x for entry in self.entries for x in entry]
        return _LIST_HEAD.pack(self.SIGNATURE, len(self.entries)) + struct.pack(f"<{len(flat)}I", *flat)


@dataclass(frozen=True, slots=True)
class FastLeaf(HashLeaf):  # "lf" (1.3+): like lh, but the second dword is the name's first 4 characters
    SIGNATURE: ClassVar[bytes] = b"lf"


@dataclass(frozen=True, slots=True)
class BigData:  # _CM_BIG_DATA "db" (1.4+): a value's data split into segments of 16344 bytes
    LAYOUT: ClassVar[struct.Struct] = struct.Struct(
        "<2s"  # 0x00 Signature "db"
        "H"    # 0x02 Count (segments)
        "I"    # 0x04 List (cell holding Count segment offsets)
    )
    SIGNATURE: ClassVar[bytes] = b"db"
    segment_count: int
    segment_list: int

    @classmethod
    def from_bytes(cls, buf: bytes | memoryview, offset: int = 0) -> BigData:
        _sig, count, lst = unpack(cls.LAYOUT, buf, offset, "db cell")
        _signature(buf, offset, cls.SIGNATURE, "db cell")
        return cls(count, lst)

    def to_bytes(self) -> bytes:
        return self.LAYOUT.pack(self.SIGNATURE, self.segment_count, self.segment_list)


SubkeyList = IndexLeaf | IndexRoot | HashLeaf | FastLeaf
SUBKEY_LISTS: dict[bytes, type[IndexLeaf | IndexRoot | HashLeaf]] = {
    b"li": IndexLeaf, b"ri": IndexRoot, b"lh": HashLeaf, b"lf": FastLeaf,
}


# -- the default security descriptor -----------------------------------------------------------------

SE_DACL_PRESENT = 0x0004
SE_SELF_RELATIVE = 0x8000
ACCESS_ALLOWED_ACE_TYPE = 0
CONTAINER_INHERIT_ACE = 0x02
INHERIT_ONLY_ACE = 0x08
KEY_ALL_ACCESS = 0x000F003F
KEY_READ = 0x00020019
GENERIC_ALL = 0x10000000


def sid(text: str) -> bytes:
    """A SID string (``S-1-5-32-544``) in its binary form."""
    parts = text.split("-")
    if parts[:2] != ["S", "1"] or len(parts) < 3:
        raise ValueError(f"not a SID: {text}")
    subs = [int(p) for p in parts[3:]]
    authority = int(parts[2]).to_bytes(6, "big")
    return struct.pack("<BB", 1, len(subs)) + authority + struct.pack(f"<{len(subs)}I", *subs)


def security_descriptor(owner: str, group: str, aces: list[tuple[int, int, str]]) -> bytes:
    """A self-relative SECURITY_DESCRIPTOR with a DACL of access-allowed ACEs ``(flags, mask, sid)``."""
    body = b""
    for flags, mask, who in aces:
        s = sid(who)
        body += struct.pack("<BBHI", ACCESS_ALLOWED_ACE_TYPE, flags, 8 + len(s), mask) + s
    acl = struct.pack("<BBHHH", 2, 0, 8 + len(body), len(aces), 0) + body  # ACL_REVISION 2
    o, g = sid(owner), sid(group)
    head = struct.Struct("<BBHIIII")  # Revision Sbz1 Control Owner Group Sacl Dacl
    owner_at = head.size
    group_at = owner_at + len(o)
    dacl_at = group_at + len(g)
    return head.pack(1, 0, SE_SELF_RELATIVE | SE_DACL_PRESENT, owner_at, group_at, 0, dacl_at) + o + g + acl


# O:BAG:SYD:(A;CI;KA;;;SY)(A;CI;KA;;;BA)(A;CI;KR;;;BU)(A;CIIO;GA;;;CO)(A;CI;KR;;;AC): what the roots of
# Windows' SOFTWARE and SYSTEM hives carry, minus the inherited-ACE bookkeeping.
DEFAULT_SECURITY_DESCRIPTOR = security_descriptor("S-1-5-32-544", "S-1-5-18", [
    (CONTAINER_INHERIT_ACE, KEY_ALL_ACCESS, "S-1-5-18"),
    (CONTAINER_INHERIT_ACE, KEY_ALL_ACCESS, "S-1-5-32-544"),
    (CONTAINER_INHERIT_ACE, KEY_READ, "S-1-5-32-545"),
    (CONTAINER_INHERIT_ACE | INHERIT_ONLY_ACE, GENERIC_ALL, "S-1-3-0"),
    (CONTAINER_INHERIT_ACE, KEY_READ, "S-1-15-2-1"),
])
