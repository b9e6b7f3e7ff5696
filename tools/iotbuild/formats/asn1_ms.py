"""Microsoft Authenticode (SPC) and catalog (CTL) ASN.1 types, declared on asn1crypto. Declarations only.

Reference: cab-authenticode-registry.md §2.3 (SpcIndirectDataContent and the signed attributes of a CAB
signature) and §2.5 (CertificateTrustList, the content of a ``.cat``). asn1crypto knows CMS but none of
Microsoft's types, so the handful needed are declared here. They are plain subclasses: nothing in asn1crypto's
global OID tables is changed, so other users of asn1crypto in the same process see no difference.
"""

from __future__ import annotations

from asn1crypto import cms, core, x509

# --- OIDs --------------------------------------------------------------------------------------------------
SIGNED_DATA_OID = "1.2.840.113549.1.7.2"
SHA256_OID = "2.16.840.1.101.3.4.2.1"
SHA1_OID = "1.3.14.3.2.26"
RSA_OID = "1.2.840.113549.1.1.1"
ECDSA_SHA256_OID = "1.2.840.10045.4.3.2"

SPC_INDIRECT_DATA_OID = "1.3.6.1.4.1.311.2.1.4"     # eContentType of an Authenticode signature
SPC_STATEMENT_TYPE_OID = "1.3.6.1.4.1.311.2.1.11"   # signed attribute
SPC_SP_OPUS_INFO_OID = "1.3.6.1.4.1.311.2.1.12"     # signed attribute (program name, URL)
SPC_INDIVIDUAL_SP_KEY_PURPOSE_OID = "1.3.6.1.4.1.311.2.1.21"
SPC_COMMERCIAL_SP_KEY_PURPOSE_OID = "1.3.6.1.4.1.311.2.1.22"
SPC_PE_IMAGE_DATA_OID = "1.3.6.1.4.1.311.2.1.15"    # SpcAttributeTypeAndOptionalValue.type: PE images
SPC_CAB_DATA_OID = "1.3.6.1.4.1.311.2.1.25"         # SpcAttributeTypeAndOptionalValue.type: CABs, flat files
OBSOLETE_LINK = "<<<Obsolete>>>"

CTL_OID = "1.3.6.1.4.1.311.10.1"                    # eContentType of a catalog
CATALOG_LIST_OID = "1.3.6.1.4.1.311.12.1.1"         # CTL subjectUsage
CATALOG_LIST_MEMBER_OID = "1.3.6.1.4.1.311.12.1.2"  # subjectAlgorithm, CatalogVersion 1 (SHA-1)
CATALOG_LIST_MEMBER2_OID = "1.3.6.1.4.1.311.12.1.3"  # subjectAlgorithm, CatalogVersion 2 (SHA-256)
CAT_NAMEVALUE_OID = "1.3.6.1.4.1.311.12.2.1"
CAT_MEMBERINFO_OID = "1.3.6.1.4.1.311.12.2.2"
CAT_MEMBERINFO2_OID = "1.3.6.1.4.1.311.12.2.3"

CODE_SIGNING_EKU_OID = "1.3.6.1.5.5.7.3.3"


# --- SPC (Authenticode) ------------------------------------------------------------------------------------
class SpcString(core.Choice):
    _alternatives = [
        ("unicode", core.BMPString, {"implicit": 0}),
        ("ascii", core.IA5String, {"implicit": 1}),
    ]


class SpcSerializedObject(core.Sequence):
    _fields = [
        ("class_id", core.OctetString),
        ("serialized_data", core.OctetString),
    ]


class SpcLink(core.Choice):
    _alternatives = [
        ("url", core.IA5String, {"implicit": 0}),
        ("moniker", SpcSerializedObject, {"implicit": 1}),
        ("file", SpcString, {"explicit": 2}),
    ]


class AlgorithmIdentifier(core.Sequence):
    """Kept apart from asn1crypto's algorithm classes so that catalog OIDs parse without lookups."""

    _fields = [
        ("algorithm", core.ObjectIdentifier),
        ("parameters", core.Any, {"optional": True}),
    ]


class DigestInfo(core.Sequence):
    _fields = [
        ("digest_algorithm", AlgorithmIdentifier),
        ("digest", core.OctetString),
    ]


class SpcPeImageData(core.Sequence):
    """SpcPeImageData ::= SEQUENCE { flags SpcPeImageFlags (BIT STRING), file [0] EXPLICIT SpcLink }."""

    _fields = [
        ("flags", core.BitString),
        ("file", SpcLink, {"explicit": 0, "optional": True}),
    ]


