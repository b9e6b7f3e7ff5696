"""Who signs: a certificate chain plus something that makes raw signatures, checked before the build starts.

:func:`load_signer` turns a :class:`~iotbuild.signing.config.SigningConfig` into a :class:`Signer`: the test
PKI (created on first use), a retail PEM key + certificate, a PFX, or an external signer (HSM). Every problem
a person can fix is found here, before any package is built (DESIGN.md "fail before the long step"): an
expired or nearly expired certificate, a key that does not belong to the certificate, a chain that does not
end in a trusted root. Expiry is judged by the real clock (``now``), not ``SOURCE_DATE_EPOCH``: the question
is whether the certificate can still be used today. Private key material is never logged or put in messages.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.serialization import pkcs12

from ..errors import SigningError
from ..formats.authenticode import build_chain, fingerprint_of, is_test_only, subject_of, to_asn1
from .config import SigningConfig, SigningMode
from .external import ExternalSigner
from .pki import ensure_test_pki

log = logging.getLogger(__name__)

EXPIRY_WARNING = timedelta(days=30)
_SPKI = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


@dataclass(frozen=True, eq=False)
class Signer:
    """A usable signing identity. ``certificates``: leaf first, then its issuers in order."""

    certificates: tuple[asn1_x509.Certificate, ...]
    backend: Callable[[bytes], bytes] = field(repr=False)
    source: str = ""  # where the key lives, for messages ("test PKI in …", "file …", "external signer")

    def sign(self, data: bytes) -> bytes:
        """Raw signature over ``data``: RSA PKCS#1 v1.5 / SHA-256, or ECDSA / SHA-256 (DER) for EC keys."""
        return self.backend(data)

    @property
    def fingerprint(self) -> str:
        """SHA-256 of the leaf certificate: it changes with the identity, so incremental builds re-sign."""
        return fingerprint_of(self.certificates[0])

    @property
    def is_test_only(self) -> bool:
        return is_test_only(self.certificates)

    def describe(self) -> str:
        chain = " → ".join(subject_of(c) for c in self.certificates[1:]) or "(no chain)"
        return f"{subject_of(self.certificates[0])} (issued via {chain}; key: {self.source})"


def local_backend(key: PrivateKey) -> Callable[[bytes], bytes]:
    if isinstance(key, rsa.RSAPrivateKey):
        return lambda data: key.sign(data, padding.PKCS1v15(), hashes.SHA256())
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return lambda data: key.sign(data, ec.ECDSA(hashes.SHA256()))
    raise SigningError(f"private key type {type(key).__name__} is not supported (use RSA or ECDSA)")


def load_signer(config: SigningConfig, *, oem_name: str, now: datetime) -> Signer:
    """The configured identity, checked (expiry against ``now``, key/certificate match, trusted roots)."""
    if config.mode is SigningMode.TEST:
        pki = ensure_test_pki(config.cert_dir, now=now, oem_name=oem_name)
        key = _load_key(pki.key, None)
        sources: dict[str, Path] = {}
        issuers = [*_load_certs(pki.intermediate, sources), *_load_certs(pki.root, sources)]
        certs = _order(_load_certs(pki.certificate, sources)[0], issuers)
        check_validity(certs, now=now, hint=pki.hint(), sources=sources)
        _check_key_matches(key, certs[0], pki.key)
        return Signer(tuple(to_asn1(c) for c in certs), local_backend(key), f"test PKI in {pki.directory}")
    return _load_retail(config, now=now)


def _load_retail(config: SigningConfig, *, now: datetime) -> Signer:
    if config.key and config.command:
        raise SigningError("retail signing has both a key file and an external signer command",
                           hint="configure one of them: key for a local key or PFX, command for an HSM")
    if not config.key and not config.command:
        raise SigningError("retail signing needs a key (PEM or PFX) or an external signer command",
                           hint="set the retail key and certificate, or the signer command, in the workspace")
    key: PrivateKey | None = None
    leaf: x509.Certificate | None = None
    pool: list[x509.Certificate] = []
    sources: dict[str, Path] = {}  # certificate fingerprint -> the file it came from, for messages
    if config.key and config.key.suffix.lower() in (".pfx", ".p12"):
        key, leaf, pool = _load_pfx(config.key, _password(config))
        sources.update((fingerprint_of(c), config.key) for c in (leaf, *pool))
    elif config.key:
        key = _load_key(config.key, _password(config))
    if config.certificate:
        certs = _load_certs(config.certificate, sources)
        if leaf is None:
            leaf = certs[0]
        pool += certs[1:] if leaf is certs[0] else certs
    if leaf is None:
        raise SigningError("retail signing has no certificate", hint="set the retail certificate (PEM)")
    for path in config.chain:
        pool += _load_certs(path, sources)
    certs = _order(leaf, pool)
    if config.trusted_roots:
        roots = [c for p in config.trusted_roots for c in _load_certs(p)]
        full, trusted = build_chain(leaf, certs[1:], roots)
        if not trusted:
            raise SigningError(f"certificate chain of {subject_of(leaf)!r} does not end in a trusted root: "
                               f"it ends at {subject_of(full[-1])!r}", path=sources.get(fingerprint_of(leaf)),
                               hint="add the missing intermediate certificates to the chain, or check the "
                                    "trusted roots")
    else:
        log.info("no trusted roots configured for retail signing; the chain is not checked against a root")
    check_validity(certs, now=now, hint="renew the certificate and configure the new one", sources=sources)
    _check_code_signing(certs[0])
    if key is not None:
        assert config.key is not None
        _check_key_matches(key, certs[0], config.key)
        backend, source = local_backend(key), f"file {config.key}"
    else:
        assert config.command is not None
        backend, source = ExternalSigner(config.command, to_asn1(certs[0])), "external signer command"
    return Signer(tuple(to_asn1(c) for c in certs), backend, source)


