"""OEMInput.xml: the kit's sample read exactly, every problem at its line, and edits that keep the layout."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from iotbuild.errors import InputError, InputErrors
from iotbuild.models.oeminput import (
    BuildType,
    FeatureRef,
    ReleaseType,
    XmlTextDocument,
    add_feature,
    expand_env,
    parse_oeminput,
    remove_feature,
)

from tests.conftest import REPO

KIT_SAMPLE = "addonkit/Workspace/Source-arm/Products/SampleA/TestOEMInput.xml"
ENV = {"BLD_DIR": "/b/arm", "AKROOT": "/kits/10"}
HEAD = ('<?xml version="1.0" encoding="utf-8"?>\n'
        '<OEMInput xmlns="http://schemas.microsoft.com/embedded/2004/10/ImageUpdate">\n')
MINIMAL_BODY = """  <SOC>S</SOC>
  <Device>D</Device>
  <ReleaseType>Test</ReleaseType>
  <BuildType>fre</BuildType>
  <SupportedLanguages><UserInterface><Language>en-us</Language></UserInterface></SupportedLanguages>
  <BootUILanguage>en-us</BootUILanguage>
  <BootLocale>en-us</BootLocale>
"""


def write(tmp_path: Path, body: str, name: str = "TestOEMInput.xml") -> Path:
    p = tmp_path / name
    p.write_text(HEAD + body + "</OEMInput>\n")
    return p


def errors_of(exc: pytest.ExceptionInfo) -> list[InputError]:
    return exc.value.errors if isinstance(exc.value, InputErrors) else [exc.value]


@pytest.fixture
def kit_sample(samples, tmp_path) -> Path:
    src = samples / KIT_SAMPLE
    if not src.is_file():
        pytest.skip(f"{KIT_SAMPLE} not in the samples")
    dst = tmp_path / src.name
    shutil.copyfile(src, dst)
    return dst


def test_kit_sample_is_read_completely(kit_sample):
    oi = parse_oeminput(kit_sample, ENV)
    assert (oi.soc, oi.sv, oi.device) == ("RPi2", "RASPBERRY PI", "RPi2")
    assert oi.release_type is ReleaseType.TEST and not oi.is_retail
    assert oi.build_type is BuildType.FRE
    assert oi.description == "Contoso Windows 10 IoT Core RPi2 Test FFU with RPi2 BSP"
    assert oi.languages.user_interface == oi.languages.keyboard == oi.languages.speech == ("en-us",)
    assert (oi.boot_ui_language, oi.boot_locale) == ("en-us", "en-us")
    assert oi.resolutions == ("1024x768",)
    assert len(oi.microsoft_features) == 31
    assert len(oi.oem_features) == 4
    assert [f.id for f in oi.oem_features] == ["RPI2_DRIVERS", "RPI3_DRIVERS", "CUSTOM_CMD", "PROV_AUTO"]
    assert oi.microsoft_features[0] == FeatureRef("IOT_EFIESP", 0) and oi.microsoft_features[0].line == 40
    assert "IOT_ALLJOYN_APP" not in {f.id for f in oi.microsoft_features}  # commented out in the sample
    assert oi.oem_features[0].line == 89
    assert len(oi.additional_fms) == 4
    assert [str(f.path) for f in oi.additional_fms] == [
        "/b/arm/MergedFMs/RPi2FM.xml", "/b/arm/MergedFMs/OEMCommonFM.xml", "/b/arm/MergedFMs/OEMFM.xml",
        "/kits/10/FMFiles/arm/IoTUAPNonProductionPartnerShareFM.xml"]
    assert oi.additional_fms[0].text == r"%BLD_DIR%\MergedFMs\RPi2FM.xml" and oi.additional_fms[0].line == 30
    assert oi.product == "Windows 10 IoT Core"
    assert oi.package_files == ()
    assert oi.lines["ReleaseType"] == 10


def test_unknown_variable_is_an_error_at_its_line(kit_sample):
    with pytest.raises(InputErrors) as exc:
        parse_oeminput(kit_sample, {"BLD_DIR": "/b"})
    (e,) = errors_of(exc)
    assert e.line == 35 and "%AKROOT%" in e.what and e.path == str(kit_sample)


def test_without_an_environment_paths_stay_text(kit_sample):
    oi = parse_oeminput(kit_sample)
    assert all(f.path is None for f in oi.additional_fms)
    assert oi.additional_fms[-1].text.startswith("%AKROOT%")


def test_variables_are_case_insensitive_like_cmd():
    assert expand_env(r"%bld_dir%\x", {"BLD_DIR": "/b"}) == (r"/b\x", [])
    assert expand_env("%NOPE%", {}) == ("%NOPE%", ["NOPE"])


def test_every_problem_is_reported_at_its_line(tmp_path):
    p = write(tmp_path, """  <Device>D</Device>
  <ReleaseType>Retail</ReleaseType>
  <BuildType>fre</BuildType>
  <SupportedLanguages><UserInterface><Language>en-us</Language></UserInterface></SupportedLanguages>
  <BootUILanguage>en-us</BootUILanguage>
  <BootLocale>en-us</BootLocale>
  <Feautres />
  <Features>
    <OEM>
      <Feature>CUSTOM_CMD</Feature>
      <Feature>custom_cmd</Feature>
      <Package>X</Package>
    </OEM>
  </Features>
