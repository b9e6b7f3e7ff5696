"""ffu.info, ffu.verify, ffu.toraw: inspect, check and convert a Full Flash Update image."""

from __future__ import annotations

from pathlib import Path

from invoke import Collection, task

from ..console import emit_json, say
from ..errors import FormatError, InputError
from ..formats import ffu as ffufmt
from ._common import handle_errors


def _existing(path: str) -> Path:
    p = Path(path)
    if not p.is_file():
        raise InputError("file not found", path=p, hint="give the path of a .ffu file (build/<arch>/<Product>/<Cfg>/Flash.ffu)")
    return p


def _summary(image: ffufmt.FfuImage) -> dict[str, object]:
    stores = []
    for i, (s, m) in enumerate(zip(image.stores, image.manifest.stores), 1):
        stores.append({"index": i, "block_size": s.header.block_size, "blocks": len(s.descriptors),
                       "disk_bytes": image.disk_size(i),
                       "partitions": [{k: v for k, v in p.items()} for p in m.partitions]})
    return {"chunk_kb": image.security.chunk_kb, "catalog_bytes": len(image.catalog),
            "hash_table_bytes": len(image.hash_table), "file_bytes": image.file_size,
            "manifest": image.manifest.sections, "stores": stores}


@task(help={"file": "the .ffu file", "json": "print a JSON result on stdout"})
@handle_errors
def info(c, file, json=False):
    """Print an FFU's headers, manifest, stores and partitions."""
    p = _existing(file)
    with open(p, "rb") as fp:
        image = ffufmt.read_ffu(fp)
    s = _summary(image)
    problem = None
    try:
        ffufmt.check_structure(image)  # info shows a damaged file too, but says so
    except FormatError as e:
        problem = e.what
    if json:
        emit_json({"ok": True, "file": str(p), **s, "structure_ok": problem is None, "problem": problem})
        return
    if problem:
        say(f"warning: {p}: {problem} (the file is damaged; ffu.verify checks everything)")
    say(f"{p}: {s['file_bytes']} bytes, chunk {s['chunk_kb']} KiB, catalog {s['catalog_bytes']} bytes, "
        f"hash table {s['hash_table_bytes']} bytes")
    for name, keys in image.manifest.sections.items():
        say(f"[{name}] " + ", ".join(f"{k}={v}" for k, v in keys.items()))
    for st in s["stores"]:  # type: ignore[union-attr]
        say(f"store {st['index']}: {st['blocks']} blocks of {st['block_size']} bytes for a {st['disk_bytes']}-byte disk")
        for part in st["partitions"]:
            say("  partition " + ", ".join(f"{k}={v}" for k, v in part.items()))


@task(help={"file": "the .ffu file", "ca": "trusted root certificate (PEM); default: the workspace's roots",
            "json": "print a JSON result on stdout", "workspace": "workspace folder (for its trusted roots)"})
@handle_errors
def verify(c, file, ca=None, json=False, workspace=None):
    """Check an FFU: catalog signature and chain, hash table against the catalog, every chunk's SHA-256."""
    from ..stages.pkggen.verify import trusted_roots_for
    p = _existing(file)
    roots = trusted_roots_for(workspace, extra=[Path(ca)] if ca else [])
    v = ffufmt.verify_ffu(p, trusted_roots=roots)
    sig = v.signature
    if json:
        emit_json({"ok": True, "file": str(p), "chunks": v.chunks, "signer": sig.signer_subject,
                   "chain": list(sig.chain_subjects), "test_only": sig.test_only, "chain_trusted": sig.chain_trusted})
    else:
        say(f"ffu.verify: {p.name}: OK — {v.chunks} chunks match the hash table; catalog signed by "
            f"{sig.signer_subject} ({'TEST ONLY chain' if sig.test_only else 'retail chain'}, trusted root: "
            f"{'yes' if sig.chain_trusted else 'no'})")


@task(help={"file": "the .ffu file", "out": "the disk image to write (raw and sparse, unless --vhdx)",
            "vhdx": "write a VHDX (dynamic) through qemu-img instead of a raw image", "json": "print a JSON result"})
@handle_errors
def toraw(c, file, out, vhdx=False, json=False):
    """Write the disk an FFU describes as a raw (sparse) image, e.g. for QEMU; or as a VHDX with --vhdx."""
    import os
    import tempfile

    from ..run import run
    p = _existing(file)
    dest = Path(out)
    if not vhdx:
        size = ffufmt.ffu_to_raw(p, dest)
    else:
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".partial", dir=dest.parent))
        try:
            size = ffufmt.ffu_to_raw(p, tmp / "disk.raw")
            run(["qemu-img", "convert", "-q", "-f", "raw", "-O", "vhdx", "-o", "subformat=dynamic",
                 tmp / "disk.raw", tmp / "disk.vhdx"], timeout=600)
            os.replace(tmp / "disk.vhdx", dest)
        finally:
            import shutil
            shutil.rmtree(tmp, ignore_errors=True)
    if json:
        emit_json({"ok": True, "file": str(p), "out": str(dest), "format": "vhdx" if vhdx else "raw", "bytes": size})
    else:
        say(f"ffu.toraw: {dest} ({'VHDX of a ' if vhdx else ''}{size}-byte disk)")


ns = Collection("ffu", info, verify, toraw)
