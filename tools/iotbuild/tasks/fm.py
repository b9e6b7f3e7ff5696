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


@task(help={"product": "product folder name under products/", "config": "Test or Retail",
            "json": "print a JSON result on stdout", "workspace": "workspace folder"})
@handle_errors
def checkfeatures(c, product, config, json=False, workspace=None):
    """Check that every feature, SOC and Device of a product's OEMInput is defined by its feature manifests."""
    from ..errors import InputErrors
    from ..stages.resolve import check_features, load_product
    ws = open_workspace(workspace)
    oi, fms, idx = load_product(ws, product, config)
    issues = check_features(oi, idx, fms)
    if issues:
        raise InputErrors(issues)
    feats = [f.id for f in (*oi.oem_features, *oi.microsoft_features)]
    if json:
        emit_json({"ok": True, "oeminput": str(oi.path), "features": feats, "fms": [str(f.path) for f in fms]})
    else:
        say(f"checkfeatures {product} {config}: {len(feats)} feature(s), SOC {oi.soc} and Device {oi.device} "
            f"are defined by {len(fms)} feature manifest(s)")


@task(help={"product": "product folder name under products/", "config": "Test or Retail",
            "json": "print a JSON result on stdout", "workspace": "workspace folder"})
@handle_errors
def checkpackages(c, product, config, json=False, workspace=None):
    """Resolve a product's packages and check that each exists and verifies (signature, catalog, manifest)."""
    from pathlib import Path

    from ..errors import InputError, InputErrors, IotbuildError
    from ..stages.pkggen.verify import trusted_roots_for, verify_package
    from ..stages.resolve import resolve
    ws = open_workspace(workspace)
    res = resolve(ws, product, config)
    roots = trusted_roots_for(str(ws.root))
    issues, rows = [], []
    for ref in res.packages:
        p = Path(ref.location)
        if not p.is_file():
            issues.append(InputError(f"package {ref.name} is missing ({p})", path=ref.fm, line=ref.line,
                                     hint="run invoke buildpkg and invoke buildfm all; a product's own packages are built "
                                          "by invoke buildimage (or invoke buildppkg <P>, then invoke buildpkg "
                                          "<package> --product <P>)"))
            continue
        try:
            v = verify_package(p, trusted_roots=roots)
        except IotbuildError as e:
            issues.append(InputError(f"package {ref.name} does not verify: {e}", path=ref.fm, line=ref.line,
                                     hint="rebuild it (invoke buildpkg --force)"))
            continue
        rows.append({"name": ref.name, "why": res.reasons[ref.name.lower()], "release_type": v.release_type,
                     "test_only": v.test_only})
    if issues:
        raise InputErrors(issues)
    if json:
        emit_json({"ok": True, **res.to_dict(), "checked": rows})
    else:
        for r in rows:
            say(f"{r['name']:56} {r['why']}" + ("  [TEST ONLY signature]" if r["test_only"] else ""))
        say(f"checkpackages {product} {config}: {len(rows)} package(s) present and verified")