def _password(config: SigningConfig) -> bytes | None:
    if not config.pfx_password_env:
        return None
    value = os.environ.get(config.pfx_password_env)
    if value is None:
        raise SigningError(f"environment variable {config.pfx_password_env} (the key password) is not set",
                           hint=f"export {config.pfx_password_env} before building")
    return value.encode()


def _load_pfx(path: Path, password: bytes | None
              ) -> tuple[PrivateKey, x509.Certificate, list[x509.Certificate]]:
    try:
        bundle = pkcs12.load_pkcs12(_read(path), password)
    except (ValueError, TypeError):
        raise SigningError("cannot open the PFX: wrong password or damaged file", path=path,
                           hint="check the file and the password variable (pfx_password_env)") from None
    if bundle.key is None or bundle.cert is None:
        raise SigningError("the PFX holds no private key or no certificate", path=path,
                           hint="export the PFX again with its private key and certificate")
    key = bundle.key
    if not isinstance(key, (rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey)):
        raise SigningError(f"key type {type(key).__name__} is not supported", path=path,
                           hint="use an RSA or ECDSA key")
    return key, bundle.cert.certificate, [c.certificate for c in bundle.additional_certs]


def _load_key(path: Path, password: bytes | None) -> PrivateKey:
    try:
        key = serialization.load_pem_private_key(_read(path), password=password)
    except TypeError:
        what = ("the private key is encrypted and no password was given" if password is None
                else "a password was given but the private key is not encrypted")
        raise SigningError(what, path=path,
                           hint="set pfx_password_env to the variable holding the key password") from None
    except ValueError:
        raise SigningError("not a PEM private key, or the password is wrong", path=path,
                           hint="give a PEM private key (or a .pfx/.p12); check pfx_password_env") from None
    if not isinstance(key, (rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey)):
        raise SigningError(f"key type {type(key).__name__} is not supported", path=path,
                           hint="use an RSA or ECDSA key")
    return key


def _load_certs(path: Path, sources: dict[str, Path] | None = None) -> list[x509.Certificate]:
    """The certificates in a PEM (one or more) or DER file; ``sources`` learns where each came from."""
    data = _read(path)
    try:
        certs = (x509.load_pem_x509_certificates(data) if b"-----BEGIN" in data
                 else [x509.load_der_x509_certificate(data)])
    except ValueError:
        raise SigningError("not a PEM or DER certificate", path=path,
                           hint="give X.509 certificates in PEM or DER form") from None
    if sources is not None:
        sources.update((fingerprint_of(c), Path(path)) for c in certs)
    return certs


def _read(path: Path) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as e:
        raise SigningError(f"cannot read: {e.strerror}", path=path, hint="check the signing paths in the "
                                                                          "workspace configuration") from None


def _order(leaf: x509.Certificate, pool: Sequence[x509.Certificate]) -> list[x509.Certificate]:
    """Leaf, then each issuer found in ``pool``; certificates that are not on the path are left out."""
    chain, _ = build_chain(leaf, pool)
    dropped = {fingerprint_of(c) for c in pool} - {fingerprint_of(c) for c in chain}
    if dropped:
        log.debug("left %d certificate(s) out of the chain: not issuers of %s", len(dropped),
                  subject_of(leaf))
    return chain


def check_validity(certs: Sequence[x509.Certificate], *, now: datetime, hint: str,
                   sources: Mapping[str, Path] | None = None) -> None:
    """Refuse an expired or not yet valid certificate; warn about one that expires within 30 days.

    ``sources`` (fingerprint → file) lets the message name the file that holds the offending certificate.
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    for cert in certs:
        after, before = cert.not_valid_after_utc, cert.not_valid_before_utc
        path = (sources or {}).get(fingerprint_of(cert))
        if after < now:
            raise SigningError(f"certificate {subject_of(cert)!r} expired on {after:%Y-%m-%d %H:%M}Z",
                               path=path, hint=hint)
        if before > now:
            raise SigningError(f"certificate {subject_of(cert)!r} is not valid before "
                               f"{before:%Y-%m-%d %H:%M}Z", path=path,
                               hint="check the system clock, or use a certificate that is already valid")
        if after - now < EXPIRY_WARNING:
            log.warning("%scertificate %r expires on %s (in %d days); %s", f"{path}: " if path else "",
                        subject_of(cert), f"{after:%Y-%m-%d}", (after - now).days, hint)


def _check_key_matches(key: PrivateKey, leaf: x509.Certificate, key_path: Path) -> None:
    if key.public_key().public_bytes(*_SPKI) != leaf.public_key().public_bytes(*_SPKI):
        raise SigningError(f"the private key does not belong to the certificate {subject_of(leaf)!r}",
                           path=key_path, hint="configure the key that was used to request this certificate")


def _check_code_signing(leaf: x509.Certificate) -> None:
    try:
        eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return
    if x509.ExtendedKeyUsageOID.CODE_SIGNING not in eku:
        log.warning("certificate %r has no codeSigning extended key usage; Windows may refuse its signatures",
                    subject_of(leaf))
