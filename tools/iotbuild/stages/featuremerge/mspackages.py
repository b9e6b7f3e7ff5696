"""Microsoft's packages: a folder of cabs, or the IoT Core packages ``.iso`` read in place with pycdlib.

``%MSPKG_DIR%`` points at ``<root>/MSPackages/Retail/<bsparch>/fre`` when that folder exists (the kit's
layout, iot-adk-addonkit.md §1.4), else at the root itself. From an ISO, only the cabs an FM names are
copied out, into ``build/<bsparch>/mspkgs/`` (never mounted, never extracted whole), and feature
manifests found anywhere in the root are used like the workspace's own.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from ...errors import FormatError, InputError
from ...models.workspace import Workspace
from ...outputs import atomic_output
from ...xmlsafe import localname, parse_bytes

MAX_FM_BYTES = 16 << 20


def _package_subdir(bsparch: str) -> PurePosixPath:
    return PurePosixPath("MSPackages", "Retail", bsparch, "fre")


@dataclass
class MsPackages:
    root: Path
    package_dir: Path  # what %MSPKG_DIR% means on this host
    fm_files: list[Path] = field(default_factory=list)
    _iso: object | None = None
    _iso_files: dict[str, tuple[str, str]] = field(default_factory=dict)  # lower name → (facade kind, iso path)

    def locate(self, name: str) -> Path | None:
        """The host path of a Microsoft cab (copied out of the ISO on first use), or None."""
        if self._iso is None:
            p = self.package_dir / name
            return p if p.is_file() else None
        target = self.package_dir / name
        if target.is_file():
            return target
        hit = self._iso_files.get(name.lower())
        if hit is None:
            return None
        self._copy_out(hit, target)
        return target

    def _copy_out(self, hit: tuple[str, str], target: Path) -> None:
        kind, iso_path = hit
        with atomic_output(target) as out:
            self._iso.get_file_from_iso_fp(out, **{f"{kind}_path": iso_path})  # type: ignore[attr-defined]

    def close(self) -> None:
        if self._iso is not None:
            self._iso.close()  # type: ignore[attr-defined]


def _is_fm(data: bytes, origin: str) -> bool:
    try:
        return localname(parse_bytes(data, path=origin, what="Microsoft feature manifest")) == "FeatureManifest"
    except InputError:
        return False


def open_ms_packages(ws: Workspace) -> MsPackages | None:
    root = ws.ms_package_root
    if root is None:
        return None
    if not root.exists():
        raise InputError(f"MSPkgRoot {root} does not exist", path=ws.config_path,
                         hint="point <MSPkgRoot> (or MSPKG_ROOT) at a folder of Microsoft cabs or the IoT Core packages .iso")
    if root.is_dir():
        sub = root / _package_subdir(ws.bsparch)
        pkg_dir = sub if sub.is_dir() else root
        fms = [p for p in sorted(root.rglob("*.xml")) if "fm" in p.name.lower() and p.stat().st_size < MAX_FM_BYTES
               and _is_fm(p.read_bytes(), str(p))]
        return MsPackages(root=root, package_dir=pkg_dir, fm_files=fms)
    return _open_iso(ws, root)


def _open_iso(ws: Workspace, path: Path) -> MsPackages:
    import pycdlib
    from pycdlib.pycdlibexception import PyCdlibException

    iso = pycdlib.PyCdlib()
    try:
        iso.open(os.fspath(path))
    except (PyCdlibException, OSError) as e:
        raise FormatError(f"cannot read the ISO: {e}", path=path,
                          hint="MSPkgRoot must be a folder or an ISO 9660/UDF image") from None
    if iso.has_udf():
        kind = "udf"
    elif iso.has_joliet():
        kind = "joliet"
    elif iso.has_rock_ridge():
        kind = "rr"
    else:
        kind = "iso"
    files: dict[str, tuple[str, str]] = {}
    fm_candidates: list[tuple[str, str]] = []
    sub = "/" + str(_package_subdir(ws.bsparch)).lower() + "/"
    has_sub = False
    for dirpath, _dirs, names in iso.walk(**{f"{kind}_path": "/"}):
        for n in names:
            shown = n.split(";")[0] if kind == "iso" else n
            full = f"{dirpath.rstrip('/')}/{n}"
            low = f"{dirpath.rstrip('/')}/{shown}".lower()
            if low.endswith(".cab"):
                if low.startswith(sub):
                    has_sub = True
                files.setdefault(shown.lower(), (kind, full))
            elif low.endswith(".xml") and "fm" in shown.lower():
                fm_candidates.append((shown, full))
    cache = ws.build_dir / "mspkgs"
    cache.mkdir(parents=True, exist_ok=True)
    ms = MsPackages(root=path, package_dir=cache, _iso=iso, _iso_files=files)
    fm_dir = cache / "FMFiles"
    for shown, full in fm_candidates:
        import io
        buf = io.BytesIO()
        iso.get_file_from_iso_fp(buf, **{f"{kind}_path": full})
        data = buf.getvalue()
        if len(data) < MAX_FM_BYTES and _is_fm(data, f"{path}:{full}"):
            target = fm_dir / shown
            with atomic_output(target) as out:
                out.write(data)
            ms.fm_files.append(target)
    del has_sub
    return ms
