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

import shutil
from pathlib import Path

import pytest

from tests.badinput import assert_clean_json_error, assert_clean_text_error, load_expect, run_both
from tests.conftest import REPO
from tests.stages.test_provisioning_support import cli, clean_env, make_certs, make_workspace

CORPUS = REPO / "tests" / "data" / "bad_customizations"
CASES = sorted(p.name for p in CORPUS.iterdir() if (p / "expect.toml").is_file())
KEYS = {"about", "message", "file", "line", "hint", "args", "command"}
TIMEOUT = 120


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_certs(tmp_path_factory.mktemp("ppkg-bad-certs"))


def _argv(case: str, expect: dict) -> list[str]:
    answer = f"prov/{case}/customizations.xml"
    if expect.get("command") == "resolve":
        argv = ["ppkg.resolve", "--device", f"prov/{case}/device.yaml", answer]
    else:
        argv = ["buildppkg", answer, *expect.get("args", [])]
    return [*cli(), *argv]


def _make_workspace(base: Path, case: str, certs: Path) -> tuple[Path, dict[str, str]]:
    ws = make_workspace(base, certs)
    shutil.copytree(CORPUS / case, ws / "prov" / case, ignore=shutil.ignore_patterns("expect.toml"))
    return ws, clean_env()


@pytest.mark.parametrize("case", CASES)
def test_bad_answer_file_fails_cleanly(case: str, tmp_path: Path, certs: Path) -> None:
    expect = load_expect(CORPUS, case, KEYS, ("message", "file", "hint"))
    out = run_both(_argv(case, expect), lambda mode: _make_workspace(tmp_path / mode, case, certs),
                   timeout=TIMEOUT, label=case)
    common = dict(file=expect["file"], line=expect.get("line"), message=expect["message"], exit_code=1,
                  leftovers=_written, left_behind="a failed build left files behind")
    assert_clean_text_error(out["text"], hint=expect["hint"], **common)
    # one JSON error with the message at the place must carry a (non-empty) hint
    assert_clean_json_error(out["json"], every_hinted=False, **common)


def _written(ws: Path) -> list[str]:
    build = ws / "build"
    return sorted(str(p.relative_to(ws)) for p in build.rglob("*")) if build.exists() else []


def test_corpus_is_big_enough() -> None:
    assert len(CASES) >= 15
