"""DeviceLayout.xml and OEMDevicePlatform.xml: the samples read exactly, each rule of §6.2–6.3 at its line."""

from __future__ import annotations

import logging
import uuid

import pytest

from iotbuild.errors import InputError, InputErrors
from iotbuild.models.devicelayout import (
    BASIC_DATA_TYPE,
    ESP_TYPE,
    DeviceLayout,
    DevicePlatform,
    LayoutPartition,
    parse_device_layout,
    parse_device_platform,
)
from tests.conftest import REPO

SAMPLE_DIR = REPO / "bsp" / "QEMUx64" / "Packages" / "QEMUx64.DeviceLayout"
KIT_MBR = "addonkit/Workspace/Common/Packages/DeviceLayout.MBR4GB"
NS = "http://schemas.microsoft.com/embedded/2004/10/ImageUpdate"
ESP = "{c12a7328-f81f-11d2-ba4b-00a0c93ec93b}"
BASIC = "{ebd0a0a2-b9e5-4433-87c0-68b6b72699c7}"


def errors_of(exc: pytest.ExceptionInfo) -> list[InputError]:
    return exc.value.errors if isinstance(exc.value, InputErrors) else [exc.value]


def kids(*elements: str) -> str:
    """Partition children, one per line, indented as in the sample."""
    return "".join(f"      {e}\n" for e in elements)


def part(name: str, body: str, type_: str = BASIC) -> str:
    return f"    <Partition>\n{kids(f'<Name>{name}</Name>', f'<Type>{type_}</Type>')}{body}    </Partition>\n"


ESP_PART = part("EFIESP", kids("<FileSystem>FAT32</FileSystem>", "<TotalSectors>131072</TotalSectors>"), ESP)
MAINOS_PART = part("MainOS", kids("<FileSystem>NTFS</FileSystem>", "<TotalSectors>1310720</TotalSectors>"))
DATA_PART = part("Data", kids("<FileSystem>NTFS</FileSystem>", "<UseAllSpace>true</UseAllSpace>"))
TAIL = ("  <SectorSize>512</SectorSize>\n  <ChunkSize>128</ChunkSize>\n"
        "  <DefaultPartitionByteAlignment>0x200000</DefaultPartitionByteAlignment>\n"
        "  <VersionTag>IoTUAP</VersionTag>\n")


def layout_xml(partitions: str = ESP_PART + MAINOS_PART + DATA_PART, tail: str = TAIL) -> bytes:
    # line 1 declaration, line 2 root, line 3 <Partitions>, partitions from line 4
    return (f'<?xml version="1.0" encoding="utf-8"?>\n<DeviceLayout xmlns="{NS}">\n  <Partitions>\n'
            f"{partitions}  </Partitions>\n{tail}</DeviceLayout>\n").encode()


def layout_errors(data: bytes) -> list[InputError]:
    with pytest.raises(InputError) as exc:
        parse_device_layout(data, path="DeviceLayout.xml")
    errs = errors_of(exc)
    assert all(e.path == "DeviceLayout.xml" and e.line and e.hint for e in errs), [str(e) for e in errs]
    return errs


def one_error(data: bytes) -> InputError:
    errs = layout_errors(data)
    assert len(errs) == 1, [str(e) for e in errs]
    return errs[0]


# --- the samples --------------------------------------------------------------------------------------------

