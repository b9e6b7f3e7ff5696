"""``verifycab``: everything a consumer of a package must be able to trust, checked from the cab alone.

1. the cab's Authenticode signature (digest, signature value, chain to a trusted root);
2. every CFDATA checksum, by reading every member;
3. ``content.cat``: its own signature and chain;
4. every member except the catalog: its SHA-256 — or, for a PE image, its Authenticode PE image hash — is
   listed in the catalog (zero-length files excepted);
5. ``man.dsm.xml`` lists exactly the members of the cab.
"""

from __future__ import annotations

import hashlib
import tempfile
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509

from ...errors import FormatError, SigningError
from ...formats.authenticode import SignatureInfo, verify_cab
from ...formats.cab import CabReader
from ...formats.catalog import verify_catalog
from ...formats.pe import authenticode_pe_hash, is_pe
from .dsm import parse_manifest

META = {"man.dsm.xml", "content.cat"}
SPOOL_MAX = 16 << 20


@dataclass(frozen=True)
class PackageVerification:
    cab: Path
    package: str
    version: str
    release_type: str
    cab_signature: SignatureInfo
    catalog_signature: SignatureInfo
    members: int

    @property
    def test_only(self) -> bool:
        return self.cab_signature.test_only or self.catalog_signature.test_only

    def summary(self) -> str:
        chain = " → ".join((self.cab_signature.signer_subject, *self.cab_signature.chain_subjects))
        kind = "TEST ONLY chain" if self.test_only else "retail chain"
        return (f"verifycab: {self.cab.name}: OK — {self.members} files match content.cat; "
                f"cab and catalog signed by {chain} ({kind}, trusted root: "
                f"{'yes' if self.cab_signature.chain_trusted and self.catalog_signature.chain_trusted else 'no'})")

    def to_dict(self) -> dict[str, object]:
        sig = lambda s: {"signer": s.signer_subject, "chain": list(s.chain_subjects),  # noqa: E731
                         "signing_time": s.signing_time.isoformat() if s.signing_time else None,
                         "test_only": s.test_only, "chain_trusted": s.chain_trusted}
        return {"cab": str(self.cab), "package": self.package, "version": self.version,
                "release_type": self.release_type, "members": self.members, "test_only": self.test_only,
                "cab_signature": sig(self.cab_signature), "catalog_signature": sig(self.catalog_signature)}


def load_certificates(paths) -> list[x509.Certificate]:
    out = []
    for p in paths:
        data = Path(p).read_bytes()
        if b"-----BEGIN" in data:
            out.extend(x509.load_pem_x509_certificates(data))
        else:
            out.append(x509.load_der_x509_certificate(data))
    return out


def trusted_roots_for(workspace_dir: str | None, *, extra=()) -> list[x509.Certificate]:
    """The workspace's test root (if it has one) and configured retail roots, plus ``extra``."""
    from ...errors import InputError
    from ...models.workspace import load_workspace
    paths = list(extra)
    try:
        ws = load_workspace(Path(workspace_dir) if workspace_dir else None)
    except InputError:
        ws = None
    if ws is not None:
        test_root = ws.signing.test_dir / "root.pem"
        if test_root.is_file():
            paths.append(test_root)
        paths.extend(ws.signing.trusted_roots)
    return load_certificates(paths)


def verify_package(cab: Path, *, trusted_roots) -> PackageVerification:
    cab = Path(cab)
    if not cab.is_file():
        from ...errors import InputError
        raise InputError("file not found", path=cab)
    cab_sig = verify_cab(cab, trusted_roots=trusted_roots)
    if trusted_roots and not cab_sig.chain_trusted:
        raise SigningError("the cab's signing chain does not end in a trusted root", path=cab,
                           hint="pass --ca with the root certificate that issued this chain")
    with CabReader.open(cab) as reader:
        names = reader.names()
        for required in META:
            if required not in names:
                raise FormatError(f"{required} is missing: this is not an SPKG package", path=cab)
        manifest = parse_manifest(reader.read("man.dsm.xml"))
        catalog = verify_catalog(reader.read("content.cat"), trusted_roots, path=f"{cab}:content.cat")
        if trusted_roots and not catalog.signature.chain_trusted:
            raise SigningError("content.cat's signing chain does not end in a trusted root", path=cab)
        for member, chunks in reader.iter_members():
            h = hashlib.sha256()
            # Members starting with "MZ" may be PE images, listed by their PE image hash: keep a copy to
            # hash again (in memory up to 16 MiB, then in a temporary file).
            with tempfile.SpooledTemporaryFile(max_size=SPOOL_MAX) as spool:
                first = True
                for chunk in chunks:
                    if first:
                        keep, first = chunk[:2] == b"MZ", False
                    h.update(chunk)
                    if keep:
                        spool.write(chunk)
                if member.name == "content.cat" or member.size == 0:
                    continue
                if h.digest() in catalog.member_digests:
                    continue
                if not first and keep and is_pe(spool):
                    pe_hash = authenticode_pe_hash(spool)
                    if pe_hash in catalog.member_digests:
                        continue
                    raise SigningError(f"{member.name}: neither its SHA-256 {h.hexdigest()} nor its PE image "
                                       f"hash {pe_hash.hex()} is in content.cat (the file was changed after the "
                                       "catalog was signed)", path=cab)
            raise SigningError(f"{member.name}: its SHA-256 {h.hexdigest()} is not in content.cat "
                               "(the file was changed after the catalog was signed)", path=cab)
        listed = {f.cab_path for f in manifest.files}
        if listed != set(names):
            missing, extra = sorted(listed - set(names)), sorted(set(names) - listed)
            raise FormatError("man.dsm.xml does not match the cab: "
                              + (f"listed but absent {missing} " if missing else "")
                              + (f"present but unlisted {extra}" if extra else ""), path=cab)
    package = ".".join(p for p in (manifest.owner, manifest.component, manifest.sub_component) if p)
    return PackageVerification(cab=cab, package=package, version=manifest.version, release_type=manifest.release_type,
                               cab_signature=cab_sig, catalog_signature=catalog.signature, members=len(names))
