"""Authenticode: CMS SignedData built and checked in pure Python, and signed CAB files.

Reference: cab-authenticode-registry.md §2.1 (the 24 header bytes a signature adds to a cab and the blob
appended after the last CFDATA), §2.2 (exactly which bytes the cab digest covers), §2.3 (the PKCS#7 structure)
and §3.1 (why not signify: its verifier needs oscrypto, which is broken with Debian 12's OpenSSL).
asn1crypto gives the structure, ``cryptography`` the public-key maths; the private key stays behind a
:class:`SignerLike`, so a key file, a PFX and an external HSM all look the same here.

Signing is deterministic: the same cab, certificates, key and signing time give the same bytes (RSA PKCS#1
v1.5 has no randomness; the signing time comes from the caller, normally ``SOURCE_DATE_EPOCH``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import BinaryIO, Protocol, Union

from asn1crypto import cms, core
from asn1crypto import x509 as asn1_x509
from cryptography import x509 as crypto_x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from ..errors import FormatError, SigningError
from ..outputs import atomic_output
from . import asn1_ms as ms
from .cab.records import (CABINET_MAX, FLAG_NEXT_CABINET, FLAG_PREV_CABINET, FLAG_RESERVE_PRESENT, CfFolder,
                          CfHeader, CfReserveSizes)

CHUNK = 1 << 20
SIGNATURE_RESERVE = 20          # cbCFHeader of a signed cab (§2.1)
RESERVE_MAGIC = 0x00100000      # first u32 of that reserve; osslsigncode insists on it
SIGNATURE_ALIGN = 8             # the appended blob is zero-padded to a multiple of 8
_SIG_RESERVE = struct.Struct("<IIIQ")  # magic, signature offset, signature length (incl. padding), zero
INSERTED = CfReserveSizes.LAYOUT.size + SIGNATURE_RESERVE  # 24 bytes inserted at 0x24 when signing
SIGNED_HEADER_END = CfHeader.LAYOUT.size + INSERTED       # 0x3C
_LENGTH_AT = CfHeader.LAYOUT.size + CfReserveSizes.LAYOUT.size + 8  # 0x30: signature length field

# Digest algorithms accepted when verifying (we only ever write SHA-256).
_HASHES: dict[str, tuple[Callable[[], "hashlib._Hash"], hashes.HashAlgorithm]] = {
    "1.3.14.3.2.26": (hashlib.sha1, hashes.SHA1()),
    ms.SHA256_OID: (hashlib.sha256, hashes.SHA256()),
    "2.16.840.1.101.3.4.2.2": (hashlib.sha384, hashes.SHA384()),
    "2.16.840.1.101.3.4.2.3": (hashlib.sha512, hashes.SHA512()),
}

AnyCertificate = Union[asn1_x509.Certificate, crypto_x509.Certificate]


class SignerLike(Protocol):
    """What signing needs from an identity: the chain (leaf first) and a raw SHA-256 signature."""

    @property
    def certificates(self) -> Sequence[asn1_x509.Certificate]: ...

    def sign(self, data: bytes) -> bytes: ...


@dataclass(frozen=True)
class SignatureInfo:
    """What a verified signature says; ``chain_trusted`` is False when no trusted roots were given."""

    signer_subject: str
    chain_subjects: tuple[str, ...]   # the issuers above the signer, nearest first
    signing_time: datetime | None
    test_only: bool
    chain_trusted: bool
    digest: bytes                     # the digest the signature covers (e.g. the cab digest)
    signer_fingerprint: str           # sha256 of the signer certificate, lower-case hex


# --- certificates ------------------------------------------------------------------------------------------
def to_crypto(cert: AnyCertificate) -> crypto_x509.Certificate:
    if isinstance(cert, crypto_x509.Certificate):
        return cert
    return crypto_x509.load_der_x509_certificate(cert.dump())


def to_asn1(cert: AnyCertificate) -> asn1_x509.Certificate:
    if isinstance(cert, asn1_x509.Certificate):
        return cert
    from cryptography.hazmat.primitives.serialization import Encoding
    return asn1_x509.Certificate.load(cert.public_bytes(Encoding.DER))


def subject_of(cert: AnyCertificate) -> str:
    return to_crypto(cert).subject.rfc4514_string()


def fingerprint_of(cert: AnyCertificate) -> str:
    return hashlib.sha256(to_asn1(cert).dump()).hexdigest()


def is_test_only(certs: Sequence[AnyCertificate]) -> bool:
    """Test certificates are recognised by name, as the kit does: "TEST ONLY" anywhere in a subject."""
    return any("TEST ONLY" in subject_of(c).upper() for c in certs)


def verify_raw_signature(cert: AnyCertificate, data: bytes, signature: bytes,
                         hash_alg: hashes.HashAlgorithm | None = None) -> bool:
    """True if ``signature`` is the certificate key's PKCS#1 v1.5 (RSA) or ECDSA signature over ``data``."""
    key = to_crypto(cert).public_key()
    alg = hash_alg or hashes.SHA256()
    try:
        if isinstance(key, rsa.RSAPublicKey):
            key.verify(signature, data, padding.PKCS1v15(), alg)
        elif isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(signature, data, ec.ECDSA(alg))
        else:
            raise SigningError(f"{subject_of(cert)}: key type {type(key).__name__} is not supported "
                               "(only RSA and ECDSA)")
    except InvalidSignature:
        return False
    return True


