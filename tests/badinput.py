"""Shared checks for the bad-input corpora run through the real command line.

A harness (``tests/stages/test_bad_inputs.py`` for buildpkg, ``test_bad_fms.py`` for buildfm,
``test_provisioning_bad_inputs.py`` for buildppkg) owns its corpus layout, its workspace setup and its rule for what
a failed run must not leave behind. This module owns what they have in common:

* :func:`load_expect` and :func:`case_params` read a case's ``expect.toml``;
* :func:`run_both` runs the command twice at the same time (for people, and with ``--json``);
* :func:`assert_clean_text_error` and :func:`assert_clean_json_error` check one run: non-zero exit, no traceback,
  one error naming ``file:line`` with the message and a ``(fix: …)`` hint, and nothing left behind.
"""

from __future__ import annotations

import json
import subprocess
import tomllib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import pytest

MODES = ("text", "json")

Leftovers = Callable[[Path], list[str]]


def load_expect(corpus: Path, case: str, keys: set[str], required: tuple[str, ...]) -> dict:
    """``<corpus>/<case>/expect.toml``, checked to use only ``keys`` and to have every key of ``required``."""
    expect = tomllib.loads((corpus / case / "expect.toml").read_text())
    assert set(expect) <= keys, f"{case}/expect.toml: unknown keys {set(expect) - keys}"
    needs = ", ".join(required[:-1]) + f" and {required[-1]}" if len(required) > 1 else required[0]
    assert set(required) <= set(expect), f"{case}/expect.toml needs {needs}"
    return expect


def case_params(corpus: Path, cases: Iterable[str]) -> list:
    """The cases as pytest parameters; a case whose expect.toml has ``xfail = "why"`` is a strict xfail."""
    out = []
    for case in cases:
        reason = tomllib.loads((corpus / case / "expect.toml").read_text()).get("xfail")
        out.append(pytest.param(case, marks=pytest.mark.xfail(reason=reason, strict=True)) if reason else case)
    return out


@dataclass(frozen=True)
class RunResult:
    mode: str  # "text" or "json"
    ws: Path
    rc: int
    stdout: str
    stderr: str

    @property
    def shown(self) -> str:
        """The whole run, for failure messages."""
        return f"exit {self.rc}\n--- stdout\n{self.stdout}\n--- stderr\n{self.stderr}"


def run_both(argv: list[str], setup: Callable[[str], tuple[Path, dict[str, str]]], *, timeout: float,
             label: str) -> dict[str, RunResult]:
    """Run ``argv`` (and ``argv + ["--json"]``) at the same time, each in the workspace ``setup(mode)`` returns.

    ``setup(mode)`` makes that run's workspace and returns it with the run's environment; the text run starts
    before the json workspace is made, so the two overlap. A run that takes more than ``timeout`` seconds fails
    the test (``label`` names the case).
    """
    procs = {}
    for mode in MODES:
        ws, env = setup(mode)
        cmd = [*argv, *(["--json"] if mode == "json" else [])]
        procs[mode] = (ws, subprocess.Popen(cmd, cwd=ws, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                            stderr=subprocess.PIPE))
    out = {}
    for mode, (ws, proc) in procs.items():
        try:
            stdout, stderr = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            pytest.fail(f"{mode} run of {label} took more than {timeout} s")
        out[mode] = RunResult(mode, ws, proc.returncode, stdout.decode("utf-8", "replace"),
                              stderr.decode("utf-8", "replace"))
    return out


def json_errors(doc: dict) -> list[dict]:
    """The errors of a ``--json`` failure: ``error.errors[]`` (InputErrors) or the one ``error``."""
    err = doc.get("error") or {}
    return list(err.get("errors") or [err])


def _assert_failed(r: RunResult, exit_code: int | None) -> None:
    if exit_code is None:
        assert r.rc != 0, r.shown
    else:
        assert r.rc == exit_code, r.shown
    assert "Traceback" not in r.stderr + r.stdout, r.shown


