"""``DeviceLayout.xml`` and ``OEMDevicePlatform.xml``: a board's partitions and its smallest disk
(iot-adk-addonkit.md §6.2, §6.3).

Both come out of the BSP's DeviceLayout package cab, so they are parsed from bytes:

    layout = parse_device_layout(data, path="QEMUx64.DeviceLayout.cab:DeviceLayout.xml")
    layout.partition("mainos").total_sectors      # 1310720; names match case-insensitively
    platform = parse_device_platform(data, path="…/OEMDevicePlatform.xml")
    platform.min_sector_count                     # 2097152

Namespace ``http://schemas.microsoft.com/embedded/2004/10/ImageUpdate``. Parsing collects every problem of a
file and raises them together (``InputErrors``), each with file:line and a hint. Numbers are decimal or ``0x``
hex, as ImageApp reads them. Only GPT layouts are supported, because the image builder writes only GPT disks
(formats.gpt); an MBR layout (``<Type>0x0C</Type>``, like the kit's DeviceLayout.MBR4GB) gets an error that
names the GPT type GUID to use instead.

Rules: SectorSize 512 or 4096; ChunkSize (KiB) a power of two and a whole number of sectors (FFU chunks);
alignments powers of two and multiples of the sector size; each partition sized by exactly one of
TotalSectors / MinFreeSectors / UseAllSpace, at most one UseAllSpace and it last (it grows to the disk's end);
names unique (case-insensitively) and at most 36 UTF-16 units (GPT); EFIESP, MainOS and Data present, EFIESP
on FAT; MinFreeSectors at least 8192, and for MainOS at least 1048576 (the kit's rule: 512 MiB for servicing).
A board too small for that gives MainOS a fixed TotalSectors, as the QEMU sample board does; the kit checks
only MinFreeSectors, so this is the same escape it has.

Partition elements (the list ImageApp's ``InputPartition`` deserializes):

- modelled: Name, Type, Id, FileSystem, TotalSectors, MinFreeSectors, UseAllSpace,
  GeneratedFileOverheadSectors, ByteAlignment, SingleSectorAlignment (= ByteAlignment of one sector),
  ClusterSize, Bootable, RequiredToFlash, ReadOnly, Hidden, AttachDriveLetter;
- accepted and checked, without effect on a GPT image: PrimaryPartition (MBR only), ServicePartition,
  UpdateType, Compressed, RequiresCompression (compression is OEMDevicePlatform's CompressedPartitions),
  PrepareFveMetadata;
- refused: OffsetInSectors (partitions are placed in document order, one after another).

``AttachDriveLetter`` defaults to true: the kit's layouts write ``false`` only where a partition must stay
hidden from Explorer (QCDB410C's MainOS), which only makes sense if true is the default.
"""

from __future__ import annotations

import difflib
import logging
import re
import uuid
from dataclasses import dataclass, field

from lxml import etree

from ..errors import InputError
from ..xmlsafe import localname, parse_bytes
from ._issues import Issues

log = logging.getLogger(__name__)

NS = "http://schemas.microsoft.com/embedded/2004/10/ImageUpdate"
ESP_TYPE = uuid.UUID("c12a7328-f81f-11d2-ba4b-00a0c93ec93b")
BASIC_DATA_TYPE = uuid.UUID("ebd0a0a2-b9e5-4433-87c0-68b6b72699c7")
SECTOR_SIZES = (512, 4096)
VERSION_TAGS = ("IoTUAP",)
FILE_SYSTEMS = ("FAT", "FAT32", "NTFS")
MANDATORY = ("EFIESP", "MainOS", "Data")
NAME_CHARS = 36                       # GPT PartitionName is CHAR16[36]
MAX_PARTITIONS = 128                  # entries in the GPT entry array
MIN_FREE_SECTORS = 8192               # kit rule: MinFreeSectors below 4 MiB is refused
MAINOS_MIN_FREE_SECTORS = 1048576     # kit rule (IoTDeviceLayout.ValidateDeviceLayout): 512 MiB for servicing
DEFAULT_ALIGNMENT = 0x200000          # DefaultPartitionByteAlignment when absent: every kit layout's value
MAX_CLUSTER = {"FAT": 64 * 1024, "FAT32": 64 * 1024, "NTFS": 2 * 1024 * 1024}