def test_sample_layout_is_read_exactly() -> None:
    layout = parse_device_layout((SAMPLE_DIR / "DeviceLayout.xml").read_bytes(), path="DeviceLayout.xml")
    common = dict(unique_guid=None, min_free_sectors=None, bootable=False, required_to_flash=False,
                  read_only=False, hidden=False, attach_drive_letter=True)
    assert layout == DeviceLayout("DeviceLayout.xml", 512, 128, 0x200000, "IoTUAP", (
        LayoutPartition(**{**common, "bootable": True, "required_to_flash": True}, name="EFIESP",
                        type_guid=ESP_TYPE, file_system="FAT32", total_sectors=131072, use_all_space=False,
                        byte_alignment=None, cluster_size=None, line=5),
        LayoutPartition(**common, name="MainOS", type_guid=BASIC_DATA_TYPE, file_system="NTFS",
                        total_sectors=1310720, use_all_space=False, byte_alignment=0x800000,
                        cluster_size=0x1000, line=13),
        LayoutPartition(**common, name="Data", type_guid=BASIC_DATA_TYPE, file_system="NTFS",
                        total_sectors=None, use_all_space=True, byte_alignment=0x800000,
                        cluster_size=0x1000, line=21),
    ))
    assert [p.line for p in layout.partitions] == [5, 13, 21]
    assert layout.chunk_bytes == 131072


def test_partition_lookup_is_case_insensitive() -> None:
    layout = parse_device_layout(layout_xml(), path="x")
    assert layout.partition("mainos").name == "MainOS"
    assert layout.partition("EFIESP") is layout.partitions[0]
    with pytest.raises(KeyError):
        layout.partition("CrashDump")


def test_sample_platform() -> None:
    platform = parse_device_platform((SAMPLE_DIR / "OEMDevicePlatform.xml").read_bytes(), path="P.xml")
    assert platform == DevicePlatform("P.xml", 2097152, ("*",), ("MainOS",))


def test_kit_mbr_layout_gets_the_gpt_guid_to_use(samples) -> None:
    """The kit's own 4 GB sample is an MBR layout: one error per partition, each naming the GPT type GUID."""
    src = samples / KIT_MBR / "DeviceLayout.xml"
    if not src.is_file():
        pytest.skip(f"{KIT_MBR} not in the samples")
    errs = layout_errors(src.read_bytes())
    assert [(e.line, e.what) for e in errs] == [
        (10, "partition EFIESP: <Type> 0x0c is an MBR partition type; MBR layouts are not supported"),
        (21, "partition MainOS: <Type> 0x07 is an MBR partition type; MBR layouts are not supported"),
        (32, "partition Data: <Type> 0x07 is an MBR partition type; MBR layouts are not supported"),
    ]
    assert errs[0].hint.startswith(f"use the GPT type GUID {ESP} (EFI system partition)")
    assert errs[1].hint.startswith(f"use the GPT type GUID {BASIC} (basic data partition)")


def test_kit_platform_with_bom(samples) -> None:
    src = samples / KIT_MBR / "OEMDevicePlatform.xml"
    if not src.is_file():
        pytest.skip(f"{KIT_MBR} not in the samples")
    platform = parse_device_platform(src.read_bytes(), path="p")
    assert platform == DevicePlatform("p", 7372800, ("*",), ("MainOS",))


# --- the rules ----------------------------------------------------------------------------------------------

def test_numbers_decimal_and_hex_and_guid_forms() -> None:
    body = (kids("<FileSystem>NTFS</FileSystem>", "<MinFreeSectors>0x100000</MinFreeSectors>",
             "<ByteAlignment>8388608</ByteAlignment>", "<ClusterSize>0X1000</ClusterSize>",
             "<Id>11111111-2222-3333-4444-555555555555</Id>", "<AttachDriveLetter>false</AttachDriveLetter>",
             "<ReadOnly>1</ReadOnly>", "<Hidden>TRUE</Hidden>"))
    main = part("MainOS", body, BASIC.strip("{}").upper())
    layout = parse_device_layout(layout_xml(ESP_PART + main + DATA_PART), path="x")
    m = layout.partition("MainOS")
    assert (m.min_free_sectors, m.byte_alignment, m.cluster_size) == (0x100000, 0x800000, 0x1000)
    assert m.unique_guid == uuid.UUID("11111111-2222-3333-4444-555555555555")
    assert m.type_guid == BASIC_DATA_TYPE
    assert (m.attach_drive_letter, m.read_only, m.hidden) == (False, True, True)


