"""What ``buildimage`` brings up to date before it resolves anything (the kit's createimage steps 3–9).

0. the sample workspace's generated inputs (``iotbuild.samples``: the placeholder driver, the QEMU board's
   boot chain from the Debian packages set-up fetched), when the workspace has those packages;
1. the product's provisioning package (``products/<P>/prov/customizations.xml`` → ``ppkgs/<P>Prov.ppkg``),
   replaced only when its bytes change, so that the packages wrapping it stay up to date;
2. the product's own packages (``products/<P>/Packages``, built with ``PROD=<P>``: Provisioning.Auto);
3. every workspace and board package (``buildpkg All``);
4. the merged feature manifests and feature identifier packages (``buildfm all``).
Each step is incremental: with nothing changed this costs about a second.
"""

from __future__ import annotations

import filecmp
import shutil
import tempfile
from pathlib import Path

from ...errors import InputError, InputErrors
from ...models.workspace import Workspace


def _build(ws: Workspace, paths: list[Path], product: str, jobs: int | None) -> None:
    from ..pkggen import build_packages
    failed = [r for r in build_packages(ws, paths, product=product, jobs=jobs) if r.status == "failed"]
    if failed:
        raise InputErrors([InputError(f"package {r.name} failed to build: {r.error}", path=r.definition,
                                      hint=f"see {ws.log_dir / (r.name + '.log')}") for r in failed])


def provisioning_package(ws: Workspace, product: str) -> Path | None:
    from ..provisioning import build_ppkg
    answer = ws.products_dir / product / "prov" / "customizations.xml"
    if not answer.is_file():
        return None
    name = f"{product}Prov"
    ws.ppkg_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=ws.ppkg_dir))
    try:
        built = build_ppkg(ws, answer, name=name, out_dir=tmp)
        for src in (built.cat, built.ppkg):  # the catalog first: a .ppkg never sits beside a stale catalog
            dest = ws.ppkg_dir / src.name
            if not (dest.is_file() and filecmp.cmp(src, dest, shallow=False)):
                src.replace(dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return ws.ppkg_dir / f"{name}.ppkg"


def prepare_inputs(ws: Workspace, product: str, *, jobs: int | None = None) -> None:
    from ..featuremerge import buildfm
    from ... import samples
    from ..pkggen import select
    samples.prepare(ws.root)  # the sample board's generated inputs (.sys, boot chain); nothing elsewhere
    provisioning_package(ws, product)
    product_pkgs = ws.products_dir / product / "Packages"
    if product_pkgs.is_dir() and any(product_pkgs.rglob("*.wm.xml")):
        _build(ws, select(ws, str(product_pkgs)), product, jobs)
    _build(ws, select(ws, None), "Default", jobs)
    buildfm(ws, "all", jobs=jobs)