def build_chain(leaf: AnyCertificate, pool: Sequence[AnyCertificate],
                trusted_roots: Sequence[AnyCertificate] = ()) -> tuple[list[crypto_x509.Certificate], bool]:
    """Follow issuer links from ``leaf`` through ``pool`` (and the roots), checking each signature.

    Returns the chain (leaf first) and whether it ends in one of ``trusted_roots``. A link whose issuer is
    present by name but whose signature does not verify is an error, not just an untrusted chain: it means a
    certificate was tampered with or mixed up.
    """
    roots = [to_crypto(r) for r in trusted_roots]
    root_ids = {fingerprint_of(r) for r in roots}
    candidates = [to_crypto(c) for c in pool] + roots
    chain = [to_crypto(leaf)]
    while True:
        current = chain[-1]
        if fingerprint_of(current) in root_ids:
            return chain, True
        if current.issuer == current.subject:
            _check_issued_by(current, current)
            return chain, False
        issuers = [c for c in candidates if c.subject == current.issuer
                   and all(fingerprint_of(c) != fingerprint_of(x) for x in chain)]
        if not issuers:
            return chain, False
        good = [c for c in issuers if _issued_by(current, c)]
        if not good:
            _check_issued_by(current, issuers[0])
        chain.append(good[0])


def _issued_by(child: crypto_x509.Certificate, issuer: crypto_x509.Certificate) -> bool:
    try:
        child.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def _check_issued_by(child: crypto_x509.Certificate, issuer: crypto_x509.Certificate) -> None:
    if not _issued_by(child, issuer):
        raise SigningError(f"certificate {subject_of(child)!r} is not validly signed by its issuer "
                           f"{subject_of(issuer)!r}: the chain is broken or was tampered with")


def _utc(when: datetime) -> datetime:
    if when.tzinfo is None:
        raise ValueError("signing_time must be timezone-aware (UTC)")
    return when.astimezone(timezone.utc).replace(microsecond=0)


# --- CMS SignedData ----------------------------------------------------------------------------------------
def _sha256_alg() -> dict[str, object]:
    return {"algorithm": ms.SHA256_OID, "parameters": core.Null()}


