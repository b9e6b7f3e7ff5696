"""A minimal PE32+ image writer, enough for a placeholder kernel-mode driver (``.sys``).

The sample board's driver package needs a ``.sys`` that tools recognise as a native x64 image, and nothing
binary may be committed, so the project makes one: headers, one ``.text`` section holding ``ret``, and the
PE checksum. Layout per Microsoft's "PE Format" specification (COFF header, optional header PE32+).
"""

from __future__ import annotations

import struct

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
