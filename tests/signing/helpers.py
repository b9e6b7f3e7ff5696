"""Shared by the signing and Authenticode/catalog tests: a session test PKI, hand-made cabs, outside checkers.

Fixtures defined here are imported by name into the test modules that use them.
"""

from __future__ import annotations

import hashlib
import re
import subprocess
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from iotbuild.formats.cab.records import (BLOCK_MAX, FLAG_NEXT_CABINET, FLAG_PREV_CABINET, CfData, CfFile,
                                          CfFolder, CfHeader, Compression)
from iotbuild.signing import Signer, SigningConfig, SigningMode, TestPki, ensure_test_pki, load_signer
from tests.conftest import require_tool

NOW = datetime.now(timezone.utc)  # the real clock: expiry is judged against it
SIGNING_TIME = datetime.fromtimestamp(1700000000, timezone.utc)  # what SOURCE_DATE_EPOCH gives in tests
OEM = "Contoso"
HSM = Path(__file__).with_name("fake_hsm.py")


@pytest.fixture(scope="session")
def cert_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("certs")
    ensure_test_pki(d, now=NOW, oem_name=OEM)
    return d


@pytest.fixture(scope="session")
def test_pki(cert_dir: Path) -> TestPki:
    return ensure_test_pki(cert_dir, now=NOW, oem_name=OEM)


@pytest.fixture(scope="session")
def signer(cert_dir: Path) -> Signer:
    return load_signer(SigningConfig(SigningMode.TEST, cert_dir), oem_name=OEM, now=NOW)


@pytest.fixture(scope="session")
def root_cert(test_pki: TestPki) -> x509.Certificate:
    return x509.load_pem_x509_certificate(test_pki.root.read_bytes())


# --- cabs ------------------------------------------------------------------------------------------------
def build_stored_cab(files: dict[str, bytes], *, prev: tuple[str, str] | None = None,
                     next_: tuple[str, str] | None = None) -> bytes:
    """A one-folder uncompressed cab made from the records (CFDATA checksums 0 = "not supplied")."""
    flags, names = 0, b""
    for flag, pair in ((FLAG_PREV_CABINET, prev), (FLAG_NEXT_CABINET, next_)):
        if pair:
            flags |= flag
            names += b"".join(n.encode() + b"\0" for n in pair)
    entries, offset = [], 0
    for name, data in files.items():
        entries.append(CfFile(len(data), offset, 0, 0x5821, 0x0000, 0x20, name).to_bytes())
        offset += len(data)
    payload = b"".join(files.values())
    blocks = [payload[i:i + BLOCK_MAX] for i in range(0, len(payload), BLOCK_MAX)] or [b""]
    files_at = CfHeader.LAYOUT.size + len(names) + CfFolder.LAYOUT.size
    data_at = files_at + sum(map(len, entries))
    data = b"".join(CfData(0, len(b), len(b)).to_bytes() + b for b in blocks)
    folder = CfFolder(data_at, len(blocks), Compression.NONE).to_bytes()
    header = CfHeader(data_at + len(data), files_at, 1, len(files), flags).to_bytes()
    return header + names + folder + b"".join(entries) + data


def sample_files() -> dict[str, bytes]:
    return {"man.dsm.xml": b"<Package/>\n" * 50, "1_foo.dll": bytes(range(256)) * 300, "empty.bin": b""}


def gcab_cab(tmp_path: Path, files: dict[str, bytes], name: str = "unsigned.cab") -> Path:
    require_tool("gcab")
    src = tmp_path / "gcab-src"
    src.mkdir()
    for fname, data in files.items():
        (src / fname).write_bytes(data)
    out = tmp_path / name
    subprocess.run(["gcab", "-c", "-n", out, *sorted(files)], cwd=src, check=True, capture_output=True)
    return out


