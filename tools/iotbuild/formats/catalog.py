"""Catalog (``.cat``) files: a signed Certificate Trust List of member file hashes, as pkggen's content.cat.

Reference: cab-authenticode-registry.md §2.5 ("Catalog files" and "How pkggen builds content.cat"). pkggen
writes a CDF with ``CatalogVersion=2`` / ``HashAlgorithms=SHA256``, two catalog attributes (``OSAttr``,
``PackageName``) and one ``<HASH>`` line per non-empty package file, runs makecat and signs the result. This
module produces the same CTL directly and signs it with
:func:`iotbuild.formats.authenticode.build_signed_data` (eContentType szOID_CTL): no makecat, no signtool.

Each member: subjectIdentifier = the member hash as upper-case hex, UTF-16LE, NUL-terminated (the ``<HASH>``
tag); attributes CAT_MEMBERINFO2 and SPC_INDIRECT_DATA. Flat files (what makecat hands to the flat-file SIP):
type …2.1.25, the obsolete file link, SHA-256 of the whole file. PE images (.sys/.dll/.exe, PE SIP
{C689AAB8-8E78-11D0-8C47-00C04FC295EE}): type …2.1.15 SPC_PE_IMAGE_DATAOBJ with SpcPeImageData (empty
flags, obsolete file link) and the Authenticode PE image hash (:func:`iotbuild.formats.pe.authenticode_pe_hash`),
which is then also the tag. Members are sorted by tag so that the same files always give the same bytes.
"""

from __future__ import annotations

import enum
import hashlib
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from asn1crypto import core

from ..errors import FormatError, InputError, SigningError
from . import asn1_ms as ms
from . import pe as pefmt
from .authenticode import (AnyCertificate, SignatureInfo, SignerLike, build_signed_data, cab_indirect_data,
                           verify_signed_data)

OS_ATTR = "2:6.1,2:6.0,2:5.2,2:5.1"  # pkggen's CATATTR1: NT 6.1, 6.0, 5.2, 5.1 (Windows 7 … XP)
ATTR_FLAGS = 0x00010001              # CRYPTCAT_ATTR_DATAASCII | CRYPTCAT_ATTR_NAMEASCII, as in pkggen's CDF
# CAT_MEMBERINFO2 value: a context [2] element with no content, as makecat writes for CatalogVersion 2.
_MEMBERINFO2_VALUE = b"\x82\x00"
_HEX64 = re.compile(r"[0-9A-F]{64}")
_CHUNK = 1 << 20

PE_SIP_GUID = "{C689AAB8-8E78-11D0-8C47-00C04FC295EE}"
FLAT_SIP_GUID = "{DE351A42-8E59-11D0-8C47-00C04FC295EE}"




class MemberKind(str, enum.Enum):
    """Which SIP a member goes through: the flat-file SIP (whole-file hash) or the PE SIP (PE image hash)."""

    FLAT = "flat"
    PE = "pe"

    @property
    def sip_guid(self) -> str:
        return PE_SIP_GUID if self is MemberKind.PE else FLAT_SIP_GUID


@dataclass(frozen=True, order=True)
class CatalogMember:
    """One ``<HASH>`` member: ``tag_hex`` is what Windows looks a file up by, ``digest`` its hash."""

    tag_hex: str   # upper-case hex SHA-256
    digest: bytes  # 32 bytes
    kind: MemberKind = MemberKind.FLAT

    def __post_init__(self) -> None:
        if not isinstance(self.kind, MemberKind):
            object.__setattr__(self, "kind", MemberKind(self.kind))
        if not _HEX64.fullmatch(self.tag_hex):
            raise ValueError(f"catalog member tag {self.tag_hex!r} is not 64 upper-case hex digits")
        if len(self.digest) != 32:
            raise ValueError(f"catalog member digest has {len(self.digest)} bytes, not 32 (SHA-256)")

    @classmethod
    def from_digest(cls, digest: bytes, kind: MemberKind | str = MemberKind.FLAT) -> CatalogMember:
        return cls(digest.hex().upper(), digest, MemberKind(kind))

    @classmethod
    def for_data(cls, data: bytes) -> CatalogMember:
        """Like :meth:`for_file` for bytes in memory (generated members such as ``.reg`` files)."""
        if pefmt.is_pe(data):
            return cls.from_digest(pefmt.authenticode_pe_hash(data), MemberKind.PE)
        return cls.from_digest(hashlib.sha256(data).digest())

    @classmethod
    def for_file(cls, path: str | os.PathLike[str]) -> CatalogMember:
        """The member makecat would write for ``path``: a PE member (Authenticode PE image hash) when the file
        is a well-formed PE image (:func:`iotbuild.formats.pe.is_pe`), else a flat member (plain SHA-256).
        Both are read in 1 MiB chunks."""
        with open(path, "rb") as f:
            if pefmt.is_pe(f):
                try:
                    return cls.from_digest(pefmt.authenticode_pe_hash(f), MemberKind.PE)
                except FormatError as e:
                    raise e.with_path(path) from None
            f.seek(0)
            h = hashlib.sha256()
            while chunk := f.read(_CHUNK):
                h.update(chunk)
        return cls.from_digest(h.digest())


