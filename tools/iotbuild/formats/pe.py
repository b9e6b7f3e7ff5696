"""A minimal PE32+ image writer, enough for a placeholder kernel-mode driver (``.sys``).

The sample board's driver package needs a ``.sys`` that tools recognise as a native x64 image, and nothing
binary may be committed, so the project makes one: headers, one ``.text`` section holding ``ret``, and the
PE checksum. Layout per Microsoft's "PE Format" specification (COFF header, optional header PE32+).

It also computes the Authenticode PE image hash that catalogs list for PE members (Microsoft, "Windows
Authenticode Portable Executable Signature Format"): the file is hashed in order, leaving out the optional
header's CheckSum field, the Certificate Table data-directory entry and the attribute certificate table.
"""

from __future__ import annotations

import hashlib
import os
import struct
from dataclasses import dataclass
from typing import BinaryIO

from ..errors import FormatError

MACHINE_AMD64 = 0x8664
MACHINE_ARM64 = 0xAA64
SUBSYSTEM_NATIVE = 1
FILE_ALIGN = 0x200
SECTION_ALIGN = 0x1000


def pe_checksum(data: bytes, checksum_offset: int) -> int:
    """The image checksum (16-bit one's-complement sum of words, skipping the field, plus the length)."""
    total = 0
    buf = data[:checksum_offset] + b"\0\0\0\0" + data[checksum_offset + 4:]
    if len(buf) % 2:
        buf += b"\0"
    for (w,) in struct.iter_unpack("<H", buf):
        total += w
        total = (total & 0xFFFF) + (total >> 16)
    return ((total & 0xFFFF) + len(data)) & 0xFFFFFFFF


def minimal_driver(*, timestamp: int, machine: int = MACHINE_AMD64, code: bytes = b"\x31\xc0\xc3") -> bytes:
    """A native-subsystem PE32+ image whose entry point returns 0 (``xor eax,eax; ret`` on x64)."""
    dos = bytearray(0x40)
    dos[0:2] = b"MZ"
    struct.pack_into("<I", dos, 0x3C, 0x40)
    coff = struct.pack("<4sHHIIIHH", b"PE\0\0", machine, 1, timestamp & 0xFFFFFFFF, 0, 0, 0xF0, 0x0022)
    size_of_image = SECTION_ALIGN * 2
    opt = struct.pack(
        "<HBBIIIIIQIIHHHHHHIIIIHHQQQQII",
        0x20B, 14, 0,            # Magic PE32+, linker version
        FILE_ALIGN, 0, 0,        # SizeOfCode, SizeOfInitializedData, SizeOfUninitializedData
        SECTION_ALIGN,           # AddressOfEntryPoint
        SECTION_ALIGN,           # BaseOfCode
        0x140000000,             # ImageBase
        SECTION_ALIGN, FILE_ALIGN,
        10, 0, 10, 0, 10, 0,     # OS, image, subsystem versions
        0,                       # Win32VersionValue
        size_of_image, FILE_ALIGN,
        0,                       # CheckSum (patched below)
        SUBSYSTEM_NATIVE, 0x0160,  # Subsystem, DllCharacteristics (HIGH_ENTROPY_VA|DYNAMIC_BASE|NX_COMPAT)
        0x40000, 0x1000, 0x100000, 0x1000,  # stack/heap reserve/commit
        0, 16,                   # LoaderFlags, NumberOfRvaAndSizes
    ) + bytes(16 * 8)
    section = struct.pack("<8sIIIIIIHHI", b".text", len(code), SECTION_ALIGN, FILE_ALIGN, FILE_ALIGN, 0, 0, 0, 0,
                          0x60000020)
    headers = bytes(dos) + coff + opt + section
    image = bytearray(headers.ljust(FILE_ALIGN, b"\0") + code.ljust(FILE_ALIGN, b"\0"))
    checksum_offset = 0x40 + 24 + 64
    struct.pack_into("<I", image, checksum_offset, pe_checksum(bytes(image), checksum_offset))
    return bytes(image)


# --- Authenticode PE image hash ----------------------------------------------------------------------------
PE32_MAGIC = 0x10B
PE32PLUS_MAGIC = 0x20B
CERT_TABLE_INDEX = 4  # IMAGE_DIRECTORY_ENTRY_SECURITY
_HASH_CHUNK = 1 << 20


@dataclass(frozen=True)
class PeLayout:
    """Where the three excluded ranges of a PE image are (all file offsets)."""

    size: int
    checksum_offset: int
    cert_dir_offset: int
    cert_table_offset: int  # 0 when the image carries no attribute certificate table
    cert_table_size: int


def _read_at(fp: BinaryIO, offset: int, n: int) -> bytes:
    fp.seek(offset)
    return fp.read(n)


