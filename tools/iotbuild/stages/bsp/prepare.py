"""bsp.prepare: assemble a board's stand-in boot chain from Debian packages (the board's ``<BootChain>``).

    board = load_board(bsp_dir / "Board.xml")
    result = prepare_boot_chain(board, debs_dirs=[repo / "build/debs"], cache_dir=repo / "build/cache")

The recipe, for the QEMUx64 sample board: unpack the kernel and systemd-boot ``.deb``s with ``dpkg-deb -x``
(never installed), then write into the boot-chain package's ``prepared/`` folder

* ``bootx64.efi`` (systemd-boot), ``loader.conf`` (``timeout 0``, the one entry as default) and
  ``iotbuild-smoke.conf`` (the loader entry: ``linux /vmlinuz``, ``initrd /initrd.img``, the command line);
* ``vmlinuz``, the kernel as shipped;
* ``initrd.img``: a gzip-compressed newc cpio with the host's static busybox, ``/init`` (package data
  ``data/smoke/init.sh``), ``/etc/iotbuild-smoke.conf`` (the markers and paths of ``<Init>``),
  ``/etc/modules.list`` and the modules' dependency closure, decompressed, plus a ``/dev/console`` node.

Deterministic: the same debs, busybox, init script, board settings and ``SOURCE_DATE_EPOCH`` give the same
bytes. Those inputs' hashes form a key; a finished set is kept under ``<cache>/bsp/<board>-<key>/`` so that
preparing again (every test prepares a fresh copy of the sample workspace) is a copy, not an unpack.
"""

from __future__ import annotations

import fnmatch
import gzip
import hashlib
import io
import json
import logging
import os
import shlex
import shutil
import struct
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from ...errors import FormatError, InputError, IotbuildError
from ...formats.cpio import NewcWriter
from ...formats.kmod import ModuleTree, decompress, find_module_dir
from ...models.board import Board, BootChainRecipe
from ...outputs import atomic_output, build_epoch
from ...run import run
from ...digest import sha256_file

log = logging.getLogger(__name__)

# Bump when the way the files are assembled changes: it is part of the cache key.
RECIPE_VERSION = 1
BOOT_LOADER = "bootx64.efi"
LOADER_CONF = "loader.conf"
ENTRY = "iotbuild-smoke.conf"
KERNEL = "vmlinuz"
INITRD = "initrd.img"
PREPARED_FILES = (BOOT_LOADER, LOADER_CONF, ENTRY, KERNEL, INITRD)
STAMP = ".prepared.json"
_KEEP_CACHED = 4                      # cache entries kept per board (e.g. one per SOURCE_DATE_EPOCH in use)
SETUP_HINT = "run scripts/setup.sh (it downloads the board's Debian packages into build/debs)"


@dataclass(frozen=True)
class PreparedBootChain:
    board: str
    out_dir: Path
    files: dict[str, int]             # file name → size
    kernel_version: str
    modules: tuple[str, ...]          # module files in the initramfs, in load order
    debs: tuple[Path, ...]
    key: str
    source: str                       # "built", "cache" or "up to date"
    written: tuple[Path, ...] = field(default=())
    seconds: float = 0.0

    def to_dict(self) -> dict[str, object]:
        return {"board": self.board, "out_dir": str(self.out_dir), "files": self.files,
                "kernel_version": self.kernel_version, "modules": list(self.modules),
                "debs": [str(d) for d in self.debs], "key": self.key, "source": self.source,
                "written": [str(p) for p in self.written], "seconds": round(self.seconds, 3)}


def init_script() -> bytes:
    return (resources.files("iotbuild") / "data" / "smoke" / "init.sh").read_bytes()


def source_checkout() -> Path | None:
    """The iotbuild source tree this module runs from (an editable install), if any."""
    root = Path(__file__).resolve().parents[4]
    return root if (root / "scripts" / "setup.sh").is_file() and (root / "pyproject.toml").is_file() else None