class SpcAttributeTypeAndOptionalValue(core.Sequence):
    _fields = [
        ("type", core.ObjectIdentifier),
        ("value", core.Any, {"optional": True}),
    ]
    _oid_pair = ("type", "value")
    _oid_specs = {SPC_CAB_DATA_OID: SpcLink, SPC_PE_IMAGE_DATA_OID: SpcPeImageData}


class SpcIndirectDataContent(core.Sequence):
    _fields = [
        ("data", SpcAttributeTypeAndOptionalValue),
        ("message_digest", DigestInfo),
    ]


class SpcStatementType(core.SequenceOf):
    _child_spec = core.ObjectIdentifier


class SpcSpOpusInfo(core.Sequence):
    _fields = [
        ("program_name", SpcString, {"explicit": 0, "optional": True}),
        ("more_info", SpcLink, {"explicit": 1, "optional": True}),
    ]


# --- CTL (catalog) -----------------------------------------------------------------------------------------
class CatalogNameValue(core.Sequence):
    """CAT_NAMEVALUE: a named catalog or member attribute; ``value`` is UTF-16LE text with a NUL."""

    _fields = [
        ("tag", core.BMPString),
        ("flags", core.Integer),
        ("value", core.OctetString),
    ]


class CatalogMemberInfo(core.Sequence):
    """CAT_MEMBERINFO (CatalogVersion 1): the SIP GUID as text and the cert version (512)."""

    _fields = [
        ("subject_guid", core.BMPString),
        ("cert_version", core.Integer),
    ]


class SetOfAny(core.SetOf):
    _child_spec = core.Any


class SetOfSpcIndirectDataContent(core.SetOf):
    _child_spec = SpcIndirectDataContent


class CtlAttribute(core.Sequence):
    _fields = [
        ("type", core.ObjectIdentifier),
        ("values", None),
    ]
    _oid_specs = {SPC_INDIRECT_DATA_OID: SetOfSpcIndirectDataContent}

    def _values_spec(self) -> type:
        return self._oid_specs.get(self["type"].native, SetOfAny)

    _spec_callbacks = {"values": _values_spec}


class CtlAttributes(core.SetOf):
    _child_spec = CtlAttribute


class TrustedSubject(core.Sequence):
    _fields = [
        ("subject_identifier", core.OctetString),
        ("subject_attributes", CtlAttributes, {"optional": True}),
    ]


class TrustedSubjects(core.SequenceOf):
    _child_spec = TrustedSubject


class CtlExtension(core.Sequence):
    _fields = [
        ("extn_id", core.ObjectIdentifier),
        ("critical", core.Boolean, {"default": False}),
        ("extn_value", core.OctetString),
    ]


class CtlExtensions(core.SequenceOf):
    _child_spec = CtlExtension


class SubjectUsage(core.SequenceOf):
    _child_spec = core.ObjectIdentifier


class CertificateTrustList(core.Sequence):
    _fields = [
        ("version", core.Integer, {"default": 0}),
        ("subject_usage", SubjectUsage),
        ("list_identifier", core.OctetString, {"optional": True}),
        ("sequence_number", core.Integer, {"optional": True}),
        ("this_update", x509.Time),
        ("next_update", x509.Time, {"optional": True}),
        ("subject_algorithm", AlgorithmIdentifier),
        ("trusted_subjects", TrustedSubjects, {"optional": True}),
        ("extensions", CtlExtensions, {"explicit": 0, "optional": True}),
    ]


# --- CMS wrappers whose encapsulated content is one of the above -------------------------------------------
class EncapsulatedContentInfo(cms.EncapsulatedContentInfo):
    """PKCS#7 v1.5 style: ``[0] EXPLICIT ANY`` holds the SEQUENCE itself, not an OCTET STRING around it."""

    _fields = [
        ("content_type", cms.ContentType),
        ("content", core.Any, {"explicit": 0, "optional": True}),
    ]
    _oid_specs = {SPC_INDIRECT_DATA_OID: SpcIndirectDataContent, CTL_OID: CertificateTrustList}


class SignedData(cms.SignedData):
    # asn1crypto picks the encap spec by version; ours is always the PKCS#7 v1.5 one above.
    _spec_callbacks: dict[str, object] = {}
    _fields = [(name, EncapsulatedContentInfo, *rest) if name == "encap_content_info" else (name, spec, *rest)
               for name, spec, *rest in cms.SignedData._fields]


class ContentInfo(cms.ContentInfo):
    _oid_specs = {**cms.ContentInfo._oid_specs, "signed_data": SignedData}

