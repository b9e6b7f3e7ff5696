"""Write a complete registry hive (REGF 1.5) from a set of keys, deterministically and in one stream.

Reference: cab-authenticode-registry.md §5.3 ("generate an empty hive yourself"), extended from the
empty hive to a full one. What is written:

- the 4 KiB base block: sequence numbers 1/1 (clean, no log to replay), version **1.5** (the reference's
  recommendation: it allows "lh" hash leaves and "db" big-data cells, and every Windows since XP reads it),
  ``Type`` 0, ``Format`` 1, the checksum;
- hive bins of 4 KiB (larger, in 4 KiB steps, only where one cell needs it), each fully covered by cells;
  the unused tail of a bin is one free cell;
- per key, in depth-first order: its ``nk``, (root only: the one ``sk`` every key shares, holding
  :data:`~.records.DEFAULT_SECURITY_DESCRIPTOR`), its value list, each ``vk`` followed by its data
  (inline when <= 4 bytes, one cell when <= 16344 bytes, else a ``db`` cell, its segment list and the
  segments of 16344 bytes, each cell with 4 spare bytes, see SEGMENT_SLACK), then its subkey index: ``lh``
  leaves of at most 506 entries sorted by upper-cased name,
  under an ``ri`` when there is more than one leaf;
- every timestamp (base block, first hbin, every key) is the ``timestamp`` given, so the same keys and
  timestamp always give the same bytes.

Memory: the key tree (one small object per key, a few integers per value) plus one hive bin; value data
is encoded twice (to lay out, then to write) rather than held.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import BinaryIO

from ...errors import InputError, InputErrors
from ..regfile import RegKey, RegValue
from .records import (
    BIG_DATA_SEGMENT,
    BIG_DATA_SEGMENTS_MAX,
    DATA_INLINE,
    DEFAULT_SECURITY_DESCRIPTOR,
    HBIN_ALIGN,
    HBIN_HEADER_SIZE,
    INLINE_DATA_MAX,
    KEY_COMP_NAME,
    KEY_HIVE_ENTRY,
    KEY_NAME_MAX,
    KEY_NO_DELETE,
    LEAF_MAX,
    MAJOR_VERSION,
    MINOR_VERSION,
    NIL,
    ROOT_MAX,
    VALUE_COMP_NAME,
    VALUE_NAME_MAX,
    BaseBlock,
    BigData,
    HashLeaf,
    HBin,
    IndexRoot,
    KeyNode,
    KeyValue,
    SecurityKey,
    align,
    cell,
    cell_size,
    encode_name,
    filetime,
    free_cell,
    is_compressible,
    lh_hash,
    name_bytes,
    name_sort_key,
    upcase,
)

# Every big-data segment cell gets 4 spare bytes after its data. Full segments have them anyway (16344 + 4
# rounds up to 16352, as on Windows); hivex takes a segment's length to be its cell size minus 8, so a short
# last segment without them would come back up to 4 bytes short there. Readers that follow DataLength
# (Windows, regipy, ours) ignore the spare bytes.
SEGMENT_SLACK = 4
FIX_MERGE = "merge the packages' keys with merge_keys() first, which reports which packages disagree"


@dataclass(frozen=True)
class HiveInfo:
    """What :func:`write_hive` wrote."""

    size: int  # bytes: base block + hive bins
    keys: int  # key nodes, the root included
    values: int
    big_values: int  # values stored as "db" big data
    bins: int
    root_name: str
    version: str  # "1.5"
    sha256: str


@dataclass(eq=False, slots=True)
class _Key:
    name: str
    values: dict[str, RegValue] = field(default_factory=dict)  # upcase(name) ("" = default) -> value
    children: dict[str, _Key] = field(default_factory=dict)  # upcase(name) -> key
    ordered: list[_Key] = field(default_factory=list)  # children in index order (set by the layout)
    nk: int = NIL
    value_list: int = NIL
    subkey_list: int = NIL
    leaves: list[int] = field(default_factory=list)
    # per value: vk, data cell (or db cell, NIL if inline), segment list, segments
    slots: list[tuple[int, int, int, tuple[int, ...]]] = field(default_factory=list)


def split_path(path: str) -> list[str]:
    """A key path under the hive root as its names; "" (or "\\") is the root itself."""
    text = path.strip("\\")
    if not text:
        return []
    parts = text.split("\\")
    if parts[0].upper().startswith(("HKEY_", "HKLM", "HKCU", "HKU")):
        raise InputError(f"key {path!r} starts with a registry root, not a path under the hive's root",
                         hint="map full paths to hives with split_by_hive() first")
    for part in parts:
        if not part:
            raise InputError(f"key {path!r} has an empty name between two backslashes")
        if len(part.encode("utf-16-le", "surrogatepass")) // 2 > KEY_NAME_MAX:
            raise InputError(f"key {path!r}: name {part[:40]!r}… is longer than {KEY_NAME_MAX} characters")
        if "\0" in part:
            raise InputError(f"key {path!r}: a key name cannot contain NUL")
    return parts


def _raw(path: str, v: RegValue) -> bytes:
    """The value's stored bytes, or an InputError saying why the data does not fit its type."""
    label = "@" if not v.name else v.name
    t = int(v.type)
    if not 0 <= t <= 0xFFFFFFFF:
        raise InputError(f"[{path}] value {label!r}: type {t} does not fit 32 bits")
    try:
        raw = v.raw()
    except (TypeError, ValueError, OverflowError) as e:
        shown = repr(v.data)[:60]
        raise InputError(f"[{path}] value {label!r}: data {shown} is not valid for type {t} ({e})") from None
    if len(raw) > BIG_DATA_SEGMENT * BIG_DATA_SEGMENTS_MAX:
        raise InputError(f"[{path}] value {label!r}: {len(raw)} bytes is more than a hive value can hold")
    return raw


