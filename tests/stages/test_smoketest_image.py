"""The README's main job on a copy of the sample workspace: buildimage SampleA Test, then smoketest SampleA Test
boots the real image under QEMU (TCG) and passes; the same image with one MainOS file changed afterwards (with
ntfscp, straight into the raw disk) fails naming that file.

QEMU boots: skipped locally with IOTBUILD_SKIP_SMOKE=1, always run in CI.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from iotbuild import samples
from tests.conftest import REPO, require_tool
from tests.stages.test_smoketest import boots

CLI = [sys.executable, "-m", "iotbuild"]


def run_cli(ws: Path, *args: str, check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "SOURCE_DATE_EPOCH": "1700000000"}
    p = subprocess.run([*CLI, "--workspace", str(ws), *args], capture_output=True, text=True, env=env, timeout=timeout)
    if check:
        assert p.returncode == 0, f"{args}: {p.stdout}\n{p.stderr}"
    return p


@pytest.fixture(scope="module")
def image_ws(tmp_path_factory) -> Path:
    ws = tmp_path_factory.mktemp("smoke-image")
    for d in ("bsp", "packages", "products", "workspace"):
        shutil.copytree(REPO / d, ws / d, ignore=shutil.ignore_patterns("Certs", "*.sys", "prepared", "__pycache__"))
    samples.prepare(ws)
    run_cli(ws, "buildimage", "SampleA", "Test")
    return ws


@boots
def test_the_built_image_boots_and_checks_itself(image_ws: Path) -> None:
    require_tool("qemu-system-x86_64")
    p = run_cli(image_ws, "smoketest", "SampleA", "Test", "--json", check=False)
    res = json.loads(p.stdout)
    assert p.returncode == 0 and res["ok"], res
    manifest = json.loads((image_ws / "build/amd64/SampleA/Test/Flash.manifest.json").read_text())
    # the guest checked every file of the image except the in-image manifest itself
    assert res["marker_line"] == f"IOTBUILD-SMOKE-OK {len(manifest['files']) - 1} files verified"
    assert (image_ws / "build/amd64/SampleA/Test/smoketest/serial.log").is_file()


@boots
def test_a_mainos_file_changed_after_the_build_fails_naming_it(image_ws: Path, tmp_path: Path) -> None:
    require_tool("qemu-system-x86_64")
    require_tool("ntfscp")
    raw = tmp_path / "disk.raw"
    run_cli(image_ws, "ffu.toraw", str(image_ws / "build/amd64/SampleA/Test/Flash.ffu"), str(raw))
    manifest = json.loads((image_ws / "build/amd64/SampleA/Test/Flash.manifest.json").read_text())
    main = next(p for p in manifest["partitions"] if p["name"] == "MainOS")
    victim = next(f for f in manifest["files"] if f["partition"] == "MainOS" and f["path"].endswith("ReadMe.txt"))
    part = tmp_path / "main.img"
    with open(raw, "rb") as src, open(part, "wb") as dst:  # cut the partition out, change it, put it back
        src.seek(main["first_lba"] * 512)
        dst.write(src.read(main["bytes"]))
    evil = tmp_path / "evil.txt"
    evil.write_text("changed after the manifest was written\n")
    subprocess.run(["ntfscp", "-f", str(part), str(evil), victim["path"].replace("\\", "/")], check=True,
                   capture_output=True)
    with open(raw, "r+b") as dst:
        dst.seek(main["first_lba"] * 512)
        dst.write(part.read_bytes())
    p = run_cli(image_ws, "smoketest", "SampleA", "Test", "--disk", str(raw), check=False)
    assert p.returncode == 1, p.stderr
    assert "MainOS" + victim["path"].replace("\\", "/") in p.stderr
    assert "Traceback" not in p.stderr
