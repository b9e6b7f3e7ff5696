"""Placing the DeviceLayout on a disk: LBAs worked out by hand for the sample board, size errors that name the
partition and the bytes, and the GPT checked by sgdisk."""

from __future__ import annotations

import subprocess
import uuid
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from iotbuild.errors import InputError, InputErrors
from iotbuild.formats.gpt import (
    ATTR_HIDDEN,
    ATTR_NO_DRIVE_LETTER,
    ATTR_READ_ONLY,
    derive_guid,
    read_gpt,
    write_gpt,
)
from iotbuild.models.devicelayout import (
    DeviceLayout,
    DevicePlatform,
    parse_device_layout,
    parse_device_platform,
)
from iotbuild.stages.imggen.layout import (
    DiskPlan,
    PlacedPartition,
    metadata_sectors,
    plan_disk,
    sectors_for,
)
from tests.conftest import require_tool
from tests.models.test_devicelayout import BASIC, ESP, NS, SAMPLE_DIR

MIB = 1 << 20


@pytest.fixture(scope="module")
def layout() -> DeviceLayout:
    return parse_device_layout((SAMPLE_DIR / "DeviceLayout.xml").read_bytes(), path="DeviceLayout.xml")


@pytest.fixture(scope="module")
def platform() -> DevicePlatform:
    data = (SAMPLE_DIR / "OEMDevicePlatform.xml").read_bytes()
    return parse_device_platform(data, path="OEMDevicePlatform.xml")


def errors_of(exc: pytest.ExceptionInfo) -> list[InputError]:
    return exc.value.errors if isinstance(exc.value, InputErrors) else [exc.value]


def make_layout(partitions: str, sector_size: int = 512, chunk: int = 128) -> DeviceLayout:
    xml = (f'<DeviceLayout xmlns="{NS}"><Partitions>{partitions}</Partitions>'
           f"<SectorSize>{sector_size}</SectorSize><ChunkSize>{chunk}</ChunkSize>"
           "<DefaultPartitionByteAlignment>0x200000</DefaultPartitionByteAlignment>"
           "<VersionTag>IoTUAP</VersionTag></DeviceLayout>")
    return parse_device_layout(xml.encode(), path="L.xml")


def part(name: str, body: str, type_: str = BASIC) -> str:
    return f"<Partition><Name>{name}</Name><Type>{type_}</Type>{body}</Partition>"


ESP_FIXED = part("EFIESP", "<FileSystem>FAT32</FileSystem><TotalSectors>131072</TotalSectors>", ESP)
DATA_REST = part("Data", "<FileSystem>NTFS</FileSystem><UseAllSpace>true</UseAllSpace>")


# --- the sample board, by hand ------------------------------------------------------------------------------
# 512-byte sectors, 128 KiB chunks (256 sectors), 1 GiB = 2097152 sectors (MinSectorCount).
# GPT: first usable LBA 2 + 32 = 34, last usable 2097152 - 34 = 2097118.
# EFIESP: default alignment 2 MiB = 4096 sectors -> LBA 4096, 131072 sectors, ends before 135168.
# MainOS: 8 MiB alignment = 16384 sectors: 135168 -> 147456 (9 x 16384), 1310720 sectors, ends before 1458176.
# Data:   1458176 = 89 x 16384 is aligned already; UseAllSpace to 2097118: 2097118 - 1458176 + 1 = 638943.

def test_sample_board_plan(layout, platform) -> None:
    plan = plan_disk(layout, platform, {"efiesp": 30 * MIB, "MAINOS": 300 * MIB}, product="SampleA")
    assert (plan.sector_size, plan.total_sectors, plan.disk_guid) == (512, 2097152, derive_guid("SampleA"))
    assert [(p.name, p.first_lba, p.sectors, p.last_lba) for p in plan.partitions] == [
        ("EFIESP", 4096, 131072, 135167), ("MainOS", 147456, 1310720, 1458175),
        ("Data", 1458176, 638943, 2097118)]
    esp = plan.partition("efiesp")
    assert esp == PlacedPartition("EFIESP", uuid.UUID(ESP.strip("{}")), derive_guid("SampleA", "EFIESP"),
                                  4096, 131072, "FAT32", None, True, 0, 512, True)
    assert (esp.offset, esp.size) == (4096 * 512, 64 * MIB)
    data = plan.partition("Data")
    assert (data.file_system, data.cluster_size, data.required_to_flash) == ("NTFS", 0x1000, False)
    assert plan.disk_bytes == 1 << 30 and plan.chunk_bytes == 128 * 1024


