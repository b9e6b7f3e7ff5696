"""customizations.xml model: every sample parses; PackageConfig, Targets and Variants are read as documented."""

from __future__ import annotations

from pathlib import Path

import pytest

from iotbuild.errors import InputError, InputErrors
from iotbuild.models.customizations import (MatchKind, OwnerType, Priority, SectionKind, load_customizations,
                                            parse_customizations)

HEAD = """<?xml version="1.0" encoding="utf-8"?>
<{root}>
  <PackageConfig xmlns="urn:schemas-Microsoft-com:Windows-ICD-Package-Config.v1.0">
    <ID>{id}</ID>
    <Name>Pkg</Name>
    <Version>{version}</Version>
    <OwnerType>{owner}</OwnerType>
    {rank}
  </PackageConfig>
  <Settings xmlns="urn:schemas-microsoft-com:windows-provisioning">
    <Customizations>
{body}
    </Customizations>
  </Settings>
</{root}>
"""


def doc(body: str = "", *, root: str = "WindowsCustomizations", id: str = "{6aaa4dfa-00d7-4aaa-8adf-73c6a7e2501b}",
        version: str = "1.0", owner: str = "OEM", rank: str = "<Rank>0</Rank>") -> bytes:
    return HEAD.format(root=root, id=id, version=version, owner=owner, rank=rank, body=body).encode()


def parse(data: bytes, **kw):
    return parse_customizations(data, path="c.xml", **kw)


def sample_files(samples: Path) -> list[Path]:
    files = sorted((samples / "ppkg").glob("*customizations.xml"))
    files.append(samples / "ppkg" / "compiled-acer" / "Multivariant" / "0" / "customizations.xml")
    return files


def test_every_sample_answer_file_parses(samples: Path) -> None:
    files = sample_files(samples)
    assert len(files) >= 7
    for f in files:
        c = load_customizations(f)
        assert c.package.owner_type is OwnerType.OEM, f
        assert c.common is not None and c.common.settings, f
        assert not c.warnings, (f, c.warnings)


def test_acer_sample_settings_and_identity(samples: Path) -> None:
    c = load_customizations(samples / "ppkg" / "07_acer-ppkg_embedded_Multivariant_0_customizations.xml")
    pc = c.package
    assert (pc.braced_id, pc.name, pc.version, pc.rank, pc.altitude) == (
        "{19738506-279f-4439-993d-779fef2a3d60}", "acer_tavelmateP214_baseconfig", "1.0", 0, 2000)
    paths = [s.path for s in c.common.settings]
    assert paths[0] == "Accounts/Users/User[UserName=ICTMSFO5]/Password"
    assert "ProvisioningCommands/PrimaryContext/Command/CommandConfig[Name=GlobalProtect]/ReturnCodeSuccess" in paths
    cmd = next(s for s in c.common.settings if s.path.endswith("[Name=GlobalProtect]/CommandFile"))
    assert cmd.schema_path == "ProvisioningCommands/PrimaryContext/Command/CommandConfig/CommandFile"
    assert cmd.segment("CommandConfig").ordinal == 1 and cmd.value == r"D:\GlobalProtect64-6.2.8-c263.msi"
    assert cmd.line == 44


def test_guid_with_or_without_braces() -> None:
    a = parse(doc(id="fd231401-5ad4-401f-b2dd-653aa1c1b55d")).package
    b = parse(doc(id="{FD231401-5AD4-401F-B2DD-653AA1C1B55D}")).package
    assert a.id == b.id and a.braced_id == "{fd231401-5ad4-401f-b2dd-653aa1c1b55d}"


def test_misspelled_root_is_accepted() -> None:
    c = parse(doc(root="WindowsCustomizatons"))
    assert c.root_name == "WindowsCustomizatons"


@pytest.mark.parametrize("owner,index", [(o.value, i) for i, o in enumerate(OwnerType)])
def test_owner_types_exact_spellings_and_altitude(owner: str, index: int) -> None:
    c = parse(doc(owner=owner, rank="<Rank>7</Rank>"))
    assert c.package.owner_type.index == index and c.package.altitude == 1000 * index + 7


@pytest.mark.parametrize("owner,hint", [("oem", "write OEM"), ("IT Admin", "write ITAdmin"),
                                        ("Vendor", "use one of Microsoft, SiliconVendor")])
def test_unknown_owner_type(owner: str, hint: str) -> None:
    with pytest.raises(InputError) as e:
        parse(doc(owner=owner))
    assert "unknown OwnerType" in str(e.value) and hint in e.value.hint and e.value.line == 7


def test_rank_defaults_to_zero_and_is_checked() -> None:
    assert parse(doc(rank="")).package.rank == 0
    assert parse(doc(rank="<Rank>99</Rank>")).package.rank == 99
    for bad in ("100", "-1", "x"):
        with pytest.raises(InputError, match="out of range"):
            parse(doc(rank=f"<Rank>{bad}</Rank>"))


