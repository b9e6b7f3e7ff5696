"""WIM files (what a ``.ppkg`` is), through Debian's ``wimlib-imagex`` (wimtools) and nothing else.

Reference: provisioning-ppkg.md §1.1 (a ppkg is a WIM v1.13, XPRESS, 32 KiB chunks, one image, header flags
0x00020082) and §1.6 (wimlib writes the same header and the same custom image properties). wimlib does the
compression and the metadata resource; this module only:

* runs ``wimlib-imagex capture / info / dir / extract`` through :func:`iotbuild.run.run`;
* makes the result reproducible. wimlib does not read ``SOURCE_DATE_EPOCH`` (checked with 1.13): it stamps
  each file with its mtime/atime, the image XML with the current time, and the header with a random GUID.
  So :func:`capture` sets every staged file's times to the build time first, sets ``CREATIONTIME`` while
  capturing and ``LASTMODIFICATIONTIME`` afterwards (wimlib overwrites that one while writing), and then
  writes a derived GUID into the header (:func:`set_guid`: 16 bytes at offset 0x18 of the fixed 208-byte
  header, which has no checksum; a WIM without an integrity table has nothing else covering them).
  Same tree + same time + same GUID ⇒ the same bytes (tests/stages/test_provisioning_build.py).
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import FormatError, InputError, ToolError
from ..run import run
from ..xmlsafe import parse_bytes

TOOL = "wimlib-imagex"

MAGIC = b"MSWIM\0\0\0"
HEADER_SIZE = 208            # WIMHEADER_V1_PACKED: cbSize
GUID_OFFSET = 0x18           # magic(8) cbSize(4) dwVersion(4) dwFlags(4) dwCompressionSize(4) gWIMGuid(16)
TIMEOUT = 600.0
# 100-ns intervals between 1601-01-01 and 1970-01-01 (FILETIME epoch).
_FILETIME_1970 = 116444736000000000

# Properties wimlib fills in itself; everything else in <IMAGE> is the caller's.
_COMPUTED = {"DIRCOUNT", "FILECOUNT", "TOTALBYTES", "HARDLINKBYTES", "CREATIONTIME", "LASTMODIFICATIONTIME",
             "WIMBOOT"}


@dataclass(frozen=True)
class WimHeader:
    """The fields of ``wimlib-imagex info --header`` that a ppkg reader cares about."""

    version: int
    flags: int
    chunk_size: int
    guid: str
    image_count: int
    raw: Mapping[str, str] = field(default_factory=dict, compare=False, repr=False)

    @property
    def compression(self) -> str:
        if not self.flags & 0x2:
            return "none"
        for bit, name in ((0x20000, "XPRESS"), (0x40000, "LZX"), (0x200000, "LZMS")):
            if self.flags & bit:
                return name
        return "unknown"


@dataclass(frozen=True)
class WimImage:
    """One ``<IMAGE>`` of the WIM XML data: properties by element name (nested ones as ``A/B``)."""

    index: int
    properties: Mapping[str, str]

    def get(self, name: str, default: str = "") -> str:
        return self.properties.get(name, default)


@dataclass(frozen=True)
class WimInfo:
    header: WimHeader
    images: tuple[WimImage, ...]
    xml: str


def filetime(epoch: int) -> tuple[str, str]:
    """``(HIGHPART, LOWPART)`` of a Unix time as the WIM XML writes a FILETIME (``0x%08X``)."""
    ft = epoch * 10_000_000 + _FILETIME_1970
    return f"0x{ft >> 32:08X}", f"0x{ft & 0xFFFFFFFF:08X}"


def _stamp_tree(root: Path, epoch: int) -> None:
    """Give every file and folder under ``root`` (and ``root``) the build time, deepest first."""
    for dirpath, dirnames, filenames in os.walk(root, topdown=False):
        for name in (*filenames, *dirnames):
            os.utime(os.path.join(dirpath, name), (epoch, epoch), follow_symlinks=False)
    os.utime(root, (epoch, epoch))


def capture(source: Path, wim: Path, *, name: str, properties: Mapping[str, str], epoch: int,
            guid: uuid.UUID, compress: str = "XPRESS", chunk_size: str = "32K") -> None:
    """Capture the folder ``source`` as image 1 of a new WIM ``wim``, reproducibly (see the module doc).

    ``properties`` become ``<IMAGE>`` elements (``VERSION``, ``ALTITUDE``, ``PACKAGEID``, ``NOTES``…); the file
    times, ``CREATIONTIME`` and ``LASTMODIFICATIONTIME`` are ``epoch``; the header GUID is ``guid``.
    """
    _stamp_tree(source, epoch)
    high, low = filetime(epoch)
    argv: list[str | os.PathLike[str]] = [TOOL, "capture", source, wim, name,
                                          f"--compress={compress}", f"--chunk-size={chunk_size}", "--no-acls"]
    for key, value in [*properties.items(), ("CREATIONTIME/HIGHPART", high), ("CREATIONTIME/LOWPART", low)]:
        argv += ["--image-property", f"{key}={value}"]
    run(argv, timeout=TIMEOUT)
    # wimlib stamps LASTMODIFICATIONTIME with the clock while writing; `info` rewrites only the XML data.
    run([TOOL, "info", wim, "1", "--image-property", f"LASTMODIFICATIONTIME/HIGHPART={high}",
         "--image-property", f"LASTMODIFICATIONTIME/LOWPART={low}"], timeout=TIMEOUT)
    set_guid(wim, guid)


def set_guid(wim: Path, guid: uuid.UUID) -> None:
    """Overwrite the header GUID (``gWIMGuid``) in place, after checking that this is a v1 WIM header."""
    with open(wim, "r+b") as f:
        head = f.read(HEADER_SIZE)
        _check_header(head, wim)
        f.seek(GUID_OFFSET)
        f.write(guid.bytes_le)


def _check_header(head: bytes, path: Path) -> None:
    if len(head) < HEADER_SIZE or head[:8] != MAGIC:
        raise FormatError("not a WIM file (no MSWIM magic)", offset=0, path=path,
                          hint="a provisioning package is a WIM; check that the file is a .ppkg")
    size = int.from_bytes(head[8:12], "little")
    if size != HEADER_SIZE:
        raise FormatError(f"WIM header size {size} is not {HEADER_SIZE}", offset=8, path=path)


def is_wim(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(8) == MAGIC
    except OSError:
        return False


def info(wim: Path) -> WimInfo:
    """Header fields and the XML data of every image, as wimlib reads them."""
    with open(wim, "rb") as f:
        _check_header(f.read(HEADER_SIZE), wim)
    head = run([TOOL, "info", wim, "--header"], timeout=TIMEOUT).stdout.decode("utf-8", "replace")
    fields: dict[str, str] = {}
    for line in head.splitlines():
        m = re.match(r"^(\S[^=]*?)\s*=\s*(.*)$", line)
        if m:
            fields[m.group(1).strip()] = m.group(2).strip()

    def num(key: str) -> int:
        try:
            return int(fields.get(key, "0"), 0)
        except ValueError:
            raise FormatError(f"wimlib reports {key} = {fields.get(key)!r}", path=wim) from None

    header = WimHeader(version=num("Version"), flags=num("Flags"), chunk_size=num("Chunk Size"),
                       guid=fields.get("GUID", ""), image_count=num("Image Count"), raw=fields)
    raw_xml = run([TOOL, "info", wim, "--xml"], timeout=TIMEOUT).stdout
    text = _decode_xml(raw_xml, wim)
    try:
        root = parse_bytes(text.encode("utf-8"), path=wim, what="WIM XML data")
    except InputError as e:
        raise FormatError(e.what, path=wim, hint="the WIM's XML data is damaged") from None
    images = []
    for el in root.findall("IMAGE"):
        props: dict[str, str] = {}
        for child in el:
            if not isinstance(child.tag, str):
                continue
            if len(child):
                for sub in child:
                    if isinstance(sub.tag, str):
                        props[f"{child.tag}/{sub.tag}"] = (sub.text or "").strip()
            else:
                props[child.tag] = (child.text or "").strip()
        try:
            index = int(el.get("INDEX", "0"))
        except ValueError:
            index = 0
        images.append(WimImage(index=index, properties=props))
    return WimInfo(header=header, images=tuple(images), xml=text)


def _decode_xml(raw: bytes, path: Path) -> str:
    """``info --xml`` prints the XML data as stored: UTF-16LE with a BOM."""
    if raw[:2] == b"\xff\xfe":
        return raw[2:].decode("utf-16-le", "replace")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise FormatError("WIM XML data is neither UTF-16LE nor UTF-8", path=path) from None


def list_files(wim: Path, image: int = 1) -> list[str]:
    """Every path in the image (``/`` first, folders and files), as ``wimlib-imagex dir`` lists them."""
    out = run([TOOL, "dir", wim, str(image)], timeout=TIMEOUT).stdout.decode("utf-8", "replace")
    return [line for line in out.splitlines() if line.startswith("/")]


def read_member(wim: Path, member: str, image: int = 1) -> bytes | None:
    """The bytes of one file in the image, or ``None`` when the image has no such file."""
    if member not in set(list_files(wim, image)):
        return None
    return run([TOOL, "extract", wim, str(image), member, "--to-stdout", "--no-globs"], timeout=TIMEOUT).stdout


def extract(wim: Path, members: Sequence[str], dest: Path, image: int = 1) -> None:
    """Extract ``members`` (paths or folders in the image) under ``dest``, keeping their folders."""
    dest.mkdir(parents=True, exist_ok=True)
    run([TOOL, "extract", wim, str(image), *members, f"--dest-dir={dest}", "--preserve-dir-structure",
         "--no-acls", "--no-globs"], timeout=TIMEOUT)


def verify(wim: Path) -> None:
    """``wimlib-imagex verify``: every blob decompresses and matches its SHA-1."""
    try:
        run([TOOL, "verify", wim], timeout=TIMEOUT)
    except ToolError as e:
        raise FormatError(f"wimlib-imagex verify failed: {e.stderr.strip() or e.what}", path=wim) from None


def custom_properties(image: WimImage) -> dict[str, str]:
    """The properties a builder chose (NAME, VERSION, ALTITUDE, …), without the ones wimlib computes."""
    return {k: v for k, v in image.properties.items() if k.split("/", 1)[0] not in _COMPUTED}