""")
    with pytest.raises(InputErrors) as exc:
        parse_oeminput(p)
    found = {(e.line, e.what.split(" ")[0]) for e in errors_of(exc)}
    msgs = "\n".join(str(e) for e in errors_of(exc))
    assert "<SOC> is missing" in msgs and "add <SOC>" in msgs
    assert "<ReleaseType> 'Retail' is not allowed" in msgs and "use Production for a retail image" in msgs
    assert "unknown element <Feautres>" in msgs and "did you mean <Features>?" in msgs
    assert "feature custom_cmd is listed twice in <OEM> (first at line 12)" in msgs
    assert "unknown element <Package> in <OEM>" in msgs
    assert (4, "<ReleaseType>") in found and (9, "unknown") in found and (13, "feature") in found
    assert (14, "unknown") in found
    assert len(errors_of(exc)) == 5


def test_missing_required_elements(tmp_path):
    p = write(tmp_path, "  <SOC>S</SOC>\n")
    with pytest.raises(InputErrors) as exc:
        parse_oeminput(p)
    missing = {e.what for e in errors_of(exc)}
    assert {"<Device> is missing", "<ReleaseType> is missing", "<BuildType> is missing",
            "<SupportedLanguages> is missing", "<BootUILanguage> is missing", "<BootLocale> is missing"} <= missing


def test_root_without_namespace_says_how_to_fix(tmp_path):
    p = tmp_path / "x.xml"
    p.write_text("<OEMInput><SOC>S</SOC></OEMInput>")
    with pytest.raises(InputError, match="is not <OEMInput") as exc:
        parse_oeminput(p)
    assert "add xmlns=" in exc.value.hint


def test_minimal_file_and_package_files(tmp_path):
    p = write(tmp_path, MINIMAL_BODY + r"""  <PackageFiles><PackageFile>%PKGBLD_DIR%\extra.cab</PackageFile></PackageFiles>
  <FormatDPP>true</FormatDPP>
