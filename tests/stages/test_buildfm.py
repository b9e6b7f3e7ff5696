"""buildfm end to end: merged FMs, feature identifier packages checked like any package, queries, and a
Microsoft package root given as an ISO image read with pycdlib."""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from lxml import etree

from iotbuild.models.featuremanifest import parse_feature_manifest
from tests.conftest import REPO, require_tool

NS = "{http://schemas.microsoft.com/embedded/2004/10/ImageUpdate}"
CLI = [sys.executable, "-m", "iotbuild"]


def run_cli(ws: Path, *args: str, check: bool = True, env: dict | None = None) -> subprocess.CompletedProcess:
    p = subprocess.run([*CLI, *args], cwd=ws, capture_output=True, text=True, timeout=300,
                       env={**os.environ, "SOURCE_DATE_EPOCH": "1700000000", **(env or {})})
    if check and p.returncode != 0:
        raise AssertionError(f"{args}: exit {p.returncode}\n{p.stdout}\n{p.stderr}")
    return p


def copy_workspace(dest: Path) -> Path:
    for d in ("workspace", "packages", "bsp", "products"):
        shutil.copytree(REPO / d, dest / d, ignore=shutil.ignore_patterns("Certs", "*.sys"))
    run_cli(dest, "preparesamples")
    return dest


@pytest.fixture(scope="module")
def fm_ws(tmp_path_factory) -> Path:
    ws = copy_workspace(tmp_path_factory.mktemp("fm"))
    run_cli(ws, "buildfm", "oem")  # builds the OEM packages it needs first
    run_cli(ws, "buildfm", "QEMUx64")
    return ws


FIPS = {"Contoso.BASE.OEMCOMMON.MainOS", "Contoso.BASE.OEMCOMMON.EFIESP", "Contoso.OEM_CUSTOM_FILES.OEMCOMMON.MainOS",
        "Contoso.OEM_CUSTOM_CMD.OEMCOMMON.MainOS", "Contoso.OEM_REGISTRY_ALLTYPES.OEMCOMMON.MainOS",
        "Contoso.OEM_CUSTOM_OOBE.OEMCOMMON.Data", "Contoso.OEM_SERVICES_HEARTBEAT.OEM.MainOS",
        "Contoso.DEVICELAYOUT_QEMUX64_SOC.QEMUx64.MainOS", "Contoso.OEMDEVICEPLATFORM_QEMUX64_DEVICE.QEMUx64.MainOS",
        "Contoso.OEM_QEMUX64_SAMPLEDRIVER.QEMUx64.MainOS", "Contoso.OEM_QEMUX64_DRIVERS.QEMUx64.MainOS"}


def test_outputs_exist(fm_ws):
    b = fm_ws / "build/amd64"
    assert {p.name for p in (b / "MergedFMs").iterdir()} == {"OEMCommonFM.xml", "OEMFM.xml", "QEMUx64FM.xml"}
    assert {p.name for p in (b / "InputFMs").iterdir()} == {"OEMCommonFM.xml", "OEMFM.xml", "OEMFMFileList.xml",
                                                            "QEMUx64FM.xml", "QEMUx64FMFileList.xml"}
    assert (b / "FIPPackage_oem.log").is_file() and (b / "FIPPackage_QEMUx64.log").is_file()
    assert {p.stem for p in (b / "pkgs").glob("*.cab")} >= FIPS


def test_input_fms_have_tokens_replaced(fm_ws):
    text = (fm_ws / "build/amd64/InputFMs/OEMCommonFM.xml").read_text()
    assert "%PKGBLD_DIR%" not in text and "%OEM_NAME%" not in text
    assert "Contoso.Registry.Version.cab" in text
    assert 'OwnerName="Contoso"' in (fm_ws / "build/amd64/InputFMs/OEMFMFileList.xml").read_text()


def test_merged_fm_lists_fips_and_absolute_paths(fm_ws):
    merged = fm_ws / "build/amd64/MergedFMs/OEMCommonFM.xml"
    fm = parse_feature_manifest(merged, {})
    pkgs = fm_ws / "build/amd64/pkgs"
    for ref in fm.packages:
        assert Path(ref.location).is_file(), ref.location
        assert Path(ref.directory) == pkgs
    fips = {r.name for r in fm.packages if r.fip}
    assert fips == {f"{n}.cab" for n in FIPS if ".OEMCOMMON." in n}
    oobe_fip = next(r for r in fm.packages if r.name == "Contoso.OEM_CUSTOM_OOBE.OEMCOMMON.Data.cab")
    assert oobe_fip.partition == "Data" and oobe_fip.feature_ids == ("CUSTOM_OOBE",)


