"""Registry text files inside SPKG packages: ``.reg`` and ``.rga`` exactly as pkggen writes them.

Reference: cab-authenticode-registry.md §4.4 (decompiled RegBuilder/RgaBuilder/RegUtil). UTF-16LE with BOM,
CRLF, header ``Windows Registry Editor Version 5.00``, optional ``;`` comment lines then one blank line,
then per key ``[path]``, its values and a blank line. Hex data is upper case, wrapped every 40 bytes with
``,\\`` and no indentation on the continuation line.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

HEADER = "Windows Registry Editor Version 5.00"
WRAP_BYTES = 40


class RegType(enum.IntEnum):
    REG_NONE = 0
    REG_SZ = 1
    REG_EXPAND_SZ = 2
    REG_BINARY = 3
    REG_DWORD = 4
    REG_MULTI_SZ = 7
    REG_QWORD = 11


RegData = str | int | bytes | tuple[str, ...]


@dataclass(frozen=True)
class RegValue:
    """One value; ``name`` None is the key's default value (``@``)."""

    name: str | None
    type: RegType
    data: RegData

    def raw(self) -> bytes:
        """The value's bytes as stored in a hive."""
        t, d = self.type, self.data
        if t in (RegType.REG_SZ, RegType.REG_EXPAND_SZ):
            return (str(d) + "\0").encode("utf-16-le")
        if t is RegType.REG_MULTI_SZ:
            items = tuple(d)  # type: ignore[arg-type]
            return ("".join(s + "\0" for s in items) + "\0").encode("utf-16-le")
        if t is RegType.REG_DWORD:
            return int(d).to_bytes(4, "little")  # type: ignore[arg-type]
        if t is RegType.REG_QWORD:
            return int(d).to_bytes(8, "little")  # type: ignore[arg-type]
        return bytes(d)  # type: ignore[arg-type]


@dataclass(frozen=True)
class RegKey:
    path: str  # full path from the hive root name, e.g. HKEY_LOCAL_MACHINE\Software\Contoso
    values: tuple[RegValue, ...] = ()


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _name(value: RegValue) -> str:
    return "@" if value.name is None else _quote(value.name)


def _hex_lines(prefix: str, data: bytes) -> list[str]:
    """``prefix`` + comma-separated bytes, wrapped after every 40 bytes with ``,\\``."""
    if not data:
        return [prefix]
    chunks = [data[i:i + WRAP_BYTES] for i in range(0, len(data), WRAP_BYTES)]
    lines = []
    for i, chunk in enumerate(chunks):
        text = ",".join(f"{b:02X}" for b in chunk)
        if i == 0:
            text = prefix + text
        if i < len(chunks) - 1:
            text += ",\\"
        lines.append(text)
    return lines


def value_lines(value: RegValue) -> list[str]:
    """The line(s) pkggen writes for one value."""
    name, t, d = _name(value), value.type, value.data
    if t is RegType.REG_SZ:
        return [f"{name}={_quote(str(d))}"]
    if t is RegType.REG_DWORD:
        return [f"{name}=dword:{int(d):08X}"]  # type: ignore[arg-type]
    if t is RegType.REG_QWORD:
        return [f";Value:0X{int(d):016X}", *_hex_lines(f"{name}=hex(b):", value.raw())]  # type: ignore[arg-type]
    if t is RegType.REG_EXPAND_SZ:
        return [f";Value:{d}", *_hex_lines(f"{name}=hex(2):", value.raw())]
    if t is RegType.REG_MULTI_SZ:
        shown = ";".join(s.replace(";", "\\;") for s in d)  # type: ignore[union-attr]
        return [f";Value:{shown}", *_hex_lines(f"{name}=hex(7):", value.raw())]
    if t is RegType.REG_BINARY:
        return _hex_lines(f"{name}=hex:", bytes(d))  # type: ignore[arg-type]
    return _hex_lines(f"{name}=hex({int(t):x}):", value.raw())


def render(keys: Sequence[RegKey], comments: Iterable[str] = ()) -> str:
    """The text of a ``.reg`` (or ``.rga``) file, before encoding."""
    lines = [HEADER]
    comments = list(comments)
    if comments:
        lines.extend(f";{c}" for c in comments)
        lines.append("")
    for key in keys:
        seen: set[str] = set()
        lines.append(f"[{key.path}]")
        for v in key.values:
            ident = "@" if v.name is None else v.name.lower()
            if ident in seen:
                raise ValueError(f"registry conflict: value {v.name or '@'} repeated in {key.path}")
            seen.add(ident)
            lines.extend(value_lines(v))
        lines.append("")
    return "\r\n".join(lines) + "\r\n"


def encode(text: str) -> bytes:
    """UTF-16LE with a byte-order mark, as .NET's Encoding.Unicode writes it."""
    return b"\xff\xfe" + text.encode("utf-16-le")


def render_reg(keys: Sequence[RegKey], comments: Iterable[str] = ()) -> bytes:
    return encode(render(keys, comments))


def render_rga(keys: Sequence[RegKey], comments: Iterable[str] = ()) -> bytes:
    """``.rga``: only REG_MULTI_SZ values, meaning 'append these strings' at image time."""
    for k in keys:
        for v in k.values:
            if v.type is not RegType.REG_MULTI_SZ:
                raise ValueError(f".rga holds REG_MULTI_SZ only, not {v.type.name} ({k.path})")
    return encode(render(keys, comments))
