"""Outputs appear whole or not at all, and carry the build's time rather than the clock's."""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

# 2000-01-01: used when SOURCE_DATE_EPOCH is unset, so that two plain builds still match byte for byte.
DEFAULT_EPOCH = 946684800


def build_epoch() -> int:
    """The build's timestamp: ``SOURCE_DATE_EPOCH`` if set, else a fixed date (never ``now``)."""
    value = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
    if not value:
        return DEFAULT_EPOCH
    try:
        epoch = int(value)
    except ValueError:
        from .errors import InputError
        raise InputError(f"SOURCE_DATE_EPOCH={value!r} is not an integer",
                         hint="set it to seconds since 1970, e.g. $(git log -1 --format=%ct)") from None
    return max(epoch, 315532800)  # DOS dates start in 1980


def build_time_struct() -> time.struct_time:
    return time.gmtime(build_epoch())


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike[str], mode: int = 0o644) -> Iterator[BinaryIO]:
    """Write to a hidden temporary beside ``path``; rename over it only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
    try:
        with os.fdopen(fd, "w+b") as f:
            yield f
            f.flush()
            os.fchmod(f.fileno(), mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_atomic(path: str | os.PathLike[str], data: bytes, mode: int = 0o644) -> None:
    with atomic_output(path, mode) as f:
        f.write(data)
