"""Bad feature manifests and FM file lists must fail cleanly: through the real command line, for every case.

Each folder of ``tests/data/bad_fms`` is one case. Its files replace or add to the sample workspace's, at the
same relative paths (``packages/OEMFM.xml``, ``bsp/QEMUx64/Packages/QEMUx64FM.xml``, ``workspace/IoTWorkspace.xml``
…), and ``expect.toml`` says what must happen::

    about   = "what is wrong"                       # documentation only
    target  = "oem"                                 # the buildfm target: oem, a board name or all
    message = "substring of the error message"
    file    = "OEMFM.xml"                           # the file the error must name (its last path part)
    line    = 8                                     # the line it must name (omit when there is none)
    hint    = "substring of the fix: text"          # optional; every case must carry a "fix:" hint
    must_not_contain = "root:"                      # optional; text that must never be printed
    corrupt = { from = "X.cab", to = "dir/Y.cab" }  # optional; copy a cab the session built to <ws>/dir/Y.cab
                                                    # and flip one byte of its compressed payload
    xfail   = "why"                                 # optional; a known gap in the tool (strict)

A fresh workspace (``workspace/IoTWorkspace.xml``, ``packages/``, ``bsp/`` of this repository, one test PKI made
once per session) gets the case's files, then ``iotbuild buildfm <target>`` runs twice at the same time: once
for people, once with ``--json``. Each run must exit non-zero without a traceback, name ``file:line``, carry the
message and a ``fix:`` hint, and write none of buildfm's outputs: no ``InputFMs``/``MergedFMs``, no feature
identifier package, no ``FIPPackage_*.log``, no partial file. (buildfm builds the workspace's own packages before
it verifies them, so ordinary package cabs may appear.)
"""

from __future__ import annotations

import json
import os
import re
import shutil
import struct
import subprocess
import sys
import tomllib
from datetime import UTC, datetime
from pathlib import Path

import pytest

from iotbuild import samples
from iotbuild.signing.pki import ensure_test_pki
from tests.badinput import (assert_clean_json_error, assert_clean_text_error, case_params, load_expect,
                            run_both)

REPO = Path(__file__).resolve().parents[2]
CORPUS = REPO / "tests" / "data" / "bad_fms"
CASES = sorted(p.name for p in CORPUS.iterdir() if (p / "expect.toml").is_file()) if CORPUS.is_dir() else []

EPOCH = "1700000000"
TIMEOUT = 60
# Settings load_workspace and the FM tokens take from the environment: the developer's shell must not change
# what is tested (FOO_DIR: case 09 relies on it being unknown).
OVERRIDES = ("IOTBUILD_", "OEM_NAME", "ARCH", "BSP_VERSION", "BLD_DIR", "BSPPKG_DIR", "MSPKG_", "PKGBLD_DIR",
             "FOO_DIR")
KEYS = {"about", "target", "message", "file", "line", "hint", "must_not_contain", "corrupt", "xfail"}
# Feature identifier packages: <Owner>.<Key>.<FM ID>.<Partition>.cab
FIP_NAME = re.compile(r"\.(BASE|OEM_[^.]+|DEVICELAYOUT_[^.]+|OEMDEVICEPLATFORM_[^.]+)\.", re.IGNORECASE)


def _command() -> list[str]:
    script = Path(sys.executable).with_name("iotbuild")
    if script.is_file():
        return [str(script)]
    return [sys.executable, "-m", "iotbuild"]


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(OVERRIDES)}
    env.update(SOURCE_DATE_EPOCH=EPOCH, LC_ALL="C.UTF-8", NO_COLOR="1", TERM="dumb")
    return env


def _sample_workspace(ws: Path, certs: Path) -> None:
    (ws / "workspace").mkdir(parents=True)
    shutil.copy2(REPO / "workspace" / "IoTWorkspace.xml", ws / "workspace" / "IoTWorkspace.xml")
    shutil.copytree(certs, ws / "workspace" / "Certs")
    for d in ("packages", "bsp"):
        shutil.copytree(REPO / d, ws / d, ignore=shutil.ignore_patterns("__pycache__", "*.sys"))
    samples.prepare(ws)  # generated inputs (the sample driver's .sys) are not in a clean clone


