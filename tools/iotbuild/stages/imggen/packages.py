"""The resolved packages, opened and checked: signatures, catalogs, manifests and every embedded signer.

Each cab is verified as ``verifycab`` does (cab signature, every member against ``content.cat``, the
manifest against the members), against the workspace's roots. On top of that the image step needs to
know whether a TEST ONLY certificate appears *anywhere* in the package, because Production images must
not carry one: in the cab's signature, in the catalog's, or in an Authenticode signature embedded in a
PE file inside (a test-signed driver in a retail-signed cab is still a test-signed driver).
"""

from __future__ import annotations

import io
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from asn1crypto import cms

from ...errors import InputError, InputErrors, IotbuildError
from ...models.featuremanifest import PackageRef
from ..pkggen.dsm import PackageManifest, parse_manifest
from ...digest import sha256_file

PE_SCAN_MAX = 64 << 20  # PE members larger than this are not scanned for embedded signatures in memory


@dataclass(frozen=True)
class ImagePackage:
    ref: PackageRef
    why: str
    cab: Path
    package: str                 # Owner.Component.SubComponent
    manifest: PackageManifest
    sha256: str
    size: int
    signer: str                  # the cab signer's subject
    chain: tuple[str, ...]
    chain_trusted: bool
    test_only: tuple[str, ...]   # where a TEST ONLY certificate was found ("cab signature", "content.cat", "x.sys")

    @property
    def name(self) -> str:
        return self.ref.package_name

    @property
    def partition(self) -> str:
        return self.manifest.partition or "MainOS"

    @property
    def release_type(self) -> str:
        return self.manifest.release_type

    def to_dict(self) -> dict[str, object]:
        return {"name": self.name, "package": self.package, "cab": str(self.cab), "version": self.manifest.version,
                "partition": self.partition, "release_type": self.release_type, "why": self.why,
                "sha256": self.sha256, "size": self.size, "signer": self.signer, "chain": list(self.chain),
                "test_only": list(self.test_only), "fm": str(self.ref.fm)}


def _embedded_test_only(name: str, data: bytes) -> bool:
    from ...formats.authenticode import is_test_only
    from ...formats.pe import attribute_certificates, is_pe
    if data[:2] != b"MZ" or not is_pe(data):
        return False
    for blob in attribute_certificates(data):
        try:
            info = cms.ContentInfo.load(blob)
            certs = [c.chosen for c in info["content"]["certificates"] if c.name == "certificate"]
        except (ValueError, TypeError, KeyError):
            continue
        if is_test_only(certs):
            return True
    return False


def _check_one(path: str, roots: list[str]) -> tuple[bool, dict | str]:
    """Runs in a worker process: errors come back as text (exception fields do not survive pickling)."""
    from ...formats.cab import CabReader
    from ..pkggen.verify import load_certificates, verify_package
    try:
        v = verify_package(Path(path), trusted_roots=load_certificates(roots))
        test_only = []
        if v.cab_signature.test_only:
            test_only.append("cab signature")
        if v.catalog_signature.test_only:
            test_only.append("content.cat")
        with CabReader.open(path) as reader:
            manifest_xml = reader.read("man.dsm.xml")
            for member, chunks in reader.iter_members():
                first = next(chunks, b"")
                if first[:2] != b"MZ" or member.size > PE_SCAN_MAX:
                    for _ in chunks:
                        pass
                    continue
                buf = io.BytesIO(first)
                for chunk in chunks:
                    buf.write(chunk)
                if _embedded_test_only(member.name, buf.getvalue()):
                    test_only.append(member.name)
    except IotbuildError as e:
        return False, str(e)
    return True, {"manifest": manifest_xml, "sha256": sha256_file(path).hex(), "size": os.path.getsize(path),
                  "signer": v.cab_signature.signer_subject, "chain": v.cab_signature.chain_subjects,
                  "trusted": v.cab_signature.chain_trusted and v.catalog_signature.chain_trusted,
                  "package": v.package, "test_only": tuple(test_only)}


def open_packages(refs: list[tuple[PackageRef, str, Path]], roots: list[Path], *,
                  jobs: int | None = None) -> list[ImagePackage]:
    """Verify every ``(ref, why, cab)`` in parallel; all failures are reported together, naming the FM line."""
    args = [(str(cab), [str(r) for r in roots]) for _, _, cab in refs]
    jobs = max(1, min(jobs or os.cpu_count() or 1, len(args) // 4 or 1))
    if jobs == 1:
        results = [_check_one(*a) for a in args]
    else:
        with ProcessPoolExecutor(max_workers=jobs) as pool:
            results = list(pool.map(_check_one, *zip(*args)))
    issues: list[InputError] = []
    out: list[ImagePackage] = []
    for (ref, why, cab), (ok, info) in zip(refs, results):
        if not ok:
            issues.append(InputError(f"package {ref.name} ({cab}) does not verify: {info}", path=ref.fm,
                                     line=ref.line, hint="rebuild it (invoke buildpkg) or replace it with a "
                                                         "correctly signed package"))
            continue
        assert isinstance(info, dict)
        out.append(ImagePackage(ref=ref, why=why, cab=cab, package=info["package"],
                                manifest=parse_manifest(info["manifest"]), sha256=info["sha256"], size=info["size"],
                                signer=info["signer"], chain=tuple(info["chain"]), chain_trusted=info["trusted"],
                                test_only=info["test_only"]))
    if issues:
        raise InputErrors(issues)
    return out
