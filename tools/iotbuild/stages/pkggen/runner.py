"""``buildpkg``: validate every selected definition first, then build the stale ones in parallel."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

from ...errors import InputError, InputErrors, IotbuildError
from ...models import wmxml
from ...models.workspace import Workspace
from ...outputs import build_epoch, write_atomic
from ...signing.config import SigningConfig
from ...signing.identity import load_signer
from . import incremental
from .content import PackageContent, collect
from .spkg import build_spkg

COMPRESSION_LEVEL = 6


@dataclass
class PackageResult:
    name: str
    definition: Path
    cab: Path
    status: str  # built | up-to-date | failed
    reasons: list[str] = field(default_factory=list)
    size: int = 0
    seconds: float = 0.0
    error: str | None = None

    def to_dict(self) -> dict[str, object]:
        return {"name": self.name, "definition": str(self.definition), "cab": str(self.cab), "status": self.status,
                "reasons": self.reasons, "size": self.size, "seconds": round(self.seconds, 3), "error": self.error}


def load_definitions(ws: Workspace, paths: Sequence[Path], *, product: str) -> list[PackageContent]:
    """Parse and check everything before any cab is written; all problems are reported together."""
    roots = tuple(dict.fromkeys([ws.root.resolve(), ws.build_dir.resolve()]))
    issues: list[InputError] = []
    contents: list[PackageContent] = []
    for p in paths:
        variables = ws.variables(product=product, release_dir=p.parent)
        try:
            defn = wmxml.load(p, variables, cpu=ws.bsparch, roots=roots)
            contents.append(collect(defn, cpu=ws.bsparch))
        except InputErrors as e:
            issues.extend(e.errors)
        except InputError as e:
            issues.append(e)
    seen: dict[str, Path] = {}
    for c in contents:
        key = c.definition.package_name.lower()
        if key in seen:
            issues.append(InputError(f"package name {c.definition.package_name} is also produced by {seen[key]}",
                                     path=c.definition.path, line=1,
                                     hint="give one of them another legacyName= or name="))
        seen[key] = c.definition.path
    if issues:
        raise InputErrors(issues)
    return contents


_SIGNERS: dict[tuple, object] = {}


def _signer_for(config: SigningConfig, oem: str):
    key = (config, oem)
    if key not in _SIGNERS:
        _SIGNERS[key] = load_signer(config, oem_name=oem, now=dt.datetime.now(dt.timezone.utc))
    return _SIGNERS[key]


def _build_one(content: PackageContent, out_dir: Path, version: str, cpu_type: str, config: SigningConfig,
               oem: str, level: int) -> tuple[bool, int, str]:
    """Runs in a worker process; errors come back as text because exception pickling loses their fields."""
    try:
        signer = _signer_for(config, oem)
        built = build_spkg(content, out_dir=out_dir, version=version, cpu_type=cpu_type, signer=signer, level=level)
        return True, built.size, ""
    except IotbuildError as e:
        return False, 0, str(e)


def _write_log(ws: Workspace, r: PackageResult, content: PackageContent, signer_desc: str) -> None:
    lines = [f"package   {r.name}", f"source    {r.definition}", f"status    {r.status}",
             f"version   {ws.bsp_version}  cpu {ws.bsparch}  SOURCE_DATE_EPOCH {build_epoch()}",
             f"signer    {signer_desc}"]
    if r.reasons:
        lines.append("rebuilt because:")
        lines.extend(f"  - {x}" for x in r.reasons)
    lines.append("files:")
    lines.extend(f"  {p.device_path}  <=  {p.source}" for p in content.payloads)
    if content.registry:
        lines.append(f"registry keys: {len(content.registry)}")
    if r.error:
        lines.append("error:")
        lines.append("  " + r.error.replace("\n", "\n  "))
    if r.status == "built":
        lines.append(f"output    {r.cab} ({r.size} bytes, {r.seconds:.2f} s)")
    write_atomic(ws.log_dir / f"{r.name}.log", ("\n".join(lines) + "\n").encode())


def build_packages(ws: Workspace, paths: Sequence[Path], *, product: str = "Default", jobs: int | None = None,
                   force: bool = False, on_result: Callable[[PackageResult], None] | None = None) -> list[PackageResult]:
    now = dt.datetime.now(dt.timezone.utc)
    signer = load_signer(ws.signing, oem_name=ws.oem_name, now=now)  # refuses expired certificates up front
    contents = load_definitions(ws, paths, product=product)
    out = ws.pkg_dir
    epoch = build_epoch()
    todo: list[tuple[PackageResult, PackageContent, dict]] = []
    results: list[PackageResult] = []
    for c in contents:
        name = c.definition.package_name
        cab = out / f"{name}.cab"
        key = incremental.fingerprint(inputs=c.inputs, variables=ws.variables(product=product,
                                      release_dir=c.definition.path.parent), version=ws.bsp_version,
                                      signer_id=signer.fingerprint, epoch=epoch,
                                      settings={"level": COMPRESSION_LEVEL, "cpu": ws.bsparch})
        # BUILDTIME follows SOURCE_DATE_EPOCH, which the key already holds.
        reasons = ["forced with --force"] if force else incremental.why_rebuild(out, name, cab, key)
        r = PackageResult(name=name, definition=c.definition.path, cab=cab, status="up-to-date", reasons=reasons)
        results.append(r)
        if reasons:
            todo.append((r, c, key))
        elif on_result:
            on_result(r)

    jobs = max(1, min(jobs or os.cpu_count() or 1, len(todo)))
    args = lambda c: (c, out, ws.bsp_version, ws.arch.cpu_type, ws.signing, ws.oem_name, COMPRESSION_LEVEL)  # noqa: E731

    def finish(r: PackageResult, c: PackageContent, key: dict, ok: bool, size: int, err: str, t0: float) -> None:
        r.seconds = time.monotonic() - t0
        if ok:
            r.status, r.size = "built", size
            incremental.record(out, r.name, r.cab, key)
        else:
            r.status, r.error = "failed", err
            incremental.forget(out, r.name)
        _write_log(ws, r, c, signer.describe())
        if on_result:
            on_result(r)

    if jobs == 1:
        for r, c, key in todo:
            t0 = time.monotonic()
            finish(r, c, key, *_build_one(*args(c)), t0)
    else:
        t0 = time.monotonic()
        with ProcessPoolExecutor(max_workers=jobs) as pool:
            futures = {pool.submit(_build_one, *args(c)): (r, c, key) for r, c, key in todo}
            for fut in as_completed(futures):
                r, c, key = futures[fut]
                finish(r, c, key, *fut.result(), t0)
    return results


def clean(ws: Workspace) -> list[Path]:
    """``buildpkg Clean``: remove built packages (and provisioning packages), as the kit did."""
    removed = []
    for d in (ws.pkg_dir, ws.ppkg_dir):
        if d.exists():
            shutil.rmtree(d)
            removed.append(d)
    return removed
