"""The engine simulator, table-driven: every case cites the documented (or declared) rule it checks.

Citations are to /work/shared/reference/provisioning-ppkg.md (§3.1 conditions, §3.2 matching, §3.3 AND/OR,
§3.4 priority versions A = 2017-01 and C = current, §4 owner type and rank) and, for choices the reference
leaves open, to the module doc of iotbuild.stages.provisioning.resolve ("declared").

Packages are written as answer files and read by the real model, so these cases also exercise the parser.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from xml.sax.saxutils import quoteattr

import pytest

from iotbuild.models.customizations import Customizations, parse_customizations
from iotbuild.stages.provisioning.resolve import NotRange, Rules, Simulator, priority_key, resolve

S = "Policies/Connectivity/AllowNFC"       # the setting most cases fight over
T = "Policies/Connectivity/AllowBluetooth"


def _tree(settings: dict[str, str], indent: str) -> str:
    """Nested elements for ``{"A/B/C": "v"}`` (paths share prefixes in order)."""
    root: dict = {}
    for path, value in settings.items():
        node = root
        parts = path.split("/")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = value

    def emit(node: dict, pad: str) -> str:
        out = ""
        for k, v in node.items():
            if isinstance(v, dict):
                out += f"{pad}<{k}>\n{emit(v, pad + '  ')}{pad}</{k}>\n"
            else:
                out += f"{pad}<{k}>{v}</{k}>\n"
        return out
    return emit(root, indent)


def pkg(name: str = "P", *, owner: str = "OEM", rank: int = 0, common: dict[str, str] | None = None,
        targets: dict[str, list[list[tuple[str, str]]]] | None = None,
        variants: list[tuple[list[str], dict[str, str]]] | None = None) -> Customizations:
    body = ""
    if common:
        body += "      <Common>\n" + _tree(common, "        ") + "      </Common>\n"
    if targets:
        body += "      <Targets>\n"
        for tid, states in targets.items():
            body += f'        <Target Id="{tid}">\n'
            for st in states:
                body += "          <TargetState>\n" + "".join(
                    f"            <Condition Name={quoteattr(n)} Value={quoteattr(v)} />\n" for n, v in st) + \
                    "          </TargetState>\n"
            body += "        </Target>\n"
        body += "      </Targets>\n"
    for refs, settings in variants or []:
        body += ("      <Variant>\n        <TargetRefs>\n"
                 + "".join(f'          <TargetRef Id="{r}" />\n' for r in refs)
                 + "        </TargetRefs>\n        <Settings>\n" + _tree(settings, "          ")
                 + "        </Settings>\n      </Variant>\n")
    text = f"""<?xml version="1.0" encoding="utf-8"?>
<WindowsCustomizations>
  <PackageConfig xmlns="urn:schemas-Microsoft-com:Windows-ICD-Package-Config.v1.0">
    <ID>{{{uuid.uuid5(uuid.NAMESPACE_DNS, name)}}}</ID>
    <Name>{name}</Name>
    <Version>1.0</Version>
    <OwnerType>{owner}</OwnerType>
    <Rank>{rank}</Rank>
  </PackageConfig>
  <Settings xmlns="urn:schemas-microsoft-com:windows-provisioning">
    <Customizations>
{body}    </Customizations>
  </Settings>