@pytest.mark.parametrize("body, line, message", [
    (kids("<TotalSectors>12ab</TotalSectors>"), 7, "partition MainOS: <TotalSectors> '12ab' is not a number"),
    (kids("<TotalSectors>-5</TotalSectors>"), 7, "'-5' is not a number"),
    (kids("<TotalSectors>100</TotalSectors>", "<MinFreeSectors>1048576</MinFreeSectors>"), 8,
     "partition MainOS: sets <TotalSectors> and <MinFreeSectors>"),
    (kids("<FileSystem>NTFS</FileSystem>"), 4, "partition MainOS: has no size"),
    (kids("<TotalSectors>100</TotalSectors>", "<UseAllSpace>true</UseAllSpace>"), 8,
     "sets <TotalSectors> and <UseAllSpace>"),
    (kids("<TotalSectors>0</TotalSectors>"), 7, "<TotalSectors> is 0"),
    (kids("<MinFreeSectors>4096</MinFreeSectors>"), 7, "<MinFreeSectors> 4096 is below 8192 (4 MiB)"),
    (kids("<MinFreeSectors>524288</MinFreeSectors>"), 7,
     "<MinFreeSectors> 524288 is below 1048576 (512 MiB), the free space MainOS needs"),
    (kids("<TotalSectors>100</TotalSectors>", "<ByteAlignment>0x3000</ByteAlignment>"), 8,
     "<ByteAlignment> 0x3000 is not a power of two"),
    (kids("<TotalSectors>100</TotalSectors>", "<ByteAlignment>256</ByteAlignment>"), 8,
     "<ByteAlignment> 256 is not a multiple of the sector size 512"),
    (kids("<TotalSectors>100</TotalSectors>", "<FileSystem>NTFS</FileSystem>",
      "<ClusterSize>0x100</ClusterSize>"), 9, "<ClusterSize> 0x100 is not a power of two of at least"),
    (kids("<TotalSectors>100</TotalSectors>", "<FileSystem>FAT32</FileSystem>",
      "<ClusterSize>0x20000</ClusterSize>"), 9, "larger than FAT32 allows (64 KiB)"),
    (kids("<TotalSectors>100</TotalSectors>", "<ClusterSize>0x1000</ClusterSize>"), 8,
     "<ClusterSize> on a raw partition"),
    (kids("<TotalSectors>100</TotalSectors>", "<FileSystem>ext4</FileSystem>"), 8,
     "<FileSystem> 'ext4' is not supported"),
    (kids("<TotalSectors>100</TotalSectors>", "<Bootable>yes</Bootable>"), 8,
     "<Bootable> 'yes' is not true or false"),
    (kids("<TotalSectors>100</TotalSectors>", "<Sise>1</Sise>"), 8, "unknown element <Sise> in <Partition>"),
    (kids("<TotalSectors>100</TotalSectors>", "<OffsetInSectors>2048</OffsetInSectors>"), 8,
     "<OffsetInSectors> in <Partition> is not supported"),
    (kids("<TotalSectors>100</TotalSectors>", "<TotalSectors>200</TotalSectors>"), 8,
     "<TotalSectors> appears twice in <Partition> (first at line 7)"),
    (kids("<TotalSectors>100</TotalSectors>",
          "<GeneratedFileOverheadSectors>5</GeneratedFileOverheadSectors>"), 8,
     "<GeneratedFileOverheadSectors> needs <MinFreeSectors>"),
    (kids("<TotalSectors>100</TotalSectors>", "<Id>{00000000-0000-0000-0000-000000000000}</Id>"), 8,
     "all-zero GUID"),
    (kids("<TotalSectors>100</TotalSectors>", "<Id>{1234}</Id>"), 8, "<Id> '{1234}' is not a GUID"),
    (kids("<TotalSectors>100</TotalSectors>", "<ByteAlignment>0x200000</ByteAlignment>",
      "<SingleSectorAlignment>true</SingleSectorAlignment>"), 9,
     "sets both <ByteAlignment> and <SingleSectorAlignment>"),
])
def test_partition_rules(body: str, line: int, message: str) -> None:
    err = one_error(_with_mainos(body))
    assert message in err.what, err.what
    assert err.line == line, (err.line, err.what)


