#!/usr/bin/env python3
"""Benchmark the image step (issue 4) and the smoke boot (issue 6).

1. FFU write of a 2 GiB GPT disk with about 600 MiB used (half random, half text-like data spread over three
   partitions), against ``sha256sum`` of the same raw disk, run alternately in the same run (3 rounds, medians).
   Target: ratio <= 2.0.
2. Peak RSS of the FFU writer (a child process, ``ru_maxrss``) for a 4 GiB disk. Target: <= 256 MiB.
3. ``buildimage SampleA Test`` in a fresh copy of the sample workspace: clean build time (printed), then a
   no-change rebuild. Target: <= 3 s.
4. ``smoketest SampleA Test``: boot-to-marker time under TCG. Target: <= 30 s. (``--no-boot`` skips it.)

    .venv/bin/python scripts/bench_buildimage.py [--no-boot] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
MIB = 1 << 20

WRITER = r"""
import datetime as dt, json, resource, sys, time
from pathlib import Path
from iotbuild.formats.ffu import FfuLayoutInfo, write_ffu
from iotbuild.formats.gpt import read_gpt
from iotbuild.signing import SigningConfig, SigningMode, load_signer
disk, out, certs = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
now = dt.datetime.now(dt.timezone.utc)
signer = load_signer(SigningConfig(SigningMode.TEST, certs), oem_name="Bench", now=now)
with open(disk, "rb") as f:
    gpt = read_gpt(f)
info = FfuLayoutInfo.from_gpt(gpt, platform_ids=["*"])
t0 = time.perf_counter()
with open(out, "wb") as o, open(disk, "rb") as d:
    write_ffu(o, d, disk_size=disk.stat().st_size, sector_size=512, layout_info=info, signer=signer,
              signing_time=dt.datetime.fromtimestamp(1700000000, dt.timezone.utc))
secs = time.perf_counter() - t0
print(json.dumps({"seconds": secs, "maxrss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""


def make_disk(path: Path, size: int, used: int) -> None:
    """A sparse GPT disk: EFIESP 64 MiB, MainOS 1 GiB, Data the rest; ``used`` bytes written across them."""
    from iotbuild.formats.gpt import BASIC_DATA_TYPE, ESP_TYPE, GptPartition, derive_guid, layout_for, write_gpt
    sectors = size // 512
    esp = (2048, 2048 + 131072 - 1)
    main = (esp[1] + 1, esp[1] + (1 << 30) // 512)
    data = (main[1] + 1, sectors - 34)
    parts = [GptPartition(n, t, a, b, derive_guid("Bench", n)) for n, t, (a, b) in
             (("EFIESP", ESP_TYPE, esp), ("MainOS", BASIC_DATA_TYPE, main), ("Data", BASIC_DATA_TYPE, data))]
    layout = layout_for(derive_guid("Bench"), 512, sectors, parts)
    text = (b"The quick brown fox jumps over the lazy dog; IoT Core bench line %08d\n" * 1)
    with open(path, "wb") as f:
        f.truncate(size)
        plan = [(esp[0] * 512, 40 * MIB), (main[0] * 512, used * 2 // 3), (data[0] * 512, used - 40 * MIB - used * 2 // 3)]
        rnd = open("/dev/urandom", "rb")
        for start, length in plan:
            at, n = start, 0
            while n < length:
                chunk = rnd.read(MIB) if (n // MIB) % 2 == 0 else b"".join(text % i for i in range(MIB // len(text % 0) + 1))[:MIB]
                os.pwrite(f.fileno(), chunk, at)
                at += MIB
                n += MIB
        write_gpt(f, layout)


def run_writer(disk: Path, out: Path, certs: Path) -> dict:
    p = subprocess.run([sys.executable, "-c", WRITER, str(disk), str(out), str(certs)], check=True,
                       capture_output=True, text=True)
    return json.loads(p.stdout.strip().splitlines()[-1])


def sha256sum(disk: Path) -> float:
    t0 = time.perf_counter()
    subprocess.run(["sha256sum", str(disk)], check=True, capture_output=True)
    return time.perf_counter() - t0


def cli(ws: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "SOURCE_DATE_EPOCH": "1700000000"}
    return subprocess.run([sys.executable, "-m", "iotbuild", "--workspace", str(ws), *args], check=True,
                          capture_output=True, text=True, env=env)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--no-boot", action="store_true")
    ap.add_argument("--keep", type=Path)
    args = ap.parse_args()
    tmp = args.keep or Path(tempfile.mkdtemp(prefix="iotbuild-benchimg-"))
    tmp.mkdir(parents=True, exist_ok=True)
    try:
        from iotbuild.signing import ensure_test_pki
        import datetime as dt
        certs = tmp / "certs"
        ensure_test_pki(certs, now=dt.datetime.now(dt.timezone.utc), oem_name="Bench")

        disk = tmp / "disk2g.raw"
        make_disk(disk, 2 << 30, 600 * MIB)
        ffu_t, sha_t, rss = [], [], []
        for _ in range(3):
            r = run_writer(disk, tmp / "out.ffu", certs)
            ffu_t.append(r["seconds"])
            rss.append(r["maxrss_kib"])
            sha_t.append(sha256sum(disk))
        ffu_size = (tmp / "out.ffu").stat().st_size
        ratio = statistics.median(ffu_t) / statistics.median(sha_t)
        print(f"FFU write, 2 GiB disk / 600 MiB used: {statistics.median(ffu_t):.2f} s "
              f"(FFU {ffu_size / MIB:.0f} MiB) vs sha256sum {statistics.median(sha_t):.2f} s "
              f"→ ratio {ratio:.2f} (target ≤ 2.0); peak RSS {max(rss) / 1024:.0f} MiB")
        disk.unlink()
        (tmp / "out.ffu").unlink()

        disk4 = tmp / "disk4g.raw"
        make_disk(disk4, 4 << 30, 600 * MIB)
        r = run_writer(disk4, tmp / "out4.ffu", certs)
        print(f"FFU write, 4 GiB disk: {r['seconds']:.2f} s, peak RSS {r['maxrss_kib'] / 1024:.0f} MiB (target ≤ 256)")
        disk4.unlink()
        (tmp / "out4.ffu").unlink()

        ws = tmp / "ws"
        for d in ("bsp", "packages", "products", "workspace"):
            shutil.copytree(REPO / d, ws / d, ignore=shutil.ignore_patterns("Certs", "prepared", "*.sys"))
        from iotbuild import samples
        samples.prepare(ws)
        t0 = time.perf_counter()
        cli(ws, "buildimage", "SampleA", "Test")
        clean = time.perf_counter() - t0
        t0 = time.perf_counter()
        out = cli(ws, "buildimage", "SampleA", "Test").stderr.strip()
        again = time.perf_counter() - t0
        assert "up to date" in out, out
        print(f"buildimage SampleA Test: clean build {clean:.1f} s (packages, ppkg, FMs and image), "
              f"no-change rebuild {again:.2f} s (target ≤ 3 s)")
        if not args.no_boot:
            p = subprocess.run([sys.executable, "-m", "iotbuild", "--workspace", str(ws), "smoketest", "SampleA",
                                "Test", "--json"], capture_output=True, text=True)
            res = json.loads(p.stdout)
            print(f"smoketest SampleA Test: {res.get('verdict')}, marker after {res.get('marker_seconds')} s "
                  f"(QEMU {res.get('accel')}; whole run {res.get('seconds')} s; target ≤ 30 s)")
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
