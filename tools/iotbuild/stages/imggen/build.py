"""``buildimage``: OEMInput.xml → Flash.ffu, in the order that fails early.

1. inputs: the product's provisioning package, its product packages, every workspace package and the merged
   FMs are brought up to date (each incremental);
2. resolution: features → packages (stages/resolve.py); nothing changed since the last build → done;
3. checks, before any partition work: every package verified (signatures, catalogs, manifests), the
   Test/Production rules (rules.py);
4. staging: packages extracted per partition, conflicts, hives, the image manifest (stage.py);
5. layout: the DeviceLayout.xml the image carries, placed on a disk (layout.py), sizes checked;
6. filesystems (FAT32 with mkfs.fat + mtools, NTFS with mkntfs + one wimlib apply), the disk, its GPT;
7. the FFU, signed with the build's identity; then the side files. Everything is written in a private
   work folder and renamed into place at the end, ``Flash.ffu`` last: a build that fails or is killed
   leaves the previous outputs (or none), never a partial file under a final name.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ... import __version__
from ...errors import InputError, InputErrors
from ...formats.authenticode import subject_of
from ...formats.ffu import FfuLayoutInfo, write_ffu
from ...models.devicelayout import parse_device_layout, parse_device_platform
from ...models.workspace import Workspace
from ...outputs import build_epoch, write_atomic
from ...signing import load_signer
from .. import resolve as resolvemod
from ..pkggen.verify import load_certificates
from .disk import assemble_disk
from .filesystems import build_filesystem
from .layout import DiskPlan, plan_disk
from .packages import ImagePackage, open_packages
from .prepare import prepare_inputs
from .rules import CodeIntegrity, check_release_rules
from .sbom import build_sbom
from .stage import Staging, stage_packages, stamp_tree, write_manifest_file
from ...digest import sha256_file

LAYOUT_PATH = "\\Windows\\ImageUpdate\\DeviceLayout.xml"
PLATFORM_PATH = "\\Windows\\ImageUpdate\\OEMDevicePlatform.xml"
STATE_FILE = ".buildimage.json"
STEPS = ("inputs", "resolve", "verify", "stage", "layout", "filesystems", "disk", "ffu", "outputs")


@dataclass(frozen=True)
class ImageOptions:
    ffu_version: str = "V1"          # V1 | V2
    ffu_profile: str = "MS"          # MS | compat (descriptor plan, ffu.md §3.5)
    jobs: int | None = None
    force: bool = False
    build_inputs: bool = True        # buildppkg/buildpkg/buildfm first


@dataclass
class ImageResult:
    product: str
    config: str
    out_dir: Path
    ffu: Path
    status: str = "built"            # built | up-to-date
    packages: list[dict[str, object]] = field(default_factory=list)
    partitions: list[dict[str, object]] = field(default_factory=list)
    files: int = 0
    ffu_size: int = 0
    ffu_sha256: str = ""
    disk_size: int = 0
    code_integrity: dict[str, object] = field(default_factory=dict)
    outputs: dict[str, str] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, object]:
        return {"product": self.product, "config": self.config, "status": self.status, "ffu": str(self.ffu),
                "ffu_size": self.ffu_size, "ffu_sha256": self.ffu_sha256, "disk_size": self.disk_size,
                "files": self.files, "packages": self.packages, "partitions": self.partitions,
                "code_integrity": self.code_integrity, "outputs": self.outputs,
                "timings": {k: round(v, 3) for k, v in self.timings.items()}, "seconds": round(self.seconds, 3)}


def config_name(config: str) -> str:
    cfg = {"test": "Test", "retail": "Retail", "production": "Retail"}.get(config.lower())
    if cfg is None:
        raise InputError(f"configuration {config!r} is not Test or Retail", hint="use Test or Retail")
    return cfg


def output_dir(ws: Workspace, product: str, config: str) -> Path:
    return ws.build_dir / product / config_name(config)


def _locate(ws: Workspace, res: resolvemod.Resolution) -> list[tuple]:
    from ..featuremerge.mspackages import open_ms_packages
    ms = open_ms_packages(ws)
    out, issues = [], []
    try:
        ms_dir = str(ms.package_dir).rstrip("/") if ms else None
        for ref in res.packages:
            if ms is not None and ref.directory.rstrip("/") == ms_dir:
                p = ms.locate(ref.name)
            else:
                p = Path(ref.directory) / ref.name
                p = p if p.is_file() else None
            if p is None:
                issues.append(InputError(f"package {ref.name} is missing (looked in {ref.directory})", path=ref.fm,
                                         line=ref.line, hint="build it (invoke buildpkg / buildfm) or fix the "
                                                             "PackageFile's Path and Name"))
                continue
            out.append((ref, res.reasons[ref.name.lower()], Path(p)))
    finally:
        if ms is not None:
            ms.close()
    if issues:
        raise InputErrors(issues)
    return out


def _fingerprint(res: resolvemod.Resolution, located: list[tuple], options: ImageOptions, signer_id: str,
                 epoch: int) -> str:
    h = hashlib.sha256()
    h.update(json.dumps({"tool": __version__, "code": _code_digest(), "oeminput": res.oeminput.path.read_bytes().hex(),
                         "version": options.ffu_version, "profile": options.ffu_profile, "signer": signer_id,
                         "epoch": epoch}, sort_keys=True).encode())
    for ref, why, cab in located:
        st = cab.stat()
        h.update(f"{ref.name}|{why}|{st.st_size}|{sha256_file(cab).hex()}\n".encode())
    return h.hexdigest()


def _code_digest() -> str:
    """The image step's own code: a changed builder rebuilds (as a changed compiler would)."""
    h = hashlib.sha256()
    here = Path(__file__).resolve().parent.parent.parent
    for sub in ("stages/imggen", "formats/ffu", "formats/regf", "formats/fat.py", "formats/ntfs.py", "formats/gpt.py"):
        p = here / sub
        for f in sorted(p.rglob("*.py")) if p.is_dir() else [p]:
            if f.is_file():
                h.update(f.read_bytes())
    return h.hexdigest()


