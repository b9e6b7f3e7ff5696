"""The test PKI: made once, permissions tight from the start, reused, and refused with a hint when damaged."""

from __future__ import annotations

import logging
import os
import stat
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID

from iotbuild.errors import SigningError
from iotbuild.signing import ensure_test_pki
from iotbuild.signing.pki import NOT_BEFORE
from tests.signing.helpers import NOW, new_key


def _load(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def test_creates_three_level_chain(tmp_path: Path) -> None:
    pki = ensure_test_pki(tmp_path, now=NOW, oem_name="Fabrikam")
    assert pki.directory == tmp_path / "test"
    root, mid, leaf = _load(pki.root), _load(pki.intermediate), _load(pki.certificate)
    assert root.subject.rfc4514_string() == "CN=iotbuild OEM Test Root (TEST ONLY),O=Fabrikam"
    assert "CN=iotbuild OEM Test Intermediate (TEST ONLY)" in mid.subject.rfc4514_string()
    assert "CN=Fabrikam OEM Test Cert (TEST ONLY)" in leaf.subject.rfc4514_string()
    leaf.verify_directly_issued_by(mid)
    mid.verify_directly_issued_by(root)
    root.verify_directly_issued_by(root)
    for cert in (root, mid, leaf):
        assert cert.not_valid_before_utc == NOT_BEFORE == datetime(1999, 12, 31, tzinfo=timezone.utc)
        assert abs(cert.not_valid_after_utc - (NOW + timedelta(days=5 * 365))) < timedelta(days=2)
        assert cert.public_key().key_size >= 2048
        assert cert.signature_hash_algorithm.name == "sha256"
    eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.CODE_SIGNING]
    usage = leaf.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.digital_signature and not usage.key_cert_sign
    assert leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    key = serialization.load_pem_private_key(pki.key.read_bytes(), password=None)
    spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    assert key.public_key().public_bytes(*spki) == leaf.public_key().public_bytes(*spki)
    assert sorted(p.name for p in pki.directory.iterdir()) == ["intermediate.pem", "root.pem", "signing.key",
                                                               "signing.pem"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no leftover temporary directory


def test_permissions_even_with_a_permissive_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        pki = ensure_test_pki(tmp_path, now=NOW)
    finally:
        os.umask(old)
    assert stat.S_IMODE(pki.key.stat().st_mode) == 0o600
    assert stat.S_IMODE(pki.directory.stat().st_mode) == 0o700


def test_reused_not_recreated(tmp_path: Path) -> None:
    first = ensure_test_pki(tmp_path, now=NOW)
    before = {p.name: p.read_bytes() for p in first.directory.iterdir()}
    again = ensure_test_pki(tmp_path, now=NOW + timedelta(days=400))
    assert {p.name: p.read_bytes() for p in again.directory.iterdir()} == before


def test_loosened_permissions_are_tightened(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    pki = ensure_test_pki(tmp_path, now=NOW)
    pki.key.chmod(0o644)
    with caplog.at_level(logging.WARNING):
        ensure_test_pki(tmp_path, now=NOW)
    assert stat.S_IMODE(pki.key.stat().st_mode) == 0o600
    assert "signing.key had mode 644" in caplog.text


@pytest.mark.parametrize("damage", ["missing key", "garbage cert", "foreign key", "foreign intermediate"])
def test_damaged_pki_is_refused_with_hint(tmp_path: Path, damage: str) -> None:
    pki = ensure_test_pki(tmp_path, now=NOW)
    if damage == "missing key":
        pki.key.unlink()
    elif damage == "garbage cert":
        pki.certificate.write_text("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
    elif damage == "foreign key":
        pem = new_key().private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption())
        pki.key.write_bytes(pem)
    else:
        other = ensure_test_pki(tmp_path / "other", now=NOW)
        pki.intermediate.write_bytes(other.intermediate.read_bytes())
    with pytest.raises(SigningError) as e:
        ensure_test_pki(tmp_path, now=NOW)
    assert f"delete {pki.directory} to recreate the test PKI" in str(e.value)
    assert "BEGIN PRIVATE KEY" not in str(e.value)