def default_debs_dirs(workspace_root: Path) -> list[Path]:
    """Where the .debs are looked for: only ``$IOTBUILD_DEBS_DIR`` if set, else the workspace's ``build/debs``,
    then the source checkout's ``build/debs`` (where scripts/setup.sh puts them)."""
    if os.environ.get("IOTBUILD_DEBS_DIR"):
        return [Path(os.environ["IOTBUILD_DEBS_DIR"])]
    dirs = [workspace_root / "build" / "debs"]
    repo = source_checkout()
    if repo is not None:
        dirs.append(repo / "build" / "debs")
    return list(dict.fromkeys(dirs))


def default_cache_dir(workspace_root: Path) -> Path:
    """``$IOTBUILD_CACHE_DIR``, else the source checkout's ``build/cache`` (shared by workspace copies), else the
    workspace's."""
    if os.environ.get("IOTBUILD_CACHE_DIR"):
        return Path(os.environ["IOTBUILD_CACHE_DIR"])
    repo = source_checkout()
    return (repo if repo is not None else workspace_root) / "build" / "cache"


def find_debs(recipe: BootChainRecipe, dirs: Sequence[Path], board_path: Path) -> list[Path]:
    """One ``<name>_<version>_<arch>.deb`` per ``<Deb Name=>`` glob, from the first folder that has them all."""
    problems: list[str] = []
    for d in dirs:
        debs = sorted(d.glob("*.deb")) if d.is_dir() else []
        found, missing, several = [], [], []
        for pattern in recipe.debs:
            hits = [p for p in debs if fnmatch.fnmatchcase(p.name.split("_", 1)[0], pattern)]
            if not hits:
                missing.append(pattern)
            elif len(hits) > 1:
                several.append(f"{pattern}: " + ", ".join(h.name for h in hits))
            else:
                found.append(hits[0])
        if several:
            raise InputError(f"several packages in {d} match: " + "; ".join(several), path=board_path,
                             hint=f"keep one version of each (delete the others from {d})")
        if not missing:
            return found
        if debs:
            problems.append(f"{d} lacks {', '.join(missing)}")
    where = "; ".join(problems) or "none of " + ", ".join(map(str, dirs)) + " holds any .deb"
    raise InputError(f"the Debian packages of the boot chain are missing ({where})", path=board_path,
                     hint=SETUP_HINT)


def check_static(path: Path) -> None:
    """The initramfs has no C library: busybox must be statically linked (no PT_INTERP program header)."""
    try:
        with open(path, "rb") as f:
            head = f.read(64)
            if head[:4] != b"\x7fELF" or head[4] != 2 or head[5] != 1:
                raise FormatError("not a 64-bit little-endian ELF executable", path=path,
                                  hint="install busybox-static (apt-get install busybox-static)")
            phoff, = struct.unpack_from("<Q", head, 0x20)
            phentsize, phnum = struct.unpack_from("<HH", head, 0x36)
            f.seek(phoff)
            table = f.read(phentsize * phnum)
    except FileNotFoundError:
        raise InputError(f"busybox {path} does not exist", hint="apt-get install busybox-static "
                                                                 "(or run scripts/setup.sh)") from None
    for i in range(phnum):
        if struct.unpack_from("<I", table, i * phentsize)[0] == 3:  # PT_INTERP
            raise InputError(f"{path} is dynamically linked; the initramfs needs a static busybox",
                             hint="apt-get install busybox-static (it replaces the busybox package)")


def _init_conf(recipe: BootChainRecipe) -> bytes:
    i = recipe.init
    values = {"SMOKE_OK": i.success_marker, "SMOKE_FAIL": i.failure_marker, "SMOKE_WAIT": str(i.partition_wait),
              "SMOKE_MANIFEST": i.manifest, "SMOKE_PROVISIONING": i.provisioning_dir}
    lines = ["# written by invoke bsp.prepare from the board's Board.xml <Init>"]
    lines += [f"{k}={shlex.quote(v)}" for k, v in values.items()]
    return ("\n".join(lines) + "\n").encode()


