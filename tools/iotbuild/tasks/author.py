"""Authoring commands named like the kit's (iot-adk-addonkit.md §9): newproduct, newbsp, newpkg, inf2pkg,
addfid, removefid, setversion.

Thin: each parses and defaults its arguments, calls one step of ``iotbuild.stages.author`` and reports what
it returned (warnings, then the summary line, or ``--json``); the step does the work and prints nothing.
"""

from __future__ import annotations

import os
from pathlib import Path

from invoke import task

from ..console import emit_json, say
from ..models.workspace import Workspace, load_workspace
from ..stages import author
from ..stages.author import Outcome, create_new, rel  # noqa: F401  (create_new: re-exported, tests import it here)
from ._common import handle_errors, open_workspace


def _report(ws: Workspace, out: Outcome, summary: str, as_json: bool, **extra: object) -> None:
    """``--json``: the outcome and ``extra``; else each warning, then the summary line."""
    if as_json:
        emit_json({"ok": True, **out.to_dict(ws), **extra})
        return
    for w in out.warnings:
        say(f"warning: {w}")
    say(summary)


def _fm_phrase(ws: Workspace, out: Outcome) -> str:
    return f"; feature {out.feature_id} in {rel(ws, out.feature_fm)}" if out.feature_fm is not None else ""


_COMMON_HELP = {"json": "print a JSON result on stdout",
                "workspace": "workspace folder (default: the current folder or IOTBUILD_WORKSPACE)"}


@task(help={"name": "package name Namespace.Name, e.g. Custom.Settings",
            "partition": "target partition: MainOS (default), EFIESP, UpdateOS, Data or PLAT", **_COMMON_HELP},
      positional=["name"])
@handle_errors
def newpkg(c, name, partition="MainOS", json=False, workspace=None):
    """Create a registry/files package from the kit's template and add its feature to OEMCommonFM.xml."""
    ws = open_workspace(workspace)
    out = author.new_package(ws, name, partition)
    _report(ws, out, f"newpkg: wrote {rel(ws, out.definition)}{_fm_phrase(ws, out)} "
                     f"(build it: invoke buildpkg {name})", json,
            package=name, feature_id=out.feature_id)


@task(help={"inf": "the driver's .inf file (the files it names are copied with it)",
            "name": "package name Namespace.Name (default: Drivers.<inf name>)",
            "bsp": "put the package under bsp/<BSP>/Packages and its feature in <BSP>FM.xml", **_COMMON_HELP},
      positional=["inf"])
@handle_errors
def inf2pkg(c, inf, name=None, bsp=None, json=False, workspace=None):
    """Create a driver package from an INF: the INF and its files, a .wm.xml, and the feature in OEMFM.xml."""
    ws = open_workspace(workspace)
    out = author.inf_to_package(ws, inf, name, bsp)
    copied = len(out.written) - 1
    _report(ws, out, f"inf2pkg: wrote {rel(ws, out.definition)}"
                     + (f" and copied {out.source.name} with {copied - 1} file(s) it names" if copied else "")
                     + _fm_phrase(ws, out)
                     + f" (build it: invoke buildpkg {out.package})", json,
            package=out.package, feature_id=out.feature_id)


@task(help={"bsp": "board support package name, e.g. MyBoard", **_COMMON_HELP}, positional=["bsp"])
@handle_errors
def newbsp(c, bsp, json=False, workspace=None):
    """Create bsp/<BSP>/ with an empty feature manifest, its file list and Test/Retail OEMInput samples."""
    ws = open_workspace(workspace)
    out = author.new_bsp(ws, bsp)
    _report(ws, out, f"newbsp: wrote {', '.join(rel(ws, p) for p in out.written)} "
                     f"(next: invoke newproduct <Product> {bsp})", json, bsp=bsp)


@task(help={"product": "new product name, e.g. SampleB", "bsp": "the board it is for (bsp/<BSP>/OEMInputSamples)",
            **_COMMON_HELP}, positional=["product", "bsp"])
@handle_errors
def newproduct(c, product, bsp, json=False, workspace=None):
    """Create products/<Product>/ from the BSP's OEMInput samples, with <Product>Settings.xml and prov/."""
    ws = open_workspace(workspace)
    out = author.new_product(ws, product, bsp)
    _report(ws, out, f"newproduct: wrote {', '.join(rel(ws, p) for p in out.written)} and "
                     f"{rel(ws, out.folder / 'prov')}/", json, product=product, configs=out.configs)


def _edit_features(action: str, product: str, config: str, fid: str, oem: bool, as_json: bool,
                   workspace: str | None) -> None:
    ws = open_workspace(workspace)
    out = author.edit_feature(ws, "add" if action == "addfid" else "remove", product, config, fid, oem)
    kind = "OEM" if oem else "Microsoft"
    verb, prep, skip = (("added", "to", "already listed in") if action == "addfid"
                        else ("removed", "from", "not listed in"))
    parts = []
    if out.changed:
        parts.append(f"{verb} {kind} feature {fid} {prep} " + ", ".join(rel(ws, p) for p in out.changed))
    if out.unchanged:
        parts.append(f"{skip} " + ", ".join(rel(ws, p) for p in out.unchanged) + " (unchanged)")
    _report(ws, out, f"{action}: " + "; ".join(parts), as_json, feature=fid, oem=oem,
            unchanged=[rel(ws, p) for p in out.unchanged])


_FID_HELP = {"product": "product name (products/<Product>)", "config": "Test, Retail or All",
             "fid": "feature ID, e.g. IOT_SSH or CUSTOM_CMD",
             "oem": "an OEM feature (Features/OEM); without it a Microsoft feature", **_COMMON_HELP}


@task(help=_FID_HELP, positional=["product", "config", "fid"])
@handle_errors
def addfid(c, product, config, fid, oem=False, json=False, workspace=None):
    """Add a feature ID to a product's Test/Retail/All OEMInput.xml (duplicates are skipped)."""
    _edit_features("addfid", product, config, fid, oem, json, workspace)


@task(help=_FID_HELP, positional=["product", "config", "fid"])
@handle_errors
def removefid(c, product, config, fid, oem=False, json=False, workspace=None):
    """Remove a feature ID from a product's Test/Retail/All OEMInput.xml."""
    _edit_features("removefid", product, config, fid, oem, json, workspace)


@task(help={"version": "the new 4-part package version a.b.c.d (each 0-65535)", **_COMMON_HELP},
      positional=["version"])
@handle_errors
def setversion(c, version, json=False, workspace=None):
    """Set the BSP/package version of the current architecture in IoTWorkspace.xml (Env/BSPVersion)."""
    version = author.normalize_version(version)
    # The file's current version is not checked: setversion is how a bad one gets fixed.
    ws = load_workspace(Path(workspace) if workspace else None, env={**os.environ, "BSP_VERSION": version})
    out = author.set_version(ws, version)
    old, arch = out.old_version, ws.arch.value
    where = f"{rel(ws, ws.config_path)} ({arch})"
    summary = (f"setversion: {where} already has BSPVersion {version}; nothing changed" if old == version else
               f"setversion: BSPVersion {old or '(none)'} → {version} in {where}; the next buildpkg rebuilds "
               "every package")
    _report(ws, out, summary, json, arch=arch, old=old, version=version)