def _build_tree(keys: Iterable[RegKey], root_name: str) -> tuple[_Key, int]:
    root = _Key(root_name)
    issues: list[InputError] = []
    count = 1
    for key in keys:
        try:
            parts = split_path(key.path)
        except InputError as e:
            issues.append(e)
            continue
        node = root
        for part in parts:
            up = upcase(part)
            child = node.children.get(up)
            if child is None:
                child = node.children[up] = _Key(part)
                count += 1
            node = child
        for v in key.values:
            name = v.name or ""
            if len(name.encode("utf-16-le", "surrogatepass")) // 2 > VALUE_NAME_MAX:
                issues.append(InputError(f"[{key.path}] value name {name[:40]!r}… is longer than "
                                         f"{VALUE_NAME_MAX} characters"))
                continue
            try:
                raw = _raw(key.path, v)
            except InputError as e:
                issues.append(e)
                continue
            ident = upcase(name)
            old = node.values.get(ident)
            if old is None:
                node.values[ident] = v
            elif int(old.type) != int(v.type) or old.raw() != raw:
                issues.append(InputError(f"[{key.path}] value {name or '@'!r} is given twice with different "
                                         "data", hint=FIX_MERGE))
    if issues:
        raise issues[0] if len(issues) == 1 else InputErrors(issues)
    return root, count


class _Bins:
    """Hands out cell offsets, opening a new hive bin whenever a cell does not fit the current one."""

    def __init__(self) -> None:
        self.bins: list[tuple[int, int]] = []  # (offset, size)
        self.pos = 0
        self.end = 0

    def alloc(self, size: int) -> int:
        if self.pos + size > self.end:
            start = self.end
            bin_size = max(HBIN_ALIGN, align(HBIN_HEADER_SIZE + size, HBIN_ALIGN))
            self.bins.append((start, bin_size))
            self.pos, self.end = start + HBIN_HEADER_SIZE, start + bin_size
        off = self.pos
        self.pos += size
        return off