_NUMBER_RE = re.compile(r"0[xX][0-9A-Fa-f]+|[0-9]+")
_GUID_RE = re.compile(r"\{?([0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12})\}?")
_MBR_TYPE_RE = re.compile(r"(0[xX])?[0-9A-Fa-f]{1,2}")

_MODELLED = ("Name", "Type", "Id", "FileSystem", "TotalSectors", "MinFreeSectors", "UseAllSpace",
             "GeneratedFileOverheadSectors", "ByteAlignment", "SingleSectorAlignment", "ClusterSize",
             "Bootable", "RequiredToFlash", "ReadOnly", "Hidden", "AttachDriveLetter")
_NO_EFFECT = ("PrimaryPartition", "ServicePartition", "UpdateType", "Compressed", "RequiresCompression",
              "PrepareFveMetadata")
_REFUSED = {"OffsetInSectors": "remove it; iotbuild places partitions in document order, each after the "
                               "previous one"}
_PARTITION_CHILDREN = _MODELLED + _NO_EFFECT
_BOOLEANS = ("UseAllSpace", "SingleSectorAlignment", "Bootable", "RequiredToFlash", "ReadOnly", "Hidden",
             "AttachDriveLetter", "PrimaryPartition", "ServicePartition", "Compressed", "RequiresCompression",
             "PrepareFveMetadata")
_LAYOUT_CHILDREN = ("Partitions", "SectorSize", "ChunkSize", "DefaultPartitionByteAlignment", "VersionTag")
_PLATFORM_CHILDREN = ("MinSectorCount", "DevicePlatformIDs", "DevicePlatformID", "CompressedPartitions",
                      "AdditionalMainOSFreeSectorsRequest", "MainOSRTCDataReservedSectors")


@dataclass(frozen=True)
class LayoutPartition:
    """One ``<Partition>``; exactly one of total_sectors / min_free_sectors / use_all_space sizes it."""

    name: str
    type_guid: uuid.UUID
    unique_guid: uuid.UUID | None     # <Id>; None: the image builder derives one from product and name
    file_system: str | None           # "FAT32" | "FAT" | "NTFS" | None (raw)
    total_sectors: int | None
    min_free_sectors: int | None
    use_all_space: bool
    byte_alignment: int | None        # None: the layout's default_alignment
    cluster_size: int | None
    bootable: bool
    required_to_flash: bool
    read_only: bool
    hidden: bool
    attach_drive_letter: bool
    line: int = field(compare=False)
    generated_file_overhead_sectors: int = 0   # added to a MinFreeSectors partition's size


@dataclass(frozen=True)
class DeviceLayout:
    path: str
    sector_size: int
    chunk_size_kib: int               # FFU chunk (hash and payload block) in KiB
    default_alignment: int            # bytes
    version_tag: str
    partitions: tuple[LayoutPartition, ...]

    @property
    def chunk_bytes(self) -> int:
        return self.chunk_size_kib * 1024

    def partition(self, name: str) -> LayoutPartition:
        """The partition called ``name`` (case-insensitive, as Windows compares partition names)."""
        for p in self.partitions:
            if p.name.upper() == name.upper():
                return p
        raise KeyError(name)


@dataclass(frozen=True)
class DevicePlatform:
    path: str
    min_sector_count: int
    platform_ids: tuple[str, ...]
    compressed_partitions: tuple[str, ...] = ()
    additional_mainos_free_sectors: int = 0   # AdditionalMainOSFreeSectorsRequest
    mainos_rtc_reserved_sectors: int = 0      # MainOSRTCDataReservedSectors
    lines: dict[str, int] = field(default_factory=dict, compare=False, repr=False)  # element → line, for errors


class _Ctx(Issues):
    def raise_if_any(self) -> None:  # type: ignore[override]
        super().raise_if_any(by_line=True)


def _text(el: etree._Element) -> str:
    return (el.text or "").strip()


def _is_power_of_two(n: int) -> bool:
    return n > 0 and n & (n - 1) == 0


