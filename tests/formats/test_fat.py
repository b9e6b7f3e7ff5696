"""FAT32 images from a staged folder, checked with fsck.fat and read back with mtools."""

from __future__ import annotations

import hashlib
import os
import random
import re
import shutil
import struct
import subprocess
from pathlib import Path

import pytest
from iotbuild.errors import InputError, ToolError
from iotbuild.formats import fat
from iotbuild.formats.fat import FsInfo, build_fat32, capacity_error, default_cluster_size

from tests.conftest import require_tool

MIB = 1 << 20
EPOCH = 1700000000            # 2023-11-14 22:13:20 UTC
ESP_SIZE = 131072 * 512       # the sample board's EFIESP: 64 MiB


def make_tree(root: Path, *, seed: int = 1, order: int = 1) -> dict[str, bytes]:
    """A staged ESP-like folder; ``order`` = -1 writes it in reverse, to show that order does not matter."""
    rnd = random.Random(seed)
    files = {
        "EFI/Boot/bootx64.efi": rnd.randbytes(150_000),
        "EFI/Microsoft/Boot/BCD": rnd.randbytes(16384),
        "EFI/Microsoft/Boot/bootmgfw.efi": rnd.randbytes(1_200_000),
        "EFI/Microsoft/Boot/en-US/bootmgfw.efi.mui": rnd.randbytes(3000),
        "EFI/Microsoft/Boot/Resources/A Rather Long File Name With Spaces.Resource.txt": b"long\n",
        "loader/entries/smoke.conf": b"title Smoke\nlinux /vmlinuz\n",
        "MixedCase.TXT": b"Mixed\n",
        "lower.txt": b"lower\n",
        "UPPER.TXT": b"UPPER\n",
        "Ünïcödé näme.txt": "ü\n".encode(),
        "[brackets]/in [name].txt": b"glob characters\n",
        "empty.bin": b"",
    }
    for i in range(40):   # enough long names to take several clusters of directory entries
        files[f"many/Entry number {i:03d} with a long name.dat"] = rnd.randbytes(rnd.randint(0, 3000))
    items = sorted(files.items())[::order]
    for rel, data in items:
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
        os.utime(p, (rnd.randint(0, 2**31), rnd.randint(0, 2**31)))
    (root / "EFI/Microsoft/Recovery").mkdir(parents=True)
    (root / "empty dir").mkdir()
    return files


def build(tree: Path, out: Path, **kw) -> FsInfo:
    args = {"size": ESP_SIZE, "label": "EFIESP", "hidden_sectors": 2048, "epoch": EPOCH,
            "volume_id": 0x1234ABCD, "name": "EFIESP"}
    args.update(kw)
    return build_fat32(tree, out, **args)


def mtools(*argv: str) -> bytes:
    env = {**os.environ, "MTOOLSRC": "/dev/null", "LC_ALL": "C.UTF-8"}
    return subprocess.run(list(argv), capture_output=True, check=True, env=env).stdout


def dos(rel: str) -> str:
    return "::/" + rel.replace("[", "[[]")


@pytest.fixture
def tree(tmp_path: Path) -> tuple[Path, dict[str, bytes]]:
    root = tmp_path / "stage"
    return root, make_tree(root)