def _leaves(children: list[_Key]) -> list[list[_Key]]:
    """Cut a sorted child list into as few hash leaves as the 506-entry limit allows, evenly sized."""
    n = len(children)
    count = -(-n // LEAF_MAX)
    return [children[i * n // count:(i + 1) * n // count] for i in range(count)]


def _key_flags(node: _Key, root: bool) -> int:
    flags = KEY_COMP_NAME if is_compressible(node.name) else 0
    return flags | (KEY_HIVE_ENTRY | KEY_NO_DELETE if root else 0)


def _nk_size(node: _Key, root: bool) -> int:
    compressed = bool(_key_flags(node, root) & KEY_COMP_NAME)
    return cell_size(KeyNode.LAYOUT.size + len(encode_name(node.name, compressed)))


def _vk_name(v: RegValue) -> tuple[str, int]:
    name = v.name or ""
    return name, VALUE_COMP_NAME if is_compressible(name) else 0


def _layout(root: _Key, bins: _Bins) -> tuple[int, int, int]:
    """Pass 1: give every cell its offset, in the order :func:`_emit` writes them."""
    sk = NIL
    n_values = n_big = 0
    stack = [root]
    while stack:
        node = stack.pop()
        node.nk = bins.alloc(_nk_size(node, node is root))
        if node is root:
            sk = bins.alloc(cell_size(SecurityKey.LAYOUT.size + len(DEFAULT_SECURITY_DESCRIPTOR)))
        if node.values:
            node.value_list = bins.alloc(cell_size(4 * len(node.values)))
            for v in node.values.values():
                name, flags = _vk_name(v)
                vk = bins.alloc(cell_size(KeyValue.LAYOUT.size + len(encode_name(name, bool(flags)))))
                size = len(v.raw())
                n_values += 1
                if size <= INLINE_DATA_MAX:
                    node.slots.append((vk, NIL, NIL, ()))
                elif size <= BIG_DATA_SEGMENT:
                    node.slots.append((vk, bins.alloc(cell_size(size)), NIL, ()))
                else:
                    n_big += 1
                    nseg = -(-size // BIG_DATA_SEGMENT)
                    db = bins.alloc(cell_size(BigData.LAYOUT.size))
                    seglist = bins.alloc(cell_size(4 * nseg))
                    segs = tuple(bins.alloc(cell_size(SEGMENT_SLACK + min(BIG_DATA_SEGMENT,
                                                                          size - i * BIG_DATA_SEGMENT)))
                                 for i in range(nseg))
                    node.slots.append((vk, db, seglist, segs))
        if node.children:
            node.ordered = sorted(node.children.values(), key=lambda k: name_sort_key(k.name))
            groups = _leaves(node.ordered)
            if len(groups) > ROOT_MAX:
                raise InputError(f"key {node.name!r} has {len(node.ordered)} subkeys; a hive key holds at "
                                 f"most {LEAF_MAX * ROOT_MAX}")
            node.leaves = [bins.alloc(cell_size(4 + 8 * len(g))) for g in groups]
            if len(groups) == 1:
                node.subkey_list = node.leaves[0]
            else:
                node.subkey_list = bins.alloc(cell_size(4 + 4 * len(groups)))
            stack.extend(reversed(node.ordered))
    return sk, n_values, n_big


class _Emitter:
    """Pass 2: receives cells in layout order, checks each lands where pass 1 put it, writes whole bins."""

    def __init__(self, out: BinaryIO, sha: hashlib._Hash, ft: int) -> None:
        self.out, self.sha, self.ft = out, sha, ft
        self.bins = _Bins()
        self.buf = bytearray()
        self.start = self.end = 0
        self.written = 0

    def put(self, offset: int, data: bytes) -> None:
        nbins = len(self.bins.bins)
        at = self.bins.alloc(len(data))
        assert at == offset, f"regf layout drift: cell at 0x{at:x}, planned 0x{offset:x}"
        if len(self.bins.bins) != nbins:
            self.flush()
            self.start, size = self.bins.bins[-1]
            self.end = self.start + size
            self.buf = bytearray(HBin(self.start, size, self.ft if self.start == 0 else 0).to_bytes())
        self.buf += data

    def flush(self) -> None:
        if not self.buf:
            return
        rest = self.end - self.start - len(self.buf)
        if rest:
            self.buf += free_cell(rest)
        self.out.write(self.buf)
        self.sha.update(self.buf)
        self.written += len(self.buf)
        self.buf = bytearray()


def _emit(root: _Key, sk: int, n_keys: int, ft: int, em: _Emitter) -> None:
    stack: list[tuple[_Key, int]] = [(root, NIL)]
    while stack:
        node, parent = stack.pop()
        values = list(node.values.values())
        raws = [v.raw() for v in values]
        max_name = max((name_bytes(c.name) for c in node.ordered), default=0)
        max_vname = max((name_bytes(v.name or "") for v in values), default=0)
        max_vdata = max((len(r) for r in raws), default=0)
        em.put(node.nk, cell(KeyNode(
            flags=_key_flags(node, node is root), timestamp=ft, parent=parent, subkey_count=len(node.ordered),
            subkey_list=node.subkey_list, value_count=len(values), value_list=node.value_list, security=sk,
            name=node.name, max_subkey_name=max_name, max_value_name=max_vname, max_value_data=max_vdata,
        ).to_bytes()))
        if node is root:
            em.put(sk, cell(SecurityKey(sk, sk, n_keys, DEFAULT_SECURITY_DESCRIPTOR).to_bytes()))
        if values:
            em.put(node.value_list, cell(struct.pack(f"<{len(values)}I", *(s[0] for s in node.slots))))
            for v, raw, (vk, data, seglist, segs) in zip(values, raws, node.slots, strict=True):
                name, flags = _vk_name(v)
                if data == NIL:
                    em.put(vk, cell(KeyValue(name, len(raw) | DATA_INLINE, int.from_bytes(raw, "little"),
                                             int(v.type), flags).to_bytes()))
                    continue
                em.put(vk, cell(KeyValue(name, len(raw), data, int(v.type), flags).to_bytes()))
                if not segs:
                    em.put(data, cell(raw))
                    continue
                em.put(data, cell(BigData(len(segs), seglist).to_bytes()))
                em.put(seglist, cell(struct.pack(f"<{len(segs)}I", *segs)))
                for i, seg in enumerate(segs):
                    chunk = raw[i * BIG_DATA_SEGMENT:(i + 1) * BIG_DATA_SEGMENT]
                    em.put(seg, cell(chunk + bytes(SEGMENT_SLACK)))
        if node.ordered:
            groups = _leaves(node.ordered)
            for off, group in zip(node.leaves, groups, strict=True):
                em.put(off, cell(HashLeaf(tuple((c.nk, lh_hash(c.name)) for c in group)).to_bytes()))
            if len(groups) > 1:
                em.put(node.subkey_list, cell(IndexRoot(tuple(node.leaves)).to_bytes()))
            stack.extend((c, node.nk) for c in reversed(node.ordered))
    em.flush()


def write_hive(out: BinaryIO, keys: Iterable[RegKey], *, root_name: str, timestamp: int,
               file_name: str = "") -> HiveInfo:
    """Write a complete hive holding ``keys`` to ``out`` (any writable binary stream; no seeking).

    ``keys`` have paths under the hive's root (``Contoso\\Test``, ``""`` for the root itself; map full
    ``HKEY_LOCAL_MACHINE\\...`` paths with :func:`~.merge.split_by_hive`). Missing ancestors are created
    empty; a path given twice (in any letter case) is one key. A value given twice must carry the same data;
    use :func:`~.merge.merge_keys` to combine packages. ``root_name`` names the root key (Windows uses e.g.
    ``ROOT`` or ``CMI-CreateHive{GUID}``), ``timestamp`` (Unix seconds, from ``build_epoch()``) is written
    as every last-write time, ``file_name`` into the base block (at most 31 characters are kept).

    Raises InputError before writing anything if a path, name or value cannot be stored.
    """
    if not root_name or "\\" in root_name or len(root_name) > KEY_NAME_MAX:
        raise InputError(f"hive root name {root_name!r}: give 1 to {KEY_NAME_MAX} characters without a "
                         "backslash")
    if timestamp < 0:
        raise InputError(f"hive timestamp {timestamp} is before 1970")
    root, n_keys = _build_tree(keys, root_name)
    bins = _Bins()
    sk, n_values, n_big = _layout(root, bins)
    ft = filetime(timestamp)
    base = BaseBlock(1, 1, ft, root.nk, bins.end, file_name).to_bytes()
    sha = hashlib.sha256(base)
    out.write(base)
    em = _Emitter(out, sha, ft)
    _emit(root, sk, n_keys, ft, em)
    assert em.written == bins.end and em.bins.bins == bins.bins
    return HiveInfo(size=len(base) + em.written, keys=n_keys, values=n_values, big_values=n_big,
                    bins=len(bins.bins), root_name=root_name, version=f"{MAJOR_VERSION}.{MINOR_VERSION}",
                    sha256=sha.hexdigest())
