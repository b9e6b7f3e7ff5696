"""Shared helpers for the provisioning tests: the real command line, a fresh workspace, wimlib checks.

The command line is ``iotbuild.cli.main`` with the provisioning tasks in its namespace: until
``tools/iotbuild/tasks/__init__.py`` registers them, the boot snippet adds them to the same ``ns`` first (so the
code under test is the same ``handle_errors`` → exit code path either way).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

from iotbuild.signing.pki import ensure_test_pki
from tests.conftest import REPO, SAMPLES, require_tool

EPOCH = "1700000000"
OVERRIDES = ("IOTBUILD_", "OEM_NAME", "ARCH", "BSP_VERSION", "BLD_DIR")
BOOT = ("import sys\n"
        "from iotbuild.tasks import ns, ppkg\n"
        "if 'buildppkg' not in ns.tasks:\n"
        "    ns.add_task(ppkg.buildppkg)\n"
        "    ns.add_collection(ppkg.ns)\n"
        "from iotbuild.cli import main\n"
        "sys.argv[0] = 'iotbuild'\n"
        "main()\n")
ACER = SAMPLES / "ppkg" / "compiled-acer"


def cli() -> list[str]:
    return [sys.executable, "-c", BOOT]


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(OVERRIDES)}
    env.update({"SOURCE_DATE_EPOCH": EPOCH, "LC_ALL": "C.UTF-8", "NO_COLOR": "1", "TERM": "dumb", **extra})
    return env


def make_certs(base: Path) -> Path:
    d = base / "certs"
    ensure_test_pki(d, now=datetime.now(timezone.utc), oem_name="Contoso")
    return d


def make_workspace(base: Path, certs: Path, *, with_products: bool = False) -> Path:
    ws = base / "ws"
    (ws / "workspace").mkdir(parents=True)
    shutil.copy2(REPO / "workspace" / "IoTWorkspace.xml", ws / "workspace" / "IoTWorkspace.xml")
    shutil.copytree(certs, ws / "workspace" / "Certs")
    if with_products:
        for d in ("packages", "bsp", "products"):
            shutil.copytree(REPO / d, ws / d)
    return ws


def run_cli(ws: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 300
            ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*cli(), *args], cwd=ws, env=env or clean_env(), capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=timeout)


def wimlib(*args: str | Path) -> str:
    require_tool("wimlib-imagex")
    p = subprocess.run(["wimlib-imagex", *map(str, args)], capture_output=True, timeout=120)
    assert p.returncode == 0, (args, p.stdout, p.stderr)
    if args and args[0] == "info" and "--xml" in args:
        raw = p.stdout
        return raw[2:].decode("utf-16-le") if raw[:2] == b"\xff\xfe" else raw.decode()
    return p.stdout.decode("utf-8", "replace")


def wim_files(wim: Path) -> list[str]:
    return [line for line in wimlib("dir", wim, "1").splitlines() if line.startswith("/")]


def acer_layout() -> list[str]:
    """The member list of the real package, from the dump saved beside it."""
    text = (ACER / "_wim-header-xml-and-listing.txt").read_text()
    listing = text.split("# file list (wimlib-imagex dir)", 1)[1]
    return [line for line in listing.splitlines() if line.startswith("/")]
