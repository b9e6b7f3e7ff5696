"""Authoring commands through the real CLI on a copy of the sample workspace: what they write parses with
the project's own models, and what newpkg / inf2pkg write builds, merges and verifies."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from iotbuild import samples
from iotbuild.formats.pe import minimal_driver
from iotbuild.models import wmxml
from iotbuild.models.featuremanifest import parse_feature_manifest, parse_fm_list
from iotbuild.models.oeminput import ReleaseType, parse_oeminput
from iotbuild.models.workspace import load_workspace

from tests.conftest import REPO

CLI = [sys.executable, "-m", "iotbuild"]
INF = (REPO / "bsp/QEMUx64/Packages/QEMUx64.SampleDriver/qemusample.inf").read_text()


def run_cli(ws: Path, *args: str, check: bool = True, env: dict | None = None) -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in os.environ.items() if k not in ("BSP_VERSION", "IOTBUILD_WORKSPACE")}
    full_env.update({"SOURCE_DATE_EPOCH": "1700000000", **(env or {})})
    p = subprocess.run([*CLI, *args], check=False, cwd=ws, capture_output=True, text=True, env=full_env, timeout=300)
    if check and p.returncode != 0:
        raise AssertionError(f"{args} failed ({p.returncode}):\n{p.stdout}\n{p.stderr}")
    assert "Traceback" not in p.stderr, p.stderr
    return p


def run_json(ws: Path, *args: str) -> dict:
    return json.loads(run_cli(ws, *args, "--json").stdout)


def fail(ws: Path, *args: str) -> str:
    p = run_cli(ws, *args, check=False)
    assert p.returncode == 1, (p.stdout, p.stderr)
    return p.stderr


@pytest.fixture
def ws(tmp_path) -> Path:
    root = tmp_path / "ws"
    for d in ("workspace", "packages", "bsp", "products"):
        if (REPO / d).exists():
            shutil.copytree(REPO / d, root / d, ignore=shutil.ignore_patterns("Certs", "*.sys"))
    samples.prepare(root)  # generated inputs (the sample driver's .sys) are not in a clean clone
    return root


def tokens(ws: Path) -> dict[str, str]:
    pkgs = str(ws / "build/amd64/pkgs")
    return {"PKGBLD_DIR": pkgs, "OEM_NAME": "Contoso", "BSPPKG_DIR": pkgs, "MSPKG_DIR": "/ms"}


def load_wm(ws: Path, path: Path) -> wmxml.PackageDefinition:
    w = load_workspace(ws, env={})
    return wmxml.load(path, w.variables(release_dir=path.parent), cpu="amd64", roots=(ws.resolve(),))


def oem_feature_ids(ws: Path, fm: Path) -> dict[str, list]:
    return parse_feature_manifest(fm, tokens(ws)).features("OEM")


def make_driver(folder: Path, name: str = "mydrv") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    inf = folder / f"{name}.inf"
    inf.write_text(INF.replace("qemusample", name).replace("QemuSample", name.capitalize())
                   .replace("QEMU0002", "MYDRV0001"))
    (folder / f"{name}.sys").write_bytes(minimal_driver(timestamp=946684800))
    return inf


# -- newbsp / newproduct ---------------------------------------------------------------------------------------
def test_newbsp_writes_fm_list_and_oeminput_samples(ws):
    out = run_json(ws, "newbsp", "MyBoard")
    b = ws / "bsp/MyBoard"
    assert sorted(out["written"]) == sorted(str(p.relative_to(ws)) for p in b.rglob("*") if p.is_file())
    assert len(out["written"]) == 4
    fm = parse_feature_manifest(b / "Packages/MyBoardFM.xml", tokens(ws))
    assert fm.packages == ()
    fl = parse_fm_list(b / "Packages/MyBoardFMFileList.xml", fm_directory=b / "Packages", owner_name="Contoso")
    (entry,) = fl.entries
    assert (entry.id, entry.path.name, entry.cpu_type, entry.owner_type) == ("MyBoard", "MyBoardFM.xml", "AMD64", "OEM")
    test = parse_oeminput(b / "OEMInputSamples/TestOEMInput.xml", {"BLD_DIR": "/b", "AKROOT": "/k"})
    retail = parse_oeminput(b / "OEMInputSamples/RetailOEMInput.xml", {"BLD_DIR": "/b"})
    assert (test.soc, test.device) == ("MyBoard_SOC", "MyBoard_Device")
    assert test.release_type is ReleaseType.TEST and retail.release_type is ReleaseType.PRODUCTION
    assert [str(f.path) for f in retail.additional_fms] == [
        "/b/MergedFMs/MyBoardFM.xml", "/b/MergedFMs/OEMCommonFM.xml", "/b/MergedFMs/OEMFM.xml"]
    assert str(test.additional_fms[-1].path) == "/k/FMFiles/x64/IoTUAPNonProductionPartnerShareFM.xml"
    assert [f.id for f in test.microsoft_features] == [f.id for f in retail.microsoft_features] == \
        ["IOT_EFIESP", "IOT_DMAP_DRIVER"]
    assert test.oem_features == retail.oem_features == ()
    assert "already exists" in fail(ws, "newbsp", "MyBoard")
    assert "may only contain" in fail(ws, "newbsp", "My.Board")
    assert not [p for p in (ws / "bsp").iterdir() if p.name.startswith(".")]  # no staging left behind


def test_newbsp_then_buildfm_merges_it(ws):
    run_cli(ws, "newbsp", "MyBoard")
    run_cli(ws, "buildfm", "MyBoard")
    assert (ws / "build/amd64/MergedFMs/MyBoardFM.xml").is_file()


def test_newproduct_from_a_new_bsp(ws):
    run_cli(ws, "newbsp", "MyBoard")
    p = run_cli(ws, "newproduct", "SampleB", "MyBoard")
    assert p.stderr.startswith("newproduct: wrote products/SampleB/")
    prod = ws / "products/SampleB"
    assert sorted(x.name for x in prod.iterdir()) == ["RetailOEMInput.xml", "SampleBSettings.xml", "TestOEMInput.xml",
                                                      "prov"]
    assert list((prod / "prov").iterdir()) == []
    for cfg in ("Test", "Retail"):
        oi = parse_oeminput(prod / f"{cfg}OEMInput.xml")
        assert oi.description == f"Contoso SampleB {cfg} image with the MyBoard BSP"
    from iotbuild.xmlsafe import parse
    s = parse(prod / "SampleBSettings.xml")
    assert [s.findtext(t) for t in ("Name", "Arch", "BSP")] == ["SampleB", "x64", "MyBoard"]
    assert {c.tag: c.text for c in s.find("SMBIOS")} == {
        "Manufacturer": "Contoso", "Family": "ContosoFamily", "ProductName": "SampleB", "SKUNumber": "SampleB01",
        "BaseboardManufacturer": "Fabrikam", "BaseboardProduct": "SampleB_v01"}
    assert [b.get("Name") for b in s.findall("BuildConfig")] == ["Test", "Retail"]


def test_newproduct_copies_the_board_samples_changing_only_the_description(ws):
    run_cli(ws, "newproduct", "SampleC", "QEMUx64")
    for cfg in ("Test", "Retail"):
        src = (ws / f"bsp/QEMUx64/OEMInputSamples/{cfg}OEMInput.xml").read_text().splitlines()
        dst = (ws / f"products/SampleC/{cfg}OEMInput.xml").read_text().splitlines()
        diff = [(a, b) for a, b in zip(src, dst) if a != b]
        assert len(src) == len(dst) and len(diff) == 1 and "<Description>" in diff[0][1]
        assert "SampleC" in diff[0][1]
    run_cli(ws, "preparesamples")
    run_cli(ws, "buildpkg")
    run_cli(ws, "buildfm", "all")
    run_cli(ws, "checkfeatures", "SampleC", "Test")


def test_newproduct_errors(ws):
    run_cli(ws, "newbsp", "Empty")
    shutil.rmtree(ws / "bsp/Empty/OEMInputSamples")
    assert "already exists" in fail(ws, "newproduct", "SampleA", "QEMUx64")
    err = fail(ws, "newproduct", "SampleX", "qemux64")
    assert "BSP 'qemux64' does not exist" in err and "named 'QEMUx64'" in err
    assert "invoke newbsp Nope" in fail(ws, "newproduct", "SampleX", "Nope")
    assert "has no OEMInput samples" in fail(ws, "newproduct", "SampleX", "Empty")
    assert not (ws / "products/SampleX").exists()


# -- newpkg ----------------------------------------------------------------------------------------------------
def test_newpkg_writes_a_package_that_builds_and_its_feature(ws):
    out = run_json(ws, "newpkg", "Custom.Settings")
    assert out["written"] == ["packages/Custom.Settings/Custom.Settings.wm.xml"]
    assert out["changed"] == ["packages/OEMCommonFM.xml"] and out["feature_id"] == "CUSTOM_SETTINGS"
    wm = ws / "packages/Custom.Settings/Custom.Settings.wm.xml"
    text = wm.read_text()
    assert text.splitlines()[1].startswith('<identity xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:xsi=')
    assert "\n    <onecorePackageInfo " in text and "\t" not in text
    d = load_wm(ws, wm)
    assert (d.namespace, d.name, d.cab_name) == ("Custom", "Settings", "Contoso.Custom.Settings.cab")
    assert d.partition is wmxml.Partition.MAINOS
    keys = {k.path: {v.name: v.data for v in k.values} for k in d.reg_keys}
    assert keys == {r"HKEY_LOCAL_MACHINE\Software\Contoso\Custom\Settings": {"StringValue": "Test string",
                                                                            "DWordValue": 0x12AB34CD},
                    r"HKEY_LOCAL_MACHINE\Software\Contoso\Custom\Settings\EmptyKey": {}}
    feats = oem_feature_ids(ws, ws / "packages/OEMCommonFM.xml")
    assert [p.name for p in feats["CUSTOM_SETTINGS"]] == ["Contoso.Custom.Settings.cab"]

    build = run_json(ws, "buildpkg", "Custom.Settings")
    assert [p["status"] for p in build["packages"]] == ["built"]
    v = run_json(ws, "verifycab", "build/amd64/pkgs/Contoso.Custom.Settings.cab")
    assert v["ok"] is True

    assert "already exists" in fail(ws, "newpkg", "Custom.Settings")
    assert "already exists" in fail(ws, "newpkg", "Registry.Version")
    assert "is not Namespace.Name" in fail(ws, "newpkg", "NoDot")
    assert "is not Namespace.Name" in fail(ws, "newpkg", "Bad-Name.X")
    assert "partition 'Nowhere' unknown" in fail(ws, "newpkg", "A.B", "--partition", "Nowhere")


def test_newpkg_for_data_partition_builds_and_merges(ws):
    run_cli(ws, "newpkg", "Custom.DataFiles", "--partition", "data")
    d = load_wm(ws, ws / "packages/Custom.DataFiles/Custom.DataFiles.wm.xml")
    assert d.partition is wmxml.Partition.DATA and d.reg_keys == () and len(d.files) == 1
    (ref,) = oem_feature_ids(ws, ws / "packages/OEMCommonFM.xml")["CUSTOM_DATAFILES"]
    assert ref.partition == "Data"
    run_cli(ws, "preparesamples")
    run_cli(ws, "buildpkg")
    run_cli(ws, "buildfm", "oem")


def test_newpkg_skips_a_cab_the_fm_already_lists(ws):
    run_cli(ws, "newpkg", "Custom.Settings")
    shutil.rmtree(ws / "packages/Custom.Settings")
    fm_before = (ws / "packages/OEMCommonFM.xml").read_bytes()
    out = run_json(ws, "newpkg", "Custom.Settings")
    assert out["changed"] == [] and "already lists %OEM_NAME%.Custom.Settings.cab" in out["warnings"][0]
    assert (ws / "packages/OEMCommonFM.xml").read_bytes() == fm_before


def test_newpkg_without_oemcommonfm_says_so(ws):
    (ws / "packages/OEMCommonFM.xml").unlink()
    p = run_cli(ws, "newpkg", "Custom.Settings")
    assert "warning: packages/OEMCommonFM.xml does not exist, so no feature was added" in p.stderr
    assert '<PackageFile Path="%PKGBLD_DIR%" Name="%OEM_NAME%.Custom.Settings.cab">' in p.stderr
    assert (ws / "packages/Custom.Settings/Custom.Settings.wm.xml").is_file()


# -- inf2pkg ---------------------------------------------------------------------------------------------------
def test_inf2pkg_copies_the_driver_and_builds(ws, tmp_path):
    inf = make_driver(tmp_path / "drv")
    out = run_json(ws, "inf2pkg", str(inf))
    assert sorted(out["written"]) == ["packages/Drivers.mydrv/Drivers.mydrv.wm.xml",
                                      "packages/Drivers.mydrv/mydrv.inf", "packages/Drivers.mydrv/mydrv.sys"]
    assert out["changed"] == ["packages/OEMFM.xml"] and out["feature_id"] == "DRIVERS_MYDRV"
    d = load_wm(ws, ws / "packages/Drivers.mydrv/Drivers.mydrv.wm.xml")
    assert [x.inf.name for x in d.drivers] == ["mydrv.inf"]
    assert "DRIVERS_MYDRV" in oem_feature_ids(ws, ws / "packages/OEMFM.xml")
    run_cli(ws, "buildpkg", "Drivers.mydrv")
    v = run_json(ws, "verifycab", "build/amd64/pkgs/Contoso.Drivers.mydrv.cab")
    assert v["ok"] is True
    assert "already exists" in fail(ws, "inf2pkg", str(inf))


def test_inf2pkg_into_a_bsp_with_a_name(ws, tmp_path):
    run_cli(ws, "newbsp", "MyBoard")
    inf = make_driver(tmp_path / "drv", "gpio")
    run_cli(ws, "inf2pkg", str(inf), "--name", "MyBoard.GPIO", "--bsp", "MyBoard")
    assert (ws / "bsp/MyBoard/Packages/MyBoard.GPIO/gpio.sys").is_file()
    assert "MYBOARD_GPIO" in oem_feature_ids(ws, ws / "bsp/MyBoard/Packages/MyBoardFM.xml")
    run_cli(ws, "buildpkg", "MyBoard.GPIO")
    run_cli(ws, "buildfm", "MyBoard")


def test_inf2pkg_errors(ws, tmp_path):
    assert "INF file not found" in fail(ws, "inf2pkg", str(tmp_path / "nope.inf"))
    inf = make_driver(tmp_path / "drv", "my-drv")
    assert "pass --name" in fail(ws, "inf2pkg", str(inf))
    (tmp_path / "drv/my-drv.sys").unlink()
    err = fail(ws, "inf2pkg", str(inf), "--name", "Drivers.X")
    assert "my-drv.inf:" in err and "does not exist" in err
    assert not (ws / "packages/Drivers.X").exists()


# -- addfid / removefid ----------------------------------------------------------------------------------------
def test_addfid_and_removefid(ws):
    prod = ws / "products/SampleA"
    before = {p.name: p.read_bytes() for p in prod.glob("*OEMInput.xml")}
    run_cli(ws, "addfid", "SampleA", "Test", "CUSTOM_NEW", "--oem")
    out = run_json(ws, "addfid", "SampleA", "All", "CUSTOM_NEW", "--oem")
    assert out["changed"] == ["products/SampleA/RetailOEMInput.xml"]
    assert out["unchanged"] == ["products/SampleA/TestOEMInput.xml"]  # already added there
    assert "CUSTOM_NEW" in [f.id for f in parse_oeminput(prod / "RetailOEMInput.xml").oem_features]
    p = run_cli(ws, "addfid", "SampleA", "test", "IOT_SSH")
    assert p.stderr.strip() == "addfid: added Microsoft feature IOT_SSH to products/SampleA/TestOEMInput.xml"
    assert "IOT_SSH" in [f.id for f in parse_oeminput(prod / "TestOEMInput.xml").microsoft_features]
    assert "already listed in" in run_cli(ws, "addfid", "SampleA", "Test", "IOT_SSH").stderr
    assert len(run_json(ws, "removefid", "SampleA", "All", "CUSTOM_NEW", "--oem")["changed"]) == 2
    run_cli(ws, "removefid", "SampleA", "Test", "IOT_SSH")
    assert "not listed in" in run_cli(ws, "removefid", "SampleA", "Test", "IOT_SSH").stderr
    after = {p.name: p.read_bytes() for p in prod.glob("*OEMInput.xml")}
    assert after["RetailOEMInput.xml"] == before["RetailOEMInput.xml"]
    # The Test sample's "<Microsoft />" was opened for IOT_SSH and stays open once it is removed again.
    assert after["TestOEMInput.xml"].replace(b"<Microsoft>\n    </Microsoft>", b"<Microsoft />") == \
        before["TestOEMInput.xml"]
    assert "product 'SampleZ' does not exist" in fail(ws, "addfid", "SampleZ", "All", "X")
    assert "configuration 'Debug' unknown" in fail(ws, "addfid", "SampleA", "Debug", "X")
    assert "feature ID" in fail(ws, "addfid", "SampleA", "Test", "A B")


# -- setversion ------------------------------------------------------------------------------------------------
def test_setversion_rewrites_one_line_and_rebuilds_everything(ws):
    cfg = ws / "workspace/IoTWorkspace.xml"
    run_cli(ws, "preparesamples")
    run_cli(ws, "buildpkg")
    before = cfg.read_text().splitlines()
    out = run_json(ws, "setversion", "10.0.2.0")
    assert (out["old"], out["version"], out["arch"]) == ("10.0.1.0", "10.0.2.0", "x64")
    after = cfg.read_text().splitlines()
    changed = [(a, b) for a, b in zip(before, after) if a != b]
    assert len(before) == len(after) and changed == [("        <BSPVersion>10.0.1.0</BSPVersion>",
                                                      "        <BSPVersion>10.0.2.0</BSPVersion>")]
    assert load_workspace(ws, env={}).bsp_version == "10.0.2.0"
    build = run_json(ws, "buildpkg", "--why")
    assert build["packages"] and all(p["status"] == "built" and "package version changed" in p["reasons"]
                                     for p in build["packages"])
    assert "nothing changed" in run_cli(ws, "setversion", "10.0.2.0").stderr
    for bad in ("10.0.2", "10.0.2.70000", "a.b.c.d"):
        assert "is not a.b.c.d" in fail(ws, "setversion", bad)


def test_setversion_adds_a_missing_env(ws):
    run_cli(ws, "setversion", "1.2.3.4", env={"ARCH": "arm"})
    assert load_workspace(ws, env={"ARCH": "arm"}).bsp_version == "1.2.3.4"
    assert load_workspace(ws, env={}).bsp_version == "10.0.1.0"


# -- every command ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("task", ["newproduct", "newbsp", "newpkg", "inf2pkg", "addfid", "removefid", "setversion"])
def test_help(task):
    p = subprocess.run([*CLI, task, "--help"], check=False, capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert "Docstring:" in p.stdout and "--json" in p.stdout


def test_create_new_never_overwrites(tmp_path):
    from iotbuild.errors import InputError
    from iotbuild.tasks.author import create_new
    f = tmp_path / "a.xml"
    create_new(f, b"one")
    with pytest.raises(InputError, match="never overwrites"):
        create_new(f, b"two")
    assert f.read_bytes() == b"one" and [p.name for p in tmp_path.iterdir()] == ["a.xml"]
