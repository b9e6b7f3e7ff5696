#!/usr/bin/env python3
"""Benchmark buildfm: a synthetic FM set of 2,000 packages, signature checks included.

Builds 2,000 tiny packages once (not timed), writes an FM with 20 base packages and 1,980 feature
packages in 100 features, then times `iotbuild buildfm oem` (load and cross-check the FMs, the incremental
package check, signature + catalog + manifest verification of all 2,000 cabs, feature identifier
packages, merged FMs). Target (issue 3): <= 10 ms per package.

    .venv/bin/python scripts/bench_buildfm.py [--packages 2000] [--keep DIR]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
HEAD = '<?xml version="1.0" encoding="utf-8"?>\n'
NS = "http://schemas.microsoft.com/embedded/2004/10/ImageUpdate"


def make_workspace(ws: Path, n: int) -> None:
    shutil.copytree(REPO / "workspace", ws / "workspace", ignore=shutil.ignore_patterns("Certs"))
    pk = ws / "packages"
    base, features = [], []
    for i in range(n):
        d = pk / f"Bench.P{i:04d}"
        d.mkdir(parents=True)
        (d / "payload.txt").write_text(f"package {i}\n" * 20)
        (d / f"Bench.P{i:04d}.wm.xml").write_text(
            HEAD + f'<identity xmlns="urn:Microsoft.CompPlat/ManifestSchema.v1.00" name="P{i:04d}" namespace="Bench" '
            f'owner="$(OEMNAME)" legacyName="$(OEMNAME).Bench.P{i:04d}"><files><file source="payload.txt" '
            f'destinationDir="$(runtime.system32)\\Bench" name="p{i:04d}.txt"/></files></identity>\n')
        entry = f'<PackageFile Path="%PKGBLD_DIR%" Name="%OEM_NAME%.Bench.P{i:04d}.cab"'
        if i < 20:
            base.append(entry + "/>")
        else:
            features.append(entry + f"><FeatureIDs><FeatureID>BENCH_F{i % 100:03d}</FeatureID></FeatureIDs></PackageFile>")
    (pk / "OEMCommonFM.xml").write_text(HEAD + f'<FeatureManifest xmlns="{NS}"><BasePackages>' + "".join(base)
                                        + "</BasePackages><Features><OEM>" + "".join(features)
                                        + "</OEM></Features></FeatureManifest>\n")
    (pk / "OEMFMFileList.xml").write_text(
        HEAD + f'<FMCollectionManifest xmlns="{NS}"><FMs><FM ID="OEMCOMMON" Path="$(FMDirectory)\\OEMCommonFM.xml" '
        'ReleaseType="Production" OwnerName="OEM_NAME" OwnerType="OEM" CPUType="AMD64"/></FMs></FMCollectionManifest>\n')


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--packages", type=int, default=2000)
    ap.add_argument("--keep", type=Path)
    args = ap.parse_args()
    tmp = args.keep or Path(tempfile.mkdtemp(prefix="iotbuild-benchfm-"))
    env = {**os.environ, "SOURCE_DATE_EPOCH": "1700000000"}
    cli = [sys.executable, "-m", "iotbuild"]
    try:
        ws = tmp / "ws"
        if ws.exists():
            shutil.rmtree(ws)
        make_workspace(ws, args.packages)
        t = time.monotonic()
        subprocess.run([*cli, "buildpkg"], cwd=ws, env=env, check=True, capture_output=True)
        t_pkg = time.monotonic() - t
        t = time.monotonic()
        p = subprocess.run([*cli, "buildfm", "oem"], cwd=ws, env=env, capture_output=True, text=True)
        t_fm = time.monotonic() - t
        if p.returncode != 0:
            raise SystemExit(p.stderr)
        n = args.packages
        print(f"setup: buildpkg of {n} packages {t_pkg:.1f} s ({t_pkg / n * 1000:.1f} ms/package, not part of the target)")
        print(f"buildfm oem over {n} packages: {t_fm:.2f} s = {t_fm / n * 1000:.2f} ms per package (target <= 10 ms)")
    finally:
        if args.keep is None:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