def _with_mainos(body: str) -> bytes:
    """MainOS first, so that its lines are fixed (<Partition> 4, <Name> 5, <Type> 6, body from 7)."""
    return layout_xml(part("MainOS", body) + ESP_PART + DATA_PART)


def test_unknown_element_hint_names_the_allowed_ones() -> None:
    err = one_error(_with_mainos(kids("<TotalSectors>100</TotalSectors>", "<ByteAligment>1</ByteAligment>")))
    assert err.hint.startswith("did you mean <ByteAlignment>? (allowed: Name, Type, Id, FileSystem")
    err = one_error(_with_mainos(kids("<TotalSectors>100</TotalSectors>", "<Zzz>1</Zzz>")))
    assert err.hint.startswith("allowed: Name, Type, Id,")


def test_elements_without_effect_are_accepted() -> None:
    body = (kids("<TotalSectors>100</TotalSectors>", "<PrimaryPartition>true</PrimaryPartition>",
             "<UpdateType>Protected</UpdateType>", "<Compressed>false</Compressed>",
             "<SingleSectorAlignment>true</SingleSectorAlignment>"))
    layout = parse_device_layout(_with_mainos(body), path="x")
    assert layout.partition("MainOS").byte_alignment == 512


def test_generated_file_overhead_is_kept() -> None:
    body = (kids("<MinFreeSectors>1048576</MinFreeSectors>",
             "<GeneratedFileOverheadSectors>4096</GeneratedFileOverheadSectors>"))
    main = parse_device_layout(_with_mainos(body), path="x").partition("MainOS")
    assert main.generated_file_overhead_sectors == 4096


def test_mbr_type_byte_is_refused_with_the_guid() -> None:
    err = one_error(layout_xml(part("EFIESP", kids("<FileSystem>FAT</FileSystem>",
                                               "<TotalSectors>65536</TotalSectors>"), "0x0C")
                               + MAINOS_PART + DATA_PART))
    assert err.what == "partition EFIESP: <Type> 0x0C is an MBR partition type; MBR layouts are not supported"
    assert err.line == 6
    assert ESP in err.hint and BASIC in err.hint


def test_long_names_duplicates_and_mandatory_partitions() -> None:
    long = "P" * 37
    errs = layout_errors(layout_xml(
        ESP_PART + part(long, kids("<TotalSectors>100</TotalSectors>"))
        + part("mainos", kids("<TotalSectors>100</TotalSectors>"))
        + part("MAINOS", kids("<TotalSectors>100</TotalSectors>"))))
    whats = [(e.line, e.what) for e in errs]
    assert (11, f"partition {long}: the name is 37 UTF-16 characters; a GPT partition name holds at "
                "most 36") in whats
    assert (20, "partition name MAINOS is used twice (first at line 15; names are compared "
                "case-insensitively)") in whats
    assert (3, "the layout has no Data partition") in whats
    assert len(errs) == 3


def test_name_length_counts_utf16_units() -> None:
    name = "\U0001F600" * 18  # 18 characters, 36 UTF-16 code units: fits
    size = kids("<TotalSectors>1</TotalSectors>")
    parse_device_layout(layout_xml(ESP_PART + MAINOS_PART + part(name, size) + DATA_PART), path="x")
    err = one_error(layout_xml(ESP_PART + MAINOS_PART + part(name + "x", size) + DATA_PART))
    assert "37 UTF-16 characters" in err.what