def _children(el: etree._Element, allowed: tuple[str, ...], ctx: _Ctx, where: str,
              refused: dict[str, str] | None = None) -> dict[str, etree._Element]:
    """The element children of ``el`` by name; unknown, refused and repeated ones are reported."""
    found: dict[str, etree._Element] = {}
    for c in el:
        if not isinstance(c.tag, str):
            continue
        tag = localname(c)
        if refused and tag in refused:
            ctx.err(f"<{tag}> in {where} is not supported", c, hint=refused[tag])
            continue
        if etree.QName(c).namespace != NS or tag not in allowed:
            near = difflib.get_close_matches(tag, list(allowed), n=1)
            allowed_text = "allowed: " + ", ".join(allowed)
            ctx.err(f"unknown element <{tag}> in {where}", c,
                    hint=f"did you mean <{near[0]}>? ({allowed_text})" if near else allowed_text)
            continue
        if tag in found:
            ctx.err(f"<{tag}> appears twice in {where} (first at line {found[tag].sourceline})", c,
                    hint="keep one")
            continue
        found[tag] = c
    return found


def _number(el: etree._Element, ctx: _Ctx, where: str) -> int | None:
    t = _text(el)
    if not _NUMBER_RE.fullmatch(t):
        ctx.err(f"{where}<{localname(el)}> {t!r} is not a number", el,
                hint="write a decimal number or 0x followed by hex digits, e.g. 1048576 or 0x800000")
        return None
    return int(t, 0) if t[:2].lower() == "0x" else int(t)


def _bool(el: etree._Element, ctx: _Ctx, where: str) -> bool | None:
    t = _text(el).lower()
    if t in ("true", "1"):
        return True
    if t in ("false", "0"):
        return False
    ctx.err(f"{where}<{localname(el)}> {_text(el)!r} is not true or false", el, hint="write true or false")
    return None


def _guid(el: etree._Element, ctx: _Ctx, where: str) -> uuid.UUID | None:
    t = _text(el)
    m = _GUID_RE.fullmatch(t)
    if m is None or (t.startswith("{") != t.endswith("}")):
        ctx.err(f"{where}<{localname(el)}> {t!r} is not a GUID", el,
                hint="write it as {xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx} (braces optional)")
        return None
    guid = uuid.UUID(m.group(1))
    if guid.int == 0:
        ctx.err(f"{where}<{localname(el)}> is the all-zero GUID, which marks an unused GPT entry", el,
                hint="use a real GUID")
        return None
    return guid


def _type_guid(el: etree._Element, ctx: _Ctx, where: str, name: str) -> uuid.UUID | None:
    t = _text(el)
    if _MBR_TYPE_RE.fullmatch(t):
        gpt = ESP_TYPE if name.upper() == "EFIESP" else BASIC_DATA_TYPE
        kind = "EFI system partition" if gpt == ESP_TYPE else "basic data partition"
        ctx.err(f"{where}<Type> {t} is an MBR partition type; MBR layouts are not supported", el,
                hint=f"use the GPT type GUID {{{gpt}}} ({kind}); the GPT types are {{{ESP_TYPE}}} for EFIESP "
                     f"and {{{BASIC_DATA_TYPE}}} for FAT/NTFS data partitions")
        return None
    return _guid(el, ctx, where)