def _clean_stale(out_dir: Path) -> None:
    """Work folders of builds that died (SIGKILL, power loss): their process is gone."""
    if not out_dir.is_dir():
        return
    for d in out_dir.glob(".work-*"):
        try:
            pid = int(d.name.split("-", 1)[1])
        except ValueError:
            pid = 0
        if pid and pid != os.getpid() and _alive(pid):
            continue  # another build of this product is running
        shutil.rmtree(d, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _read_staged(st: Staging, device_path: str, what: str, soc: str) -> tuple[bytes, str]:
    f = st.find("MainOS", device_path)
    if f is None:
        raise InputError(f"the image holds no {device_path} ({what})",
                         hint=f"the board's DeviceLayoutPackages entry for SOC {soc!r} must install it "
                              "(see bsp/QEMUx64/Packages/QEMUx64.DeviceLayout)")
    return st.host_path(f).read_bytes(), f"{f.package}:{device_path}"


def build_image(ws: Workspace, product: str, config: str, *, options: ImageOptions = ImageOptions(),
                on_step: Callable[[str, str], None] | None = None) -> ImageResult:
    t_start = time.monotonic()
    cfg = config_name(config)
    out_dir = output_dir(ws, product, cfg)
    result = ImageResult(product=product, config=cfg, out_dir=out_dir, ffu=out_dir / "Flash.ffu")
    timings = result.timings
    last = [time.monotonic()]

    def step(name: str, detail: str = "") -> None:
        now = time.monotonic()
        if timings:
            timings[list(timings)[-1]] = now - last[0]
        timings[name] = 0.0
        last[0] = now
        if on_step:
            on_step(name, detail)

    resolvemod.oeminput_path(ws, product, cfg)  # a wrong product or config fails before anything is built
    epoch = build_epoch()
    signer = load_signer(ws.signing, oem_name=ws.oem_name, now=dt.datetime.now(dt.timezone.utc))
    if options.build_inputs:
        step("inputs", "provisioning package, packages, feature manifests")
        prepare_inputs(ws, product, jobs=options.jobs)
    step("resolve", "features → packages")
    res = resolvemod.resolve(ws, product, cfg)
    located = _locate(ws, res)
    fingerprint = _fingerprint(res, located, options, signer.fingerprint, epoch)
    state_file = out_dir / STATE_FILE
    if not options.force and result.ffu.is_file() and state_file.is_file():
        try:
            state = json.loads(state_file.read_text())
        except (OSError, ValueError):
            state = {}
        st_ffu = result.ffu.stat()
        if state.get("fingerprint") == fingerprint and state.get("ffu") == [st_ffu.st_size, st_ffu.st_mtime_ns]:
            prev = state.get("result", {})
            result.status = "up-to-date"
            for k in ("packages", "partitions", "files", "ffu_size", "ffu_sha256", "disk_size", "code_integrity",
                      "outputs"):
                if k in prev:
                    setattr(result, k, prev[k])
            result.seconds = time.monotonic() - t_start
            return result

    step("verify", f"{len(located)} packages")
    test_root = ws.signing.test_dir / "root.pem"
    retail = list(ws.signing.trusted_roots)
    roots = ([test_root] if test_root.is_file() else []) + retail
    packages = open_packages(located, roots, jobs=options.jobs)
    ci, issues = check_release_rules(res.oeminput, packages,
                                     retail_roots=[subject_of(c) for c in load_certificates(retail)],
                                     signer_test_only=signer.is_test_only, signer_desc=signer.describe())
    if issues:
        raise InputErrors(issues)

    out_dir.mkdir(parents=True, exist_ok=True)
    _clean_stale(out_dir)
    work = out_dir / f".work-{os.getpid()}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    try:
        step("stage", f"{len(packages)} packages")
        st = stage_packages(packages, work / "stage", extra_registry=[ci.registry()], epoch=epoch)
        layout_xml, layout_where = _read_staged(st, LAYOUT_PATH, "DeviceLayout.xml", res.oeminput.soc)
        platform_xml, platform_where = _read_staged(st, PLATFORM_PATH, "OEMDevicePlatform.xml", res.oeminput.device)
        layout = parse_device_layout(layout_xml, path=layout_where)
        platform = parse_device_platform(platform_xml, path=platform_where)
        names = {p.name.lower() for p in layout.partitions}
        for key, tree in st.partitions.items():
            if key not in names and any(f.partition.lower() == key for f in st.files):
                owners = sorted({f.package for f in st.files if f.partition.lower() == key})
                raise InputError(f"packages {', '.join(owners)} install into partition {st.partition_name(key)}, "
                                 f"which the device layout ({layout_where}) does not have",
                                 hint="fix the packages' targetPartition or add the partition to DeviceLayout.xml")
        manifest_file = write_manifest_file(st)
        stamp_tree(work / "stage", epoch)

        step("layout")
        plan = plan_disk(layout, platform, st.content_bytes(), product=product)

        step("filesystems")
        images: dict[str, Path] = {}
        for part in plan.partitions:
            tree = st.partitions.get(part.name.lower())
            has_files = tree is not None and any(f.partition.lower() == part.name.lower() for f in st.files)
            if part.file_system is None:
                if has_files:
                    raise InputError(f"partition {part.name} has no FileSystem in {layout_where} but packages "
                                     "install files into it", hint="give it <FileSystem>FAT32</FileSystem> or NTFS")
                continue
            if tree is None:
                tree = st.tree(part.name)
                stamp_tree(tree, epoch)
            images[part.name] = build_filesystem(part, tree, work / f"{part.name}.img", plan=plan, product=product,
                                                 epoch=epoch, workdir=work)
            if on_step:
                on_step("filesystems", part.name)

        step("disk")
        raw = work / "disk.raw"
        disk_size = assemble_disk(plan, images, raw)
        del images

        step("ffu")
        gpt = plan.gpt()
        info = FfuLayoutInfo.from_gpt(gpt, platform_ids=platform.platform_ids,
                                      not_required=[p.name for p in plan.partitions if not p.required_to_flash])
        ffu_tmp = work / "Flash.ffu"
        with open(ffu_tmp, "wb") as out, open(raw, "rb") as disk:
            write_ffu(out, disk, disk_size=disk_size, sector_size=plan.sector_size, layout_info=info, signer=signer,
                      signing_time=dt.datetime.fromtimestamp(epoch, dt.timezone.utc), version=options.ffu_version,
                      plan=options.ffu_profile)
            os.fsync(out.fileno())
        raw.unlink()

        step("outputs")
        result.ffu_sha256 = sha256_file(ffu_tmp).hex()
        result.ffu_size = ffu_tmp.stat().st_size
        result.disk_size = disk_size
        result.files = len(st.files)
        result.packages = [p.to_dict() for p in packages]
        result.partitions = _partitions(plan, st)
        result.code_integrity = ci.to_dict()
        side = _side_files(result, res, packages, st, ws, epoch, manifest_file.path)
        for name, data in side.items():
            write_atomic(work / name, data)
        for name in side:
            os.replace(work / name, out_dir / name)
            result.outputs[name] = str(out_dir / name)
        os.replace(ffu_tmp, result.ffu)
        result.outputs["Flash.ffu"] = str(result.ffu)
        st_ffu = result.ffu.stat()
        result.seconds = time.monotonic() - t_start
        timings[list(timings)[-1]] = time.monotonic() - last[0]
        write_atomic(state_file, json.dumps({"fingerprint": fingerprint, "ffu": [st_ffu.st_size, st_ffu.st_mtime_ns],
                                             "result": result.to_dict()}, indent=1).encode())
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return result


def _partitions(plan: DiskPlan, st: Staging) -> list[dict[str, object]]:
    used = st.content_bytes()
    return [{"name": p.name, "first_lba": p.first_lba, "sectors": p.sectors, "bytes": p.sectors * plan.sector_size,
             "file_system": p.file_system, "content_bytes": used.get(p.name, 0),
             "files": sum(1 for f in st.files if f.partition.lower() == p.name.lower())} for p in plan.partitions]


def _side_files(result: ImageResult, res: resolvemod.Resolution, packages: list[ImagePackage], st: Staging,
                ws: Workspace, epoch: int, manifest_path: str) -> dict[str, bytes]:
    dump = lambda o: (json.dumps(o, indent=1, sort_keys=False) + "\n").encode()  # noqa: E731
    files = sorted(st.files, key=lambda f: (f.partition.lower(), f.path.lower()))
    resolved = {"product": result.product, "config": result.config, "oeminput": str(res.oeminput.path),
                "release_type": res.oeminput.release_type.value, "soc": res.oeminput.soc,
                "device": res.oeminput.device, "fms": [str(f.path) for f in res.fms],
                "packages": [p.to_dict() for p in packages]}
    manifest = {"product": result.product, "config": result.config, "ffu_sha256": result.ffu_sha256,
                "disk_size": result.disk_size, "code_integrity": result.code_integrity,
                "in_image_manifest": f"MainOS {manifest_path}", "partitions": result.partitions,
                "files": [f.to_dict() for f in files]}
    sbom = build_sbom(product=result.product, config=result.config, oem=ws.oem_name, ffu_sha256=result.ffu_sha256,
                      packages=packages, files=files, epoch=epoch, tool_version=__version__)
    log = [f"buildimage {result.product} {result.config}", f"oeminput {res.oeminput.path}",
           f"ffu {result.ffu} ({result.ffu_size} bytes, sha256 {result.ffu_sha256})",
           f"disk {result.disk_size} bytes", "code integrity: " + json.dumps(result.code_integrity), "packages:"]
    log += [f"  {p.name:60} {p.partition:7} {p.release_type:10} {p.why}" for p in packages]
    log += ["partitions:"] + [f"  {p['name']:8} LBA {p['first_lba']:>9} sectors {p['sectors']:>9} "
                              f"{p['file_system'] or 'raw':6} {p['files']:>6} files {p['content_bytes']:>12} bytes"
                              for p in result.partitions]
    log += ["steps:"] + [f"  {k:12} {v:8.2f} s" for k, v in result.timings.items()]
    return {"Flash.packages.json": dump(resolved), "Flash.manifest.json": dump(manifest),
            "Flash.spdx.json": dump(sbom), "Flash.log": ("\n".join(log) + "\n").encode()}