@dataclass(frozen=True)
class Catalog:
    """A parsed catalog whose signature has been checked (trust only if roots were given)."""

    members: tuple[CatalogMember, ...]
    member_digests: frozenset[bytes]
    attributes: dict[str, str]
    list_identifier: bytes
    this_update: datetime
    signature: SignatureInfo


def _name_value(tag: str, value: str, flags: int = ATTR_FLAGS) -> ms.CatalogNameValue:
    return ms.CatalogNameValue({"tag": tag, "flags": flags, "value": value.encode("utf-16-le") + b"\0\0"})


def build_catalog(members: Iterable[CatalogMember], *, package_name: str, signer: SignerLike,
                  signing_time: datetime, list_identifier: bytes, os_attr: str = OS_ATTR) -> bytes:
    """DER of a signed CatalogVersion 2 (SHA-256) catalog listing ``members``.

    ``list_identifier`` (16 bytes) is the catalog's GUID; pass one derived from the package identity so that
    rebuilds are identical. ``signing_time`` is also the CTL's thisUpdate.
    """
    ctl = build_ctl(members, package_name=package_name, this_update=signing_time,
                    list_identifier=list_identifier, os_attr=os_attr)
    return build_signed_data(ms.CTL_OID, ctl, signer, signing_time)


def build_ctl(members: Iterable[CatalogMember], *, package_name: str, this_update: datetime,
              list_identifier: bytes, os_attr: str = OS_ATTR) -> ms.CertificateTrustList:
    """The unsigned CTL (what makecat writes before signtool signs it). Identical members are listed once,
    as makecat does for two files with the same content."""
    unique = sorted(set(members))
    for a, b in zip(unique, unique[1:]):
        if a.tag_hex == b.tag_hex:
            raise InputError(f"catalog member {a.tag_hex} is listed with two different digests or kinds")
    subjects = []
    for m in unique:
        memberinfo2 = ms.CtlAttribute({"type": ms.CAT_MEMBERINFO2_OID,
                                       "values": ms.SetOfAny([core.Any.load(_MEMBERINFO2_VALUE)])})
        indirect = ms.CtlAttribute({"type": ms.SPC_INDIRECT_DATA_OID,
                                    "values": [_indirect_data(m)]})
        subjects.append({"subject_identifier": m.tag_hex.encode("utf-16-le") + b"\0\0",
                         "subject_attributes": [memberinfo2, indirect]})
    return assemble_ctl(subjects, this_update=this_update, list_identifier=list_identifier,
                        subject_algorithm=ms.CATALOG_LIST_MEMBER2_OID,
                        attributes={"OSAttr": os_attr, "PackageName": package_name})


def assemble_ctl(subjects: Sequence[ms.TrustedSubject | Mapping[str, object]], *, this_update: datetime,
                 list_identifier: bytes, subject_algorithm: str = ms.CATALOG_LIST_MEMBER2_OID,
                 attributes: Mapping[str, str] | None = None) -> ms.CertificateTrustList:
    """A catalog CTL around ready-made ``subjects`` (in the given order): subjectUsage catalog list,
    ``list_identifier`` (16 bytes), thisUpdate, ``subject_algorithm`` (…12.1.3 = CatalogVersion 2 / SHA-256,
    …12.1.2 = CatalogVersion 1 / SHA-1) with NULL parameters, and one CAT_NAMEVALUE extension per catalog
    attribute (none: the extensions field is left out, as makecat does for a CDF without attributes)."""
    if len(list_identifier) != 16:
        raise ValueError("list_identifier must be 16 bytes (a GUID)")
    when = this_update.astimezone(timezone.utc).replace(microsecond=0)
    fields: dict[str, object] = {
        "subject_usage": [ms.CATALOG_LIST_OID],
        "list_identifier": list_identifier,
        "this_update": {"utc_time" if 1950 <= when.year < 2050 else "general_time": when},
        "subject_algorithm": {"algorithm": subject_algorithm, "parameters": core.Null()},
        "trusted_subjects": list(subjects),
    }
    if attributes:
        fields["extensions"] = [{"extn_id": ms.CAT_NAMEVALUE_OID,
                                 "extn_value": _name_value(tag, value).dump()}
                                for tag, value in attributes.items()]
    return ms.CertificateTrustList(fields)


