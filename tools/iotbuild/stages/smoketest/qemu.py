"""Boot a raw disk under QEMU + UEFI firmware and judge the serial console (the board's ``<SmokeTest>``).

    result = boot_disk(board, Path("disk.raw"), workdir, timeout=120)
    result.ok, result.reason, result.marker_line, result.marker_seconds

QEMU runs in its own process group with a hard timeout; on timeout, an error or an interrupt the whole
group is killed. Its exit code says nothing about the guest (a kernel panic with ``panic=-1 -no-reboot``
exits 0 too), so only the success line passes. The firmware's variable store is copied to a private file
for every run, and the disk is attached with ``snapshot=on``: the guest never changes the image.
"""

from __future__ import annotations

import logging
import os
import re
import shlex
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from ...errors import InputError, ToolError
from ...models.board import Board, DiskInterface, SmokeSettings

log = logging.getLogger(__name__)

TAIL_LINES = 30
GRACE_AFTER_VERDICT = 15.0            # seconds the guest gets to power off after its verdict line
_POLL = 0.1
_ANSI = re.compile(r"\x1b\[[0-9;?=>]*[A-Za-z]|\x1b[()][A-Za-z0-9]|\x1b[=>cDEHM78]")


class Verdict(StrEnum):
    PASSED = "passed"
    FAILED = "failed"                 # the board's failure line was printed
    NO_MARKER = "no-marker"           # QEMU exited (guest powered off or panicked) without a verdict line
    TIMEOUT = "timeout"
    QEMU_ERROR = "qemu-error"         # QEMU exited non-zero without a verdict line


@dataclass(frozen=True)
class SmokeResult:
    verdict: Verdict
    reason: str
    board: str
    disk: Path
    serial_log: Path
    accel: str
    timeout: float
    seconds: float                    # QEMU start → QEMU gone
    marker_seconds: float | None      # QEMU start → verdict line seen
    marker_line: str | None           # the success line
    failure_line: str | None
    qemu_exit: int | None             # None when it was killed
    command: tuple[str, ...] = field(repr=False)
    tail: tuple[str, ...] = field(default=(), repr=False)
    qemu_stderr: str = field(default="", repr=False)
    notes: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.verdict is Verdict.PASSED

    def to_dict(self) -> dict[str, object]:
        return {"ok": self.ok, "verdict": self.verdict.value, "reason": self.reason, "board": self.board,
                "seconds": round(self.seconds, 2),
                "marker_seconds": None if self.marker_seconds is None else round(self.marker_seconds, 2),
                "marker_line": self.marker_line, "failure_line": self.failure_line,
                "serial_log": str(self.serial_log), "disk": str(self.disk), "accel": self.accel,
                "timeout": self.timeout, "qemu_exit": self.qemu_exit, "command": list(self.command),
                "tail": list(self.tail), "notes": list(self.notes)}


def clean_line(raw: str) -> str:
    """A serial line without the firmware's terminal escapes and carriage returns."""
    return _ANSI.sub("", raw).replace("\r", "").rstrip()


def kvm_usable() -> tuple[bool, str]:
    """A cheap probe: /dev/kvm opens and the CPU advertises VT-x or AMD-V. (A software KVM such as kvm-pvm has
    /dev/kvm but no vmx/svm flag, and hangs on firmware: it must not be picked.)"""
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return False, "/dev/kvm is missing or not accessible"
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False, "/proc/cpuinfo is unreadable"
    if not re.search(r"^flags\s*:.*\b(vmx|svm)\b", flags, re.M):
        return False, "the CPU has no vmx/svm flag (nested or software KVM)"
    return True, ""


def choose_accel(requested: str) -> tuple[str, list[str]]:
    """``tcg`` unless ``kvm`` was asked for and the probe passes; notes say why KVM was not used."""
    req = requested.strip().lower()
    if req not in ("tcg", "kvm"):
        raise InputError(f"accelerator {requested!r} unknown", hint="use tcg (default) or kvm")
    if req == "tcg":
        return "tcg", []
    ok, why = kvm_usable()
    return ("kvm", []) if ok else ("tcg", [f"KVM not used: {why}; falling back to TCG"])