def test_use_all_space_once_and_last() -> None:
    err = one_error(layout_xml(ESP_PART + DATA_PART + MAINOS_PART))
    assert (err.line, err.what) == (10, "partition Data has <UseAllSpace> but is not the last partition")
    errs = layout_errors(layout_xml(ESP_PART + part("MainOS", kids("<UseAllSpace>true</UseAllSpace>"))
                                    + DATA_PART))
    assert [(e.line, e.what.split(";")[0]) for e in errs] == [
        (10, "partition MainOS has <UseAllSpace> but is not the last partition"),
        (15, "partition Data: <UseAllSpace> is already used by MainOS (line 10)")]


def test_duplicate_ids() -> None:
    guid = "{11111111-2222-3333-4444-555555555555}"
    err = one_error(layout_xml(ESP_PART.replace("<TotalSectors>", f"<Id>{guid}</Id><TotalSectors>")
                               + MAINOS_PART.replace("<TotalSectors>", f"<Id>{guid}</Id><TotalSectors>")
                               + DATA_PART))
    assert err.what.startswith("partition MainOS: <Id> {11111111-2222-3333-4444-555555555555} is also the "
                               "Id of EFIESP (line 4)")


def test_efiesp_must_be_fat_and_should_be_esp_type(caplog) -> None:
    err = one_error(layout_xml(part("EFIESP", kids("<TotalSectors>65536</TotalSectors>"), ESP)
                               + MAINOS_PART + DATA_PART))
    assert err.what.startswith("partition EFIESP: <FileSystem> is absent (raw); UEFI firmware reads only FAT")
    with caplog.at_level(logging.WARNING):
        parse_device_layout(layout_xml(ESP_PART.replace(ESP, BASIC) + MAINOS_PART + DATA_PART), path="x")
    assert "not the EFI system partition type" in caplog.text


@pytest.mark.parametrize("tail, line, message", [
    (TAIL.replace(">512<", ">1024<"), 23, "<SectorSize> 1024 is not supported"),
    (TAIL.replace(">128<", ">96<"), 24, "<ChunkSize> 96 (KiB) is not a power of two"),
    (TAIL.replace(">512<", ">4096<").replace(">128<", ">2<"), 24,
     "<ChunkSize> 2 KiB is not a multiple of the sector size 4096"),
    (TAIL.replace("0x200000", "0x300000"), 25,
     "<DefaultPartitionByteAlignment> 0x300000 is not a power of two"),
    (TAIL.replace("0x200000", "0x100"), 25, "is not a multiple of the sector size 512"),
    (TAIL.replace("IoTUAP", "Desktop"), 26, "<VersionTag> 'Desktop' is not supported"),
    (TAIL.replace("  <ChunkSize>128</ChunkSize>\n", ""), 2, "<ChunkSize> is missing"),
    (TAIL + "  <Extra/>\n", 27, "unknown element <Extra> in <DeviceLayout>"),
])
def test_layout_rules(tail: str, line: int, message: str) -> None:
    err = one_error(layout_xml(tail=tail))
    assert message in err.what, err.what
    assert err.line == line, (err.line, err.what)


def test_every_problem_is_reported_at_once() -> None:
    errs = layout_errors(layout_xml(
        part("EFIESP", kids("<FileSystem>FAT32</FileSystem>", "<TotalSectors>x</TotalSectors>"), "0x0c")
        + MAINOS_PART.replace("1310720", "0") + DATA_PART, tail=TAIL.replace("IoTUAP", "x")))
    assert [e.line for e in errs] == [6, 8, 14, 26]


def test_root_and_syntax_errors() -> None:
    with pytest.raises(InputError, match=r"root element <DeviceLayout> is not <DeviceLayout xmlns=") as exc:
        parse_device_layout(b"<DeviceLayout/>", path="x")
    assert exc.value.hint.startswith('add xmlns="http://schemas.microsoft.com/embedded/2004/10/ImageUpdate"')
    with pytest.raises(InputError, match="not well-formed"):
        parse_device_layout(b"<DeviceLayout", path="x")
    with pytest.raises(InputError, match="DOCTYPE"):
        parse_device_layout(b'<!DOCTYPE x [<!ENTITY a "b">]><DeviceLayout/>', path="x")