def _loader_files(board: Board, recipe: BootChainRecipe) -> dict[str, bytes]:
    return {
        LOADER_CONF: f"timeout 0\ndefault {ENTRY}\neditor no\n".encode(),
        ENTRY: (f"title iotbuild smoke test ({board.name})\nlinux /{KERNEL}\ninitrd /{INITRD}\n"
                f"options {recipe.command_line}\n").encode(),
    }


def cache_key(board: Board, debs: Sequence[Path]) -> str:
    recipe = board.boot_chain
    assert recipe is not None
    material = {
        "recipe_version": RECIPE_VERSION,
        "debs": {p.name: sha256_file(p).hex() for p in debs},
        "busybox": sha256_file(recipe.busybox).hex(),
        "init": hashlib.sha256(init_script()).hexdigest(),
        "init_conf": _init_conf(recipe).decode(),
        "loader": {k: v.decode() for k, v in _loader_files(board, recipe).items()},
        "boot_loader": recipe.boot_loader, "kernel": recipe.kernel, "modules": list(recipe.modules),
        "epoch": build_epoch(),
    }
    return hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()


def _one(root: Path, pattern: str, what: str, board: Board) -> Path:
    hits = sorted(p for p in root.glob(pattern.lstrip("/")) if p.is_file())
    if len(hits) != 1:
        found = ", ".join(str(h.relative_to(root)) for h in hits) or "nothing"
        raise InputError(f"the {what} {pattern!r} matches {found} in the unpacked packages", path=board.path,
                         hint="exactly one file must match; check the <Deb> list and the path")
    return hits[0]


def _initrd(recipe: BootChainRecipe, moddir: Path, mtime: int) -> tuple[bytes, tuple[str, ...]]:
    tree = ModuleTree(moddir)
    mods = tree.closure(recipe.modules)
    raw = io.BytesIO()
    with NewcWriter(raw, mtime=mtime) as cpio:
        for d in ("bin", "sbin", "usr/bin", "usr/sbin", "dev", "proc", "sys", "mnt", "tmp", "etc", "lib/modules"):
            cpio.directory(d)
        cpio.device("dev/console", "c", 5, 1)
        cpio.file("bin/busybox", recipe.busybox, mode=0o755)
        cpio.symlink("bin/sh", "busybox")
        cpio.file("init", init_script(), mode=0o755)
        cpio.file("etc/iotbuild-smoke.conf", _init_conf(recipe))
        cpio.file("etc/modules.list", "".join(f"{m.file_name}\n" for m in mods).encode())
        for m in mods:
            cpio.file(f"lib/modules/{m.file_name}", decompress(m.path))
    out = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=out, compresslevel=9, mtime=0) as gz:
        gz.write(raw.getvalue())
    return out.getvalue(), tuple(m.file_name for m in mods)


def _build(board: Board, debs: Sequence[Path], dest: Path, work: Path) -> dict[str, object]:
    """Unpack the debs under ``work`` and write the prepared files into ``dest``; returns the stamp."""
    recipe = board.boot_chain
    assert recipe is not None
    root = work / "root"
    root.mkdir()
    for deb in debs:
        run(["dpkg-deb", "-x", deb, root], timeout=600)
    loader = _one(root, recipe.boot_loader, "boot loader", board)
    kernel = _one(root, recipe.kernel, "kernel", board)
    moddir = find_module_dir(root)
    initrd, modules = _initrd(recipe, moddir, build_epoch())
    shutil.copyfile(loader, dest / BOOT_LOADER)
    shutil.copyfile(kernel, dest / KERNEL)
    (dest / INITRD).write_bytes(initrd)
    for name, data in _loader_files(board, recipe).items():
        (dest / name).write_bytes(data)
    return {"kernel_version": moddir.name, "modules": list(modules),
            "files": {n: (dest / n).stat().st_size for n in PREPARED_FILES}}