def test_fsck_clean_and_every_file_reads_back(tree, tmp_path: Path) -> None:
    require_tool("fsck.fat")
    require_tool("mcopy")
    root, files = tree
    img = tmp_path / "esp.img"
    info = build(root, img)
    assert img.stat().st_size == ESP_SIZE
    check = subprocess.run(check=False, args=["fsck.fat", "-n", img], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "Free cluster summary wrong" not in check.stdout
    for rel, data in files.items():
        got = mtools("mcopy", "-n", "-i", str(img), dos(rel), "-")
        assert hashlib.sha256(got).hexdigest() == hashlib.sha256(data).hexdigest(), rel
    listed = mtools("mdir", "-/", "-b", "-i", str(img), "::/").decode().splitlines()
    names = {line.removeprefix("::/").rstrip("/") for line in listed}
    dirs = {str(p.relative_to(root)) for p in root.rglob("*") if p.is_dir()}
    assert names == set(files) | dirs
    assert "EFI/Microsoft/Recovery" in names and "empty dir" in names
    assert info.files == len(files) and info.dirs == len(dirs)
    assert info.content_bytes == sum(map(len, files.values()))
    assert info.cluster_size == 512 and info.filesystem == "FAT32"


def test_boot_sector_fields(tree, tmp_path: Path) -> None:
    require_tool("mkfs.fat")
    img = tmp_path / "esp.img"
    info = build(tree[0], img, hidden_sectors=133120, volume_id=0xCAFE0042, label="ESP TEST")
    head = img.read_bytes()[:7 * 512]
    bps, spc = struct.unpack_from("<HB", head, 0x0B)
    spt, heads, hidden, total = struct.unpack_from("<HHII", head, 0x18)
    assert (bps, spc) == (512, 1)
    assert hidden == 133120 == info.hidden_sectors
    assert total == ESP_SIZE // 512                       # the whole file, no tail left over
    assert heads == 255 and spt in (63, 32) and total % spt == 0
    assert struct.unpack_from("<I", head, 0x43)[0] == 0xCAFE0042 == info.serial
    assert head[0x47:0x52] == b"ESP TEST   " and head[0x52:0x5A] == b"FAT32   "
    assert head[6 * 512:6 * 512 + 90] == head[:90]          # the backup boot sector agrees
    out = mtools("mdir", "-i", str(img), "::/").decode()
    assert "Volume in drive : is ESP TEST" in out and "CAFE-0042" in out


def test_every_timestamp_is_the_build_time(tree, tmp_path: Path) -> None:
    require_tool("mdir")
    img = tmp_path / "esp.img"
    build(tree[0], img)
    listing = mtools("mdir", "-/", "-i", str(img), "::/").decode().splitlines()
    dated = [line for line in listing if re.search(r"\d{4}-\d\d-\d\d", line)]
    assert len(dated) > 60 and all("2023-11-14  22:13" in line for line in dated), dated
    # the volume label entry written by mkfs.fat too (first entry of the root folder)
    data = img.read_bytes()
    reserved, fats = struct.unpack_from("<HB", data, 0x0E)
    fat_sectors, = struct.unpack_from("<I", data, 0x24)
    entry = data[(reserved + fats * fat_sectors) * 512:][:32]
    assert entry[:11] == b"EFIESP     " and entry[11] == 0x08
    assert struct.unpack_from("<HH", entry, 22) == fat.dos_datetime(EPOCH)


def test_two_builds_are_byte_identical(tmp_path: Path) -> None:
    require_tool("mkfs.fat")
    a, b = tmp_path / "a", tmp_path / "b"
    make_tree(a, order=1)
    make_tree(b, order=-1)                                   # other creation order and other mtimes
    for p in b.rglob("*"):
        os.utime(p, (EPOCH + 12345, EPOCH + 12345))
    build(a, tmp_path / "a.img")
    build(b, tmp_path / "b.img")
    assert (tmp_path / "a.img").read_bytes() == (tmp_path / "b.img").read_bytes()
    build(a, tmp_path / "c.img", epoch=EPOCH + 3600)
    assert (tmp_path / "c.img").read_bytes() != (tmp_path / "a.img").read_bytes()


def test_odd_size_and_4k_sectors(tmp_path: Path) -> None:
    require_tool("fsck.fat")
    root = tmp_path / "stage"
    files = {"EFI/Boot/bootx64.efi": b"x" * 5000, "a.txt": b"a"}
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    odd = tmp_path / "odd.img"
    info = build(root, odd, size=131071 * 512)               # a sector count no track size divides but 1
    assert struct.unpack_from("<I", odd.read_bytes(), 0x20)[0] == 131071
    assert subprocess.run(check=False, args=["fsck.fat", "-n", odd], capture_output=True).returncode == 0
    assert info.size == odd.stat().st_size == 131071 * 512
    k4 = tmp_path / "4k.img"
    info = build(root, k4, size=300 * MIB, sector_size=4096, hidden_sectors=256)
    assert info.sector_size == 4096 and info.cluster_size == 4096 and info.clusters >= 65525
    assert struct.unpack_from("<HBxxxxxxxxxxxxxxI", k4.read_bytes(), 0x0B) == (4096, 1, 256)
    assert subprocess.run(check=False, args=["fsck.fat", "-n", k4], capture_output=True).returncode == 0
    boot = "EFI/Boot/bootx64.efi"
    assert mtools("mcopy", "-n", "-i", str(k4), dos(boot), "-") == files[boot]


def test_empty_tree_without_label(tmp_path: Path) -> None:
    require_tool("fsck.fat")
    root = tmp_path / "stage"
    root.mkdir()
    img = tmp_path / "esp.img"
    info = build(root, img, label="")
    assert (info.files, info.dirs, info.label, info.used_bytes) == (0, 0, "", 512)     # the root folder
    check = subprocess.run(check=False, args=["fsck.fat", "-n", img], capture_output=True, text=True)
    assert check.returncode == 0 and " 0 files, 1/" in check.stdout, check.stdout


def test_cluster_size_follows_windows_but_keeps_fat32_legal() -> None:
    assert default_cluster_size(ESP_SIZE, 512) == 512        # Windows would take 1 KiB: only 64,500 clusters
    assert default_cluster_size(100 * MIB, 512) == 1024
    assert default_cluster_size(300 * MIB, 512) == 4096
    assert default_cluster_size(300 * MIB, 4096) == 4096


def test_too_small_for_fat32_is_an_input_error(tree, tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"partition EFIESP: .*65,525"):
        build(tree[0], tmp_path / "esp.img", size=20 * MIB)
    with pytest.raises(InputError, match=r"cluster size 3000"):
        build(tree[0], tmp_path / "esp.img", cluster_size=3000)
    with pytest.raises(InputError, match=r"label"):
        build(tree[0], tmp_path / "esp.img", label="MUCH TOO LONG LABEL")
    assert list(tmp_path.glob("*.img")) == [] and not list(tmp_path.glob(".*partial"))


def test_content_larger_than_the_filesystem(tmp_path: Path) -> None:
    root = tmp_path / "stage"
    root.mkdir()
    with open(root / "big.bin", "wb") as f:                   # sparse: costs no disk space here
        f.truncate(70 * MIB)
    (root / "small.txt").write_bytes(b"x")
    out = tmp_path / "out" / "EFIESP.img"
    with pytest.raises(InputError) as e:
        build(root, out)
    msg = str(e.value)
    needed = 70 * MIB + 512 + 512                             # file + small file + root folder
    assert f"partition EFIESP: content needs {needed:,} bytes, the FAT32 filesystem offers 66,059,264" in msg
    assert "DeviceLayout.xml" in msg and "EFIESP" in e.value.hint
    assert not out.exists() and list(out.parent.iterdir()) == []


def test_file_over_4_gib_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "stage"
    root.mkdir()
    with open(root / "huge.wim", "wb") as f:                  # sparse
        f.truncate(1 << 32)
    with pytest.raises(InputError, match=r"huge.wim has 4,294,967,296 bytes; a FAT32 file holds at most"):
        build(root, tmp_path / "esp.img", size=8 << 30)
    assert not list(tmp_path.glob("*.img")) and not list(tmp_path.glob(".*partial"))


def test_disk_full_from_mcopy_becomes_the_same_error(tmp_path: Path, monkeypatch) -> None:
    require_tool("mcopy")
    root = tmp_path / "stage"
    root.mkdir()
    (root / "a.bin").write_bytes(b"a" * (40 * MIB))
    (root / "b.bin").write_bytes(b"b" * (40 * MIB))
    monkeypatch.setattr(fat, "fat_needed_bytes", lambda tree, cluster: 1)   # let the estimate pass
    out = tmp_path / "out" / "EFIESP.img"
    expected = (r"partition EFIESP: content needs 1 bytes, the FAT32 filesystem offers 66,059,264 "
                r"\(an estimate; mcopy ran out of space")
    with pytest.raises(InputError, match=expected):
        build(root, out)
    assert list(out.parent.iterdir()) == []


def test_symlinks_devices_and_case_clashes_are_refused(tmp_path: Path) -> None:
    root = tmp_path / "stage"
    (root / "EFI").mkdir(parents=True)
    (root / "EFI/real.efi").write_bytes(b"x")
    (root / "EFI/link.efi").symlink_to("real.efi")
    os.mkfifo(root / "pipe")
    (root / "Readme.txt").write_bytes(b"1")
    (root / "README.TXT").write_bytes(b"2")
    (root / "what?.txt").write_bytes(b"3")
    out = tmp_path / "esp.img"
    with pytest.raises(InputError) as e:
        build(root, out)
    msg = str(e.value)
    assert "EFI/link.efi is a symbolic link" in msg
    assert "pipe is a device, FIFO or socket" in msg
    assert "differ only in case" in msg and "'what?.txt'" in msg
    assert not out.exists() and not list(tmp_path.glob(".*partial"))


def test_missing_tool_names_its_package(tree, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "nothing"))
    with pytest.raises(ToolError, match="mkfs.fat not found") as e:
        build(tree[0], tmp_path / "esp.img")
    assert "dosfstools" in e.value.hint
    assert not list(tmp_path.glob("*.img")) and not list(tmp_path.glob(".*partial"))


def test_capacity_error_message() -> None:
    e = capacity_error("EFIESP", 70123520, 66060288, filesystem="FAT32")
    assert e.what == ("partition EFIESP: content needs 70,123,520 bytes, "
                      "the FAT32 filesystem offers 66,060,288")
    assert "TotalSectors" in e.hint and "MinFreeSectors" in e.hint


def test_sample_esp_layout_of_the_recipe(tmp_path: Path) -> None:
    """The recipe's ESP (64 MiB at LBA 2048) with an ESP-like tree: what mkfs.fat + mcopy gave by hand."""
    require_tool("fsck.fat")
    root = tmp_path / "stage"
    make_tree(root)
    shutil.rmtree(root / "many")
    info = build(root, tmp_path / "esp.img")
    assert info.clusters == 129022 and info.hidden_sectors == 2048
    assert info.used_bytes + info.free_bytes == info.clusters * info.cluster_size
    assert info.used_bytes >= info.content_bytes
