"""buildfm and the feature queries."""

from __future__ import annotations

from invoke import task

from ..errors import InputError

from ..console import emit_json, say
from ..stages import featuremerge
from ..stages.featuremerge.query import feature_index
from ._common import handle_errors, open_workspace


@task(help={"target": "oem, a board (BSP) name such as QEMUx64, or all",
            "json": "print a JSON result on stdout", "workspace": "workspace folder",
            "jobs": "parallel signature checks (default: one per core)"})
@handle_errors
def buildfm(c, target, jobs=0, json=False, workspace=None):
    """FeatureMerger: check and merge feature manifests; write InputFMs, MergedFMs and feature identifier packages."""
    ws = open_workspace(workspace)
    r = featuremerge.buildfm(ws, target, jobs=jobs or None)
    if json:
        emit_json({"ok": True, **r.to_dict()})
    else:
        say(f"buildfm {target}: {len(r.merged_fms)} merged FM(s) in {featuremerge.merged_dir(ws)}, "
            f"{len(r.fips)} feature identifier package(s), {r.packages} package(s) verified ({r.seconds:.1f} s)")


@task(help={"json": "print a JSON result on stdout", "workspace": "workspace folder"})
@handle_errors
def listfeatures(c, json=False, workspace=None):
    """List every feature ID the workspace's (and Microsoft's) feature manifests define."""
    idx = feature_index(open_workspace(workspace))
    rows = sorted((idx.owners[k], idx.spelled[k], refs) for k, refs in idx.features.items())
    if json:
        emit_json({"ok": True, "features": [{"id": fid, "owner": owner, "fm": refs[0].fm.name if refs else None,
                                             "packages": [r.name for r in refs]} for owner, fid, refs in rows]})
        return
    for owner, fid, refs in rows:
        say(f"{owner:9} {fid:32} {refs[0].fm.name if refs else '':22} {', '.join(r.name for r in refs)}")
    say(f"listfeatures: {len(rows)} feature(s) in {len(idx.fms)} feature manifest(s)")


@task(help={"feature": "the feature ID (OEM_X and X are the same OEM feature)",
            "json": "print a JSON result on stdout", "workspace": "workspace folder"})
@handle_errors
def featurepackages(c, feature, json=False, workspace=None):
    """List the packages that make up one feature."""
    idx = feature_index(open_workspace(workspace))
    hit = idx.lookup(feature)
    if hit is None:
        from difflib import get_close_matches
        near = get_close_matches(feature.upper(), list(idx.features), n=3)
        raise InputError(f"feature {feature} is not defined in any feature manifest",
                         hint=f"did you mean {', '.join(idx.spelled[n] for n in near)}?" if near else
                         "invoke listfeatures shows them all")
    fid, refs = hit
    if json:
        emit_json({"ok": True, "feature": fid, "packages": [{"name": r.name, "path": r.location, "fm": str(r.fm),
                                                            "line": r.line} for r in refs]})
        return
    for r in refs:
        say(f"{r.name:48} {r.fm.name}:{r.line}")
    say(f"featurepackages {fid}: {len(refs)} package(s)")
