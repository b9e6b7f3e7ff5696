"""The "new ASCII" (newc, magic ``070701``) cpio archive: what the Linux kernel unpacks as an initramfs.

    with open("initrd.cpio", "wb") as f, NewcWriter(f, mtime=build_epoch()) as cpio:
        cpio.directory("bin")
        cpio.file("bin/busybox", Path("/bin/busybox"), mode=0o755)
        cpio.symlink("bin/sh", "busybox")
        cpio.device("dev/console", "c", 5, 1)      # a device node, written without root or mknod

Reference: the kernel's Documentation/driver-api/early-userspace/buffer-format.rst and cpio(5): a 110-byte
header of 13 eight-digit hexadecimal fields after the magic, the NUL-terminated name padded to a multiple of
4 bytes (counting the header), the data padded likewise, and a last entry named ``TRAILER!!!``.

Deterministic: entries keep the order they are added in, inode numbers count from 1, owner and group are 0,
every entry gets the one ``mtime`` given, and missing parent folders are added (mode 0755) before their
first child, since the kernel does not create them. Payloads given as paths are copied in blocks.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO, ClassVar, Literal

from ..errors import FormatError, InputError

MAGIC = b"070701"
TRAILER = "TRAILER!!!"
_FIELDS = ("ino", "mode", "uid", "gid", "nlink", "mtime", "filesize", "devmajor", "devminor",
           "rdevmajor", "rdevminor", "namesize", "check")
_MAX = 0xFFFFFFFF
_BLOCK = 1 << 20


def _pad4(n: int) -> int:
    return -n % 4


@dataclass(frozen=True, slots=True)
class NewcHeader:  # cpio(5) "New ASCII Format": c_magic + 13 fields of 8 hex digits
    SIZE: ClassVar[int] = 110
    ino: int
    mode: int                  # file type bits | permissions
    uid: int
    gid: int
    nlink: int
    mtime: int
    filesize: int
    devmajor: int
    devminor: int
    rdevmajor: int             # the device number of a block/character special file
    rdevminor: int
    namesize: int              # including the terminating NUL
    check: int = 0             # only used by the "crc" variant (070702)

    def to_bytes(self) -> bytes:
        values = [getattr(self, f) for f in _FIELDS]
        for name, v in zip(_FIELDS, values):
            if not 0 <= v <= _MAX:
                raise InputError(f"cpio header field c_{name}={v} does not fit in 32 bits",
                                 hint="newc archives hold files below 4 GiB")
        return MAGIC + b"".join(b"%08X" % v for v in values)

    @classmethod
    def from_bytes(cls, buf: bytes, offset: int = 0) -> NewcHeader:
        raw = buf[offset:offset + cls.SIZE]
        if len(raw) < cls.SIZE:
            raise FormatError(f"cpio header truncated ({len(raw)} of {cls.SIZE} bytes)", offset=offset)
        if raw[:6] != MAGIC:
            raise FormatError(f"cpio magic {raw[:6]!r} is not {MAGIC!r} (only newc archives are read)",
                              offset=offset)
        try:
            values = [int(raw[6 + 8 * i:14 + 8 * i], 16) for i in range(len(_FIELDS))]
        except ValueError:
            raise FormatError("cpio header field is not hexadecimal", offset=offset) from None
        return cls(*values)


@dataclass(frozen=True)
class CpioEntry:
    """One archive member as read back: its header, name and (for files and symlinks) data."""
    name: str
    header: NewcHeader
    data: bytes

    @property
    def mode(self) -> int:
        return self.header.mode


class NewcWriter:
    """Writes a newc archive to ``fp``; :meth:`close` (or leaving the ``with`` block) writes the trailer."""

    def __init__(self, fp: BinaryIO, *, mtime: int = 0, pad_to: int = 512) -> None:
        self._fp = fp
        self._mtime = mtime
        self._pad_to = pad_to
        self._ino = 0
        self._written = 0
        self._names: set[str] = set()
        self._dirs: set[str] = set()
        self._closed = False

    # -- members ---------------------------------------------------------------------------------
    def directory(self, path: str, mode: int = 0o755) -> None:
        """A folder; adding one that exists already (e.g. made as a parent) does nothing."""
        name = self._norm(path)
        if name in self._dirs:
            return
        self._claim(name)
        self._parents(name)
        self._dirs.add(name)
        self._entry(name, stat.S_IFDIR | (mode & 0o7777), nlink=2)

    def file(self, path: str, source: bytes | os.PathLike[str], mode: int = 0o644) -> None:
        name = self._name(path)
        self._parents(name)
        if isinstance(source, (bytes, bytearray, memoryview)):
            data = bytes(source)
            self._entry(name, stat.S_IFREG | (mode & 0o7777), data=data)
            return
        src = Path(source)
        size = src.stat().st_size
        self._entry(name, stat.S_IFREG | (mode & 0o7777), size=size)
        copied = 0
        with open(src, "rb") as f:
            while block := f.read(_BLOCK):
                self._write(block)
                copied += len(block)
        if copied != size:
            raise InputError(f"{src} changed size while it was archived ({size} then {copied} bytes)")
        self._write(bytes(_pad4(size)))

    def symlink(self, path: str, target: str) -> None:
        name = self._name(path)
        self._parents(name)
        self._entry(name, stat.S_IFLNK | 0o777, data=target.encode())

    def device(self, path: str, kind: Literal["c", "b"], major: int, minor: int, mode: int = 0o600) -> None:
        """A character (``c``) or block (``b``) special file: only its header, no mknod needed."""
        if kind not in ("c", "b"):
            raise InputError(f"device kind {kind!r} is not 'c' or 'b'")
        name = self._name(path)
        self._parents(name)
        ftype = stat.S_IFCHR if kind == "c" else stat.S_IFBLK
        self._entry(name, ftype | (mode & 0o7777), rdev=(major, minor))

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._header(TRAILER, ino=0, mode=0, nlink=1, size=0, rdev=(0, 0), mtime=0)
        if self._pad_to:
            self._write(bytes(-self._written % self._pad_to))

    def __enter__(self) -> NewcWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()

    # -- internals -------------------------------------------------------------------------------
    def _name(self, path: str) -> str:
        return self._claim(self._norm(path))

    def _claim(self, name: str) -> str:
        if name in self._names:
            raise InputError(f"cpio member {name} is added twice")
        return name

    def _norm(self, path: str) -> str:
        p = PurePosixPath(path.lstrip("/"))
        parts = [x for x in p.parts if x != "."]
        if not parts or ".." in parts or any("\0" in x for x in parts):
            raise InputError(f"cpio member name {path!r} is empty or leaves the archive root",
                             hint="use a relative path such as bin/busybox")
        return "/".join(parts)

    def _parents(self, name: str) -> None:
        parent = PurePosixPath(name).parent
        if str(parent) not in (".", "") and str(parent) not in self._dirs:
            self.directory(str(parent))

    def _entry(self, name: str, mode: int, *, nlink: int = 1, data: bytes | None = None, size: int = 0,
               rdev: tuple[int, int] = (0, 0)) -> None:
        if self._closed:
            raise ValueError("cpio archive already closed")
        self._names.add(name)
        self._ino += 1
        size = len(data) if data is not None else size
        self._header(name, ino=self._ino, mode=mode, nlink=nlink, size=size, rdev=rdev, mtime=self._mtime)
        if data is not None:
            self._write(data + bytes(_pad4(size)))

    def _header(self, name: str, *, ino: int, mode: int, nlink: int, size: int, rdev: tuple[int, int],
                mtime: int) -> None:
        raw = name.encode() + b"\0"
        head = NewcHeader(ino=ino, mode=mode, uid=0, gid=0, nlink=nlink, mtime=mtime, filesize=size,
                          devmajor=0, devminor=0, rdevmajor=rdev[0], rdevminor=rdev[1], namesize=len(raw))
        self._write(head.to_bytes() + raw + bytes(_pad4(NewcHeader.SIZE + len(raw))))

    def _write(self, data: bytes) -> None:
        self._fp.write(data)
        self._written += len(data)


def read_newc(data: bytes) -> Iterator[CpioEntry]:
    """The members of a newc archive held in memory (up to, not including, the trailer)."""
    at = 0
    while True:
        head = NewcHeader.from_bytes(data, at)
        name_at = at + NewcHeader.SIZE
        raw = data[name_at:name_at + head.namesize]
        if len(raw) != head.namesize or not raw.endswith(b"\0"):
            raise FormatError("cpio member name truncated or not NUL-terminated", offset=name_at)
        name = raw[:-1].decode("utf-8", "surrogateescape")
        data_at = name_at + head.namesize + _pad4(NewcHeader.SIZE + head.namesize)
        if name == TRAILER:
            return
        body = data[data_at:data_at + head.filesize]
        if len(body) != head.filesize:
            raise FormatError(f"cpio member {name}: data truncated ({len(body)} of {head.filesize} bytes)",
                              offset=data_at)
        yield CpioEntry(name, head, body)
        at = data_at + head.filesize + _pad4(head.filesize)
