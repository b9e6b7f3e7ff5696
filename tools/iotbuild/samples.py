"""Generated parts of the sample workspace (nothing binary is committed)."""

from __future__ import annotations

from pathlib import Path

from .formats.pe import minimal_driver
from .outputs import DEFAULT_EPOCH, write_atomic

GENERATED = {
    Path("bsp/QEMUx64/Packages/QEMUx64.SampleDriver/qemusample.sys"): lambda: minimal_driver(timestamp=DEFAULT_EPOCH),
}


def prepare(root: Path) -> list[Path]:
    """Write every generated sample file that is missing or stale; return what was written."""
    written = []
    for rel, make in GENERATED.items():
        path = root / rel
        data = make()
        if not path.is_file() or path.read_bytes() != data:
            write_atomic(path, data)
            written.append(path)
    return written
