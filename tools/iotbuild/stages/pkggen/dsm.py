"""``man.dsm.xml``: the device-side manifest of an SPKG package (cab-authenticode-registry.md §4.2–4.3)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from lxml import etree

NS = "http://schemas.microsoft.com/embedded/2004/10/ImageUpdate"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
XSD = "http://www.w3.org/2001/XMLSchema"


class FileType(StrEnum):
    REGULAR = "Regular"
    REGISTRY = "Registry"
    MANIFEST = "Manifest"
    CATALOG = "Catalog"
    REGISTRY_APPEND = "RegistryMultiStringAppend"


@dataclass(frozen=True)
class FileEntry:
    file_type: FileType
    device_path: str
    cab_path: str
    attributes: str
    size: int


@dataclass(frozen=True)
class PackageManifest:
    owner: str
    component: str
    sub_component: str
    version: str  # a.b.c.d
    release_type: str
    owner_type: str
    build_type: str
    cpu_type: str
    partition: str
    files: tuple[FileEntry, ...]

    def to_xml(self) -> bytes:
        E = lambda tag, text=None, **attrs: _el(tag, text, attrs)  # noqa: E731
        root = etree.Element(f"{{{NS}}}Package", nsmap={None: NS, "xsi": XSI, "xsd": XSD})
        ident = etree.SubElement(root, f"{{{NS}}}Identity")
        for tag, text in (("Owner", self.owner), ("Component", self.component), ("SubComponent", self.sub_component)):
            if text:
                ident.append(E(tag, text))
        major, minor, qfe, build = self.version.split(".")
        ident.append(E("Version", Major=major, Minor=minor, QFE=qfe, Build=build))
        for tag, text in (("ReleaseType", self.release_type), ("OwnerType", self.owner_type),
                          ("BuildType", self.build_type), ("CpuType", self.cpu_type),
                          ("Partition", self.partition), ("IsRemoval", "false")):
            root.append(E(tag, text))
        files = etree.SubElement(root, f"{{{NS}}}Files")
        for f in self.files:
            entry = etree.SubElement(files, f"{{{NS}}}FileEntry")
            for tag, text in (("FileType", f.file_type.value), ("DevicePath", f.device_path), ("CabPath", f.cab_path),
                              ("Attributes", f.attributes), ("FileSize", str(f.size)),
                              ("CompressedFileSize", str(f.size)), ("StagedFileSize", str(f.size))):
                entry.append(E(tag, text))
        body = etree.tostring(root, encoding="utf-8", pretty_print=True)
        return b'<?xml version="1.0" encoding="utf-8"?>\n' + body


def _el(tag: str, text: str | None, attrs: dict[str, str]) -> etree._Element:
    el = etree.Element(f"{{{NS}}}{tag}", attrs)
    if text is not None:
        el.text = text
    return el


def parse_manifest(data: bytes) -> PackageManifest:
    """Read a man.dsm.xml back (used by verification, feature merging and image staging)."""
    from ...xmlsafe import parse_bytes
    root = parse_bytes(data, path="man.dsm.xml", what="package manifest")
    q = lambda *p: "/".join(f"{{{NS}}}{x}" for x in p)  # noqa: E731
    t = lambda *p: (root.findtext(q(*p)) or "")  # noqa: E731
    v = root.find(q("Identity", "Version"))
    version = ".".join(v.get(k, "0") for k in ("Major", "Minor", "QFE", "Build")) if v is not None else "0.0.0.0"
    files = tuple(FileEntry(FileType(e.findtext(q("FileType"))), e.findtext(q("DevicePath")) or "",
                            e.findtext(q("CabPath")) or "", e.findtext(q("Attributes")) or "",
                            int(e.findtext(q("FileSize")) or 0))
                  for e in root.iterfind(q("Files", "FileEntry")))
    return PackageManifest(t("Identity", "Owner"), t("Identity", "Component"), t("Identity", "SubComponent"), version,
                           t("ReleaseType"), t("OwnerType"), t("BuildType"), t("CpuType"), t("Partition"), files)


def short_cab_path(device_path: str, index: int) -> str:
    """pkggen's MakeShortPath: ``<index>_`` + the first 7 characters of a long stem + the extension."""
    name = device_path.rsplit("\\", 1)[-1]
    stem, dot, ext = name.rpartition(".")
    if not dot:
        stem, ext = name, ""
    if len(stem) >= 8:
        stem = stem[:7]
    out = f"{index}_{stem}" + (f".{ext}" if ext else "")
    return out.replace(" ", "_")
