"""A board's boot and smoke-test settings: ``bsp/<Board>/Board.xml`` (an iotbuild file; the kit had none).

    board = load_board(Path("bsp/QEMUx64/Board.xml"))
    board.smoke.machine, board.smoke.success.pattern, board.boot_chain.modules

``<SmokeTest>`` says how ``invoke smoketest`` boots the image under QEMU and how it judges the serial console;
``<BootChain>`` (optional) is the recipe ``invoke bsp.prepare`` follows to assemble a stand-in boot payload
from Debian packages. Another board brings its own file with its own machine, firmware and markers.
Relative paths are relative to the file's folder. Every problem in the file is reported at its line, together.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from ..errors import InputError
from ..xmlsafe import localname, parse
from ._issues import Issues

FILE_NAME = "Board.xml"


class DiskInterface(StrEnum):
    VIRTIO = "virtio"
    IDE = "ide"       # on q35: ICH9 AHCI
    NVME = "nvme"


@dataclass(frozen=True)
class Pattern:
    """A regular expression matched against each serial line, and where it was written."""
    text: str
    regex: re.Pattern[str] = field(compare=False)
    line: int | None = field(default=None, compare=False)


@dataclass(frozen=True)
class SmokeSettings:
    qemu: str                  # the QEMU binary (a name on PATH or a path)
    machine: str
    memory_mib: int
    cpus: int
    disk_interface: DiskInterface
    firmware_code: Path
    firmware_vars: Path | None
    success: Pattern
    failure: Pattern | None
    timeout: float             # seconds until QEMU is killed
    extra_args: tuple[str, ...] = ()
    lines: dict[str, int] = field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True)
class InitSettings:
    """What the stand-in /init prints and checks (written into the initramfs as /etc/iotbuild-smoke.conf)."""
    success_marker: str
    failure_marker: str
    partition_wait: int
    manifest: str              # <Partition>/<path> of the image manifest
    provisioning_dir: str      # <Partition>/<path> where every *.ppkg must be


@dataclass(frozen=True)
class BootChainRecipe:
    package_dir: Path          # the .wm.xml's folder
    prepared_dir: Path         # where bsp.prepare writes the files the .wm.xml refers to
    debs: tuple[str, ...]      # package-name globs, matched against build/debs/<name>_<version>_<arch>.deb
    boot_loader: str           # path inside the unpacked debs
    kernel: str                # glob inside the unpacked debs
    command_line: str
    busybox: Path              # a static busybox on the build host
    modules: tuple[str, ...]
    init: InitSettings


@dataclass(frozen=True)
class Board:
    name: str
    path: Path
    smoke: SmokeSettings
    boot_chain: BootChainRecipe | None

    @property
    def directory(self) -> Path:
        return self.path.parent


_Ctx = Issues


def _child(el, tag: str):
    return next((c for c in el if isinstance(c.tag, str) and localname(c) == tag), None)


def _children(el, tag: str) -> list:
    return [c for c in el if isinstance(c.tag, str) and localname(c) == tag]


def _check_children(el, allowed: set[str], ctx: _Ctx) -> None:
    for c in el:
        if isinstance(c.tag, str) and localname(c) not in allowed:
            ctx.err(f"<{localname(c)}> is not allowed in <{localname(el)}>", c,
                    hint="allowed: " + ", ".join(f"<{a}>" for a in sorted(allowed)))


def _attr(el, name: str, ctx: _Ctx, *, default: str | None = None, example: str = "") -> str | None:
    v = el.get(name) if el is not None else None
    if v is None or not v.strip():
        if default is None:
            ctx.err(f"<{localname(el)}> has no {name}=", el, hint=f"add {name}=\"{example}\"")
        return default
    return v.strip()


def _int(el, name: str, ctx: _Ctx, default: int, lo: int, hi: int) -> int:
    text = el.get(name) if el is not None else None
    if text is None:
        return default
    try:
        v = int(text.strip())
    except ValueError:
        v = lo - 1
    if not lo <= v <= hi:
        ctx.err(f"{name}={text!r} must be a whole number from {lo} to {hi}", el)
        return default
    return v


def _pattern(el, ctx: _Ctx) -> Pattern | None:
    text = (el.text or "").strip() if el is not None else ""
    if not text:
        ctx.err(f"<{localname(el)}> is empty", el, hint="give a regular expression matched against each serial line")
        return None
    try:
        return Pattern(text, re.compile(text), el.sourceline)
    except re.error as e:
        ctx.err(f"<{localname(el)}> {text!r} is not a valid regular expression: {e}", el)
        return None


def _path(text: str, base: Path) -> Path:
    p = Path(text)
    return p if p.is_absolute() else base / p


def _smoke(el, ctx: _Ctx) -> SmokeSettings | None:
    _check_children(el, {"Qemu", "Firmware", "SuccessPattern", "FailurePattern", "TimeoutSeconds", "QemuArg"}, ctx)
    base = ctx.path.parent
    qemu = _child(el, "Qemu")
    fw = _child(el, "Firmware")
    if qemu is None:
        ctx.err("<SmokeTest> has no <Qemu>", el,
                hint='add <Qemu Binary="qemu-system-x86_64" Machine="q35" MemoryMiB="512" DiskInterface="virtio"/>')
        return None
    if fw is None:
        ctx.err("<SmokeTest> has no <Firmware>", el,
                hint='add <Firmware Code="/usr/share/OVMF/OVMF_CODE_4M.fd" Vars="/usr/share/OVMF/OVMF_VARS_4M.fd"/>')
        return None
    iface_text = _attr(qemu, "DiskInterface", ctx, default="virtio")
    try:
        iface = DiskInterface(iface_text.lower())  # type: ignore[union-attr]
    except ValueError:
        ctx.err(f"DiskInterface={iface_text!r} unknown", qemu, hint="use virtio, ide or nvme")
        iface = DiskInterface.VIRTIO
    code = _attr(fw, "Code", ctx, example="/usr/share/OVMF/OVMF_CODE_4M.fd")
    vars_text = fw.get("Vars")
    ok_el, fail_el, to_el = (_child(el, t) for t in ("SuccessPattern", "FailurePattern", "TimeoutSeconds"))
    if ok_el is None:
        ctx.err("<SmokeTest> has no <SuccessPattern>", el,
                hint="add the regular expression of the line that means the image booted and checked out")
    success = _pattern(ok_el, ctx) if ok_el is not None else None
    failure = _pattern(fail_el, ctx) if fail_el is not None else None
    timeout = 180.0
    if to_el is not None:
        try:
            timeout = float((to_el.text or "").strip())
            if not 1 <= timeout <= 86400:
                raise ValueError
        except ValueError:
            ctx.err(f"<TimeoutSeconds> {to_el.text!r} must be a number of seconds from 1 to 86400", to_el)
    args = tuple((a.text or "").strip() for a in _children(el, "QemuArg") if (a.text or "").strip())
    machine = _attr(qemu, "Machine", ctx, default="q35")
    binary = _attr(qemu, "Binary", ctx, default="qemu-system-x86_64")
    memory, cpus = _int(qemu, "MemoryMiB", ctx, 512, 64, 65536), _int(qemu, "Cpus", ctx, 1, 1, 64)
    if code is None or success is None:
        return None
    return SmokeSettings(
        qemu=binary or "qemu-system-x86_64", machine=machine or "q35", memory_mib=memory, cpus=cpus,
        disk_interface=iface, firmware_code=_path(code, base),
        firmware_vars=_path(vars_text.strip(), base) if vars_text and vars_text.strip() else None,
        success=success, failure=failure, timeout=timeout, extra_args=args,
        lines={"Firmware": fw.sourceline, "Qemu": qemu.sourceline})


_PART_PATH = re.compile(r"^[A-Za-z0-9_.-]+(/[^/\0]+)+$")


def _boot_chain(el, ctx: _Ctx) -> BootChainRecipe | None:
    _check_children(el, {"Deb", "BootLoader", "Kernel", "Busybox", "Module", "Init"}, ctx)
    base = ctx.path.parent
    pkg = _attr(el, "Package", ctx, example="Packages/QEMUx64.BootChain")
    prepared = _attr(el, "Prepared", ctx, default="prepared")
    debs = tuple(d for d in (_attr(x, "Name", ctx, example="systemd-boot-efi") for x in _children(el, "Deb")) if d)
    if not _children(el, "Deb"):
        ctx.err("<BootChain> lists no <Deb>", el, hint='add <Deb Name="systemd-boot-efi"/> and the kernel package')
    need = {}
    for tag, attr, example in (("BootLoader", "Source", "usr/lib/systemd/boot/efi/systemd-bootx64.efi"),
                               ("Kernel", "Source", "boot/vmlinuz-*"), ("Busybox", "Source", "/bin/busybox")):
        c = _child(el, tag)
        if c is None:
            ctx.err(f"<BootChain> has no <{tag}>", el, hint=f'add <{tag} {attr}="{example}"/>')
            continue
        need[tag] = _attr(c, attr, ctx, example=example)
    kernel_el = _child(el, "Kernel")
    cmdline = (kernel_el.get("CommandLine") or "").strip() if kernel_el is not None else ""
    modules = tuple((m.text or "").strip() for m in _children(el, "Module") if (m.text or "").strip())
    for m in _children(el, "Module"):
        if not re.fullmatch(r"[A-Za-z0-9_-]+", (m.text or "").strip()):
            ctx.err(f"<Module> {m.text!r} is not a module name", m, hint="e.g. <Module>ntfs3</Module>")
    init_el = _child(el, "Init")
    init = None
    if init_el is None:
        ctx.err("<BootChain> has no <Init>", el,
                hint='add <Init SuccessMarker="…" FailureMarker="…" Manifest="MainOS/…" '
                     'ProvisioningDir="MainOS/…"/>')
    else:
        ok = _attr(init_el, "SuccessMarker", ctx, example="IOTBUILD-SMOKE-OK")
        bad = _attr(init_el, "FailureMarker", ctx, example="IOTBUILD-SMOKE-FAIL")
        manifest = _attr(init_el, "Manifest", ctx, example="MainOS/Windows/ImageUpdate/ImageManifest.sha256")
        prov = _attr(init_el, "ProvisioningDir", ctx, example="MainOS/Windows/Provisioning/Packages")
        for name, v in (("SuccessMarker", ok), ("FailureMarker", bad)):
            if v and not re.fullmatch(r"[A-Za-z0-9_.:-]+", v):
                ctx.err(f"{name}={v!r} must be one word of letters, digits and . _ : -", init_el)
        for name, v in (("Manifest", manifest), ("ProvisioningDir", prov)):
            if v and (not _PART_PATH.match(v) or "'" in v or ".." in v.split("/")):
                ctx.err(f"{name}={v!r} must be <Partition>/<path> with forward slashes", init_el,
                        hint="e.g. MainOS/Windows/ImageUpdate/ImageManifest.sha256")
        if ok and bad and manifest and prov:
            init = InitSettings(ok, bad, _int(init_el, "PartitionWaitSeconds", ctx, 10, 1, 300), manifest, prov)
    if pkg is None or init is None or len(need) < 3 or None in need.values():
        return None
    return BootChainRecipe(package_dir=_path(pkg, base), prepared_dir=_path(pkg, base) / (prepared or "prepared"),
                           debs=debs, boot_loader=need["BootLoader"], kernel=need["Kernel"],  # type: ignore[arg-type]
                           command_line=cmdline, busybox=_path(need["Busybox"], base),  # type: ignore[arg-type]
                           modules=modules, init=init)


def _check_markers(smoke: SmokeSettings, chain: BootChainRecipe, ctx: _Ctx) -> None:
    """The stand-in prints ``<SuccessMarker> <n> files verified`` or ``<FailureMarker> <reason>: <paths>``: the
    judge's patterns must accept exactly those."""
    ok_line = f"{chain.init.success_marker} 12 files verified"
    bad_line = f"{chain.init.failure_marker} sha256 mismatch (1 of 12 files): MainOS/x"
    ok, bad = smoke.success, smoke.failure

    def err(p: Pattern, what: str) -> None:
        ctx.issues.append(InputError(what, path=ctx.path, line=p.line,
                                     hint="make the pattern and <Init SuccessMarker=… FailureMarker=…> agree"))

    if not ok.regex.search(ok_line):
        err(ok, f"<SuccessPattern> {ok.text!r} does not match the line the stand-in prints ({ok_line!r})")
    if ok.regex.search(bad_line):
        err(ok, f"<SuccessPattern> {ok.text!r} also matches the failure line ({bad_line!r})")
    if bad is not None and not bad.regex.search(bad_line):
        err(bad, f"<FailurePattern> {bad.text!r} does not match the line the stand-in prints ({bad_line!r})")
    if bad is not None and bad.regex.search(ok_line):
        err(bad, f"<FailurePattern> {bad.text!r} also matches the success line ({ok_line!r})")


