"""MS-CAB structures (reference: cab-authenticode-registry.md §1, MS-CAB 2.1–2.5). Declarations only."""

from __future__ import annotations

import enum
import struct
import time
from dataclasses import dataclass
from typing import ClassVar

from .._struct import to_enum, unpack

SIGNATURE = b"MSCF"
VERSION = (3, 1)  # minor, major
BLOCK_MAX = 32768  # CAB_BLOCKMAX: uncompressed bytes per CFDATA
MSZIP_MAX = BLOCK_MAX + 12  # MS-MCI: largest MSZIP payload a compliant writer emits
INPUT_MAX = BLOCK_MAX + 6144  # CAB_INPUTMAX: largest payload readers accept
CABINET_MAX = 0x7FFFFFFF  # cbCabinet is a signed 32-bit size in practice (FCI CB_MAX_DISK)
FOLDER_UNCOMPRESSED_MAX = 0xFFFF * BLOCK_MAX  # 65535 CFDATA blocks of 32 KiB
FILES_MAX = 0xFFFF
NAME_MAX = 255  # bytes, without the NUL

FLAG_PREV_CABINET = 0x0001
FLAG_NEXT_CABINET = 0x0002
FLAG_RESERVE_PRESENT = 0x0004

ATTR_RDONLY = 0x01
ATTR_HIDDEN = 0x02
ATTR_SYSTEM = 0x04
ATTR_ARCH = 0x20
ATTR_EXEC = 0x40
ATTR_NAME_IS_UTF = 0x80


class Compression(enum.IntEnum):
    NONE = 0
    MSZIP = 1
    QUANTUM = 2
    LZX = 3


@dataclass(frozen=True, slots=True)
class CfHeader:  # MS-CAB 2.2 CFHEADER (fixed 36 bytes)
    LAYOUT: ClassVar[struct.Struct] = struct.Struct(
        "<4s"  # signature "MSCF"
        "I"    # reserved1
        "I"    # cbCabinet
        "I"    # reserved2
        "I"    # coffFiles
        "I"    # reserved3
        "B"    # versionMinor
        "B"    # versionMajor
        "H"    # cFolders
        "H"    # cFiles
        "H"    # flags
        "H"    # setID
        "H"    # iCabinet
    )
    cabinet_size: int
    files_offset: int
    folder_count: int
    file_count: int
    flags: int = 0
    set_id: int = 0
    cabinet_index: int = 0

    @classmethod
    def from_bytes(cls, buf: bytes | memoryview, offset: int = 0) -> CfHeader:
        sig, _r1, cb, _r2, coff, _r3, vmin, vmaj, nfold, nfile, flags, set_id, icab = unpack(
            cls.LAYOUT, buf, offset, "CFHEADER")
        from ...errors import FormatError
        if sig != SIGNATURE:
            raise FormatError(f"CFHEADER.signature {sig!r} is not 'MSCF': not a cabinet", offset=offset)
        if (vmin, vmaj) != VERSION:
            raise FormatError(f"CFHEADER.version {vmaj}.{vmin} unsupported (only 1.3 exists)", offset=offset + 0x18)
        return cls(cb, coff, nfold, nfile, flags, set_id, icab)

    def to_bytes(self) -> bytes:
        return self.LAYOUT.pack(SIGNATURE, 0, self.cabinet_size, 0, self.files_offset, 0, VERSION[0], VERSION[1],
                                self.folder_count, self.file_count, self.flags, self.set_id, self.cabinet_index)


@dataclass(frozen=True, slots=True)
class CfReserveSizes:  # MS-CAB 2.2 optional fields present when FLAG_RESERVE_PRESENT
    LAYOUT: ClassVar[struct.Struct] = struct.Struct("<HBB")  # cbCFHeader cbCFFolder cbCFData
    header: int
    folder: int
    data: int

    @classmethod
    def from_bytes(cls, buf: bytes | memoryview, offset: int = 0) -> CfReserveSizes:
        return cls(*unpack(cls.LAYOUT, buf, offset, "CFHEADER reserve sizes"))

    def to_bytes(self) -> bytes:
        return self.LAYOUT.pack(self.header, self.folder, self.data)


