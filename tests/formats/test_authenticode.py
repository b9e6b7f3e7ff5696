"""Authenticode CAB signing (reference §2.1–2.3), checked both ways with osslsigncode, cabextract, openssl."""

from __future__ import annotations

import io
import struct
import subprocess
from datetime import datetime, timezone
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from iotbuild.errors import FormatError, SigningError
from iotbuild.formats import asn1_ms as ms
from iotbuild.formats.authenticode import (build_signed_data, cab_digest, cab_indirect_data, der_length,
                                           read_signed_layout, sign_cab, verify_cab)
from iotbuild.formats.cab.records import FLAG_RESERVE_PRESENT, CfFolder, CfHeader
from tests.conftest import require_tool
from tests.signing.helpers import (SIGNING_TIME, build_stored_cab, cert_dir, gcab_cab,  # noqa: F401
                                   manual_cab_digest, openssl_asn1parse, osslsigncode_verify, retail_chain,
                                   root_cert, sample_files, signer, test_pki)


@pytest.fixture
def unsigned(tmp_path: Path) -> Path:
    path = tmp_path / "unsigned.cab"
    path.write_bytes(build_stored_cab(sample_files()))
    return path


@pytest.fixture
def signed(tmp_path: Path, unsigned: Path, signer) -> Path:
    out = tmp_path / "signed.cab"
    sign_cab(unsigned, out, signer, SIGNING_TIME)
    return out


def test_signed_layout_follows_reference(unsigned: Path, signed: Path) -> None:
    src, dst = unsigned.read_bytes(), signed.read_bytes()
    old, new = CfHeader.from_bytes(src), CfHeader.from_bytes(dst)
    assert new.flags == old.flags | FLAG_RESERVE_PRESENT
    assert new.cabinet_size == old.cabinet_size + 24 and new.files_offset == old.files_offset + 24
    assert dst[0x24:0x28] == bytes.fromhex("14000000")
    magic, sig_at, sig_len, zero = struct.unpack_from("<IIIQ", dst, 0x28)
    assert (magic, sig_at, zero) == (0x00100000, new.cabinet_size, 0)
    assert sig_at + sig_len == len(dst) and sig_len % 8 == 0
    assert CfFolder.from_bytes(dst, 0x3C).data_offset == CfFolder.from_bytes(src, 0x24).data_offset + 24
    assert dst[0x3C + 8:sig_at] == src[0x24 + 8:]  # CFFILE and CFDATA bytes untouched


def test_cab_digest_matches_independent_computation(signed: Path) -> None:
    with open(signed, "rb") as f:
        assert cab_digest(f) == manual_cab_digest(signed.read_bytes())


def test_osslsigncode_verifies_our_signature(signed: Path, test_pki) -> None:
    result = osslsigncode_verify(signed, test_pki.root)
    assert result.returncode == 0, result.output
    assert "Signature verification: ok" in result.output
    current, calculated = result.field("Current message digest"), result.field("Calculated message digest")
    with open(signed, "rb") as f:
        ours = cab_digest(f).hex().upper()
    assert current == calculated == [ours]


def test_our_verify_accepts_and_describes(signed: Path, root_cert, signer) -> None:
    info = verify_cab(signed, trusted_roots=[root_cert])
    assert info.chain_trusted and info.test_only
    assert info.signing_time == SIGNING_TIME
    assert "Contoso OEM Test Cert (TEST ONLY)" in info.signer_subject
    assert [s.split(",")[0] for s in info.chain_subjects] == [
        "CN=iotbuild OEM Test Intermediate (TEST ONLY)", "CN=iotbuild OEM Test Root (TEST ONLY)"]
    assert info.signer_fingerprint == signer.fingerprint
    assert verify_cab(signed).chain_trusted is False  # no roots given: checked, but not trusted


