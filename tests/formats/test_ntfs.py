"""NTFS images from a staged folder, checked with ntfs-3g's own tools (ntfsfix, ntfscat, ntfsls, ntfsinfo)."""

from __future__ import annotations

import hashlib
import os
import random
import re
import struct
import subprocess
from pathlib import Path

import pytest
from iotbuild.errors import FormatError, InputError
from iotbuild.formats import ntfs
from iotbuild.formats.ntfs import FsInfo, build_ntfs, normalize, read_boot_sector, volume_usage

from tests.conftest import require_tool

MIB = 1 << 20
EPOCH = 1700000000            # 2023-11-14 22:13:20 UTC
SERIAL = 0x1122334455667788


def make_tree(root: Path, *, seed: int = 1, order: int = 1, folder_files: int = 300) -> dict[str, bytes]:
    """A MainOS-like folder: nested, long and non-ASCII names, empty and resident-size files, one folder big
    enough for several index blocks. ``order`` = -1 writes it in reverse."""
    rnd = random.Random(seed)
    files = {
        "Windows/System32/config/SYSTEM": rnd.randbytes(262144),
        "Windows/System32/drivers/etc/hosts": b"127.0.0.1 localhost\r\n",
        "Windows/System32/smoke.txt": b"smoke\n",
        "Windows/System32/A Rather Long File Name With Spaces.And.Dots.manifest": rnd.randbytes(900),
        "Windows/Fonts/Ünïcödé näme ✓.ttf": rnd.randbytes(5000),
        "Windows/Boot/EFI/bootmgfw.efi": rnd.randbytes(1_300_000),
        "Program Files/empty.dat": b"",
        "Program Files/[brackets] (and) {braces}.txt": b"x" * 700,
        "tiny": b"t",
        # names wimlib leaves out of a capture by default: all must arrive
        "pagefile.sys": b"p" * 3000,
        "System Volume Information/IndexerVolumeGuid": b"{guid}",
        "Windows/CSC/v2.0.6/namespace": b"",
        "$Recycle.Bin/desktop.ini": b"[.ShellClassInfo]",
    }
    for i in range(folder_files):
        files[f"Windows/WinSxS/amd64_microsoft-windows-component_{i:04d}_31bf3856ad364e35.manifest"] = \
            rnd.randbytes(rnd.randint(0, 6000))
    for rel, data in sorted(files.items())[::order]:
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
        os.utime(p, (rnd.randint(0, 2**31), rnd.randint(0, 2**31)))
    (root / "Users/Public/Empty Folder").mkdir(parents=True)
    return files


def build(tree: Path, out: Path, tmp_path: Path, **kw) -> FsInfo:
    args = {"size": 64 * MIB, "label": "MainOS", "start_lba": 133120, "epoch": EPOCH, "serial": SERIAL,
            "name": "MainOS", "workdir": tmp_path / "work"}
    args.update(kw)
    return build_ntfs(tree, out, **args)


def tool(*argv: str | os.PathLike[str]) -> bytes:
    return subprocess.run([os.fspath(a) for a in argv], capture_output=True, check=True).stdout


def ntfs_paths(img: Path) -> set[str]:
    """Every path ``ntfsls -R`` lists (folders and files, "." and ".." left out)."""
    out, current = set(), ""
    for line in tool("ntfsls", "-R", img).decode().splitlines():
        if line.startswith("/") and line.endswith(":"):
            current = line[:-1].rstrip("/")
        elif line and line not in (".", ".."):
            out.add(f"{current}/{line}".lstrip("/"))
    return out


@pytest.fixture
def tree(tmp_path: Path) -> tuple[Path, dict[str, bytes]]:
    root = tmp_path / "stage"
    return root, make_tree(root)