""")
    oi = parse_oeminput(p, {"PKGBLD_DIR": "/p"})
    assert oi.package_files[0].path == Path("/p/extra.cab") and oi.format_dpp is True
    assert oi.microsoft_features == oi.oem_features == () and oi.additional_fms == ()


def test_repository_oeminputs_parse():
    found = [*REPO.glob("products/*/*OEMInput.xml"), *REPO.glob("bsp/*/OEMInputSamples/*OEMInput.xml")]
    for p in found:
        parse_oeminput(p)


# -- edits ----------------------------------------------------------------------------------------------------
def test_add_then_remove_gives_back_the_same_bytes(kit_sample):
    original = kit_sample.read_bytes()
    assert add_feature(kit_sample, "SEC_BITLOCKER", oem=True) is True
    assert add_feature(kit_sample, "sec_bitlocker", oem=True) is False  # duplicates are case-insensitive
    assert add_feature(kit_sample, "IOT_SSH", oem=False) is False
    assert add_feature(kit_sample, "IOT_ALLJOYN_APP", oem=False) is True  # only a comment mentioned it
    text = kit_sample.read_text()
    assert "      <Feature>PROV_AUTO</Feature>\n      <Feature>SEC_BITLOCKER</Feature>\n    </OEM>" in text
    assert "<!--Feature>IOT_ALLJOYN_APP</Feature-->" in text  # comments stay
    oi = parse_oeminput(kit_sample, ENV)
    assert len(oi.oem_features) == 5 and len(oi.microsoft_features) == 32
    assert remove_feature(kit_sample, "SEC_BITLOCKER", oem=True) is True
    assert remove_feature(kit_sample, "IOT_ALLJOYN_APP", oem=False) is True
    assert remove_feature(kit_sample, "IOT_ALLJOYN_APP", oem=False) is False
    assert remove_feature(kit_sample, "IOT_SSH", oem=True) is False  # it is a Microsoft feature
    assert kit_sample.read_bytes() == original


def test_edits_keep_bom_and_crlf_and_open_empty_lists(tmp_path):
    p = tmp_path / "RetailOEMInput.xml"
    body = HEAD + MINIMAL_BODY + "  <Features>\n    <Microsoft />\n  </Features>\n  <Product>P</Product>\n</OEMInput>\n"
    p.write_bytes(b"\xef\xbb\xbf" + body.replace("\n", "\r\n").encode())
    assert add_feature(p, "IOT_SSH", oem=False)
    assert add_feature(p, "CUSTOM_CMD", oem=True)
    data = p.read_bytes()
    assert data.startswith(b"\xef\xbb\xbf") and b"\n" not in data.replace(b"\r\n", b"")
    text = data[3:].decode()
    assert ("    <Microsoft>\r\n      <Feature>IOT_SSH</Feature>\r\n    </Microsoft>\r\n"
            "    <OEM>\r\n      <Feature>CUSTOM_CMD</Feature>\r\n    </OEM>\r\n  </Features>") in text
    oi = parse_oeminput(p)
    assert [f.id for f in oi.microsoft_features] == ["IOT_SSH"] and [f.id for f in oi.oem_features] == ["CUSTOM_CMD"]


def test_add_creates_features_before_product(tmp_path):
    p = write(tmp_path, MINIMAL_BODY + "  <Product>Windows 10 IoT Core</Product>\n")
    assert add_feature(p, "CUSTOM_CMD", oem=True)
    text = p.read_text()
    assert ("  <Features>\n    <OEM>\n      <Feature>CUSTOM_CMD</Feature>\n    </OEM>\n  </Features>\n"
            "  <Product>") in text
    assert [f.id for f in parse_oeminput(p).oem_features] == ["CUSTOM_CMD"]


def test_edits_refuse_bad_ids_and_broken_files(tmp_path):
    p = write(tmp_path, MINIMAL_BODY)
    before = p.read_bytes()
    with pytest.raises(InputError, match="feature ID"):
        add_feature(p, "BAD ID", oem=True)
    bad = write(tmp_path, "  <SOC>S</SOC>\n", "Bad.xml")
    with pytest.raises(InputErrors):
        add_feature(bad, "X", oem=True)
    assert p.read_bytes() == before


def test_text_document_spans_survive_tricky_markup(tmp_path):
    p = tmp_path / "t.xml"
    p.write_text('<?xml version="1.0"?>\n<!-- <fake> -->\n<r a="x>y">\n  <![CDATA[ <no> ]]>\n  <c/>\n</r>\n')
    doc = XmlTextDocument.load(p)
    c = doc.child(doc.root, "c")
    doc.insert_child(doc.root, [(0, "<d>1</d>")])
    assert doc.text.endswith("  <c/>\n  <d>1</d>\n</r>\n")
    doc.remove(doc.child(doc.root, "c"))
    assert "<c/>" not in doc.text and c is not None
    doc.set_text(doc.child(doc.root, "d"), "a<b")
    assert "<d>a&lt;b</d>" in doc.text
