"""The smoke test's judge and its failure paths, without booting anything: a stand-in "QEMU" script writes
the serial log the way QEMU does, so that every verdict (pass, failure line, marker missing, timeout with a
process-group kill, QEMU error) is checked in a second. Real QEMU is started only to see it refuse to start."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from iotbuild.errors import InputError
from iotbuild.models.board import load_board
from iotbuild.models.workspace import load_workspace
from iotbuild.stages.smoketest import Verdict, board_for_product, boot_disk, choose_accel, qemu_command
from iotbuild.stages.smoketest import qemu as qemu_mod
from iotbuild.stages.smoketest.qemu import clean_line
from tests.conftest import REPO, require_tool

CLI = [sys.executable, "-m", "iotbuild.cli"]

FAKE_QEMU = r"""#!/bin/sh
# A stand-in for qemu-system-x86_64: finds -serial file:<log>, then behaves as $FAKE_QEMU_MODE says.
for a in "$@"; do case "$a" in file:*) log="${a#file:}" ;; esac; done
printf '%s\n' "$@" > "$log.argv"
boot() {
  printf '\033[2J\033[01;01H\033[=3h\033[2J\033[01;01HBdsDxe: starting Boot0001 "UEFI Misc Device"\r\n' >> "$log"
}
case "$FAKE_QEMU_MODE" in
  ok)     boot; printf 'IOTBUILD-SMOKE-OK 42 files verified\r\n[    3.1] reboot: Power down\r\n' >> "$log" ;;
  late)   boot; printf 'IOTBUILD-SMOKE-OK 7 fi' >> "$log"; sleep 0.3; printf 'les verified' >> "$log" ;;
  fail)   boot; printf 'IOTBUILD-SMOKE-FAIL sha256 mismatch (1 of 9 files): MainOS/a b.txt\r\n' >> "$log" ;;
  panic)  boot; printf '[ 2.0] Kernel panic - not syncing: Attempted to kill init!\r\n' >> "$log" ;;
  hang)   boot; sleep 300 & echo $! > "$log.child"; sleep 300 ;;
  okhang) boot; printf 'IOTBUILD-SMOKE-OK 3 files verified\r\n' >> "$log"; sleep 300 ;;
  error)  echo "qemu-system-x86_64: -drive if=pflash: Could not open 'x': No such file or directory" >&2; exit 1 ;;
