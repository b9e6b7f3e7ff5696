#!/usr/bin/env python3
"""Benchmark the provisioning engine simulator (issue 5): one multivariant package, many devices.

Generates an answer file with 50 Variants × 2 TargetStates × 30 settings = 3,000 setting × TargetState entries
(checked by compiling it: RunTime.xml gets exactly that many Variant entries), with every matching type
(straight, Pattern:, Range:, !Range:) and P0/P1/unknown conditions, and 1,000 random devices (seeded). Times
``Simulator.resolve`` per device, after one parse and one preparation, and prints mean / p95 / max.
Target: ≤ 5 ms per device (mean). Exit status 1 if the mean is over the target (unless --no-fail).

    .venv/bin/python scripts/bench_ppkg.py [--devices 1000] [--variants 50] [--states 2] [--settings 30]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

from iotbuild.models.customizations import parse_customizations
from iotbuild.stages.provisioning import compile_package
from iotbuild.stages.provisioning.resolve import Rules, Simulator

REGIONS = ("US", "DE", "FR", "NL", "JP", "BR", "IN", "GB")
LANGS = ("en", "de", "fr", "nl", "ja", "pt")
CPUS = ("Intel Celeron N4000", "Intel Core i5-8250U", "AMD Ryzen 5 3500U", "Qualcomm Snapdragon 8cx")


def state_conditions(rng: random.Random, v: int, s: int) -> list[tuple[str, str]]:
    kind = (v + s) % 5
    if kind == 0:
        return [("MCC", str(rng.choice((310, 311, 262, 208)))), ("MNC", f"{rng.randrange(1, 20):02d}")]
    if kind == 1:
        low = rng.randrange(8944470000000000000, 8944479000000000000)
        return [("ICCID", f"Range:{low}, {low + 10 ** 15}")]
    if kind == 2:
        return [("Region", rng.choice(REGIONS)), ("Lang", rng.choice(LANGS))]
    if kind == 3:
        return [("ProcessorName", f"Pattern:.*{rng.choice(('Celeron', 'Core', 'Ryzen'))}.*"),
                ("Architecture", "AMD64")]
    return [("MNC", f"!Range:{rng.randrange(1, 10)}, {rng.randrange(10, 20)}"), ("Flavor", rng.choice("abc"))]


def answer_file(variants: int, states: int, settings: int, seed: int = 1) -> bytes:
    rng = random.Random(seed)
    targets, bodies = [], []
    for v in range(variants):
        sts = "".join("<TargetState>" + "".join(f'<Condition Name="{n}" Value="{val}"/>'
                                                 for n, val in state_conditions(rng, v, s)) + "</TargetState>"
                      for s in range(states))
        targets.append(f'<Target Id="T{v}">{sts}</Target>')
        users = "".join(f'<User UserName="u{k}"><Password>v{v}-{k}</Password></User>' for k in range(settings))
        bodies.append(f'<Variant><TargetRefs><TargetRef Id="T{v}"/></TargetRefs><Settings><Accounts><Users>{users}'
                      "</Users></Accounts></Settings></Variant>")
    common = "".join(f'<User UserName="u{k}"><Password>common-{k}</Password></User>' for k in range(settings))
    return f"""<?xml version="1.0" encoding="utf-8"?>
<WindowsCustomizations>
  <PackageConfig xmlns="urn:schemas-Microsoft-com:Windows-ICD-Package-Config.v1.0">
    <ID>{{0b9c4d52-7a47-4c1e-9a57-4b1f4f0c3e11}}</ID><Name>Bench</Name><Version>1.0</Version>
    <OwnerType>MobileOperator</OwnerType><Rank>3</Rank>
  </PackageConfig>
  <Settings xmlns="urn:schemas-microsoft-com:windows-provisioning"><Customizations>
    <Common><Accounts><Users>{common}</Users></Accounts></Common>
    <Targets>{''.join(targets)}</Targets>
    {''.join(bodies)}
  </Customizations></Settings>
</WindowsCustomizations>
""".encode()


def device(rng: random.Random) -> dict[str, str]:
    return {"MCC": str(rng.choice((310, 311, 262, 208))), "MNC": f"{rng.randrange(1, 20):02d}",
            "ICCID": str(rng.randrange(8944470000000000000, 8944479999999999999)), "Region": rng.choice(REGIONS),
            "Lang": rng.choice(LANGS), "ProcessorName": rng.choice(CPUS),
            "Architecture": rng.choice(("AMD64", "ARM64")), "Flavor": rng.choice("abc")}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--devices", type=int, default=1000)
    ap.add_argument("--variants", type=int, default=50)
    ap.add_argument("--states", type=int, default=2)
    ap.add_argument("--settings", type=int, default=30)
    ap.add_argument("--rules", default="current", choices=[r.value for r in Rules])
    ap.add_argument("--target-ms", type=float, default=5.0)
    ap.add_argument("--no-fail", action="store_true", help="exit 0 even when the target is missed")
    args = ap.parse_args()

    data = answer_file(args.variants, args.states, args.settings)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "customizations.xml"
        path.write_bytes(data)
        t0 = time.perf_counter()
        cust = parse_customizations(data, path=path)
        t_parse = time.perf_counter() - t0
        compiled = compile_package(cust)
    variant_entries = sum(1 for e in compiled.entries if e.conditions)
    t0 = time.perf_counter()
    sim = Simulator([cust], rules=Rules(args.rules))
    t_prepare = time.perf_counter() - t0

    rng = random.Random(42)
    devices = [device(rng) for _ in range(args.devices)]
    times, matched = [], 0
    for facts in devices:
        t0 = time.perf_counter()
        result = sim.resolve(facts)
        times.append((time.perf_counter() - t0) * 1000)
        matched += len(result.matched_states)
    times.sort()
    mean, p95 = statistics.fmean(times), times[int(len(times) * 0.95) - 1]
    print(f"package: {variant_entries} setting × TargetState entries ({args.variants} variants × {args.states} "
          f"states × {args.settings} settings), {len(compiled.entries) - variant_entries} Common entries; "
          f"parse {t_parse * 1000:.0f} ms, prepare {t_prepare * 1000:.0f} ms")
    print(f"devices: {len(devices)}, {matched / len(devices):.1f} TargetStates matched per device on average")
    print(f"resolve per device: mean {mean:.3f} ms, p95 {p95:.3f} ms, max {times[-1]:.3f} ms "
          f"(target ≤ {args.target_ms:g} ms mean: {'OK' if mean <= args.target_ms else 'MISSED'})")
    return 0 if mean <= args.target_ms or args.no_fail else 1


if __name__ == "__main__":
    sys.exit(main())