def build_signed_data(content_type_oid: str, content: core.Asn1Value, signer: SignerLike,
                      signing_time: datetime, *,
                      extra_signed_attrs: Sequence[cms.CMSAttribute] = ()) -> bytes:
    """DER ContentInfo(SignedData) over ``content`` as Authenticode wants it (§2.3).

    The messageDigest attribute is the SHA-256 of the content's *value octets* (without its own tag and
    length): PKCS#7 v1.5 rules, which Windows and osslsigncode apply. The signature covers the DER of the
    signed attributes re-tagged as a SET.
    """
    certs = [to_asn1(c) for c in signer.certificates]
    if not certs:
        raise SigningError("the signer has no certificate")
    leaf = certs[0]
    when = _utc(signing_time)
    cleaf = to_crypto(leaf)
    if not cleaf.not_valid_before_utc <= when <= cleaf.not_valid_after_utc:
        raise SigningError(f"signing time {when:%Y-%m-%d %H:%M:%S}Z is outside the validity of "
                           f"{subject_of(cleaf)!r} ({cleaf.not_valid_before_utc:%Y-%m-%d} to "
                           f"{cleaf.not_valid_after_utc:%Y-%m-%d})",
                           hint="set SOURCE_DATE_EPOCH to a time inside the certificate's validity")
    # A value built from Python objects re-serializes itself on every dump() (asn1crypto); freeze it once as
    # parsed DER so that embedding it below costs nothing. That took a catalog from ~75 ms to a few ms.
    content = type(content).load(content.dump())
    digest = hashlib.sha256(content.contents).digest()
    time_choice = "utc_time" if 1950 <= when.year < 2050 else "general_time"
    statement = ms.SpcStatementType([ms.SPC_INDIVIDUAL_SP_KEY_PURPOSE_OID])
    attrs = cms.CMSAttributes([
        {"type": "content_type", "values": [content_type_oid]},
        {"type": "signing_time", "values": [cms.Time(name=time_choice, value=when)]},
        {"type": ms.SPC_STATEMENT_TYPE_OID, "values": [statement]},
        *extra_signed_attrs,
        {"type": "message_digest", "values": [digest]},
    ])
    signature = signer.sign(attrs.dump())
    algorithm = leaf.public_key.algorithm
    if algorithm == "rsa":
        sig_alg: dict[str, object] = {"algorithm": ms.RSA_OID, "parameters": core.Null()}
    elif algorithm == "ec":
        sig_alg = {"algorithm": ms.ECDSA_SHA256_OID}
    else:
        raise SigningError(f"{subject_of(leaf)}: key algorithm {algorithm} is not supported "
                           "(only RSA and ECDSA)")
    signer_info = cms.SignerInfo({
        "version": "v1",
        "sid": cms.SignerIdentifier({"issuer_and_serial_number": {
            "issuer": leaf.issuer, "serial_number": leaf.serial_number}}),
        "digest_algorithm": _sha256_alg(),
        "signed_attrs": attrs,
        "signature_algorithm": sig_alg,
        "signature": signature,
    })
    signed = ms.SignedData({
        "version": "v1",
        "digest_algorithms": [_sha256_alg()],
        "encap_content_info": {"content_type": content_type_oid, "content": content},
        "certificates": [cms.CertificateChoices({"certificate": c}) for c in certs],
        "signer_infos": [signer_info],
    })
    return ms.ContentInfo({"content_type": "signed_data", "content": signed}).dump()


def der_length(data: bytes, offset: int = 0) -> int:
    """Total length (header + value) of the DER element at ``offset``; FormatError if truncated."""
    if len(data) < offset + 2:
        raise FormatError("DER element truncated", offset=offset)
    first = data[offset + 1]
    if first < 0x80:
        return 2 + first
    n = first & 0x7F
    if n == 0 or n > 4 or len(data) < offset + 2 + n:
        raise FormatError(f"DER length with {n} bytes is not supported", offset=offset + 1)
    return 2 + n + int.from_bytes(data[offset + 2:offset + 2 + n], "big")


def _attr(attrs: cms.CMSAttributes, oid_or_name: str) -> core.Asn1Value | None:
    for a in attrs:
        if a["type"].native == oid_or_name or a["type"].dotted == oid_or_name:
            values = a["values"]
            if len(values) != 1:
                raise FormatError(f"signed attribute {oid_or_name} has {len(values)} values (expected 1)")
            return values[0]
    return None


