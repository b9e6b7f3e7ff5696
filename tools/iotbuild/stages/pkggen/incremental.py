"""Skip a package whose inputs are unchanged, and say why one was rebuilt.

The key covers what decides the bytes of a cab: the tool version, the definition and every file it reads
(size and modification time, like make; content hashes would make a no-change run of big packages slow),
the build variables, the version, the signing identity and SOURCE_DATE_EPOCH. The output's own size and
time are recorded too, so a deleted or replaced cab is rebuilt.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path

from ... import __version__
from ...outputs import write_atomic

STATE_DIR = ".state"


def _stamp(path: Path) -> list[int] | None:
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return [st.st_size, st.st_mtime_ns]


def fingerprint(*, inputs: tuple[Path, ...], variables: Mapping[str, str], version: str, signer_id: str,
                epoch: int, settings: Mapping[str, object]) -> dict[str, object]:
    return {
        "tool": __version__,
        "inputs": {str(p): _stamp(p) for p in inputs},
        "variables": dict(sorted(variables.items())),
        "version": version,
        "signer": signer_id,
        "epoch": epoch,
        "settings": dict(settings),
    }


def state_path(out_dir: Path, name: str) -> Path:
    return out_dir / STATE_DIR / f"{name}.json"


def why_rebuild(out_dir: Path, name: str, cab: Path, current: dict[str, object]) -> list[str]:
    """Empty when the cab is up to date; otherwise the reasons, in words."""
    sp = state_path(out_dir, name)
    try:
        old = json.loads(sp.read_text())
    except (FileNotFoundError, ValueError):
        return ["no earlier build recorded"]
    if old.get("output") != _stamp(cab):
        return ["the cab is missing or was changed since it was built"]
    prev = old.get("key", {})
    reasons: list[str] = []
    if prev.get("tool") != current["tool"]:
        reasons.append(f"iotbuild version changed ({prev.get('tool')} → {current['tool']})")
    pin, cin = prev.get("inputs", {}), current["inputs"]
    for p in sorted(set(pin) | set(cin)):  # type: ignore[arg-type]
        if p not in pin:
            reasons.append(f"new input {p}")
        elif p not in cin:  # type: ignore[operator]
            reasons.append(f"input no longer used: {p}")
        elif pin[p] != cin[p]:  # type: ignore[index]
            reasons.append(f"input changed: {p}")
    pv, cv = prev.get("variables", {}), current["variables"]
    changed = sorted(k for k in set(pv) | set(cv) if pv.get(k) != cv.get(k))  # type: ignore[union-attr]
    if changed:
        reasons.append("variables changed: " + ", ".join(changed))
    for field, words in (("version", "package version"), ("signer", "signing identity"),
                         ("epoch", "SOURCE_DATE_EPOCH"), ("settings", "build settings")):
        if prev.get(field) != current[field]:
            reasons.append(f"{words} changed")
    return reasons


def record(out_dir: Path, name: str, cab: Path, key: dict[str, object]) -> None:
    write_atomic(state_path(out_dir, name), json.dumps({"key": key, "output": _stamp(cab)}, indent=1).encode())


def forget(out_dir: Path, name: str) -> None:
    try:
        os.unlink(state_path(out_dir, name))
    except FileNotFoundError:
        pass
