"""bsp.prepare: the QEMUx64 stand-in boot chain from the real Debian packages in build/debs, checked with
busybox cpio, gzip and dpkg-deb; determinism, the shared cache, and the errors a user can act on."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from iotbuild import samples
from iotbuild.errors import InputError
from iotbuild.models.board import load_board
from iotbuild.stages.bsp import PREPARED_FILES, default_debs_dirs, prepare_boot_chain
from iotbuild.stages.bsp.prepare import check_static, init_script
from tests.conftest import REPO, require_tool
from tests.formats.test_kmod import kernel_deb

CLI = [sys.executable, "-m", "iotbuild.cli"]
PKG = "Packages/QEMUx64.BootChain"


def copy_board(dest: Path) -> Path:
    shutil.copytree(REPO / "bsp/QEMUx64", dest / "bsp/QEMUx64", ignore=shutil.ignore_patterns("prepared", "*.sys"))
    return dest / "bsp/QEMUx64/Board.xml"


def digests(d: Path) -> dict[str, str]:
    return {n: hashlib.sha256((d / n).read_bytes()).hexdigest() for n in PREPARED_FILES}


@pytest.fixture(scope="module")
def debs_dirs() -> list[Path]:
    kernel_deb()  # skip locally / fail in CI when setup.sh has not fetched the packages
    return default_debs_dirs(REPO)


@pytest.fixture(scope="module")
def built(tmp_path_factory, debs_dirs):
    """One real preparation into a private cache (so it is really built here)."""
    root = tmp_path_factory.mktemp("board")
    board = load_board(copy_board(root))
    cache = root / "cache"
    with pytest.MonkeyPatch.context() as mp:  # the epoch every test of this module runs with (conftest)
        mp.setenv("SOURCE_DATE_EPOCH", "1700000000")
        result = prepare_boot_chain(board, debs_dirs=debs_dirs, cache_dir=cache)
    return board, result, cache


def initrd_cpio(initrd: Path) -> bytes:
    data = initrd.read_bytes()
    assert data[:2] == b"\x1f\x8b" and data[4:8] == bytes(4)  # gzip, no timestamp
    return gzip.decompress(data)


def test_outputs_exist_with_the_boot_files(built):
    board, r, _ = built
    out = board.directory / PKG / "prepared"
    assert r.source == "built" and r.out_dir == out
    assert sorted(p.name for p in out.iterdir()) == sorted([*PREPARED_FILES, ".prepared.json"])
    assert r.files == {n: (out / n).stat().st_size for n in PREPARED_FILES}
    assert r.kernel_version.startswith("6.12.") and r.kernel_version.endswith("-cloud-amd64")
    assert (out / "loader.conf").read_text() == "timeout 0\ndefault iotbuild-smoke.conf\neditor no\n"
    assert (out / "iotbuild-smoke.conf").read_text() == (
        "title iotbuild smoke test (QEMUx64)\nlinux /vmlinuz\ninitrd /initrd.img\n"
        "options console=ttyS0,115200 panic=-1 quiet\n")
    kernel = (out / "vmlinuz").read_bytes()
    assert kernel[:2] == b"MZ" and kernel[0x202:0x206] == b"HdrS"  # an EFI-stub bzImage
    assert (out / "bootx64.efi").read_bytes()[:2] == b"MZ"


def test_boot_loader_and_kernel_are_the_packages_bytes(built, tmp_path):
    board, r, _ = built
    out = r.out_dir
    for deb in r.debs:
        subprocess.run([require_tool("dpkg-deb"), "-x", deb, tmp_path], check=True, timeout=300)
    efi = tmp_path / "usr/lib/systemd/boot/efi/systemd-bootx64.efi"
    assert (out / "bootx64.efi").read_bytes() == efi.read_bytes()
    assert (out / "vmlinuz").read_bytes() == (tmp_path / f"boot/vmlinuz-{r.kernel_version}").read_bytes()


def test_initrd_holds_busybox_init_and_the_modules(built, tmp_path):
    bb = require_tool("busybox")
    _, r, _ = built
    cpio = initrd_cpio(r.out_dir / "initrd.img")
    listing = subprocess.run([bb, "cpio", "-tv"], input=cpio, capture_output=True, check=True, timeout=60)
    lines = listing.stdout.decode().splitlines()
    names = [ln.split()[-1] if "->" not in ln else ln.split()[-3] for ln in lines]
    modules = ["virtio_blk.ko", "fat.ko", "vfat.ko", "nls_cp437.ko", "nls_ascii.ko", "nls_utf8.ko", "ntfs3.ko"]
    for must in ("init", "bin/busybox", "bin/sh", "dev/console", "etc/modules.list", "etc/iotbuild-smoke.conf",
                 *(f"lib/modules/{m}" for m in modules)):
        assert must in names, must
    assert r.modules == tuple(modules)
    mode = {n: ln.split()[0] for n, ln in zip(names, lines)}
    assert mode["dev/console"].startswith("c") and mode["init"] == "-rwxr-xr-x" and mode["bin/busybox"] == "-rwxr-xr-x"
    dest = tmp_path / "x"
    dest.mkdir()
    subprocess.run([bb, "cpio", "-i", "-d", "init", "bin/busybox", "etc/*", "lib/*"], input=cpio, cwd=dest,
                   check=True, capture_output=True, timeout=60)
    assert (dest / "bin/busybox").read_bytes() == Path("/bin/busybox").read_bytes()
    assert (dest / "init").read_bytes() == init_script()
    assert (dest / "etc/modules.list").read_text().split() == modules
    conf = (dest / "etc/iotbuild-smoke.conf").read_text()
    assert "SMOKE_OK=IOTBUILD-SMOKE-OK\n" in conf
    assert "SMOKE_MANIFEST=MainOS/Windows/ImageUpdate/ImageManifest.sha256\n" in conf
    for m in modules:
        assert (dest / "lib/modules" / m).read_bytes()[:4] == b"\x7fELF"  # stored decompressed


def test_init_script_parses_under_busybox_sh():
    bb = require_tool("busybox")
    p = subprocess.run([bb, "sh", "-n", "-c", init_script().decode()], capture_output=True, timeout=30)
    assert p.returncode == 0, p.stderr


def test_deterministic_and_epoch_only_changes_the_initrd(built, debs_dirs, tmp_path, monkeypatch):
    _, r, _ = built
    first = digests(r.out_dir)
    board = load_board(copy_board(tmp_path / "b1"))
    again = prepare_boot_chain(board, debs_dirs=debs_dirs, cache_dir=tmp_path / "c1", force=True)
    assert again.source == "built" and digests(again.out_dir) == first and again.key == r.key
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1800000000")
    other = prepare_boot_chain(load_board(copy_board(tmp_path / "b2")), debs_dirs=debs_dirs,
                               cache_dir=tmp_path / "c2")
    changed = {n for n, h in digests(other.out_dir).items() if h != first[n]}
    assert changed == {"initrd.img"} and other.key != r.key


def test_cache_makes_the_next_preparation_a_quick_copy(built, debs_dirs, tmp_path):
    board, r, cache = built
    fresh = load_board(copy_board(tmp_path))
    t0 = time.monotonic()
    copied = prepare_boot_chain(fresh, debs_dirs=debs_dirs, cache_dir=cache)
    took = time.monotonic() - t0
    assert copied.source == "cache" and took < 0.5, took
    assert digests(copied.out_dir) == digests(r.out_dir)
    assert len(copied.written) == len(PREPARED_FILES)
    again = prepare_boot_chain(fresh, debs_dirs=debs_dirs, cache_dir=cache)
    assert again.source == "up to date" and again.written == ()


def test_samples_prepare_gives_a_workspace_copy_its_boot_files_quickly(debs_dirs, tmp_path):
    for d in ("workspace", "packages", "bsp", "products"):
        shutil.copytree(REPO / d, tmp_path / d, ignore=shutil.ignore_patterns("Certs", "*.sys", "prepared"))
    samples.prepare(tmp_path)  # warms the shared cache if this epoch was never prepared
    shutil.rmtree(tmp_path / "bsp/QEMUx64" / PKG / "prepared")
    t0 = time.monotonic()
    written = samples.prepare(tmp_path)
    took = time.monotonic() - t0
    out = tmp_path / "bsp/QEMUx64" / PKG / "prepared"
    assert {p.name for p in written} >= set(PREPARED_FILES) and all((out / n).is_file() for n in PREPARED_FILES)
    assert took < 0.5, took
    assert samples.prepare(tmp_path) == []


def test_missing_debs_is_one_clear_error(tmp_path):
    board = load_board(copy_board(tmp_path))
    empty = tmp_path / "debs"
    empty.mkdir()
    with pytest.raises(InputError) as e:
        prepare_boot_chain(board, debs_dirs=[empty], cache_dir=tmp_path / "cache")
    msg = str(e.value)
    assert "Board.xml" in msg and "Debian packages of the boot chain are missing" in msg and "scripts/setup.sh" in msg


def test_missing_debs_through_the_command_line(tmp_path):
    for d in ("workspace", "bsp"):
        shutil.copytree(REPO / d, tmp_path / d, ignore=shutil.ignore_patterns("Certs", "*.sys", "prepared"))
    (tmp_path / "nodebs").mkdir()
    p = subprocess.run([*CLI, "bsp.prepare", "QEMUx64"], cwd=tmp_path, capture_output=True, text=True, timeout=120,
                       env={**os.environ, "IOTBUILD_WORKSPACE": "", "IOTBUILD_DEBS_DIR": str(tmp_path / "nodebs")})
    assert p.returncode == 1 and "Traceback" not in p.stderr
    assert "run scripts/setup.sh" in p.stderr and p.stderr.count("error:") == 1
    p = subprocess.run([*CLI, "bsp.prepare", "NoSuchBoard"], cwd=tmp_path, capture_output=True, text=True,
                       timeout=120, env={**os.environ, "IOTBUILD_WORKSPACE": ""})
    assert p.returncode == 1 and "board NoSuchBoard has no Board.xml" in p.stderr


def test_command_line_json(debs_dirs, tmp_path):
    for d in ("workspace", "bsp"):
        shutil.copytree(REPO / d, tmp_path / d, ignore=shutil.ignore_patterns("Certs", "*.sys", "prepared"))
    p = subprocess.run([*CLI, "bsp.prepare", "QEMUx64", "--json"], cwd=tmp_path, capture_output=True, text=True,
                       timeout=300, env={**os.environ, "IOTBUILD_WORKSPACE": ""})
    assert p.returncode == 0, p.stderr
    r = json.loads(p.stdout)
    assert r["ok"] and r["board"] == "QEMUx64" and set(r["files"]) == set(PREPARED_FILES)
    assert r["kernel_version"].startswith("6.12.") and r["modules"][-1] == "ntfs3.ko"
    p = subprocess.run([*CLI, "bsp.prepare", "QEMUx64"], cwd=tmp_path, capture_output=True, text=True,
                       timeout=300, env={**os.environ, "IOTBUILD_WORKSPACE": ""})
    assert p.returncode == 0 and p.stderr.startswith("bsp.prepare: QEMUx64: 5 files (up to date)")
    assert "kernel 6.12." in p.stderr


def test_several_versions_of_a_package_are_refused(debs_dirs, tmp_path):
    board = load_board(copy_board(tmp_path))
    d = tmp_path / "debs"
    d.mkdir()
    for n in ("systemd-boot-efi_252.38-1_amd64.deb", "systemd-boot-efi_252.39-1_amd64.deb",
              "linux-image-6.12.1+deb12-cloud-amd64_6.12.1-1_amd64.deb"):
        (d / n).write_bytes(b"!")
    with pytest.raises(InputError, match="several packages in .* match: systemd-boot-efi: "):
        prepare_boot_chain(board, debs_dirs=[d])


def test_a_dynamic_busybox_is_refused():
    with pytest.raises(InputError, match="dynamically linked.*busybox-static"):
        check_static(Path(shutil.which("ls") or "/bin/ls"))
    with pytest.raises(InputError, match="does not exist"):
        check_static(Path("/nonexistent/busybox"))
    check_static(Path(require_tool("busybox")))
