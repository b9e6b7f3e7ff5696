"""Bad image inputs must fail cleanly: through the real command line, for every case of the corpus.

Each folder of ``tests/data/bad_images`` is one case, with ``expect.toml``::

    about   = "what is wrong"                       # documentation only
    kind    = "product"                             # product | layout | ffu
    message = "substring of the error message"
    file    = "TestOEMInput.xml"                    # the file the error must name (omit: the error has none)
    line    = 8                                     # the line it must name (omit when it has none)
    hint    = "substring of the fix: text"          # optional; every error must carry a "fix:" hint
    names   = ["Contoso.A", "Contoso.B"]            # optional; more substrings the error line must hold
    errors  = 2                                     # optional; problems the run reports (default 1)
    exit_code = 1                                   # optional; default: any non-zero
    config  = "Retail"                              # product: which <Config>OEMInput.xml (default Test)
    workspace = "retail"                            # product: run in the retail-signed workspace
    inputs  = true                                  # product: it has its own packages to build first
    command = "ffu.verify"                          # ffu: ffu.info or ffu.verify
    input   = "Flash.ffu"                           # ffu: a file of the case (default: the sample's FFU)
    mutate  = [{at = "image+4", ascii = "X"}]       # ffu: changes to it (see _mutate)
    xfail   = "why"                                 # optional; a known gap in the tool (strict)

* product: the case's files become ``products/<case>/`` of a built sample workspace and
  ``buildimage <case> <config>`` runs, once for people and once with ``--json`` (``--no-inputs``: the inputs
  are built; a case with its own packages builds them in its first run). Nothing may be left in its output
  folder: no Flash.ffu, no work folder.
* layout: the case's DeviceLayout.xml / OEMDevicePlatform.xml replace the QEMUx64.DeviceLayout package's;
  ``buildimage SampleA Test`` rebuilds that package itself and must fail (then once more with ``--json``);
  the originals are put back afterwards.
* ffu: the sample's Flash.ffu (or the case's file), changed as ``mutate`` says, is given to ``command``.

Each run must exit non-zero without a traceback and print one error naming ``file:line`` with the message and
a hint (the ``--json`` run: the same as JSON).
"""

from __future__ import annotations

import json
import random
import shutil
import struct
import subprocess
import tomllib
from pathlib import Path

import pytest

from tests.badinput import (RunResult, assert_clean_json_error, assert_clean_text_error, case_params,
                            json_errors, load_expect, run_both)
from tests.imagecheck import (ARCH_DIR, cli_argv, cli_env, copy_workspace, ffu_regions, make_retail, out_dir,
                              run_cli)

REPO = Path(__file__).resolve().parents[2]
CORPUS = REPO / "tests" / "data" / "bad_images"
KEYS = {"about", "kind", "message", "file", "line", "hint", "names", "errors", "exit_code", "config",
        "workspace", "inputs", "command", "input", "mutate", "xfail", "must_not_contain"}
LAYOUT_PACKAGE = Path("bsp/QEMUx64/Packages/QEMUx64.DeviceLayout")
LAYOUT_FILES = ("DeviceLayout.xml", "OEMDevicePlatform.xml")
TIMEOUT = 120


def _kind(case: Path) -> str | None:
    expect = case / "expect.toml"
    return tomllib.loads(expect.read_text()).get("kind") if expect.is_file() else None


def _cases(kind: str) -> list[str]:
    return sorted(p.name for p in CORPUS.iterdir() if _kind(p) == kind)


def _expect(case: str) -> dict:
    return load_expect(CORPUS, case, KEYS, ("kind", "message"))


@pytest.fixture(scope="module")
def test_ws(tmp_path_factory) -> Path:
    """The sample workspace, built once (its inputs serve every product case; its Flash.ffu the ffu cases)."""
    ws = copy_workspace(tmp_path_factory.mktemp("bad-images") / "ws")
    run_cli(ws, "buildimage", "SampleA", "Test")
    return ws