@dataclass(frozen=True, slots=True)
class CfFolder:  # MS-CAB 2.3 CFFOLDER
    LAYOUT: ClassVar[struct.Struct] = struct.Struct("<IHH")  # coffCabStart cCFData typeCompress
    data_offset: int
    data_blocks: int
    compression: Compression
    compression_params: int = 0  # bits 4-15 of typeCompress (LZX window, Quantum level/memory)

    @classmethod
    def from_bytes(cls, buf: bytes | memoryview, offset: int = 0) -> CfFolder:
        off, n, comp = unpack(cls.LAYOUT, buf, offset, "CFFOLDER")
        return cls(off, n, to_enum(Compression, comp & 0x000F, offset + 6, "CFFOLDER.typeCompress"), comp & 0xFFF0)

    def to_bytes(self) -> bytes:
        return self.LAYOUT.pack(self.data_offset, self.data_blocks, int(self.compression) | self.compression_params)


@dataclass(frozen=True, slots=True)
class CfFile:  # MS-CAB 2.4 CFFILE (16 bytes + NUL-terminated szName)
    LAYOUT: ClassVar[struct.Struct] = struct.Struct("<IIHHHH")  # cbFile uoffFolderStart iFolder date time attribs
    size: int
    folder_offset: int
    folder: int
    date: int
    time: int
    attribs: int
    name: str

    @classmethod
    def from_bytes(cls, buf: bytes | memoryview, offset: int = 0) -> tuple[CfFile, int]:
        """Parse one CFFILE; return it and the offset just past its name."""
        from ...errors import FormatError
        size, foff, ifold, date, tim, attribs = unpack(cls.LAYOUT, buf, offset, "CFFILE")
        start = offset + cls.LAYOUT.size
        end = bytes(buf[start:start + NAME_MAX + 2]).find(b"\0")
        if end < 0:
            raise FormatError("CFFILE.szName is not NUL-terminated within 256 bytes", offset=start)
        raw = bytes(buf[start:start + end])
        enc = "utf-8" if attribs & ATTR_NAME_IS_UTF else "cp437"
        try:
            name = raw.decode(enc)
        except UnicodeDecodeError:
            raise FormatError(f"CFFILE.szName is not valid {enc}: {raw!r}", offset=start) from None
        return cls(size, foff, ifold, date, tim, attribs, name), start + end + 1

    def to_bytes(self) -> bytes:
        raw = self.encoded_name()
        return self.LAYOUT.pack(self.size, self.folder_offset, self.folder, self.date, self.time, self.attribs) + raw + b"\0"

    def encoded_name(self) -> bytes:
        return self.name.encode("utf-8" if self.attribs & ATTR_NAME_IS_UTF else "ascii")


@dataclass(frozen=True, slots=True)
class CfData:  # MS-CAB 2.5 CFDATA header (8 bytes; payload follows)
    LAYOUT: ClassVar[struct.Struct] = struct.Struct("<IHH")  # csum cbData cbUncomp
    checksum: int
    compressed_size: int
    uncompressed_size: int

    @classmethod
    def from_bytes(cls, buf: bytes | memoryview, offset: int = 0) -> CfData:
        return cls(*unpack(cls.LAYOUT, buf, offset, "CFDATA"))

    def to_bytes(self) -> bytes:
        return self.LAYOUT.pack(self.checksum, self.compressed_size, self.uncompressed_size)


def dos_datetime(epoch_struct: time.struct_time) -> tuple[int, int]:
    """MS-DOS (date, time) words for a ``time.struct_time`` (two-second resolution)."""
    t = epoch_struct
    date = ((max(t.tm_year, 1980) - 1980) << 9) | (t.tm_mon << 5) | t.tm_mday
    tim = (t.tm_hour << 11) | (t.tm_min << 5) | (t.tm_sec // 2)
    return date, tim
