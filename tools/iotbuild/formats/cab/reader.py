"""MS-CAB reader (MS-CAB 2.1-2.5, MS-MCI MSZIP; reference cab-authenticode-registry.md §1 and §2.1).

Reads single cabinets with stored or MSZIP folders, with or without a header reserve (signed cabs:
the Authenticode blob location is exposed as :attr:`CabReader.signature_region`). Metadata is parsed
on open; member data is read on demand, block by block, so memory stays at a few blocks whatever
the cabinet size. Every non-zero CFDATA checksum is verified. The reader is strict, since it checks
what we build: anything odd is a FormatError with its offset, not a warning.

LZX and Quantum folders are listed but not decoded; :func:`extract_with_cabextract` handles those.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, Self

from ...errors import FormatError, InputError
from ...run import run
from .checksum import cfdata_checksum
from .mszip import MszipDecompressor
from .records import (
    BLOCK_MAX,
    FLAG_NEXT_CABINET,
    FLAG_PREV_CABINET,
    FLAG_RESERVE_PRESENT,
    INPUT_MAX,
    NAME_MAX,
    CfData,
    CfFile,
    CfFolder,
    CfHeader,
    CfReserveSizes,
    Compression,
)

HEADER_RESERVE_MAX = 60000  # MS-CAB 2.2 cbCFHeader
SIGNATURE_MAGIC = 0x00100000  # first u32 of the Authenticode header reserve (§2.1)
SIGNATURE_RESERVE_SIZE = 20
_DRIVE = re.compile(r"^[A-Za-z]:")


class CabReader:
    """A cabinet opened for reading. ``with CabReader.open(path) as cab: data = cab.read("a.txt")``.

    Built on a seekable ``BinaryIO``; ``CabReader(fp)`` leaves closing ``fp`` to the caller.
    """

    def __init__(self, fp: BinaryIO, *, path: str | os.PathLike[str] | None = None, owns: bool = False) -> None:
        self._fp = fp
        self.path = os.fspath(path) if path is not None else None
        self._owns = owns
        self.reserve: CfReserveSizes | None = None
        self.reserve_data = b""
        self.folders: list[CfFolder] = []
        self.files: list[CfFile] = []
        self._folder_offsets: list[int] = []
        self._file_offsets: list[int] = []
        with self._where():
            self._parse()
        self._by_name: dict[str, CfFile] = {}
        for f in self.files:
            self._by_name.setdefault(f.name, f)

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> CabReader:
        """Open ``path``; use as a context manager (or call :meth:`close`)."""
        fp = open(path, "rb")  # noqa: SIM115 - owned by the reader, closed by close()/__exit__
        try:
            return cls(fp, path=path, owns=True)
        except BaseException:
            fp.close()
            raise

    def close(self) -> None:
        if self._owns:
            self._fp.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _where(self) -> Iterator[None]:
        """Attach the cabinet path to FormatErrors raised by the offset-only parsing code."""
        try:
            yield
        except FormatError as e:
            raise e.with_path(self.path) if self.path else e

    # -- parsing ---------------------------------------------------------------------------------

    def _read_at(self, offset: int, size: int, what: str) -> bytes:
        self._fp.seek(offset)
        data = self._fp.read(size)
        if len(data) != size:
            raise FormatError(f"{what}: truncated ({len(data)} of {size} bytes)", offset=offset)
        return data

    def _parse(self) -> None:
        self._fp.seek(0, os.SEEK_END)
        self.size = self._fp.tell()
        self.header = header = CfHeader.from_bytes(self._read_at(0, CfHeader.LAYOUT.size, "CFHEADER"))
        if header.flags & (FLAG_PREV_CABINET | FLAG_NEXT_CABINET):
            raise FormatError(f"CFHEADER.flags 0x{header.flags:04x}: cabinet is part of a multi-cabinet set",
                              offset=0x1E, hint="iotbuild reads single cabinets only; use cabextract")
        if header.flags & ~(FLAG_PREV_CABINET | FLAG_NEXT_CABINET | FLAG_RESERVE_PRESENT):
            raise FormatError(f"CFHEADER.flags 0x{header.flags:04x} has unknown bits", offset=0x1E)
        if header.cabinet_size > self.size:
            raise FormatError(f"CFHEADER.cbCabinet is {header.cabinet_size} but the file has {self.size} bytes: "
                              "truncated", offset=0x08)
        pos = CfHeader.LAYOUT.size
        folder_reserve = 0
        if header.flags & FLAG_RESERVE_PRESENT:
            self.reserve = CfReserveSizes.from_bytes(self._read_at(pos, CfReserveSizes.LAYOUT.size, "reserve sizes"))
            if self.reserve.header > HEADER_RESERVE_MAX:
                raise FormatError(f"CFHEADER.cbCFHeader {self.reserve.header} exceeds {HEADER_RESERVE_MAX}",
                                  offset=pos)
            pos += CfReserveSizes.LAYOUT.size
            self.reserve_data = self._read_at(pos, self.reserve.header, "CFHEADER.abReserve")
            pos += self.reserve.header
            folder_reserve = self.reserve.folder

        step = CfFolder.LAYOUT.size + folder_reserve
        table = self._read_at(pos, header.folder_count * step, "CFFOLDER table")
        for i in range(header.folder_count):
            try:
                folder = CfFolder.from_bytes(table, i * step)
            except FormatError as e:
                e.offset = pos + (e.offset or 0)
                raise
            if folder.data_offset > self.size:
                raise FormatError(f"CFFOLDER {i}.coffCabStart 0x{folder.data_offset:x} is past the end of the file",
                                  offset=pos + i * step)
            self.folders.append(folder)
            self._folder_offsets.append(pos + i * step)

        base = header.files_offset
        limit = min(self.size, base + header.file_count * (CfFile.LAYOUT.size + NAME_MAX + 2))
        table = self._read_at(base, max(0, limit - base), "CFFILE table")
        off = 0
        for i in range(header.file_count):
            try:
                f, end = CfFile.from_bytes(table, off)
            except FormatError as e:
                e.offset = base + (e.offset or 0)
                raise
            if f.folder >= 0xFFFD:
                raise FormatError(f"CFFILE {f.name!r}: iFolder 0x{f.folder:04x} continues across cabinets",
                                  offset=base + off + 8, hint="multi-cabinet sets are not supported; use cabextract")
            if f.folder >= len(self.folders):
                raise FormatError(f"CFFILE {f.name!r}: iFolder {f.folder} but there are {len(self.folders)} folders",
                                  offset=base + off + 8)
            self.files.append(f)
            self._file_offsets.append(base + off)
            off = end

    # -- public API --------------------------------------------------------------------------------

    @property
    def signature_region(self) -> tuple[int, int] | None:
        """``(offset, length)`` of the appended Authenticode blob, if the header reserve declares one (§2.1)."""
        data = self.reserve_data
        if self.reserve is None or len(data) < SIGNATURE_RESERVE_SIZE:
            return None
        magic, offset, length = (int.from_bytes(data[i:i + 4], "little") for i in (0, 4, 8))
        if magic != SIGNATURE_MAGIC or length == 0:
            return None
        return offset, length

    def names(self) -> list[str]:
        return [f.name for f in self.files]

    def member(self, name: str) -> CfFile:
        try:
            return self._by_name[name]
        except KeyError:
            shown = ", ".join(repr(n) for n in self.names()[:5])
            raise InputError(f"no member {name!r} in the cabinet", path=self.path,
                             hint=f"members are {shown}{', ...' if len(self.files) > 5 else ''}") from None

    def read(self, name: str) -> bytes:
        """The whole member ``name`` (decodes its folder from the start: MSZIP cannot seek)."""
        f = self.member(name)
        with self._where():
            return b"".join(_FolderCursor(self, f.folder).read_range(f.folder_offset, f.size, repr(f.name)))

    def iter_members(self) -> Iterator[tuple[CfFile, Iterator[bytes]]]:
        """Every member in CFFILE order with its data as chunks; consume each before asking for the next."""
        cursors: dict[int, _FolderCursor] = {}
        for f in self.files:
            cursor = cursors.get(f.folder)
            if cursor is None:
                cursor = cursors[f.folder] = _FolderCursor(self, f.folder)
            yield f, self._attach_path(cursor.read_range(f.folder_offset, f.size, repr(f.name)))

    def _attach_path(self, chunks: Iterator[bytes]) -> Iterator[bytes]:
        with self._where():
            yield from chunks

    def verify(self) -> None:
        """Decode every folder and check every checksum and member extent (like ``cabextract -t``)."""
        with self._where():
            for index in range(len(self.folders)):
                total = sum(len(block) for block in self._folder_blocks(index))
                for f, at in zip(self.files, self._file_offsets):
                    if f.folder == index and f.folder_offset + f.size > total:
                        raise FormatError(f"CFFILE {f.name!r} ends at {f.folder_offset + f.size}, past the end "
                                          f"of folder {index} ({total} bytes)", offset=at)

    def extract_all(self, dest_dir: str | os.PathLike[str]) -> list[Path]:
        """Write every member below ``dest_dir``; refuse (before writing anything) names that escape it."""
        dest = Path(dest_dir)
        root = dest.resolve()
        targets = [dest.joinpath(*_safe_parts(f.name, at)) for f, at in zip(self.files, self._file_offsets)]
        written = []
        with self._where():
            for (f, chunks), target in zip(self.iter_members(), targets):
                target.parent.mkdir(parents=True, exist_ok=True)
                if not target.parent.resolve().is_relative_to(root):
                    raise FormatError(f"CFFILE {f.name!r} leads outside {dest} (through a symlink)")
                with open(target, "wb") as out:
                    out.writelines(chunks)
                written.append(target)
        return written

    # -- folder data -------------------------------------------------------------------------------

    def _folder_blocks(self, index: int) -> Iterator[bytes]:
        """Folder ``index``'s uncompressed blocks in order, each CFDATA checked."""
        folder = self.folders[index]
        if folder.compression not in (Compression.NONE, Compression.MSZIP):
            raise FormatError(f"{folder.compression.name}-compressed folder: read it with cabextract",
                              offset=self._folder_offsets[index],
                              hint="call iotbuild.formats.cab.extract_with_cabextract(path, dest)")
        inflater = MszipDecompressor() if folder.compression == Compression.MSZIP else None
        data_reserve = self.reserve.data if self.reserve else 0
        head_size = CfData.LAYOUT.size + data_reserve
        pos = folder.data_offset
        for i in range(folder.data_blocks):
            what = f"CFDATA {i} of folder {index}"
            rec = CfData.from_bytes(self._read_at(pos, head_size, what))
            if not 0 < rec.uncompressed_size <= BLOCK_MAX:
                raise FormatError(f"{what}: cbUncomp {rec.uncompressed_size} not in 1..{BLOCK_MAX}"
                                  + (" (continued in the next cabinet)" if rec.uncompressed_size == 0 else ""),
                                  offset=pos + 6)
            if rec.compressed_size > INPUT_MAX:
                raise FormatError(f"{what}: cbData {rec.compressed_size} exceeds {INPUT_MAX}", offset=pos + 4)
            payload = self._read_at(pos + head_size, rec.compressed_size, what)
            if rec.checksum:
                actual = cfdata_checksum(payload, rec.compressed_size, rec.uncompressed_size)
                if actual != rec.checksum:
                    raise FormatError(f"{what}: checksum 0x{rec.checksum:08x} stored, 0x{actual:08x} computed",
                                      offset=pos, hint="the cabinet is corrupt")
            if inflater is not None:
                yield inflater.decompress_block(payload, rec.uncompressed_size, offset=pos + head_size)
            elif rec.compressed_size != rec.uncompressed_size:
                raise FormatError(f"{what}: stored block has cbData {rec.compressed_size} != cbUncomp "
                                  f"{rec.uncompressed_size}", offset=pos + 4)
            else:
                yield payload
            pos += head_size + rec.compressed_size


