"""Streaming MS-CAB writer (MS-CAB 2.1-2.5; reference cab-authenticode-registry.md §1.1-1.7).

Layout written: CFHEADER (flags 0, no reserve: a signer inserts its own, §2.1), one CFFOLDER,
the CFFILEs, then the folder's CFDATA blocks. Members are concatenated into the folder stream and
cut into blocks of exactly 32768 uncompressed bytes, the last block excepted, as gcab and makecab
do. Everything but ``cbCabinet`` is known before the first data byte, so that one field is
patched at the end and the data itself is streamed in 1 MiB reads: memory stays bounded whatever
the input size.

One folder means the format limits apply to the whole package (65535 blocks of 32 KiB); inputs
past them are refused before anything is written, never silently truncated as cabarchive does.
The output is a pure function of (members, compression, level, epoch, zlib version).

If this raises, ``out`` holds a partial cabinet: write to a ``.partial`` file and rename on success.
"""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from ...errors import InputError, InputErrors
from .checksum import cfdata_checksum
from .mszip import MszipCompressor
from .records import (
    ATTR_ARCH,
    ATTR_NAME_IS_UTF,
    BLOCK_MAX,
    CABINET_MAX,
    FILES_MAX,
    FOLDER_UNCOMPRESSED_MAX,
    NAME_MAX,
    CfData,
    CfFile,
    CfFolder,
    CfHeader,
    Compression,
    dos_datetime,
)

READ_SIZE = 1 << 20  # bytes per read() of a member file
DOS_EPOCH_MIN = 315532800  # 1980-01-01 00:00:00 UTC, the first MS-DOS date
DOS_EPOCH_MAX = 4354819199  # 2107-12-31 23:59:59 UTC, the last one
SPLIT_HINT = "split the package into smaller packages"


@dataclass(frozen=True)
class CabSource:
    """One member: its name inside the cabinet and where its bytes come from (a file or memory)."""

    name: str  # "\\" separators, no leading "\\"
    path: Path | None = None
    data: bytes | None = None
    attribs: int = ATTR_ARCH  # ATTR_NAME_IS_UTF is set or cleared from the name, whatever is given

    def __post_init__(self) -> None:
        if (self.path is None) == (self.data is None):
            raise InputError(f"CAB member {self.name!r}: give exactly one of path= or data=")
        if not 0 <= self.attribs <= 0xFFFF:
            raise InputError(f"CAB member {self.name!r}: attribs 0x{self.attribs:x} does not fit 16 bits")


@dataclass(frozen=True)
class CabWriteResult:
    size: int  # cbCabinet: bytes written
    folder_count: int
    data_blocks: int  # CFDATA blocks
    uncompressed_size: int  # sum of member sizes
    compressed_size: int  # sum of CFDATA payloads (cbData)


