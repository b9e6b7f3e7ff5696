"""Catalog (.cat) files (reference §2.5), checked by osslsigncode and openssl in both directions."""

from __future__ import annotations

import hashlib
import subprocess
from datetime import datetime, timezone
from pathlib import Path

import pytest
from asn1crypto import core

from iotbuild.errors import FormatError, InputError, SigningError
from iotbuild.formats import asn1_ms as ms
from iotbuild.formats.asn1_ms import SPC_PE_IMAGE_DATA_OID
from iotbuild.formats.catalog import (PE_SIP_GUID, CatalogMember, MemberKind,
                                      build_catalog, build_ctl, read_catalog, verify_catalog)
from iotbuild.formats.pe import authenticode_pe_hash, minimal_driver
from tests.signing.helpers import (SIGNING_TIME, cert_dir, openssl_asn1parse,  # noqa: F401
                                   osslsigncode_at_least, osslsigncode_verify, retail_chain, root_cert,
                                   signer, test_pki)

LIST_ID = bytes.fromhex("00112233445566778899aabbccddeeff")
FILES = {"man.dsm.xml": b"<Package/>\n", "1_foo.dll": bytes(range(256)) * 40, "2_bar.txt": b"bar\n" * 1000}


@pytest.fixture
def member_files(tmp_path: Path) -> list[Path]:
    paths = []
    for name, data in FILES.items():
        (tmp_path / name).write_bytes(data)
        paths.append(tmp_path / name)
    return paths


@pytest.fixture
def catalog(tmp_path: Path, member_files: list[Path], signer) -> Path:
    members = [CatalogMember.for_file(p) for p in member_files]
    out = tmp_path / "content.cat"
    out.write_bytes(build_catalog(members, package_name="Contoso.Test.Pkg", signer=signer,
                                  signing_time=SIGNING_TIME, list_identifier=LIST_ID))
    return out


def test_osslsigncode_verifies_and_lists_members(catalog: Path, test_pki) -> None:
    if not osslsigncode_at_least(2, 8):
        pytest.skip("osslsigncode < 2.8 does not verify or list catalogs")
    result = osslsigncode_verify(catalog, test_pki.root, "-verbose")
    assert result.returncode == 0, result.output
    assert "Signature verification: ok" in result.output
    listed = sorted(result.field("Message digest")[:-1])  # the last one is the messageDigest attribute
    assert listed == sorted(hashlib.sha256(d).hexdigest().upper() for d in FILES.values())


def test_openssl_parses_catalog(tmp_path: Path, catalog: Path) -> None:
    out = openssl_asn1parse(catalog.read_bytes(), tmp_path)
    for oid in (ms.CTL_OID, ms.CATALOG_LIST_OID, ms.CATALOG_LIST_MEMBER2_OID, ms.CAT_MEMBERINFO2_OID,
                ms.CAT_NAMEVALUE_OID, ms.SPC_CAB_DATA_OID):
        assert oid in out, oid


def test_read_back(catalog: Path, member_files: list[Path], root_cert) -> None:
    cat = verify_catalog(catalog.read_bytes(), [root_cert])
    digests = {hashlib.sha256(p.read_bytes()).digest() for p in member_files}
    assert cat.member_digests == digests
    assert [m.tag_hex for m in cat.members] == sorted(d.hex().upper() for d in digests)
    assert cat.attributes == {"OSAttr": "2:6.1,2:6.0,2:5.2,2:5.1", "PackageName": "Contoso.Test.Pkg"}
    assert cat.list_identifier == LIST_ID and cat.this_update == SIGNING_TIME
    assert cat.signature.chain_trusted and cat.signature.test_only
    assert read_catalog(catalog.read_bytes()).signature.chain_trusted is False


def test_member_encoding_follows_pkggen(catalog: Path) -> None:
    ctl = ms.ContentInfo.load(catalog.read_bytes())["content"]["encap_content_info"]["content"]
    subject = ctl["trusted_subjects"][0]
    tag = subject["subject_identifier"].native
    attrs = {a["type"].dotted: a for a in subject["subject_attributes"]}
    assert sorted(attrs) == sorted([ms.CAT_MEMBERINFO2_OID, ms.SPC_INDIRECT_DATA_OID])
    indirect = attrs[ms.SPC_INDIRECT_DATA_OID]["values"][0]
    assert indirect["data"]["type"].dotted == ms.SPC_CAB_DATA_OID
    assert indirect["data"]["value"].native == "<<<Obsolete>>>"
    digest = indirect["message_digest"]["digest"].native
    assert tag == digest.hex().upper().encode("utf-16-le") + b"\0\0"
    assert attrs[ms.CAT_MEMBERINFO2_OID]["values"].dump() == bytes.fromhex("31028200")
    name_values = [ms.CatalogNameValue.load(e["extn_value"].native) for e in ctl["extensions"]]
    assert [(nv["tag"].native, nv["flags"].native) for nv in name_values] == [
        ("OSAttr", 0x00010001), ("PackageName", 0x00010001)]


