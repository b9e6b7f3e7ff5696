"""The raw disk: partition images copied to their offsets in a sparse file, then the project's GPT."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from ...formats.gpt import write_gpt
from .layout import DiskPlan

COPY_CHUNK = 1 << 20


def _copy_sparse(src: Path, dst, offset: int, limit: int) -> None:
    """Copy ``src`` to ``dst`` at ``offset``, leaving all-zero MiBs as holes (the disk stays sparse)."""
    zero = bytes(COPY_CHUNK)
    with open(src, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if size > limit:
            raise ValueError(f"{src.name} is {size} bytes, larger than its {limit}-byte partition")
        at = 0
        while chunk := f.read(COPY_CHUNK):
            if chunk != zero[:len(chunk)]:
                os.pwrite(dst.fileno(), chunk, offset + at)
            at += len(chunk)


def assemble_disk(plan: DiskPlan, images: Mapping[str, Path], out: Path) -> int:
    """Write the disk image ``out`` (sparse); returns its size in bytes."""
    size = plan.total_sectors * plan.sector_size
    with open(out, "wb") as f:
        f.truncate(size)
        for part in plan.partitions:
            image = images.get(part.name)
            if image is not None:
                _copy_sparse(image, f, part.first_lba * plan.sector_size, part.sectors * plan.sector_size)
        write_gpt(f, plan.gpt())
        f.flush()
    return size
