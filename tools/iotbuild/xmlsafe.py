"""The only way iotbuild opens XML: no entities, no DTDs, no network, line numbers kept."""

from __future__ import annotations

import os
import re
from pathlib import Path

from lxml import etree

from .errors import InputError

_PARSER_OPTIONS = dict(resolve_entities=False, no_network=True, load_dtd=False, dtd_validation=False,
                       huge_tree=False, remove_comments=True, remove_pis=True)


def parser() -> etree.XMLParser:
    return etree.XMLParser(**_PARSER_OPTIONS)


def parse(path: str | os.PathLike[str], *, what: str = "XML file") -> etree._Element:
    """Parse ``path`` and return the root; any DOCTYPE is refused (entities are an attack, not a feature)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise InputError(f"{what} not found", path=path, hint="check the path") from None
    except OSError as e:
        raise InputError(f"cannot read {what}: {e.strerror}", path=path) from None
    return parse_bytes(data, path=path, what=what)


def parse_bytes(data: bytes, *, path: str | os.PathLike[str], what: str = "XML file") -> etree._Element:
    _refuse_doctype(data, path, what)
    try:
        tree = etree.fromstring(data, parser()).getroottree()
    except etree.XMLSyntaxError as e:
        line = e.lineno or None
        msg = e.msg or str(e)
        if "Entity" in msg or "entity" in msg:
            raise InputError(f"{what} uses an XML entity: {msg}", path=path, line=line,
                             hint="remove the DOCTYPE and entity declarations; iotbuild does not expand entities") from None
        raise InputError(f"{what} is not well-formed XML: {msg}", path=path, line=line,
                         hint="fix the XML syntax at that line") from None
    if tree.docinfo.doctype:
        _refuse_doctype(b"<!DOCTYPE", path, what)
    _start_lines(data, tree.getroot())
    return tree.getroot()


# Markup that can hold a "<" without starting an element, then an element's start tag.
_MARKUP_RE = re.compile(rb"<!--.*?-->|<\?.*?\?>|<!\[CDATA\[.*?\]\]>|<!.*?>|<(?=[^/!?])", re.S)


def _start_lines(data: bytes, root: etree._Element) -> None:
    """libxml2 gives an element the line where its start tag *ends*; messages should name the line where it begins.

    Start tags are found in document order in the raw text (a literal "<" elsewhere is only possible inside
    comments, processing instructions and CDATA, which are skipped); if the count does not match the parsed
    elements, the parser's lines are kept.
    """
    if data[:2] in (b"\xff\xfe", b"\xfe\xff"):
        data = data.decode("utf-16", "replace").encode()
    starts = []
    line, pos = 1, 0
    for m in _MARKUP_RE.finditer(data):
        if m.group(0) == b"<":
            line += data.count(b"\n", pos, m.start())
            pos = m.start()
            starts.append(line)
    elements = [el for el in root.iter() if isinstance(el.tag, str)]
    if len(starts) != len(elements):
        return
    for el, start in zip(elements, starts):
        if el.sourceline is not None and start <= el.sourceline:
            el.sourceline = start


def _refuse_doctype(data: bytes, path, what: str) -> None:
    """DTDs are where entity attacks (billion laughs, external files) live; build inputs never need one."""
    probe = data if data[:2] not in (b"\xff\xfe", b"\xfe\xff") else data.decode("utf-16", "replace").encode()
    idx = probe.find(b"<!DOCTYPE")
    if idx < 0:
        return
    line = probe.count(b"\n", 0, idx) + 1
    raise InputError(f"{what} has a DOCTYPE declaration", path=path, line=line,
                     hint="remove the <!DOCTYPE …> block; DTDs and entities are not allowed in build inputs")


def localname(el: etree._Element) -> str:
    return etree.QName(el).localname if isinstance(el.tag, str) else ""