def test_we_verify_osslsigncode_signature(tmp_path: Path, unsigned: Path, test_pki, root_cert, signer) -> None:
    require_tool("osslsigncode")
    certs = tmp_path / "certs.pem"
    certs.write_bytes(test_pki.certificate.read_bytes() + test_pki.intermediate.read_bytes())
    out = tmp_path / "ossl.cab"
    subprocess.run(["osslsigncode", "sign", "-certs", certs, "-key", test_pki.key, "-h", "sha256",
                    "-n", "Test package", "-in", unsigned, "-out", out], check=True, capture_output=True)
    info = verify_cab(out, trusted_roots=[root_cert])
    assert info.chain_trusted and info.digest == manual_cab_digest(out.read_bytes())
    # The cab part is what we write too, except the signature length at 0x30 (outside the digest).
    ours = tmp_path / "ours.cab"
    sign_cab(unsigned, ours, signer, SIGNING_TIME)
    theirs, mine = out.read_bytes(), ours.read_bytes()
    end = struct.unpack_from("<I", mine, 0x2C)[0]
    assert theirs[:0x30] + theirs[0x34:end] == mine[:0x30] + mine[0x34:end]


def test_remove_signature_gives_back_the_original(tmp_path: Path, unsigned: Path, signed: Path) -> None:
    require_tool("osslsigncode")
    out = tmp_path / "removed.cab"
    subprocess.run(["osslsigncode", "remove-signature", "-in", signed, "-out", out], check=True,
                   capture_output=True)
    assert out.read_bytes() == unsigned.read_bytes()


def test_cabextract_and_gcab_read_signed_gcab_cab(tmp_path: Path, signer, test_pki) -> None:
    require_tool("cabextract")
    src = gcab_cab(tmp_path, {"a.txt": b"hello\n", "b.bin": bytes(range(256)) * 500})
    out = tmp_path / "signed.cab"
    sign_cab(src, out, signer, SIGNING_TIME)
    proc = subprocess.run(["cabextract", "-t", out], capture_output=True, text=True)
    assert proc.returncode == 0 and "All done, no errors." in proc.stdout, proc.stdout + proc.stderr
    assert "extra bytes at end of file" in proc.stderr  # the signature, as the reference says
    listing = subprocess.run(["gcab", "-l", out], capture_output=True, text=True, check=True).stdout
    assert "a.txt" in listing and "b.bin" in listing
    assert osslsigncode_verify(out, test_pki.root).returncode == 0


def test_signature_blob_parses_with_openssl(tmp_path: Path, signed: Path) -> None:
    data = signed.read_bytes()
    with open(signed, "rb") as f:
        layout = read_signed_layout(f)
    blob = data[layout.signature_offset:]
    out = openssl_asn1parse(blob[:der_length(blob)], tmp_path)
    assert "pkcs7-signedData" in out and "1.3.6.1.4.1.311.2.1.4" in out and "1.3.6.1.4.1.311.2.1.25" in out


def test_flipped_payload_byte_is_a_digest_mismatch(signed: Path, root_cert) -> None:
    data = bytearray(signed.read_bytes())
    data[0x3C + 8 + 40] ^= 0x01  # inside the CFFILE/CFDATA area
    signed.write_bytes(data)
    with pytest.raises(SigningError, match="cab digest does not match the signed digest: the cab was mod"):
        verify_cab(signed, trusted_roots=[root_cert])


def test_flipped_signature_byte_does_not_verify(signed: Path, root_cert) -> None:
    data = bytearray(signed.read_bytes())
    with open(signed, "rb") as f:
        layout = read_signed_layout(f)
    blob = bytes(data[layout.signature_offset:])
    info = ms.ContentInfo.load(blob[:der_length(blob)])
    value = info["content"]["signer_infos"][0]["signature"].native
    at = layout.signature_offset + blob.index(value) + 10
    data[at] ^= 0x80
    signed.write_bytes(data)
    with pytest.raises(SigningError, match="signature value does not verify"):
        verify_cab(signed, trusted_roots=[root_cert])


def test_deterministic(tmp_path: Path, unsigned: Path, signer) -> None:
    a, b = tmp_path / "a.cab", tmp_path / "b.cab"
    sign_cab(unsigned, a, signer, SIGNING_TIME)
    sign_cab(unsigned, b, signer, SIGNING_TIME)
    assert a.read_bytes() == b.read_bytes()
    c = tmp_path / "c.cab"
    sign_cab(unsigned, c, signer, datetime(2024, 1, 1, tzinfo=timezone.utc))
    assert c.read_bytes() != a.read_bytes()


