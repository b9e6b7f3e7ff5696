"""The settings catalog and the compiler, checked against the real compiled package (compiled-acer)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from lxml import etree

from iotbuild.errors import InputErrors
from iotbuild.models.customizations import load_customizations, parse_customizations
from iotbuild.stages.provisioning import compile_package, load_catalog
from iotbuild.stages.provisioning.compile import (render_answer_file, render_provxml, render_runtime)
from tests.stages.test_provisioning_support import ACER

REQUIRED = ("Accounts/ComputerAccount", "Accounts/Users", "ConnectivityProfiles/WLAN", "Certificates/RootCertificates",
            "UniversalAppInstall", "ProvisioningCommands", "OOBE/Desktop", "Policies/Connectivity",
            "Policies/ApplicationManagement")


def parms(provxml: bytes) -> set[tuple[str, str, str, str]]:
    """The meaning of a .provxml: (characteristic path, parm name, datatype, value) for every parm."""
    root = etree.fromstring(provxml.removeprefix(b"\xef\xbb\xbf"))
    out = set()
    for p in root.iter("parm"):
        path = "/".join(a.get("type") for a in reversed(list(p.iterancestors("characteristic"))))
        out.add((path, p.get("name"), p.get("datatype"), p.get("value")))
    return out


def test_catalog_covers_the_required_areas_and_cites_its_pages() -> None:
    cat = load_catalog()
    for area in REQUIRED:
        assert any(p.startswith(area + "/") for p in cat.entries), area
    for e in cat.entries.values():
        assert e.doc.startswith("https://learn.microsoft.com/"), e.path
        assert e.evidence in ("observed", "doc", "inferred")
    assert cat.get("Policies/ApplicationManagement/AllowAllTrustedApps").values["Yes"] == "1"


def test_catalog_knows_every_setting_the_samples_use(samples: Path) -> None:
    cat = load_catalog()
    for f in sorted((samples / "ppkg").glob("*customizations.xml")):
        c = load_customizations(f)
        for _, s in c.all_settings():
            assert cat.get(s.schema_path), f"{f.name}:{s.line}: {s.schema_path} is not in the catalog"


@pytest.fixture
def acer_compiled(samples: Path, tmp_path: Path):
    """compiled-acer's answer file, compiled with placeholder .msi files standing in for the D:\\ assets."""
    assets = tmp_path / "assets"
    assets.mkdir()
    for name in ("Cortex_XDR_9_0_0_16757_x64.msi", "GlobalProtect64-6.2.8-c263.msi"):
        (assets / name).write_bytes(b"placeholder " + name.encode())
    cust = load_customizations(ACER / "Multivariant" / "0" / "customizations.xml")
    return compile_package(cust, asset_dirs=[assets])


def _strip_ordinal(name: str) -> str:
    return re.sub(r"^\d+__", "", name)


def test_compiled_settings_mean_what_microsoft_compiled(acer_compiled) -> None:
    real = {_strip_ordinal(p.name): parms(p.read_bytes())
            for p in (ACER / "Multivariant" / "0" / "Prov" / "RunTime").glob("*.provxml")}
    ours = {_strip_ordinal(g.file_name): parms(render_provxml(g)) for g in acer_compiled.groups}
    assert set(ours) == set(real)
    for name, expected in real.items():
        if name.endswith("CommandFile.provxml"):
            continue  # the asset hash depends on the .msi content, which the sample does not include
        assert ours[name] == expected, name
    assert ours["Policies_ApplicationManagement_AllowAllTrustedApps.provxml"] == {
        ("Policy/Config/ApplicationManagement", "AllowAllTrustedApps", "integer", "1")}


def test_compiled_assets_follow_the_real_naming(acer_compiled) -> None:
    real = parms((ACER / "Multivariant/0/Prov/RunTime/3__ProvisioningCommands_PrimaryContext_Command_0_CommandFile"
                         ".provxml").read_bytes())
    ours = parms(render_provxml(next(g for g in acer_compiled.groups
                                     if g.file_name.endswith("Command_0_CommandFile.provxml"))))
    ((rpath, _, rtype, rvalue),), ((opath, oname, otype, ovalue),) = real, ours
    assert (opath, otype, ovalue) == (rpath, rtype, rvalue)
    assert re.fullmatch(r"0_[A-Za-z0-9+.=]{44}\\Cortex_XDR_9_0_0_16757_x64\.msi", oname)
    a = acer_compiled.assets[0]
    assert a.asset_path == "/ProvisioningCommands/PrimaryContext/Command/0/CommandFile" and "/" not in a.digest_b64


def test_runtime_entries_and_settings_groups_follow_the_real_pattern(acer_compiled) -> None:
    ours = etree.fromstring(render_runtime(acer_compiled.entries).removeprefix(b"\xef\xbb\xbf"))
    real = etree.fromstring((ACER / "Multivariant/0/Prov/RunTime.xml").read_bytes().removeprefix(b"\xef\xbb\xbf"))
    assert len(ours) == len(real) == 15

    def suffixes(root):
        return sorted(re.sub(r"^[0-9a-f-]{36}", "", e.get("SettingsGroup")) for e in root)
    assert suffixes(ours) == suffixes(real)  # the second command's groups get _0, as in the real file
    assert {e.get("Type") for e in ours} == {"provxml"}
    assert all(e.get("Data").startswith("$(_prov)\\RunTime\\") for e in ours)