def read_catalog(data: bytes, *, trusted_roots: Sequence[AnyCertificate] = (),
                 path: str | None = None) -> Catalog:
    """Parse a signed catalog and check its signature (and the chain against ``trusted_roots`` if given)."""
    try:
        signature, ctl = verify_signed_data(data, content_type_oid=ms.CTL_OID, trusted_roots=trusted_roots)
        members = [_member(s) for s in ctl["trusted_subjects"]] if ctl["trusted_subjects"].native else []
        attributes = {}
        for ext in ctl["extensions"] if ctl["extensions"].native else []:
            if ext["extn_id"].dotted == ms.CAT_NAMEVALUE_OID:
                nv = ms.CatalogNameValue.load(ext["extn_value"].native)
                attributes[nv["tag"].native] = _utf16z(nv["value"].native)
        result = Catalog(
            members=tuple(sorted(m for m in members if m is not None)),
            member_digests=frozenset(m.digest for m in members if m is not None),
            attributes=attributes, list_identifier=ctl["list_identifier"].native or b"",
            this_update=ctl["this_update"].native, signature=signature)
    except FormatError as e:
        raise (e.with_path(path) if path else e) from None
    except SigningError as e:
        e.path = e.path or path
        raise
    except (ValueError, TypeError, KeyError) as e:
        raise FormatError(f"catalog is not a valid CTL: {e}", path=path) from None
    return result


def verify_catalog(data: bytes, trusted_roots: Sequence[AnyCertificate] = (), *,
                   path: str | None = None) -> Catalog:
    """Like :func:`~iotbuild.formats.authenticode.verify_cab` for catalogs: the signature is checked, and the
    chain must end in one of ``trusted_roots`` if any are given (``signature.chain_trusted`` says so)."""
    return read_catalog(data, trusted_roots=trusted_roots, path=path)


def _indirect_data(member: CatalogMember) -> ms.SpcIndirectDataContent:
    """SPC_INDIRECT_DATA of a member: the flat-file form (…2.1.25) or the PE form (…2.1.15, SpcPeImageData)."""
    if member.kind is MemberKind.FLAT:
        return cab_indirect_data(member.digest)
    link = ms.SpcLink({"file": ms.SpcString({"unicode": ms.OBSOLETE_LINK})})
    pe_data = ms.SpcPeImageData({"flags": (), "file": link})
    return ms.SpcIndirectDataContent({
        "data": {"type": ms.SPC_PE_IMAGE_DATA_OID, "value": pe_data},
        "message_digest": {"digest_algorithm": {"algorithm": ms.SHA256_OID, "parameters": core.Null()},
                           "digest": member.digest},
    })


def _utf16z(raw: bytes) -> str:
    return raw.decode("utf-16-le", "replace").rstrip("\0")


def _member(subject: ms.TrustedSubject) -> CatalogMember | None:
    """The member's tag and SHA-256, or None for an entry without a SHA-256 SPC_INDIRECT_DATA.

    Tags written by makecat's ``<HASH>`` lines are UTF-16LE hex text (130 bytes with the NUL); catalogs that
    store the raw hash bytes instead are read too, so that other tools' catalogs can be checked.
    """
    ident = subject["subject_identifier"].native
    tag = _utf16z(ident) if len(ident) == 130 else ident.hex().upper()
    attrs = subject["subject_attributes"]
    for attr in attrs if attrs.native else []:
        if attr["type"].dotted != ms.SPC_INDIRECT_DATA_OID:
            continue
        for value in attr["values"]:
            info = value["message_digest"]
            if info["digest_algorithm"]["algorithm"].dotted == ms.SHA256_OID and _HEX64.fullmatch(tag):
                kind = MemberKind.PE if value["data"]["type"].dotted == ms.SPC_PE_IMAGE_DATA_OID else MemberKind.FLAT
                return CatalogMember(tag, info["digest"].native, kind)
    return None
