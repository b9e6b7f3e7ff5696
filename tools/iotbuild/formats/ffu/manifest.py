"""The FFU manifest: ASCII, CRLF, INI-like text after the image header (reference: ffu.md §4).

The writer produces exactly the layout of ffu.md §4.3 (img2ffu's ``ManifestIni``), with real values:
``[FullFlash]``, ``[StoragePool]``, one ``[Store]`` and one ``[Partition]`` per GPT partition. The reader
follows MS ``FullFlashUpdateManifest`` (§4.1): section lines, ``key = value`` lines, stray lines after a
``Description`` key appended to it, ``[Partition]`` sections belonging to the most recent ``[Store]``.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone

from ...errors import FormatError, InputError
from ..gpt import GptLayout

EMMC_USER_DEVICE_PATH = "VenHw(B615F1F5-5088-43CD-809C-A16E52487D00)"
MANIFEST_VERSION = "2.0"

_SECTION = re.compile(r"^\s*\[(?P<name>[^\]]+)\]\s*$")
_KEY = re.compile(r"^\s*(?P<key>[^=\s]+)\s*=\s*(?P<value>.*?)\s*$")


@dataclass(frozen=True)
class FfuPartition:
    """One GPT partition as the manifest lists it; ``required_to_flash=False`` moves it to phase 3 (§3.4)."""

    name: str
    type_guid: uuid.UUID
    first_lba: int
    last_lba: int
    required_to_flash: bool = True

    @property
    def total_sectors(self) -> int:
        return self.last_lba - self.first_lba + 1


@dataclass(frozen=True)
class FfuLayoutInfo:
    """What the manifest and store header say about the disk, besides its bytes."""

    partitions: tuple[FfuPartition, ...]
    platform_ids: tuple[str, ...]
    store_id: uuid.UUID
    os_version: str = "10.0.11111.0"
    anti_theft_version: str = "1.1"
    device_path: str = EMMC_USER_DEVICE_PATH
    description: str | None = None          # None: "Update on: <signing time>Z::" as img2ffu writes

    def __post_init__(self) -> None:
        if not self.platform_ids:
            raise InputError("an FFU needs at least one platform ID", hint="set the board's PlatformId")
        for pid in self.platform_ids:
            if not pid.isascii() or "\0" in pid or not pid.strip():
                raise InputError(f"platform ID {pid!r} must be non-empty ASCII without NUL")
        if sum(len(p) + 1 for p in self.platform_ids) > 191:
            raise InputError("platform IDs take more than 191 bytes with their NULs "
                             "(STORE_HEADER.szPlatformId)",
                             hint="list fewer or shorter platform IDs")

    @classmethod
    def from_gpt(cls, layout: GptLayout, *, platform_ids: Sequence[str], not_required: Sequence[str] = (),
                 **kwargs: object) -> FfuLayoutInfo:
        """Every GPT partition, RequiredToFlash unless named in ``not_required``; StoreId = the disk GUID."""
        unknown = set(not_required) - {p.name for p in layout.partitions}
        if unknown:
            raise InputError(f"not_required names unknown partitions: {', '.join(sorted(unknown))}")
        parts = tuple(FfuPartition(p.name, p.type_guid, p.first_lba, p.last_lba, p.name not in not_required)
                      for p in layout.partitions)
        kwargs.setdefault("store_id", layout.disk_guid)
        return cls(parts, tuple(platform_ids), **kwargs)  # type: ignore[arg-type]


def _lines(pairs: Sequence[tuple[str, str]], width: int | None = None) -> list[str]:
    width = width or max(len(k) for k, _ in pairs)
    return [f"{k.ljust(width)} = {v}" for k, v in pairs]


def build_manifest(info: FfuLayoutInfo, *, sector_size: int, min_sector_count: int, when: datetime) -> bytes:
    """The manifest bytes in the exact layout of ffu.md §4.3 (CRLF, key groups aligned as img2ffu does)."""
    ids = [(f"DevicePlatformId{i}", p) for i, p in enumerate(info.platform_ids)]
    width = max(len(k) for k, _ in ids)
    description = info.description
    if description is None:
        description = f"Update on: {when.astimezone(timezone.utc):%Y-%m-%d %H:%M:%S}Z::"
    lines = ["[FullFlash]",
             *_lines([("OSVersion", info.os_version), ("AntiTheftVersion", info.anti_theft_version),
                      ("Description", description)], width),
             "", "",   # img2ffu: the "::\r\n" in the Description value, then the line's own "\r\n"
             *_lines([("StateSeparationLevel", "0"), ("UEFI", "True")]),
             *_lines([("Version", MANIFEST_VERSION), *ids], width),
             "",
             "[StoragePool]", "Name = OSPool", "",
             "[Store]",
             *_lines([("OnlyAllocateDefinedGptEntries", "False"), ("StoreId", f"{{{info.store_id}}}"),
                      ("IsMainOSStore", "False"), ("DevicePath", info.device_path), ("StoreType", "Default"),
                      ("MinSectorCount", str(min_sector_count)), ("SectorSize", str(sector_size))]),
             ""]
    for p in info.partitions:
        lines += ["[Partition]",
                  *_lines([("UsedSectors", str(p.total_sectors)), ("Type", f"{{{str(p.type_guid).upper()}}}"),
                           ("TotalSectors", str(p.total_sectors)),
                           ("RequiredToFlash", str(p.required_to_flash)),
                           ("Name", p.name)]),
                  ""]
    text = "\r\n".join(lines) + "\r\n"
    try:
        return text.encode("ascii")
    except UnicodeEncodeError as e:
        context = text[max(0, e.start - 30):e.end]
        raise InputError(f"manifest text must be ASCII: {text[e.start:e.end]!r} in {context!r}",
                         hint="use ASCII partition names, versions and descriptions") from None


@dataclass(frozen=True)
class ManifestStore:
    keys: dict[str, str]
    partitions: list[dict[str, str]] = field(default_factory=list)

    @property
    def sector_size(self) -> int:
        return int(self.keys["SectorSize"])

    @property
    def min_sector_count(self) -> int:
        return int(self.keys.get("MinSectorCount", "0") or 0)


@dataclass(frozen=True)
class Manifest:
    text: str
    sections: dict[str, dict[str, str]]      # [FullFlash], [StoragePool], ... (each at most once)
    stores: list[ManifestStore]

    @property
    def full_flash(self) -> dict[str, str]:
        return self.sections["FullFlash"]


def parse_manifest(raw: bytes, offset: int = 0) -> Manifest:
    """Parse and check (§4.1): ``[FullFlash] Version = 2.0``; at least one ``[Store]``, each with a
    ``SectorSize``."""
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError as e:
        raise FormatError(f"manifest byte 0x{raw[e.start]:02x} is not ASCII",
                          offset=offset + e.start) from None
    sections: dict[str, dict[str, str]] = {}
    stores: list[ManifestStore] = []
    current: dict[str, str] | None = None
    last_key = ""
    for line in text.splitlines():
        if m := _SECTION.match(line):
            name = m["name"]
            current, last_key = {}, ""
            if name == "Store":
                stores.append(ManifestStore(current))
            elif name == "Partition":
                if not stores:
                    raise FormatError("manifest has a [Partition] before any [Store]", offset=offset)
                stores[-1].partitions.append(current)
            elif name in sections:
                raise FormatError(f"manifest has two [{name}] sections", offset=offset)
            else:
                sections[name] = current
        elif current is not None and (m := _KEY.match(line)):
            current[m["key"]] = m["value"]
            last_key = m["key"]
        elif current is not None and last_key == "Description":
            current["Description"] += "\n" + line
    full = sections.get("FullFlash")
    if full is None:
        raise FormatError("manifest has no [FullFlash] section", offset=offset)
    if full.get("Version", "").lower() != MANIFEST_VERSION:
        raise FormatError(f"manifest [FullFlash] Version {full.get('Version')!r} does not match 2.0",
                          offset=offset)
    if not stores:
        raise FormatError("manifest has no [Store] section", offset=offset)
    for i, store in enumerate(stores, 1):
        if not store.keys.get("SectorSize", "").isdigit():
            raise FormatError(f"manifest [Store] #{i} has no numeric SectorSize", offset=offset)
    return Manifest(text, sections, stores)
