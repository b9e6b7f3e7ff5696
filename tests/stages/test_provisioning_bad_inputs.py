"""Bad answer files fail cleanly through the real command line: one clear error each, nothing written.

Each folder of ``tests/data/bad_customizations`` is one case: ``customizations.xml`` (plus what it needs) and
``expect.toml``::

    about   = "what is wrong"                  # documentation only
    message = "substring of the error message"
    file    = "customizations.xml"             # the file the error must name
    line    = 12                               # the line it must name (omitted when no line applies)
    hint    = "substring of the fix: text"     # every case must carry a "fix:" hint
    args    = ["--encrypt"]                    # optional extra buildppkg arguments
    command = "resolve"                        # optional: run ppkg.resolve --device device.yaml instead

The case is copied into ``<ws>/prov/<case>`` of a fresh workspace; ``buildppkg prov/<case>/customizations.xml``
runs once for people and once with ``--json``. Each run must exit 1 without a traceback, name ``file:line``,
carry the message and a hint, and leave nothing under ``build/``.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.stages.test_provisioning_support import cli, clean_env, make_certs, make_workspace

CORPUS = REPO / "tests" / "data" / "bad_customizations"
CASES = sorted(p.name for p in CORPUS.iterdir() if (p / "expect.toml").is_file())
KEYS = {"about", "message", "file", "line", "hint", "args", "command"}
TIMEOUT = 120


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_certs(tmp_path_factory.mktemp("ppkg-bad-certs"))


def _argv(case: str, expect: dict, as_json: bool) -> list[str]:
    answer = f"prov/{case}/customizations.xml"
    if expect.get("command") == "resolve":
        argv = ["ppkg.resolve", "--device", f"prov/{case}/device.yaml", answer]
    else:
        argv = ["buildppkg", answer, *expect.get("args", [])]
    return [*cli(), *argv, *(["--json"] if as_json else [])]


@pytest.mark.parametrize("case", CASES)
def test_bad_answer_file_fails_cleanly(case: str, tmp_path: Path, certs: Path) -> None:
    expect = tomllib.loads((CORPUS / case / "expect.toml").read_text())
    assert set(expect) <= KEYS, f"{case}/expect.toml: unknown keys {set(expect) - KEYS}"
    assert {"message", "file", "hint"} <= set(expect), f"{case}/expect.toml needs message, file and hint"
    file, line, message = expect["file"], expect.get("line"), expect["message"]
    where = f"{file}:{line}:" if line else f"{file}: "
    procs = {}
    for mode in ("text", "json"):
        ws = make_workspace(tmp_path / mode, certs)
        shutil.copytree(CORPUS / case, ws / "prov" / case, ignore=shutil.ignore_patterns("expect.toml"))
        procs[mode] = (ws, subprocess.Popen(_argv(case, expect, mode == "json"), cwd=ws, env=clean_env(),
                                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                            stderr=subprocess.PIPE))
    out = {}
    for mode, (ws, proc) in procs.items():
        try:
            stdout, stderr = proc.communicate(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            pytest.fail(f"{mode} run of {case} took more than {TIMEOUT} s")
        out[mode] = (ws, proc.returncode, stdout.decode("utf-8", "replace"), stderr.decode("utf-8", "replace"))

    ws, rc, stdout, stderr = out["text"]
    shown = f"exit {rc}\n--- stdout\n{stdout}\n--- stderr\n{stderr}"
    assert rc == 1, shown
    assert "Traceback" not in stdout + stderr, shown
    matching = [ln for ln in (stdout + stderr).splitlines() if message in ln]
    assert matching, f"no error line contains {message!r}\n{shown}"
    located = [ln for ln in matching if where in ln]
    assert located, f"the error {message!r} does not name {where!r}\n{shown}"
    assert [ln for ln in located if "(fix: " in ln and expect["hint"] in ln.split("(fix: ", 1)[1]], \
        f"the error {message!r} has no 'fix:' hint containing {expect['hint']!r}\n{shown}"
    assert _written(ws) == [], f"a failed build left files behind\n{shown}"

    ws, rc, stdout, stderr = out["json"]
    shown = f"exit {rc}\n--- stdout\n{stdout}\n--- stderr\n{stderr}"
    assert rc == 1, shown
    assert "Traceback" not in stdout + stderr, shown
    doc = json.loads(stdout)
    assert doc["ok"] is False, shown
    errors = list(doc["error"].get("errors") or [doc["error"]])
    hits = [e for e in errors if message in (e.get("message") or "") and Path(e.get("file") or "").name == file
            and e.get("line") == line and e.get("hint")]
    assert hits, f"no JSON error with {message!r} at {file}:{line} and a hint\n{shown}"
    assert _written(ws) == [], f"a failed build left files behind\n{shown}"


def _written(ws: Path) -> list[str]:
    build = ws / "build"
    return sorted(str(p.relative_to(ws)) for p in build.rglob("*")) if build.exists() else []


def test_corpus_is_big_enough() -> None:
    assert len(CASES) >= 15