def test_gpt_of_the_sample_is_accepted_by_sgdisk(layout, platform, tmp_path: Path) -> None:
    plan = plan_disk(layout, platform, {}, product="SampleA")
    disk = tmp_path / "disk.raw"
    with open(disk, "w+b") as f:
        write_gpt(f, plan.gpt())           # sparse: only the GPT sectors are written
        f.seek(0)
        assert read_gpt(f) == plan.gpt()
    assert disk.stat().st_size == 1 << 30
    require_tool("sgdisk")
    proc = subprocess.run(["sgdisk", "-v", str(disk)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "No problems found" in proc.stdout, proc.stdout + proc.stderr
    proc = subprocess.run(["sgdisk", "-p", str(disk)], capture_output=True, text=True, timeout=60)
    assert f"Disk identifier (GUID): {str(derive_guid('SampleA')).upper()}" in proc.stdout
    for p in plan.partitions:
        assert f" {p.first_lba} " in proc.stdout and f" {p.last_lba} " in proc.stdout
        assert p.name in proc.stdout


def test_without_platform_the_disk_is_what_the_partitions_need(layout) -> None:
    # Data gets its least, 16 MiB = 32768 sectors (its NTFS estimate for no content is ~17250): it starts at
    # 1458176 and ends before 1490944; + 33 backup sectors = 1490977, rounded up to 256 sectors = 1491200.
    plan = plan_disk(layout, None, {}, product="P")
    assert plan.total_sectors == 1491200
    assert plan.partition("Data").sectors == 1491200 - 34 - 1458176 + 1


def test_min_sector_count_is_rounded_up_to_whole_chunks(layout) -> None:
    platform = DevicePlatform("P.xml", 2097152 + 1, ("*",))
    assert plan_disk(layout, platform, {}, product="P").total_sectors == 2097152 + 256


def test_partition_guid_attributes_and_alignment_from_the_layout() -> None:
    guid = "11111111-2222-3333-4444-555555555555"
    layout = make_layout(
        ESP_FIXED
        + part("MainOS", f"<Id>{{{guid}}}</Id><FileSystem>NTFS</FileSystem><TotalSectors>20480</TotalSectors>"
                         "<ReadOnly>true</ReadOnly><Hidden>true</Hidden>"
                         "<AttachDriveLetter>false</AttachDriveLetter>"
                         "<ByteAlignment>0x1000000</ByteAlignment>")
        + part("Raw", "<TotalSectors>7</TotalSectors><SingleSectorAlignment>true</SingleSectorAlignment>")
        + DATA_REST)
    plan = plan_disk(layout, None, {}, product="P")
    main, raw, data = plan.partition("MainOS"), plan.partition("Raw"), plan.partition("Data")
    assert main.unique_guid == uuid.UUID(guid)
    assert main.attributes == ATTR_READ_ONLY | ATTR_HIDDEN | ATTR_NO_DRIVE_LETTER
    # EFIESP 4096..135167; MainOS on 16 MiB (32768 sectors): 163840..184319; Raw on one sector:
    # 184320..184326;
    # Data back on the 2 MiB default (4096 sectors): 184327 -> 188416 (46 x 4096)
    assert (main.first_lba, main.sectors) == (163840, 20480)
    assert (raw.first_lba, raw.sectors) == (184320, 7)
    assert data.first_lba == 188416
    assert plan.partition("EFIESP").unique_guid == derive_guid("P", "EFIESP")
    plan.gpt()


# --- sizes --------------------------------------------------------------------------------------------------

def test_metadata_estimates_by_hand() -> None:
    # FAT32, 131072 sectors, no ClusterSize -> one sector per cluster: 131074 FAT entries * 4 bytes = 1025
    # sectors per FAT; 32 reserved + 2 x 1025 + 32 (16 KiB root area) + 1 (root cluster) = 2115.
    assert metadata_sectors("FAT32", 131072, 512, None) == 2115
    # with 4 KiB clusters: 16386 entries -> 129 sectors per FAT; 32 + 258 + 32 + 8 = 330
    assert metadata_sectors("FAT", 131072, 512, 4096) == 330
    # NTFS: 5 % of 1310720 = 65536, + 8 MiB = 16384 sectors
    assert metadata_sectors("NTFS", 1310720, 512, 4096) == 81920
    assert metadata_sectors(None, 1310720, 512, None) == 0


def test_min_free_sectors_sizing_by_hand() -> None:
    # 100 MiB of content = 204800 sectors, + MinFreeSectors 1048576 = 1253376. The least s with
    # s >= 1253376 + ceil(s / 20) + 16384 is 1336590; rounded up to 256-sector chunks: 5222 x 256 = 1336832.
    assert sectors_for("NTFS", 1253376, 512, None) == 1336590
    layout = make_layout(ESP_FIXED + part("MainOS", "<FileSystem>NTFS</FileSystem>"
                                                    "<MinFreeSectors>1048576</MinFreeSectors>") + DATA_REST)
    assert plan_disk(layout, None, {"MainOS": 100 * MIB}, product="P").partition("MainOS").sectors == 1336832
    # OEMDevicePlatform's MainOS requests are added to the free space (and GeneratedFileOverheadSectors too)
    platform = DevicePlatform("P.xml", 4194304, ("*",), (), additional_mainos_free_sectors=204800,
                              mainos_rtc_reserved_sectors=102400)
    grown = plan_disk(layout, platform, {"MainOS": 100 * MIB}, product="P").partition("MainOS").sectors
    assert grown == 256 * -(-sectors_for("NTFS", 1253376 + 307200, 512, None) // 256)


def test_content_too_big_for_total_sectors(layout, platform) -> None:
    # 812,000,256 bytes = 1585938 sectors, + 81920 NTFS metadata sectors = 1667858 sectors = 853,943,296 bytes
    with pytest.raises(InputErrors) as exc:
        plan_disk(layout, platform, {"MainOS": 812_000_256}, product="P")
    (err,) = errors_of(exc)
    assert err.what == ("partition MainOS: content needs 853,943,296 bytes (812,000,256 of files + "
                        "~41,943,040 of NTFS metadata) but TotalSectors 1310720 gives 671,088,640 bytes")
    assert (err.path, err.line) == ("DeviceLayout.xml", 13)
    assert "raise TotalSectors to at least" in err.hint and "MinFreeSectors" in err.hint
    assert "remove packages" in err.hint


def test_all_size_problems_at_once(layout, platform) -> None:
    # Data: 600 MiB = 1228800 sectors; least s >= 1228800 + ceil(s/20) + 16384 is 1310720; it starts at
    # 1458176: 1458176 + 1310720 + 33 = 2768929 sectors needed.
    with pytest.raises(InputErrors) as exc:
        plan_disk(layout, platform, {"EFIESP": 70 * MIB, "MainOS": 700 * MIB, "Data": 600 * MIB}, product="P")
    errs = errors_of(exc)
    assert [e.what.split(":")[0] for e in errs] == [
        "partition EFIESP", "partition MainOS", "the partitions need 2768929 sectors (1,417,691,648 bytes"]


def test_exceeding_min_sector_count_says_by_how_much(layout, platform) -> None:
    # Data holds 400,000,000 bytes = 781250 sectors; its least s >= 781250 + ceil(s/20) + 16384 is 839615.
    # It starts at 1458176, so the partitions end before 2297791; + 33 backup sectors = 2297824 needed,
    # 200672 sectors (102,744,064 bytes) more than MinSectorCount 2097152.
    with pytest.raises(InputErrors) as exc:
        plan_disk(layout, platform, {"Data": 400_000_000}, product="P")
    (err,) = errors_of(exc)
    assert err.path == "OEMDevicePlatform.xml"
    assert err.what.startswith("the partitions need 2297824 sectors (1,176,485,888 bytes: EFIESP 131072 + "
                               "MainOS 1310720 + Data at least 839615, plus GPT and alignment) but "
                               "OEMDevicePlatform MinSectorCount is 2097152 (1,073,741,824 bytes): 200672 "
                               "sectors (102,744,064 bytes) too many")
    assert err.hint.startswith("raise MinSectorCount to at least 2297856")  # 8976 x 256
    plan = plan_disk(layout, None, {"Data": 400_000_000}, product="P")  # without a platform the disk grows
    assert plan.total_sectors == 2297856 and plan.partition("Data").sectors >= 839615


def test_content_names_are_case_insensitive_and_checked(layout, platform) -> None:
    plan_disk(layout, platform, {"mainos": 1, "MainOS": 2, "CrashDump": 0}, product="P")
    with pytest.raises(InputErrors) as exc:
        plan_disk(layout, platform, {"CrashDump": 5}, product="P")
    (err,) = errors_of(exc)
    assert err.what == "5 bytes of content for partition CrashDump, which the device layout does not have"
    with pytest.raises(ValueError):
        plan_disk(layout, platform, {"MainOS": -1}, product="P")


def test_compressed_partitions_must_exist(layout) -> None:
    with pytest.raises(InputErrors) as exc:
        plan_disk(layout, DevicePlatform("P.xml", 2097152, ("*",), ("OSData",)), {}, product="P")
    (err,) = errors_of(exc)
    assert err.path == "P.xml" and "names OSData, which the device layout" in err.what


def test_4k_sectors() -> None:
    esp = part("EFIESP", "<FileSystem>FAT32</FileSystem><TotalSectors>16384</TotalSectors>", ESP)
    main = part("MainOS", "<FileSystem>NTFS</FileSystem><TotalSectors>65536</TotalSectors>")
    layout = make_layout(esp + main + DATA_REST, sector_size=4096)
    plan = plan_disk(layout, None, {}, product="P")
    # first usable LBA 2 + 4 = 6; 2 MiB = 512 sectors: EFIESP 512..16895, MainOS 16896 (33 x 512) ..82431,
    # Data 82432 + 4096 (16 MiB) = 86528, + 5 backup = 86533 -> 32-sector chunks: 86560
    assert [(p.first_lba, p.sectors) for p in plan.partitions][:2] == [(512, 16384), (16896, 65536)]
    assert plan.total_sectors == 86560
    assert plan.gpt().sector_size == 4096


# --- property: any content gives a valid, aligned, whole-chunk disk -----------------------------------------

@settings(max_examples=60, deadline=None)
@given(esp=st.integers(0, 60 * MIB), main=st.integers(0, 4 << 30), data=st.integers(0, 2 << 30),
       min_free=st.integers(1048576, 4 << 20),
       cluster=st.sampled_from(["", "<ClusterSize>0x1000</ClusterSize>"]))
def test_plans_are_always_valid(esp: int, main: int, data: int, min_free: int, cluster: str) -> None:
    layout = make_layout(
        part("EFIESP", f"<FileSystem>FAT32</FileSystem><MinFreeSectors>8192</MinFreeSectors>{cluster}", ESP)
        + part("MainOS", f"<FileSystem>NTFS</FileSystem><MinFreeSectors>{min_free}</MinFreeSectors>"
                         "<ByteAlignment>0x800000</ByteAlignment>")
        + DATA_REST)
    content = {"EFIESP": esp, "MainOS": main, "Data": data}
    plan: DiskPlan = plan_disk(layout, None, content, product="P")
    plan.gpt()  # GptLayout.check(): in bounds, no overlaps
    assert plan.total_sectors % 256 == 0
    for p, lp in zip(plan.partitions, layout.partitions):
        align = (lp.byte_alignment or layout.default_alignment) // 512
        assert p.first_lba % align == 0
        meta = metadata_sectors(lp.file_system, p.sectors, 512, lp.cluster_size)
        free = p.sectors - meta - -(-content[p.name] // 512)
        assert free >= (lp.min_free_sectors or 0), p.name
        if lp.min_free_sectors:
            assert p.sectors % 256 == 0
    assert plan.partitions[-1].last_lba == plan.total_sectors - 34