def test_answer_file_copy_drops_list_item_names(acer_compiled) -> None:
    ours = render_answer_file(acer_compiled.customizations)
    real = (ACER / "CommonSettings/1/AnswerFile.xml").read_bytes()
    canon = (lambda b: etree.tostring(etree.fromstring(b.removeprefix(b"\xef\xbb\xbf"),
                                                       etree.XMLParser(remove_blank_text=True)), method="c14n"))
    assert canon(ours) == canon(real)


VARIANT = b"""<?xml version="1.0" encoding="utf-8"?>
<WindowsCustomizations>
  <PackageConfig xmlns="urn:schemas-Microsoft-com:Windows-ICD-Package-Config.v1.0">
    <ID>{6aaa4dfa-00d7-4aaa-8adf-73c6a7e2501b}</ID><Name>V</Name><Version>1.0</Version><OwnerType>OEM</OwnerType>
  </PackageConfig>
  <Settings xmlns="urn:schemas-microsoft-com:windows-provisioning">
    <Customizations>
      <Common><Policies><Connectivity><AllowNFC>Yes</AllowNFC></Connectivity></Policies></Common>
      <Targets>
        <Target Id="T">
          <TargetState><Condition Name="Mcc" Value="310" /><Condition Name="MNC" Value="Range:1, 9" /></TargetState>
          <TargetState><Condition Name="Region" Value="Pattern:(DE|FR)" /></TargetState>
        </Target>
      </Targets>
      <Variant>
        <TargetRefs><TargetRef Id="T" /></TargetRefs>
        <Settings><Policies><Connectivity><AllowNFC>No</AllowNFC><AllowBluetooth>No</AllowBluetooth></Connectivity>
        </Policies></Settings>
      </Variant>
    </Customizations>
  </Settings>
</WindowsCustomizations>
"""


def test_variant_conditions_become_attributes_one_entry_per_setting_and_state() -> None:
    comp = compile_package(parse_customizations(VARIANT, path="v.xml"))
    root = etree.fromstring(render_runtime(comp.entries).removeprefix(b"\xef\xbb\xbf"))
    rows = [dict(e.attrib) for e in root]
    assert len(rows) == 1 + 2 * 2   # Common + (2 settings × 2 TargetStates)
    assert set(rows[0]) == {"Type", "SettingsGroup", "Data"}
    conds = [{k: v for k, v in r.items() if k not in ("Type", "SettingsGroup", "Data")} for r in rows[1:]]
    assert conds == [{"Mcc": "310", "MNC": "Range:1, 9"}] * 2 + [{"Region": "Pattern:(DE|FR)"}] * 2
    variant_nfc = next(g for g in comp.groups if g.section.kind.value == "Variant" and "AllowNFC" in g.file_name)
    assert parms(render_provxml(variant_nfc)) == {("Policy/Config/Connectivity", "AllowNFC", "integer", "0")}


def test_unknown_settings_are_errors_unless_allowed(tmp_path: Path) -> None:
    data = VARIANT.replace(b"<AllowNFC>Yes</AllowNFC>", b"<AllowNFCC>Yes</AllowNFCC>")
    cust = parse_customizations(data, path=tmp_path / "c.xml")
    with pytest.raises(InputErrors) as e:
        compile_package(cust)
    (err,) = e.value.errors
    assert "unknown setting Policies/Connectivity/AllowNFCC" in err.what and err.line == 8
    assert "AllowNFC" in err.hint and "--allow-unknown-settings" in err.hint
    comp = compile_package(cust, allow_unknown=True)
    assert [s.path for s in comp.uncompiled] == ["Policies/Connectivity/AllowNFCC"]
    assert not any("AllowNFCC" in g.file_name for g in comp.groups)


def test_relative_assets_are_found_next_to_the_answer_file(samples: Path, tmp_path: Path) -> None:
    shutil.copy2(samples / "ppkg" / "01_ms-iot_Common_Appx.Certs.customizations.xml", tmp_path / "c.xml")
    (tmp_path / "SmartDisplay.cer").write_bytes(b"cert")
    comp = compile_package(load_customizations(tmp_path / "c.xml"))
    (a,) = comp.assets
    assert a.file_name == "SmartDisplay.cer" and a.folder.startswith("0_")
    assert a.asset_path == "/Certificates/RootCertificates/0/CertificatePath"


def test_misspelled_root_is_written_correctly_in_the_package_copy() -> None:
    from iotbuild.stages.provisioning.compile import answer_file_copy
    data = VARIANT.replace(b"WindowsCustomizations>", b"WindowsCustomizatons>")
    cust = parse_customizations(data, path="m.xml")
    assert cust.root_name == "WindowsCustomizatons"
    copy = answer_file_copy(cust)
    assert copy.count(b"WindowsCustomizations>") == 2 and b"Customizatons" not in copy
    assert copy.removeprefix(b"\xef\xbb\xbf") == VARIANT