def verify_signed_data(blob: bytes, *, content_type_oid: str, trusted_roots: Sequence[AnyCertificate] = (),
                       digest: bytes = b"") -> tuple[SignatureInfo, core.Asn1Value]:
    """Check a SignedData: structure, messageDigest, signature value, certificate chain.

    Returns what the signature says and the parsed encapsulated content, whose own digest (a cab digest, a
    catalog's member hashes) the caller compares; ``digest`` is only copied into the result.
    """
    try:
        info = ms.ContentInfo.load(blob)
        if info["content_type"].native != "signed_data":
            raise FormatError(f"PKCS#7 content type is {info['content_type'].dotted}, not signedData")
        signed = info["content"]
        encap = signed["encap_content_info"]
        if encap["content_type"].dotted != content_type_oid:
            raise FormatError(f"signed content type is {encap['content_type'].dotted}, "
                              f"expected {content_type_oid}")
        content = encap["content"]
        content.native  # parse it all now, so damage shows up as a FormatError here
        signer_infos = list(signed["signer_infos"])
        choices = signed["certificates"] if signed["certificates"].native else []
        certs = [c.chosen for c in choices if c.name == "certificate"]
    except (ValueError, TypeError, KeyError) as e:
        raise FormatError(f"signature is not a valid PKCS#7 SignedData: {e}") from None
    if len(signer_infos) != 1:
        raise FormatError(f"signature has {len(signer_infos)} signers; expected exactly one")
    si = signer_infos[0]
    digest_oid = si["digest_algorithm"]["algorithm"].dotted
    if digest_oid not in _HASHES:
        raise SigningError(f"digest algorithm {digest_oid} is not supported")
    new_hash, crypto_hash = _HASHES[digest_oid]
    attrs = si["signed_attrs"]
    if not isinstance(attrs, cms.CMSAttributes) or len(attrs) == 0:
        raise FormatError("signature has no signed attributes (Authenticode requires them)")
    ctype = _attr(attrs, "content_type")
    if ctype is None or ctype.dotted != content_type_oid:
        raise SigningError("the contentType signed attribute does not match the signed content")
    message_digest = _attr(attrs, "message_digest")
    if message_digest is None or message_digest.native != new_hash(content.contents).digest():
        raise SigningError("messageDigest attribute does not match the signed content: "
                           "the signed content was modified after signing")
    sid = si["sid"]
    if sid.name != "issuer_and_serial_number":
        raise FormatError("signer is identified by key identifier; only issuerAndSerialNumber is supported")
    wanted = sid.chosen
    leaf = next((c for c in certs if c.issuer == wanted["issuer"]
                 and c.serial_number == wanted["serial_number"].native), None)
    if leaf is None:
        raise SigningError("the signer's certificate is not included in the signature")
    signed_bytes = b"\x31" + _der_len(len(attrs.contents)) + attrs.contents
    if not verify_raw_signature(leaf, signed_bytes, si["signature"].native, crypto_hash):
        raise SigningError("signature value does not verify with the signer certificate "
                           f"{subject_of(leaf)!r}: the signature or the signed attributes were altered")
    when_attr = _attr(attrs, "signing_time")
    when = when_attr.native if when_attr is not None else None
    chain, trusted = build_chain(leaf, certs, trusted_roots)
    if when is not None:
        for c in chain:
            if not c.not_valid_before_utc <= when <= c.not_valid_after_utc:
                raise SigningError(f"certificate {subject_of(c)!r} was not valid at the signing time {when}")
    if trusted_roots and not trusted:
        raise SigningError(f"chain does not end in a trusted root: it ends at {subject_of(chain[-1])!r}",
                           hint="pass the matching root certificate, or sign with a certificate from a "
                                "trusted CA")
    result = SignatureInfo(
        signer_subject=subject_of(leaf), chain_subjects=tuple(subject_of(c) for c in chain[1:]),
        signing_time=when, test_only=is_test_only(chain), chain_trusted=trusted, digest=digest,
        signer_fingerprint=fingerprint_of(leaf))
    return result, content


def _der_len(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(raw)]) + raw


# --- CAB ---------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SignedCabLayout:
    """Where the signature sits in a signed cab (§2.1)."""

    header: CfHeader
    signature_offset: int
    signature_length: int
    file_size: int


def read_signed_layout(fp: BinaryIO) -> SignedCabLayout:
    """Parse and check the signed-cab header fields; FormatError (with offset) if the cab is not signed."""
    fp.seek(0, os.SEEK_END)
    size = fp.tell()
    fp.seek(0)
    head = fp.read(SIGNED_HEADER_END)
    header = CfHeader.from_bytes(head)
    if not header.flags & FLAG_RESERVE_PRESENT:
        raise FormatError("cab is not signed (CFHEADER.flags has no reserve)", offset=0x1E)
    sizes = CfReserveSizes.from_bytes(head, CfHeader.LAYOUT.size)
    if (sizes.header, sizes.folder, sizes.data) != (SIGNATURE_RESERVE, 0, 0):
        raise FormatError(f"cab reserve sizes {sizes.header}/{sizes.folder}/{sizes.data} are not the "
                          f"Authenticode layout {SIGNATURE_RESERVE}/0/0", offset=CfHeader.LAYOUT.size)
    magic, offset, length, _zero = _SIG_RESERVE.unpack_from(head, _LENGTH_AT - 8)
    if magic != RESERVE_MAGIC:
        raise FormatError(f"signature reserve magic 0x{magic:08x} is not 0x{RESERVE_MAGIC:08x}", offset=0x28)
    if offset != header.cabinet_size or offset + length != size or length == 0:
        raise FormatError(f"signature at {offset} length {length} does not match cbCabinet "
                          f"{header.cabinet_size} and file size {size}", offset=0x2C)
    return SignedCabLayout(header, offset, length, size)


