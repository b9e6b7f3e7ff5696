"""Registry text files inside SPKG packages (``.reg``, ``.rga``): written as pkggen writes them, and read.

Reference: cab-authenticode-registry.md §4.4 (decompiled RegBuilder/RgaBuilder/RegUtil). UTF-16LE with BOM,
CRLF, header ``Windows Registry Editor Version 5.00``, optional ``;`` comment lines then one blank line,
then per key ``[path]``, its values and a blank line. Hex data is upper case, wrapped every 40 bytes with
``,\\`` and no indentation on the continuation line.

    keys = [RegKey("HKEY_LOCAL_MACHINE\\Software\\Contoso", (RegValue("On", RegType.REG_DWORD, 1),))]
    assert parse_reg(render_reg(keys), path="Contoso.reg") == keys

The reader (:func:`parse_reg`, :func:`parse_rga`) takes what pkggen and regedit write, so that the image
builder can apply the registry files of any package; see :func:`parse_reg` for what it accepts and refuses.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ..errors import FormatError

HEADER = "Windows Registry Editor Version 5.00"
WRAP_BYTES = 40


class RegType(enum.IntEnum):
    """The standard value types of winnt.h; data of 5, 6 and 8-10 is kept as bytes."""

    REG_NONE = 0
    REG_SZ = 1
    REG_EXPAND_SZ = 2
    REG_BINARY = 3
    REG_DWORD = 4
    REG_DWORD_BIG_ENDIAN = 5
    REG_LINK = 6
    REG_MULTI_SZ = 7
    REG_RESOURCE_LIST = 8
    REG_FULL_RESOURCE_DESCRIPTOR = 9
    REG_RESOURCE_REQUIREMENTS_LIST = 10
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


# ------------------------------------------------------------------------------------------------------------
# Reading
# ------------------------------------------------------------------------------------------------------------

_HEX_RE = re.compile(r"hex(?:\(([0-9A-Fa-f]{1,8})\))?:", re.I)
_DWORD_RE = re.compile(r"dword:([0-9A-Fa-f]{1,8})", re.I)
_BYTE_RE = re.compile(r"[0-9A-Fa-f]{1,2}")
_TYPES = {int(t): t for t in RegType}
_FIX = "re-export the file from regedit or rebuild the package with pkggen"


class _Reader:
    """One pass over the lines of a registry file; the first problem ends it with one FormatError."""

    def __init__(self, path: str, *, rga: bool) -> None:
        self.path = path
        self.rga = rga

    def fail(self, line: int, what: str, hint: str = _FIX) -> FormatError:
        return FormatError(f"line {line}: {what}", path=self.path, hint=hint)

    def decode(self, data: bytes) -> str:
        """UTF-16LE (BOM or not) or UTF-8 (BOM or not): the first bytes decide, as regedit's do."""
        if data[:2] == b"\xfe\xff":
            raise FormatError("the file is UTF-16 big-endian", path=self.path,
                              hint="save it as UTF-16LE (what pkggen and regedit write) or UTF-8")
        if data[:2] == b"\xff\xfe":
            encoding, body = "utf-16-le", data[2:]
        elif data[:3] == b"\xef\xbb\xbf":
            encoding, body = "utf-8", data[3:]
        elif len(data) >= 2 and data[0] and not data[1]:
            encoding, body = "utf-16-le", data  # "W\0i\0…": UTF-16LE that lost its byte-order mark
        else:
            encoding, body = "utf-8", data
        try:
            return body.decode(encoding)
        except UnicodeDecodeError as e:
            line = body[:e.start].decode(encoding, "replace").count("\n") + 1
            raise self.fail(line, f"not valid {encoding.upper()} text ({e.reason} at byte {e.start})",
                            hint="save the file as UTF-16LE with a byte-order mark, or as UTF-8") from None

    def parse(self, data: bytes) -> list[RegKey]:
        # split on "\n" only: str.splitlines() would also break at U+2028, \x1c… inside names and strings
        lines = [ln[:-1] if ln.endswith("\r") else ln for ln in self.decode(data).split("\n")]
        head = lines[0].strip(" \t") if lines else ""
        if head.upper() == "REGEDIT4":
            raise self.fail(1, "REGEDIT4 files are not supported",
                            hint="they store hex(2)/hex(7) text in the ANSI code page, not UTF-16; export "
                                 f"the keys again with regedit (format '{HEADER}')")
        if head != HEADER:
            raise self.fail(1, f"expected the header {HEADER!r}, found {head[:60]!r}",
                            hint="a .reg file starts with that line; is this a registry file?")
        keys: list[RegKey] = []
        path: str | None = None
        values: list[RegValue] = []
        seen: dict[tuple[bool, str], int] = {}
        i = 1
        while i < len(lines):
            start = i + 1  # 1-based line number
            text = lines[i].strip(" \t")
            i += 1
            if not text or text.startswith(";"):  # pkggen's ";Value:" lines too: the hex is authoritative
                continue
            if text.startswith("["):
                if path is not None:
                    keys.append(RegKey(path, tuple(values)))
                path, values, seen = self.key(start, text), [], {}
                continue
            if not text.startswith(('"', "@")):
                raise self.fail(start, f"cannot read {text[:60]!r}",
                                hint='a line is [key], "name"=data, @=data, a ; comment or blank')
            if path is None:
                raise self.fail(start, f"value {text[:40]!r} comes before any [key] line",
                                hint="put a [HKEY_…] line above it")
            value, i = self.value(start, text, lines, i)
            ident = (value.name is None, (value.name or "").lower())
            if ident in seen:
                raise self.fail(start, f"value {_shown(value.name)} is set twice in [{path}] (first on line "
                                       f"{seen[ident]})",
                                hint="keep one of the two (pkggen: 'Registry conflict discovered')")
            seen[ident] = start
            values.append(value)
        if path is not None:
            keys.append(RegKey(path, tuple(values)))
        return keys

    def key(self, line: int, text: str) -> str:
        if text.startswith("[-"):
            raise self.fail(line, f"{text[:60]} deletes a key; package registry files only add",
                            hint="remove the line; images are built from packages, which cannot delete keys")
        if not text.endswith("]"):
            raise self.fail(line, f"key line {text[:60]!r} does not end with ']'",
                            hint="close the key with ]")
        path = text[1:-1]
        if not path.strip(" \t"):
            raise self.fail(line, "empty key path []",
                            hint="write the full path, e.g. [HKEY_LOCAL_MACHINE\\…]")
        return path

    def quoted(self, line: int, text: str, what: str) -> tuple[str, str]:
        """``"…"`` at the start of ``text``, with ``\\\\`` and ``\\"`` escapes: (the string, the rest)."""
        out: list[str] = []
        j = 1
        while j < len(text):
            c = text[j]
            if c == '"':
                return "".join(out), text[j + 1:]
            if c == "\\":
                nxt = text[j + 1:j + 2]
                if nxt not in ('\\', '"'):
                    raise self.fail(line, f"{what} has the escape \\{nxt} (only \\\\ and \\\" exist)",
                                    hint="write a backslash as \\\\")
                out.append(nxt)
                j += 2
                continue
            out.append(c)
            j += 1
        raise self.fail(line, f"{what} {text[:40]!r} has no closing quote",
                        hint='end it with " (a quote inside is written \\")')

    def value(self, line: int, text: str, lines: list[str], i: int) -> tuple[RegValue, int]:
        """The value that starts at ``text`` (line ``line``) and the index of the line after it."""
        if text.startswith("@"):
            name, rest = None, text[1:]
        else:
            name, rest = self.quoted(line, text, "value name")
        rest = rest.lstrip(" \t")
        if not rest.startswith("="):
            raise self.fail(line, f"value {_shown(name)}: expected '=' after the name, found {rest[:20]!r}",
                            hint='write "name"=data')
        rest = rest[1:].strip(" \t")
        label = f"value {_shown(name)}"
        if rest == "-":
            raise self.fail(line, f"{label}=- deletes a value; package registry files only add",
                            hint="remove the line")
        if self.rga and not rest.lower().startswith("hex(7):"):
            raise self.fail(line, f"{label} is not hex(7): an .rga file holds only REG_MULTI_SZ values to "
                                  "append", hint="move other values to the package's .reg file")
        if rest.startswith('"'):
            data, tail = self.quoted(line, rest, label)
            if tail.strip(" \t"):
                raise self.fail(line, f"{label}: unexpected {tail.strip()[:20]!r} after the closing quote",
                                hint="a quote inside a string is written \\\"")
            return RegValue(name, RegType.REG_SZ, data), i
        if m := _DWORD_RE.fullmatch(rest):
            return RegValue(name, RegType.REG_DWORD, int(m.group(1), 16)), i
        if rest.lower().startswith("dword:"):
            raise self.fail(line, f"{label}: {rest[:30]!r} is not 1 to 8 hex digits",
                            hint="e.g. dword:0000001a")
        m = _HEX_RE.match(rest)
        if m is None:
            raise self.fail(line, f"{label}: cannot read the data {rest[:30]!r}",
                            hint='use "text", dword:XXXXXXXX, hex:… or hex(N):…')
        vtype = int(m.group(1), 16) if m.group(1) else int(RegType.REG_BINARY)
        body = rest[m.end():]
        while body.endswith("\\"):  # ",\" at the end: the bytes go on, indented (regedit) or not (pkggen)
            body = body[:-1].rstrip(" \t")
            if i >= len(lines) or not lines[i].strip(" \t"):
                raise self.fail(line, f"{label}: the hex data ends with ',\\' but no line continues it",
                                hint="remove the trailing ,\\ or add the missing bytes")
            body += lines[i].strip(" \t")
            i += 1
        raw = self.hexbytes(line, label, body)
        return self.typed(line, label, name, vtype, raw), i

    def hexbytes(self, line: int, label: str, body: str) -> bytes:
        if not body:
            return b""
        out = bytearray()
        for token in body.split(","):
            token = token.strip(" \t")
            if not _BYTE_RE.fullmatch(token):
                what = "an empty byte (a ',' too many?)" if not token else f"{token[:20]!r} is not a hex byte"
                raise self.fail(line, f"{label}: {what}", hint="write bytes as two hex digits: 0a,ff,…")
            out.append(int(token, 16))
        return bytes(out)

    def typed(self, line: int, label: str, name: str | None, vtype: int, raw: bytes) -> RegValue:
        """Data of the types the writer takes as str / tuple / int, decoded exactly (or a FormatError)."""
        t = _TYPES.get(vtype)
        if t in (RegType.REG_SZ, RegType.REG_EXPAND_SZ):
            return RegValue(name, t, self.utf16(line, label, raw).removesuffix("\0") if raw else "")
        if t is RegType.REG_MULTI_SZ:
            text = self.utf16(line, label, raw) if raw else "\0"
            if not text.endswith("\0"):
                raise self.fail(line, f"{label}: REG_MULTI_SZ data does not end with a NUL",
                                hint="end the list with 00,00,00,00 (the last string's NUL and the list's)")
            text = text[:-1]
            if not text:
                return RegValue(name, t, ())
            if not text.endswith("\0"):
                raise self.fail(line, f"{label}: REG_MULTI_SZ data does not end with two NULs",
                                hint="end the list with 00,00,00,00 (the last string's NUL and the list's)")
            return RegValue(name, t, tuple(text[:-1].split("\0")))
        if t in (RegType.REG_DWORD, RegType.REG_QWORD):
            size = 4 if t is RegType.REG_DWORD else 8
            if len(raw) != size:
                raise self.fail(line, f"{label}: {t.name} data is {len(raw)} bytes, not {size}",
                                hint=f"write exactly {size} little-endian bytes")
            return RegValue(name, t, int.from_bytes(raw, "little"))
        return RegValue(name, t if t is not None else vtype, raw)  # type: ignore[arg-type]

    def utf16(self, line: int, label: str, raw: bytes) -> str:
        """A string type's bytes: whole, valid UTF-16LE code units ending in NUL (so re-encoding is exact)."""
        if len(raw) % 2:
            raise self.fail(line, f"{label}: {len(raw)} bytes of UTF-16 text (an odd number)",
                            hint="a string type holds whole 2-byte UTF-16LE characters")
        try:
            text = raw.decode("utf-16-le")
        except UnicodeDecodeError:
            raise self.fail(line, f"{label}: the bytes are not valid UTF-16LE (a lone surrogate)",
                            hint="store such data as hex: (REG_BINARY)") from None
        if not text.endswith("\0"):
            raise self.fail(line, f"{label}: the string does not end with a NUL (00,00)",
                            hint="add 00,00 at the end of the data")
        return text