def _parse_partition(el: etree._Element, ctx: _Ctx, sector_size: int | None) -> LayoutPartition | None:
    before = len(ctx.issues)
    f = _children(el, _PARTITION_CHILDREN, ctx, "<Partition>", _REFUSED)
    name = _text(f["Name"]) if "Name" in f else ""
    if not name:
        ctx.err("<Partition> has no <Name>" if "Name" not in f else "<Name> is empty", f.get("Name", el),
                hint="add <Name>…</Name>, e.g. <Name>MainOS</Name>")
    where = f"partition {name}: " if name else f"<Partition> at line {el.sourceline}: "
    if name and len(name.encode("utf-16-le")) // 2 > NAME_CHARS:
        ctx.err(f"{where}the name is {len(name.encode('utf-16-le')) // 2} UTF-16 characters; a GPT partition "
                f"name holds at most {NAME_CHARS}", f["Name"], hint="shorten the name")

    bools: dict[str, bool] = {}
    for tag in _BOOLEANS:
        if tag in f and (b := _bool(f[tag], ctx, where)) is not None:
            bools[tag] = b
    nums: dict[str, int] = {}
    for tag in ("TotalSectors", "MinFreeSectors", "GeneratedFileOverheadSectors", "ByteAlignment",
                "ClusterSize"):
        if tag in f and (n := _number(f[tag], ctx, where)) is not None:
            nums[tag] = n
    for tag in _NO_EFFECT:
        if tag in f and tag not in _BOOLEANS and not _text(f[tag]):
            ctx.err(f"{where}<{tag}> is empty", f[tag], hint=f"write a value or remove <{tag}>")

    type_guid = None
    if "Type" not in f:
        ctx.err(f"{where}<Type> is missing", el,
                hint=f"add <Type>{{{BASIC_DATA_TYPE}}}</Type> (or {{{ESP_TYPE}}} for EFIESP)")
    else:
        type_guid = _type_guid(f["Type"], ctx, where, name)
    unique = _guid(f["Id"], ctx, where) if "Id" in f else None

    fs = None
    if "FileSystem" in f:
        fs = _text(f["FileSystem"]).upper()
        if fs not in FILE_SYSTEMS:
            ctx.err(f"{where}<FileSystem> {_text(f['FileSystem'])!r} is not supported", f["FileSystem"],
                    hint="use FAT, FAT32 or NTFS, or leave <FileSystem> out for a raw partition")
            fs = None

    # size: exactly one of the three
    use_all = bools.get("UseAllSpace", False)
    chosen = [t for t in ("TotalSectors", "MinFreeSectors") if t in f] + (["UseAllSpace"] if use_all else [])
    if len(chosen) != 1:
        what = "has no size" if not chosen else "sets " + " and ".join(f"<{t}>" for t in chosen)
        ctx.err(f"{where}{what}", el if not chosen else f[chosen[1]],
                hint="give exactly one of <TotalSectors> (fixed size), <MinFreeSectors> (content plus free "
                     "space) or <UseAllSpace>true</UseAllSpace> (the rest of the disk)")
    if nums.get("TotalSectors") == 0:
        ctx.err(f"{where}<TotalSectors> is 0", f["TotalSectors"], hint="give the size in sectors")
    if (mfs := nums.get("MinFreeSectors")) is not None:
        if mfs < MIN_FREE_SECTORS:
            ctx.err(f"{where}<MinFreeSectors> {mfs} is below {MIN_FREE_SECTORS} (4 MiB)", f["MinFreeSectors"],
                    hint=f"raise it to at least {MIN_FREE_SECTORS}, or give a fixed <TotalSectors>")
        elif name.upper() == "MAINOS" and mfs < MAINOS_MIN_FREE_SECTORS:
            ctx.err(f"{where}<MinFreeSectors> {mfs} is below {MAINOS_MIN_FREE_SECTORS} (512 MiB), the free "
                    "space MainOS needs for servicing (kit rule)", f["MinFreeSectors"],
                    hint=f"raise it to {MAINOS_MIN_FREE_SECTORS}, or give MainOS a fixed <TotalSectors> on a "
                         "board too small for that")
    if "GeneratedFileOverheadSectors" in f and "MinFreeSectors" not in f:
        ctx.err(f"{where}<GeneratedFileOverheadSectors> needs <MinFreeSectors>",
                f["GeneratedFileOverheadSectors"],
                hint="remove it, or size the partition with <MinFreeSectors>")

    # alignment
    alignment = nums.get("ByteAlignment")
    if alignment is not None:
        _check_alignment(alignment, f["ByteAlignment"], ctx, where, sector_size)
    if bools.get("SingleSectorAlignment"):
        if "ByteAlignment" in f:
            ctx.err(f"{where}sets both <ByteAlignment> and <SingleSectorAlignment>",
                    f["SingleSectorAlignment"], hint="keep one")
        alignment = sector_size

    cluster = nums.get("ClusterSize")
    if cluster is not None:
        if fs is None and "FileSystem" not in f:
            ctx.err(f"{where}<ClusterSize> on a raw partition (no <FileSystem>)", f["ClusterSize"],
                    hint="remove <ClusterSize>, or add <FileSystem>")
        elif not _is_power_of_two(cluster) or (sector_size and cluster < sector_size):
            ctx.err(f"{where}<ClusterSize> {_text(f['ClusterSize'])} is not a power of two of at least the "
                    f"sector size", f["ClusterSize"], hint="e.g. 0x1000 (4 KiB)")
        elif fs is not None and cluster > MAX_CLUSTER[fs]:
            ctx.err(f"{where}<ClusterSize> {_text(f['ClusterSize'])} is larger than {fs} allows "
                    f"({MAX_CLUSTER[fs] // 1024} KiB)", f["ClusterSize"], hint="use a smaller cluster size")

    if len(ctx.issues) > before or type_guid is None:
        return None
    return LayoutPartition(
        name=name, type_guid=type_guid, unique_guid=unique, file_system=fs,
        total_sectors=nums.get("TotalSectors"), min_free_sectors=nums.get("MinFreeSectors"),
        use_all_space=use_all, byte_alignment=alignment, cluster_size=cluster,
        bootable=bools.get("Bootable", False),
        required_to_flash=bools.get("RequiredToFlash", False), read_only=bools.get("ReadOnly", False),
        hidden=bools.get("Hidden", False), attach_drive_letter=bools.get("AttachDriveLetter", True),
        line=el.sourceline or 0, generated_file_overhead_sectors=nums.get("GeneratedFileOverheadSectors", 0))