def _read_stamp(d: Path, key: str) -> dict | None:
    try:
        stamp = json.loads((d / STAMP).read_text())
    except (OSError, ValueError):
        return None
    if stamp.get("key") != key:
        return None
    for n, size in stamp.get("files", {}).items():
        p = d / n
        if not p.is_file() or p.stat().st_size != size:
            return None
    return stamp if set(stamp.get("files", {})) == set(PREPARED_FILES) else None


def _prune(cache: Path, board: str) -> None:
    entries = sorted((p for p in cache.glob(f"{board}-*") if p.is_dir()), key=lambda p: p.stat().st_mtime,
                     reverse=True)
    for old in entries[_KEEP_CACHED:]:
        shutil.rmtree(old, ignore_errors=True)


def _publish(src: Path, out_dir: Path, stamp: dict) -> list[Path]:
    """Copy the prepared set into ``out_dir`` file by file (each atomically), the stamp last."""
    written = []
    for name in PREPARED_FILES:
        target = out_dir / name
        with atomic_output(target) as f, open(src / name, "rb") as s:
            shutil.copyfileobj(s, f, 1 << 20)
        written.append(target)
    with atomic_output(out_dir / STAMP) as f:
        f.write(json.dumps(stamp, indent=1, sort_keys=True).encode() + b"\n")
    return written


def prepare_boot_chain(board: Board, *, debs_dirs: Sequence[Path], cache_dir: Path | None = None,
                       force: bool = False) -> PreparedBootChain:
    """Write the board's prepared boot files (see the module docstring); reuse what is up to date."""
    t0 = time.monotonic()
    recipe = board.boot_chain
    if recipe is None:
        raise InputError(f"board {board.name} has no <BootChain> recipe", path=board.path,
                         hint="bsp.prepare assembles a stand-in boot chain; boards with their own boot files "
                              "need no preparation")
    debs = find_debs(recipe, debs_dirs, board.path)
    check_static(recipe.busybox)
    key = cache_key(board, debs)
    out_dir = recipe.prepared_dir

    def result(stamp: dict, source: str, written: Sequence[Path] = ()) -> PreparedBootChain:
        files = {n: stamp["files"][n] for n in PREPARED_FILES}
        return PreparedBootChain(board=board.name, out_dir=out_dir, files=files,
                                 kernel_version=stamp["kernel_version"], modules=tuple(stamp["modules"]),
                                 debs=tuple(debs), key=key, source=source, written=tuple(written),
                                 seconds=time.monotonic() - t0)

    if not force and (stamp := _read_stamp(out_dir, key)) is not None:
        return result(stamp, "up to date")
    entry = cache_dir / "bsp" / f"{board.name}-{key[:24]}" if cache_dir is not None else None
    if entry is not None and not force and (stamp := _read_stamp(entry, key)) is not None:
        return result(stamp, "cache", _publish(entry, out_dir, stamp))

    parent = cache_dir / "bsp" if cache_dir is not None else out_dir.parent
    parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".bsp-prepare-", dir=parent) as tmp:
        work, staged = Path(tmp) / "work", Path(tmp) / "out"
        work.mkdir()
        staged.mkdir()
        try:
            stamp = {"key": key, "board": board.name, **_build(board, debs, staged, work)}
        except IotbuildError as e:
            if e.path is None:
                e.path = os.fspath(board.path)
            raise
        (staged / STAMP).write_text(json.dumps(stamp, indent=1, sort_keys=True) + "\n")
        written = _publish(staged, out_dir, stamp)
        if entry is not None:
            shutil.rmtree(work)
            try:
                if entry.exists():
                    shutil.rmtree(entry)
                os.rename(staged, entry)    # atomic: a concurrent run that got there first keeps its copy
            except OSError as e:
                log.debug("boot-chain cache entry %s not stored: %s", entry, e)
            _prune(parent, board.name)
    return result(stamp, "built", written)