@pytest.fixture(scope="session")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One test PKI for the whole session (RSA key generation is the slow part), copied into each workspace."""
    d = tmp_path_factory.mktemp("bad-fms-certs")
    ensure_test_pki(d, now=datetime.now(UTC), oem_name="Contoso")
    return d


@pytest.fixture(scope="session")
def built(tmp_path_factory: pytest.TempPathFactory, certs: Path) -> Path:
    """The sample packages, built once per session (only cases with ``corrupt`` ask for them)."""
    ws = tmp_path_factory.mktemp("bad-fms-built") / "ws"
    _sample_workspace(ws, certs)
    r = subprocess.run([*_command(), "buildpkg"], cwd=ws, env=_env(), stdin=subprocess.DEVNULL,
                       capture_output=True, text=True, timeout=120, check=False)
    assert r.returncode == 0, f"building the sample packages failed\n{r.stdout}\n{r.stderr}"
    return ws / "build" / "amd64" / "pkgs"


def _flip_payload_byte(cab: Path) -> None:
    """Flip one byte inside the first CFDATA block's compressed data (MS-CAB 2.1–2.4), not in the signature."""
    data = bytearray(cab.read_bytes())
    assert data[:4] == b"MSCF", cab
    flags = struct.unpack_from("<H", data, 30)[0]
    pos, cb_data_reserve = 36, 0
    if flags & 0x0004:  # cfhdrRESERVE_PRESENT
        cb_header, _cb_folder, cb_data_reserve = struct.unpack_from("<HBB", data, 36)
        pos += 4 + cb_header
    first_data = struct.unpack_from("<I", data, pos)[0]  # CFFOLDER[0].coffCabStart
    cb = struct.unpack_from("<H", data, first_data + 4)[0]
    assert cb > 4, cab
    at = first_data + 8 + cb_data_reserve + cb // 2
    data[at] ^= 0x5A
    cab.write_bytes(bytes(data))


def _make_workspace(base: Path, case: str, certs: Path, expect: dict, request: pytest.FixtureRequest) -> Path:
    ws = base / "ws"
    _sample_workspace(ws, certs)
    for src in sorted((CORPUS / case).rglob("*")):
        if src.is_file() and src.name != "expect.toml":
            dst = ws / src.relative_to(CORPUS / case)
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst)
    if "corrupt" in expect:
        c = expect["corrupt"]
        assert set(c) == {"from", "to"}, f"{case}/expect.toml: corrupt needs from and to"
        built: Path = request.getfixturevalue("built")
        dst = ws / c["to"]
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(built / c["from"], dst)
        _flip_payload_byte(dst)
    return ws


def _leftovers(ws: Path) -> list[str]:
    """What buildfm must not have written when it failed."""
    build = ws / "build"
    if not build.exists():
        return []
    out = []
    for p in build.rglob("*"):
        rel = str(p.relative_to(ws))
        if p.name in ("InputFMs", "MergedFMs") or p.name.startswith((".fip.", "FIPPackage_")) \
                or ".partial" in p.name or (p.is_file() and p.name.lower().endswith(".cab") and FIP_NAME.search(p.name)):
            out.append(rel)
    return sorted(out)


@pytest.mark.parametrize("case", case_params(CORPUS, CASES))
def test_bad_fm_fails_cleanly(case: str, tmp_path: Path, certs: Path, request: pytest.FixtureRequest) -> None:
    expect = load_expect(CORPUS, case, KEYS, ("target", "message", "file"))
    env = _env()
    out = run_both([*_command(), "buildfm", expect["target"]],
                   lambda mode: (_make_workspace(tmp_path / mode, case, certs, expect, request), env),
                   timeout=TIMEOUT, label=case)
    common = dict(file=expect["file"], line=expect.get("line"), message=expect["message"], hint=expect.get("hint"),
                  must_not_contain=expect.get("must_not_contain"), leftovers=_leftovers,
                  left_behind="failed buildfm wrote files")
    assert_clean_text_error(out["text"], in_folder=True, **common)
    # the JSON error carries a hint, and the case's hint text when it names one
    assert_clean_json_error(out["json"], **common)


def test_corpus_is_big_enough() -> None:
    assert len(CASES) >= 18
    for c in CASES:
        expect = tomllib.loads((CORPUS / c / "expect.toml").read_text())
        assert expect.get("target"), f"{c}/expect.toml names no buildfm target"


def test_sample_workspace_builds(tmp_path: Path, certs: Path) -> None:
    """The corpus is only meaningful if the unbroken sample passes: buildfm all succeeds and writes its outputs."""
    ws = tmp_path / "ws"
    _sample_workspace(ws, certs)
    r = subprocess.run([*_command(), "buildfm", "all", "--json"], cwd=ws, env=_env(), stdin=subprocess.DEVNULL,
                       capture_output=True, text=True, timeout=TIMEOUT, check=False)
    assert r.returncode == 0, f"{r.stdout}\n{r.stderr}"
    assert json.loads(r.stdout)["ok"] is True
    assert _leftovers(ws), "the sample build wrote no feature identifier package or merged FM"
