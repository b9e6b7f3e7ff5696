"""Every PackageFile must exist, verify as a signed package, and sit in the partition its FM says."""

from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from ...errors import InputError, InputErrors, IotbuildError
from ...models.featuremanifest import PackageRef
from ...models.workspace import Workspace
from .load import LoadedSet, partition_of, unique_by_name
from .mspackages import MsPackages
from ...digest import sha256_file


@dataclass(frozen=True)
class CheckedPackage:
    ref: PackageRef
    path: Path
    package: str
    partition: str
    release_type: str
    test_only: bool
    sha256: str


def _workspace_definitions(ws: Workspace) -> dict[str, Path]:
    """Cab name (lower case) → the .wm.xml that builds it, for every definition of the workspace."""
    from ..pkggen import load_definitions, select
    try:
        paths = select(ws, None)
    except InputError:
        return {}
    return {c.definition.cab_name.lower(): c.definition.path for c in load_definitions(ws, paths, product="Default")}


def locate(ws: Workspace, loaded: list[LoadedSet], ms: MsPackages | None, *, build: bool = True) -> dict[str, Path]:
    """Host path of every referenced package; workspace packages are (re)built first, incrementally."""
    refs = unique_by_name(loaded)
    own_dirs = {str(ws.pkg_dir).rstrip("/"), str(ws.bsp_pkg_dir).rstrip("/")}
    ms_dir = str(ms.package_dir).rstrip("/") if ms else None
    wanted_defs: list[Path] = []
    if build and any(ref.directory.rstrip("/") in own_dirs for _, ref in refs.values()):
        defs = _workspace_definitions(ws)
        wanted_defs = sorted({defs[k] for k, (_, ref) in refs.items() if ref.directory.rstrip("/") in own_dirs
                              and k in defs})
    if wanted_defs:
        from ..pkggen import build_packages
        failed = [r for r in build_packages(ws, wanted_defs) if r.status == "failed"]
        if failed:
            raise InputErrors([InputError(f"package {r.name} failed to build: {r.error}", path=r.definition)
                               for r in failed])
    issues: list[InputError] = []
    out: dict[str, Path] = {}
    for key, (_lf, ref) in refs.items():
        directory = ref.directory.rstrip("/")
        if ms is not None and directory == ms_dir:
            p = ms.locate(ref.name)
        else:
            p = Path(directory) / ref.name
            p = p if p.is_file() else None
        if p is None:
            hint = "build it (invoke buildpkg) or fix Name/Path"
            if directory in own_dirs:
                hint = f"no package definition in the workspace produces {ref.name}; add one or fix the Name"
            elif ms_dir is None and "MSPKG" in ref.fm.read_text(errors="replace"):
                hint = "set <MSPkgRoot> in IoTWorkspace.xml to the Microsoft packages folder or ISO"
            issues.append(InputError(f"missing package {ref.name} (looked in {directory})", path=ref.fm, line=ref.line,
                                     hint=hint))
        else:
            out[key] = p
    if issues:
        raise InputErrors(issues)
    return out


def _verify_one(path: str, roots: list[str], microsoft: bool) -> tuple[bool, dict | str]:
    """Runs in a worker: exceptions come back as text (their fields do not survive pickling)."""
    from ..pkggen.verify import load_certificates, verify_package
    try:
        v = verify_package(Path(path), trusted_roots=[] if microsoft else load_certificates(roots))
    except IotbuildError as e:
        return False, str(e)
    return True, {"package": v.package, "partition": _partition(path), "release_type": v.release_type,
                  "test_only": v.test_only, "sha256": sha256_file(path).hex()}


def _partition(path: str) -> str:
    from ...formats.cab import CabReader
    from ..pkggen.dsm import parse_manifest
    with CabReader.open(path) as r:
        return parse_manifest(r.read("man.dsm.xml")).partition


def verify(ws: Workspace, loaded: list[LoadedSet], located: dict[str, Path], ms: MsPackages | None,
           *, jobs: int | None = None) -> dict[str, CheckedPackage]:
    """Signature, catalog and manifest of every package (in parallel), then its partition against the FM."""
    roots = [str(ws.signing.test_dir / "root.pem")] if (ws.signing.test_dir / "root.pem").is_file() else []
    roots += [str(p) for p in ws.signing.trusted_roots]
    refs = unique_by_name(loaded)
    ms_dir = str(ms.package_dir).rstrip("/") if ms else None
    keys = sorted(located)
    args = [(str(located[k]), roots, refs[k][1].directory.rstrip("/") == ms_dir) for k in keys]
    jobs = max(1, min(jobs or os.cpu_count() or 1, len(args) // 16 or 1))
    if jobs == 1:
        results = [_verify_one(*a) for a in args]
    else:
        with ProcessPoolExecutor(max_workers=jobs) as pool:
            results = list(pool.map(_verify_one, *zip(*args), chunksize=32))
    issues: list[InputError] = []
    out: dict[str, CheckedPackage] = {}
    for k, (ok, info) in zip(keys, results):
        ref = refs[k][1]
        if not ok:
            issues.append(InputError(f"package {ref.name} does not verify: {info}", path=ref.fm, line=ref.line,
                                     hint="rebuild it with invoke buildpkg, or replace it with a correctly signed cab"))
            continue
        assert isinstance(info, dict)
        want = partition_of(ref)
        if info["partition"].lower() != want.lower():
            issues.append(InputError(f"{ref.name} is a {info['partition']} package but the FM places it in {want}",
                                     path=ref.fm, line=ref.line,
                                     hint=f'add Partition="{info["partition"]}" to this <PackageFile>'
                                     if want == "MainOS" else f'set Partition="{info["partition"]}"'))
            continue
        out[k] = CheckedPackage(ref=ref, path=located[k], package=info["package"], partition=info["partition"],
                                release_type=info["release_type"], test_only=info["test_only"], sha256=info["sha256"])
    if issues:
        raise InputErrors(issues)
    return out