def test_ntfsfix_clean_and_every_file_reads_back(tree, tmp_path: Path) -> None:
    for name in ("mkntfs", "wimlib-imagex", "ntfsfix", "ntfscat", "ntfsls"):
        require_tool(name)
    root, files = tree
    img = tmp_path / "MainOS.img"
    info = build(root, img, tmp_path)
    assert img.stat().st_size == 64 * MIB
    check = subprocess.run(check=False, args=["ntfsfix", "-n", img], capture_output=True, text=True)
    assert check.returncode == 0 and "processed successfully" in check.stdout, check.stdout + check.stderr
    for rel, data in files.items():
        got = tool("ntfscat", img, "/" + rel)
        assert hashlib.sha256(got).hexdigest() == hashlib.sha256(data).hexdigest(), rel
    dirs = {str(p.relative_to(root)) for p in root.rglob("*") if p.is_dir()}
    assert ntfs_paths(img) == set(files) | dirs
    assert info.files == len(files) and info.dirs == len(dirs)
    assert info.content_bytes == sum(map(len, files.values()))
    assert (info.filesystem, info.cluster_size, info.label, info.serial) == ("NTFS", 4096, "MainOS", SERIAL)
    assert list((tmp_path / "work").iterdir()) == []                   # the WIM is gone


def test_boot_sector_geometry_serial_and_label(tree, tmp_path: Path) -> None:
    require_tool("ntfsinfo")
    img = tmp_path / "MainOS.img"
    info = build(tree[0], img, tmp_path, start_lba=952320)
    data = img.read_bytes()
    bps, spc = struct.unpack_from("<HB", data, 0x0B)
    spt, heads, hidden = struct.unpack_from("<HHI", data, 0x18)
    assert (bps, spc) == (512, 8)
    assert hidden == 952320 == info.hidden_sectors
    assert (spt, heads) == (63, 255)
    assert struct.unpack_from("<Q", data, 0x48)[0] == SERIAL
    assert data[-512:] == data[:512]                                     # backup boot sector, last sector
    volume = tool("ntfsinfo", "-m", img).decode()
    assert re.search(r"Volume Name:\s+MainOS", volume)
    assert tool("ntfslabel", img).decode().strip() == "MainOS"
    free = int(re.search(r"Free Clusters:\s+(\d+)", volume).group(1))
    assert free * 4096 == info.free_bytes
    assert info.used_bytes + info.free_bytes == info.clusters * 4096


def test_serial_zero_stays_zero(tree, tmp_path: Path) -> None:
    """ntfslabel --new-serial=0 would pick a random serial; two builds with serial 0 must still match."""
    require_tool("ntfsfix")
    imgs = [tmp_path / "a.img", tmp_path / "b.img"]
    for img in imgs:
        build(tree[0], img, tmp_path, serial=0)
    data = imgs[0].read_bytes()
    assert data[0x48:0x50] == bytes(8) and data[-512:] == data[:512]
    assert _first_difference(*imgs) is None
    assert subprocess.run(check=False, args=["ntfsfix", "-n", imgs[0]], capture_output=True).returncode == 0


def test_every_time_is_the_build_time(tree, tmp_path: Path) -> None:
    require_tool("ntfsinfo")
    img = tmp_path / "MainOS.img"
    build(tree[0], img, tmp_path)
    for path in ("/", "/Windows/WinSxS", "/Windows/System32/smoke.txt", "/Users/Public/Empty Folder"):
        out = tool("ntfsinfo", "-F", path, img).decode()
        times = re.findall(r"(?:Creation|Altered|Changed|Accessed) Time:\s+(.*)", out)
        assert len(times) >= 8 and set(times) == {"Tue Nov 14 22:13:20 2023 UTC"}, (path, times)
    for number in (0, 5, 9):      # $MFT, the root, $Secure: the system files too
        out = tool("ntfsinfo", "-i", str(number), img).decode()
        assert set(re.findall(r"Time:\s+(.*)", out)) == {"Tue Nov 14 22:13:20 2023 UTC"}


def test_two_builds_are_byte_identical(tmp_path: Path) -> None:
    require_tool("mkntfs")
    a, b = tmp_path / "a", tmp_path / "b"
    make_tree(a, order=1)
    make_tree(b, order=-1)                       # other creation order, other mtimes, other inode numbers
    build(a, tmp_path / "a.img", tmp_path)
    build(b, tmp_path / "b.img", tmp_path)
    assert _first_difference(tmp_path / "a.img", tmp_path / "b.img") is None
    build(a, tmp_path / "c.img", tmp_path, epoch=EPOCH + 86400)
    assert _first_difference(tmp_path / "a.img", tmp_path / "c.img") is not None


