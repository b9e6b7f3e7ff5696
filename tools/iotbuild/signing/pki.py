"""The test PKI: root CA → intermediate CA → code-signing leaf, made once per workspace and then reused.

This replaces the kit's "OEM Test Root" / "OEM Test Cert" pair that ``installoemcerts`` puts in place
(reference cab-authenticode-registry.md §4.1: test builds are signed with a test certificate, retail builds
with the OEM's own). Every subject says "(TEST ONLY)" so that
:func:`iotbuild.formats.authenticode.is_test_only` and release checks can tell test-signed packages apart.

notBefore is fixed at 1999-12-31 so that any ``SOURCE_DATE_EPOCH`` used as signing time lies inside the
validity; notAfter is five years after the real clock's ``now``. Only the leaf key is stored (the CA keys are
discarded after issuing, so nothing else can be signed in the root's name); it is created with mode 0600
inside a 0700 directory that is renamed into place only when complete.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import ClassVar

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ..errors import SigningError

log = logging.getLogger(__name__)

NOT_BEFORE = datetime(1999, 12, 31, tzinfo=timezone.utc)
LIFETIME = timedelta(days=5 * 365 + 1)
KEY_BITS = 2048
ROOT_CN = "iotbuild OEM Test Root (TEST ONLY)"
INTERMEDIATE_CN = "iotbuild OEM Test Intermediate (TEST ONLY)"
LEAF_CN = "{oem} OEM Test Cert (TEST ONLY)"


@dataclass(frozen=True)
class TestPki:
    __test__: ClassVar[bool] = False  # not a pytest class

    directory: Path

    @property
    def root(self) -> Path:
        return self.directory / "root.pem"

    @property
    def intermediate(self) -> Path:
        return self.directory / "intermediate.pem"

    @property
    def certificate(self) -> Path:
        return self.directory / "signing.pem"

    @property
    def key(self) -> Path:
        return self.directory / "signing.key"

    def hint(self) -> str:
        return f"delete {self.directory} to recreate the test PKI"


def ensure_test_pki(cert_dir: Path, *, now: datetime, oem_name: str = "iotbuild") -> TestPki:
    """Return the test PKI in ``cert_dir/test``, creating it on first use; SigningError if it is damaged."""
    pki = TestPki(Path(cert_dir) / "test")
    if pki.directory.exists():
        _check(pki, oem_name)
        return pki
    Path(cert_dir).mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".test-", suffix=".partial", dir=cert_dir))  # mode 0700
    try:
        _create(TestPki(tmp), now=now, oem_name=oem_name)
        os.rename(tmp, pki.directory)
    except OSError:
        if not pki.directory.exists():
            raise
        log.debug("another build created %s first; using it", pki.directory)  # lost a race: fine
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log.info("created test PKI in %s (root: %s)", pki.directory, pki.root)
    _check(pki, oem_name)
    return pki


def _name(common_name: str, oem_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, oem_name),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _issue(subject: x509.Name, key: rsa.RSAPrivateKey, issuer: x509.Name, issuer_key: rsa.RSAPrivateKey,
           not_after: datetime, *, ca: bool, path_length: int | None = None) -> x509.Certificate:
    builder = (x509.CertificateBuilder()
               .subject_name(subject).issuer_name(issuer).public_key(key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(NOT_BEFORE).not_valid_after(not_after)
               .add_extension(x509.BasicConstraints(ca=ca, path_length=path_length), critical=True)
               .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
               .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
                              critical=False))
    if ca:
        usage = dict(key_cert_sign=True, crl_sign=True, digital_signature=False)
    else:
        usage = dict(key_cert_sign=False, crl_sign=False, digital_signature=True)
        eku = x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING])
        builder = builder.add_extension(eku, critical=False)
    key_usage = x509.KeyUsage(content_commitment=False, key_encipherment=False, data_encipherment=False,
                              key_agreement=False, encipher_only=False, decipher_only=False, **usage)
    builder = builder.add_extension(key_usage, critical=True)
    return builder.sign(issuer_key, hashes.SHA256())


def _create(pki: TestPki, *, now: datetime, oem_name: str) -> None:
    not_after = now.astimezone(timezone.utc) + LIFETIME
    keys = [rsa.generate_private_key(public_exponent=65537, key_size=KEY_BITS) for _ in range(3)]
    root_name = _name(ROOT_CN, oem_name)
    mid_name = _name(INTERMEDIATE_CN, oem_name)
    leaf_name = _name(LEAF_CN.format(oem=oem_name), oem_name)
    root = _issue(root_name, keys[0], root_name, keys[0], not_after, ca=True)
    mid = _issue(mid_name, keys[1], root_name, keys[0], not_after, ca=True, path_length=0)
    leaf = _issue(leaf_name, keys[2], mid_name, keys[1], not_after, ca=False)
    for path, cert in ((pki.root, root), (pki.intermediate, mid), (pki.certificate, leaf)):
        path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    pem = keys[2].private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    fd = os.open(pki.key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)


def _check(pki: TestPki, oem_name: str) -> None:
    """Reuse only a PKI that is whole and consistent; tighten permissions that someone loosened."""
    def damaged(what: str) -> SigningError:
        return SigningError(f"test PKI is damaged: {what}", path=pki.directory, hint=pki.hint())

    for path in (pki.root, pki.intermediate, pki.certificate, pki.key):
        if not path.is_file():
            raise damaged(f"{path.name} is missing")
    for path, mode in ((pki.directory, 0o700), (pki.key, 0o600)):
        current = path.stat().st_mode & 0o777
        if current & 0o077:
            log.warning("%s had mode %o; tightened to %o", path, current, mode)
            with contextlib.suppress(OSError):
                os.chmod(path, mode)
    try:
        root, mid, leaf = (x509.load_pem_x509_certificate(p.read_bytes())
                           for p in (pki.root, pki.intermediate, pki.certificate))
    except ValueError as e:
        raise damaged(f"a certificate does not parse ({e})") from None
    try:
        key = serialization.load_pem_private_key(pki.key.read_bytes(), password=None)
    except (ValueError, TypeError):
        raise damaged("signing.key is not an unencrypted PEM private key") from None
    spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    if key.public_key().public_bytes(*spki) != leaf.public_key().public_bytes(*spki):
        raise damaged("signing.key does not belong to signing.pem")
    for child, issuer, names in ((leaf, mid, "signing.pem ← intermediate.pem"),
                                 (mid, root, "intermediate.pem ← root.pem"), (root, root, "root.pem")):
        try:
            child.verify_directly_issued_by(issuer)
        except Exception:  # noqa: BLE001 - ValueError, TypeError or InvalidSignature all mean "not issued by"
            raise damaged(f"{names} is not a valid issuing link") from None
    if oem_name not in leaf.subject.rfc4514_string():
        log.warning("test PKI in %s was made for another OEM (%s); %s", pki.directory,
                    leaf.subject.rfc4514_string(), pki.hint())
