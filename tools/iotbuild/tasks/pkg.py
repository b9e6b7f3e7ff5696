"""buildpkg and verifycab."""

from __future__ import annotations

import time
from pathlib import Path

from invoke import Exit, task

from ..console import emit_json, progress, say
from ..stages import pkggen
from ._common import handle_errors, open_workspace
from ._optional_positional import optional_positional


optional_positional("buildpkg", "target", "All")


@task(help={
    "target": "All (default), Clean, a package folder name (Registry.Version), a .wm.xml path or a folder",
    "product": "value of $(PROD) (default: Default)",
    "jobs": "parallel package builds (default: one per core)",
    "force": "rebuild even when nothing changed",
    "why": "print why each package was (or was not) rebuilt",
    "json": "print a JSON result on stdout",
    "workspace": "workspace folder (default: the current folder or IOTBUILD_WORKSPACE)",
}, positional=["target"])
@handle_errors
def buildpkg(c, target=None, product="Default", jobs=0, force=False, why=False, json=False, workspace=None):
    """pkggen: build signed SPKG cabs from .wm.xml package definitions into build/<arch>/pkgs."""
    ws = open_workspace(workspace)
    if target and target.lower() == "clean":
        removed = pkggen.clean(ws)
        if json:
            emit_json({"ok": True, "removed": [str(p) for p in removed]})
        else:
            say(f"buildpkg clean: removed {', '.join(map(str, removed)) or 'nothing'}")
        return
    t0 = time.monotonic()
    paths = pkggen.select(ws, target)
    with progress(len(paths), "buildpkg", enabled=not json) as tick:
        def on_result(r):
            tick(r.name)
            if why and not json:
                say(f"{r.name}: {r.status}" + (" — " + "; ".join(r.reasons) if r.reasons else ""))
        results = pkggen.build_packages(ws, paths, product=product, jobs=jobs or None, force=force,
                                        on_result=on_result)
    failed = [r for r in results if r.status == "failed"]
    built = sum(r.status == "built" for r in results)
    summary = (f"buildpkg: {len(results)} package(s), {built} built, {len(results) - built - len(failed)} up to date"
               + (f", {len(failed)} FAILED" if failed else "") + f" → {ws.pkg_dir} ({time.monotonic() - t0:.1f} s)")
    if json:
        emit_json({"ok": not failed, "packages": [r.to_dict() for r in results], "output_dir": str(ws.pkg_dir)})
    else:
        for r in failed:
            say(f"error: {r.name}: {r.error}\n  log: {ws.log_dir / (r.name + '.log')}")
        say(summary)
    if failed:
        raise Exit(code=1)


@task(help={"cab": "the package cab to check", "json": "print a JSON result on stdout",
            "ca": "extra trusted root certificate (PEM); the workspace's test root and retail roots are trusted",
            "workspace": "workspace folder (for its trusted roots)"})
@handle_errors
def verifycab(c, cab, ca=None, json=False, workspace=None):
    """Check a package: cab signature, catalog signature, every file against the catalog, manifest vs contents."""
    from ..stages.pkggen.verify import trusted_roots_for, verify_package
    roots = trusted_roots_for(workspace, extra=[Path(ca)] if ca else [])
    result = verify_package(Path(cab), trusted_roots=roots)
    if json:
        emit_json({"ok": True, **result.to_dict()})
    else:
        say(result.summary())


@task(help={"workspace": "workspace folder"})
@handle_errors
def preparesamples(c, workspace=None):
    """Generate the sample workspace's binary inputs: the sample driver's placeholder .sys and the QEMU board's
    boot chain (kernel, initramfs, systemd-boot from the Debian packages scripts/setup.sh fetched)."""
    from .. import samples
    ws = open_workspace(workspace)
    written = samples.prepare(ws.root)
    say(f"preparesamples: {len(written)} file(s) written" + (": " + ", ".join(map(str, written)) if written else ""))
