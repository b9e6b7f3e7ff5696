"""Read every FM of a ``buildfm`` target and check them against each other, before anything is written."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ...errors import InputError, InputErrors
from ...models.featuremanifest import (FeatureManifest, FMFileList, FMListEntry, PackageRef, parse_feature_manifest,
                                       parse_fm_list)
from ...models.wmxml import Partition
from .sources import FMSet

PARTITIONS = {p.value.lower(): p.value for p in Partition}


@dataclass(frozen=True)
class LoadedFM:
    entry: FMListEntry
    fm: FeatureManifest
    fmset: FMSet


@dataclass(frozen=True)
class LoadedSet:
    fmset: FMSet
    fm_list: FMFileList
    fms: tuple[LoadedFM, ...]


def load(sets: list[FMSet], tokens: dict[str, str], owner: str) -> list[LoadedSet]:
    issues: list[InputError] = []
    out: list[LoadedSet] = []
    for s in sets:
        try:
            # $(FMDirectory) is the InputFMs folder in the kit; FM names are looked up among the set's sources.
            lst = parse_fm_list(s.list_path, fm_directory=s.list_path.parent, owner_name=owner, check_exists=False)
        except InputErrors as e:
            issues.extend(e.errors)
            continue
        except InputError as e:
            issues.append(e)
            continue
        fms: list[LoadedFM] = []
        for entry in lst.entries:
            src = s.fm_files.get(entry.path.name.lower())
            if src is None:
                issues.append(InputError(f"FM {entry.id}: {entry.path.name} was not found", path=s.list_path,
                                         line=entry.line, hint=f"create {entry.path.name} next to {s.list_path.name} "
                                         "or fix the Path of this <FM>"))
                continue
            try:
                fms.append(LoadedFM(entry, parse_feature_manifest(src, tokens), s))
            except InputErrors as e:
                issues.extend(e.errors)
            except InputError as e:
                issues.append(e)
        out.append(LoadedSet(s, lst, tuple(fms)))
    if issues:
        raise InputErrors(issues)
    issues.extend(cross_check([f for ls in out for f in ls.fms]))
    if issues:
        raise InputErrors(issues)
    return out


def partition_of(ref: PackageRef) -> str:
    return PARTITIONS.get((ref.partition or "MainOS").lower(), ref.partition or "MainOS")


def cross_check(fms: list[LoadedFM]) -> list[InputError]:
    """Contradicting claims on one package, a FeatureID defined by two FMs, unknown partitions."""
    issues: list[InputError] = []
    claims: dict[str, PackageRef] = {}
    feature_home: dict[str, PackageRef] = {}
    for lf in fms:
        for ref in lf.fm.packages:
            if (ref.partition or "MainOS").lower() not in PARTITIONS:
                issues.append(InputError(f"Partition={ref.partition!r} of {ref.name} is not a known partition",
                                         path=ref.fm, line=ref.line, hint="use " + ", ".join(PARTITIONS.values())))
            key = ref.name.lower()
            first = claims.get(key)
            if first is None:
                claims[key] = ref
            else:
                diffs = [what for what, a, b in (
                    ("Partition", partition_of(first), partition_of(ref)),
                    ("Language", str(first.language), str(ref.language)),
                    ("Resolution", str(first.resolution), str(ref.resolution)),
                    ("CPUType", (first.cpu_type or "").upper(), (ref.cpu_type or "").upper()),
                    ("Path", first.directory, ref.directory)) if a != b]
                if diffs:
                    issues.append(InputError(
                        f"{ref.name} is also listed at {first.where()} with a different {', '.join(diffs)}",
                        path=ref.fm, line=ref.line, hint="list the package once, or give both entries the same attributes"))
            if ref.section == "Features/OEM":
                for fid in ref.feature_ids:
                    home = feature_home.get(fid.upper())
                    if home is None:
                        feature_home[fid.upper()] = ref
                    elif home.fm != ref.fm:
                        issues.append(InputError(
                            f"FeatureID {fid} is already defined by {home.fm.name} (line {home.line})",
                            path=ref.fm, line=ref.line, hint="rename one of the two features; a feature belongs to one FM"))
    return issues


def all_refs(loaded: list[LoadedSet]) -> list[tuple[LoadedFM, PackageRef]]:
    return [(lf, ref) for ls in loaded for lf in ls.fms for ref in lf.fm.packages]


def unique_by_name(loaded: list[LoadedSet]) -> dict[str, tuple[LoadedFM, PackageRef]]:
    out: dict[str, tuple[LoadedFM, PackageRef]] = {}
    for lf, ref in all_refs(loaded):
        out.setdefault(ref.name.lower(), (lf, ref))
    return out


def fm_path(lf: LoadedFM) -> Path:
    return lf.fm.path
