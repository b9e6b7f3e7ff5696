"""GPT writer/reader (UEFI §5.2–5.3), checked by sgdisk in both directions."""

from __future__ import annotations

import re
import subprocess
import uuid
import zlib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from iotbuild.errors import FormatError, InputError
from iotbuild.formats.gpt import (ATTR_NO_DRIVE_LETTER, ATTR_READ_ONLY, BASIC_DATA_TYPE, ESP_TYPE, GptHeader,
                                  GptLayout, GptPartition, derive_guid, protective_mbr, read_gpt, write_gpt)
from tests.conftest import require_tool

MIB = 1 << 20


def sample_layout(size: int = 64 * MIB, sector_size: int = 512, product: str = "Contoso.Sample") -> GptLayout:
    total = size // sector_size
    per_mib = MIB // sector_size
    return GptLayout(derive_guid(product), sector_size, total, (
        GptPartition("EFIESP", ESP_TYPE, per_mib, 17 * per_mib - 1, derive_guid(product, "EFIESP")),
        GptPartition("MainOS", BASIC_DATA_TYPE, 17 * per_mib, 49 * per_mib - 1,
                     derive_guid(product, "MainOS"), ATTR_NO_DRIVE_LETTER),
        GptPartition("Data", BASIC_DATA_TYPE, 49 * per_mib, total - 2 - 16384 // sector_size,
                     derive_guid(product, "Data"), ATTR_READ_ONLY | ATTR_NO_DRIVE_LETTER),
    ))


def written(tmp_path: Path, layout: GptLayout, name: str = "disk.raw") -> Path:
    path = tmp_path / name
    with open(path, "w+b") as f:
        write_gpt(f, layout)
    return path


def common(cls, data: bytes, obj) -> None:
    """construct's common(): parse == obj, build == data, size == LAYOUT.size."""
    assert cls.from_bytes(data) == obj
    assert obj.to_bytes() == data
    assert len(data) == cls.LAYOUT.size


def test_partition_entry_round_trip() -> None:
    unique = uuid.UUID("11111111-0000-0000-0000-000000000001")
    data = (ESP_TYPE.bytes_le + unique.bytes_le + (2048).to_bytes(8, "little")
            + (133119).to_bytes(8, "little")
            + (1 << 63).to_bytes(8, "little") + "EFIESP".encode("utf-16-le").ljust(72, b"\0"))
    assert data[:4] == bytes.fromhex("2873 2ac1".replace(" ", ""))  # mixed-endian first field
    common(GptPartition, data, GptPartition("EFIESP", ESP_TYPE, 2048, 133119, unique, 1 << 63))
    assert GptPartition.from_bytes(bytes(128)) is None


def test_header_round_trip_and_crc() -> None:
    header = GptHeader(1, 131071, 34, 131038, uuid.UUID(int=7), 2, entries_crc=0x12345678)
    data = header.to_bytes()
    assert data[:8] == b"EFI PART" and len(data) == 92
    body = bytearray(data)
    body[16:20] = bytes(4)
    assert int.from_bytes(data[16:20], "little") == zlib.crc32(body)
    common(GptHeader, data, header)


u64 = st.integers(0, 2**64 - 1)
guids = st.uuids().filter(lambda u: u.int != 0)


@settings(max_examples=100, deadline=None)
@given(part=st.builds(GptPartition, st.text(st.characters(codec="utf-8", exclude_characters="\0",
                                                          max_codepoint=0xFFFF), max_size=36),
                      guids, u64, u64, st.uuids(), u64).filter(lambda p: p.last_lba >= p.first_lba),
       header=st.builds(GptHeader, u64, u64, u64, u64, st.uuids(), u64, st.just(128), st.just(128),
                        st.integers(0, 2**32 - 1)))
def test_records_round_trip_property(part: GptPartition, header: GptHeader) -> None:
    assert GptPartition.from_bytes(part.to_bytes()) == part
    assert GptHeader.from_bytes(header.to_bytes()) == header


def test_protective_mbr() -> None:
    mbr = protective_mbr(131072)
    assert len(mbr) == 512 and mbr[510:] == b"\x55\xaa"
    assert mbr[446 + 4] == 0xEE
    assert int.from_bytes(mbr[446 + 8:446 + 12], "little") == 1
    assert int.from_bytes(mbr[446 + 12:446 + 16], "little") == 131071
    assert int.from_bytes(protective_mbr(1 << 40)[446 + 12:446 + 16], "little") == 0xFFFFFFFF


def test_derive_guid_is_deterministic() -> None:
    assert derive_guid("P", "EFIESP") == derive_guid("P", "EFIESP")
    assert len({derive_guid("P"), derive_guid("P", "EFIESP"), derive_guid("Q", "EFIESP")}) == 3
    assert derive_guid("P").version == 5


@pytest.mark.parametrize("sector_size", [512, 4096])
def test_round_trip(tmp_path: Path, sector_size: int) -> None:
    layout = sample_layout(sector_size=sector_size)
    path = written(tmp_path, layout)
    assert path.stat().st_size == 64 * MIB
    with open(path, "rb") as f:
        assert read_gpt(f) == layout
    # The same inputs give the same bytes.
    assert written(tmp_path, layout, "again.raw").read_bytes() == path.read_bytes()