@pytest.fixture(scope="module")
def sample_ffu(test_ws: Path, tmp_path_factory) -> bytes:
    return (out_dir(test_ws, "SampleA", "Test") / "Flash.ffu").read_bytes()


@pytest.fixture(scope="module")
def retail_ws(tmp_path_factory) -> Path:
    """A workspace signing with a retail PKI: its inputs are built by the first case that uses it."""
    ws = copy_workspace(tmp_path_factory.mktemp("bad-images-retail") / "ws")
    make_retail(ws)
    return ws


# --- checks ----------------------------------------------------------------------------------------------
def _leftovers_in(folder: Path):  # noqa: ANN202
    def leftovers(_ws: Path) -> list[str]:
        if not folder.is_dir():
            return []
        return sorted(p.name for p in folder.iterdir()
                      if p.name == "Flash.ffu" or p.name.startswith(".work-") or ".partial" in p.name)
    return leftovers


def _check(out: dict[str, RunResult], expect: dict, leftovers) -> None:  # noqa: ANN001
    common = dict(message=expect["message"], must_not_contain=expect.get("must_not_contain"),
                  exit_code=expect.get("exit_code"), leftovers=leftovers,
                  left_behind="a failed run left an image or its work folder behind")
    text, js = out["text"], out["json"]
    if "file" in expect:
        assert_clean_text_error(text, file=expect["file"], line=expect.get("line"), hint=expect.get("hint"),
                                **common)
        assert_clean_json_error(js, file=expect["file"], line=expect.get("line"), hint=expect.get("hint"),
                                **common)
    else:  # an error about packages, not about one file (conflicts): it must name no file at all
        for r in (text, js):
            assert r.rc != 0 and (expect.get("exit_code") is None or r.rc == expect["exit_code"]), r.shown
            assert "Traceback" not in r.stdout + r.stderr, r.shown
            assert leftovers(r.ws) == [], r.shown
        lines = [ln for ln in (text.stdout + text.stderr).splitlines() if expect["message"] in ln]
        assert lines and all(ln.startswith("error: ") and "(fix: " in ln for ln in lines), text.shown
        errors = [e for e in json_errors(json.loads(js.stdout)) if expect["message"] in e.get("message", "")]
        assert errors and all(e.get("hint") and e.get("file") is None for e in errors), js.shown
    # one error: the run reports this problem and no other (unless the case says how many)
    problems = [ln for ln in (text.stdout + text.stderr).splitlines() if ln.strip()]
    assert len(problems) == expect.get("errors", 1), text.shown
    line = next(ln for ln in problems if expect["message"] in ln)
    for name in expect.get("names", []):
        assert name in line, f"the error does not name {name!r}\n{text.shown}"


def _run_sequential(argv: list[str], ws: Path) -> dict[str, RunResult]:
    """The run for people first (it may build inputs), then the --json one without rebuilding them."""
    out = {}
    for mode, extra in (("text", []), ("json", ["--no-inputs", "--json"])):
        p = subprocess.run([*argv, *extra], cwd=ws, env=cli_env(), capture_output=True, text=True,
                           timeout=TIMEOUT, stdin=subprocess.DEVNULL)
        out[mode] = RunResult(mode, ws, p.returncode, p.stdout, p.stderr)
    return out


# --- product: an OEMInput (and what it brings) in products/<case> -----------------------------------------
@pytest.mark.parametrize("case", case_params(CORPUS, _cases("product")))
def test_bad_product_fails_cleanly(case: str, request: pytest.FixtureRequest) -> None:
    expect = _expect(case)
    retail = expect.get("workspace") == "retail"
    ws: Path = request.getfixturevalue("retail_ws" if retail else "test_ws")
    product = ws / "products" / case
    shutil.rmtree(product, ignore_errors=True)
    shutil.copytree(CORPUS / case, product, ignore=shutil.ignore_patterns("expect.toml"))
    config = expect.get("config", "Test")
    argv = cli_argv(ws, "buildimage", case, config)
    if expect.get("inputs") or retail:
        out = _run_sequential(argv, ws)
    else:
        out = run_both([*argv, "--no-inputs"], lambda mode: (ws, cli_env()), timeout=TIMEOUT, label=case)
    _check(out, expect, _leftovers_in(out_dir(ws, case, config)))