def _drive_path(p: Path) -> str:
    return os.fspath(p).replace(",", ",,")  # QEMU option values escape commas by doubling them


def qemu_command(s: SmokeSettings, disk: Path, vars_copy: Path | None, serial_log: Path, accel: str) -> list[str]:
    argv = [s.qemu, "-machine", s.machine, "-accel", accel, "-m", str(s.memory_mib), "-smp", str(s.cpus),
            "-nodefaults", "-display", "none", "-monitor", "none", "-serial", f"file:{serial_log}",
            "-no-reboot", "-net", "none"]
    if accel == "kvm":
        argv += ["-cpu", "host"]
    if vars_copy is not None:
        argv += ["-drive", f"if=pflash,format=raw,unit=0,readonly=on,file={_drive_path(s.firmware_code)}",
                 "-drive", f"if=pflash,format=raw,unit=1,file={_drive_path(vars_copy)}"]
    else:
        argv += ["-bios", os.fspath(s.firmware_code)]
    drive = f"file={_drive_path(disk)},format=raw,snapshot=on"
    if s.disk_interface is DiskInterface.NVME:
        argv += ["-drive", f"{drive},if=none,id=disk0", "-device", "nvme,drive=disk0,serial=iotbuild"]
    else:
        argv += ["-drive", f"{drive},if={s.disk_interface.value}"]
    return argv + list(s.extra_args)


def check_firmware(board: Board) -> None:
    s = board.smoke
    for what, p in (("Code", s.firmware_code), ("Vars", s.firmware_vars)):
        if p is not None and not p.is_file():
            raise InputError(f"firmware {what}={p} does not exist", path=board.path, line=s.lines.get("Firmware"),
                             hint="install the firmware (apt-get install ovmf, or run scripts/setup.sh) or fix "
                                  f"<Firmware {what}=\"…\">")


