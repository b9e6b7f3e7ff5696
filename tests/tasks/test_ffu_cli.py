"""ffu.info / ffu.verify / ffu.toraw through the real command line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.formats.test_ffu import build, make_disk
from tests.signing.helpers import cert_dir, root_cert, signer, test_pki  # noqa: F401  (fixtures)

CLI = [sys.executable, "-m", "iotbuild"]


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], cwd=cwd, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "IOTBUILD_WORKSPACE": ""})


def test_info_verify_toraw(tmp_path, signer, test_pki):  # noqa: F811
    raw = tmp_path / "disk.raw"
    info = make_disk(raw)
    ffu = build(raw, info, tmp_path / "Flash.ffu", signer)

    shown = json.loads(cli("ffu.info", str(ffu), "--json", cwd=tmp_path).stdout)
    assert shown["ok"] and shown["chunk_kb"] == 128
    (store,) = shown["stores"]
    assert store["disk_bytes"] == raw.stat().st_size
    assert [p["Name"] for p in store["partitions"]] == [p.name for p in info.partitions]

    ok = cli("ffu.verify", str(ffu), "--ca", str(test_pki.root), "--json", cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr
    v = json.loads(ok.stdout)
    assert v["chain_trusted"] and v["test_only"] and v["chunks"] > 0

    out = tmp_path / "back.raw"
    r = cli("ffu.toraw", str(ffu), str(out), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert out.read_bytes() == raw.read_bytes()

    data = bytearray(ffu.read_bytes())
    data[-5000] ^= 0xFF
    bad = tmp_path / "bad.ffu"
    bad.write_bytes(bytes(data))
    p = cli("ffu.verify", str(bad), "--ca", str(test_pki.root), cwd=tmp_path)
    assert p.returncode != 0 and "Traceback" not in p.stderr and "block" in p.stderr.lower(), p.stderr


def test_missing_file_is_one_clear_error(tmp_path):
    p = cli("ffu.info", "missing.ffu", cwd=tmp_path)
    assert p.returncode == 1 and "missing.ffu: file not found" in p.stderr and "Traceback" not in p.stderr


def test_toraw_vhdx_is_read_back_by_qemu_img(tmp_path, signer):  # noqa: F811
    from tests.conftest import require_tool
    require_tool("qemu-img")
    raw = tmp_path / "disk.raw"
    info = make_disk(raw)
    ffu = build(raw, info, tmp_path / "Flash.ffu", signer)
    vhdx = tmp_path / "disk.vhdx"
    r = cli("ffu.toraw", str(ffu), str(vhdx), "--vhdx", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    shown = json.loads(subprocess.run(["qemu-img", "info", "--output=json", str(vhdx)], check=True,
                                      capture_output=True, text=True).stdout)
    assert shown["format"] == "vhdx" and shown["virtual-size"] == raw.stat().st_size
    back = tmp_path / "back.raw"
    subprocess.run(["qemu-img", "convert", "-f", "vhdx", "-O", "raw", str(vhdx), str(back)], check=True)
    assert back.read_bytes() == raw.read_bytes()
    assert not list(tmp_path.glob(".disk.vhdx.*"))  # no work folder left behind


def test_info_says_when_a_file_is_damaged(tmp_path, signer):  # noqa: F811
    raw = tmp_path / "disk.raw"
    ffu = build(raw, make_disk(raw), tmp_path / "Flash.ffu", signer)
    whole = json.loads(cli("ffu.info", str(ffu), "--json", cwd=tmp_path).stdout)
    assert whole["structure_ok"] and whole["problem"] is None
    cut = tmp_path / "cut.ffu"
    cut.write_bytes(ffu.read_bytes()[:-131072])
    shown = json.loads(cli("ffu.info", str(cut), "--json", cwd=tmp_path).stdout)
    assert not shown["structure_ok"] and "its headers describe" in shown["problem"]
    text = cli("ffu.info", str(cut), cwd=tmp_path)
    assert "warning:" in text.stderr and "damaged" in text.stderr
