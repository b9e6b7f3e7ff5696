"""Signing identities: test PKI, retail PEM and PFX, expiry policy, key/certificate and trust checks."""

from __future__ import annotations

import logging
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12

from iotbuild.errors import SigningError
from iotbuild.formats.authenticode import sign_cab, verify_cab
from iotbuild.signing import SigningConfig, SigningMode, ensure_test_pki, load_signer
from tests.signing.helpers import (NOW, OEM, SIGNING_TIME, build_stored_cab, cert_dir,  # noqa: F401
                                   osslsigncode_verify, retail_chain, sample_files, signer, test_pki)


def _retail(tmp_path: Path, paths: dict[str, Path], **kwargs) -> SigningConfig:
    return SigningConfig(SigningMode.RETAIL, tmp_path / "certs", key=paths["key"], certificate=paths["leaf"],
                         **kwargs)


@pytest.fixture
def unsigned(tmp_path: Path) -> Path:
    path = tmp_path / "unsigned.cab"
    path.write_bytes(build_stored_cab(sample_files()))
    return path


def test_test_mode_signer(signer, cert_dir: Path) -> None:
    assert [c.subject.native["common_name"] for c in signer.certificates] == [
        "Contoso OEM Test Cert (TEST ONLY)", "iotbuild OEM Test Intermediate (TEST ONLY)",
        "iotbuild OEM Test Root (TEST ONLY)"]
    assert signer.is_test_only
    assert len(signer.fingerprint) == 64
    again = load_signer(SigningConfig(SigningMode.TEST, cert_dir), oem_name=OEM, now=NOW)
    assert again.fingerprint == signer.fingerprint  # stable: incremental builds key on it
    assert "Contoso OEM Test Cert (TEST ONLY)" in signer.describe() and "Test Root" in signer.describe()


def test_expired_test_pki_is_refused(tmp_path: Path) -> None:
    ensure_test_pki(tmp_path, now=NOW - timedelta(days=6 * 365), oem_name=OEM)  # notAfter about a year ago
    with pytest.raises(SigningError, match=r"certificate '[^']*TEST ONLY[^']*' expired on \d{4}-\d\d") as e:
        load_signer(SigningConfig(SigningMode.TEST, tmp_path), oem_name=OEM, now=NOW)
    assert f"delete {tmp_path / 'test'} to recreate the test PKI" in str(e.value)
    assert e.value.path is not None and e.value.path.startswith(str(tmp_path / "test"))