def load_board(path: str | Path) -> Board:
    path = Path(path)
    root = parse(path, what="board settings file")
    ctx = _Ctx(path)
    if localname(root) != "Board":
        raise InputError(f"root element is <{localname(root)}>, expected <Board>", path=path, line=root.sourceline,
                         hint="see bsp/QEMUx64/Board.xml for the format")
    _check_children(root, {"SmokeTest", "BootChain"}, ctx)
    name = _attr(root, "Name", ctx, example=path.parent.name) or path.parent.name
    smoke_el = _child(root, "SmokeTest")
    smoke = None
    if smoke_el is None:
        ctx.err("<Board> has no <SmokeTest>", root, hint="add <SmokeTest> with <Qemu>, <Firmware> and <SuccessPattern>")
    else:
        smoke = _smoke(smoke_el, ctx)
    chain_el = _child(root, "BootChain")
    chain = _boot_chain(chain_el, ctx) if chain_el is not None else None
    if smoke is not None and chain is not None:
        _check_markers(smoke, chain, ctx)
    ctx.raise_if_any()
    assert smoke is not None
    return Board(name=name, path=path, smoke=smoke, boot_chain=chain)


__all__ = ["Board", "BootChainRecipe", "DiskInterface", "FILE_NAME", "InitSettings", "Pattern", "SmokeSettings",
           "load_board"]
