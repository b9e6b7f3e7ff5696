"""smoketest: a product's built FFU → raw disk → QEMU → verdict from the serial console.

    result = smoketest(ws, "SampleA", "Test")            # build/amd64/SampleA/Test/Flash.ffu
    result = smoketest(ws, "SampleA", "Test", disk=Path("my.raw"))

The board is the BSP whose merged FM (``<BSP>FM.xml``) the product's OEMInput lists under AdditionalFMs and
which has a ``Board.xml``; its ``<SmokeTest>`` gives the machine, firmware, markers and timeout. Work files
live in ``build/<arch>/<Product>/<Cfg>/smoketest/``: ``disk.raw`` (sparse, removed after the run unless
``keep``), ``serial.log`` and ``qemu.log`` (kept).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path, PureWindowsPath

from ...errors import InputError
from ...formats.ffu import ffu_to_raw
from ...models.board import FILE_NAME, Board, load_board
from ...models.oeminput import parse_oeminput
from ...models.workspace import Workspace
from ..author import bsp_dir
from ..resolve import oeminput_path
from .qemu import SmokeResult, boot_disk

_CONFIGS = {"test": "Test", "retail": "Retail", "production": "Retail"}


@dataclass(frozen=True)
class SmokePaths:
    product: str
    config: str                       # Test or Retail
    ffu: Path
    workdir: Path

    @property
    def raw(self) -> Path:
        return self.workdir / "disk.raw"


def product_paths(ws: Workspace, product: str, config: str) -> SmokePaths:
    oeminput_path(ws, product, config)  # checks the product and the configuration, with hints
    cfg = _CONFIGS[config.lower()]
    out = ws.build_dir / product / cfg
    return SmokePaths(product=product, config=cfg, ffu=out / "Flash.ffu", workdir=out / "smoketest")


def board_for_product(ws: Workspace, product: str, config: str, board: str | None = None) -> Board:
    """The product's board: named by ``board``, else the one BSP among its AdditionalFMs with a Board.xml."""
    if board:
        path = bsp_dir(ws, board) / FILE_NAME
        if not path.is_file():
            raise InputError(f"board {board} has no {FILE_NAME}", path=path,
                             hint="give the board a Board.xml with a <SmokeTest> (see bsp/QEMUx64/Board.xml)")
        return load_board(path)
    oi_path = oeminput_path(ws, product, config)
    oi = parse_oeminput(oi_path)
    found: dict[str, Path] = {}
    named = []
    for ref in oi.additional_fms:
        m = re.fullmatch(r"(.+)FM\.xml", PureWindowsPath(ref.text).name, re.I)
        if not m:
            continue
        named.append(m.group(1))
        cand = bsp_dir(ws, m.group(1)) / FILE_NAME
        if cand.is_file():
            found[m.group(1)] = cand
    if not found:
        raise InputError("no board with a Board.xml among the AdditionalFMs"
                         + (f" ({', '.join(named)})" if named else ""), path=oi_path,
                         hint="list the board's merged FM (%BLD_DIR%\\MergedFMs\\<BSP>FM.xml) under <AdditionalFMs> "
                              "and give the board a bsp/<BSP>/Board.xml, or pass --board")
    if len(found) > 1:
        raise InputError(f"several boards among the AdditionalFMs have a Board.xml: {', '.join(found)}",
                         path=oi_path, hint="pass --board <BSP> to choose one")
    return load_board(next(iter(found.values())))


def smoketest(ws: Workspace, product: str, config: str, *, disk: Path | None = None, timeout: float | None = None,
              accel: str = "tcg", keep: bool = False, board: str | None = None) -> SmokeResult:
    paths = product_paths(ws, product, config)
    the_board = board_for_product(ws, product, config, board)
    made_raw = False
    if disk is None:
        if not paths.ffu.is_file():
            raise InputError(f"{paths.ffu} does not exist",
                             hint=f"build the image first: invoke buildimage {product} {paths.config}")
        paths.workdir.mkdir(parents=True, exist_ok=True)
        ffu_to_raw(paths.ffu, paths.raw)
        disk, made_raw = paths.raw, True
    try:
        return boot_disk(the_board, disk, paths.workdir, timeout=timeout, accel=accel, keep=keep)
    finally:
        if made_raw and not keep:
            paths.raw.unlink(missing_ok=True)
