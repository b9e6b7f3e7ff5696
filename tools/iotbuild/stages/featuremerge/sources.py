"""Where the feature manifests of a ``buildfm`` target live, and the tokens they use (§4.3 step 2)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ...errors import InputError
from ...models.workspace import Workspace


@dataclass(frozen=True)
class FMSet:
    """One FM file list and the FM files it may name (by file name), e.g. ``oem`` or a BSP."""

    key: str  # "oem" or the BSP name; names the log FIPPackage_<key>.log
    list_path: Path
    fm_files: dict[str, Path]  # lower-case file name → source path


def bsp_dir(ws: Workspace, bsp: str) -> Path:
    return (ws.source_dir / "BSP" / bsp) if ws.kit_layout else (ws.root / "bsp" / bsp)


def bsp_names(ws: Workspace) -> list[str]:
    base = (ws.source_dir / "BSP") if ws.kit_layout else (ws.root / "bsp")
    return sorted(d.name for d in base.iterdir() if (d / "Packages").is_dir()) if base.is_dir() else []


def _fm_files(*folders: Path, recursive: bool = False) -> dict[str, Path]:
    out: dict[str, Path] = {}
    for folder in folders:
        if not folder.is_dir():
            continue
        it = folder.rglob("*.xml") if recursive else folder.glob("*.xml")
        for p in sorted(it):
            n = p.name.lower()
            if n.endswith("fm.xml") and "fmfilelist" not in n:
                out.setdefault(n, p)
    return out


def fm_sets(ws: Workspace, target: str) -> list[FMSet]:
    """``oem``, ``all`` or a BSP name (case-insensitive, as on Windows)."""
    t = target.lower()
    sets: list[FMSet] = []
    if t in ("oem", "all"):
        if ws.kit_layout:
            lst = ws.source_dir / "Packages" / "OEMFMFileList.xml"
            files = _fm_files(ws.root / "Common" / "Packages", ws.source_dir / "Packages")
        else:
            lst = ws.root / "packages" / "OEMFMFileList.xml"
            files = _fm_files(ws.root / "packages")
        if not lst.is_file():
            raise InputError("the OEM FM file list does not exist", path=lst,
                             hint="create it (see packages/OEMFMFileList.xml in the iotbuild repository)")
        sets.append(FMSet("oem", lst, files))
    if t != "oem":
        names = bsp_names(ws)
        chosen = names if t == "all" else [n for n in names if n.lower() == t]
        if t != "all" and not chosen:
            base = (ws.source_dir / "BSP") if ws.kit_layout else (ws.root / "bsp")
            raise InputError(f"no board named {target!r}", path=base,
                             hint="use oem, all or one of: " + (", ".join(names) or "(no BSP folders found)"))
        for name in chosen:
            pkgs = bsp_dir(ws, name) / "Packages"
            lst = pkgs / f"{name}FMFileList.xml"
            if not lst.is_file():
                raise InputError(f"board {name} has no FM file list", path=lst,
                                 hint=f"create {lst.name} listing {name}FM.xml (invoke newbsp writes one)")
            sets.append(FMSet(name, lst, _fm_files(pkgs, recursive=True)))
    return sets


def tokens(ws: Workspace, ms_dir: Path | None) -> dict[str, str]:
    """The FM tokens plus the environment (tokens win), as the kit's textual replacement saw them."""
    out = {k: v for k, v in ws.env.items() if k.replace("_", "").isalnum()}
    out.update({"PKGBLD_DIR": str(ws.pkg_dir), "OEM_NAME": ws.oem_name, "BSPPKG_DIR": str(ws.bsp_pkg_dir),
                "BLD_DIR": str(ws.build_dir), "BSP_ARCH": ws.bsparch, "ARCH": ws.arch.value})
    if ms_dir is not None:
        out["MSPKG_DIR"] = str(ms_dir)
    return out


def clean_env() -> dict[str, str]:
    return dict(os.environ)