def _check_alignment(value: int, el: etree._Element, ctx: _Ctx, where: str, sector_size: int | None) -> bool:
    if not _is_power_of_two(value):
        ctx.err(f"{where}<{localname(el)}> {_text(el)} is not a power of two", el,
                hint="e.g. 0x200000 (2 MiB) or 0x800000 (8 MiB)")
        return False
    if sector_size and value % sector_size:
        ctx.err(f"{where}<{localname(el)}> {_text(el)} is not a multiple of the sector size {sector_size}",
                el, hint=f"use a power of two of at least {sector_size}")
        return False
    return True


def _check_root(root: etree._Element, tag: str, path: str) -> None:
    if localname(root) != tag or etree.QName(root).namespace != NS:
        hint = (f'add xmlns="{NS}" to <{tag}>' if localname(root) == tag
                else f'a {tag}.xml starts with <{tag} xmlns="{NS}">')
        raise InputError(f"root element <{etree.QName(root).text}> is not <{tag} xmlns=\"{NS}\">",
                         path=path, line=root.sourceline, hint=hint)


def parse_device_layout(data: bytes, *, path: str) -> DeviceLayout:
    """Read and check a DeviceLayout.xml (all problems at once, as InputErrors)."""
    root = parse_bytes(data, path=path, what="device layout")
    _check_root(root, "DeviceLayout", path)
    ctx = _Ctx(path)
    top = _children(root, _LAYOUT_CHILDREN, ctx, "<DeviceLayout>")
    examples = {"SectorSize": "<SectorSize>512</SectorSize>", "ChunkSize": "<ChunkSize>128</ChunkSize>",
                "VersionTag": "<VersionTag>IoTUAP</VersionTag>",
                "Partitions": "<Partitions> with EFIESP, MainOS and Data"}
    for tag, example in examples.items():
        if tag not in top:
            ctx.err(f"<{tag}> is missing", root, hint=f"add {example}")

    sector_size = None
    if "SectorSize" in top and (n := _number(top["SectorSize"], ctx, "")) is not None:
        if n in SECTOR_SIZES:
            sector_size = n
        else:
            ctx.err(f"<SectorSize> {n} is not supported", top["SectorSize"], hint="use 512 or 4096")
    chunk = 0
    if "ChunkSize" in top and (n := _number(top["ChunkSize"], ctx, "")) is not None:
        if not _is_power_of_two(n):
            ctx.err(f"<ChunkSize> {n} (KiB) is not a power of two", top["ChunkSize"], hint="use 128 (KiB)")
        elif sector_size and n * 1024 % sector_size:
            ctx.err(f"<ChunkSize> {n} KiB is not a multiple of the sector size {sector_size}",
                    top["ChunkSize"], hint=f"use at least {sector_size // 1024} KiB; 128 is usual")
        else:
            chunk = n
    default_alignment = DEFAULT_ALIGNMENT
    if "DefaultPartitionByteAlignment" in top:
        el = top["DefaultPartitionByteAlignment"]
        if (n := _number(el, ctx, "")) is not None and _check_alignment(n, el, ctx, "", sector_size):
            default_alignment = n
    version = ""
    if "VersionTag" in top:
        version = _text(top["VersionTag"])
        if version.upper() not in (v.upper() for v in VERSION_TAGS):
            ctx.err(f"<VersionTag> {version!r} is not supported", top["VersionTag"],
                    hint="IoT Core layouts use <VersionTag>IoTUAP</VersionTag>")

    partitions: list[LayoutPartition] = []
    elements: list[etree._Element] = []
    if "Partitions" in top:
        for c in top["Partitions"]:
            if not isinstance(c.tag, str):
                continue
            if localname(c) != "Partition" or etree.QName(c).namespace != NS:
                ctx.err(f"unknown element <{localname(c)}> in <Partitions>", c,
                        hint="only <Partition> is allowed")
                continue
            elements.append(c)
            if (p := _parse_partition(c, ctx, sector_size)) is not None:
                partitions.append(p)
        if len(elements) > MAX_PARTITIONS:
            ctx.err(f"{len(elements)} partitions; a GPT holds at most {MAX_PARTITIONS}", top["Partitions"])
    _check_partition_set(partitions, elements, top.get("Partitions", root), ctx)
    ctx.raise_if_any()
    return DeviceLayout(path=path, sector_size=sector_size or 0, chunk_size_kib=chunk,
                        default_alignment=default_alignment, version_tag=version,
                        partitions=tuple(partitions))


