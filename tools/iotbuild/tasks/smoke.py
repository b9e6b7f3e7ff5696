"""smoketest and bsp.prepare: boot a built image under QEMU; assemble a board's stand-in boot chain."""

from __future__ import annotations

from pathlib import Path

from invoke import Collection, Exit, task

from ..console import emit_json, say
from ..errors import InputError
from ._common import handle_errors, open_workspace


@task(help={
    "product": "the product (products/<Product>)",
    "config": "Test or Retail",
    "json": "print a JSON result on stdout",
    "timeout": "seconds before QEMU is killed (default: the board's <TimeoutSeconds>)",
    "disk": "boot this raw disk image instead of the product's Flash.ffu",
    "keep": "keep the raw disk and the firmware variables file after the run",
    "accel": "tcg (default) or kvm; kvm is used only where the CPU has vmx/svm, else TCG",
    "board": "the board whose Board.xml to use (default: the one among the product's AdditionalFMs)",
    "workspace": "workspace folder (default: the current folder or IOTBUILD_WORKSPACE)",
}, positional=["product", "config"])
@handle_errors
def smoketest(c, product, config, json=False, timeout=None, disk=None, keep=False, accel="tcg", board=None,
              workspace=None):
    """Boot the product's Flash.ffu under QEMU + UEFI firmware; pass only on the board's success line."""
    from ..stages.smoketest import Verdict, smoketest as run_smoketest
    ws = open_workspace(workspace)
    seconds = None
    if timeout is not None:
        try:
            seconds = float(timeout)
        except ValueError:
            raise InputError(f"--timeout {timeout!r} is not a number of seconds", hint="e.g. --timeout 120") from None
    raw = Path(disk) if disk else None
    if not json:
        say(f"smoketest: booting {raw or product + ' ' + config} under QEMU …")
    r = run_smoketest(ws, product, config, disk=raw, timeout=seconds, accel=accel, keep=keep, board=board)
    code = 0 if r.ok else (3 if r.verdict is Verdict.QEMU_ERROR else 1)
    if json:
        emit_json({**r.to_dict(), "product": product, "config": config})
        if code:
            raise Exit(code=code)
        return
    for note in r.notes:
        say(f"note: {note}")
    if r.ok:
        say(f"smoketest: {product} {config} passed on {r.board} — {r.marker_line} (verdict after "
            f"{r.marker_seconds:.1f} s, {r.accel.upper()}; serial log {r.serial_log})")
        return
    say(f"--- last {len(r.tail)} line(s) of {r.serial_log} ---")
    for line in r.tail:
        say(line)
    say("---")
    if r.verdict is Verdict.QEMU_ERROR and r.qemu_stderr:
        say(r.qemu_stderr)
    raise Exit(f"error: smoketest {product} {config} FAILED on {r.board}: {r.reason}", code=code)


@task(help={"bsp": "the board (bsp/<BSP>/Board.xml)", "json": "print a JSON result on stdout",
            "force": "rebuild even when the prepared files are up to date",
            "workspace": "workspace folder (default: the current folder or IOTBUILD_WORKSPACE)"},
      positional=["bsp"])
@handle_errors
def prepare(c, bsp, json=False, force=False, workspace=None):
    """Assemble the board's stand-in boot chain (kernel, initramfs, boot loader) from build/debs."""
    from ..models.board import FILE_NAME, load_board
    from ..stages.author import bsp_dir
    from ..stages.bsp import default_cache_dir, default_debs_dirs, prepare_boot_chain
    ws = open_workspace(workspace)
    path = bsp_dir(ws, bsp) / FILE_NAME
    if not path.is_file():
        raise InputError(f"board {bsp} has no {FILE_NAME}", path=path,
                         hint="bsp.prepare follows the <BootChain> of bsp/<BSP>/Board.xml (see bsp/QEMUx64)")
    board = load_board(path)
    r = prepare_boot_chain(board, debs_dirs=default_debs_dirs(ws.root), cache_dir=default_cache_dir(ws.root),
                           force=force)
    if json:
        emit_json({"ok": True, **r.to_dict()})
        return
    sizes = ", ".join(f"{n} {s / 1e6:.1f} MB" if s >= 100_000 else f"{n} {s} B" for n, s in r.files.items())
    say(f"bsp.prepare: {bsp}: {len(r.files)} files ({r.source}) → {r.out_dir}: {sizes}; kernel {r.kernel_version}, "
        f"{len(r.modules)} modules ({r.seconds:.1f} s)")


ns = Collection("bsp", prepare)