def _assert_after(r: RunResult, must_not_contain: str | None, leftovers: Leftovers, left_behind: str) -> None:
    if must_not_contain is not None:
        assert must_not_contain not in r.stdout + r.stderr, r.shown
    assert leftovers(r.ws) == [], f"{left_behind}\n{r.shown}"


def assert_clean_text_error(r: RunResult, *, file: str, line: int | None, message: str, hint: str | None = None,
                            must_not_contain: str | None = None, exit_code: int | None = None,
                            in_folder: bool = False, leftovers: Leftovers, left_behind: str) -> None:
    """The run for people failed cleanly.

    It exited non-zero (``exit_code`` if given) without a traceback; one output line carries ``message``, names
    ``file:line:`` (``file: `` without a line; ``/file…`` if ``in_folder``: the file is named with its folder) and a
    ``(fix: …)`` hint containing ``hint``; ``must_not_contain`` is printed nowhere; ``leftovers(ws)`` is empty, else
    the test fails with ``left_behind``.
    """
    where = ("/" if in_folder else "") + (f"{file}:{line}:" if line else f"{file}: ")  # as IotbuildError.where()
    _assert_failed(r, exit_code)
    matching = [ln for ln in (r.stdout + r.stderr).splitlines() if message in ln]
    assert matching, f"no error line contains {message!r}\n{r.shown}"
    # message, place and hint belong to one error line (a run may report several problems)
    located = [ln for ln in matching if where in ln]
    assert located, f"the error {message!r} does not name {where!r}\n{r.shown}"
    hinted = [ln for ln in located if "(fix: " in ln and (hint or "") in ln.split("(fix: ", 1)[1]]
    assert hinted, f"the error {message!r} has no 'fix:' hint" + \
        (f" containing {hint!r}" if hint is not None else "") + f"\n{r.shown}"
    _assert_after(r, must_not_contain, leftovers, left_behind)


def assert_clean_json_error(r: RunResult, *, file: str, line: int | None, message: str, hint: str | None = None,
                            hint_required: bool = True, every_hinted: bool = True,
                            must_not_contain: str | None = None, exit_code: int | None = None,
                            leftovers: Leftovers, left_behind: str) -> None:
    """The ``--json`` run failed cleanly.

    It exited non-zero (``exit_code`` if given) without a traceback; stdout is one JSON document with ``ok`` false
    and an error whose message contains ``message``, whose file is named ``file`` and whose line is ``line``.
    The hint of such an error must be non-empty (if ``hint_required``) and contain ``hint`` (if given) — for every
    such error if ``every_hinted``, else for at least one. ``must_not_contain`` is printed nowhere;
    ``leftovers(ws)`` is empty, else the test fails with ``left_behind``.
    """
    _assert_failed(r, exit_code)
    try:
        doc = json.loads(r.stdout)
    except json.JSONDecodeError as e:
        pytest.fail(f"--json stdout is not JSON ({e})\n{r.shown}")
    assert doc.get("ok") is False, r.shown
    errors = [e for e in json_errors(doc) if message in (e.get("message") or "")]
    assert errors, f"no JSON error has a message containing {message!r}\n{r.shown}"
    located = [e for e in errors if Path(e.get("file") or "").name == file and e.get("line") == line]
    assert located, f"no JSON error names {file}" + (f" line {line}" if line else "") + f"\n{r.shown}"

    def hinted(e: dict) -> bool:
        text = e.get("hint") or ""
        return (bool(text) or not hint_required) and (hint is None or hint in (text or "\0"))

    if every_hinted:
        assert all(hinted(e) for e in located), r.shown
    else:
        assert any(hinted(e) for e in located), \
            f"no JSON error with {message!r} at {file}:{line} and a hint" + \
            (f" containing {hint!r}" if hint is not None else "") + f"\n{r.shown}"
    _assert_after(r, must_not_contain, leftovers, left_behind)
