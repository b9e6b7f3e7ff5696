"""Placing a DeviceLayout's partitions on a disk: first LBAs, sizes, GUIDs, GPT attributes and the disk size.

    plan = plan_disk(layout, platform, {"EFIESP": 40_000_000, "MainOS": 500_000_000}, product="SampleA")
    plan.partition("MainOS").offset, plan.partition("MainOS").size     # bytes on the disk
    write_gpt(f, plan.gpt())

Rules (iot-adk-addonkit.md §6.2–6.3, ffu.md §3.1 and §4.1):

- Partitions follow each other in layout order, each starting at the first LBA at or after the previous one's
  end (for the first: the GPT's first usable LBA) that is a multiple of its ByteAlignment, or of the layout's
  DefaultPartitionByteAlignment.
- TotalSectors is the size. MinFreeSectors means: the content, plus an estimate of the file system's own
  metadata, plus MinFreeSectors (plus GeneratedFileOverheadSectors), rounded up to whole FFU chunks. For
  MainOS, OEMDevicePlatform's AdditionalMainOSFreeSectorsRequest and MainOSRTCDataReservedSectors are added
  too.
  UseAllSpace takes everything up to the GPT's last usable LBA.
- The disk is OEMDevicePlatform's MinSectorCount (the smallest device the image must fit on), or what the
  partitions need if that is more, rounded up to whole FFU chunks (an FFU payload is whole chunks). "What they
  need" counts the UseAllSpace partition at its content or USE_ALL_SPACE_MIN_BYTES, whichever is more. If that
  is more than MinSectorCount the image would not fit the smallest device: an error says by how much.
- GUIDs: the disk's is ``derive_guid(product)``; a partition's is its layout ``<Id>``, or else
  ``derive_guid(product, name)``.
- GPT attributes: ReadOnly → ATTR_READ_ONLY, Hidden → ATTR_HIDDEN, AttachDriveLetter false →
  ATTR_NO_DRIVE_LETTER (Microsoft's basic-data bits). Bootable and RequiredToFlash are not GPT attributes
  (the first is an MBR flag, the second an FFU matter) and are carried as fields.

The metadata estimates are deliberately generous, so that a layout which passes here rarely fails in the
file-system builders, which give the definitive error when it does:

- FAT/FAT32: 32 reserved sectors, two FATs of 4 bytes per cluster (FAT32 entries; FAT12/16 tables are
  smaller), 16 KiB of root directory, one cluster for the root directory. Without a ClusterSize, one sector
  per cluster is assumed: the most clusters, the largest FATs.
- NTFS: 5 % of the partition plus 8 MiB ($MFT and its mirror, $LogFile, $Bitmap, $Secure, $UpCase…).

Neither estimate knows how many files there are; content should therefore be measured in whole clusters per
file (what a file really takes), which the caller's measure decides.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass

from ...errors import InputError, InputErrors
from ...formats.gpt import (
    ATTR_HIDDEN,
    ATTR_NO_DRIVE_LETTER,
    ATTR_READ_ONLY,
    ENTRY_ARRAY_BYTES,
    GptLayout,
    GptPartition,
    derive_guid,
    layout_for,
)
from ...models.devicelayout import DeviceLayout, DevicePlatform, LayoutPartition

MIB = 1 << 20
USE_ALL_SPACE_MIN_BYTES = 16 * MIB     # the least a UseAllSpace partition (Data) is given
FAT_RESERVED_SECTORS = 32              # mkfs.fat's default for FAT32
FAT_ROOT_BYTES = 16 * 1024             # FAT12/16 root directory: 512 entries of 32 bytes
NTFS_PERCENT = 5
NTFS_FIXED_BYTES = 8 * MIB


@dataclass(frozen=True)
class PlacedPartition:
    name: str
    type_guid: uuid.UUID
    unique_guid: uuid.UUID
    first_lba: int
    sectors: int
    file_system: str | None
    cluster_size: int | None
    required_to_flash: bool
    attributes: int
    sector_size: int
    bootable: bool = False

    @property
    def last_lba(self) -> int:
        return self.first_lba + self.sectors - 1

    @property
    def offset(self) -> int:
        """Byte offset of the partition on the disk."""
        return self.first_lba * self.sector_size

    @property
    def size(self) -> int:
        """Size in bytes."""
        return self.sectors * self.sector_size


@dataclass(frozen=True)
class DiskPlan:
    sector_size: int
    total_sectors: int
    disk_guid: uuid.UUID
    partitions: tuple[PlacedPartition, ...]
    chunk_bytes: int = 128 * 1024

    @property
    def disk_bytes(self) -> int:
        return self.total_sectors * self.sector_size

    def gpt(self) -> GptLayout:
        """The checked GPT of this plan (``formats.gpt.layout_for``)."""
        return layout_for(self.disk_guid, self.sector_size, self.total_sectors, [
            GptPartition(p.name, p.type_guid, p.first_lba, p.last_lba, p.unique_guid, p.attributes)
            for p in self.partitions])

    def partition(self, name: str) -> PlacedPartition:
        """The partition called ``name``, case-insensitively."""
        for p in self.partitions:
            if p.name.upper() == name.upper():
                return p
        raise KeyError(name)


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def _round_up(n: int, multiple: int) -> int:
    return _ceil_div(n, multiple) * multiple


def metadata_sectors(file_system: str | None, sectors: int, sector_size: int,
                     cluster_size: int | None) -> int:
    """Estimated sectors a file system of ``sectors`` sectors uses for itself (see the module docstring)."""
    if file_system is None:
        return 0
    if file_system in ("FAT", "FAT32"):
        cluster = cluster_size or sector_size
        clusters = sectors * sector_size // cluster + 2
        fat = _ceil_div(4 * clusters, sector_size)
        return (FAT_RESERVED_SECTORS + 2 * fat + _ceil_div(FAT_ROOT_BYTES, sector_size)
                + _ceil_div(cluster, sector_size))
    return _ceil_div(sectors * NTFS_PERCENT, 100) + NTFS_FIXED_BYTES // sector_size


def sectors_for(file_system: str | None, content_sectors: int, sector_size: int,
                cluster_size: int | None) -> int:
    """The least size that holds its own metadata plus ``content_sectors`` (a fixed point: metadata grows
    with the size)."""
    size = content_sectors
    for _ in range(100):  # metadata grows by < 6 % of the size: converges in a few rounds
        need = content_sectors + metadata_sectors(file_system, size, sector_size, cluster_size)
        if need <= size:
            return size
        size = need
    raise AssertionError(f"partition size estimate did not converge for {content_sectors} sectors")


@dataclass
class _Sized:
    part: LayoutPartition
    sectors: int | None       # None: UseAllSpace, sized at placement
    least: int                # the least it may be given (UseAllSpace) or its size


def plan_disk(layout: DeviceLayout, platform: DevicePlatform | None, content: Mapping[str, int], *,
              product: str) -> DiskPlan:
    """Place ``layout``'s partitions on a disk for ``content`` (bytes of files per partition name; names match
    case-insensitively, a partition missing from it holds nothing). InputErrors list every partition that is
    too small, and a disk larger than ``platform``'s MinSectorCount."""
    ss = layout.sector_size
    chunk_sectors = max(1, layout.chunk_bytes // ss)
    issues: list[InputError] = []
    names = {p.name.upper() for p in layout.partitions}
    by_name: dict[str, int] = {}
    for key, size in content.items():
        if size < 0:
            raise ValueError(f"content of {key} is {size} bytes")
        if size and key.upper() not in names:
            issues.append(InputError(
                f"{size:,} bytes of content for partition {key}, which the device layout does not have",
                path=layout.path,
                hint="add the partition to DeviceLayout.xml or fix the packages' targetPartition"))
        by_name[key.upper()] = by_name.get(key.upper(), 0) + size
    if platform is not None:
        for name in platform.compressed_partitions:
            if name.upper() not in names:
                issues.append(InputError(f"<CompressedPartitions> names {name}, which the device layout "
                                         f"({layout.path}) does not have", path=platform.path,
                                         line=platform.lines.get("CompressedPartitions"),
                                         hint="remove the name or add the partition"))

    sized = [_size(p, by_name.get(p.name.upper(), 0), layout, platform, chunk_sectors, issues)
             for p in layout.partitions]

    # the disk: what the partitions need (UseAllSpace at its least), or MinSectorCount if larger
    first_usable = 2 + ENTRY_ARRAY_BYTES // ss      # protective MBR, GPT header, entry array
    backup = 1 + ENTRY_ARRAY_BYTES // ss            # backup entry array and header at the end
    last_first, last_sectors = _place(sized, layout, first=first_usable, last=None)[-1]
    needed = last_first + last_sectors + backup
    total = needed
    if platform is not None:
        if needed > platform.min_sector_count:
            issues.append(_too_big(sized, layout, platform, needed, chunk_sectors))
        total = max(total, platform.min_sector_count)
    total = _round_up(total, chunk_sectors)
    if issues:
        raise InputErrors(issues)

    spans = _place(sized, layout, first=first_usable, last=total - backup - 1)
    placed = tuple(_placed(s.part, first, sectors, ss, product) for s, (first, sectors) in zip(sized, spans))
    plan = DiskPlan(ss, total, derive_guid(product), placed, layout.chunk_bytes)
    plan.gpt()  # checked: overlaps, bounds, names
    return plan


def _size(p: LayoutPartition, content: int, layout: DeviceLayout, platform: DevicePlatform | None,
          chunk_sectors: int, issues: list[InputError]) -> _Sized:
    ss = layout.sector_size
    content_sectors = _ceil_div(content, ss)
    fs = p.file_system
    if p.total_sectors is not None:
        meta = metadata_sectors(fs, p.total_sectors, ss, p.cluster_size)
        if content_sectors + meta > p.total_sectors:
            least = _round_up(sectors_for(fs, content_sectors, ss, p.cluster_size), chunk_sectors)
            issues.append(InputError(
                f"partition {p.name}: content needs {(content_sectors + meta) * ss:,} bytes "
                f"({content:,} of files{_meta_text(fs, meta, ss)}) but TotalSectors {p.total_sectors} gives "
                f"{p.total_sectors * ss:,} bytes", path=layout.path, line=p.line,
                hint=f"raise TotalSectors to at least {least}, use MinFreeSectors instead so the partition "
                     "grows with its content, or remove packages from the image"))
        return _Sized(p, p.total_sectors, p.total_sectors)
    if p.min_free_sectors is not None:
        extra = p.min_free_sectors + p.generated_file_overhead_sectors
        if platform is not None and p.name.upper() == "MAINOS":
            extra += platform.additional_mainos_free_sectors + platform.mainos_rtc_reserved_sectors
        sectors = _round_up(sectors_for(fs, content_sectors + extra, ss, p.cluster_size), chunk_sectors)
        return _Sized(p, sectors, sectors)
    least = max(USE_ALL_SPACE_MIN_BYTES // ss, sectors_for(fs, content_sectors, ss, p.cluster_size))
    return _Sized(p, None, least)


def _meta_text(fs: str | None, meta: int, ss: int) -> str:
    return f" + ~{meta * ss:,} of {fs} metadata" if fs else ""


def _place(sized: list[_Sized], layout: DeviceLayout, *, first: int,
           last: int | None) -> list[tuple[int, int]]:
    """(first LBA, sectors) of each partition; UseAllSpace ends at ``last`` (None: it gets its least)."""
    out = []
    lba = first
    for s in sized:
        align = max(1, (s.part.byte_alignment or layout.default_alignment) // layout.sector_size)
        start = _round_up(lba, align)
        sectors = s.sectors if s.sectors is not None else (s.least if last is None else last - start + 1)
        out.append((start, sectors))
        lba = start + sectors
    return out


def _too_big(sized: list[_Sized], layout: DeviceLayout, platform: DevicePlatform, needed: int,
             chunk_sectors: int) -> InputError:
    ss = layout.sector_size
    over = needed - platform.min_sector_count
    parts = " + ".join(f"{s.part.name} {'at least ' if s.sectors is None else ''}{s.least}" for s in sized)
    msc = platform.min_sector_count
    return InputError(
        f"the partitions need {needed} sectors ({needed * ss:,} bytes: {parts}, plus GPT and alignment) "
        f"but OEMDevicePlatform MinSectorCount is {msc} ({msc * ss:,} bytes): {over} sectors "
        f"({over * ss:,} bytes) too many for the smallest device",
        path=platform.path, line=platform.lines.get("MinSectorCount"),
        hint=f"raise MinSectorCount to at least {_round_up(needed, chunk_sectors)} if the device is that "
             f"large, or make partitions smaller in {layout.path} (TotalSectors, MinFreeSectors), or remove "
             "packages")


def _placed(p: LayoutPartition, first: int, sectors: int, ss: int, product: str) -> PlacedPartition:
    attrs = ((ATTR_READ_ONLY if p.read_only else 0) | (ATTR_HIDDEN if p.hidden else 0)
             | (0 if p.attach_drive_letter else ATTR_NO_DRIVE_LETTER))
    return PlacedPartition(name=p.name, type_guid=p.type_guid,
                           unique_guid=p.unique_guid or derive_guid(product, p.name), first_lba=first,
                           sectors=sectors, file_system=p.file_system, cluster_size=p.cluster_size,
                           required_to_flash=p.required_to_flash, attributes=attrs, sector_size=ss,
                           bootable=p.bootable)