</WindowsCustomizations>
"""
    return parse_customizations(text.encode(), path=f"{name}.xml")


def one(cond: list[tuple[str, str]], value: str = "No", base: str = "Yes", **kw) -> Customizations:
    """Common S=base, one Target with one TargetState ``cond``, a Variant setting S=value."""
    return pkg(common={S: base}, targets={"T": [cond]}, variants=[(["T"], {S: value})], **kw)


def two(a: list[tuple[str, str]], b: list[tuple[str, str]]) -> Customizations:
    """Targets A then B (definition order), each with one state; Variant(A) S=A, Variant(B) S=B; Common S=none."""
    return pkg(common={S: "none"}, targets={"A": [a], "B": [b]}, variants=[(["A"], {S: "A"}), (["B"], {S: "B"})])


@dataclass
class Case:
    id: str
    rule: str
    packages: list[Customizations]
    facts: dict[str, str]
    value: str
    by: str = ""                    # "Common" or "<TargetId>#<state index>"; "" = not checked
    package: str = ""               # winning package name; "" = not checked
    rules: Rules = Rules.CURRENT
    not_range: NotRange = NotRange.NEGATE
    setting: str = S
    overrode: list[str] | None = field(default=None)


P0a, P0b, P0c = ("MCC", "310"), ("MNC", "410"), ("SPN", "Contoso")
P1a, P1b, P1c = ("Region", "US"), ("Lang", "en"), ("Architecture", "AMD64")
DEVICE = {"MCC": "310", "MNC": "410", "SPN": "Contoso", "Region": "US", "Lang": "en", "Architecture": "AMD64",
          "Flavor": "x"}

CASES = [
    # -- matching types (§3.2) and condition names (§3.1) ------------------------------------------------------
    Case("straight-equal", "§3.2 straight match: value as-is", [one([("ProcessorName", "Barton")])],
         {"ProcessorName": "Barton"}, "No", "T#0"),
    Case("straight-differs", "§3.2 straight match: a different value does not match",
         [one([("ProcessorName", "Barton")])], {"ProcessorName": "Dothan"}, "Yes", "Common"),
    Case("straight-value-case", "§3.2 conclusions: straight-match values are case-sensitive",
         [one([("ProcessorName", "Barton")])], {"ProcessorName": "barton"}, "Yes", "Common"),
    Case("leading-zeros", "§3.1: digit strings keep leading zeros (MNC 01 is not 1)", [one([("MNC", "01")])],
         {"MNC": "1"}, "Yes", "Common"),
    Case("leading-zeros-equal", "§3.1: digit strings compared as strings", [one([("MNC", "01")])],
         {"MNC": "01"}, "No", "T#0"),
    Case("name-case-condition", "§3.1: condition names are case-insensitive (Mcc and MCC)",
         [one([("Mcc", "505")])], {"MCC": "505"}, "No", "T#0"),
    Case("name-case-fact", "§3.1: condition names are case-insensitive (fact spelled mcc)",
         [one([("MCC", "505")])], {"mcc": "505"}, "No", "T#0"),
    Case("pattern-full", "§3.2 Pattern: regex, full match", [one([("ProcessorName", "Pattern:.*Celeron.*")])],
         {"ProcessorName": "Intel Celeron N4000"}, "No", "T#0"),
    Case("pattern-anchored", "§3.2 conclusions: Pattern: is anchored (examples supply .* themselves)",
         [one([("ProcessorName", "Pattern:Celeron")])], {"ProcessorName": "Intel Celeron"}, "Yes", "Common"),
    Case("pattern-case-sensitive", "§3.2 conclusions: Pattern: is case-sensitive (.*(I|i)ntel.* spells case out)",
         [one([("ProcessorName", "Pattern:.*celeron.*")])], {"ProcessorName": "Celeron"}, "Yes", "Common"),
    Case("pattern-prefix-case", "§3.2 conclusions: prefixes are case-insensitive (pattern: in COSA)",
         [one([("ICCID", "pattern:.*")])], {"ICCID": "8944"}, "No", "T#0"),
    Case("range-low-bound", "§3.2 conclusions: Range:a,b is inclusive (low bound)",
         [one([("MCC", "Range:310, 320")])], {"MCC": "310"}, "No", "T#0"),
    Case("range-high-bound", "§3.2 conclusions: Range:a,b is inclusive (high bound)",
         [one([("MCC", "Range:310, 320")])], {"MCC": "320"}, "No", "T#0"),
    Case("range-outside", "§3.2 Range: a value outside does not match", [one([("MCC", "Range:310, 320")])],
         {"MCC": "321"}, "Yes", "Common"),
    Case("range-iccid-bigint", "§3.2 conclusions: ICCID bounds need arbitrary-precision integers",
         [one([("ICCID", "range:8944470000000000000,8944479599999999999")])], {"ICCID": "8944479599999999998"},
         "No", "T#0"),
    Case("range-not-a-number", "declared: a fact that is not an integer is outside every range",
         [one([("MCC", "Range:310, 320")])], {"MCC": "3l5"}, "Yes", "Common"),
    Case("not-range-negate-outside", "§3.2 conclusions: !Range: negates (default --not-range negate)",
         [one([("MNC", "!Range:400, 550")])], {"MNC": "600"}, "No", "T#0"),
    Case("not-range-negate-inside", "§3.2 conclusions: !Range: negates: inside does not match",
         [one([("MNC", "!Range:400, 550")])], {"MNC": "410"}, "Yes", "Common"),
    Case("not-range-as-range", "§3.2: --not-range range reads !Range: as the doc table's plain range",
         [one([("MNC", "!Range:400, 550")])], {"MNC": "410"}, "No", "T#0", not_range=NotRange.RANGE),
    Case("missing-fact", "declared: a condition on a fact the device lacks is false", [one([("GID1", "52FF")])],
         {"MCC": "310"}, "Yes", "Common"),
    Case("uiname-pseudo", "§3.1: uiname/uiorder are not matched against device facts",
         [one([("MCC", "310"), ("uiname", "Contoso")])], {"MCC": "310"}, "No", "T#0"),
    # -- AND / OR (§3.3) ---------------------------------------------------------------------------------------
    Case("and-all-true", "§3.3 TargetState = AND of its conditions: all hold", [one([P0a, P1a])], DEVICE, "No",
         "T#0"),
    Case("and-one-false", "§3.3 TargetState = AND: one condition false ⇒ no match", [one([P0a, ("Region", "DE")])],
         DEVICE, "Yes", "Common"),
    Case("or-second-state", "§3.3 Target = OR of its TargetStates: the second holds",
         [pkg(common={S: "Yes"}, targets={"T": [[("MCC", "999")], [P1a]]}, variants=[(["T"], {S: "No"})])],
         DEVICE, "No", "T#1"),
    Case("or-none", "§3.3 Target = OR: no TargetState holds ⇒ Variant not applied",
         [pkg(common={S: "Yes"}, targets={"T": [[("MCC", "999")], [("Region", "DE")]]},
              variants=[(["T"], {S: "No"})])], DEVICE, "Yes", "Common"),
    Case("variant-two-refs", "§3.3 a Variant applies if any of its TargetRefs names a true Target",
         [pkg(common={S: "Yes"}, targets={"X": [[("MCC", "999")]], "Y": [[P1a]]},
              variants=[(["X", "Y"], {S: "No"})])], DEVICE, "No", "Y#0"),
    Case("common-unconditional", "§3.3 Common settings are applied unconditionally",
         [pkg(common={S: "Yes", T: "Yes"}, targets={"T": [[P0a]]}, variants=[(["T"], {S: "No"})])], DEVICE,
         "Yes", "Common", setting=T),
    # -- TargetState priority, current rules (§3.4 version C) -------------------------------------------------
    Case("C1-p0-beats-p1", "§3.4 C1: with P0 beats without P0 (B is defined later, yet A wins)",
         [two([P0a], [P1a])], DEVICE, "A", "A#0"),
    Case("C3-more-p0-regardless-of-p1", "§3.4 C3: more P0 wins regardless of the number of P1",
         [two([P0a, P0b], [P0a, P1a, P1b, P1c])], DEVICE, "A", "A#0"),
    Case("C4-equal-p0-more-p1", "§3.4 C4: equal P0 ⇒ more P1 wins", [two([P0a, P1a], [P0b])], DEVICE, "A",
         "A#0"),
    Case("C5-more-total", "§3.4 C5: equal P0 and P1 ⇒ more conditions in total (unknown names count)",
         [two([P1a, ("Flavor", "x")], [P1b])], DEVICE, "A", "A#0"),
    Case("C2-vs-C3-conflict", "§3.4 notes: {P0,P0} vs {P0,P1} — C3 wins the C2/C3 conflict",
         [two([P0a, P0b], [P0c, P1a])], DEVICE, "A", "A#0"),
    Case("common-lowest", "§3.4 notes: Common is lowest; a no-priority Variant still overrides it",
         [one([("Flavor", "x")])], DEVICE, "No", "T#0"),
    # -- TargetState priority, 2017-01 rules (§3.4 version A) --------------------------------------------------
    Case("A1-p0-beats-no-p0", "§3.4 A1: a TargetState with P0 beats one without",
         [two([P0a], [P1a, P1b])], DEVICE, "A", "A#0", rules=Rules.JAN_2017),
    Case("A2-p1-beats-neither", "§3.4 A2: with P1 beats one with neither P0 nor P1",
         [two([P1a], [("Flavor", "x")])], DEVICE, "A", "A#0", rules=Rules.JAN_2017),
    Case("A3-more-p0", "§3.4 A3: N1 > N2 > 0 P0 conditions ⇒ N1 wins", [two([P0a, P0b], [P0c])], DEVICE, "A",
         "A#0", rules=Rules.JAN_2017),
    Case("A4-more-p1-without-p0", "§3.4 A4: without P0, more P1 wins", [two([P1a, P1b], [P1c])], DEVICE, "A",
         "A#0", rules=Rules.JAN_2017),
    Case("A6-equal-p0-ignores-p1", "§3.4 A3+A6: only P0 counts when P0 is present; equal ⇒ definition order",
         [two([P0a, P0b, P1a, P1b, P1c], [P0a, P0c])], DEVICE, "B", "B#0", rules=Rules.JAN_2017),
    Case("C-vs-A6-same-states", "§3.4 notes: {2×P0} vs {2×P0,3×P1}: current prefers the one with P1",
         [two([P0a, P0b, P1a, P1b, P1c], [P0a, P0c])], DEVICE, "A", "A#0"),
    Case("A-equal-p0-different-p1", "§3.4 A6: equal P0 counts are equal priority (C4 would pick A)",
         [two([P0a, P1a], [P0b])], DEVICE, "B", "B#0", rules=Rules.JAN_2017),
    Case("A-conflict-case", "§3.4 A3: {P0,P0} beats {P0,P1} under 2017-01 too",
         [two([P0a, P0b], [P0c, P1a])], DEVICE, "A", "A#0", rules=Rules.JAN_2017),
    Case("A-unknown-no-priority", "§3.4 A: conditions without a priority class do not count (A5 has no P2)",
         [two([P1a, ("Flavor", "x")], [P1b])], DEVICE, "B", "B#0", rules=Rules.JAN_2017),
    # -- ties (§3.4: equal priorities in definition order) -----------------------------------------------------
    Case("tie-definition-order", "§3.4: equal priority ⇒ TargetStates apply in definition order, later wins",
         [pkg(common={S: "none"}, targets={"A": [[P1a]], "B": [[P1b]]},
              variants=[(["B"], {S: "B"}), (["A"], {S: "A"})])], DEVICE, "B", "B#0"),
    Case("tie-same-state-two-variants", "declared: one TargetState in two Variants ⇒ the later Variant wins",
         [pkg(common={S: "none"}, targets={"A": [[P1a]]}, variants=[(["A"], {S: "first"}), (["A"], {S: "second"})])],
         DEVICE, "second", "A#0"),
    Case("tie-states-in-one-target", "§3.4: equal priority inside one Target ⇒ later TargetState wins",
         [pkg(common={S: "none"}, targets={"A": [[P1a], [P1b]]}, variants=[(["A"], {S: "v"})])], DEVICE, "v", "A#1"),
    # -- packages: owner type and rank (§4) -----------------------------------------------------------------
    Case("owner-oem-beats-microsoft", "§4: owner types Microsoft < OEM; the higher one is applied last",
         [pkg("Oem", common={S: "oem"}), pkg("Ms", owner="Microsoft", common={S: "ms"})], {}, "oem", "Common",
         package="Oem"),
    Case("owner-itadmin-beats-operator", "§4: MobileOperator < ITAdmin",
         [pkg("It", owner="ITAdmin", common={S: "it"}), pkg("Mo", owner="MobileOperator", common={S: "mo"})], {},
         "it", package="It"),
    Case("owner-chain", "§4: SiliconVendor < OEM < SystemIntegrator",
         [pkg("Si", owner="SystemIntegrator", common={S: "si"}), pkg("Sv", owner="SiliconVendor", common={S: "sv"}),
          pkg("Oe", owner="OEM", common={S: "oe"})], {}, "si", package="Si", overrode=["sv", "oe"]),
    Case("rank-higher-wins", "§4: within an owner type the higher rank wins",
         [pkg("R7", rank=7, common={S: "r7"}), pkg("R3", rank=3, common={S: "r3"})], {}, "r7", package="R7"),
    Case("owner-beats-rank", "§4: owner type first, then rank (OEM/99 < SystemIntegrator/0)",
         [pkg("Si0", owner="SystemIntegrator", common={S: "si"}), pkg("Oem99", rank=99, common={S: "oem"})], {},
         "si", package="Si0"),
    Case("tie-command-line-order", "declared (§4 ties unknown): same owner and rank ⇒ later on the command line",
         [pkg("First", common={S: "1"}), pkg("Second", common={S: "2"})], {}, "2", package="Second"),
    Case("package-beats-targetstate", "§4.1 step 5: a higher package's Common beats a lower package's P0 Variant",
         [pkg("Mo", owner="MobileOperator", common={S: "mo"}), one([P0a, P0b], value="oem-variant", base="oem")],
         DEVICE, "mo", "Common", package="Mo", overrode=["oem", "oem-variant"]),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_simulator(case: Case) -> None:
    result = resolve(case.packages, case.facts, rules=case.rules, not_range=case.not_range)
    r = result.settings[case.setting]
    label = "Common" if r.winner.state is None else r.winner.state.label
    got = (r.value, label if case.by else "", r.winner.package if case.package else "")
    assert got == (case.value, case.by, case.package), f"{case.rule}: {got}"
    if case.overrode is not None:
        assert [a.value for a in r.overrode] == case.overrode, case.rule


def test_table_is_big_and_cited() -> None:
    assert len(CASES) >= 40
    assert len({c.id for c in CASES}) == len(CASES)
    assert all(c.rule.startswith(("§", "declared")) for c in CASES)


def test_priority_keys_per_rule_set() -> None:
    c = pkg(targets={"A": [[P0a, P0b, P1a]]}, variants=[(["A"], {S: "x"})])
    state = c.targets["A"].states[0]
    assert priority_key(state, Rules.CURRENT) == (2, 1, 3)
    assert priority_key(state, Rules.JAN_2017) == (2, 2)


def test_overrides_are_recorded_in_application_order() -> None:
    p = pkg(common={S: "c"}, targets={"A": [[P1a]], "B": [[P0a]]}, variants=[(["A"], {S: "a"}), (["B"], {S: "b"})])
    r = resolve([p], DEVICE).settings[S]
    assert r.value == "b" and [a.value for a in r.overrode] == ["c", "a"]
    d = r.to_dict()
    assert d["section"] == "Variant" and d["target_state"]["conditions"] == {"MCC": "310"}
    assert [o["section"] for o in d["overrode"]] == ["Common", "Variant"]


def test_simulator_is_reusable_across_devices() -> None:
    sim = Simulator([one([("Region", "Pattern:(DE|FR)")])])
    assert sim.resolve({"Region": "DE"}).settings[S].value == "No"
    assert sim.resolve({"Region": "US"}).settings[S].value == "Yes"


# -- device facts files ---------------------------------------------------------------------------------------

def test_facts_from_json_and_yaml(tmp_path) -> None:
    from iotbuild.stages.provisioning import load_facts
    (tmp_path / "d.json").write_text('{"MCC": "310", "MNC": 1, "Roaming": true, "AoAc": false}')
    assert load_facts(tmp_path / "d.json") == {"MCC": "310", "MNC": "1", "Roaming": "1", "AoAc": "0"}
    (tmp_path / "d.yaml").write_text("---\n# device\nMNC: \"01\"\nRegion: DE  # comment\nServer: true\n"
                                     "ProcessorName: 'Intel Celeron'\n")
    assert load_facts(tmp_path / "d.yaml") == {"MNC": "01", "Region": "DE", "Server": "1",
                                               "ProcessorName": "Intel Celeron"}


@pytest.mark.parametrize("text,line,what", [
    ("MCC: 310\nmcc: 311\n", 2, "given twice"),
    ("MCC: [310, 311]\n", 1, "only plain values"),
    ("MCC: \"310\n", 1, "unterminated quote"),
    ("- MCC\n", 1, "is not 'Name: value'"),
])
def test_bad_yaml_facts_name_their_line(tmp_path, text: str, line: int, what: str) -> None:
    from iotbuild.errors import InputError
    from iotbuild.stages.provisioning import load_facts
    (tmp_path / "d.yaml").write_text(text)
    with pytest.raises(InputError) as e:
        load_facts(tmp_path / "d.yaml")
    assert e.value.line == line and what in e.value.what and e.value.hint


def test_bad_json_facts(tmp_path) -> None:
    from iotbuild.errors import InputError
    from iotbuild.stages.provisioning import load_facts
    (tmp_path / "d.json").write_text('{\n  "MCC": "310",\n  "SIM": {"ICCID": "1"}\n}')
    with pytest.raises(InputError, match="not a single value"):
        load_facts(tmp_path / "d.json")
    (tmp_path / "d.json").write_text('{\n  "MCC": "310"\n  "MNC": "1"\n}')
    with pytest.raises(InputError) as e:
        load_facts(tmp_path / "d.json")
    assert e.value.line == 3 and "not valid JSON" in e.value.what