def test_deterministic_and_order_independent(member_files: list[Path], signer) -> None:
    members = [CatalogMember.for_file(p) for p in member_files]
    kwargs = dict(package_name="P", signer=signer, signing_time=SIGNING_TIME, list_identifier=LIST_ID)
    assert build_catalog(members, **kwargs) == build_catalog(list(reversed(members)) + members[:1], **kwargs)
    other = build_catalog(members, **{**kwargs, "signing_time": datetime(2024, 5, 1, tzinfo=timezone.utc)})
    assert other != build_catalog(members, **kwargs)


def test_conflicting_member_is_an_input_error(signer) -> None:
    a = CatalogMember("A" * 64, b"\x01" * 32)
    b = CatalogMember("A" * 64, b"\x02" * 32)
    with pytest.raises(InputError, match="two different digests"):
        build_catalog([a, b], package_name="P", signer=signer, signing_time=SIGNING_TIME,
                      list_identifier=LIST_ID)
    with pytest.raises(ValueError):
        CatalogMember("abc", b"\x01" * 32)


def test_tampered_member_list_is_detected(catalog: Path, member_files: list[Path]) -> None:
    data = bytearray(catalog.read_bytes())
    digest = hashlib.sha256(member_files[0].read_bytes()).digest()
    at = bytes(data).index(digest)
    data[at] ^= 0xFF
    with pytest.raises(SigningError, match="messageDigest attribute does not match"):
        read_catalog(bytes(data))


def test_untrusted_root_and_garbage(catalog: Path) -> None:
    with pytest.raises(SigningError, match="chain does not end in a trusted root"):
        verify_catalog(catalog.read_bytes(), [retail_chain().root], path="x/content.cat")
    with pytest.raises(FormatError, match="x/content.cat"):
        read_catalog(b"\x30\x03\x02\x01\x01", path="x/content.cat")


def test_we_read_a_catalog_signed_by_osslsigncode(tmp_path: Path, member_files: list[Path], test_pki,
                                                  root_cert) -> None:
    """Unsigned CTL (as makecat leaves it) → osslsigncode sign → our reader."""
    if not osslsigncode_at_least(2, 8):
        pytest.skip("osslsigncode < 2.8 cannot sign catalogs reliably")
    ctl = build_ctl([CatalogMember.for_file(p) for p in member_files], package_name="Contoso.Ossl",
                    this_update=SIGNING_TIME, list_identifier=LIST_ID)
    sha256 = {"algorithm": ms.SHA256_OID, "parameters": core.Null()}
    unsigned = ms.ContentInfo({"content_type": "signed_data", "content": ms.SignedData({
        "version": "v1", "digest_algorithms": [sha256],
        "encap_content_info": {"content_type": ms.CTL_OID, "content": ctl}, "signer_infos": []})})
    src, out, certs = tmp_path / "unsigned.cat", tmp_path / "signed.cat", tmp_path / "certs.pem"
    src.write_bytes(unsigned.dump())
    certs.write_bytes(test_pki.certificate.read_bytes() + test_pki.intermediate.read_bytes())
    subprocess.run(["osslsigncode", "sign", "-certs", certs, "-key", test_pki.key, "-h", "sha256", "-in", src,
                    "-out", out], check=True, capture_output=True)
    cat = verify_catalog(out.read_bytes(), [root_cert])
    assert cat.member_digests == {hashlib.sha256(p.read_bytes()).digest() for p in member_files}
    assert cat.attributes["PackageName"] == "Contoso.Ossl" and cat.signature.chain_trusted


# --- PE members (PE SIP: SPC_PE_IMAGE_DATAOBJ + Authenticode PE image hash) --------------------------------
@pytest.fixture
def pe_catalog(tmp_path: Path, member_files: list[Path], signer) -> tuple[Path, Path]:
    driver = tmp_path / "sampledriver.sys"
    driver.write_bytes(minimal_driver(timestamp=1700000000))
    members = [CatalogMember.for_file(p) for p in (*member_files, driver)]
    out = tmp_path / "pe-content.cat"
    out.write_bytes(build_catalog(members, package_name="Contoso.Test.Driver", signer=signer,
                                  signing_time=SIGNING_TIME, list_identifier=LIST_ID))
    return out, driver