def _shown(name: str | None) -> str:
    return "@" if name is None else repr(name)


def parse_reg(data: bytes, *, path: str) -> list[RegKey]:
    """The keys of a ``.reg`` file, in file order (a key that appears twice gives two RegKeys).

    Accepted: UTF-16LE with or without BOM (pkggen, regedit) and UTF-8 with or without BOM; CRLF or LF;
    the header ``Windows Registry Editor Version 5.00``; blank lines and ``;`` comment lines (pkggen's
    ``;Value:`` lines are comments: the hex under them is what counts); ``[key]``; ``@=`` and ``"name"=``
    with ``"string"`` (escapes ``\\\\`` and ``\\"``), ``dword:``, ``hex:`` and ``hex(N):`` with ``,\\``
    continuation lines, indented or not. hex(1)/hex(2) decode to ``str`` and hex(7) to ``tuple[str, ...]``
    when the bytes are exactly what the writer would produce for them (UTF-16LE ending in NUL, or empty);
    hex(4)/hex(b) of 4/8 bytes to ``int``; every other type stays bytes (types above 11 keep a plain ``int``
    type, as the hive reader does). Only ``\\n`` ends a line, never U+2028 and the like.

    Refused, with one FormatError naming the line: ``REGEDIT4`` files (their hex(2)/hex(7) text is in the ANSI
    code page, so reading it as UTF-16 would silently corrupt it), deletions (``[-key]``, ``"v"=-``), a value
    name set twice in one key section, and anything malformed.
    """
    return _Reader(path, rga=False).parse(data)


def parse_rga(data: bytes, *, path: str) -> list[RegKey]:
    """The keys of an ``.rga`` file (:func:`parse_reg`); every value must be ``hex(7)`` (REG_MULTI_SZ)."""
    return _Reader(path, rga=True).parse(data)
