#!/usr/bin/env python3
"""Benchmark buildpkg against gcab, side by side on the same machine and the same files.

Builds a synthetic workspace of 20 packages holding 200 MiB (10 files of random bytes, 10 of text-like
bytes, 10 MiB each), then times:
  1. `iotbuild buildpkg` from scratch (parse, catalog, MSZIP cab, Authenticode signing; parallel);
  2. `gcab -c -z` packing the same 20 files into 20 cabs, one after another (what the files cost to
     compress with a C implementation, without any signing);
  3. a no-change rebuild of the repository's sample packages.
Prints wall times, the ratio, and peak RSS (largest single process). Targets (issue 2): ratio ≤ 1.0,
peak RSS ≤ 256 MiB, no-change rebuild ≤ 2 s.

    .venv/bin/python scripts/bench_buildpkg.py [--size-mib 200] [--keep DIR]
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
WORDS = ("device image package feature manifest partition registry driver service signature catalog "
         "Windows IoT Core build server factory board layout volume cluster sector chunk block hash").split()

MEASURE = ("import resource, subprocess, sys, time\n"
           "t = time.monotonic(); r = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL)\n"
           "print(time.monotonic() - t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, r.returncode)")


def measure(argv: list[str], cwd: Path, env: dict[str, str] | None = None) -> tuple[float, int]:
    """Wall seconds and peak RSS (KiB, the largest process of the tree) of one command."""
    p = subprocess.run([sys.executable, "-c", MEASURE, *argv], cwd=cwd, capture_output=True, text=True,
                       env={**os.environ, **(env or {})}, timeout=1800)
    seconds, rss, rc = p.stdout.split()
    if int(rc) != 0:
        raise SystemExit(f"{' '.join(argv)} failed: {p.stderr}")
    return float(seconds), int(rss)


def text_like(rng: random.Random, size: int) -> bytes:
    out = bytearray()
    while len(out) < size:
        line = " ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 14)))
        out += f"{rng.randint(0, 99999):05d} {line}.\r\n".encode()
    return bytes(out[:size])


def make_workspace(root: Path, total_mib: int) -> list[Path]:
    shutil.copytree(REPO / "workspace", root / "workspace", ignore=shutil.ignore_patterns("Certs"))
    rng = random.Random(20261123)
    per_file = total_mib * 1024 * 1024 // 20
    files = []
    for i in range(20):
        pkg = root / "packages" / f"Bench.P{i:02d}"
        pkg.mkdir(parents=True)
        data = rng.randbytes(per_file) if i % 2 == 0 else text_like(rng, per_file)
        f = pkg / f"payload{i:02d}.bin"
        f.write_bytes(data)
        files.append(f)
        (pkg / f"Bench.P{i:02d}.wm.xml").write_text(
            '<?xml version="1.0" encoding="utf-8"?>\n'
            f'<identity xmlns="urn:Microsoft.CompPlat/ManifestSchema.v1.00" name="P{i:02d}" namespace="Bench" '
            f'owner="$(OEMNAME)" legacyName="$(OEMNAME).Bench.P{i:02d}">\n'
            '  <onecorePackageInfo targetPartition="MainOS" releaseType="Production" ownerType="OEM"/>\n'
            f'  <files><file source="payload{i:02d}.bin" destinationDir="$(runtime.system32)\\Bench"/></files>\n'
            '</identity>\n')
    return files


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size-mib", type=int, default=200)
    ap.add_argument("--keep", type=Path, help="build in this folder and keep it")
    args = ap.parse_args()
    if shutil.which("gcab") is None:
        raise SystemExit("gcab is needed (scripts/setup.sh --test installs it)")
    iotbuild = [sys.executable, "-m", "iotbuild.cli"]
    env = {"SOURCE_DATE_EPOCH": "1700000000"}

    tmp = args.keep or Path(tempfile.mkdtemp(prefix="iotbuild-bench-"))
    tmp.mkdir(parents=True, exist_ok=True)
    try:
        ws = tmp / "ws"
        if ws.exists():
            shutil.rmtree(ws)
        files = make_workspace(ws, args.size_mib)
        # The test PKI is created once, outside the timed run (RSA key generation is not packaging work).
        subprocess.run([*iotbuild, "buildpkg", "Bench.P00"], cwd=ws, check=True, capture_output=True, env={**os.environ, **env})
        shutil.rmtree(ws / "build")
        t_ours, rss_ours = measure([*iotbuild, "buildpkg"], ws, env)
        out_size = sum(p.stat().st_size for p in (ws / "build/amd64/pkgs").glob("*.cab"))

        gdir = tmp / "gcab"
        gdir.mkdir(exist_ok=True)
        script = "; ".join(f"gcab -c -z -n {gdir}/{f.parent.name}.cab {f}" for f in files)
        t_gcab, rss_gcab = measure(["sh", "-c", script], tmp)
        gcab_size = sum(p.stat().st_size for p in gdir.glob("*.cab"))

        t_nochange, _ = measure([*iotbuild, "buildpkg"], REPO, env)  # warm: first make sure samples are built
        t_nochange, _ = measure([*iotbuild, "buildpkg"], REPO, env)

        mib = args.size_mib
        print(f"input: 20 packages, {mib} MiB (half random, half text-like), {os.cpu_count()} cores")
        print(f"iotbuild buildpkg : {t_ours:7.2f} s  peak RSS {rss_ours / 1024:6.1f} MiB  output {out_size / 2**20:7.1f} MiB")
        print(f"gcab -c -z        : {t_gcab:7.2f} s  peak RSS {rss_gcab / 1024:6.1f} MiB  output {gcab_size / 2**20:7.1f} MiB")
        print(f"ratio buildpkg/gcab: {t_ours / t_gcab:.2f} (target <= 1.0); peak RSS target <= 256 MiB")
        print(f"no-change rebuild of the sample packages: {t_nochange:.2f} s (target <= 2 s)")
    finally:
        if args.keep is None:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