@pytest.mark.parametrize("sector_size,cluster_size", [(512, 512), (512, 65536), (4096, 4096)])
def test_other_sector_and_cluster_sizes(tmp_path: Path, sector_size: int, cluster_size: int) -> None:
    """Index blocks that span several clusters (512), several blocks in one cluster (64 KiB), and 4 KiB
    FILE records (4Kn sectors): still clean, readable and reproducible."""
    for name in ("ntfsfix", "ntfscat"):
        require_tool(name)
    root = tmp_path / "stage"
    files = make_tree(root, folder_files=200)
    imgs = []
    for n in range(2):
        img = tmp_path / f"{n}.img"
        build(root, img, tmp_path, sector_size=sector_size, cluster_size=cluster_size, start_lba=1 << 20 >> 9)
        imgs.append(img)
    assert _first_difference(*imgs) is None
    assert subprocess.run(check=False, args=["ntfsfix", "-n", imgs[0]], capture_output=True).returncode == 0
    boot = read_boot_sector(imgs[0])
    assert (boot.sector_size, boot.cluster_size) == (sector_size, cluster_size)
    last = "Windows/WinSxS/amd64_microsoft-windows-component_0199_31bf3856ad364e35.manifest"
    for rel in ("Windows/Boot/EFI/bootmgfw.efi", last, "tiny"):
        assert tool("ntfscat", imgs[0], "/" + rel) == files[rel]


def test_empty_tree_and_empty_label(tmp_path: Path) -> None:
    require_tool("ntfsfix")
    root = tmp_path / "stage"
    root.mkdir()
    img = tmp_path / "Data.img"
    info = build(root, img, tmp_path, size=8 * MIB, label="", name="Data")
    assert (info.files, info.dirs, info.content_bytes, info.label) == (0, 0, 0, "")
    assert subprocess.run(check=False, args=["ntfsfix", "-n", img], capture_output=True).returncode == 0
    assert ntfs_paths(img) == set()


def test_content_larger_than_the_filesystem(tmp_path: Path) -> None:
    require_tool("mkntfs")
    root = tmp_path / "stage"
    root.mkdir()
    with open(root / "big.bin", "wb") as f:                    # sparse: costs no disk space here
        f.truncate(70 * MIB)
    out = tmp_path / "out" / "MainOS.img"
    with pytest.raises(InputError) as e:
        build(root, out, tmp_path)
    assert re.fullmatch(r"partition MainOS: content needs 73,\d{3},\d{3} bytes, the NTFS filesystem offers "
                        r"6\d,\d{3},\d{3}", e.value.what), e.value.what
    assert "DeviceLayout.xml" in str(e.value)
    assert list(out.parent.iterdir()) == []
    assert list((tmp_path / "work").iterdir()) == []


def test_disk_full_from_wimlib_becomes_the_same_error(tmp_path: Path, monkeypatch) -> None:
    require_tool("wimlib-imagex")
    root = tmp_path / "stage"
    root.mkdir()
    (root / "a.bin").write_bytes(b"a" * (40 * MIB))
    (root / "b.bin").write_bytes(b"b" * (40 * MIB))
    monkeypatch.setattr(ntfs, "ntfs_needed_bytes", lambda *args: 1)      # let the estimate pass
    out = tmp_path / "out" / "MainOS.img"
    expected = (r"partition MainOS: content needs 1 bytes, the NTFS filesystem offers [\d,]+ "
                r"\(an estimate; wimlib ran out of space")
    with pytest.raises(InputError, match=expected):
        build(root, out, tmp_path)
    assert list(out.parent.iterdir()) == []
    assert list((tmp_path / "work").iterdir()) == []


def test_estimate_fits_a_nearly_full_volume(tmp_path: Path) -> None:
    """The estimate is conservative, but not so much that a volume cannot be filled to about 90 %."""
    require_tool("mkntfs")
    root = tmp_path / "stage"
    root.mkdir()
    (root / "fill.bin").write_bytes(b"f" * (55 * MIB))
    for i in range(500):
        (root / f"small{i:03d}.txt").write_bytes(b"s" * 2000)
    info = build(root, tmp_path / "MainOS.img", tmp_path)
    assert info.free_bytes < 6 * MIB