def test_fips_pass_the_same_checks_as_any_package(fm_ws, tmp_path):
    require_tool("cabextract")
    require_tool("osslsigncode")
    root = fm_ws / "workspace/Certs/test/root.pem"
    for name in sorted(FIPS):
        cab = fm_ws / f"build/amd64/pkgs/{name}.cab"
        t = subprocess.run(["cabextract", "-t", cab], capture_output=True, text=True)
        assert t.returncode == 0 and "All done, no errors" in t.stdout, name
        v = subprocess.run(["osslsigncode", "verify", "-CAfile", root, "-in", cab], capture_output=True, text=True)
        assert v.returncode == 0 and "Signature verification: ok" in v.stdout, (name, v.stdout)
        out = tmp_path / name
        out.mkdir()
        subprocess.run(["cabextract", "-q", "-d", out, cab], check=True, capture_output=True)
        cat = subprocess.run(["osslsigncode", "verify", "-verbose", "-CAfile", root, "-in", out / "content.cat"],
                             capture_output=True, text=True)
        assert cat.returncode == 0, cat.stdout
        members = set(re.findall(r"Message digest: ([0-9A-F]{64})", cat.stdout.split("Catalog members:")[1]
                                 .split("Message digest algorithm")[0]))
        import hashlib
        for f in out.iterdir():
            if f.name != "content.cat":
                assert hashlib.sha256(f.read_bytes()).hexdigest().upper() in members, (name, f.name)
        r = json.loads(run_cli(fm_ws, "verifycab", str(cab), "--json").stdout)
        assert r["ok"] and r["package"] == name


def test_fip_records_member_hashes(fm_ws, tmp_path):
    import hashlib
    cab = fm_ws / "build/amd64/pkgs/Contoso.OEM_QEMUX64_DRIVERS.QEMUx64.MainOS.cab"
    subprocess.run(["cabextract", "-q", "-d", tmp_path, cab], check=True, capture_output=True)
    (xml,) = [p for p in tmp_path.iterdir() if p.suffix == ".xml" and p.name != "man.dsm.xml"]
    root = etree.fromstring(xml.read_bytes())
    assert root.get("Key") == "OEM_QEMUX64_DRIVERS" and root.get("FMID") == "QEMUx64"
    (pkg,) = root
    member = fm_ws / "build/amd64/pkgs/Contoso.QEMUx64.SampleDriver.cab"
    assert pkg.get("Name") == member.name and pkg.get("Sha256") == hashlib.sha256(member.read_bytes()).hexdigest()


def test_rebuild_is_byte_identical(fm_ws):
    pkgs = fm_ws / "build/amd64/pkgs"
    before = {n: (pkgs / f"{n}.cab").read_bytes() for n in FIPS}
    merged = (fm_ws / "build/amd64/MergedFMs/QEMUx64FM.xml").read_bytes()
    run_cli(fm_ws, "buildfm", "all")
    assert before == {n: (pkgs / f"{n}.cab").read_bytes() for n in FIPS}
    assert merged == (fm_ws / "build/amd64/MergedFMs/QEMUx64FM.xml").read_bytes()


def test_queries(fm_ws):
    feats = json.loads(run_cli(fm_ws, "listfeatures", "--json").stdout)["features"]
    assert {f["id"] for f in feats} == {"CUSTOM_FILES", "CUSTOM_CMD", "REGISTRY_ALLTYPES", "CUSTOM_OOBE",
                                        "SERVICES_HEARTBEAT", "QEMUX64_SAMPLEDRIVER", "QEMUX64_DRIVERS"}
    pk = json.loads(run_cli(fm_ws, "featurepackages", "OEM_CUSTOM_OOBE", "--json").stdout)
    assert pk["feature"] == "CUSTOM_OOBE" and [p["name"] for p in pk["packages"]] == ["Contoso.Custom.OOBE.cab"]
    bad = run_cli(fm_ws, "featurepackages", "CUSTOM_FILEZ", check=False)
    assert bad.returncode == 1 and "did you mean CUSTOM_FILES" in bad.stderr


def test_checkfeatures_and_checkpackages(fm_ws):
    run_cli(fm_ws, "checkfeatures", "SampleA", "Test")
    # SampleA's product packages (Provisioning.Auto wraps its ppkg) are built per product, as buildimage does
    run_cli(fm_ws, "buildppkg", "SampleA")
    run_cli(fm_ws, "buildpkg", "Provisioning.Auto", "--product", "SampleA")
    res = json.loads(run_cli(fm_ws, "checkpackages", "SampleA", "Retail", "--json").stdout)
    names = {p["name"] for p in res["packages"]}
    assert "Contoso.Custom.OOBE.cab" in names and "Contoso.QEMUx64.DeviceLayout.cab" in names
    assert "Contoso.OEM_CUSTOM_OOBE.OEMCOMMON.Data.cab" in names


