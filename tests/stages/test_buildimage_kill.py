"""buildimage killed with SIGKILL at 10 points spread over a build (issue 4, "Acceptance"): never a Flash.ffu
under its final name unless it is complete, never a half-written package under its final name, and the next
build succeeds.

Each run changes one package's content first (Custom.Files' readme), so that the killed build really rebuilds
a cab and its feature identifier package before it builds the image (``--force`` makes it build the image even
when a run before it had finished). Flash.ffu is removed before each run: one that is there afterwards was
written by the killed run, and must pass ``ffu.verify``. The whole process group is killed (the build's tools
and worker processes too), as an out-of-memory kill or a power cut would stop them. The kill points are random
but seeded, between 2 % and 98 % of a measured build.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import time
from pathlib import Path

from tests.conftest import require_tool
from tests.imagecheck import ARCH_DIR, cli_argv, cli_env, copy_workspace, out_dir, run_cli

KILLS = 10
SEED = 4


def _final_names(folder: Path) -> list[Path]:
    """Files under their final names (temporary ones are ``.name.XXXX.partial``)."""
    return sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")) \
        if folder.is_dir() else []


def _check_packages(ws: Path, ppkgs_before: dict[str, bytes], label: str) -> None:
    for cab in _final_names(ws / ARCH_DIR / "pkgs"):
        assert ".partial" not in cab.name, f"{label}: {cab.name}"
        if cab.suffix.lower() == ".cab":
            t = subprocess.run(["cabextract", "-t", str(cab)], capture_output=True, text=True, timeout=120)
            assert t.returncode == 0 and "All done, no errors" in t.stdout, f"{label}: {cab.name}\n{t.stdout}"
    # the provisioning package does not change here: whatever is under its final names is what was there
    assert {p.name: p.read_bytes() for p in _final_names(ws / ARCH_DIR / "ppkgs")} == ppkgs_before, label


def test_sigkill_never_leaves_a_partial_ffu_and_the_next_build_succeeds(tmp_path: Path) -> None:
    require_tool("cabextract")
    ws = copy_workspace(tmp_path / "ws")
    run_cli(ws, "buildimage", "SampleA", "Test")  # the first build makes every input
    out = out_dir(ws, "SampleA", "Test")
    ffu = out / "Flash.ffu"
    readme = ws / "packages" / "Custom.Files" / "content" / "readme.txt"
    original = readme.read_bytes()
    ppkgs = {p.name: p.read_bytes() for p in _final_names(ws / ARCH_DIR / "ppkgs")}
    assert ppkgs, "the first build made SampleA's provisioning package"

    def start(n: int) -> tuple[subprocess.Popen, float]:
        readme.write_bytes(original + f"build {n}\r\n".encode())
        ffu.unlink(missing_ok=True)
        t0 = time.monotonic()
        proc = subprocess.Popen(cli_argv(ws, "buildimage", "SampleA", "Test", "--force"), cwd=ws,
                                env=cli_env(), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, start_new_session=True)
        return proc, t0

    proc, t0 = start(0)
    _, err = proc.communicate(timeout=300)
    duration = time.monotonic() - t0
    assert proc.returncode == 0, err.decode(errors="replace")

    rng = random.Random(SEED)
    points = sorted(rng.uniform(0.02, 0.98) * duration for _ in range(KILLS))
    outcomes = []
    for n, at in enumerate(points, 1):
        proc, t0 = start(n)
        time.sleep(max(0.0, t0 + at - time.monotonic()))
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:  # the whole group had already exited
            pass
        proc.communicate(timeout=60)
        label = f"kill {n} at {at:.2f} s of {duration:.2f} s (exit {proc.returncode})"
        if ffu.exists():  # written by the killed run: it must be complete
            v = run_cli(ws, "ffu.verify", str(ffu), "--json", check=False)
            assert v.returncode == 0 and json.loads(v.stdout)["ok"], f"{label}: {v.stdout}{v.stderr}"
        for side in out.glob("Flash.*.json"):
            json.loads(side.read_text())  # side files too are whole or absent
        _check_packages(ws, ppkgs, label)
        outcomes.append(ffu.exists())

    readme.write_bytes(original)
    p = run_cli(ws, "buildimage", "SampleA", "Test")
    assert "up to date" not in p.stdout
    v = json.loads(run_cli(ws, "ffu.verify", str(ffu), "--json").stdout)
    assert v["ok"]
    assert not list(out.glob(".work-*")), "the work folders of killed builds are cleaned up"
    _check_packages(ws, ppkgs, "after the final build")
    # the points are spread over the build: at least one kill came before Flash.ffu was in place
    assert not all(outcomes), outcomes
