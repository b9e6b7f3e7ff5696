"""Shared fixtures. Outside checkers (cabextract, gcab, osslsigncode) are skipped when missing locally
but required in CI (CI=true), so a green CI run always means they ran."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SAMPLES = REPO.parent / "shared" / "samples"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require_tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        if IN_CI:
            pytest.fail(f"{name} is required in CI; scripts/setup.sh --test installs it")
        pytest.skip(f"{name} not installed")
    return path


def osslsigncode_version() -> tuple[int, ...]:
    require_tool("osslsigncode")
    out = subprocess.run(["osslsigncode", "--version"], capture_output=True, text=True).stdout
    m = re.search(r"osslsigncode (\d+(?:\.\d+)*)", out)
    return tuple(int(p) for p in m.group(1).split(".")) if m else (0,)


@pytest.fixture
def samples() -> Path:
    if not SAMPLES.is_dir():
        pytest.skip("../shared/samples is not present")
    return SAMPLES


@pytest.fixture(autouse=True)
def _fixed_epoch(monkeypatch):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