# --- OEMDevicePlatform --------------------------------------------------------------------------------------

def platform_xml(body: str) -> bytes:
    return f'<?xml version="1.0"?>\n<OEMDevicePlatform xmlns="{NS}">\n{body}</OEMDevicePlatform>\n'.encode()


def test_platform_single_id_form_and_extras() -> None:
    p = parse_device_platform(platform_xml(
        "  <MinSectorCount>0x1400000</MinSectorCount>\n"
        "  <DevicePlatformID>Contoso.ContosoFamily.ContosoDevice.v1</DevicePlatformID>\n"
        "  <AdditionalMainOSFreeSectorsRequest>204800</AdditionalMainOSFreeSectorsRequest>\n"
        "  <MainOSRTCDataReservedSectors>102400</MainOSRTCDataReservedSectors>\n"), path="p")
    assert p == DevicePlatform("p", 20971520, ("Contoso.ContosoFamily.ContosoDevice.v1",), (), 204800, 102400)


@pytest.mark.parametrize("body, lines, message", [
    ("  <DevicePlatformIDs><ID>*</ID></DevicePlatformIDs>\n", [2], "<MinSectorCount> is missing"),
    ("  <MinSectorCount>0</MinSectorCount>\n  <DevicePlatformIDs><ID>*</ID></DevicePlatformIDs>\n", [3],
     "<MinSectorCount> is 0"),
    ("  <MinSectorCount>many</MinSectorCount>\n  <DevicePlatformIDs><ID>*</ID></DevicePlatformIDs>\n", [3],
     "'many' is not a number"),
    ("  <MinSectorCount>100</MinSectorCount>\n", [2], "no device platform ID"),
    ("  <MinSectorCount>100</MinSectorCount>\n  <DevicePlatformIDs>\n  </DevicePlatformIDs>\n", [4],
     "<DevicePlatformIDs> is empty"),
    ("  <MinSectorCount>100</MinSectorCount>\n  <DevicePlatformIDs><ID> </ID></DevicePlatformIDs>\n", [4],
     "<ID> is empty"),
    ("  <MinSectorCount>100</MinSectorCount>\n  <DevicePlatformIDs><ID>*</ID></DevicePlatformIDs>\n"
     "  <DevicePlatformID>a</DevicePlatformID>\n", [5], "are both present"),
    ("  <MinSectorCount>100</MinSectorCount>\n  <DevicePlatformIDs><ID>*</ID></DevicePlatformIDs>\n"
     "  <CompressedPartitions>\n    <Name>MainOS</Name>\n    <Name>mainos</Name>\n"
     "  </CompressedPartitions>\n",
     [7], "<Name> mainos is listed twice in <CompressedPartitions> (first at line 6)"),
    ("  <MinSectorCount>100</MinSectorCount>\n  <DevicePlatformIDs><Id>*</Id></DevicePlatformIDs>\n", [4],
     "unknown element <Id> in <DevicePlatformIDs>"),
    ("  <MinSectorCount>100</MinSectorCount>\n  <DevicePlatformIDs><ID>*</ID></DevicePlatformIDs>\n"
     "  <MinSectors>1</MinSectors>\n", [5], "unknown element <MinSectors> in <OEMDevicePlatform>"),
])
def test_platform_rules(body: str, lines: list[int], message: str) -> None:
    with pytest.raises(InputError) as exc:
        parse_device_platform(platform_xml(body), path="OEMDevicePlatform.xml")
    errs = errors_of(exc)
    assert [e.line for e in errs] == lines, [str(e) for e in errs]
    assert message in errs[0].what, errs[0].what
    assert all(e.path == "OEMDevicePlatform.xml" and e.hint for e in errs)