def test_checkfeatures_names_the_undefined_feature_and_line(fm_ws, tmp_path):
    ws = copy_workspace(tmp_path / "w")
    shutil.copytree(fm_ws / "build", ws / "build")
    shutil.copytree(fm_ws / "workspace/Certs", ws / "workspace/Certs")
    oi = ws / "products/SampleA/TestOEMInput.xml"
    lines = oi.read_text().splitlines()
    at = next(i for i, line in enumerate(lines) if "<Feature>CUSTOM_FILES</Feature>" in line)
    lines.insert(at + 1, "      <Feature>NOT_A_FEATURE</Feature>")
    oi.write_text("\n".join(lines) + "\n")
    p = run_cli(ws, "checkfeatures", "SampleA", "Test", check=False)
    assert p.returncode == 1 and "Traceback" not in p.stderr
    assert f"TestOEMInput.xml:{at + 2}: OEM feature NOT_A_FEATURE is not defined" in p.stderr


# --- Microsoft packages from an ISO ------------------------------------------------------------------------------

MS_FM = """<?xml version="1.0" encoding="utf-8"?>
<FeatureManifest xmlns="http://schemas.microsoft.com/embedded/2004/10/ImageUpdate">
  <Features>
    <Microsoft>
      <PackageFile Path="%MSPKG_DIR%" Name="Microsoft.Sample.Feature.cab">
        <FeatureIDs><FeatureID>IOT_SAMPLE</FeatureID></FeatureIDs>
      </PackageFile>
    </Microsoft>
  </Features>
</FeatureManifest>
"""


def make_iso(path: Path, cab: Path) -> None:
    import pycdlib
    iso = pycdlib.PyCdlib()
    iso.new(interchange_level=3, joliet=3)
    dirs = [("/MSPKGS", "/MSPackages"), ("/MSPKGS/RETAIL", "/MSPackages/Retail"),
            ("/MSPKGS/RETAIL/AMD64", "/MSPackages/Retail/amd64"), ("/MSPKGS/RETAIL/AMD64/FRE", "/MSPackages/Retail/amd64/fre"),
            ("/FMFILES", "/FMFiles")]
    for iso_path, joliet in dirs:
        iso.add_directory(iso_path, joliet_path=joliet)
    data = cab.read_bytes()
    iso.add_fp(io.BytesIO(data), len(data), "/MSPKGS/RETAIL/AMD64/FRE/MSSAMPLE.CAB;1",
               joliet_path="/MSPackages/Retail/amd64/fre/Microsoft.Sample.Feature.cab")
    fm = MS_FM.encode()
    iso.add_fp(io.BytesIO(fm), len(fm), "/FMFILES/MSFM.XML;1", joliet_path="/FMFiles/MicrosoftSampleFM.xml")
    iso.write(str(path))
    iso.close()


def test_microsoft_packages_from_an_iso(fm_ws, tmp_path):
    ws = copy_workspace(tmp_path / "w")
    shutil.copytree(fm_ws / "build", ws / "build")
    shutil.copytree(fm_ws / "workspace/Certs", ws / "workspace/Certs")
    # a signed cab standing in for a Microsoft package (its chain is not checked against our roots)
    ms_cab = tmp_path / "Microsoft.Sample.Feature.cab"
    shutil.copy(fm_ws / "build/amd64/pkgs/Contoso.Registry.Version.cab", ms_cab)
    iso = tmp_path / "iotcore-packages.iso"
    make_iso(iso, ms_cab)
    env = {"MSPKG_ROOT": str(iso)}
    feats = json.loads(run_cli(ws, "listfeatures", "--json", env=env).stdout)["features"]
    sample = next(f for f in feats if f["id"] == "IOT_SAMPLE")
    assert sample["owner"] == "Microsoft" and sample["packages"] == ["Microsoft.Sample.Feature.cab"]
    # a board FM that uses a Microsoft package: buildfm copies it out of the ISO and verifies it
    bsp_fm = ws / "bsp/QEMUx64/Packages/QEMUx64FM.xml"
    bsp_fm.write_text(bsp_fm.read_text().replace(
        "<BasePackages>", '<BasePackages><PackageFile Path="%MSPKG_DIR%" Name="Microsoft.Sample.Feature.cab"/>', 1))
    run_cli(ws, "buildfm", "QEMUx64", env=env)
    assert (ws / "build/amd64/mspkgs/Microsoft.Sample.Feature.cab").read_bytes() == ms_cab.read_bytes()
    # a product may now name the Microsoft feature
    oi = ws / "products/SampleA/TestOEMInput.xml"
    oi.write_text(oi.read_text().replace("<Microsoft>", "<Microsoft><Feature>IOT_SAMPLE</Feature>", 1))
    run_cli(ws, "checkfeatures", "SampleA", "Test", env=env)
    p = run_cli(ws, "checkfeatures", "SampleA", "Test", check=False)  # without the ISO the feature is unknown
    assert p.returncode == 1 and "Microsoft feature IOT_SAMPLE is not defined" in p.stderr and "MSPkgRoot" in p.stderr
