"""Helpers shared by the record classes of every format module."""

from __future__ import annotations

import enum
import struct
from typing import TypeVar

from ..errors import FormatError

E = TypeVar("E", bound=enum.IntEnum)


def unpack(layout: struct.Struct, buf: bytes | memoryview, offset: int, what: str) -> tuple:
    """``layout.unpack_from`` that reports a short buffer as a FormatError at ``offset``."""
    if len(buf) - offset < layout.size:
        raise FormatError(f"{what}: truncated ({len(buf) - offset} of {layout.size} bytes)", offset=offset)
    return layout.unpack_from(buf, offset)


def to_enum(cls: type[E], value: int, offset: int, what: str) -> E:
    try:
        return cls(value)
    except ValueError:
        known = ", ".join(str(int(m)) for m in cls)
        raise FormatError(f"{what} {value} unknown (known: {known})", offset=offset) from None
