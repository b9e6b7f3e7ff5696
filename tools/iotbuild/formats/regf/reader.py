"""Read a registry hive (REGF 1.3 to 1.6) into :class:`~iotbuild.formats.regfile.RegKey` objects.

    with HiveReader.open("SYSTEM") as hive:
        print(hive.root_name)
        for key in hive.keys():      # depth-first, the root first with path ""
            ...

A builder's reader, not a forensic one: the base block must be clean (checksum right, both sequence
numbers equal, i.e. no transaction log waiting to be replayed) and every cell it follows must be an
allocated cell of the right kind inside the hive bins; anything else is a FormatError with its file
offset. Cells are read on demand with seek/read; nothing but the base block and the hbin headers is read
up front.

Value data is decoded by type: REG_SZ/REG_EXPAND_SZ to ``str`` (one terminating NUL removed),
REG_MULTI_SZ to a tuple of ``str``, REG_DWORD/REG_QWORD to ``int``, everything else (REG_NONE,
REG_BINARY, and types RegType does not list, kept as plain ``int``) to ``bytes``. For data Windows
itself wrote oddly (a string without its NUL, a 3-byte DWORD) the decoding is lenient, so writing such
a value back is not byte-identical; hives from :func:`~.writer.write_hive` round-trip exactly.
"""

from __future__ import annotations

import contextlib
import os
import struct
from collections.abc import Iterator
from typing import BinaryIO

from ...errors import FormatError
from ..regfile import RegKey, RegType, RegValue
from .records import (
    BASE_BLOCK_SIZE,
    BIG_DATA_MIN_MINOR,
    BIG_DATA_SEGMENT,
    CELL_SIZE,
    HBIN_HEADER_SIZE,
    INLINE_DATA_MAX,
    NIL,
    SUBKEY_LISTS,
    BaseBlock,
    BigData,
    HashLeaf,
    HBin,
    IndexLeaf,
    IndexRoot,
    KeyNode,
    KeyValue,
    SecurityKey,
)

_TYPES = {int(t): t for t in RegType}


