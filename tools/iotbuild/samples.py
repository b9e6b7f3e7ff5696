"""Generated parts of the sample workspace (nothing binary is committed)."""

from __future__ import annotations

from pathlib import Path

from .formats.pe import minimal_driver
from .outputs import DEFAULT_EPOCH, write_atomic

GENERATED = {
    Path("bsp/QEMUx64/Packages/QEMUx64.SampleDriver/qemusample.sys"): lambda: minimal_driver(timestamp=DEFAULT_EPOCH),
}


def prepare(root: Path) -> list[Path]:
    """Write every generated sample file that is missing or stale; return what was written.

    That includes each board's prepared boot chain (``bsp/<Board>/Board.xml`` with a ``<BootChain>``), made
    from the Debian packages scripts/setup.sh fetched; a set made before is copied from the shared cache."""
    written = []
    for rel, make in GENERATED.items():
        path = root / rel
        if not path.parent.is_dir():  # not this sample workspace (or the package was removed)
            continue
        data = make()
        if not path.is_file() or path.read_bytes() != data:
            write_atomic(path, data)
            written.append(path)
    written += prepare_boot_chains(root)
    return written


def prepare_boot_chains(root: Path) -> list[Path]:
    from .models.board import FILE_NAME, load_board
    from .stages.bsp import default_cache_dir, default_debs_dirs, prepare_boot_chain
    written: list[Path] = []
    for board_file in sorted((root / "bsp").glob(f"*/{FILE_NAME}")):
        board = load_board(board_file)
        if board.boot_chain is not None:
            r = prepare_boot_chain(board, debs_dirs=default_debs_dirs(root), cache_dir=default_cache_dir(root))
            written += r.written
    return written
