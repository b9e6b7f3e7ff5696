"""scripts/bench_ppkg.py runs and reports its figure (the timing target itself is checked by running the script)."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import REPO


def test_benchmark_script_runs_on_a_small_device_set() -> None:
    p = subprocess.run([sys.executable, str(REPO / "scripts" / "bench_ppkg.py"), "--devices", "25", "--no-fail"],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    assert "package: 3000 setting × TargetState entries" in p.stdout
    assert "resolve per device: mean" in p.stdout and "target ≤ 5 ms mean" in p.stdout
