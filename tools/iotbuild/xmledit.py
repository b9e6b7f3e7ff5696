"""Edits to an XML file made on its text, so everything the edit does not touch stays byte for byte.

Why not re-serialize a tree: xmlsafe drops comments when it parses, and lxml would rewrite the declaration,
attribute layout, BOM and line endings. A hand-kept file (an OEMInput, a feature manifest, IoTWorkspace.xml)
should change only in the lines an edit means to change. ``XmlTextDocument`` maps each parsed element to its
exact span in the text, so an edit inserts or removes only those lines, indented like their neighbours; every
edit re-parses the result, and the caller checks it with its model before it is written (atomically).

    doc = XmlTextDocument.load(path, what="OEMInput file")
    doc.insert_child(doc.child(doc.root, "Features"), [(0, "<OEM>"), (0, "</OEM>")])
    model.from_root(doc.root, doc.path); doc.save()
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .errors import InputError
from .outputs import write_atomic
from .xmlsafe import localname, parse_bytes

__all__ = ["XmlTextDocument"]

# Comments, PIs, CDATA, DOCTYPE-like markup (skipped), end tags, start tags (attribute values may hold ">").
_TOKEN_RE = re.compile(r"<!--.*?-->|<\?.*?\?>|<!\[CDATA\[.*?\]\]>|<![^>]*>|(</[^>]*>)"
                       r"|(<[^!?/](?:[^>\"']|\"[^\"]*\"|'[^']*')*>)", re.DOTALL)


@dataclass
class _Span:
    start: int  # "<" of the start tag
    open_end: int  # after the start tag's ">"
    close_start: int | None  # "<" of the end tag; None when self-closing
    end: int  # after the element


class XmlTextDocument:
    """A well-formed XML file held as text, with the span of every element, for edits that keep its layout.

    ``root`` is the xmlsafe parse of the same bytes (comments dropped, line numbers kept); ``span(el)`` gives
    where ``el`` is in ``text``. Each edit re-parses, so spans always match the current text, and elements
    fetched before an edit are stale after it (fetch them again from ``root``).
    """

    def __init__(self, path: Path, data: bytes, *, what: str = "XML file") -> None:
        self.path, self.what = path, what
        if data.startswith(b"\xef\xbb\xbf"):
            self.bom, self.encoding, body = b"\xef\xbb\xbf", "utf-8", data[3:]
        elif data[:2] in (b"\xff\xfe", b"\xfe\xff"):
            self.bom, self.encoding, body = data[:2], ("utf-16-le" if data[:2] == b"\xff\xfe" else "utf-16-be"), data[2:]
        else:
            self.bom, self.encoding, body = b"", "utf-8", data
        try:
            text = body.decode(self.encoding)
        except UnicodeDecodeError as e:
            raise InputError(f"{what} is not valid {self.encoding}: {e.reason} at byte {e.start}", path=path) from None
        self.newline = "\r\n" if "\r\n" in text else "\n"
        self._set(text)

    @classmethod
    def load(cls, path: str | os.PathLike[str], *, what: str = "XML file") -> XmlTextDocument:
        path = Path(path)
        try:
            return cls(path, path.read_bytes(), what=what)
        except FileNotFoundError:
            raise InputError(f"{what} not found", path=path, hint="check the path") from None

    def to_bytes(self) -> bytes:
        return self.bom + self.text.encode(self.encoding)

    def save(self) -> None:
        write_atomic(self.path, self.to_bytes())

    def _set(self, text: str) -> None:
        self.text = text
        self.root = parse_bytes(self.to_bytes(), path=self.path, what=self.what)
        spans: list[_Span] = []
        stack: list[_Span] = []
        for m in _TOKEN_RE.finditer(text):
            if m.group(2):
                s = _Span(m.start(), m.end(), None, m.end())
                spans.append(s)
                if not m.group(2).endswith("/>"):
                    stack.append(s)
            elif m.group(1) and stack:
                s = stack.pop()
                s.close_start, s.end = m.start(), m.end()
        elements = [el for el in self.root.iter() if isinstance(el.tag, str)]
        if len(elements) != len(spans) or stack:
            raise InputError(f"cannot edit this {self.what} without rewriting it (its markup is unusual)",
                             path=self.path, hint="make the change by hand")
        self._spans = {id(el): s for el, s in zip(elements, spans)}
        self._elements = elements  # keep the proxies alive so id() stays unique

    # -- queries -----------------------------------------------------------------------------------------------
    def span(self, el) -> _Span:
        return self._spans[id(el)]

    def child(self, parent, tag: str):
        return next((c for c in parent if isinstance(c.tag, str) and localname(c) == tag), None)

    def _line_start(self, pos: int) -> int:
        return self.text.rfind("\n", 0, pos) + 1

    def indent_of(self, el) -> str | None:
        """The whitespace before ``el`` on its line, or None when something else precedes it there."""
        s = self.span(el).start
        before = self.text[self._line_start(s):s]
        return before if before.strip() == "" else None

    def unit(self) -> str:
        """The file's indentation step, from the first element that has element children on their own lines."""
        for el in self._elements:
            kids = [c for c in el if isinstance(c.tag, str)]
            if kids:
                outer, inner = self.indent_of(el), self.indent_of(kids[0])
                if outer is not None and inner is not None and len(inner) > len(outer) and inner.startswith(outer):
                    return inner[len(outer):]
        return "    "

    def _child_indent(self, parent) -> str:
        kids = [c for c in parent if isinstance(c.tag, str)]
        if kids and (ind := self.indent_of(kids[0])) is not None:
            return ind
        return (self.indent_of(parent) or "") + self.unit()

    # -- edits -------------------------------------------------------------------------------------------------
    def _replace(self, start: int, end: int, new: str) -> None:
        self._set(self.text[:start] + new + self.text[end:])

    def _block(self, lines: Sequence[tuple[int, str]], indent: str) -> str:
        u = self.unit()
        return self.newline.join(indent + u * depth + line for depth, line in lines)

    def insert_child(self, parent, lines: Sequence[tuple[int, str]], *, before=None) -> None:
        """Insert markup (``(depth, text)`` lines, depth relative to the new child) as a child of ``parent``:
        before ``before`` if given, else after the last element child, indented like the other children."""
        nl, ind = self.newline, self._child_indent(parent)
        block = self._block(lines, ind)
        if before is not None:
            s = self.span(before).start
            if self.indent_of(before) is not None:
                pos = self._line_start(s)
                self._replace(pos, pos, block + nl)
            else:
                self._replace(s, s, block.lstrip() + " ")
            return
        kids = [c for c in parent if isinstance(c.tag, str)]
        ps = self.span(parent)
        if kids:
            end = self.span(kids[-1]).end
            self._replace(end, end, nl + block)
        elif ps.close_start is None:  # <OEM /> → <OEM>…</OEM>
            tag_text = self.text[ps.start:ps.open_end]
            name = re.match(r"<([^\s/>]+)", tag_text).group(1)  # type: ignore[union-attr]
            opened = re.sub(r"\s*/>$", ">", tag_text)
            outer = self.indent_of(parent) or ""
            self._replace(ps.start, ps.end, opened + nl + block + nl + outer + f"</{name}>")
        elif self.text[self._line_start(ps.close_start):ps.close_start].strip() == "" and \
                self._line_start(ps.close_start) > ps.open_end:
            pos = self._line_start(ps.close_start)
            self._replace(pos, pos, block + nl)
        else:
            outer = self.indent_of(parent) or ""
            self._replace(ps.close_start, ps.close_start, nl + block + nl + outer)

    def remove(self, el) -> None:
        """Remove ``el``; its whole line too when nothing else is on it."""
        s = self.span(el)
        start, end = s.start, s.end
        line_start = self._line_start(start)
        line_end = self.text.find("\n", end)
        line_end = len(self.text) if line_end < 0 else line_end
        if self.text[line_start:start].strip() == "" and self.text[end:line_end].strip() == "":
            start, end = line_start, min(line_end + 1, len(self.text))
        self._replace(start, end, "")

    def set_text(self, el, value: str) -> None:
        """Replace the text content of a leaf element (``<A/>`` becomes ``<A>value</A>``)."""
        s = self.span(el)
        esc = value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
        if s.close_start is None:
            tag_text = self.text[s.start:s.open_end]
            name = re.match(r"<([^\s/>]+)", tag_text).group(1)  # type: ignore[union-attr]
            self._replace(s.start, s.end, re.sub(r"\s*/>$", ">", tag_text) + esc + f"</{name}>")
        else:
            self._replace(s.open_end, s.close_start, esc)
