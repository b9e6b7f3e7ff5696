"""newc cpio writer (cpio(5), the kernel's initramfs buffer format), checked by busybox cpio."""

from __future__ import annotations

import io
import os
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from iotbuild.errors import FormatError, InputError
from iotbuild.formats.cpio import NewcHeader, NewcWriter, read_newc
from tests.conftest import require_tool

EPOCH = 1700000000


def busybox() -> str:
    return require_tool("busybox")


def sample(mtime: int = EPOCH, tmp: Path | None = None) -> bytes:
    out = io.BytesIO()
    with NewcWriter(out, mtime=mtime) as cpio:
        cpio.directory("bin")
        cpio.directory("dev")
        cpio.device("dev/console", "c", 5, 1)
        cpio.file("bin/tool", b"#!/bin/sh\necho hi\n", mode=0o755)
        cpio.symlink("bin/sh", "tool")
        cpio.file("etc/conf/a.txt", b"abc")                 # parents etc, etc/conf are added
        cpio.file("etc/odd", b"x" * 5)                       # padding after 5 bytes
        if tmp is not None:
            (tmp / "payload.bin").write_bytes(bytes(range(256)) * 9)
            cpio.file("lib/payload.bin", tmp / "payload.bin")
    return out.getvalue()


def bb_list(data: bytes, verbose: bool = False) -> list[str]:
    p = subprocess.run([busybox(), "cpio", "-t" + ("v" if verbose else "")], input=data, capture_output=True,
                       timeout=30)
    assert p.returncode == 0, p.stderr
    return p.stdout.decode().splitlines()


def test_busybox_lists_members_in_order_with_modes(tmp_path):
    data = sample(tmp=tmp_path)
    assert len(data) % 512 == 0
    assert bb_list(data) == ["bin", "dev", "dev/console", "bin/tool", "bin/sh", "etc", "etc/conf", "etc/conf/a.txt",
                             "etc/odd", "lib", "lib/payload.bin"]
    modes = {line.split()[-1] if "->" not in line else line.split()[-3]: line.split()[0]
             for line in bb_list(data, verbose=True)}
    assert modes["dev/console"] == "crw-------"
    assert modes["bin/tool"] == "-rwxr-xr-x" and modes["etc/odd"] == "-rw-r--r--"
    assert modes["bin/sh"] == "lrwxrwxrwx" and modes["etc"] == "drwxr-xr-x"
    assert any(line.endswith("bin/sh -> tool") for line in bb_list(data, verbose=True))
    assert all("0/0" in line for line in bb_list(data, verbose=True))  # owner root, whoever built it


def test_busybox_extracts_the_same_bytes(tmp_path):
    data = sample(tmp=tmp_path)
    dest = tmp_path / "x"
    dest.mkdir()
    # the device node needs root to create: extract everything else
    p = subprocess.run([busybox(), "cpio", "-i", "-d", "-m", "bin/*", "etc/*", "lib/*"], input=data, cwd=dest,
                       capture_output=True, timeout=30)
    assert p.returncode == 0, p.stderr
    assert (dest / "bin/tool").read_bytes() == b"#!/bin/sh\necho hi\n"
    assert os.stat(dest / "bin/tool").st_mode & 0o777 == 0o755
    assert os.readlink(dest / "bin/sh") == "tool"
    assert (dest / "etc/conf/a.txt").read_bytes() == b"abc" and (dest / "etc/odd").read_bytes() == b"xxxxx"
    assert (dest / "lib/payload.bin").read_bytes() == (tmp_path / "payload.bin").read_bytes()
    assert int(os.stat(dest / "etc/odd").st_mtime) == EPOCH


def test_device_node_header_carries_major_minor():
    entries = {e.name: e for e in read_newc(sample())}
    con = entries["dev/console"].header
    assert (con.rdevmajor, con.rdevminor, con.filesize, con.nlink) == (5, 1, 0, 1)
    assert con.mode == 0o020600
    assert entries["bin"].header.nlink == 2 and entries["bin/sh"].data == b"tool"


def test_deterministic_and_only_mtime_changes(tmp_path):
    assert sample() == sample()
    a, b = list(read_newc(sample(EPOCH))), list(read_newc(sample(EPOCH + 1)))
    assert [e.name for e in a] == [e.name for e in b]
    for x, y in zip(a, b):
        assert x.header.mtime == EPOCH and y.header.mtime == EPOCH + 1
        assert x.data == y.data and x.header.ino == y.header.ino and x.header.mode == y.header.mode
    # inode numbers count from 1 in order
    assert [e.header.ino for e in a] == list(range(1, len(a) + 1))


def test_header_round_trip():
    h = NewcHeader(7, 0o100644, 0, 0, 1, EPOCH, 3, 0, 0, 0, 0, 6)
    raw = h.to_bytes()
    assert len(raw) == NewcHeader.SIZE and raw.startswith(b"07070100000007000081A4")
    assert NewcHeader.from_bytes(raw) == h
    with pytest.raises(FormatError, match="magic"):
        NewcHeader.from_bytes(b"070707" + raw[6:])
    with pytest.raises(FormatError, match="truncated"):
        NewcHeader.from_bytes(raw[:50])
    with pytest.raises(InputError, match="32 bits"):
        NewcHeader(1, 0, 0, 0, 1, 0, 1 << 32, 0, 0, 0, 0, 2).to_bytes()


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.from_regex(r"[a-z]{1,8}(/[a-z]{1,8}){0,2}", fullmatch=True), st.binary(max_size=40)),
                max_size=8, unique_by=lambda t: t[0]))
def test_read_back_what_was_written(members):
    names = {n for n, _ in members}
    # a name that is also another member's parent folder cannot be a file
    members = [(n, d) for n, d in members if not any(o.startswith(n + "/") for o in names)]
    out = io.BytesIO()
    with NewcWriter(out, mtime=0) as cpio:
        for n, d in members:
            cpio.file(n, d)
    files = {e.name: e.data for e in read_newc(out.getvalue()) if e.header.mode & 0o100000}
    assert files == dict(members)


def test_bad_names_and_duplicates_are_refused():
    w = NewcWriter(io.BytesIO())
    w.file("a", b"1")
    with pytest.raises(InputError, match="added twice"):
        w.file("/a", b"2")
    for bad in ("", "/", "../etc/passwd", "x/../../y"):
        with pytest.raises(InputError, match="leaves the archive root"):
            w.file(bad, b"")
    with pytest.raises(InputError, match="'c' or 'b'"):
        w.device("dev/x", "p", 1, 1)  # type: ignore[arg-type]
    w.directory("d")
    w.directory("d")  # a folder twice is harmless (it may have been added as a parent)
    w.close()
    with pytest.raises(ValueError, match="closed"):
        w.file("late", b"")