def _kill_group(proc: subprocess.Popen) -> None:
    for sig, wait in ((signal.SIGTERM, 3.0), (signal.SIGKILL, 10.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


class _SerialWatcher:
    """Reads the growing serial log and notes the first success or failure line."""

    def __init__(self, path: Path, settings: SmokeSettings) -> None:
        self.path = path
        self.settings = settings
        self.pos = 0
        self.partial = ""
        self.success: str | None = None
        self.failure: str | None = None

    def poll(self, final: bool = False) -> None:
        try:
            with open(self.path, "rb") as f:
                f.seek(self.pos)
                data = f.read()
        except FileNotFoundError:
            return
        self.pos += len(data)
        text = self.partial + data.decode("utf-8", "replace")
        lines = text.split("\n")
        self.partial = "" if final else lines.pop()
        for raw in lines:
            self._check(clean_line(raw))

    def _check(self, line: str) -> None:
        if self.success or self.failure or not line:
            return
        if self.settings.success.regex.search(line):
            self.success = line
        elif self.settings.failure is not None and self.settings.failure.regex.search(line):
            self.failure = line

    @property
    def decided(self) -> bool:
        return bool(self.success or self.failure)


def serial_tail(path: Path, n: int = TAIL_LINES) -> list[str]:
    try:
        text = path.read_bytes()[-256 * 1024:].decode("utf-8", "replace")
    except FileNotFoundError:
        return []
    lines = [clean_line(x) for x in text.split("\n")]
    return [x for x in lines if x.strip()][-n:]


def boot_disk(board: Board, disk: Path, workdir: Path, *, timeout: float | None = None, accel: str = "tcg",
              keep: bool = False) -> SmokeResult:
    """Boot ``disk`` with the board's QEMU settings; the serial log and QEMU's own output go to ``workdir``."""
    s = board.smoke
    if not disk.is_file():
        raise InputError(f"disk image {disk} does not exist", hint="give a raw disk image (--disk) or build the FFU")
    check_firmware(board)
    timeout = float(timeout if timeout is not None else s.timeout)
    if timeout <= 0:
        raise InputError(f"timeout {timeout:g} s must be positive")
    chosen, notes = choose_accel(accel)
    workdir.mkdir(parents=True, exist_ok=True)
    serial_log = workdir / "serial.log"
    qemu_log = workdir / "qemu.log"
    serial_log.unlink(missing_ok=True)
    vars_copy = workdir / "efivars.fd" if s.firmware_vars is not None else None
    if vars_copy is not None:
        shutil.copyfile(s.firmware_vars, vars_copy)  # type: ignore[arg-type]
        os.chmod(vars_copy, 0o644)
    argv = qemu_command(s, disk, vars_copy, serial_log, chosen)
    log.debug("+ %s", shlex.join(argv))
    watcher = _SerialWatcher(serial_log, s)
    killed = False
    t0 = time.monotonic()
    marker_at: float | None = None
    try:
        with open(qemu_log, "wb") as qerr:
            try:
                proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=qerr, stderr=subprocess.STDOUT,
                                        start_new_session=True, env={**os.environ, "LC_ALL": "C.UTF-8"})
            except FileNotFoundError:
                raise ToolError(f"{s.qemu} not found",
                                hint="apt-get install --no-install-recommends qemu-system-x86 (or run "
                                     f"scripts/setup.sh), or fix <Qemu Binary=\"…\"> in {board.path}") from None
            except PermissionError:
                raise ToolError(f"{s.qemu} cannot be executed (permission denied)",
                                hint=f"fix <Qemu Binary=\"…\"> in {board.path}") from None
            try:
                while True:
                    rc = proc.poll()
                    watcher.poll()
                    now = time.monotonic()
                    if watcher.decided and marker_at is None:
                        marker_at = now - t0
                    if rc is not None:
                        break
                    if now - t0 > timeout or (marker_at is not None and now - t0 > marker_at + GRACE_AFTER_VERDICT):
                        killed = True
                        _kill_group(proc)
                        break
                    time.sleep(_POLL)
            finally:
                if proc.poll() is None:  # an interrupt or a bug: never leave QEMU running
                    killed = True
                    _kill_group(proc)
        seconds = time.monotonic() - t0
        watcher.poll(final=True)
        if watcher.decided and marker_at is None:
            marker_at = seconds
    finally:
        if vars_copy is not None and not keep:
            vars_copy.unlink(missing_ok=True)
    rc = None if killed else proc.returncode
    stderr = qemu_log.read_text("utf-8", "replace").strip() if qemu_log.exists() else ""
    tail = serial_tail(serial_log)
    if watcher.success:
        verdict, reason = Verdict.PASSED, f"success line seen after {marker_at:.1f} s"
    elif watcher.failure:
        verdict, reason = Verdict.FAILED, f"failure line seen: {watcher.failure}"
    elif killed and seconds >= timeout:
        verdict = Verdict.TIMEOUT
        reason = (f"timeout after {timeout:g} s: no success or failure line on the serial console "
                  f"({'no output at all' if not tail else 'last line: ' + tail[-1][:200]})")
    elif rc not in (0, None):
        verdict = Verdict.QEMU_ERROR
        reason = f"QEMU error (exit {rc}): " + (stderr.splitlines()[-1] if stderr else "no message")
    else:
        verdict = Verdict.NO_MARKER
        reason = (f"marker missing: QEMU exited after {seconds:.1f} s without a success or failure line "
                  "(the guest powered off or the kernel panicked)")
    return SmokeResult(verdict=verdict, reason=reason, board=board.name, disk=disk, serial_log=serial_log,
                       accel=chosen, timeout=timeout, seconds=seconds, marker_seconds=marker_at,
                       marker_line=watcher.success, failure_line=watcher.failure, qemu_exit=rc,
                       command=tuple(argv), tail=tuple(tail), qemu_stderr=stderr[-4000:], notes=tuple(notes))