# --- ffu: a damaged or foreign file given to ffu.info / ffu.verify -----------------------------------------
def _mutate(data: bytes, ops: list[dict]) -> bytes:
    """Apply ``ops`` in order. Offsets are numbers or ``"<anchor>±n"`` with the anchors of
    ``tests.imagecheck.FfuRegions.at`` (start, catalog, hashtable, image, manifest, store, payload, end),
    located in the sample before any change."""
    regions = ffu_regions(data) if data[:16] == b"\x20\0\0\0SignedImage " else None
    buf = bytearray(data)
    for op in ops:
        at = regions.at(op["at"]) if "at" in op and regions else op.get("at", 0)
        if "xor" in op:
            buf[at] ^= op["xor"]
        elif "ascii" in op:
            buf[at:at + len(op["ascii"])] = op["ascii"].encode("ascii")
        elif "u32" in op:
            buf[at:at + 4] = struct.pack("<I", op["u32"])
        elif "truncate" in op:
            del buf[regions.at(op["truncate"]) if regions else op["truncate"]:]
        elif "append" in op:
            buf += bytes(random.Random(op.get("seed", 0)).randrange(256) for _ in range(op["append"]))
        elif "random" in op:
            buf = bytearray(random.Random(op.get("seed", 0)).randbytes(op["random"]))
        else:
            raise AssertionError(f"unknown mutation {op}")
    return bytes(buf)


@pytest.mark.parametrize("case", case_params(CORPUS, _cases("ffu")))
def test_bad_ffu_fails_cleanly(case: str, sample_ffu: bytes, tmp_path: Path) -> None:
    expect = _expect(case)
    name = expect.get("input", "Flash.ffu")
    source = (CORPUS / case / expect["input"]).read_bytes() if "input" in expect else sample_ffu
    bad = tmp_path / name
    bad.write_bytes(_mutate(source, expect.get("mutate", [])))
    argv = cli_argv(None, expect["command"], str(bad))
    out = run_both(argv, lambda mode: (tmp_path, cli_env()), timeout=TIMEOUT, label=case)
    _check(out, {"file": name, **expect}, lambda _ws: [])


# --- layout: the board's DeviceLayout package, changed (last: it leaves that package to be rebuilt) ---------
@pytest.mark.parametrize("case", case_params(CORPUS, _cases("layout")))
def test_bad_layout_fails_cleanly(case: str, test_ws: Path) -> None:
    expect = _expect(case)
    package = test_ws / LAYOUT_PACKAGE
    originals = {n: (package / n).read_bytes() for n in LAYOUT_FILES}
    out = out_dir(test_ws, "SampleA", "Test")
    (out / "Flash.ffu").unlink(missing_ok=True)  # any Flash.ffu afterwards would be this run's
    try:
        for n in LAYOUT_FILES:
            if (CORPUS / case / n).is_file():
                shutil.copy2(CORPUS / case / n, package / n)
        result = _run_sequential(cli_argv(test_ws, "buildimage", "SampleA", "Test"), test_ws)
    finally:
        for n, data in originals.items():
            (package / n).write_bytes(data)
    _check(result, expect, _leftovers_in(out))
    assert (test_ws / ARCH_DIR / "pkgs" / "Contoso.QEMUx64.DeviceLayout.cab").is_file()


def test_corpus_is_big_enough() -> None:
    cases = {k: _cases(k) for k in ("product", "layout", "ffu")}
    assert sum(map(len, cases.values())) >= 20 and all(len(v) >= 5 for v in cases.values()), cases