@pytest.mark.parametrize("version,ok", [("1.0", True), ("11.42", True), ("1.0.0.1", True), ("3", True),
                                        ("1.0.0.0.0", False), ("1.x", False), ("70000.1", False)])
def test_versions(version: str, ok: bool) -> None:
    if ok:
        assert parse(doc(version=version)).package.version == version
    else:
        with pytest.raises(InputError, match="Version"):
            parse(doc(version=version))


MULTI = """      <Common><Policies><Connectivity><AllowNFC>Yes</AllowNFC></Connectivity></Policies></Common>
      <Targets>
        <Target Id="Cell">
          <TargetState>
            <Condition Name="Mcc" Value="Range:310, 320" />
            <Condition Name="MNC" Value="!Range:400, 550" />
          </TargetState>
          <TargetState>
            <Condition Name="ProcessorName" Value="Pattern:.*Celeron.*" />
            <Condition Name="uiname" Value="Contoso" />
          </TargetState>
        </Target>
        <Target Id="Region"><TargetState><Condition Name="Region" Value="US" /></TargetState></Target>
      </Targets>
      <Variant Name="Cellular">
        <TargetRefs><TargetRef Id="Cell" /><TargetRef Id="Region" /></TargetRefs>
        <Settings><Policies><Connectivity><AllowNFC>No</AllowNFC></Connectivity></Policies></Settings>
      </Variant>"""


def test_targets_conditions_and_variants() -> None:
    c = parse(doc(MULTI))
    cell = c.targets["Cell"]
    assert [s.index for s in cell.states] == [0, 1] and [s.order for s in cell.states] == [0, 1]
    mcc, mnc = cell.states[0].conditions
    assert (mcc.kind, mcc.low, mcc.high, mcc.key, mcc.priority) == (MatchKind.RANGE, 310, 320, "mcc", Priority.P0)
    assert mnc.kind is MatchKind.NOT_RANGE
    pat, ui = cell.states[1].conditions
    assert pat.kind is MatchKind.PATTERN and pat.pattern.fullmatch("Intel Celeron") and pat.priority is Priority.P1
    assert ui.is_pseudo and ui.priority is Priority.NONE
    (v,) = c.variants
    assert v.kind is SectionKind.VARIANT and v.target_refs == ("Cell", "Region") and v.name == "Cellular"
    assert [s.label for s in c.states_of(v)] == ["Cell#0", "Cell#1", "Region#0"]
    assert v.settings[0].path == "Policies/Connectivity/AllowNFC" and v.settings[0].value == "No"
    # !Range: has an undocumented meaning: a warning, with its line
    assert any("!Range" in w.what and w.line == 17 for w in c.warnings)


def test_unknown_condition_name_is_a_warning_not_an_error() -> None:
    body = """<Targets><Target Id="T"><TargetState><Condition Name="Flavour" Value="x" /></TargetState></Target>
      </Targets>"""
    c = parse(doc(body))
    assert [w.what for w in c.warnings] == ["unknown condition name 'Flavour'"]
    assert c.targets["T"].states[0].conditions[0].priority is Priority.NONE


def test_all_problems_are_reported_together() -> None:
    body = """<Targets>
        <Target Id="A"><TargetState><Condition Name="MCC" Value="Pattern:(" /></TargetState></Target>
        <Target Id="A"><TargetState><Condition Name="MCC" Value="Range:9,1" /></TargetState></Target>
      </Targets>
      <Variant><TargetRefs><TargetRef Id="B" /></TargetRefs><Settings /></Variant>"""
    with pytest.raises(InputErrors) as e:
        parse(doc(body, rank="<Rank>100</Rank>"))
    whats = [(x.line, x.what.split(" ")[0:3]) for x in e.value.errors]
    assert len(e.value.errors) == 4, whats
    lines = sorted(x.line for x in e.value.errors)
    assert lines == [8, 13, 14, 16]  # Rank, bad regex, duplicate Target Id, undeclared TargetRef


def test_lenient_reading_keeps_cosa_profiles() -> None:
    body = """<Profile><TargetRefs /><Settings><Policies><Connectivity><AllowNFC>No</AllowNFC></Connectivity>
      </Policies></Settings></Profile>"""
    with pytest.raises(InputError, match="COSA"):
        parse(doc(body))
    c = parse(doc(body), strict=False)
    assert c.variants[0].kind is SectionKind.PROFILE and any("COSA" in w.what for w in c.warnings)


def test_wrong_namespace_is_an_error() -> None:
    data = doc().replace(b"Windows-ICD-Package-Config", b"Windows-ICD-Package-Configuration")
    with pytest.raises(InputError, match="namespace"):
        parse(data)