def _layout(fp: BinaryIO) -> PeLayout:
    """Parse just enough of the headers to find the excluded ranges; FormatError names field and offset."""
    size = fp.seek(0, os.SEEK_END)
    dos = _read_at(fp, 0, 0x40)
    if len(dos) < 0x40:
        raise FormatError(f"PE: file is {size} bytes, shorter than the 64-byte DOS header", offset=0)
    if dos[:2] != b"MZ":
        raise FormatError(f"PE: DOS header e_magic is {dos[:2]!r}, not b'MZ'", offset=0)
    (lfanew,) = struct.unpack_from("<I", dos, 0x3C)
    if lfanew < 0x40 or lfanew + 24 > size:
        raise FormatError(f"PE: DOS header e_lfanew 0x{lfanew:x} points outside the file (size 0x{size:x})",
                          offset=0x3C)
    nt = _read_at(fp, lfanew, 24)
    if nt[:4] != b"PE\0\0":
        raise FormatError(f"PE: NT header Signature is {nt[:4]!r}, not b'PE\\0\\0'", offset=lfanew)
    (opt_size,) = struct.unpack_from("<H", nt, 20)
    opt_at = lfanew + 24
    if opt_size < 2 or opt_at + opt_size > size:
        raise FormatError(f"PE: COFF header SizeOfOptionalHeader {opt_size} does not fit in the file",
                          offset=lfanew + 20)
    opt = _read_at(fp, opt_at, opt_size)
    (magic,) = struct.unpack_from("<H", opt, 0)
    if magic == PE32_MAGIC:
        count_at, dirs_at = 92, 96
    elif magic == PE32PLUS_MAGIC:
        count_at, dirs_at = 108, 112
    else:
        raise FormatError(f"PE: optional header Magic 0x{magic:x} is neither PE32 (0x10b) nor PE32+ (0x20b)",
                          offset=opt_at)
    if opt_size < dirs_at:
        kind = "PE32+" if magic == PE32PLUS_MAGIC else "PE32"
        raise FormatError(f"PE: SizeOfOptionalHeader {opt_size} is too small for the {kind} fields",
                          offset=lfanew + 20)
    (count,) = struct.unpack_from("<I", opt, count_at)
    if count <= CERT_TABLE_INDEX:
        raise FormatError(f"PE: NumberOfRvaAndSizes {count} has no Certificate Table entry (index 4)",
                          offset=opt_at + count_at)
    cert_dir = dirs_at + 8 * CERT_TABLE_INDEX
    if opt_size < cert_dir + 8:
        raise FormatError(f"PE: SizeOfOptionalHeader {opt_size} ends before the Certificate Table entry",
                          offset=lfanew + 20)
    cert_at, cert_size = struct.unpack_from("<II", opt, cert_dir)
    if cert_size == 0 or cert_at == 0:
        cert_at = cert_size = 0
    elif cert_at < opt_at + opt_size or cert_at + cert_size != size:
        raise FormatError(f"PE: Certificate Table entry (offset 0x{cert_at:x}, size 0x{cert_size:x}) is not "
                          f"a table at the end of the file (size 0x{size:x})", offset=opt_at + cert_dir)
    return PeLayout(size, opt_at + 64, opt_at + cert_dir, cert_at, cert_size)


def _open(source: str | os.PathLike[str] | BinaryIO | bytes | bytearray | memoryview):
    import contextlib
    import io
    if isinstance(source, (bytes, bytearray, memoryview)):
        return contextlib.nullcontext(io.BytesIO(bytes(source)))
    if isinstance(source, (str, os.PathLike)):
        return open(source, "rb")
    return contextlib.nullcontext(source)


def is_pe(source: str | os.PathLike[str] | BinaryIO | bytes | bytearray | memoryview) -> bool:
    """True for a well-formed PE image (what Windows hands to the PE SIP), False for anything else.

    A file object is left at an unspecified position."""
    with _open(source) as fp:
        try:
            _layout(fp)
        except FormatError:
            return False
    return True


def authenticode_pe_hash(source: str | os.PathLike[str] | BinaryIO | bytes | bytearray | memoryview, *,
                         algorithm: str = "sha256") -> bytes:
    """The Authenticode PE image hash (SHA-256 by default), reading the file in 1 MiB chunks.

    Hashed in file order: everything except the optional header's CheckSum (4 bytes), the Certificate Table
    data-directory entry (8 bytes) and the attribute certificate table at the end of the file. Malformed
    images raise :class:`FormatError` naming the field and its offset.
    """
    with _open(source) as fp:
        try:
            layout = _layout(fp)
        except FormatError as e:
            if isinstance(source, (str, os.PathLike)):
                e.with_path(source)
            raise
        end = layout.cert_table_offset or layout.size
        ranges = ((0, layout.checksum_offset), (layout.checksum_offset + 4, layout.cert_dir_offset),
                  (layout.cert_dir_offset + 8, end))
        h = hashlib.new(algorithm)
        for start, stop in ranges:
            fp.seek(start)
            left = stop - start
            while left > 0:
                chunk = fp.read(min(left, _HASH_CHUNK))
                if not chunk:
                    raise FormatError("PE: file ended while hashing", offset=stop - left)
                h.update(chunk)
                left -= len(chunk)
        return h.digest()


WIN_CERT_TYPE_PKCS_SIGNED_DATA = 0x0002


def attribute_certificates(source: str | os.PathLike[str] | BinaryIO | bytes | bytearray | memoryview) -> list[bytes]:
    """The PKCS#7 SignedData blobs of an image's attribute certificate table (embedded Authenticode signatures).

    Each WIN_CERTIFICATE is ``dwLength, wRevision, wCertificateType`` then the blob, 8-byte aligned. Only
    PKCS_SIGNED_DATA entries are returned; an image without a table gives an empty list.
    """
    with _open(source) as fp:
        layout = _layout(fp)
        if not layout.cert_table_offset:
            return []
        table = _read_at(fp, layout.cert_table_offset, layout.cert_table_size)
    out, at = [], 0
    while at + 8 <= len(table):
        length, _revision, kind = struct.unpack_from("<IHH", table, at)
        if length < 8 or at + length > len(table):
            raise FormatError(f"PE: WIN_CERTIFICATE length {length} runs past the certificate table",
                              offset=layout.cert_table_offset + at)
        if kind == WIN_CERT_TYPE_PKCS_SIGNED_DATA:
            out.append(table[at + 8:at + length])
        at += (length + 7) & ~7
    return out