def decode_value(name: str, vtype: int, raw: bytes) -> RegValue:
    """A value's stored bytes as a RegValue (see the module docstring for the decoding rules)."""
    t = _TYPES.get(vtype)
    vname = name or None
    if t in (RegType.REG_SZ, RegType.REG_EXPAND_SZ):
        text = raw[:len(raw) // 2 * 2].decode("utf-16-le", "surrogatepass")
        return RegValue(vname, t, text.removesuffix("\0"))
    if t is RegType.REG_MULTI_SZ:
        text = raw[:len(raw) // 2 * 2].decode("utf-16-le", "surrogatepass")
        text = text.removesuffix("\0")
        if not text:
            return RegValue(vname, t, ())
        text = text.removesuffix("\0")
        return RegValue(vname, t, tuple(text.split("\0")))
    if t is RegType.REG_DWORD:
        return RegValue(vname, t, int.from_bytes(raw[:4], "little"))
    if t is RegType.REG_QWORD:
        return RegValue(vname, t, int.from_bytes(raw[:8], "little"))
    return RegValue(vname, t if t is not None else vtype, raw)  # type: ignore[arg-type]


class HiveReader:
    """A hive opened for reading: the base block is checked, cells are read as they are needed."""

    def __init__(self, fp: BinaryIO) -> None:
        self.fp = fp
        fp.seek(0)
        head = fp.read(BASE_BLOCK_SIZE)
        if len(head) < BASE_BLOCK_SIZE:
            raise FormatError(f"file is {len(head)} bytes, shorter than a 4096-byte hive base block",
                              offset=0)
        self.base = BaseBlock.from_bytes(head)
        if self.base.sequence1 != self.base.sequence2:
            raise FormatError(f"base block sequence numbers {self.base.sequence1} != {self.base.sequence2}: "
                              "the hive was not closed cleanly", offset=4,
                              hint="load and unload it on Windows, or replay its .LOG1/.LOG2 files")
        self.bins = self._read_bins()
        root = self.key_node(self.base.root_cell)
        self.root_name = root.name

    @classmethod
    @contextlib.contextmanager
    def open(cls, path: str | os.PathLike[str]) -> Iterator[HiveReader]:
        with open(path, "rb") as fp:
            try:
                yield cls(fp)
            except FormatError as e:
                raise e.with_path(path) from None

    def _read_bins(self) -> list[tuple[int, int]]:
        bins = []
        pos = 0
        while pos < self.base.hive_bins_size:
            self.fp.seek(BASE_BLOCK_SIZE + pos)
            try:
                hb = HBin.from_bytes(self.fp.read(HBIN_HEADER_SIZE), 0)
            except FormatError as e:
                e.offset = BASE_BLOCK_SIZE + pos + (e.offset or 0)
                raise
            if hb.offset != pos:
                raise FormatError(f"hbin FileOffset 0x{hb.offset:x} should be 0x{pos:x}",
                                  offset=BASE_BLOCK_SIZE + pos + 4)
            bins.append((pos, hb.size))
            pos += hb.size
        if pos != self.base.hive_bins_size:
            raise FormatError(f"hive bins end at 0x{pos:x}, base block Length says "
                              f"0x{self.base.hive_bins_size:x}", offset=0x28)
        return bins

    # -- cells ------------------------------------------------------------------------------------

    def cell(self, offset: int, what: str) -> bytes:
        """The record inside the allocated cell at ``offset`` (relative to the first hbin)."""
        at = BASE_BLOCK_SIZE + offset
        if offset == NIL or offset % 8 or not HBIN_HEADER_SIZE <= offset < self.base.hive_bins_size:
            raise FormatError(f"{what}: cell offset 0x{offset:x} is outside the hive bins", offset=at)
        self.fp.seek(at)
        head = self.fp.read(4)
        if len(head) < 4:
            raise FormatError(f"{what}: file ends inside the cell size", offset=at)
        (size,) = CELL_SIZE.unpack(head)
        if size >= 0:
            raise FormatError(f"{what}: cell size {size} is not negative: the cell is free", offset=at)
        size = -size
        if size < 8 or size % 8 or offset + size > self.base.hive_bins_size:
            raise FormatError(f"{what}: cell size {size} is not a multiple of 8 within the hive bins",
                              offset=at)
        data = self.fp.read(size - 4)
        if len(data) < size - 4:
            raise FormatError(f"{what}: file ends inside the cell", offset=at)
        return data

    def _parse(self, cls, offset: int, what: str):
        data = self.cell(offset, what)
        try:
            return cls.from_bytes(data)
        except FormatError as e:
            e.offset = BASE_BLOCK_SIZE + offset + 4 + (e.offset or 0)
            raise

    def key_node(self, offset: int) -> KeyNode:
        return self._parse(KeyNode, offset, "nk cell")

    def security(self, nk: KeyNode) -> SecurityKey:
        return self._parse(SecurityKey, nk.security, f"sk cell of key {nk.name!r}")

    def subkey_offsets(self, nk: KeyNode) -> list[int]:
        """Offsets of a key's subkey nodes, in index order."""
        if nk.subkey_count == 0:
            return []
        out = self._list_offsets(nk.subkey_list, nk.name, allow_root=True)
        if len(out) != nk.subkey_count:
            raise FormatError(f"key {nk.name!r}: index lists {len(out)} subkeys, nk says {nk.subkey_count}",
                              offset=BASE_BLOCK_SIZE + nk.subkey_list)
        return out

    def _list_offsets(self, offset: int, owner: str, *, allow_root: bool) -> list[int]:
        what = f"subkey list of key {owner!r}"
        data = self.cell(offset, what)
        cls = SUBKEY_LISTS.get(data[:2])
        if cls is None or (cls is IndexRoot and not allow_root):
            kinds = "li/lf/lh/ri" if allow_root else "li/lf/lh"
            raise FormatError(f"{what}: signature {data[:2]!r} is not {kinds}",
                              offset=BASE_BLOCK_SIZE + offset + 4)
        rec = self._parse(cls, offset, what)
        if isinstance(rec, IndexRoot):
            return [o for leaf in rec.offsets for o in self._list_offsets(leaf, owner, allow_root=False)]
        assert isinstance(rec, IndexLeaf | HashLeaf)
        return list(rec.offsets)

    def value_cells(self, nk: KeyNode) -> list[KeyValue]:
        if nk.value_count == 0:
            return []
        data = self.cell(nk.value_list, f"value list of key {nk.name!r}")
        if len(data) < 4 * nk.value_count:
            raise FormatError(f"value list of key {nk.name!r}: {nk.value_count} entries do not fit its cell",
                              offset=BASE_BLOCK_SIZE + nk.value_list)
        offs = struct.unpack_from(f"<{nk.value_count}I", data)
        return [self._parse(KeyValue, o, f"vk cell of key {nk.name!r}") for o in offs]

    def value_data(self, vk: KeyValue) -> bytes:
        size = vk.size
        if vk.inline:
            if size > INLINE_DATA_MAX:
                raise FormatError(f"value {vk.name!r}: inline data of {size} bytes (at most 4 fit)")
            return struct.pack("<I", vk.data)[:size]
        if size == 0:
            return b""
        what = f"data of value {vk.name!r}"
        data = self.cell(vk.data, what)
        big = size > BIG_DATA_SEGMENT and self.base.minor >= BIG_DATA_MIN_MINOR
        if big and data[:2] == BigData.SIGNATURE:
            db = self._parse(BigData, vk.data, what)
            seglist = self.cell(db.segment_list, f"segment list of value {vk.name!r}")
            if len(seglist) < 4 * db.segment_count:
                raise FormatError(f"{what}: {db.segment_count} segments do not fit the segment list",
                                  offset=BASE_BLOCK_SIZE + db.segment_list)
            parts = [self.cell(o, f"segment of value {vk.name!r}")[:BIG_DATA_SEGMENT]
                     for o in struct.unpack_from(f"<{db.segment_count}I", seglist)]
            data = b"".join(parts)
        if len(data) < size:
            raise FormatError(f"{what}: DataLength {size} is more than its cell holds ({len(data)})",
                              offset=BASE_BLOCK_SIZE + vk.data)
        return data[:size]

    def values(self, nk: KeyNode) -> tuple[RegValue, ...]:
        return tuple(decode_value(vk.name, vk.type, self.value_data(vk)) for vk in self.value_cells(nk))

    # -- the tree ---------------------------------------------------------------------------------

    def walk(self) -> Iterator[tuple[str, KeyNode]]:
        """(path, key node) depth-first in index order; the root first, with path ""."""
        seen: set[int] = set()
        stack: list[tuple[str | None, int]] = [(None, self.base.root_cell)]  # (parent path, nk offset)
        while stack:
            parent, off = stack.pop()
            if off in seen:
                raise FormatError(f"key under {parent!r} is reached twice: the index has a loop",
                                  offset=BASE_BLOCK_SIZE + off)
            seen.add(off)
            nk = self.key_node(off)
            path = "" if parent is None else f"{parent}\\{nk.name}" if parent else nk.name
            yield path, nk
            stack.extend((path, child) for child in reversed(self.subkey_offsets(nk)))

    def keys(self) -> Iterator[RegKey]:
        for path, nk in self.walk():
            yield RegKey(path, self.values(nk))


def read_hive(fp: BinaryIO) -> list[RegKey]:
    """Every key of the hive in ``fp``, depth-first, the root first (path ``""``), with its values."""
    return list(HiveReader(fp).keys())
