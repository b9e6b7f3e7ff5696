"""FFU writer, reader, verifier and FFU → raw (ffu.md), with sgdisk/osslsigncode/openssl as outside checks.

No independent FFU reader can be installed here (ffu.md §6: nothing in Debian 12 or on PyPI; img2ffu needs
.NET 8), so the outside checks cover the pieces: the GPT of the rebuilt disk (sgdisk), the catalog
(osslsigncode, openssl) and the chunk hashes (hashlib over raw file slices, independent of the reader).
"""

from __future__ import annotations

import hashlib
import io
import random
import subprocess
import tracemalloc
import uuid
from datetime import datetime, timezone
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from iotbuild.errors import FormatError, InputError, SigningError
from iotbuild.formats import asn1_ms as ms
from iotbuild.formats.catalog import FLAT_SIP_GUID, read_catalog
from iotbuild.formats.ffu import (BlockDataEntry, DiskAccessMethod, DiskLocation, FfuLayoutInfo, FfuPartition,
                                  ImageHeader, SecurityHeader, StoreHeader, build_manifest, ffu_to_raw,
                                  build_ffu_catalog, parse_manifest, read_ffu, verify_ffu, verify_ffu_catalog,
                                  write_ffu)
from iotbuild.formats.ffu.catalog import ffu_catalog_ctl
from iotbuild.formats.gpt import BASIC_DATA_TYPE, ESP_TYPE, GptHeader, GptPartition, read_gpt, write_gpt
from tests.conftest import require_tool
from tests.formats.test_gpt import sample_layout
from tests.signing.helpers import (SIGNING_TIME, cert_dir, openssl_asn1parse,  # noqa: F401
                                   osslsigncode_at_least, osslsigncode_verify, root_cert, signer, test_pki)

MIB = 1 << 20
BLOCK = 131072
PLATFORM = "Contoso.Sample.Board"


def common(cls, data: bytes, obj) -> None:
    assert cls.from_bytes(data) == obj
    assert obj.to_bytes() == data


# --- records ---------------------------------------------------------------------------------------------
def test_security_header() -> None:
    data = bytes.fromhex("20000000") + b"SignedImage " + bytes.fromhex("80000000 0c800000 48010000 e00c0000")
    common(SecurityHeader, data, SecurityHeader(128, 328, 3296))
    assert len(data) == 32
    with pytest.raises(FormatError, match="dwAlgId"):
        SecurityHeader.from_bytes(data[:0x14] + bytes(4) + data[0x18:])


def test_image_header() -> None:
    data = bytes.fromhex("18000000") + b"ImageFlash  " + bytes.fromhex("e8030000 80000000")
    common(ImageHeader, data, ImageHeader(1000, 128))
    with pytest.raises(FormatError, match="Signature") as info:
        ImageHeader.from_bytes(data.replace(b"Flash  ", b"Flash X"))
    assert info.value.offset == 4


def test_store_header_v1_and_v2() -> None:
    v1 = StoreHeader(1, ("A.B", "C"), BLOCK, 101, 1624, (0, 1), (1, 1), (99, 2))
    raw = v1.to_bytes()
    assert len(raw) == 248 == v1.size
    assert raw[4:12] == bytes.fromhex("0100 0000 0200 0000".replace(" ", ""))
    assert raw[12:12 + 7] == b"A.B\0C\0\0" and raw[203] == 0
    common(StoreHeader, raw, v1)
    path = "VenHw(B615F1F5-5088-43CD-809C-A16E52487D00)"
    v2 = StoreHeader(2, ("A.B",), BLOCK, 3, 48, payload_size=3 * BLOCK, device_path=path)
    raw = v2.to_bytes()
    assert len(raw) == 348 == v2.size  # ffu.md §2.5: 43 characters -> 348 bytes
    assert raw[248:262] == (1).to_bytes(2, "little") + (1).to_bytes(2, "little") + (3 * BLOCK).to_bytes(
        8, "little") + (43).to_bytes(2, "little")
    common(StoreHeader, raw, v2)