def _hash_header(h: "hashlib._Hash", head: bytes) -> None:
    """§2.2: skip reserved1 (4–7) and iCabinet…first 16 reserve bytes (0x22–0x37)."""
    h.update(head[0:4])
    h.update(head[8:0x22])
    h.update(head[0x38:SIGNED_HEADER_END])


def _copy(src: BinaryIO, length: int, h: "hashlib._Hash", out: BinaryIO | None = None) -> None:
    buf = bytearray(CHUNK)
    view = memoryview(buf)
    while length > 0:
        n = src.readinto(view[:min(CHUNK, length)])
        if not n:
            raise FormatError(f"file ends {length} bytes early", offset=src.tell())
        h.update(view[:n])
        if out is not None:
            out.write(view[:n])
        length -= n


def cab_digest(fp: BinaryIO, *, hash: Callable[[], "hashlib._Hash"] = hashlib.sha256) -> bytes:
    """The Authenticode digest of a cab that has the signed-layout header (§2.2), streamed in 1 MiB chunks."""
    layout = read_signed_layout(fp)
    return _digest(fp, layout, hash)


def _digest(fp: BinaryIO, layout: SignedCabLayout, new_hash: Callable[[], "hashlib._Hash"]) -> bytes:
    fp.seek(0)
    h = new_hash()
    _hash_header(h, fp.read(SIGNED_HEADER_END))
    _copy(fp, layout.signature_offset - SIGNED_HEADER_END, h)
    return h.digest()


def cab_indirect_data(digest: bytes) -> ms.SpcIndirectDataContent:
    """SpcIndirectDataContent for a cab or a flat catalog member: type …2.1.25, obsolete link, SHA-256."""
    link = ms.SpcLink({"file": ms.SpcString({"unicode": ms.OBSOLETE_LINK})})
    return ms.SpcIndirectDataContent({
        "data": {"type": ms.SPC_CAB_DATA_OID, "value": link},
        "message_digest": {"digest_algorithm": _sha256_alg(), "digest": digest},
    })


def sign_cab(src: Path, dst: Path, signer: SignerLike, signing_time: datetime) -> bytes:
    """Write ``dst``: the unsigned cab ``src`` with the signature header inserted and the signature appended.

    One streaming pass: the header is rewritten (+24 on cbCabinet, coffFiles and every coffCabStart), the
    CFFILE/CFDATA bytes are copied and hashed on the way, the SignedData is appended, and the signature length
    (outside the digest) is patched last. ``dst`` appears atomically. Returns the cab digest.
    """
    src, dst = Path(src), Path(dst)
    with open(src, "rb") as fp:
        try:
            return _sign_open_cab(fp, dst, signer, signing_time)
        except FormatError as e:
            raise e.with_path(src) from None
        except SigningError as e:
            e.path = e.path or os.fspath(src)
            raise


