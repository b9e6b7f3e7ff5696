"""Authenticode PE image hash (iotbuild.formats.pe), checked against a hand-written hash and osslsigncode."""

from __future__ import annotations

import hashlib
import io
import struct
import subprocess
from pathlib import Path

import pytest

from iotbuild.errors import FormatError
from iotbuild.formats import asn1_ms as ms
from iotbuild.formats.pe import authenticode_pe_hash, is_pe, minimal_driver
from tests.conftest import require_tool

# Offsets in minimal_driver's image: e_lfanew 0x40, optional header at 0x58 (PE32+).
CHECKSUM_AT = 0x58 + 64
CERT_DIR_AT = 0x58 + 112 + 4 * 8


@pytest.fixture
def driver() -> bytes:
    return minimal_driver(timestamp=1700000000)


def manual_hash(data: bytes, cert_table: tuple[int, int] = (0, 0)) -> bytes:
    """The spec's exclusions written out by hand for minimal_driver's fixed layout."""
    at, size = cert_table
    end = at or len(data)
    assert at + size == (len(data) if at else 0)
    return hashlib.sha256(data[:CHECKSUM_AT] + data[CHECKSUM_AT + 4:CERT_DIR_AT] + data[CERT_DIR_AT + 8:end]).digest()


def test_is_pe(driver: bytes, tmp_path: Path) -> None:
    assert is_pe(driver)
    path = tmp_path / "x.sys"
    path.write_bytes(driver)
    assert is_pe(path) and is_pe(str(path))
    with open(path, "rb") as f:
        assert is_pe(f)
    assert not is_pe(b"")
    assert not is_pe(b"MZ" + bytes(100))
    assert not is_pe(b"hello world\n" * 100)
    assert not is_pe(bytes(range(256)) * 40)


def test_hash_matches_manual_and_all_sources_agree(driver: bytes, tmp_path: Path) -> None:
    expected = manual_hash(driver)
    assert authenticode_pe_hash(driver) == expected
    assert expected != hashlib.sha256(driver).digest()
    path = tmp_path / "x.sys"
    path.write_bytes(driver)
    assert authenticode_pe_hash(path) == expected
    assert authenticode_pe_hash(io.BytesIO(driver)) == expected


def test_checksum_field_is_excluded_but_other_bytes_count(driver: bytes) -> None:
    base = authenticode_pe_hash(driver)
    changed_checksum = bytearray(driver)
    struct.pack_into("<I", changed_checksum, CHECKSUM_AT, 0xDEADBEEF)
    assert authenticode_pe_hash(bytes(changed_checksum)) == base
    for at in (0x4E, CHECKSUM_AT - 1, CHECKSUM_AT + 4, 0x200, 0x201, len(driver) - 1):  # DOS stub, header, code
        flipped = bytearray(driver)
        flipped[at] ^= 0x01
        assert authenticode_pe_hash(bytes(flipped)) != base, hex(at)


def test_certificate_table_and_its_directory_entry_are_excluded(driver: bytes) -> None:
    table = struct.pack("<IHH", 16, 0x0200, 0x0002) + b"\xAA" * 8  # a WIN_CERTIFICATE, content irrelevant
    signed = bytearray(driver + table)
    struct.pack_into("<II", signed, CERT_DIR_AT, len(driver), len(table))
    assert authenticode_pe_hash(bytes(signed)) == authenticode_pe_hash(driver)
    assert authenticode_pe_hash(bytes(signed)) == manual_hash(bytes(signed), (len(driver), len(table)))


@pytest.mark.parametrize(("patch", "message", "offset"), [
    (lambda d: d[:0x30], "shorter than the 64-byte DOS header", 0),
    (lambda d: b"ZM" + d[2:], "e_magic", 0),
    (lambda d: d[:0x3C] + struct.pack("<I", 0x10000) + d[0x40:], "e_lfanew", 0x3C),
    (lambda d: d[:0x40] + b"PX\0\0" + d[0x44:], "Signature", 0x40),
    (lambda d: d[:0x58] + b"\x0b\x03" + d[0x5A:], "Magic", 0x58),
    (lambda d: d[:0x58 + 108] + struct.pack("<I", 3) + d[0x58 + 112:], "NumberOfRvaAndSizes", 0x58 + 108),
    (lambda d: d[:CERT_DIR_AT] + struct.pack("<II", 0x300, 0x10) + d[CERT_DIR_AT + 8:], "Certificate Table",
     CERT_DIR_AT),
])
def test_malformed_pe_is_refused_with_field_and_offset(driver: bytes, patch, message: str, offset: int,
                                                       tmp_path: Path) -> None:
    bad = patch(driver)
    with pytest.raises(FormatError, match=message) as err:
        authenticode_pe_hash(bad)
    assert err.value.offset == offset
    assert not is_pe(bad)
    path = tmp_path / "bad.sys"
    path.write_bytes(bad)
    with pytest.raises(FormatError) as err:
        authenticode_pe_hash(path)
    assert err.value.path == str(path)


def test_large_image_streams(tmp_path: Path, driver: bytes) -> None:
    """Data past the headers (3 MiB of overlay) is hashed in chunks with the same result."""
    big = driver + bytes(range(256)) * (3 * 4096)
    path = tmp_path / "big.sys"
    path.write_bytes(big)
    assert authenticode_pe_hash(path) == manual_hash(big)


def test_osslsigncode_computes_the_same_pe_hash(driver: bytes, tmp_path: Path) -> None:
    """osslsigncode extract-data writes the SpcIndirectDataContent it would sign: its digest is the PE hash."""
    require_tool("osslsigncode")
    src, out = tmp_path / "x.sys", tmp_path / "data.der"
    src.write_bytes(driver)
    proc = subprocess.run(["osslsigncode", "extract-data", "-h", "sha256", "-in", src, "-out", out],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    info = ms.ContentInfo.load(out.read_bytes())
    indirect = info["content"]["encap_content_info"]["content"]
    assert indirect["data"]["type"].dotted == "1.3.6.1.4.1.311.2.1.15"
    assert indirect["message_digest"]["digest"].native == authenticode_pe_hash(driver)