def test_block_data_entry() -> None:
    entry = BlockDataEntry((DiskLocation(DiskAccessMethod.DISK_BEGIN, 0),
                            DiskLocation(DiskAccessMethod.DISK_END, 0)))
    data = bytes.fromhex("02000000 01000000 00000000 00000000 02000000 00000000".replace(" ", ""))
    common(BlockDataEntry, data, entry)
    assert entry.size == 24
    with pytest.raises(FormatError, match="dwBlockCount"):
        BlockDataEntry.from_bytes(data[:4] + (2).to_bytes(4, "little") + data[8:])
    with pytest.raises(FormatError, match="dwDiskAccessMethod 1 unknown"):  # DISK_SEQ is rejected
        BlockDataEntry.from_bytes(data[:8] + (1).to_bytes(4, "little") + data[12:])
    assert DiskLocation(DiskAccessMethod.DISK_END, 0).byte_offset(64 * MIB, BLOCK) == 64 * MIB - BLOCK


u32 = st.integers(0, 2**32 - 1)
tables = st.tuples(u32, u32)
ids = st.lists(st.text("ABCxyz.09_-", min_size=1, max_size=20), min_size=1, max_size=8)


@settings(max_examples=100, deadline=None)
@given(major=st.sampled_from([1, 2]), ids=ids, nums=st.tuples(u32, u32, u32, u32, u32, u32),
       t=st.tuples(tables, tables, tables), store=st.tuples(st.integers(1, 9), st.integers(1, 9)),
       payload=st.integers(0, 2**64 - 1), path=st.text(max_size=60))
def test_store_header_property(major, ids, nums, t, store, payload, path) -> None:
    v2 = dict(store_count=store[0], store_index=store[1], payload_size=payload, device_path=path)
    header = StoreHeader(major, tuple(ids), *nums[:3], *t, nums[3], nums[4], 0, **(v2 if major == 2 else {}))
    assert StoreHeader.from_bytes(header.to_bytes()) == header
    assert len(header.to_bytes()) == header.size


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(list(DiskAccessMethod)), u32), min_size=1, max_size=4))
def test_block_data_entry_property(locations) -> None:
    entry = BlockDataEntry(tuple(DiskLocation(m, i) for m, i in locations))
    assert BlockDataEntry.from_bytes(entry.to_bytes()) == entry
    assert len(entry.to_bytes()) == entry.size


# --- manifest --------------------------------------------------------------------------------------------
FFU_MD_MANIFEST = """\
[FullFlash]
OSVersion         = 10.0.22621.1
AntiTheftVersion  = 1.1
Description       = Update on: 2025-03-27 23:32:03Z::


StateSeparationLevel = 0
UEFI                 = True
Version           = 2.0
DevicePlatformId0 = My.Super.Plat.ID

[StoragePool]
Name = OSPool

[Store]
OnlyAllocateDefinedGptEntries = False
StoreId                       = {5a585bae-900b-41b5-b736-a4cecffc34b4}
IsMainOSStore                 = False
DevicePath                    = VenHw(860845C1-BE09-4355-8BC1-30D64FF8E63A)
StoreType                     = Default
MinSectorCount                = 7634944
SectorSize                    = 512

[Partition]
UsedSectors     = 65536
Type            = {C12A7328-F81F-11D2-BA4B-00A0C93EC93B}
TotalSectors    = 65536
RequiredToFlash = True
Name            = EFIESP

[Partition]
UsedSectors     = 7503872
Type            = {EBD0A0A2-B9E5-4433-87C0-68B6B72699C7}
TotalSectors    = 7503872
RequiredToFlash = True
Name            = MainOS

""".replace("\n", "\r\n")


def test_manifest_text_is_exactly_ffu_md_4_3() -> None:
    info = FfuLayoutInfo(
        (FfuPartition("EFIESP", ESP_TYPE, 2048, 2048 + 65536 - 1),
         FfuPartition("MainOS", BASIC_DATA_TYPE, 67584, 67584 + 7503872 - 1)),
        ("My.Super.Plat.ID",), uuid.UUID("5a585bae-900b-41b5-b736-a4cecffc34b4"), os_version="10.0.22621.1",
        device_path="VenHw(860845C1-BE09-4355-8BC1-30D64FF8E63A)")
    text = build_manifest(info, sector_size=512, min_sector_count=7634944,
                          when=datetime(2025, 3, 27, 23, 32, 3, tzinfo=timezone.utc))
    assert text.decode("ascii") == FFU_MD_MANIFEST
    parsed = parse_manifest(text)
    assert parsed.full_flash["Version"] == "2.0"
    assert parsed.full_flash["Description"] == "Update on: 2025-03-27 23:32:03Z::\n\n"
    assert [p["Name"] for p in parsed.stores[0].partitions] == ["EFIESP", "MainOS"]
    assert parsed.stores[0].sector_size == 512 and parsed.stores[0].min_sector_count == 7634944