def _check_partition_set(parts: list[LayoutPartition], elements: list[etree._Element],
                         where_el: etree._Element, ctx: _Ctx) -> None:
    """Rules across partitions: unique names and Ids, the mandatory three, one UseAllSpace and it last."""
    by_name: dict[str, LayoutPartition] = {}
    by_id: dict[uuid.UUID, LayoutPartition] = {}
    for p in parts:
        if (first := by_name.get(p.name.upper())) is not None:
            ctx.err(f"partition name {p.name} is used twice (first at line {first.line}; names are compared "
                    "case-insensitively)", p.line, hint="give each partition its own name")
        else:
            by_name[p.name.upper()] = p
        if p.unique_guid is not None:
            if (other := by_id.get(p.unique_guid)) is not None:
                ctx.err(f"partition {p.name}: <Id> {{{p.unique_guid}}} is also the Id of {other.name} (line "
                        f"{other.line})", p.line, hint="give each partition its own Id, or leave <Id> out")
            else:
                by_id[p.unique_guid] = p
    names = {_text(n).upper() for e in elements for n in e
             if isinstance(n.tag, str) and localname(n) == "Name"}
    for name in MANDATORY:
        if name.upper() not in names:
            ctx.err(f"the layout has no {name} partition", where_el,
                    hint="IoT Core images need the partitions " + ", ".join(MANDATORY))
    if (esp := by_name.get("EFIESP")) is not None:
        if esp.file_system not in ("FAT", "FAT32"):
            ctx.err(f"partition EFIESP: <FileSystem> is {esp.file_system or 'absent (raw)'}; UEFI firmware "
                    "reads only FAT", esp.line, hint="use <FileSystem>FAT32</FileSystem>")
        if esp.type_guid != ESP_TYPE:
            log.warning("%s:%d: partition EFIESP has type {%s}, not the EFI system partition type {%s}; "
                        "BitLocker and some firmware need the latter (kit warning)", ctx.path, esp.line,
                        esp.type_guid, ESP_TYPE)
    rest = [p for p in parts if p.use_all_space]
    for p in rest[1:]:
        ctx.err(f"partition {p.name}: <UseAllSpace> is already used by {rest[0].name} (line {rest[0].line}); "
                "only one partition can take the rest of the disk", p.line,
                hint="give this one <TotalSectors> or <MinFreeSectors>")
    if rest and elements and elements[-1].sourceline != rest[0].line:
        ctx.err(f"partition {rest[0].name} has <UseAllSpace> but is not the last partition", rest[0].line,
                hint="move it to the end of <Partitions>; it grows to the end of the disk")


