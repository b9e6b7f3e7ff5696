"""Engine simulator: which value does a device end up with, from which package, section and TargetState?

Every rule below is the one provisioning-ppkg.md states, with the section it comes from; where the reference
says a rule is unknown, the choice made here is named and selectable.

Matching (§3.1, §3.2):
* condition names are case-insensitive (Microsoft writes ``Mcc`` and ``MCC`` in one package);
* a straight match compares strings exactly (values case-sensitive, leading zeros kept: ``MNC="01"``);
* ``Pattern:`` is an anchored, case-sensitive full match; ``Range:low,high`` an inclusive integer range
  (arbitrary precision: ICCIDs have 19–20 digits); a fact that is not an integer is outside every range;
* ``!Range:`` is undocumented: ``--not-range negate`` (default) reads it as *outside* the range — the doc's
  example pairs it with a plain ``Range:``, which only makes sense if ``!`` negates —, ``--not-range range``
  as a plain range (the doc's table would then be right and the ``!`` meaningless);
* a condition whose fact the device does not have is false; ``uiname``/``uiorder`` are profile display
  attributes, not device conditions, and always hold.

Logic (§3.3): a TargetState holds when all its conditions hold (AND); a Target when any of its TargetStates
holds (OR); a Variant applies its settings under every TargetState of every Target it refers to that holds.

Priority inside a package (§3.4): Common first (lowest, applied first); then the matching Variant entries in
ascending TargetState priority, so the higher one overwrites; equal priorities in the order the TargetStates
are defined in the package (then Variant order, then setting order). Two published rule sets:

* ``2017-01`` (version A): a TargetState with P0 conditions beats one without; one with P1 (and no P0) beats one
  with neither; among TargetStates with P0 the one with more P0 conditions wins (rule A3, read as "N2 P0",
  the obvious intent), P1 conditions then do not count; without P0, more P1 wins; no condition has P2, so
  rule A5 never separates. Key: ``(class, count of that class)``.
* ``current`` (version C): more P0 wins regardless of P1 (C1, C3); equal P0 ⇒ more P1 (C4); equal P0 and P1
  ⇒ more conditions in total (C5). Key: ``(P0, P1, total)``. C2 ("P0 and P1 beats only P0") contradicts C3
  for {P0,P0} vs {P0,P1}; C3's "regardless of the number of P1 conditions" is the more specific statement,
  so it wins here (the reference's recommendation).

Across packages (§4): packages apply in ascending precedence — owner type (Microsoft, SiliconVendor, OEM,
SystemIntegrator, MobileOperator, ITAdmin), then rank 0–99 — so the highest owner type and rank is applied last
and wins, whatever the TargetState priorities inside lower packages. Exact ties (same owner type and rank)
are undocumented; here the package given *later on the command line* wins, as if installed later.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from ...models.customizations import Condition, Customizations, MatchKind, Priority, SectionKind, TargetState


class Rules(enum.StrEnum):
    JAN_2017 = "2017-01"
    CURRENT = "current"


class NotRange(enum.StrEnum):
    NEGATE = "negate"
    RANGE = "range"


def priority_key(state: TargetState, rules: Rules) -> tuple[int, ...]:
    """The sort key of a matched TargetState under a published rule set (see the module doc)."""
    p0 = sum(c.priority is Priority.P0 for c in state.conditions)
    p1 = sum(c.priority is Priority.P1 for c in state.conditions)
    if rules is Rules.JAN_2017:
        if p0:
            return (2, p0)
        if p1:
            return (1, p1)
        return (0, 0)
    total = sum(not c.is_pseudo for c in state.conditions)
    return (p0, p1, total)


def condition_holds(cond: Condition, facts: Mapping[str, str], not_range: NotRange = NotRange.NEGATE) -> bool:
    if cond.is_pseudo:
        return True
    fact = facts.get(cond.key)
    if fact is None:
        return False
    kind = cond.kind
    if kind is MatchKind.STRAIGHT:
        return fact == cond.value
    if kind is MatchKind.PATTERN:
        assert cond.pattern is not None
        return cond.pattern.fullmatch(fact) is not None
    number = _int(fact)
    if number is None:
        return False
    assert cond.low is not None and cond.high is not None
    inside = cond.low <= number <= cond.high
    if kind is MatchKind.NOT_RANGE and not_range is NotRange.NEGATE:
        return not inside
    return inside


def _int(text: str) -> int | None:
    t = text.strip()
    if t[:1] in "+-":
        return int(t) if t[1:].isdigit() else None
    return int(t) if t.isdigit() else None


def state_holds(state: TargetState, facts: Mapping[str, str], not_range: NotRange = NotRange.NEGATE) -> bool:
    return all(condition_holds(c, facts, not_range) for c in state.conditions)


@dataclass(frozen=True)
class Applied:
    """One value written by the engine: a setting of a package's Common section or of a Variant under a state."""

    path: str
    value: str
    package: str
    package_file: str
    section: str                    # "Common" or "Variant <name or n>"
    state: TargetState | None
    priority: tuple[int, ...] | None
    line: int | None

    @property
    def section_kind(self) -> str:
        return "Common" if self.state is None else "Variant"

    def to_dict(self) -> dict[str, object]:
        return {"value": self.value, "package": self.package, "file": self.package_file, "line": self.line,
                "section": self.section_kind, "variant": None if self.state is None else self.section,
                "target_state": None if self.state is None else {
                    "target": self.state.target_id, "index": self.state.index,
                    "conditions": {c.name: c.value for c in self.state.conditions},
                    "priority": list(self.priority or ())}}


