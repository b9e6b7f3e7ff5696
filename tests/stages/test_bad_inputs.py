"""Bad package definitions must fail cleanly: through the real command line, for every case of the corpus.

Each folder of ``tests/data/bad_packages`` is one case: a broken ``.wm.xml`` (plus what it needs: payloads, an
INF, a placeholder ``.sys``) and ``expect.toml``::

    about   = "what is wrong"                       # documentation only
    message = "substring of the error message"
    file    = "Bad.wm.xml"                          # the file the error must name
    line    = 8                                     # the line it must name (omit for a certificate or key)
    hint    = "substring of the fix: text"          # optional; every case must carry a "fix:" hint
    target  = "X.pkg.xml"                           # optional; default: the case folder
    setup   = "expired-test-pki"                    # optional; a workspace change made by this harness
    must_not_contain = "root:"                      # optional; text that must never be printed
    xfail   = "why"                                 # optional; a known gap in the tool (strict: fails once fixed)

The case is copied into ``<tmp>/ws/packages/<case>`` of a fresh workspace and ``iotbuild buildpkg <target>`` runs
twice, at the same time: once for people, once with ``--json``. Each run must exit non-zero without a traceback,
name ``file:line``, carry the message and a hint, and leave no cab or partial file under ``build/``.
"""

from __future__ import annotations

import os
import shutil
import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from iotbuild.signing.pki import ensure_test_pki
from tests.badinput import (assert_clean_json_error, assert_clean_text_error, case_params, load_expect,
                            run_both)

REPO = Path(__file__).resolve().parents[2]
CORPUS = REPO / "tests" / "data" / "bad_packages"
CASES = sorted(p.name for p in CORPUS.iterdir() if (p / "expect.toml").is_file())

EPOCH = "1700000000"
TIMEOUT = 60
# Settings load_workspace takes from the environment: the developer's shell must not change what is tested.
OVERRIDES = ("IOTBUILD_", "OEM_NAME", "ARCH", "BSP_VERSION", "BLD_DIR")
KEYS = {"about", "message", "file", "line", "hint", "target", "setup", "must_not_contain", "xfail"}
EXPIRED_AFTER = datetime(2020, 1, 1, tzinfo=timezone.utc)


def _command() -> list[str]:
    """The installed console script (``python -m iotbuild.cli`` does not call main()); else the same entry point."""
    script = Path(sys.executable).with_name("iotbuild")
    if script.is_file():
        return [str(script)]
    return [sys.executable, "-c", "import sys; from iotbuild.cli import main; sys.exit(main())"]


@pytest.fixture(scope="session")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One test PKI for the whole session (RSA key generation is the slow part), copied into each workspace."""
    d = tmp_path_factory.mktemp("bad-inputs-certs")
    ensure_test_pki(d, now=datetime.now(timezone.utc), oem_name="Contoso")
    return d


def _expired_chain(key, oem: str = "Contoso") -> list[x509.Certificate]:
    """Root → intermediate → code-signing leaf, all expired on 2020-01-01 (one key: only the dates matter)."""
    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, oem),
                          x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    def issue(subject: x509.Name, issuer: x509.Name, *, ca: bool) -> x509.Certificate:
        b = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(key.public_key())
             .serial_number(x509.random_serial_number())
             .not_valid_before(datetime(2015, 1, 1, tzinfo=timezone.utc)).not_valid_after(EXPIRED_AFTER)
             .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
        if not ca:
            b = b.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), critical=False)
        return b.sign(key, hashes.SHA256())

    root, mid = name("iotbuild OEM Test Root (TEST ONLY)"), name("iotbuild OEM Test Intermediate (TEST ONLY)")
    leaf = name(f"{oem} OEM Test Cert (TEST ONLY)")
    return [issue(root, root, ca=True), issue(mid, root, ca=True), issue(leaf, mid, ca=False)]


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _make_workspace(base: Path, case: str, certs: Path, setup: str | None) -> tuple[Path, dict[str, str]]:
    ws = base / "ws"
    (ws / "workspace").mkdir(parents=True)
    shutil.copy2(REPO / "workspace" / "IoTWorkspace.xml", ws / "workspace" / "IoTWorkspace.xml")
    shutil.copytree(certs, ws / "workspace" / "Certs")
    shutil.copytree(CORPUS / case, ws / "packages" / case, ignore=shutil.ignore_patterns("expect.toml"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(OVERRIDES)}
    env.update(SOURCE_DATE_EPOCH=EPOCH, LC_ALL="C.UTF-8", NO_COLOR="1", TERM="dumb")
    test_dir = ws / "workspace" / "Certs" / "test"
    if setup == "outside-file":
        (base / "outside.txt").write_text("outside the workspace\n")  # exists: refused for where it is, not absence
    elif setup == "expired-test-pki":
        key = serialization.load_pem_private_key((test_dir / "signing.key").read_bytes(), password=None)
        for fname, cert in zip(("root.pem", "intermediate.pem", "signing.pem"), _expired_chain(key)):
            (test_dir / fname).write_bytes(_pem(cert))
    elif setup == "expired-retail-cert":
        shutil.copy2(test_dir / "signing.key", ws / "retail.key")
        (ws / "retail.pem").write_bytes(b"".join(_pem(c) for c in reversed(_expired_chain(
            serialization.load_pem_private_key((test_dir / "signing.key").read_bytes(), password=None)))))
        env.update(IOTBUILD_SIGN_MODE="retail", IOTBUILD_SIGN_KEY=str(ws / "retail.key"),
                   IOTBUILD_SIGN_CERT=str(ws / "retail.pem"))
    elif setup is not None:
        raise AssertionError(f"{case}/expect.toml: unknown setup {setup!r}")
    return ws, env


def _leftovers(ws: Path) -> list[str]:
    """Cabs and partial files under build/ (logs of a failed package are allowed, half-written files are not)."""
    build = ws / "build"
    if not build.exists():
        return []
    return sorted(str(p.relative_to(ws)) for p in build.rglob("*")
                  if p.is_file() and (p.name.lower().endswith(".cab") or ".partial" in p.name
                                      or p.name.startswith(".")))


@pytest.mark.parametrize("case", case_params(CORPUS, CASES))
def test_bad_input_fails_cleanly(case: str, tmp_path: Path, certs: Path) -> None:
    expect = load_expect(CORPUS, case, KEYS, ("message", "file"))
    target = f"packages/{case}" + (f"/{expect['target']}" if "target" in expect else "")
    out = run_both([*_command(), "buildpkg", target],
                   lambda mode: _make_workspace(tmp_path / mode, case, certs, expect.get("setup")),
                   timeout=TIMEOUT, label=case)
    common = dict(file=expect["file"], line=expect.get("line"), message=expect["message"],
                  must_not_contain=expect.get("must_not_contain"), leftovers=_leftovers,
                  left_behind="failed build left files behind")
    assert_clean_text_error(out["text"], hint=expect.get("hint"), **common)
    # the JSON error carries the same hint as the text one
    assert_clean_json_error(out["json"], hint=expect.get("hint"), **common)


def test_corpus_is_big_enough() -> None:
    assert len(CASES) >= 30
    assert all((CORPUS / c / "expect.toml").is_file() for c in CASES)