def test_for_file_chooses_pe_form_for_pe_images(tmp_path: Path, member_files: list[Path]) -> None:
    driver = tmp_path / "d.sys"
    driver.write_bytes(minimal_driver(timestamp=1700000000))
    m = CatalogMember.for_file(driver)
    assert m.kind is MemberKind.PE and m.kind.sip_guid == PE_SIP_GUID
    assert m.digest == authenticode_pe_hash(driver) != hashlib.sha256(driver.read_bytes()).digest()
    assert m.tag_hex == m.digest.hex().upper()
    assert CatalogMember.for_data(driver.read_bytes()) == m
    # "1_foo.dll" is not a PE image: named like one, hashed flat
    assert all(CatalogMember.for_file(p).kind is MemberKind.FLAT for p in member_files)
    assert CatalogMember("A" * 64, b"\1" * 32, "pe").kind is MemberKind.PE


def test_pe_member_encoding(pe_catalog: tuple[Path, Path], root_cert) -> None:
    cat_path, driver = pe_catalog
    ctl = ms.ContentInfo.load(cat_path.read_bytes())["content"]["encap_content_info"]["content"]
    pe_hash = authenticode_pe_hash(driver)
    tag = pe_hash.hex().upper().encode("utf-16-le") + b"\0\0"
    subject = next(s for s in ctl["trusted_subjects"] if s["subject_identifier"].native == tag)
    attrs = {a["type"].dotted: a for a in subject["subject_attributes"]}
    assert attrs[ms.CAT_MEMBERINFO2_OID]["values"].dump() == bytes.fromhex("31028200")
    indirect = attrs[ms.SPC_INDIRECT_DATA_OID]["values"][0]
    assert indirect["data"]["type"].dotted == SPC_PE_IMAGE_DATA_OID
    # SpcPeImageData { flags: empty BIT STRING, file: [0] { [2] { [0] BMPString "<<<Obsolete>>>" } } }
    obsolete = "<<<Obsolete>>>".encode("utf-16-be")
    expected = (b"\x30\x25\x03\x01\x00\xa0\x20\xa2\x1e\x80\x1c" + obsolete)
    assert indirect["data"]["value"].dump() == expected
    assert indirect["message_digest"]["digest"].native == pe_hash
    cat = verify_catalog(cat_path.read_bytes(), [root_cert])
    kinds = {m.digest: m.kind for m in cat.members}
    assert kinds[pe_hash] is MemberKind.PE
    assert cat.member_digests == {pe_hash, *(hashlib.sha256(d).digest() for d in FILES.values())}
    assert sum(k is MemberKind.FLAT for k in kinds.values()) == len(FILES)


def test_pe_and_flat_member_with_same_tag_conflict(signer) -> None:
    with pytest.raises(InputError, match="two different digests"):
        build_ctl([CatalogMember("A" * 64, b"\1" * 32, MemberKind.PE), CatalogMember("A" * 64, b"\1" * 32)],
                  package_name="P", this_update=SIGNING_TIME, list_identifier=LIST_ID)


def test_osslsigncode_verifies_pe_against_catalog(pe_catalog: tuple[Path, Path], test_pki, tmp_path: Path) -> None:
    """osslsigncode verify -catalog: it computes the PE image hash itself and finds it in our catalog."""
    if not osslsigncode_at_least(2, 8):
        pytest.skip("osslsigncode < 2.8 cannot verify a file against a catalog")
    cat_path, driver = pe_catalog
    result = osslsigncode_verify(driver, test_pki.root, "-catalog", str(cat_path))
    assert result.returncode == 0, result.output
    expected = authenticode_pe_hash(driver).hex().upper()
    assert result.field("Calculated message digest") == [expected]
    assert result.field("Current message digest") == [expected]
    assert "File is signed in catalog" in result.output and "Signature verification: ok" in result.output
    # the same driver with one code byte changed is not in the catalog
    tampered = tmp_path / "tampered.sys"
    data = bytearray(driver.read_bytes())
    data[0x200] ^= 0x01
    tampered.write_bytes(bytes(data))
    assert osslsigncode_verify(tampered, test_pki.root, "-catalog", str(cat_path)).returncode != 0
    # …but a changed CheckSum field alone keeps the PE image hash, so it still matches
    rechecked = tmp_path / "rechecked.sys"
    data = bytearray(driver.read_bytes())
    data[0x58 + 64:0x58 + 68] = b"\x12\x34\x56\x78"
    rechecked.write_bytes(bytes(data))
    again = osslsigncode_verify(rechecked, test_pki.root, "-catalog", str(cat_path))
    assert again.returncode == 0 and again.field("Calculated message digest") == [expected], again.output
