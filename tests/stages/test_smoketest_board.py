"""The board settings file (bsp/<Board>/Board.xml): the sample's values, and every mistake reported at its line."""

from __future__ import annotations

from pathlib import Path

import pytest

from iotbuild.errors import InputError, InputErrors
from iotbuild.models.board import DiskInterface, load_board
from iotbuild.stages.bsp import prepare_boot_chain
from tests.conftest import REPO


def board_file(tmp_path: Path, body: str) -> Path:
    p = tmp_path / "Board.xml"
    p.write_text('<?xml version="1.0" encoding="utf-8"?>\n' + body)
    return p


SMOKE = """  <SmokeTest>
    <Qemu Machine="pc" MemoryMiB="256" />
    <Firmware Code="fw/CODE.fd" />
    <SuccessPattern>^BOOTED$</SuccessPattern>
  </SmokeTest>
"""


def test_the_sample_board():
    b = load_board(REPO / "bsp/QEMUx64/Board.xml")
    s = b.smoke
    assert b.name == "QEMUx64" and s.machine == "q35" and s.memory_mib == 512 and s.cpus == 1
    assert s.disk_interface is DiskInterface.VIRTIO and s.timeout == 180
    assert s.firmware_code == Path("/usr/share/OVMF/OVMF_CODE_4M.fd")
    assert s.firmware_vars == Path("/usr/share/OVMF/OVMF_VARS_4M.fd")
    assert s.success.regex.search("IOTBUILD-SMOKE-OK 12 files verified")
    assert not s.success.regex.search("IOTBUILD-SMOKE-OK 12 files verified, but")
    assert s.failure is not None and s.failure.regex.search("IOTBUILD-SMOKE-FAIL manifest missing: x")
    c = b.boot_chain
    assert c is not None and c.modules == ("virtio_blk", "vfat", "nls_cp437", "nls_ascii", "nls_utf8", "ntfs3")
    assert c.debs == ("linux-image-6.12.*-cloud-amd64", "systemd-boot-efi")
    assert c.prepared_dir == REPO / "bsp/QEMUx64/Packages/QEMUx64.BootChain/prepared"
    assert c.init.manifest == "MainOS/Windows/ImageUpdate/ImageManifest.sha256"
    assert c.init.success_marker == "IOTBUILD-SMOKE-OK" and c.init.partition_wait == 10


def test_a_board_of_its_own_with_defaults_and_relative_paths(tmp_path):
    b = load_board(board_file(tmp_path, f'<Board Name="Other">\n{SMOKE}</Board>\n'))
    s = b.smoke
    assert s.machine == "pc" and s.memory_mib == 256 and s.qemu == "qemu-system-x86_64" and s.timeout == 180
    assert s.firmware_code == tmp_path / "fw/CODE.fd" and s.firmware_vars is None and s.failure is None
    assert b.boot_chain is None
    with pytest.raises(InputError, match="board Other has no <BootChain> recipe"):
        prepare_boot_chain(b, debs_dirs=[])


def test_every_problem_is_reported_at_its_line(tmp_path):
    p = board_file(tmp_path, """<Board Name="X">
  <SmokeTest>
    <Qemu MemoryMiB="lots" DiskInterface="scsi" />
    <Firmware />
    <SuccessPattern>^OK (</SuccessPattern>
    <TimeoutSeconds>-3</TimeoutSeconds>
    <Colour>blue</Colour>
  </SmokeTest>
  <BootChain Package="P">
    <Module>ntfs3; rm -rf /</Module>
    <Init SuccessMarker="OK NOW" FailureMarker="BAD" Manifest="/abs/path" ProvisioningDir="MainOS/../x" />
  </BootChain>
</Board>
""")
    with pytest.raises(InputErrors) as e:
        load_board(p)
    got = {(err.line, err.what.split(" ")[0]) for err in e.value.errors}
    text = str(e.value)
    for line, what in ((4, "MemoryMiB='lots'"), (4, "DiskInterface='scsi'"), (5, "<Firmware>"),
                       (6, "<SuccessPattern>"), (7, "<TimeoutSeconds>"), (8, "<Colour>"), (10, "<BootChain>"),
                       (11, "<Module>"), (12, "SuccessMarker='OK"), (12, "Manifest='/abs/path'"),
                       (12, "ProvisioningDir='MainOS/../x'")):
        assert (line, what) in got, (line, what, text)
    assert f"{p}:5: <Firmware> has no Code=" in text


def test_markers_and_patterns_must_agree(tmp_path):
    p = board_file(tmp_path, """<Board Name="X">
  <SmokeTest>
    <Qemu />
    <Firmware Code="/c.fd" />
    <SuccessPattern>^BOOT-OK</SuccessPattern>
    <FailurePattern>.</FailurePattern>
  </SmokeTest>
  <BootChain Package="P">
    <Deb Name="k" /><BootLoader Source="b" /><Kernel Source="k" /><Busybox Source="/bin/busybox" />
    <Init SuccessMarker="SMOKE-OK" FailureMarker="SMOKE-FAIL" Manifest="MainOS/m" ProvisioningDir="MainOS/p" />
  </BootChain>
</Board>
""")
    with pytest.raises(InputErrors) as e:
        load_board(p)
    assert "does not match the line the stand-in prints ('SMOKE-OK 12 files verified')" in str(e.value)
    assert e.value.errors[0].line == 6  # the <SuccessPattern>
    assert e.value.errors[1].line == 7 and "<FailurePattern> '.' also matches the success line" in str(e.value)


def test_wrong_root_and_doctype(tmp_path):
    with pytest.raises(InputError, match="expected <Board>"):
        load_board(board_file(tmp_path, "<Bored/>"))
    with pytest.raises(InputError, match="DOCTYPE"):
        load_board(board_file(tmp_path, '<!DOCTYPE b [<!ENTITY x "y">]><Board/>'))
    with pytest.raises(InputError, match="<Board> has no <SmokeTest>"):
        load_board(board_file(tmp_path, '<Board Name="x"/>'))