def test_manifest_reader_checks() -> None:
    with pytest.raises(FormatError, match="Version"):
        parse_manifest(b"[FullFlash]\r\nVersion = 1.0\r\n[Store]\r\nSectorSize = 512\r\n")
    with pytest.raises(FormatError, match="SectorSize"):
        parse_manifest(b"[FullFlash]\r\nVersion = 2.0\r\n[Store]\r\n")
    with pytest.raises(FormatError, match="not ASCII") as info:
        parse_manifest(b"[FullFlash]\r\n\xff", offset=100)
    assert info.value.offset == 113
    with pytest.raises(InputError, match="platform ID"):
        FfuLayoutInfo((), (), uuid.UUID(int=0))


# --- a sample disk ---------------------------------------------------------------------------------------
def make_disk(path: Path, size: int = 64 * MIB, *, seed: int = 1) -> FfuLayoutInfo:
    """A GPT disk (EFIESP, MainOS, Data) with data in a few blocks: partition starts, the middle of MainOS,
    a block straddling EFIESP/MainOS, and the last sectors of Data (inside the backup-GPT block)."""
    layout = sample_layout(size)
    rnd = random.Random(seed)
    with open(path, "w+b") as f:
        write_gpt(f, layout)
        for p in layout.partitions:
            f.seek(p.first_lba * 512)
            f.write(rnd.randbytes(3 * BLOCK + 100))
        f.seek(layout.partitions[1].first_lba * 512 - 1000)
        f.write(b"\x01" * 2000)
        f.seek(layout.partitions[1].first_lba * 512 + 7 * MIB + 12345)
        f.write(b"x")
        f.seek((layout.partitions[2].last_lba + 1) * 512 - 4096)
        f.write(b"end of Data" * 100)
    return FfuLayoutInfo.from_gpt(layout, platform_ids=[PLATFORM])


@pytest.fixture
def disk(tmp_path: Path) -> tuple[Path, FfuLayoutInfo]:
    path = tmp_path / "disk.raw"
    return path, make_disk(path)


def build(disk_path: Path, info: FfuLayoutInfo, out_path: Path, signer, **kwargs) -> Path:
    with open(disk_path, "rb") as d, open(out_path, "wb") as out:
        write_ffu(out, d, disk_size=disk_path.stat().st_size, sector_size=512, layout_info=info,
                  signer=signer, signing_time=SIGNING_TIME, **kwargs)
    return out_path