def _sign_open_cab(fp: BinaryIO, dst: Path, signer: SignerLike, signing_time: datetime) -> bytes:
    size = os.fstat(fp.fileno()).st_size
    head = fp.read(CfHeader.LAYOUT.size)
    header = CfHeader.from_bytes(head)
    if header.flags & FLAG_RESERVE_PRESENT:
        fp.seek(0)
        try:
            read_signed_layout(fp)
        except FormatError:
            raise FormatError("cab has a header reserve (CFHEADER.flags 0x0004); only cabs written without a "
                              "reserve can be signed", offset=0x1E) from None
        raise SigningError("cab is already signed", hint="sign the unsigned cab, or strip the signature "
                                                          "with osslsigncode remove-signature")
    if head[4:8] != b"\0\0\0\0":
        raise FormatError("CFHEADER.reserved1 is not zero", offset=4)
    if header.cabinet_size != size:
        raise FormatError(f"CFHEADER.cbCabinet is {header.cabinet_size} but the file has {size} bytes",
                          offset=8)
    if header.flags & (FLAG_PREV_CABINET | FLAG_NEXT_CABINET):
        raise FormatError(f"multi-volume cabinet (CFHEADER.flags 0x{header.flags:04x}) cannot be signed; "
                          "osslsigncode and signtool refuse them too", offset=0x1E)
    raw = fp.read(header.folder_count * CfFolder.LAYOUT.size)
    folders = [CfFolder.from_bytes(raw, i * CfFolder.LAYOUT.size) for i in range(header.folder_count)]
    rest = size - fp.tell()
    if header.files_offset < fp.tell():
        raise FormatError(f"CFHEADER.coffFiles {header.files_offset} points into the folder table",
                          offset=0x10)
    if size + INSERTED > CABINET_MAX:
        raise FormatError(f"cab of {size} bytes is too large to sign (limit {CABINET_MAX - INSERTED})",
                          offset=8)
    new_header = dataclasses.replace(header, cabinet_size=size + INSERTED,
                                     files_offset=header.files_offset + INSERTED,
                                     flags=header.flags | FLAG_RESERVE_PRESENT)
    new_head = (new_header.to_bytes() + CfReserveSizes(SIGNATURE_RESERVE, 0, 0).to_bytes()
                + _SIG_RESERVE.pack(RESERVE_MAGIC, size + INSERTED, 0, 0))
    moved = b"".join(dataclasses.replace(f, data_offset=f.data_offset + INSERTED).to_bytes() for f in folders)
    h = hashlib.sha256()
    with atomic_output(dst) as out:
        _hash_header(h, new_head)
        h.update(moved)
        out.write(new_head + moved)
        _copy(fp, rest, h, out)
        digest = h.digest()
        blob = build_signed_data(ms.SPC_INDIRECT_DATA_OID, cab_indirect_data(digest), signer, signing_time)
        blob += b"\0" * (-len(blob) % SIGNATURE_ALIGN)
        out.write(blob)
        out.seek(_LENGTH_AT)
        out.write(struct.pack("<I", len(blob)))
    return digest


def verify_cab(path: Path, *, trusted_roots: Sequence[AnyCertificate] = ()) -> SignatureInfo:
    """Recompute the cab digest and check it, the signature and the chain; raise saying what failed."""
    path = Path(path)
    try:
        with open(path, "rb") as fp:
            layout = read_signed_layout(fp)
            fp.seek(layout.signature_offset)
            padded = fp.read(layout.signature_length)
            length = der_length(padded)
            if length > len(padded) or len(padded) - length >= SIGNATURE_ALIGN or any(padded[length:]):
                raise FormatError(f"signature blob of {length} bytes does not fit its {len(padded)}-byte "
                                  "slot with zero padding", offset=layout.signature_offset)
            blob = padded[:length]
            content = ms.ContentInfo.load(blob)["content"]["encap_content_info"]["content"]
            oid = content["message_digest"]["digest_algorithm"]["algorithm"].dotted
            if oid not in _HASHES:
                raise SigningError(f"cab digest algorithm {oid} is not supported")
            digest = _digest(fp, layout, _HASHES[oid][0])
        info, content = verify_signed_data(blob, content_type_oid=ms.SPC_INDIRECT_DATA_OID,
                                           trusted_roots=trusted_roots, digest=digest)
    except FormatError as e:
        raise e.with_path(path) from None
    except (ValueError, TypeError, KeyError) as e:
        raise FormatError(f"signature is not a valid Authenticode SignedData: {e}", path=path) from None
    except SigningError as e:
        e.path = e.path or os.fspath(path)
        raise
    if content["data"]["type"].dotted != ms.SPC_CAB_DATA_OID:
        raise FormatError(f"signed data type is {content['data']['type'].dotted}, not a cab "
                          f"({ms.SPC_CAB_DATA_OID})", path=path)
    if content["message_digest"]["digest"].native != digest:
        raise SigningError("cab digest does not match the signed digest: the cab was modified after signing",
                           path=path)
    return info