def write_cab(out: BinaryIO, members: Sequence[CabSource], *, compression: Compression = Compression.MSZIP,
              level: int = 6, epoch: int) -> CabWriteResult:
    """Write ``members`` in the given order as one cabinet to the seekable ``out``.

    ``epoch`` (seconds since 1970, e.g. SOURCE_DATE_EPOCH) dates every member, so the same inputs
    give the same bytes; times before 1980 are clamped to 1980-01-01, the first DOS date.
    """
    if compression not in (Compression.NONE, Compression.MSZIP):
        raise InputError(f"CAB compression {Compression(compression).name} is not supported for writing",
                         hint="use Compression.MSZIP or Compression.NONE")
    if not members:
        raise InputError("a cabinet needs at least one member")
    if epoch > DOS_EPOCH_MAX:
        raise InputError(f"epoch {epoch} is after 2107, the last MS-DOS date")
    date, tim = dos_datetime(time.gmtime(max(epoch, DOS_EPOCH_MIN)))
    sizes = [_member_size(m) for m in members]
    files = _plan_files(members, sizes, date, tim)

    total = sum(sizes)
    if total > FOLDER_UNCOMPRESSED_MAX:
        raise InputError(f"CAB members total {total} bytes; one cabinet folder holds at most "
                         f"{FOLDER_UNCOMPRESSED_MAX} (0x{FOLDER_UNCOMPRESSED_MAX:X})", hint=SPLIT_HINT)
    blocks = -(-total // BLOCK_MAX)
    files_offset = CfHeader.LAYOUT.size + CfFolder.LAYOUT.size
    data_offset = files_offset + sum(len(f.to_bytes()) for f in files)
    if compression == Compression.NONE:
        _check_cabinet_size(data_offset + blocks * CfData.LAYOUT.size + total)

    start = out.tell()
    header = CfHeader(cabinet_size=0, files_offset=files_offset, folder_count=1, file_count=len(files))
    out.write(header.to_bytes())
    out.write(CfFolder(data_offset, blocks, compression).to_bytes())
    out.writelines(f.to_bytes() for f in files)

    compressor = MszipCompressor(level) if compression == Compression.MSZIP else None
    written = data_offset
    packed = 0
    count = 0
    for chunk in _blocks(members, sizes):
        payload = compressor.compress_block(chunk) if compressor else bytes(chunk)
        record = CfData(cfdata_checksum(payload, len(payload), len(chunk)), len(payload), len(chunk))
        out.write(record.to_bytes())
        out.write(payload)
        written += CfData.LAYOUT.size + len(payload)
        packed += len(payload)
        count += 1
        _check_cabinet_size(written)
    assert count == blocks, (count, blocks)  # sizes were verified while reading

    out.seek(start)
    out.write(CfHeader(written, files_offset, 1, len(files)).to_bytes())
    out.seek(start + written)
    return CabWriteResult(size=written, folder_count=1, data_blocks=count, uncompressed_size=total,
                          compressed_size=packed)


def _check_cabinet_size(size: int) -> None:
    if size > CABINET_MAX:
        raise InputError(f"cabinet would exceed {CABINET_MAX} bytes (0x{CABINET_MAX:X}), the CAB format limit "
                         f"(reached {size})", hint=SPLIT_HINT)


def encode_name(name: str) -> tuple[bytes, bool]:
    """``szName`` bytes and whether ATTR_NAME_IS_UTF is needed; InputError for names no reader accepts."""
    if not name:
        raise InputError("CAB member name is empty")
    if "\0" in name:
        raise InputError(f"CAB member name {name!r} contains a NUL character")
    if "/" in name:
        raise InputError(f"CAB member name {name!r} contains '/'", hint="separate folders with '\\'")
    parts = name.split("\\")
    if name.startswith("\\") or any(p in ("", ".", "..") for p in parts) or (len(name) > 1 and name[1] == ":"):
        raise InputError(f"CAB member name {name!r} is not a relative path of non-empty parts",
                         hint="no leading '\\', drive letter, '.', '..' or doubled '\\'")
    try:
        raw = name.encode("ascii")
        utf = False
    except UnicodeEncodeError:
        try:
            raw = name.encode("utf-8")
        except UnicodeEncodeError:
            raise InputError(f"CAB member name {name!r} is not valid Unicode") from None
        utf = True
    if len(raw) > NAME_MAX:
        raise InputError(f"CAB member name is {len(raw)} bytes, the limit is {NAME_MAX}: {name!r}",
                         hint="shorten the name or its folder path")
    return raw, utf


def _plan_files(members: Sequence[CabSource], sizes: Sequence[int], date: int, tim: int) -> list[CfFile]:
    """Validate every member (reporting all problems at once) and build the CFFILE records."""
    issues: list[InputError] = []
    if len(members) > FILES_MAX:
        issues.append(InputError(f"{len(members)} CAB members; a cabinet holds at most {FILES_MAX}",
                                 hint=SPLIT_HINT))
    files: list[CfFile] = []
    seen: dict[str, str] = {}
    offset = 0
    for member, size in zip(members, sizes):
        try:
            _raw, utf = encode_name(member.name)
        except InputError as e:
            issues.append(e)
            continue
        key = member.name.casefold()
        if key in seen:
            issues.append(InputError(f"CAB member names {seen[key]!r} and {member.name!r} collide "
                                     "(names are case-insensitive on Windows)"))
        seen.setdefault(key, member.name)
        if size > FOLDER_UNCOMPRESSED_MAX:
            issues.append(InputError(f"CAB member {member.name!r} is {size} bytes; the format limit is "
                                     f"{FOLDER_UNCOMPRESSED_MAX} (0x{FOLDER_UNCOMPRESSED_MAX:X})", hint=SPLIT_HINT))
        attribs = (member.attribs & ~ATTR_NAME_IS_UTF) | (ATTR_NAME_IS_UTF if utf else 0)
        files.append(CfFile(size, offset & 0xFFFFFFFF, 0, date, tim, attribs, member.name))
        offset += size
    if len(issues) == 1:
        raise issues[0]
    if issues:
        raise InputErrors(issues)
    return files


def _member_size(member: CabSource) -> int:
    if member.data is not None:
        return len(member.data)
    assert member.path is not None
    try:
        st = os.stat(member.path)
    except OSError as e:
        raise InputError(f"cannot read CAB member {member.name!r}: {e.strerror}", path=member.path) from None
    if not stat.S_ISREG(st.st_mode):
        raise InputError(f"CAB member {member.name!r} is not a regular file", path=member.path)
    return st.st_size


def _member_pieces(member: CabSource, size: int) -> Iterator[memoryview]:
    """The member's bytes in pieces of at most READ_SIZE; InputError if a file changed size meanwhile."""
    if member.data is not None:
        view = memoryview(member.data)
        for pos in range(0, len(view), READ_SIZE):
            yield view[pos:pos + READ_SIZE]
        return
    assert member.path is not None
    try:
        with open(member.path, "rb") as f:
            done = 0
            while done < size:
                piece = f.read(min(READ_SIZE, size - done))
                if not piece:
                    raise InputError(f"CAB member {member.name!r} shrank while being read ({done} of {size} bytes)",
                                     path=member.path, hint="do not modify inputs during the build")
                done += len(piece)
                yield memoryview(piece)
            if f.read(1):
                raise InputError(f"CAB member {member.name!r} grew while being read (past {size} bytes)",
                                 path=member.path, hint="do not modify inputs during the build")
    except OSError as e:
        raise InputError(f"cannot read CAB member {member.name!r}: {e.strerror}", path=member.path) from None


def _blocks(members: Sequence[CabSource], sizes: Sequence[int]) -> Iterator[bytes | memoryview]:
    """The folder's uncompressed stream cut into 32768-byte blocks (the last may be shorter).

    A yielded memoryview is only valid until the next one is requested.
    """
    pending = bytearray()
    for member, size in zip(members, sizes):
        for view in _member_pieces(member, size):
            pos = 0
            if pending:
                pos = min(BLOCK_MAX - len(pending), len(view))
                pending += view[:pos]
                if len(pending) < BLOCK_MAX:
                    continue
                yield bytes(pending)
                pending.clear()
            while len(view) - pos >= BLOCK_MAX:
                yield view[pos:pos + BLOCK_MAX]
                pos += BLOCK_MAX
            pending += view[pos:]
    if pending:
        yield bytes(pending)
