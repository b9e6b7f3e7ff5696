"""The CFDATA checksum (MS-CAB 2.5 ``CSUMCompute``; reference cab-authenticode-registry.md §1.5).

``csum`` is the XOR of every complete little-endian 32-bit word of the buffer, XORed into a seed,
then the 1-3 trailing bytes packed high-first (``b0<<16 | b1<<8 | b2``). A CFDATA block stores
``csum(cbData cbUncomp, seed=csum(ab))``.

A Python loop over words costs seconds per 200 MB, so the XOR is done on one big integer: the
words of the buffer are the 32-bit digits of ``int.from_bytes(buf, "little")``, and folding the high
half onto the low half (``x >> w ^ x & mask``) until 32 bits remain leaves their XOR. Every step
runs in C; the total work is about twice the buffer size.
"""

from __future__ import annotations

import struct

_WORD_BITS = 32
_MASKS: dict[int, int] = {}  # w -> (1 << w) - 1, built once per width
_SIZES = struct.Struct("<HH")  # cbData cbUncomp as they appear in CFDATA


def _mask(width: int) -> int:
    mask = _MASKS.get(width)
    if mask is None:
        mask = _MASKS[width] = (1 << width) - 1
    return mask


def xor_words(buf: bytes | bytearray | memoryview) -> int:
    """XOR of all little-endian 32-bit words of ``buf``; ``len(buf)`` must be a multiple of 4."""
    view = memoryview(buf).cast("B")
    size = len(view)
    if size % 4:
        raise ValueError(f"xor_words needs whole words, got {size} bytes")
    if size == 0:
        return 0
    width = _WORD_BITS
    while width < size * 8:
        width <<= 1
    half = width // 16  # bytes in the upper half of a zero-padded power-of-two layout
    if width > _WORD_BITS and size > half:
        # First fold on bytes: two C-level conversions instead of a shift over the whole integer.
        acc = int.from_bytes(view[:half], "little") ^ int.from_bytes(view[half:], "little")
        width >>= 1
    else:
        acc = int.from_bytes(view, "little")
    while width > _WORD_BITS:
        width >>= 1
        acc = (acc >> width) ^ (acc & _mask(width))
    return acc


def cab_checksum(data: bytes | bytearray | memoryview, seed: int = 0) -> int:
    """MS-CAB ``CSUMCompute(data, seed)``: word XOR, then the trailing bytes packed high-first."""
    view = memoryview(data).cast("B")
    whole = len(view) & ~3
    acc = (seed ^ xor_words(view[:whole])) if whole else seed
    tail = view[whole:]
    value = 0
    for byte in tail:  # at most 3 iterations: b0<<16 | b1<<8 | b2 for three, b0<<8 | b1 for two
        value = (value << 8) | byte
    return (acc ^ value) & 0xFFFFFFFF


def cfdata_checksum(payload: bytes | bytearray | memoryview, cb_data: int, cb_uncomp: int) -> int:
    """``CFDATA.csum``: the payload first, then the 4 bytes ``cbData cbUncomp`` seeded with that.

    The CFDATA reserve (``abReserve``) is left out, as libmspack does; iotbuild never writes one.
    """
    return cab_checksum(_SIZES.pack(cb_data, cb_uncomp), cab_checksum(payload))