def manual_cab_digest(data: bytes) -> bytes:
    """§2.2 written out independently: MSCF, 0x08–0x21, then 0x38 up to the signature offset."""
    sig_at = int.from_bytes(data[0x2C:0x30], "little")
    return hashlib.sha256(data[0:4] + data[8:0x22] + data[0x38:sig_at]).digest()


# --- outside checkers ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class OsslResult:
    returncode: int
    output: str

    def field(self, label: str) -> list[str]:
        return re.findall(rf"{label}\s*:\s*([0-9A-F]+)", self.output)


def osslsigncode_verify(path: Path, cafile: Path, *extra: str) -> OsslResult:
    require_tool("osslsigncode")
    proc = subprocess.run(["osslsigncode", "verify", *extra, "-CAfile", str(cafile), "-in", str(path)],
                          capture_output=True, text=True, timeout=60)
    return OsslResult(proc.returncode, proc.stdout + proc.stderr)


def osslsigncode_at_least(*version: int) -> bool:
    """Like conftest.osslsigncode_version, but tolerant of the comma in "osslsigncode 2.9, using:"."""
    require_tool("osslsigncode")
    out = subprocess.run(["osslsigncode", "--version"], capture_output=True, text=True).stdout
    found = re.search(r"osslsigncode (\d+(?:\.\d+)*)", out)
    return found is not None and tuple(int(p) for p in found.group(1).split(".")) >= version


def openssl_asn1parse(der: bytes, tmp_path: Path) -> str:
    require_tool("openssl")
    blob = tmp_path / "blob.der"
    blob.write_bytes(der)
    proc = subprocess.run(["openssl", "asn1parse", "-inform", "DER", "-in", str(blob)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


# --- certificates made directly in tests (independent of signing.pki) ------------------------------------
def new_key(kind: str = "rsa") -> rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey:
    if kind == "ec":
        return ec.generate_private_key(ec.SECP256R1())
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def issue(cn: str, key, issuer: x509.Certificate | None = None, issuer_key=None, *, ca: bool,
          not_after: datetime | None = None) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    builder = (x509.CertificateBuilder().subject_name(name)
               .issuer_name(issuer.subject if issuer else name).public_key(key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(datetime(2000, 1, 1, tzinfo=timezone.utc))
               .not_valid_after(not_after or NOW + timedelta(days=365))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if not ca:
        eku = x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING])
        builder = builder.add_extension(eku, critical=False)
    return builder.sign(issuer_key or key, hashes.SHA256())


@dataclass(frozen=True)
class RetailChain:
    root: x509.Certificate
    intermediate: x509.Certificate
    leaf: x509.Certificate
    leaf_key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
    root_key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey

    def write(self, directory: Path) -> dict[str, Path]:
        directory.mkdir(parents=True, exist_ok=True)
        pem = serialization.Encoding.PEM
        paths = {name: directory / f"{name}.pem" for name in ("root", "intermediate", "leaf")}
        paths["root"].write_bytes(self.root.public_bytes(pem))
        paths["intermediate"].write_bytes(self.intermediate.public_bytes(pem))
        paths["leaf"].write_bytes(self.leaf.public_bytes(pem))
        paths["key"] = directory / "leaf.key"
        paths["key"].write_bytes(self.leaf_key.private_bytes(pem, serialization.PrivateFormat.PKCS8,
                                                             serialization.NoEncryption()))
        return paths


def retail_chain(kind: str = "rsa", *, leaf_not_after: datetime | None = None,
                 name: str = "Contoso Retail") -> RetailChain:
    root_key, mid_key, leaf_key = new_key(kind), new_key(kind), new_key(kind)
    root = issue(f"{name} Root", root_key, ca=True)
    mid = issue(f"{name} Intermediate", mid_key, root, root_key, ca=True)
    leaf = issue(f"{name} Code Signing", leaf_key, mid, mid_key, ca=False, not_after=leaf_not_after)
    return RetailChain(root, mid, leaf, leaf_key, root_key)