def test_partition_contents_untouched(tmp_path: Path) -> None:
    layout = sample_layout()
    path = tmp_path / "disk.raw"
    marker = b"partition data " * 100
    with open(path, "w+b") as f:
        f.truncate(64 * MIB)
        f.seek(MIB)
        f.write(marker)
        write_gpt(f, layout)
        f.seek(MIB)
        assert f.read(len(marker)) == marker


def test_layout_checks() -> None:
    layout = sample_layout()
    esp, main, data = layout.partitions
    overlapping = GptLayout(layout.disk_guid, 512, layout.total_sectors,
                            (esp, GptPartition("X", BASIC_DATA_TYPE, esp.last_lba, esp.last_lba + 10,
                                                     uuid.uuid4())))
    with pytest.raises(InputError, match="overlap"):
        overlapping.check()
    with pytest.raises(InputError, match="outside the usable"):
        GptLayout(layout.disk_guid, 512, layout.total_sectors, (data.__class__(
            "Big", BASIC_DATA_TYPE, 34, layout.total_sectors - 1, uuid.uuid4()),)).check()
    with pytest.raises(InputError, match="longer than 36"):
        GptLayout(layout.disk_guid, 512, layout.total_sectors,
                  (GptPartition("N" * 37, BASIC_DATA_TYPE, 2048, 4095, uuid.uuid4()),)).check()
    with pytest.raises(InputError, match="sector size"):
        GptLayout(layout.disk_guid, 1024, layout.total_sectors, ()).check()


@pytest.mark.parametrize(("offset", "what"), [
    (512 + 40, "primary GPT HeaderCRC32"),           # primary header body
    (1024 + 130, "primary GPT PartitionEntryArrayCRC32"),  # primary entry array
    (64 * MIB - 512 + 60, "backup GPT HeaderCRC32"),  # backup header body
    (64 * MIB - 512 - 16384 + 5, "backup GPT PartitionEntryArrayCRC32"),
    (510, "MBR signature"),
])
def test_corruption_is_reported_with_offset(tmp_path: Path, offset: int, what: str) -> None:
    path = written(tmp_path, sample_layout())
    with open(path, "r+b") as f:
        f.seek(offset)
        byte = f.read(1)
        f.seek(offset)
        f.write(bytes([byte[0] ^ 0xFF]))
        f.seek(0)
        with pytest.raises(FormatError, match=re.escape(what)) as info:
            read_gpt(f)
    assert info.value.offset is not None
    assert info.value.offset <= offset < info.value.offset + 16384 + 512


# --- outside checks: sgdisk -----------------------------------------------------------------------------
def sgdisk(*args: str | Path) -> str:
    require_tool("sgdisk")
    proc = subprocess.run(["sgdisk", *map(str, args)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def test_sgdisk_verifies_our_disk(tmp_path: Path) -> None:
    out = sgdisk("-v", written(tmp_path, sample_layout()))
    assert "No problems found" in out


def test_sgdisk_lists_our_partitions(tmp_path: Path) -> None:
    layout = sample_layout()
    path = written(tmp_path, layout)
    out = sgdisk("-p", path)
    assert f"Disk identifier (GUID): {str(layout.disk_guid).upper()}" in out
    rows = re.findall(r"^\s+(\d+)\s+(\d+)\s+(\d+)\s+\S+ \S+\s+(\w{4})\s+(\S+)$", out, re.M)
    assert rows == [(str(i), str(p.first_lba), str(p.last_lba), code, p.name)
                    for i, (p, code) in enumerate(zip(layout.partitions, ("EF00", "0700", "0700")), 1)]
    info = sgdisk("-i", "3", path)
    assert f"Partition unique GUID: {str(layout.partitions[2].unique_guid).upper()}" in info
    assert "Attribute flags: 9000000000000000" in info


def test_we_read_a_disk_made_by_sgdisk(tmp_path: Path) -> None:
    path = tmp_path / "sgdisk.raw"
    with open(path, "wb") as f:
        f.truncate(16 * MIB)
    sgdisk("-o", "-U", "11111111-2222-3333-4444-555555555555",
           "-n", "1:2048:+1M", "-t", "1:ef00", "-c", "1:EFIESP",
           "-u", "1:11111111-0000-0000-0000-000000000001",
           "-n", "2:0:0", "-t", "2:0700", "-c", "2:MainOS", "-A", "2:set:63", path)
    with open(path, "rb") as f:
        layout = read_gpt(f)
    assert layout.disk_guid == uuid.UUID("11111111-2222-3333-4444-555555555555")
    assert layout.sector_size == 512 and layout.total_sectors == 16 * MIB // 512
    esp, main = layout.partitions
    assert (esp.name, esp.type_guid, esp.first_lba, esp.last_lba) == ("EFIESP", ESP_TYPE, 2048, 4095)
    assert esp.unique_guid == uuid.UUID("11111111-0000-0000-0000-000000000001")
    assert (main.name, main.type_guid, main.first_lba, main.attributes) == (
        "MainOS", BASIC_DATA_TYPE, 4096, ATTR_NO_DRIVE_LETTER)
    # Our writer reproduces sgdisk's table byte for byte (same layout in, same GPT sectors out).
    ours = written(tmp_path, layout, "ours.raw").read_bytes()
    theirs = path.read_bytes()
    assert ours[512:34 * 512] == theirs[512:34 * 512]
    assert ours[-33 * 512:] == theirs[-33 * 512:]
