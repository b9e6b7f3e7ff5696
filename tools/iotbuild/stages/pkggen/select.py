"""Which ``.wm.xml`` files a ``buildpkg`` argument means (iot-adk-addonkit.md §3.2)."""

from __future__ import annotations

from pathlib import Path

from ...errors import InputError
from ...models.workspace import Workspace

SUFFIX = ".wm.xml"


def _find(root: Path) -> list[Path]:
    if not root.is_dir():
        return []
    return sorted(p for p in root.rglob("*") if p.is_file() and p.name.lower().endswith(SUFFIX))


def select(ws: Workspace, target: str | None) -> list[Path]:
    """``None``/``All``: every definition under the package roots; a ``.wm.xml`` path; a folder; or ``Ns.Name``."""
    if target is None or target.lower() == "all":
        found = [p for r in ws.package_roots for p in _find(r)]
        if not found:
            raise InputError("no *.wm.xml package definitions found", path=ws.root,
                             hint="add packages under " + ", ".join(str(r) for r in ws.package_roots))
        return found
    p = Path(target)
    candidates = [p] if p.is_absolute() else [Path.cwd() / p, ws.root / p]
    for c in candidates:
        if c.is_file():
            if not c.name.lower().endswith(SUFFIX):
                if c.name.lower().endswith(".pkg.xml"):
                    return [c.resolve()]  # refused with a conversion hint by the model
                raise InputError(f"{target} is not a .wm.xml file", path=c, hint="name a *.wm.xml file")
            return [c.resolve()]
        if c.is_dir():
            found = _find(c)
            if not found:
                raise InputError(f"no *.wm.xml in folder {c}", path=c)
            return found
    # Ns.Name: a folder of that name under the search roots (recursive, as New-IoTCabPackage)
    matches = [d for r in ws.search_roots if r.is_dir() for d in sorted(r.rglob(target)) if d.is_dir()]
    for d in matches:
        found = _find(d)
        if found:
            return found
    raise InputError(f"no package named {target!r}", hint="give a package folder name such as Registry.Version, "
                     "a path to a .wm.xml, a folder, All or Clean")
