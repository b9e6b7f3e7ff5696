"""The QEMU smoke test booting real disks, built here the way the recipe does (buildimage is not needed):
GPT by iotbuild's writer, a FAT32 ESP by mkfs.fat + mtools holding the prepared boot chain, NTFS MainOS and
Data by mkntfs + wimlib-imagex, and the image manifest the stand-in /init checks.

These tests boot QEMU (TCG, 10–20 s each). Skip them locally with IOTBUILD_SKIP_SMOKE=1; CI always runs them.
The boot-to-verdict time of the passing boot is printed (pytest -s shows it) and kept in build/smoke-timing.json.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from iotbuild import samples
from iotbuild.formats.ffu import FfuLayoutInfo
from iotbuild.formats.gpt import BASIC_DATA_TYPE, ESP_TYPE, GptPartition, derive_guid, layout_for, read_gpt, write_gpt
from iotbuild.models.workspace import load_workspace
from iotbuild.stages.smoketest import Verdict, smoketest
from tests.conftest import IN_CI, REPO, require_tool
from tests.formats.test_ffu import build as build_ffu
from tests.signing.helpers import cert_dir, signer  # noqa: F401  (fixtures)

SKIP_SMOKE = os.environ.get("IOTBUILD_SKIP_SMOKE", "").lower() in ("1", "true", "yes") and not IN_CI
boots = pytest.mark.skipif(SKIP_SMOKE, reason="IOTBUILD_SKIP_SMOKE=1 (CI always runs the QEMU boots)")
CLI = [sys.executable, "-m", "iotbuild.cli"]

SECTOR = 512
MIB_SECTORS = (1 << 20) // SECTOR
# name, first LBA, sectors, filesystem
PARTITIONS = (("EFIESP", 2048, 64 * MIB_SECTORS, "fat"), ("MainOS", 2048 + 64 * MIB_SECTORS, 64 * MIB_SECTORS, "ntfs"),
              ("Data", 2048 + 128 * MIB_SECTORS, 16 * MIB_SECTORS, "ntfs"))
TOTAL_SECTORS = 2048 + 144 * MIB_SECTORS + 2048
MANIFEST = "Windows/ImageUpdate/ImageManifest.sha256"
ESP_FILES = {"EFI/Boot/bootx64.efi": "bootx64.efi", "loader/loader.conf": "loader.conf",
             "loader/entries/iotbuild-smoke.conf": "iotbuild-smoke.conf", "vmlinuz": "vmlinuz",
             "initrd.img": "initrd.img"}


def tool(name: str) -> str:
    return require_tool(name)


def sh(*argv: str | os.PathLike[str], timeout: float = 120) -> None:
    p = subprocess.run([os.fspath(a) for a in argv], capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL)
    assert p.returncode == 0, f"{argv}: {p.stderr.decode(errors='replace')}"


@dataclass
class SmokeDisk:
    path: Path
    manifest_lines: int


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _fat(img: Path, sectors: int, files: dict[str, Path]) -> None:
    sh(tool("mkfs.fat"), "-F", "32", "-S", "512", "-s", "1", "-h", "2048", "-n", "EFIESP", "--invariant", "-C",
       img, str(sectors * SECTOR // 1024))
    dirs = sorted({"/".join(p.split("/")[:i]) for p in files for i in range(1, p.count("/") + 1)})
    env = {**os.environ, "MTOOLS_SKIP_CHECK": "1"}
    for d in dirs:
        subprocess.run([tool("mmd"), "-i", img, f"::/{d}"], check=True, capture_output=True, env=env)
    for dest, src in files.items():
        subprocess.run([tool("mcopy"), "-i", img, src, f"::/{dest}"], check=True, capture_output=True, env=env)


def _ntfs(img: Path, label: str, first_lba: int, sectors: int, tree: Path, work: Path) -> None:
    with open(img, "wb") as f:
        f.truncate(sectors * SECTOR)
    sh(tool("mkntfs"), "-F", "-Q", "-q", "-s", "512", "-p", str(first_lba), "-H", "255", "-S", "63", "-L", label, img)
    if any(tree.iterdir()):
        wim = work / f"{label}.wim"
        sh(tool("wimlib-imagex"), "capture", tree, wim, label, "--compress=none")
        sh(tool("wimlib-imagex"), "apply", wim, "1", img)


def _place(disk, img: Path, first_lba: int) -> None:
    with open(img, "rb") as src:
        at = first_lba * SECTOR
        while block := src.read(1 << 20):
            if block.count(0) != len(block):
                disk.seek(at)
                disk.write(block)
            at += len(block)


def build_disk(dest: Path, prepared: Path | None, work: Path, *, tamper: str | None = None,
               ppkg_at: str = "Windows/Provisioning/Packages/ProvAuto.ppkg") -> SmokeDisk:
    """A GPT disk like the sample board's: EFIESP (FAT32, boot chain from ``prepared`` unless None), MainOS
    (NTFS, a few files, a provisioning package, the manifest), Data (NTFS, one file). ``tamper``: a MainOS
    path whose bytes change after the manifest was written."""
    work.mkdir(parents=True, exist_ok=True)
    trees = {name: work / name for name, *_ in PARTITIONS}
    for t in trees.values():
        t.mkdir()
    esp_files = {dest_: prepared / src for dest_, src in ESP_FILES.items()} if prepared is not None else {}
    main = trees["MainOS"]
    for rel, data in {"Windows/System32/config/SYSTEM": b"regf" + bytes(8188),
                      "Windows/System32/drivers/qemusample.sys": b"MZ" + os.urandom(3000),
                      "Windows/ImageUpdate/DeviceLayout.xml": b"<DeviceLayout/>\n",
                      "Program Files/Contoso/read me.txt": "héllo wörld\n".encode()}.items():
        (main / rel).parent.mkdir(parents=True, exist_ok=True)
        (main / rel).write_bytes(data)
    payload = work / "ppkg-payload"
    payload.mkdir()
    (payload / "customizations.xml").write_text("<WindowsCustomizations/>\n")
    (main / ppkg_at).parent.mkdir(parents=True, exist_ok=True)
    sh(tool("wimlib-imagex"), "capture", payload, main / ppkg_at, "ppkg", "--compress=none")
    (trees["Data"] / "Users").mkdir()
    (trees["Data"] / "Users/welcome.txt").write_text("data partition\n")

    lines = [f"{_sha(src)}  EFIESP/{d}" for d, src in esp_files.items()]
    for name in ("MainOS", "Data"):
        for p in sorted(x for x in trees[name].rglob("*") if x.is_file()):
            lines.append(f"{_sha(p)}  {name}/{p.relative_to(trees[name]).as_posix()}")
    (main / MANIFEST).parent.mkdir(parents=True, exist_ok=True)
    (main / MANIFEST).write_text("".join(f"{line}\n" for line in lines))
    if tamper:
        target = main / tamper
        target.write_bytes(target.read_bytes()[:-1] + b"!")

    layout = layout_for(derive_guid("SmokeTest"), SECTOR, TOTAL_SECTORS, [
        GptPartition(name, ESP_TYPE if fs == "fat" else BASIC_DATA_TYPE, first, first + n - 1,
                     derive_guid("SmokeTest", name)) for name, first, n, fs in PARTITIONS])
    with open(dest, "w+b") as disk:
        disk.truncate(TOTAL_SECTORS * SECTOR)
        write_gpt(disk, layout)
        for name, first, n, fs in PARTITIONS:
            img = work / f"{name}.img"
            if fs == "fat":
                _fat(img, n, esp_files)
            else:
                _ntfs(img, name, first, n, trees[name], work)
            _place(disk, img, first)
    return SmokeDisk(dest, len(lines))


@pytest.fixture(scope="module")
def smoke_ws(tmp_path_factory) -> Path:
    """A copy of the sample workspace with its prepared boot chain (from the shared cache)."""
    ws = tmp_path_factory.mktemp("smoke-ws")
    for d in ("workspace", "packages", "bsp", "products"):
        shutil.copytree(REPO / d, ws / d, ignore=shutil.ignore_patterns("Certs", "*.sys", "prepared"))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SOURCE_DATE_EPOCH", "1700000000")
        samples.prepare(ws)
    return ws


@pytest.fixture(scope="module")
def prepared(smoke_ws) -> Path:
    return smoke_ws / "bsp/QEMUx64/Packages/QEMUx64.BootChain/prepared"


def cli(ws: Path, *args: str, timeout: float = 400) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], cwd=ws, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "IOTBUILD_WORKSPACE": ""}, stdin=subprocess.DEVNULL)


@boots
def test_good_image_passes_with_the_marker(smoke_ws, prepared, tmp_path, signer):  # noqa: F811
    """The real flow minus buildimage: build/amd64/<P>/<Cfg>/Flash.ffu → raw disk → QEMU → marker."""
    tool("qemu-system-x86_64")
    disk = build_disk(tmp_path / "good.raw", prepared, tmp_path / "work")
    with open(disk.path, "rb") as f:
        info = FfuLayoutInfo.from_gpt(read_gpt(f), platform_ids=["QEMUx64"])
    out = smoke_ws / "build/amd64/SampleA/Test"
    out.mkdir(parents=True, exist_ok=True)
    build_ffu(disk.path, info, out / "Flash.ffu", signer)
    t0 = time.monotonic()
    p = cli(smoke_ws, "smoketest", "SampleA", "Test", "--json", "--timeout", "240")
    wall = time.monotonic() - t0
    assert p.returncode == 0, p.stdout + p.stderr
    r = json.loads(p.stdout)
    assert r["ok"] and r["verdict"] == "passed" and r["accel"] == "tcg" and r["board"] == "QEMUx64"
    assert r["marker_line"] == f"IOTBUILD-SMOKE-OK {disk.manifest_lines} files verified"
    work = out / "smoketest"
    assert Path(r["serial_log"]) == work / "serial.log"
    assert "IOTBUILD-SMOKE-OK" in (work / "serial.log").read_text(errors="replace")
    assert Path(r["disk"]) == work / "disk.raw" and not (work / "disk.raw").exists()  # removed without --keep
    assert not (work / "efivars.fd").exists()
    timing = {"boot_to_marker_s": r["marker_seconds"], "qemu_s": r["seconds"], "cli_wall_s": round(wall, 2),
              "accel": r["accel"]}
    print(f"\nsmoke boot under TCG: verdict after {r['marker_seconds']} s, QEMU exited after {r['seconds']} s "
          f"(command incl. FFU → raw {wall:.1f} s)")
    (REPO / "build").mkdir(exist_ok=True)
    (REPO / "build/smoke-timing.json").write_text(json.dumps(timing, indent=1) + "\n")


@boots
def test_changed_mainos_file_fails_and_names_the_path(smoke_ws, prepared, tmp_path):
    tool("qemu-system-x86_64")
    changed = "Windows/System32/drivers/qemusample.sys"
    disk = build_disk(tmp_path / "tampered.raw", prepared, tmp_path / "work", tamper=changed)
    p = cli(smoke_ws, "smoketest", "SampleA", "Test", "--disk", str(disk.path), "--timeout", "240")
    assert p.returncode == 1, p.stdout + p.stderr
    assert "Traceback" not in p.stderr
    assert f"IOTBUILD-SMOKE-FAIL sha256 mismatch (1 of {disk.manifest_lines} files): MainOS/{changed}" in p.stderr
    assert "FAILED" in p.stderr and "failure line seen" in p.stderr
    assert "--- last" in p.stderr  # the serial tail is shown
    assert disk.path.is_file()  # a --disk given by the user is never removed


@boots
def test_misplaced_provisioning_package_fails(smoke_ws, prepared, tmp_path):
    tool("qemu-system-x86_64")
    disk = build_disk(tmp_path / "ppkg.raw", prepared, tmp_path / "work", ppkg_at="Windows/Temp/Stray.ppkg")
    ws = load_workspace(smoke_ws, env={})
    r = smoketest(ws, "SampleA", "Test", disk=disk.path, timeout=240)
    assert r.verdict is Verdict.FAILED, r
    assert r.failure_line == ("IOTBUILD-SMOKE-FAIL provisioning package check failed: MainOS/Windows/Temp/Stray.ppkg "
                              "(not under MainOS/Windows/Provisioning/Packages)")


@boots
def test_disk_without_boot_loader_times_out_and_never_hangs(smoke_ws, tmp_path):
    tool("qemu-system-x86_64")
    disk = build_disk(tmp_path / "noboot.raw", None, tmp_path / "work")
    t0 = time.monotonic()
    p = cli(smoke_ws, "smoketest", "SampleA", "Test", "--disk", str(disk.path), "--timeout", "25", "--json",
            timeout=120)
    took = time.monotonic() - t0
    assert p.returncode == 1, p.stdout + p.stderr
    r = json.loads(p.stdout)
    assert r["verdict"] == "timeout" and not r["ok"] and r["qemu_exit"] is None
    assert r["reason"].startswith("timeout after 25 s")
    assert 25 <= r["seconds"] < 40 and took < 60
    out = subprocess.run(["pgrep", "-f", str(disk.path)], capture_output=True, text=True).stdout
    assert not out.strip(), f"QEMU still running: {out}"
