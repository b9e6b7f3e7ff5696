"""External signer protocol (signing/external.py), exercised with tests/signing/fake_hsm.py."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import pytest

from iotbuild.errors import SigningError, ToolError
from iotbuild.formats.authenticode import sign_cab, verify_cab
from iotbuild.signing import SigningConfig, SigningMode, load_signer
from tests.signing.helpers import (HSM, NOW, OEM, SIGNING_TIME, build_stored_cab, cert_dir,  # noqa: F401
                                   osslsigncode_verify, retail_chain, root_cert, sample_files, test_pki)


def _config(test_pki, tmp_path: Path, args: str) -> SigningConfig:
    """Retail config whose key is "in the HSM": the fake HSM has the test PKI's key, iotbuild the certs."""
    command = f"{shlex.quote(sys.executable)} {shlex.quote(str(HSM))} {args}"
    return SigningConfig(SigningMode.RETAIL, tmp_path / "certs", certificate=test_pki.certificate,
                         chain=(test_pki.intermediate, test_pki.root), command=command,
                         trusted_roots=(test_pki.root,))


@pytest.fixture
def unsigned(tmp_path: Path) -> Path:
    path = tmp_path / "unsigned.cab"
    path.write_bytes(build_stored_cab(sample_files()))
    return path


@pytest.mark.parametrize("mode", ["", "--prehashed"])
def test_hsm_signed_cab_verifies(tmp_path: Path, unsigned: Path, test_pki, root_cert, mode: str) -> None:
    config = _config(test_pki, tmp_path, f"{mode} {shlex.quote(str(test_pki.key))}")
    signer = load_signer(config, oem_name=OEM, now=NOW)
    assert "external signer" in signer.describe()
    out = tmp_path / "signed.cab"
    sign_cab(unsigned, out, signer, SIGNING_TIME)
    assert verify_cab(out, trusted_roots=[root_cert]).chain_trusted
    result = osslsigncode_verify(out, test_pki.root)
    assert result.returncode == 0, result.output


def test_key_path_from_environment(tmp_path: Path, unsigned: Path, test_pki, monkeypatch: pytest.MonkeyPatch,
                                   root_cert) -> None:
    monkeypatch.setenv("FAKE_HSM_KEY", str(test_pki.key))
    signer = load_signer(_config(test_pki, tmp_path, ""), oem_name=OEM, now=NOW)
    sign_cab(unsigned, tmp_path / "signed.cab", signer, SIGNING_TIME)
    assert verify_cab(tmp_path / "signed.cab", trusted_roots=[root_cert]).chain_trusted


def test_garbage_signature_is_refused(tmp_path: Path, unsigned: Path, test_pki) -> None:
    signer = load_signer(_config(test_pki, tmp_path, "--garbage"), oem_name=OEM, now=NOW)
    with pytest.raises(SigningError, match="external signer returned a signature that does not verify with "
                                           "'CN=Contoso OEM Test Cert"):
        sign_cab(unsigned, tmp_path / "signed.cab", signer, SIGNING_TIME)
    assert not (tmp_path / "signed.cab").exists()


def test_wrong_key_in_hsm_is_refused(tmp_path: Path, unsigned: Path, test_pki) -> None:
    other = retail_chain().write(tmp_path / "other")
    signer = load_signer(_config(test_pki, tmp_path, shlex.quote(str(other["key"]))), oem_name=OEM, now=NOW)
    with pytest.raises(SigningError, match="does not verify"):
        sign_cab(unsigned, tmp_path / "signed.cab", signer, SIGNING_TIME)


def test_failing_command_shows_stderr(tmp_path: Path, unsigned: Path, test_pki) -> None:
    signer = load_signer(_config(test_pki, tmp_path, "--fail"), oem_name=OEM, now=NOW)
    with pytest.raises(ToolError, match="exit 1") as e:
        sign_cab(unsigned, tmp_path / "signed.cab", signer, SIGNING_TIME)
    assert "token not present" in str(e.value)


def test_bad_command_lines(tmp_path: Path, unsigned: Path, test_pki) -> None:
    config = _config(test_pki, tmp_path, "'unterminated")
    with pytest.raises(SigningError, match="cannot be parsed"):
        sign_cab(unsigned, tmp_path / "x.cab", load_signer(config, oem_name=OEM, now=NOW), SIGNING_TIME)
    missing = SigningConfig(SigningMode.RETAIL, tmp_path / "certs", certificate=test_pki.certificate,
                            command="/nonexistent/hsm-sign --slot 0")
    with pytest.raises(ToolError, match="not found"):
        sign_cab(unsigned, tmp_path / "x.cab", load_signer(missing, oem_name=OEM, now=NOW), SIGNING_TIME)
