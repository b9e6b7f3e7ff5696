"""The feature-manifest model on Microsoft's kit samples and on hand-written edge cases."""

from __future__ import annotations

from pathlib import Path

import pytest

from iotbuild.errors import InputError, InputErrors
from iotbuild.models.featuremanifest import Filter, parse_feature_manifest, parse_fm_list

TOKENS = {"PKGBLD_DIR": "/b/pkgs", "OEM_NAME": "Contoso", "BSPPKG_DIR": "/b/bsp", "MSPKG_DIR": "/ms"}
KIT = "addonkit/Workspace"


def test_kit_oem_common_fm(samples):
    fm = parse_feature_manifest(samples / KIT / "Common/Packages/OEMCommonFM.xml", TOKENS)
    assert len(fm.packages) == 19
    assert [p.name for p in fm.base] == ["Contoso.Registry.Version.cab", "Contoso.Appx.Certs.cab",
                                         "Contoso.Security.RootCerts.cab"]
    assert {p.directory for p in fm.packages} == {"/b/pkgs"}
    features = fm.features("OEM")
    assert len(features) == 17
    assert len(features["SEC_LOCKDOWN"]) == 3 and len(features["RECOVERY_BCD"]) == 3
    assert [p.name for p in features["PROV_AUTO"]] == ["Contoso.Provisioning.Auto.cab"]


def test_kit_oem_fm(samples):
    fm = parse_feature_manifest(samples / KIT / "Source-arm/Packages/OEMFM.xml", TOKENS)
    assert len(fm.packages) == 4 and not fm.base
    assert set(fm.features("OEM")) == {"APP_IOTCOREDEFAULTAPP", "OEM_IoTCoreDefaultApp", "APP_IOTONBOARDINGTASK",
                                       "OEM_IoTOnboardingTask", "AZUREDM_SERVICES", "OEM_SAMPLE"}


def test_kit_fm_file_list(samples):
    lst = parse_fm_list(samples / KIT / "Source-arm/Packages/OEMFMFileList.xml",
                        fm_directory=Path("/in"), owner_name="Contoso", check_exists=False)
    assert [(e.id, e.path, e.owner_name, e.cpu_type, e.critical) for e in lst.entries] == [
        ("OEMCOMMON", Path("/in/OEMCommonFM.xml"), "Contoso", "ARM", True),
        ("OEMFM", Path("/in/OEMFM.xml"), "Contoso", "ARM", True)]
    assert (lst.product, lst.resolutions, lst.languages, lst.locales) == ("IoTUAP", ("1024x768",), ("en-US",), ("en-US",))


def test_kit_device_layout_is_not_a_feature_manifest(samples):
    with pytest.raises(InputError, match="is not <FeatureManifest"):
        parse_feature_manifest(samples / KIT / "Common/Packages/DeviceLayout.MBR4GB/DeviceLayout.xml", TOKENS)


@pytest.mark.parametrize("text, value, expected", [
    ("*", "en-us", True), (None, "fr-fr", True), ("(en-US;zh-CN)", "en-us", True), ("(en-US;zh-CN)", "fr-fr", False),
    ("!(en-US;zh-CN)", "en-us", False), ("!(en-US;zh-CN)", "fr-fr", True), ("1024x768", "1024x768", True),
])
def test_language_and_resolution_filters(text, value, expected):
    assert Filter.parse(text).matches(value) is expected


@pytest.mark.parametrize("text", ["(en-us", "!en-us", "()", "a;b"])
def test_bad_filters(text):
    with pytest.raises(ValueError):
        Filter.parse(text)


def fm(tmp_path: Path, body: str) -> Path:
    p = tmp_path / "X.xml"
    p.write_text('<FeatureManifest xmlns="http://schemas.microsoft.com/embedded/2004/10/ImageUpdate">\n'
                 + body + "\n</FeatureManifest>\n")
    return p


def test_selector_sections_and_environment_tokens(tmp_path):
    p = fm(tmp_path, '<DeviceLayoutPackages><PackageFile SOC="S1" Path="%MY_DIR%" Name="a.cab"/></DeviceLayoutPackages>'
                     '<ReleasePackages><PackageFile ReleaseType="Test" Path="%PKGBLD_DIR%" Name="t.cab"/></ReleasePackages>')
    m = parse_feature_manifest(p, {**TOKENS, "MY_DIR": "/x"})
    assert [(r.section, r.selector, r.location) for r in m.packages] == [
        ("DeviceLayoutPackages", "S1", "/x/a.cab"), ("ReleasePackages", "Test", "/b/pkgs/t.cab")]


def test_all_problems_of_one_file_are_reported_with_lines(tmp_path):
    p = fm(tmp_path, '<BasePackages>\n<PackageFile Path="%NOPE%" Name="a.cab"/>\n<PackageFile Name="b.cab"/>\n'
                     '</BasePackages>\n<Bogus/>')
    with pytest.raises(InputErrors) as e:
        parse_feature_manifest(p, TOKENS)
    got = [(err.line, err.what) for err in e.value.errors]
    assert got == [(3, "Path: unknown token %NOPE%"), (4, "<PackageFile> has no Path"), (6, "unknown element <Bogus>")]