esac
exit 0
"""


def write_board(dest: Path, **replace: str) -> Path:
    """A copy of the sample Board.xml with text replacements (old=new given as pairs in ``replace``)."""
    text = (REPO / "bsp/QEMUx64/Board.xml").read_text()
    for old, new in replace.values():
        assert old in text, old
        text = text.replace(old, new)
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "Board.xml").write_text(text)
    return dest / "Board.xml"


@pytest.fixture
def fake_board(tmp_path):
    script = tmp_path / "fake-qemu"
    script.write_text(FAKE_QEMU)
    script.chmod(0o755)
    firmware = tmp_path / "code.fd"
    firmware.write_bytes(b"\0" * 64)
    (tmp_path / "vars.fd").write_bytes(b"\1" * 64)
    path = write_board(tmp_path / "board", q=('Binary="qemu-system-x86_64"', f'Binary="{script}"'),
                       c=("/usr/share/OVMF/OVMF_CODE_4M.fd", str(firmware)),
                       v=("/usr/share/OVMF/OVMF_VARS_4M.fd", str(tmp_path / "vars.fd")))
    disk = tmp_path / "disk.raw"
    disk.write_bytes(bytes(4096))
    return load_board(path), disk


def run_fake(fake_board, tmp_path, monkeypatch, mode: str, **kw):
    board, disk = fake_board
    monkeypatch.setenv("FAKE_QEMU_MODE", mode)
    return boot_disk(board, disk, tmp_path / "work", **kw)


def test_pass_only_on_the_success_line(fake_board, tmp_path, monkeypatch):
    r = run_fake(fake_board, tmp_path, monkeypatch, "ok")
    assert r.ok and r.verdict is Verdict.PASSED and r.qemu_exit == 0
    assert r.marker_line == "IOTBUILD-SMOKE-OK 42 files verified" and r.marker_seconds is not None
    assert r.tail[0].startswith("BdsDxe: starting") and "\x1b" not in "".join(r.tail)
    assert not (tmp_path / "work/efivars.fd").exists()  # the private VARS copy is gone after the run
    argv = (tmp_path / "work/serial.log.argv").read_text().splitlines()
    assert argv[argv.index("-accel") + 1] == "tcg" and "-no-reboot" in argv and "-nodefaults" in argv
    assert f"if=pflash,format=raw,unit=1,file={tmp_path / 'work/efivars.fd'}" in argv


def test_a_line_split_across_writes_is_still_seen(fake_board, tmp_path, monkeypatch):
    r = run_fake(fake_board, tmp_path, monkeypatch, "late")
    assert r.ok and r.marker_line == "IOTBUILD-SMOKE-OK 7 files verified"


def test_failure_line_is_the_reason(fake_board, tmp_path, monkeypatch):
    r = run_fake(fake_board, tmp_path, monkeypatch, "fail")
    assert r.verdict is Verdict.FAILED and not r.ok
    assert r.failure_line == "IOTBUILD-SMOKE-FAIL sha256 mismatch (1 of 9 files): MainOS/a b.txt"
    assert r.reason == "failure line seen: " + r.failure_line


def test_exit_zero_without_the_marker_fails(fake_board, tmp_path, monkeypatch):
    r = run_fake(fake_board, tmp_path, monkeypatch, "panic")
    assert r.verdict is Verdict.NO_MARKER and r.qemu_exit == 0
    assert r.reason.startswith("marker missing: QEMU exited after")
    assert r.tail[-1].endswith("Attempted to kill init!")


def test_timeout_kills_the_whole_process_group(fake_board, tmp_path, monkeypatch):
    t0 = time.monotonic()
    r = run_fake(fake_board, tmp_path, monkeypatch, "hang", timeout=2)
    assert time.monotonic() - t0 < 10
    assert r.verdict is Verdict.TIMEOUT and r.qemu_exit is None
    assert r.reason.startswith("timeout after 2 s: no success or failure line") and "BdsDxe" in r.reason
    child = int((tmp_path / "work/serial.log.child").read_text())
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and Path(f"/proc/{child}").exists() and \
            Path(f"/proc/{child}/stat").read_text().split()[2] != "Z":
        time.sleep(0.1)
    assert not Path(f"/proc/{child}").exists() or Path(f"/proc/{child}/stat").read_text().split()[2] == "Z"


def test_after_the_verdict_a_guest_that_does_not_power_off_is_killed(fake_board, tmp_path, monkeypatch):
    monkeypatch.setattr(qemu_mod, "GRACE_AFTER_VERDICT", 0.5)
    r = run_fake(fake_board, tmp_path, monkeypatch, "okhang", timeout=60)
    assert r.ok and r.seconds < 10 and r.qemu_exit is None


def test_qemu_error_carries_its_message(fake_board, tmp_path, monkeypatch):
    r = run_fake(fake_board, tmp_path, monkeypatch, "error")
    assert r.verdict is Verdict.QEMU_ERROR and r.qemu_exit == 1
    assert r.reason == ("QEMU error (exit 1): qemu-system-x86_64: -drive if=pflash: Could not open 'x': "
                        "No such file or directory")


def test_kvm_only_when_asked_and_usable(monkeypatch):
    assert choose_accel("tcg") == ("tcg", [])
    monkeypatch.setattr(qemu_mod, "kvm_usable", lambda: (False, "the CPU has no vmx/svm flag"))
    accel, notes = choose_accel("kvm")
    assert accel == "tcg" and "no vmx/svm" in notes[0] and "falling back to TCG" in notes[0]
    monkeypatch.setattr(qemu_mod, "kvm_usable", lambda: (True, ""))
    assert choose_accel("KVM") == ("kvm", [])
    with pytest.raises(InputError, match="accelerator 'hvf' unknown"):
        choose_accel("hvf")


def test_kvm_probe_here_matches_cpuinfo():
    ok, why = qemu_mod.kvm_usable()
    flags = Path("/proc/cpuinfo").read_text()
    has_hw = " vmx" in flags or " svm" in flags
    assert ok == (has_hw and os.access("/dev/kvm", os.R_OK | os.W_OK)), why


def test_command_line_per_disk_interface(tmp_path):
    board = load_board(REPO / "bsp/QEMUx64/Board.xml")
    disk = tmp_path / "a,b.raw"
    argv = qemu_command(board.smoke, disk, tmp_path / "vars.fd", tmp_path / "serial.log", "tcg")
    assert argv[:8] == ["qemu-system-x86_64", "-machine", "q35", "-accel", "tcg", "-m", "512", "-smp"]
    for opt in ("-nodefaults", "-no-reboot", "-display", "-monitor"):
        assert opt in argv
    assert argv[argv.index("-serial") + 1] == f"file:{tmp_path / 'serial.log'}"
    assert argv[argv.index("-net") + 1] == "none"
    assert "if=pflash,format=raw,unit=0,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.fd" in argv
    assert f"file={tmp_path}/a,,b.raw,format=raw,snapshot=on,if=virtio" in argv  # commas doubled
    kvm = qemu_command(board.smoke, disk, None, tmp_path / "s.log", "kvm")
    assert kvm[kvm.index("-cpu") + 1] == "host" and kvm[kvm.index("-bios") + 1].endswith("OVMF_CODE_4M.fd")
    nvme = load_board(write_board(tmp_path / "n", i=('DiskInterface="virtio"', 'DiskInterface="nvme"')))
    argv = qemu_command(nvme.smoke, disk, None, tmp_path / "s.log", "tcg")
    assert "nvme,drive=disk0,serial=iotbuild" in argv


def test_clean_line_strips_firmware_escapes():
    assert clean_line("\x1b[2J\x1b[01;01H\x1b[=3hBdsDxe: loading\r") == "BdsDxe: loading"


# --- through the command line ---------------------------------------------------------------------------------
@pytest.fixture
def ws(tmp_path) -> Path:
    for d in ("workspace", "bsp", "products"):
        shutil.copytree(REPO / d, tmp_path / d, ignore=shutil.ignore_patterns("Certs", "*.sys", "prepared"))
    return tmp_path


def cli(ws: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], cwd=ws, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "IOTBUILD_WORKSPACE": ""}, stdin=subprocess.DEVNULL)


def one_error(p: subprocess.CompletedProcess, code: int) -> str:
    assert p.returncode == code, (p.returncode, p.stdout, p.stderr)
    assert "Traceback" not in p.stderr and p.stderr.count("error:") == 1, p.stderr
    return p.stderr


def test_missing_ffu_says_to_build_the_image(ws):
    err = one_error(cli(ws, "smoketest", "SampleA", "Test"), 1)
    assert "build/amd64/SampleA/Test/Flash.ffu does not exist" in err
    assert "invoke buildimage SampleA Test" in err
    assert "invoke buildimage SampleA Retail" in one_error(cli(ws, "smoketest", "SampleA", "retail"), 1)
    assert "is not Test or Retail" in one_error(cli(ws, "smoketest", "SampleA", "Debug"), 1)
    assert "product 'Nope' does not exist" in one_error(cli(ws, "smoketest", "Nope", "Test"), 1)


def test_bad_firmware_path_in_the_board_file_is_a_clear_error(ws, tmp_path):
    write_board(ws / "bsp/QEMUx64", c=("/usr/share/OVMF/OVMF_CODE_4M.fd", "/nonexistent/OVMF_CODE.fd"))
    disk = tmp_path / "d.raw"
    disk.write_bytes(bytes(1 << 20))
    err = one_error(cli(ws, "smoketest", "SampleA", "Test", "--disk", str(disk)), 1)
    line = next(i for i, t in enumerate((ws / "bsp/QEMUx64/Board.xml").read_text().splitlines(), 1) if "<Firmware" in t)
    assert f"bsp/QEMUx64/Board.xml:{line}: firmware Code=/nonexistent/OVMF_CODE.fd does not exist" in err
    assert "apt-get install ovmf" in err


def test_missing_qemu_binary_is_a_clear_error(ws, tmp_path):
    write_board(ws / "bsp/QEMUx64", q=('Binary="qemu-system-x86_64"', 'Binary="qemu-system-nonexistent"'))
    disk = tmp_path / "d.raw"
    disk.write_bytes(bytes(1 << 20))
    p = cli(ws, "smoketest", "SampleA", "Test", "--disk", str(disk), "--json")
    assert p.returncode == 3 and "Traceback" not in p.stderr
    err = json.loads(p.stdout)["error"]
    assert err["type"] == "ToolError" and err["message"] == "qemu-system-nonexistent not found"
    assert "qemu-system-x86" in err["hint"]


def test_a_qemu_that_refuses_to_start_is_a_qemu_error(ws, tmp_path):
    require_tool("qemu-system-x86_64")
    write_board(ws / "bsp/QEMUx64", t=("<TimeoutSeconds>180</TimeoutSeconds>",
                                       "<TimeoutSeconds>60</TimeoutSeconds><QemuArg>-no-such-option</QemuArg>"))
    disk = tmp_path / "d.raw"
    disk.write_bytes(bytes(1 << 20))
    t0 = time.monotonic()
    p = cli(ws, "smoketest", "SampleA", "Test", "--disk", str(disk))
    assert time.monotonic() - t0 < 30
    err = one_error(p, 3)
    assert "FAILED on QEMUx64: QEMU error (exit 1): qemu-system-x86_64: -no-such-option: invalid option" in err


def test_missing_disk_and_bad_timeout(ws):
    assert "disk image /nonexistent.raw does not exist" in one_error(
        cli(ws, "smoketest", "SampleA", "Test", "--disk", "/nonexistent.raw"), 1)
    assert "--timeout 'soon' is not a number" in one_error(
        cli(ws, "smoketest", "SampleA", "Test", "--disk", "/x", "--timeout", "soon"), 1)


# --- which board ----------------------------------------------------------------------------------------------
def test_board_comes_from_the_products_additional_fms(ws):
    w = load_workspace(ws, env={})
    assert board_for_product(w, "SampleA", "Test").name == "QEMUx64"
    oi = ws / "products/SampleA/TestOEMInput.xml"
    text = oi.read_text()
    oi.write_text(text.replace(r"%BLD_DIR%\MergedFMs\QEMUx64FM.xml", r"%BLD_DIR%\MergedFMs\OtherFM.xml"))
    with pytest.raises(InputError, match=r"no board with a Board.xml among the AdditionalFMs \(Other, OEMCommon, OEM"):
        board_for_product(w, "SampleA", "Test")
    assert board_for_product(w, "SampleA", "Test", board="QEMUx64").name == "QEMUx64"
    shutil.copytree(ws / "bsp/QEMUx64", ws / "bsp/Other")
    assert board_for_product(w, "SampleA", "Test").name == "QEMUx64"  # the Name= of the copied file
    oi.write_text(text.replace("</AdditionalFMs>", "<AdditionalFM>%BLD_DIR%\\MergedFMs\\OtherFM.xml</AdditionalFM>"
                                                   "</AdditionalFMs>"))
    with pytest.raises(InputError, match="several boards .*: QEMUx64, Other") as e:
        board_for_product(w, "SampleA", "Test")
    assert "--board" in str(e.value)
    with pytest.raises(InputError, match="board Nope has no Board.xml"):
        board_for_product(w, "SampleA", "Test", board="Nope")


def test_json_of_a_failed_run(ws, tmp_path):
    """--json on a failing run: ok false, the reason, and a non-zero exit (fake QEMU: no boot needed)."""
    script = tmp_path / "fake-qemu"
    script.write_text(FAKE_QEMU)
    script.chmod(0o755)
    write_board(ws / "bsp/QEMUx64", q=('Binary="qemu-system-x86_64"', f'Binary="{script}"'))
    disk = tmp_path / "d.raw"
    disk.write_bytes(bytes(4096))
    p = subprocess.run([*CLI, "smoketest", "SampleA", "Test", "--disk", str(disk), "--json"], cwd=ws,
                       capture_output=True, text=True, timeout=120,
                       env={**os.environ, "IOTBUILD_WORKSPACE": "", "FAKE_QEMU_MODE": "fail"})
    assert p.returncode == 1, p.stderr
    r = json.loads(p.stdout)
    assert r["ok"] is False and r["verdict"] == "failed" and r["reason"].startswith("failure line seen: ")
    for key in ("seconds", "marker_line", "serial_log", "accel", "tail", "product", "config", "board"):
        assert key in r
    assert r["serial_log"].endswith("build/amd64/SampleA/Test/smoketest/serial.log")
    p = subprocess.run([*CLI, "smoketest", "SampleA", "Test", "--disk", str(disk)], cwd=ws, capture_output=True,
                       text=True, timeout=120, env={**os.environ, "IOTBUILD_WORKSPACE": "", "FAKE_QEMU_MODE": "ok"})
    assert p.returncode == 0, p.stderr
    assert "smoketest: SampleA Test passed on QEMUx64 — IOTBUILD-SMOKE-OK 42 files verified" in p.stderr
