"""The FFU's signed catalog, shaped like the one Microsoft's imaging tools make (reference: ffu.md §2.2).

Microsoft's ``ImageSigner.GenerateCatalogFile`` feeds MakeCat a CDF with no catalog attributes and one
``[CatalogFiles]`` line, ``HashTable.blob=<the hash table>``; with no ``CatalogVersion``/``HashAlgorithms``
MakeCat writes a CatalogVersion 1 (SHA-1) catalog whose member goes through the flat-file SIP. So:

* subjectAlgorithm 1.3.6.1.4.1.311.12.1.2 (catalog list member, CatalogVersion 1) with NULL parameters;
* one member, tag UTF-16LE ``"HashTable.blob"`` + NUL (30 bytes);
* its attributes: SPC_INDIRECT_DATA = { type …2.1.25, link [2]{[0] ""}, DigestInfo { sha1, NULL,
  SHA-1(hash table) } } and CAT_MEMBERINFO = { "{DE351A42-8E59-11D0-8C47-00C04FC295EE}" (flat SIP), 0x0200 };
* no CTL extensions (no catalog attributes).

That is ffu.md's 328-byte template, byte for byte apart from the list identifier and thisUpdate, here signed
with :func:`iotbuild.formats.authenticode.build_signed_data` (content type szOID_CTL). Microsoft's
verifier (``ImageSigner.GetCatalogHash`` / ``VerifyCatalogData``) takes the **last 20 bytes of the first
member's encoded indirect data** and compares them with SHA-1 of the whole hash table; :func:`verify_ffu_catalog` does the
same, after checking the signature and chain.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from asn1crypto import core

from ...errors import FormatError, SigningError
from .. import asn1_ms as ms
from ..authenticode import AnyCertificate, SignatureInfo, SignerLike, build_signed_data, verify_signed_data
from ..catalog import FLAT_SIP_GUID, assemble_ctl

HASH_TABLE_TAG = "HashTable.blob"   # the member name in Microsoft's CDF
MEMBER_CERT_VERSION = 0x0200        # CAT_MEMBERINFO dwCertVersion, as MakeCat writes it
SHA1_SIZE = 20


@dataclass(frozen=True)
class FfuCatalog:
    """A checked FFU catalog: its signature, and what its first member says."""

    signature: SignatureInfo
    member_tag: str          # the first member's tag ("HashTable.blob" in ours and Microsoft's)
    member_hash: bytes       # last 20 bytes of its encoded indirect data (= SHA-1 of the hash table)


def ffu_catalog_ctl(hash_table: bytes, *, this_update: datetime) -> ms.CertificateTrustList:
    """The unsigned CTL (what MakeCat writes from Microsoft's CDF) for ``hash_table``.

    The list identifier (random in MakeCat) is derived from the hash table, so rebuilds are identical."""
    digest = hashlib.sha1(hash_table).digest()
    indirect = ms.SpcIndirectDataContent({
        "data": {"type": ms.SPC_CAB_DATA_OID, "value": ms.SpcLink({"file": ms.SpcString({"unicode": ""})})},
        "message_digest": {"digest_algorithm": {"algorithm": ms.SHA1_OID, "parameters": core.Null()},
                           "digest": digest},
    })
    member_info = ms.CatalogMemberInfo({"subject_guid": FLAT_SIP_GUID, "cert_version": MEMBER_CERT_VERSION})
    subject = {
        "subject_identifier": HASH_TABLE_TAG.encode("utf-16-le") + b"\0\0",
        "subject_attributes": [
            ms.CtlAttribute({"type": ms.SPC_INDIRECT_DATA_OID, "values": [indirect]}),
            ms.CtlAttribute({"type": ms.CAT_MEMBERINFO_OID,
                             "values": ms.SetOfAny([core.Any.load(member_info.dump())])}),
        ],
    }
    list_identifier = hashlib.sha256(b"iotbuild ffu\0" + digest).digest()[:16]
    return assemble_ctl([subject], this_update=this_update, list_identifier=list_identifier,
                        subject_algorithm=ms.CATALOG_LIST_MEMBER_OID)


def build_ffu_catalog(hash_table: bytes, *, signer: SignerLike, signing_time: datetime) -> bytes:
    """DER of the signed FFU catalog over ``hash_table``; ``signing_time`` is also the CTL's thisUpdate."""
    return build_signed_data(ms.CTL_OID, ffu_catalog_ctl(hash_table, this_update=signing_time), signer,
                             signing_time)


def catalog_member_hash(ctl: ms.CertificateTrustList) -> tuple[str, bytes]:
    """(tag, hash) of the first member, read as Microsoft's ``GetCatalogHash`` does: the last 20 bytes of the
    member's encoded SPC_INDIRECT_DATA value, whatever its digest algorithm claims."""
    subjects = ctl["trusted_subjects"]
    if not subjects.native:
        raise FormatError("the FFU catalog has no members; Microsoft's verifier needs a HashTable.blob "
                          "member")
    first = subjects[0]
    raw_tag = first["subject_identifier"].native
    tag = raw_tag.decode("utf-16-le", "replace").rstrip("\0") if len(raw_tag) % 2 == 0 else raw_tag.hex()
    attrs = first["subject_attributes"]
    for attr in attrs if attrs.native else []:
        if attr["type"].dotted == ms.SPC_INDIRECT_DATA_OID and len(attr["values"]):
            encoded = attr["values"][0].dump()
            if len(encoded) < SHA1_SIZE:
                break
            return tag, encoded[-SHA1_SIZE:]
    raise FormatError(f"the FFU catalog's first member {tag!r} has no SPC_INDIRECT_DATA hash")


def verify_ffu_catalog(data: bytes, hash_table: bytes,
                       trusted_roots: Sequence[AnyCertificate] = ()) -> FfuCatalog:
    """Check the catalog's signature (and chain to ``trusted_roots`` if given), then Microsoft's test: the
    first member's hash equals SHA-1 of ``hash_table``. Raises FormatError or SigningError."""
    if not data:
        raise FormatError("the FFU does not contain a catalog (dwCatalogSize is 0)",
                          hint="rebuild the FFU; Microsoft's verifier rejects an FFU without a catalog")
    signature, ctl = verify_signed_data(data, content_type_oid=ms.CTL_OID, trusted_roots=trusted_roots)
    try:
        tag, member_hash = catalog_member_hash(ctl)
    except (ValueError, TypeError, KeyError) as e:
        raise FormatError(f"the FFU catalog is not a valid CTL: {e}") from None
    expected = hashlib.sha1(hash_table).digest()
    if member_hash != expected:
        raise SigningError(f"the catalog does not list the hash table: its first member {tag!r} holds SHA-1 "
                           f"{member_hash.hex()}, but the hash table's SHA-1 is {expected.hex()}",
                           hint="the hash table (or the catalog) was changed after signing: rebuild the FFU")
    return FfuCatalog(signature, tag, member_hash)