def test_symlinks_and_special_files_are_refused(tmp_path: Path) -> None:
    root = tmp_path / "stage"
    (root / "Windows").mkdir(parents=True)
    (root / "Windows/real.dll").write_bytes(b"x")
    (root / "Windows/link.dll").symlink_to("real.dll")
    (root / "Windows/dirlink").symlink_to(".")
    os.mkfifo(root / "fifo")
    out = tmp_path / "MainOS.img"
    with pytest.raises(InputError) as e:
        build(root, out, tmp_path)
    msg = str(e.value)
    assert "Windows/link.dll is a symbolic link" in msg and "Windows/dirlink is a symbolic link" in msg
    assert "fifo is a device, FIFO or socket" in msg
    assert not out.exists() and not list(tmp_path.glob(".*partial"))


def test_bad_arguments_are_input_errors(tree, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="start LBA"):
        build(tree[0], tmp_path / "x.img", tmp_path, start_lba=1 << 32)
    with pytest.raises(InputError, match="sectors"):
        build(tree[0], tmp_path / "x.img", tmp_path, size=64 * MIB + 100)
    with pytest.raises(InputError, match="cluster size"):
        build(tree[0], tmp_path / "x.img", tmp_path, cluster_size=1000)
    assert not list(tmp_path.glob("*.img"))


def test_normalize_refuses_what_is_not_ntfs(tmp_path: Path) -> None:
    junk = tmp_path / "junk.img"
    junk.write_bytes(bytes(4096))
    with pytest.raises(FormatError, match="not an NTFS boot sector"):
        normalize(junk, EPOCH)
    with pytest.raises(FormatError, match="junk.img"):
        volume_usage(junk)


def test_mapping_pairs_and_byte_ranges() -> None:
    """Runs as the NTFS documentation's examples write them, and a read that spans two runs."""
    # 0x18 clusters at LCN 0x5634, then 0x20 clusters 0x10 before it (a negative delta), then 8 sparse
    runs = ntfs.decode_runs(bytes([0x21, 0x18, 0x34, 0x56, 0x11, 0x20, 0xF0, 0x01, 0x08, 0x00]))
    assert runs == [(0x5634, 0x18), (0x5624, 0x20), (None, 8)]
    extents = ntfs._Stream([(0, runs)]).extents()
    assert extents == [(0, 0x5634, 0x18), (0x18, 0x5624, 0x20), (0x38, None, 8)]
    # 1024 bytes from the last 512 of run 1 into run 2 (512-byte clusters: a record straddling two runs)
    assert ntfs._ranges(extents, 512, 0x17 * 512, 1024) == [(0x564B * 512, 512), (0x5624 * 512, 512)]
    assert ntfs._ranges(extents, 512, 0x37 * 512, 1024) is None                # runs into the sparse part
    with pytest.raises(FormatError, match="bad run header"):
        ntfs.decode_runs(bytes([0x31, 0x01]))


def test_update_sequence_fixups_round_trip_and_torn_writes() -> None:
    rec = bytearray(1024)
    rec[0:8] = b"FILE" + struct.pack("<HH", 0x30, 3)
    rec[0x30:0x32] = b"\x07\x00"                                            # update sequence number 7
    rec[510:512], rec[1022:1024] = b"ab", b"cd"                             # the real last bytes
    plain = bytearray(rec)
    ntfs.refix(rec)
    assert rec[510:512] == rec[1022:1024] == b"\x07\x00" and rec[0x32:0x36] == b"abcd"
    ntfs.unfix(rec, 0, "test record")
    assert rec[:0x30] == plain[:0x30] and rec[510:512] == b"ab" and rec[1022:1024] == b"cd"
    ntfs.refix(rec)
    rec[1022] ^= 0xFF
    with pytest.raises(FormatError, match="torn write") as e:
        ntfs.unfix(rec, 4096, "test record")
    assert e.value.offset == 4096 + 1022


def _first_difference(a: Path, b: Path) -> int | None:
    """Offset of the first differing byte (streamed), or None when the files are identical."""
    with open(a, "rb") as fa, open(b, "rb") as fb:
        pos = 0
        while True:
            x, y = fa.read(1 << 20), fb.read(1 << 20)
            if x != y:
                return pos + next((i for i, (p, q) in enumerate(zip(x, y)) if p != q), min(len(x), len(y)))
            if not x:
                return None
            pos += len(x)