@dataclass
class SettingResult:
    path: str
    winner: Applied
    overrode: list[Applied] = field(default_factory=list)

    @property
    def value(self) -> str:
        return self.winner.value

    def to_dict(self) -> dict[str, object]:
        return {"setting": self.path, **self.winner.to_dict(), "overrode": [a.to_dict() for a in self.overrode]}


@dataclass(frozen=True)
class PackageRef:
    name: str
    file: str
    owner_type: str
    rank: int
    altitude: int
    position: int

    def to_dict(self) -> dict[str, object]:
        return {"name": self.name, "file": self.file, "owner_type": self.owner_type, "rank": self.rank,
                "altitude": self.altitude}


@dataclass
class Resolution:
    packages: list[PackageRef]              # in application order (lowest precedence first)
    settings: dict[str, SettingResult]      # in first-application order
    matched_states: list[str]

    def to_dict(self) -> dict[str, object]:
        return {"packages": [p.to_dict() for p in self.packages], "matched_target_states": self.matched_states,
                "settings": [r.to_dict() for r in self.settings.values()]}


@dataclass(frozen=True)
class _Entry:
    """A Variant's settings under one TargetState, ready to apply (sorted once, evaluated per device)."""

    state_slot: int
    applied: tuple[Applied, ...]


@dataclass(frozen=True)
class PreparedPackage:
    ref: PackageRef
    common: tuple[Applied, ...]
    states: tuple[TargetState, ...]
    entries: tuple[_Entry, ...]


class Simulator:
    """Prepared once for a set of packages and options; :meth:`resolve` runs per device (the hot path)."""

    def __init__(self, packages: Sequence[Customizations], *, rules: Rules = Rules.CURRENT,
                 not_range: NotRange = NotRange.NEGATE) -> None:
        self.rules, self.not_range = rules, not_range
        refs = [PackageRef(c.package.name, str(c.path), c.package.owner_type.value, c.package.rank,
                           c.package.altitude, i) for i, c in enumerate(packages)]
        order = sorted(range(len(packages)),
                       key=lambda i: (packages[i].package.owner_type.index, packages[i].package.rank, i))
        self.prepared = tuple(self._prepare(packages[i], refs[i]) for i in order)

    def _prepare(self, cust: Customizations, ref: PackageRef) -> PreparedPackage:
        common = tuple(Applied(s.path, s.value, ref.name, ref.file, "Common", None, None, s.line)
                       for s in (cust.common.settings if cust.common else ()))
        states: list[TargetState] = []
        slot: dict[tuple[str, int], int] = {}
        raw: list[tuple[tuple, _Entry]] = []
        for section in cust.variants:
            if section.kind is not SectionKind.VARIANT:
                continue
            for state in cust.states_of(section):
                k = (state.target_id, state.index)
                if k not in slot:
                    slot[k] = len(states)
                    states.append(state)
                prio = priority_key(state, self.rules)
                applied = tuple(Applied(s.path, s.value, ref.name, ref.file, section.label, state, prio, s.line)
                                for s in section.settings)
                raw.append(((prio, state.order, section.index), _Entry(slot[k], applied)))
        raw.sort(key=lambda x: x[0])   # stable: equal keys keep TargetRef order
        return PreparedPackage(ref, common, tuple(states), tuple(e for _, e in raw))

    def resolve(self, facts: Mapping[str, str]) -> Resolution:
        """``facts``: condition name (any case) → value as text."""
        lowered = {k.lower(): v for k, v in facts.items()}
        results: dict[str, SettingResult] = {}
        matched: list[str] = []
        not_range = self.not_range

        def apply(a: Applied) -> None:
            r = results.get(a.path)
            if r is None:
                results[a.path] = SettingResult(a.path, a)
            else:
                r.overrode.append(r.winner)
                r.winner = a

        for pkg in self.prepared:
            for a in pkg.common:
                apply(a)
            holds = [state_holds(s, lowered, not_range) for s in pkg.states]
            matched.extend(f"{pkg.ref.name}:{s.label}" for s, ok in zip(pkg.states, holds) if ok)
            for e in pkg.entries:
                if holds[e.state_slot]:
                    for a in e.applied:
                        apply(a)
        return Resolution([p.ref for p in self.prepared], results, matched)


def resolve(packages: Sequence[Customizations], facts: Mapping[str, str], *, rules: Rules = Rules.CURRENT,
            not_range: NotRange = NotRange.NEGATE) -> Resolution:
    return Simulator(packages, rules=rules, not_range=not_range).resolve(facts)


def describe_state(a: Applied) -> str:
    if a.state is None:
        return "Common"
    return f"{a.section} [{a.state.label}: {a.state.describe()}]"