def test_already_signed_is_refused(tmp_path: Path, signed: Path, signer) -> None:
    with pytest.raises(SigningError, match="already signed"):
        sign_cab(signed, tmp_path / "again.cab", signer, SIGNING_TIME)
    assert not (tmp_path / "again.cab").exists()


def test_cab_with_other_reserve_is_a_format_error(tmp_path: Path, signer) -> None:
    data = bytearray(build_stored_cab(sample_files()))
    struct.pack_into("<H", data, 0x1E, FLAG_RESERVE_PRESENT)
    src = tmp_path / "reserve.cab"
    src.write_bytes(data)
    with pytest.raises(FormatError, match="header reserve"):
        sign_cab(src, tmp_path / "out.cab", signer, SIGNING_TIME)


def test_not_a_cab_and_size_mismatch(tmp_path: Path, signer) -> None:
    bad = tmp_path / "bad.cab"
    bad.write_bytes(b"PK\x03\x04" + bytes(100))
    with pytest.raises(FormatError, match="not a cabinet"):
        sign_cab(bad, tmp_path / "out.cab", signer, SIGNING_TIME)
    bad.write_bytes(build_stored_cab(sample_files()) + b"junk")
    with pytest.raises(FormatError, match="cbCabinet"):
        sign_cab(bad, tmp_path / "out.cab", signer, SIGNING_TIME)
    assert not (tmp_path / "out.cab").exists()


def test_verify_unsigned_cab_says_so(unsigned: Path) -> None:
    with pytest.raises(FormatError, match="cab is not signed") as e:
        verify_cab(unsigned)
    assert str(unsigned) in str(e.value)


def test_multi_volume_cab_is_refused(tmp_path: Path, signer) -> None:
    src = tmp_path / "set2.cab"
    src.write_bytes(build_stored_cab({"x.txt": b"x" * 1000}, prev=("set1.cab", "disk1"),
                                     next_=("set3.cab", "d3")))
    with pytest.raises(FormatError, match="multi-volume"):
        sign_cab(src, tmp_path / "out.cab", signer, SIGNING_TIME)


def test_untrusted_root_is_reported(signed: Path) -> None:
    other = retail_chain()
    with pytest.raises(SigningError, match="chain does not end in a trusted root"):
        verify_cab(signed, trusted_roots=[other.root])


def test_signing_time_outside_validity_is_refused(signer) -> None:
    content = cab_indirect_data(bytes(32))
    with pytest.raises(SigningError, match="outside the validity"):
        build_signed_data(ms.SPC_INDIRECT_DATA_OID, content, signer,
                          datetime(1990, 1, 1, tzinfo=timezone.utc))


def test_cab_digest_rejects_unsigned_layout() -> None:
    with pytest.raises(FormatError, match="not signed"):
        cab_digest(io.BytesIO(build_stored_cab(sample_files())))


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(payload=st.binary(max_size=70000), name=st.from_regex(r"[a-z]{1,12}\.(dll|txt|xml)", fullmatch=True))
def test_sign_verify_strip_round_trip(tmp_path: Path, signer, root_cert, payload: bytes, name: str) -> None:
    src, out = tmp_path / "p.cab", tmp_path / "p.signed.cab"
    src.write_bytes(build_stored_cab({name: payload}))
    digest = sign_cab(src, out, signer, SIGNING_TIME)
    data = out.read_bytes()
    assert digest == manual_cab_digest(data)
    assert verify_cab(out, trusted_roots=[root_cert]).digest == digest
    # stripping the 24 inserted bytes and the blob, and undoing the +24 shifts, gives the input back
    header = CfHeader.from_bytes(data)
    sig_at = struct.unpack_from("<I", data, 0x2C)[0]
    unsigned = CfHeader(header.cabinet_size - 24, header.files_offset - 24, header.folder_count,
                        header.file_count, header.flags & ~FLAG_RESERVE_PRESENT).to_bytes()
    folder = CfFolder.from_bytes(data, 0x3C)
    unsigned += CfFolder(folder.data_offset - 24, folder.data_blocks, folder.compression).to_bytes()
    assert unsigned + data[0x3C + 8:sig_at] == src.read_bytes()