def test_nearly_expired_is_warned(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    ensure_test_pki(tmp_path, now=NOW - timedelta(days=5 * 365 - 10), oem_name=OEM)
    with caplog.at_level(logging.WARNING):
        load_signer(SigningConfig(SigningMode.TEST, tmp_path), oem_name=OEM, now=NOW)
    assert "expires on" in caplog.text and "(TEST ONLY)" in caplog.text


def test_retail_pem_identity_signs(tmp_path: Path, unsigned: Path) -> None:
    chain = retail_chain()
    paths = chain.write(tmp_path / "retail")
    config = _retail(tmp_path, paths, chain=(paths["root"], paths["intermediate"]),
                     trusted_roots=(paths["root"],))
    s = load_signer(config, oem_name=OEM, now=NOW)
    assert not s.is_test_only
    assert [c.subject.native["common_name"] for c in s.certificates] == [
        "Contoso Retail Code Signing", "Contoso Retail Intermediate", "Contoso Retail Root"]
    out = tmp_path / "signed.cab"
    sign_cab(unsigned, out, s, SIGNING_TIME)
    info = verify_cab(out, trusted_roots=[chain.root])
    assert info.chain_trusted and not info.test_only
    assert osslsigncode_verify(out, paths["root"]).returncode == 0


def test_retail_ecdsa_identity_signs(tmp_path: Path, unsigned: Path) -> None:
    chain = retail_chain("ec", name="Contoso EC")
    paths = chain.write(tmp_path / "retail")
    config = _retail(tmp_path, paths, chain=(paths["intermediate"], paths["root"]))
    out = tmp_path / "signed.cab"
    sign_cab(unsigned, out, load_signer(config, oem_name=OEM, now=NOW), SIGNING_TIME)
    assert verify_cab(out, trusted_roots=[chain.root]).chain_trusted
    result = osslsigncode_verify(out, paths["root"])
    assert result.returncode == 0, result.output


def test_pfx_identity_signs(tmp_path: Path, unsigned: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    chain = retail_chain()
    pfx = tmp_path / "oem.pfx"
    pfx.write_bytes(pkcs12.serialize_key_and_certificates(
        b"oem", chain.leaf_key, chain.leaf, [chain.intermediate, chain.root],
        serialization.BestAvailableEncryption(b"s3cret")))
    monkeypatch.setenv("OEM_PFX_PASSWORD", "s3cret")
    config = SigningConfig(SigningMode.RETAIL, tmp_path / "certs", key=pfx,
                           pfx_password_env="OEM_PFX_PASSWORD")
    s = load_signer(config, oem_name=OEM, now=NOW)
    out = tmp_path / "signed.cab"
    sign_cab(unsigned, out, s, SIGNING_TIME)
    assert verify_cab(out, trusted_roots=[chain.root]).chain_trusted
    root_pem = tmp_path / "root.pem"
    root_pem.write_bytes(chain.root.public_bytes(serialization.Encoding.PEM))
    assert osslsigncode_verify(out, root_pem).returncode == 0

    monkeypatch.setenv("OEM_PFX_PASSWORD", "wrong")
    with pytest.raises(SigningError, match="wrong password or damaged file") as e:
        load_signer(config, oem_name=OEM, now=NOW)
    assert "wrong" not in str(e.value).replace("wrong password", "")  # the password itself is never shown
    monkeypatch.delenv("OEM_PFX_PASSWORD")
    with pytest.raises(SigningError, match="OEM_PFX_PASSWORD .* is not set"):
        load_signer(config, oem_name=OEM, now=NOW)


def test_retail_chain_not_ending_in_trusted_root(tmp_path: Path) -> None:
    chain, stranger = retail_chain(), retail_chain(name="Someone Else")
    paths = chain.write(tmp_path / "retail")
    other = stranger.write(tmp_path / "other")
    config = _retail(tmp_path, paths, chain=(paths["intermediate"], paths["root"]),
                     trusted_roots=(other["root"],))
    with pytest.raises(SigningError, match="not end in a trusted root: it ends at 'CN=Contoso Retail Root'"):
        load_signer(config, oem_name=OEM, now=NOW)
    missing_intermediate = _retail(tmp_path, paths, trusted_roots=(paths["root"],))
    with pytest.raises(SigningError, match="it ends at 'CN=Contoso Retail Code Signing'"):
        load_signer(missing_intermediate, oem_name=OEM, now=NOW)


def test_expired_retail_certificate_and_near_expiry(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    expired = retail_chain(leaf_not_after=NOW - timedelta(days=3)).write(tmp_path / "expired")
    config = _retail(tmp_path, expired, chain=(expired["intermediate"], expired["root"]))
    with pytest.raises(SigningError, match="'CN=Contoso Retail Code Signing' expired on") as e:
        load_signer(config, oem_name=OEM, now=NOW)
    assert "renew the certificate" in str(e.value)
    assert e.value.path == str(expired["leaf"])  # the file that holds the expired certificate
    soon = retail_chain(leaf_not_after=NOW + timedelta(days=12)).write(tmp_path / "soon")
    config = _retail(tmp_path, soon, chain=(soon["intermediate"], soon["root"]))
    with caplog.at_level(logging.WARNING):
        load_signer(config, oem_name=OEM, now=NOW)
    assert "'CN=Contoso Retail Code Signing' expires on" in caplog.text


def test_key_not_matching_certificate(tmp_path: Path) -> None:
    a, b = retail_chain().write(tmp_path / "a"), retail_chain().write(tmp_path / "b")
    config = _retail(tmp_path, {**a, "key": b["key"]}, chain=(a["intermediate"], a["root"]))
    with pytest.raises(SigningError, match="private key does not belong to the certificate") as e:
        load_signer(config, oem_name=OEM, now=NOW)
    assert e.value.path == str(b["key"])


def test_retail_configuration_mistakes(tmp_path: Path) -> None:
    paths = retail_chain().write(tmp_path / "r")
    with pytest.raises(SigningError, match="both a key file and an external signer command"):
        load_signer(SigningConfig(SigningMode.RETAIL, tmp_path, key=paths["key"], certificate=paths["leaf"],
                                  command="hsm-sign"), oem_name=OEM, now=NOW)
    with pytest.raises(SigningError, match="needs a key"):
        load_signer(SigningConfig(SigningMode.RETAIL, tmp_path), oem_name=OEM, now=NOW)
    with pytest.raises(SigningError, match="has no certificate"):
        load_signer(SigningConfig(SigningMode.RETAIL, tmp_path, key=paths["key"]), oem_name=OEM, now=NOW)
    with pytest.raises(SigningError, match="cannot read"):
        load_signer(SigningConfig(SigningMode.RETAIL, tmp_path, key=tmp_path / "nope.key",
                                  certificate=paths["leaf"]), oem_name=OEM, now=NOW)