def used_blocks(path: Path) -> set[int]:
    data = path.read_bytes()
    return {i // BLOCK for i in range(0, len(data), BLOCK) if any(data[i:i + BLOCK])}


# --- write, verify, convert back -------------------------------------------------------------------------
@pytest.mark.parametrize("version", ["V1", "V2"])
@pytest.mark.parametrize("plan", ["MS", "compat"])
def test_write_verify_to_raw(tmp_path: Path, disk, signer, root_cert, version: str, plan: str) -> None:
    disk_path, info = disk
    ffu = build(disk_path, info, tmp_path / "Flash.ffu", signer, version=version, plan=plan)
    result = verify_ffu(ffu, [root_cert])
    assert result.signature.chain_trusted
    image = result.image
    store = image.stores[0].header
    assert store.major_version == (1 if version == "V1" else 2)
    assert store.device_path == ("VenHw(B615F1F5-5088-43CD-809C-A16E52487D00)" if version == "V2" else "")
    assert image.file_size % BLOCK == 0 and image.file_size == image.expected_size
    # Only used blocks: every stored DISK_BEGIN data block is a non-zero block of the disk.
    used = used_blocks(disk_path)
    begins = {loc.block_index for e in image.stores[0].descriptors for loc in e.locations
              if loc.method is DiskAccessMethod.DISK_BEGIN}
    total = disk_path.stat().st_size // BLOCK
    assert begins - {0, total - 1} <= used
    assert used <= begins | {total - 1}
    raw = tmp_path / "back.raw"
    assert ffu_to_raw(ffu, raw) == disk_path.stat().st_size
    assert raw.read_bytes() == disk_path.read_bytes()


def test_ms_plan_descriptors(tmp_path: Path, disk, signer) -> None:
    disk_path, info = disk
    image = read_ffu(open(build(disk_path, info, tmp_path / "ms.ffu", signer), "rb"))
    store = image.stores[0]
    entries, h = store.descriptors, store.header
    total = disk_path.stat().st_size // BLOCK
    begin = DiskAccessMethod.DISK_BEGIN
    end = DiskAccessMethod.DISK_END
    # Phase 1: one zero block wiping both ends of the disk.
    assert entries[0].locations == (DiskLocation(begin, 0), DiskLocation(end, 0))
    with open(tmp_path / "ms.ffu", "rb") as f:
        f.seek(store.payload_offset)
        assert f.read(BLOCK) == bytes(BLOCK)
    assert h.initial_table == (0, 1)
    fi, fc = h.flash_only_table
    assert fc == 1 and entries[fi].locations == (DiskLocation(begin, 0),)
    data = [e.locations[0].block_index for e in entries[1:fi]]
    assert data == sorted(data) and 0 not in data
    li, lc = h.final_table
    assert (lc, li + lc) == (2, len(entries))
    assert entries[li].locations == (DiskLocation(begin, 0),)
    assert entries[-1].locations == (DiskLocation(end, 0),)
    assert total - 1 not in data
    assert h.descriptor_count == len(entries) and h.validate_count == 0


def test_compat_plan_descriptors(tmp_path: Path, disk, signer) -> None:
    disk_path, info = disk
    image = read_ffu(open(build(disk_path, info, tmp_path / "c.ffu", signer, plan="compat"), "rb"))
    entries = image.stores[0].descriptors
    indices = [e.locations[0].block_index for e in entries]
    assert all(len(e.locations) == 1 and e.locations[0].method is DiskAccessMethod.DISK_BEGIN
               for e in entries)
    assert indices == sorted(set(indices))
    assert indices[0] == 0 and indices[-1] == disk_path.stat().st_size // BLOCK - 1
    h = image.stores[0].header
    assert (h.initial_table, h.flash_only_table, h.final_table) == ((0, 0), (0, 1), (len(entries), 0))


def test_not_required_partition_goes_to_phase_3(tmp_path: Path, signer, root_cert) -> None:
    disk_path = tmp_path / "disk.raw"
    make_disk(disk_path)
    with open(disk_path, "rb") as f:
        layout = read_gpt(f)
    info = FfuLayoutInfo.from_gpt(layout, platform_ids=[PLATFORM], not_required=["Data"])
    ffu = build(disk_path, info, tmp_path / "Flash.ffu", signer)
    image = verify_ffu(ffu, [root_cert]).image
    store = image.stores[0]
    data_first = layout.find("Data").first_lba * 512 // BLOCK
    fi, _ = store.header.flash_only_table
    li, _ = store.header.final_table
    phase2 = [e.locations[0].block_index for e in store.descriptors[1:fi]]
    phase3 = [e.locations[0].block_index for e in store.descriptors[fi + 1:li]]
    assert phase2 and all(b < data_first for b in phase2)
    assert phase3 and all(b >= data_first for b in phase3)
    # The flash-only GPT lists only the required partitions; its CRCs are valid.
    with open(ffu, "rb") as f:
        f.seek(store.payload_offset + fi * BLOCK)
        block = f.read(BLOCK)
    header = GptHeader.from_bytes(block, 512)
    entries = block[1024:1024 + 16384]
    names = [p.name for i in range(128) if (p := GptPartition.from_bytes(entries, 128 * i))]
    assert names == ["EFIESP", "MainOS"] and header.my_lba == 1
    assert "RequiredToFlash = False" in image.manifest.text
    raw = tmp_path / "back.raw"
    ffu_to_raw(ffu, raw)
    assert raw.read_bytes() == disk_path.read_bytes()  # the final GPT (phase 3) wins


def test_file_layout_and_hash_table_by_hand(tmp_path: Path, disk, signer) -> None:
    """ffu.md §1–2.3 recomputed from raw bytes, without the reader."""
    disk_path, info = disk
    data = build(disk_path, info, tmp_path / "Flash.ffu", signer).read_bytes()
    assert data[4:16] == b"SignedImage " and int.from_bytes(data[0x10:0x14], "little") == 128
    cat, table = int.from_bytes(data[0x18:0x1C], "little"), int.from_bytes(data[0x1C:0x20], "little")
    image_at = -(-(32 + cat + table) // BLOCK) * BLOCK
    assert data[32 + cat + table:image_at] == bytes(image_at - 32 - cat - table)
    assert data[image_at + 4:image_at + 16] == b"ImageFlash  "
    hashes = data[32 + cat:32 + cat + table]
    chunks = (len(data) - image_at) // BLOCK
    assert table == 32 * chunks
    assert all(hashlib.sha256(data[image_at + i * BLOCK:image_at + (i + 1) * BLOCK]).digest()
               == hashes[32 * i:32 * i + 32] for i in range(chunks))
    assert data[image_at + BLOCK:image_at + BLOCK + 4] == bytes(4)  # store header: dwUpdateType 0
    assert data[image_at + BLOCK + 4:image_at + BLOCK + 12] == bytes.fromhex("0100000002000000")
    # The catalog parses as a signed CTL; its only member is not a SHA-256 one (ffu.md §2.2: SHA-1).
    catalog = read_catalog(data[32:32 + cat])
    assert catalog.members == () and catalog.attributes == {}
    assert hashlib.sha1(hashes).digest() in data[32:32 + cat]


# --- damage ----------------------------------------------------------------------------------------------
def flip(path: Path, offset: int) -> None:
    with open(path, "r+b") as f:
        f.seek(offset)
        b = f.read(1)
        f.seek(offset)
        f.write(bytes([b[0] ^ 0x55]))


def test_flipped_payload_byte_names_the_block(tmp_path: Path, disk, signer, root_cert) -> None:
    disk_path, info = disk
    ffu = build(disk_path, info, tmp_path / "Flash.ffu", signer)
    store = read_ffu(open(ffu, "rb")).stores[0]
    flip(ffu, store.payload_offset + 3 * BLOCK + 77)
    disk_block = store.descriptors[3].locations[0].block_index
    wanted = rf"payload block 3 of store 1 \(disk block DISK_BEGIN {disk_block}"
    with pytest.raises(FormatError, match=wanted) as e:
        verify_ffu(ffu, [root_cert])
    assert e.value.offset == store.payload_offset + 3 * BLOCK
    assert e.value.path == str(ffu)


def test_flipped_metadata_byte(tmp_path: Path, disk, signer, root_cert) -> None:
    disk_path, info = disk
    ffu = build(disk_path, info, tmp_path / "Flash.ffu", signer)
    image = read_ffu(open(ffu, "rb"))
    flip(ffu, image.stores[0].offset + BLOCK - 10)  # the zero padding after the write descriptors
    with pytest.raises(FormatError, match=r"metadata chunk 1 \(file offset 0x40000\)"):
        verify_ffu(ffu, [root_cert])


def test_flipped_catalog_byte_fails_the_signature(tmp_path: Path, disk, signer, root_cert) -> None:
    disk_path, info = disk
    ffu = build(disk_path, info, tmp_path / "Flash.ffu", signer)
    image = read_ffu(open(ffu, "rb"))
    flip(ffu, 32 + len(image.catalog) - 20)  # inside the signature value
    with pytest.raises(SigningError, match="signature value does not verify"):
        verify_ffu(ffu, [root_cert])


def test_flipped_hash_table_byte_is_not_in_the_catalog(tmp_path: Path, disk, signer, root_cert) -> None:
    disk_path, info = disk
    ffu = build(disk_path, info, tmp_path / "Flash.ffu", signer)
    image = read_ffu(open(ffu, "rb"))
    flip(ffu, 32 + len(image.catalog) + 40)
    damaged = read_ffu(open(ffu, "rb")).hash_table
    wanted = (rf"catalog does not list the hash table: its first member 'HashTable.blob' holds SHA-1 "
              rf"{hashlib.sha1(image.hash_table).hexdigest()}, but the hash table's SHA-1 is "
              rf"{hashlib.sha1(damaged).hexdigest()}")
    with pytest.raises(SigningError, match=wanted) as e:
        verify_ffu(ffu, [root_cert])
    assert e.value.path == str(ffu) and "rebuild the FFU" in e.value.hint


def test_untrusted_root_fails(tmp_path: Path, disk, signer) -> None:
    from tests.signing.helpers import retail_chain
    disk_path, info = disk
    ffu = build(disk_path, info, tmp_path / "Flash.ffu", signer)
    with pytest.raises(SigningError, match="trusted root"):
        verify_ffu(ffu, [retail_chain().root])


def test_truncated_file(tmp_path: Path, disk, signer) -> None:
    disk_path, info = disk
    ffu = build(disk_path, info, tmp_path / "Flash.ffu", signer)
    with open(ffu, "r+b") as f:
        f.truncate(ffu.stat().st_size - BLOCK)
    with pytest.raises(FormatError, match="headers describe"):
        verify_ffu(ffu)
    with pytest.raises(FormatError, match="not an FFU"):
        read_ffu(io.BytesIO(bytes(64)))


# --- determinism, inputs, memory -------------------------------------------------------------------------
def test_deterministic(tmp_path: Path, disk, signer) -> None:
    disk_path, info = disk
    a = build(disk_path, info, tmp_path / "a.ffu", signer).read_bytes()
    b = build(disk_path, info, tmp_path / "b.ffu", signer).read_bytes()
    assert a == b
    # The catalog too (the list identifier is derived from the hash table, thisUpdate is the signing time).
    image = read_ffu(io.BytesIO(a))
    assert build_ffu_catalog(image.hash_table, signer=signer, signing_time=SIGNING_TIME) == image.catalog
    other = build_ffu_catalog(image.hash_table[:-1] + b"\0", signer=signer, signing_time=SIGNING_TIME)
    assert other != image.catalog
    # Everything after the security region depends only on the disk and the layout: pin it.
    assert hashlib.sha256(a[image.image_offset:]).hexdigest() == (
        "4334226aba6d440eaca97142f79f63a20a02765bf7b0eef9a0fa3664b8876b56")


def test_bad_inputs(tmp_path: Path, disk, signer) -> None:
    disk_path, info = disk
    with open(disk_path, "rb") as d:
        with pytest.raises(InputError, match="not a multiple of the FFU block size"):
            write_ffu(io.BytesIO(), d, disk_size=64 * MIB - 512, sector_size=512, layout_info=info,
                      signer=signer, signing_time=SIGNING_TIME)
        with pytest.raises(InputError, match="block size"):
            write_ffu(io.BytesIO(), d, disk_size=64 * MIB, sector_size=512, layout_info=info,
                      signer=signer, signing_time=SIGNING_TIME, block_size=100000)
        with pytest.raises(FormatError, match="less than the disk size"):
            write_ffu(io.BytesIO(), d, disk_size=128 * MIB, sector_size=512, layout_info=info,
                      signer=signer, signing_time=SIGNING_TIME)


def test_smaller_blocks_and_file_objects(tmp_path: Path, disk, signer, root_cert) -> None:
    """64 KiB blocks: two wipe entries (131072/BLOCK, §3.4); the disk given as a BytesIO (no fileno)."""
    disk_path, info = disk
    out = tmp_path / "small.ffu"
    with open(out, "wb") as f:
        write_ffu(f, io.BytesIO(disk_path.read_bytes()), disk_size=64 * MIB, sector_size=512,
                  layout_info=info, signer=signer, signing_time=SIGNING_TIME, block_size=65536)
    image = verify_ffu(out, [root_cert]).image
    assert image.stores[0].header.initial_table == (0, 2)
    assert image.stores[0].descriptors[1].locations == (DiskLocation(DiskAccessMethod.DISK_BEGIN, 1),
                                                        DiskLocation(DiskAccessMethod.DISK_END, 1))
    ffu_to_raw(out, tmp_path / "back.raw")
    assert (tmp_path / "back.raw").read_bytes() == disk_path.read_bytes()


def test_bounded_memory_on_a_sparse_disk(tmp_path: Path, signer, root_cert) -> None:
    disk_path = tmp_path / "big.raw"
    info = make_disk(disk_path, 256 * MIB)
    with open(disk_path, "r+b") as f:  # a few MiB of data in the middle of Data
        f.seek(100 * MIB)
        f.write(random.Random(3).randbytes(8 * MIB))
    tracemalloc.start()
    try:
        ffu = build(disk_path, info, tmp_path / "big.ffu", signer)
        verify_ffu(ffu, [root_cert])
        ffu_to_raw(ffu, tmp_path / "back.raw")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 32 * MIB, f"peak {peak / MIB:.1f} MiB"
    back = tmp_path / "back.raw"
    assert back.stat().st_blocks * 512 < 64 * MIB  # written sparsely
    with open(back, "rb") as a, open(disk_path, "rb") as b:
        while chunk := a.read(4 * MIB):
            assert chunk == b.read(4 * MIB)


def test_unpartitioned_data_is_not_stored(tmp_path: Path, disk, signer) -> None:
    disk_path, info = disk
    with open(disk_path, "r+b") as f:  # the gap before EFIESP (block 4 of the first MiB)
        f.seek(4 * BLOCK)
        f.write(b"stray")
    with open(disk_path, "rb") as d:
        result = write_ffu(io.BytesIO(), d, disk_size=64 * MIB, sector_size=512, layout_info=info,
                           signer=signer, signing_time=SIGNING_TIME)
    assert result.unpartitioned_blocks == 1


# --- outside checks --------------------------------------------------------------------------------------
def test_sgdisk_verifies_the_rebuilt_disk(tmp_path: Path, disk, signer) -> None:
    require_tool("sgdisk")
    disk_path, info = disk
    raw = tmp_path / "back.raw"
    ffu_to_raw(build(disk_path, info, tmp_path / "Flash.ffu", signer), raw)
    proc = subprocess.run(["sgdisk", "-v", str(raw)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "No problems found" in proc.stdout, proc.stdout


def test_outside_tools_check_the_catalog(tmp_path: Path, disk, signer, test_pki) -> None:
    """ffu.md §2.2/§6: openssl asn1parse shows the member tag, sha1 and SHA-1(hash table); osslsigncode
    verifies the signature of the extracted catalog against the test root."""
    disk_path, info = disk
    data = build(disk_path, info, tmp_path / "Flash.ffu", signer).read_bytes()
    cat = int.from_bytes(data[0x18:0x1C], "little")
    table = data[32 + cat:32 + cat + int.from_bytes(data[0x1C:0x20], "little")]
    asn1 = openssl_asn1parse(data[32:32 + cat], tmp_path)
    tag = "HashTable.blob".encode("utf-16-le").hex().upper() + "0000"
    assert f"[HEX DUMP]:{tag}" in asn1
    assert ":1.3.6.1.4.1.311.12.1.2" in asn1 and ":1.3.6.1.4.1.311.12.1.3" not in asn1
    assert ":1.3.6.1.4.1.311.12.2.2" in asn1 and ":sha1" in asn1
    assert f"[HEX DUMP]:{hashlib.sha1(table).hexdigest().upper()}" in asn1
    assert hashlib.sha256(table).hexdigest().upper() not in asn1
    if not osslsigncode_at_least(2, 8):
        pytest.skip("osslsigncode < 2.8 does not verify catalogs")
    (tmp_path / "catalog.der").write_bytes(data[32:32 + cat])
    result = osslsigncode_verify(tmp_path / "catalog.der", test_pki.root)
    assert result.returncode == 0 and "Signature verification: ok" in result.output, result.output
    # A flipped byte inside the signed content breaks osslsigncode's check too.
    bad = bytearray(data[32:32 + cat])
    at = bytes(bad).index(hashlib.sha1(table).digest())
    bad[at] ^= 0x55
    (tmp_path / "bad.der").write_bytes(bytes(bad))
    assert osslsigncode_verify(tmp_path / "bad.der", test_pki.root).returncode != 0


# --- the catalog, as Microsoft makes and checks it (ffu.md §2.2) -----------------------------------------
def test_catalog_is_microsoft_shaped(tmp_path: Path, disk, signer, root_cert) -> None:
    disk_path, info = disk
    ffu = build(disk_path, info, tmp_path / "Flash.ffu", signer)
    image = read_ffu(open(ffu, "rb"))
    sha1 = hashlib.sha1(image.hash_table).digest()
    content_info = ms.ContentInfo.load(image.catalog)
    signed = content_info["content"]
    assert signed["encap_content_info"]["content_type"].dotted == ms.CTL_OID == "1.3.6.1.4.1.311.10.1"
    assert len(signed["signer_infos"]) == 1
    ctl = signed["encap_content_info"]["content"]
    assert [o.dotted for o in ctl["subject_usage"]] == ["1.3.6.1.4.1.311.12.1.1"]
    assert len(ctl["list_identifier"].native) == 16
    assert ctl["this_update"].native == SIGNING_TIME
    # CatalogVersion 1: subjectAlgorithm "catalog list member" (…12.1.2) with NULL parameters.
    assert ctl["subject_algorithm"]["algorithm"].dotted == "1.3.6.1.4.1.311.12.1.2"
    assert ctl["subject_algorithm"]["parameters"].dump() == b"\x05\x00"
    assert not ctl["extensions"].native  # the CDF has no catalog attributes
    (member,) = list(ctl["trusted_subjects"])
    assert member["subject_identifier"].native == b"H\0a\0s\0h\0T\0a\0b\0l\0e\0.\0b\0l\0o\0b\0\0\0"
    attrs = {a["type"].dotted: a["values"] for a in member["subject_attributes"]}
    assert set(attrs) == {"1.3.6.1.4.1.311.2.1.4", "1.3.6.1.4.1.311.12.2.2"}
    (indirect,) = list(attrs["1.3.6.1.4.1.311.2.1.4"])
    assert indirect["data"]["type"].dotted == "1.3.6.1.4.1.311.2.1.25"
    assert indirect["data"]["value"].dump() == bytes.fromhex("a2028000")  # [2]{[0]{}}: empty file link
    assert indirect["message_digest"]["digest_algorithm"]["algorithm"].dotted == "1.3.14.3.2.26"  # sha1
    assert indirect["message_digest"]["digest_algorithm"]["parameters"].dump() == b"\x05\x00"
    assert indirect["message_digest"]["digest"].native == sha1
    # Microsoft's GetCatalogHash: the last 20 bytes of the first member's encoded indirect data.
    assert indirect.dump()[-20:] == sha1
    (member_info,) = list(attrs["1.3.6.1.4.1.311.12.2.2"])
    parsed = ms.CatalogMemberInfo.load(member_info.dump())
    assert parsed["subject_guid"].native == FLAT_SIP_GUID == "{DE351A42-8E59-11D0-8C47-00C04FC295EE}"
    assert parsed["cert_version"].native == 0x0200
    # The verifier reports what it checked.
    result = verify_ffu(ffu, [root_cert])
    assert result.catalog.member_tag == "HashTable.blob" and result.catalog.member_hash == sha1
    assert result.signature.chain_trusted


def test_unsigned_catalog_is_the_ffu_md_template() -> None:
    """Our CTL in an unsigned SignedData (no certificates, no signers) is ffu.md §2.2's 328-byte template:
    same length, same element offsets, SHA-1 at 206..226, and equal to the template outside the list
    identifier (65+2..83) and the UTCTime (83+2..98)."""
    table = hashlib.sha256(b"table").digest() * 103
    when = datetime(2020, 1, 10, 12, 12, 27, tzinfo=timezone.utc)  # the template's UTCTime 200110121227Z
    ctl = ffu_catalog_ctl(table, this_update=when)
    signed = ms.SignedData({"version": "v1", "digest_algorithms": [], "signer_infos": [],
                            "encap_content_info": {"content_type": ms.CTL_OID, "content": ctl}})
    der = ms.ContentInfo({"content_type": "signed_data", "content": signed}).dump()
    assert len(der) == 328
    assert der[206:226] == hashlib.sha1(table).digest()
    assert der[120:152] == bytes.fromhex("041e") + "HashTable.blob".encode("utf-16-le") + bytes(2)
    assert der[83:98] == b"\x17\x0d200110121227Z"
    template_head = bytes.fromhex(
        "30820144 06092a864886f70d010702 a0820135 30820131 020101 3100 30820126 06092b0601040182370a01"
        "a0820117 30820113 300c060a2b060104018237 0c0101 0410".replace(" ", ""))
    assert der[:67] == template_head
    tail = bytes.fromhex(
        "300e060a2b0601040182370c0102 0500 3081d1 3081ce 041e".replace(" ", "")) + \
        "HashTable.blob".encode("utf-16-le") + bytes(2) + bytes.fromhex(
        "3181ab 3045 060a2b06010401823702 0104 3137 3035 3010 060a2b06010401823702 0119 a202 8000"
        "3021 3009 06052b0e03021a 0500 0414".replace(" ", ""))
    assert der[98:206] == tail
    member_info = "{DE351A42-8E59-11D0-8C47-00C04FC295EE}".encode("utf-16-be")
    assert der[226:] == bytes.fromhex("3062 060a2b0601040182370c0202 3154 3052 1e4c".replace(" ", "")) + \
        member_info + bytes.fromhex("020202003100")


def test_catalog_check_is_microsofts(signer, root_cert) -> None:
    table = bytes(range(256)) * 4
    catalog = build_ffu_catalog(table, signer=signer, signing_time=SIGNING_TIME)
    checked = verify_ffu_catalog(catalog, table, [root_cert])
    assert checked.member_hash == hashlib.sha1(table).digest() and checked.signature.chain_trusted
    with pytest.raises(SigningError, match="does not list the hash table"):
        verify_ffu_catalog(catalog, table[:-1], [root_cert])
    with pytest.raises(FormatError, match="does not contain a catalog"):
        verify_ffu_catalog(b"", table)