def parse_device_platform(data: bytes, *, path: str) -> DevicePlatform:
    """Read and check an OEMDevicePlatform.xml (all problems at once, as InputErrors).

    ``DevicePlatformID`` (one ID, the older form) and ``DevicePlatformIDs/ID`` are both read; a file may have
    only one of them (Microsoft's rule).
    """
    root = parse_bytes(data, path=path, what="device platform file")
    _check_root(root, "OEMDevicePlatform", path)
    ctx = _Ctx(path)
    top = _children(root, _PLATFORM_CHILDREN, ctx, "<OEMDevicePlatform>")
    min_sectors = 0
    if "MinSectorCount" not in top:
        ctx.err("<MinSectorCount> is missing", root,
                hint="add <MinSectorCount>…</MinSectorCount>: the smallest device's size in sectors")
    elif (n := _number(top["MinSectorCount"], ctx, "")) is not None:
        if n == 0:
            ctx.err("<MinSectorCount> is 0", top["MinSectorCount"],
                    hint="give the smallest device's size in sectors, e.g. 7372800 for a 4 GB card")
        min_sectors = n
    extra = {}
    for tag in ("AdditionalMainOSFreeSectorsRequest", "MainOSRTCDataReservedSectors"):
        if tag in top and (n := _number(top[tag], ctx, "")) is not None:
            extra[tag] = n

    ids: list[str] = []
    if "DevicePlatformID" in top and "DevicePlatformIDs" in top:
        ctx.err("<DevicePlatformID> and <DevicePlatformIDs> are both present", top["DevicePlatformID"],
                hint="keep one; <DevicePlatformIDs><ID>…</ID></DevicePlatformIDs> holds several")
    if "DevicePlatformID" in top:
        if t := _text(top["DevicePlatformID"]):
            ids.append(t)
        else:
            ctx.err("<DevicePlatformID> is empty", top["DevicePlatformID"], hint="write an ID, or *")
    if "DevicePlatformIDs" in top:
        ids.extend(_names(top["DevicePlatformIDs"], "ID", ctx))
    if "DevicePlatformID" not in top and "DevicePlatformIDs" not in top:
        ctx.err("no device platform ID", top.get("DevicePlatformIDs", root),
                hint="add <DevicePlatformIDs><ID>*</ID></DevicePlatformIDs> (* allows any device)")
    compressed = _names(top["CompressedPartitions"], "Name", ctx) if "CompressedPartitions" in top else []
    ctx.raise_if_any()
    lines = {tag: el.sourceline or 0 for tag, el in top.items() if hasattr(el, "sourceline")}
    return DevicePlatform(path=path, min_sector_count=min_sectors, platform_ids=tuple(ids),
                          compressed_partitions=tuple(compressed), lines=lines,
                          additional_mainos_free_sectors=extra.get("AdditionalMainOSFreeSectorsRequest", 0),
                          mainos_rtc_reserved_sectors=extra.get("MainOSRTCDataReservedSectors", 0))


def _names(el: etree._Element, tag: str, ctx: _Ctx) -> list[str]:
    out: list[str] = []
    seen: dict[str, int] = {}
    for c in el:
        if not isinstance(c.tag, str):
            continue
        if localname(c) != tag or etree.QName(c).namespace != NS:
            ctx.err(f"unknown element <{localname(c)}> in <{localname(el)}>", c,
                    hint=f"only <{tag}> is allowed")
            continue
        t = _text(c)
        if not t:
            ctx.err(f"<{tag}> is empty in <{localname(el)}>", c, hint=f"write a value or remove the <{tag}>")
        elif t.upper() in seen:
            ctx.err(f"<{tag}> {t} is listed twice in <{localname(el)}> (first at line {seen[t.upper()]})", c,
                    hint="remove one")
        else:
            seen[t.upper()] = c.sourceline or 0
            out.append(t)
    if not out and not any(isinstance(c.tag, str) for c in el):
        ctx.err(f"<{localname(el)}> is empty", el, hint=f"add a <{tag}>, or remove <{localname(el)}>")
    return out