class _FolderCursor:
    """Serves byte ranges of one folder's uncompressed stream, decoding forward and restarting if asked
    for an earlier range (MSZIP history makes random access impossible)."""

    def __init__(self, reader: CabReader, index: int) -> None:
        self._reader = reader
        self._index = index
        self._generation = 0
        self._restart()

    def _restart(self) -> None:
        self._blocks = self._reader._folder_blocks(self._index)
        self._start = 0  # folder offset of self._buf[0]
        self._buf = b""

    def read_range(self, start: int, length: int, what: str) -> Iterator[bytes]:
        self._generation += 1
        generation = self._generation
        if length and start < self._start:
            self._restart()
        end = start + length
        while start < end:
            buf_end = self._start + len(self._buf)
            if start < buf_end:
                stop = min(end, buf_end)
                chunk = self._buf[start - self._start:stop - self._start]
                start = stop
                yield chunk
                if generation != self._generation:
                    raise RuntimeError("a member's chunks were read after the next member was requested")
                continue
            block = next(self._blocks, None)
            if block is None:
                raise FormatError(f"CFFILE {what} extends to folder offset {end}, past the end of folder "
                                  f"{self._index} ({buf_end} bytes)")
            self._start, self._buf = buf_end, block


def _safe_parts(name: str, offset: int) -> list[str]:
    """Path components of a member name, or FormatError if it is absolute or climbs out."""
    parts = re.split(r"[\\/]", name)
    if (not name or "\0" in name or _DRIVE.match(name) or name[0] in "\\/"
            or any(p in ("", ".", "..") for p in parts)):
        raise FormatError(f"CFFILE name {name!r} is not a safe relative path; refusing to extract", offset=offset)
    return parts


def extract_with_cabextract(path: str | os.PathLike[str], dest: str | os.PathLike[str], *,
                            timeout: float = 600.0) -> list[Path]:
    """Extract a foreign cabinet (LZX, Quantum, sets) with cabextract; returns the files written."""
    Path(dest).mkdir(parents=True, exist_ok=True)
    run(["cabextract", "-q", "-d", dest, path], timeout=timeout)
    return sorted(p for p in Path(dest).rglob("*") if stat.S_ISREG(p.lstat().st_mode))
