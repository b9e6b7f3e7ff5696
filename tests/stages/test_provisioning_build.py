"""buildppkg, ppkg.info and ppkg.resolve end to end through the command line, checked with wimlib-imagex and
osslsigncode (tools nobody here wrote), and against the layout of the real package in compiled-acer."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from iotbuild.formats.catalog import verify_catalog
from tests.conftest import require_tool
from tests.stages.test_provisioning_support import (ACER, acer_layout, clean_env, make_certs, make_workspace, run_cli,
                                                    wim_files, wimlib)

PROPS = ("NAME", "VERSION", "ALTITUDE", "RESETCLEAR", "PACKAGEID", "NOTES")


def ok(p: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert p.returncode == 0, f"exit {p.returncode}\n{p.stdout}\n{p.stderr}"
    assert "Traceback" not in p.stderr
    return p


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_certs(tmp_path_factory.mktemp("ppkg-certs"))


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, certs: Path) -> dict:
    """``buildppkg SampleA`` once, in a copy of the repository's workspace."""
    require_tool("wimlib-imagex")
    ws = make_workspace(tmp_path_factory.mktemp("ppkg-ws"), certs, with_products=True)
    p = ok(run_cli(ws, "buildppkg", "SampleA", "--json"))
    doc = json.loads(p.stdout)
    return {"ws": ws, "doc": doc, "ppkg": Path(doc["ppkg"]), "cat": Path(doc["cat"])}


def test_sample_product_builds_to_its_kit_name(built: dict) -> None:
    ws, doc = built["ws"], built["doc"]
    assert doc["ok"] is True and doc["name"] == "SampleAProv"
    assert built["ppkg"] == ws / "build/amd64/ppkgs/SampleAProv.ppkg" and built["cat"].name == "SampleAProv.cat"
    assert sorted(p.name for p in (ws / "build/amd64/ppkgs").iterdir()) == ["SampleAProv.cat", "SampleAProv.ppkg"]


def test_wimlib_accepts_the_package_and_its_header_matches_the_real_one(built: dict) -> None:
    header = wimlib("info", built["ppkg"], "--header")
    fields = dict(re.findall(r"^(\S[^=\n]*?)\s*=\s*(\S*)\s*$", header, re.M))
    real = dict(re.findall(r"^(\S[^=\n]*?)\s*=\s*(\S*)\s*$", (ACER / "_wim-header-xml-and-listing.txt").read_text(),
                           re.M))
    for key in ("Magic Characters", "Header Size", "Version", "Flags", "Chunk Size", "Image Count", "Boot Index",
                "Total Parts"):
        assert fields[key] == real[key], key
    out = wimlib("verify", built["ppkg"])
    assert "successfully verified" in out


def _image_xml(ppkg: Path) -> dict[str, str]:
    xml = wimlib("info", ppkg, "--xml")
    image = re.search(r"<IMAGE INDEX=\"1\">(.*)</IMAGE>", xml, re.S).group(1)
    return dict(re.findall(r"<([A-Z]+)>([^<]*)</\1>", image))


def _notes_keys(notes: str) -> list[str]:
    return [part.split("=", 1)[0] for part in notes.split(";")]


def test_wim_xml_metadata_is_laid_out_as_in_the_real_package(built: dict) -> None:
    ours = _image_xml(built["ppkg"])
    real_xml = (ACER / "_wim-header-xml-and-listing.txt").read_text().split("(image 1), converted from UTF-16LE\n")[1]
    real = dict(re.findall(r"<([A-Z]+)>([^<]*)</\1>", real_xml.split("<IMAGE INDEX=\"1\">")[1]))
    assert set(PROPS) <= set(ours) and set(PROPS) <= set(real)
    assert ours["NAME"] == "SampleAProv" and ours["VERSION"] == "1.0.0.0"
    assert ours["ALTITUDE"] == real["ALTITUDE"] == "2000"          # OEM, rank 0
    assert ours["PACKAGEID"] == "{bec73f60-2f8c-4735-82a3-d476319045b6}" and ours["RESETCLEAR"] == "0"
    assert _notes_keys(ours["NOTES"]) == _notes_keys(real["NOTES"])
    assert "EncryptPackage=False;SignPackage=False;PackageID=bec73f60-2f8c-4735-82a3-d476319045b6;" in ours["NOTES"]


def _shape(path: str) -> str:
    """A member path with ordinals and content hashes folded, so two packages' layouts can be compared."""
    path = re.sub(r"/\d+__([^/]+)\.provxml$", r"/N__\1.provxml", path)
    return re.sub(r"/DataAsset/2/\d+_[A-Za-z0-9+.=]{44}", "/DataAsset/2/N_HASH", path)


def test_member_list_has_the_real_layout(built: dict) -> None:
    ours = wim_files(built["ppkg"])
    real = acer_layout()
    fixed = [m for m in real if "/RunTime/" not in m and "/DataAsset/2" not in m]
    assert set(fixed) <= set(ours)
    provxml = [m for m in ours if "/RunTime/" in m]
    assert provxml and all(re.fullmatch(r"/Multivariant/0/Prov/RunTime/\d+__[\w$().-]+\.provxml", m) for m in provxml)


def test_the_acer_answer_file_builds_to_the_acer_layout(certs: Path, tmp_path: Path) -> None:
    ws = make_workspace(tmp_path, certs)
    assets = ws / "assets"
    assets.mkdir()
    for name in ("Cortex_XDR_9_0_0_16757_x64.msi", "GlobalProtect64-6.2.8-c263.msi"):
        (assets / name).write_bytes(b"placeholder " + name.encode())
    shutil.copy2(ACER / "Multivariant/0/customizations.xml", ws / "acer.xml")
    doc = json.loads(ok(run_cli(ws, "buildppkg", "acer.xml", "--assets", "assets", "--json")).stdout)
    ppkg = Path(doc["ppkg"])
    assert ppkg.name == "acer_tavelmateP214_baseconfig.ppkg" and doc["assets"] == 2
    assert sorted(map(_shape, wim_files(ppkg))) == sorted(map(_shape, acer_layout()))
    ours, real = _image_xml(ppkg), (ACER / "_wim-header-xml-and-listing.txt").read_text()
    for key in ("NAME", "VERSION", "ALTITUDE", "PACKAGEID", "RESETCLEAR"):
        assert f"<{key}>{ours[key]}</{key}>" in real, key
    # extracted with wimlib: the answer file copy is the input, the assets are the files given
    out = tmp_path / "x"
    wimlib("apply", ppkg, "1", out, "--no-acls")
    assert (out / "Multivariant/0/customizations.xml").read_bytes() == (ws / "acer.xml").read_bytes()
    msi = list((out / "DataAsset/2").glob("*/GlobalProtect64-6.2.8-c263.msi"))
    assert len(msi) == 1 and msi[0].read_bytes() == (assets / "GlobalProtect64-6.2.8-c263.msi").read_bytes()
    index = (out / "DataAsset/DataAsset.xml").read_text()
    assert f'Key="{msi[0].parent.name}\\GlobalProtect64-6.2.8-c263.msi" ' \
           f'Value="/ProvisioningCommands/PrimaryContext/Command/1/CommandFile"' in index


def test_catalog_is_signed_and_holds_the_package_digest(built: dict) -> None:
    require_tool("osslsigncode")
    root = built["ws"] / "workspace/Certs/test/root.pem"
    p = subprocess.run(["osslsigncode", "verify", "-verbose", "-CAfile", root, "-in", built["cat"]],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0 and "Signature verification: ok" in p.stdout, p.stdout + p.stderr
    # osslsigncode checks the signed-attributes digest over the CTL; the CTL's only member is the .ppkg's SHA-256
    # (osslsigncode cannot check the .ppkg itself against it: -catalog knows PE/CAB/MSI, not WIM).
    digest = hashlib.sha256(built["ppkg"].read_bytes()).hexdigest().upper()
    members = p.stdout.split("Catalog members:", 1)[1].split("Signature Index", 1)[0]
    assert re.findall(r"Message digest: ([0-9A-F]{64})", members) == [digest]
    cat = verify_catalog(built["cat"].read_bytes())
    assert cat.attributes["PackageName"] == "SampleAProv.ppkg"
    assert [m.tag_hex for m in cat.members] == [digest]


def test_rebuilds_are_byte_identical_and_follow_source_date_epoch(built: dict, certs: Path, tmp_path: Path) -> None:
    ws = make_workspace(tmp_path, certs, with_products=True)
    time.sleep(1.1)   # a different wall clock from the module build
    ok(run_cli(ws, "buildppkg", "SampleA"))
    again = ws / "build/amd64/ppkgs"
    for name in ("SampleAProv.ppkg", "SampleAProv.cat"):
        assert (again / name).read_bytes() == (built["ppkg"].parent / name).read_bytes(), name
    ok(run_cli(ws, "buildppkg", "SampleA", env=clean_env(SOURCE_DATE_EPOCH="1600000000")))
    assert (again / "SampleAProv.ppkg").read_bytes() != built["ppkg"].read_bytes()
    created = wimlib("info", again / "SampleAProv.ppkg", "1")
    assert "Creation Time:          Sun Sep 13 12:26:40 2020 UTC" in created
    detailed = wimlib("dir", again / "SampleAProv.ppkg", "1", "--detailed")
    assert set(re.findall(r"Last Write Time\s*=\s*(.*)", detailed)) == {"Sun Sep 13 12:26:40 2020 UTC"}


def test_summary_line_names_the_outputs(certs: Path, tmp_path: Path) -> None:
    ws = make_workspace(tmp_path, certs, with_products=True)
    p = ok(run_cli(ws, "buildppkg", "products/SampleA/prov/customizations.xml"))
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("buildppkg: SampleAProv: 5 setting(s), 5 RunTime entries")
    assert "SampleAProv.ppkg + SampleAProv.cat" in lines[0]


def test_allow_unknown_settings_carries_and_says_so(certs: Path, tmp_path: Path) -> None:
    ws = make_workspace(tmp_path, certs, with_products=True)
    src = (ws / "products/SampleA/prov/customizations.xml").read_text()
    (ws / "u.xml").write_text(src.replace("<AllowNFC>Yes</AllowNFC>", "<AllowNFC>Yes</AllowNFC><AllowTeleport>Yes"
                                                                       "</AllowTeleport>"))
    p = run_cli(ws, "buildppkg", "u.xml")
    assert p.returncode == 1 and "unknown setting Policies/Connectivity/AllowTeleport" in p.stderr
    p = ok(run_cli(ws, "buildppkg", "u.xml", "--allow-unknown-settings"))
    assert "NOT compiled" in p.stderr and "Policies/Connectivity/AllowTeleport" in p.stderr
    doc = json.loads(ok(run_cli(ws, "buildppkg", "u.xml", "--allow-unknown-settings", "--json")).stdout)
    assert doc["not_compiled"] == ["Policies/Connectivity/AllowTeleport"]
    files = wim_files(Path(doc["ppkg"]))
    assert not any("AllowTeleport" in f for f in files)
    data = wimlib("extract", doc["ppkg"], "1", "/Multivariant/0/customizations.xml", "--to-stdout")
    assert "<AllowTeleport>Yes</AllowTeleport>" in data


def test_missing_wimlib_is_one_error_and_leaves_nothing(certs: Path, tmp_path: Path) -> None:
    ws = make_workspace(tmp_path, certs, with_products=True)
    p = run_cli(ws, "buildppkg", "SampleA", env=clean_env(PATH="/nonexistent"))
    assert p.returncode == 3 and "Traceback" not in p.stderr, p.stderr
    assert "wimlib-imagex not found" in p.stderr and "wimtools" in p.stderr
    assert [x for x in (ws / "build").rglob("*") if x.is_file()] == []


def test_provisioning_auto_wraps_the_ppkg_and_buildpkg_all_ignores_it(built: dict) -> None:
    ws = built["ws"]
    ok(run_cli(ws, "buildpkg", "Provisioning.Auto", "--product", "SampleA"))
    cab = ws / "build/amd64/pkgs/Contoso.Provisioning.Auto.cab"
    assert json.loads(ok(run_cli(ws, "verifycab", str(cab), "--json")).stdout)["ok"] is True
    require_tool("cabextract")
    x = ws.parent / "auto-cab"
    subprocess.run(["cabextract", "-q", "-d", x, cab], check=True, capture_output=True, timeout=60)
    dsm = (x / "man.dsm.xml").read_text()
    for name, built_file in (("ProvAuto.ppkg", built["ppkg"]), ("ProvAuto.cat", built["cat"])):
        m = re.search(r"<DevicePath>\\Windows\\Provisioning\\Packages\\" + re.escape(name)
                      + r"</DevicePath>\s*<CabPath>([^<]+)</CabPath>", dsm)
        assert m, (name, dsm)
        assert (x / m.group(1)).read_bytes() == built_file.read_bytes(), name
    # buildpkg All in a workspace without any ppkg: the wrapper under products/ is not selected
    fresh = built["ws"].parent / "fresh"
    shutil.copytree(ws, fresh, ignore=shutil.ignore_patterns("build"))
    ok(run_cli(fresh, "preparesamples"))
    doc = json.loads(ok(run_cli(fresh, "buildpkg", "--json")).stdout)
    names = {p["name"] for p in doc["packages"]}
    assert "Contoso.Provisioning.Auto" not in names and "Contoso.Registry.Version" in names


def test_ppkg_info_reads_our_package(built: dict) -> None:
    ws = built["ws"]
    doc = json.loads(ok(run_cli(ws, "ppkg.info", str(built["ppkg"]), "--json")).stdout)
    assert doc["metadata"]["NAME"] == "SampleAProv" and doc["metadata"]["ALTITUDE"] == "2000"
    assert doc["package"]["owner_type"] == "OEM" and doc["wim"]["compression"] == "XPRESS"
    assert [t["id"] for t in doc["targets"]] == ["KioskRegions"]
    assert doc["variants"] == [{"name": "Variant Kiosk", "targets": ["KioskRegions"], "settings": 1}]
    assert len(doc["settings"]) == 5 and len(doc["runtime_entries"]) == 5
    assert doc["runtime_entries"][-1]["conditions"] == {"Region": "Pattern:(DE|FR|NL)"}
    text = ok(run_cli(ws, "ppkg.info", str(built["ppkg"]))).stdout
    assert "PACKAGEID  {bec73f60-2f8c-4735-82a3-d476319045b6}" in text
    assert "[Variant Kiosk] Policies/Connectivity/AllowBluetooth = No" in text
    assert "KioskRegions: (Region=Pattern:(DE|FR|NL))" in text


def test_ppkg_info_reads_a_wim_captured_from_the_real_package(certs: Path, tmp_path: Path) -> None:
    """Built with wimlib directly (no iotbuild code), with the real package's image properties."""
    tree = tmp_path / "tree"
    shutil.copytree(ACER, tree, ignore=shutil.ignore_patterns("_wim-*"))
    wim = tmp_path / "acer.ppkg"
    notes = ("VERSION=2025.416.0.0+757d43c324c9c7478617b0f9126747d9cdee37db;Source=Classic;;TargetSkus=WindowsCommon,"
             "Desktop;EncryptPackage=False;SignPackage=False;PackageID=19738506-279f-4439-993d-779fef2a3d60;")
    wimlib("capture", tree, wim, "acer_tavelmateP214_baseconfig", "--compress=XPRESS", "--chunk-size=32K",
           "--image-property", "VERSION=1.0", "--image-property", "ALTITUDE=2000",
           "--image-property", "PACKAGEID={19738506-279f-4439-993d-779fef2a3d60}",
           "--image-property", f"NOTES={notes}", "--image-property", "RESETCLEAR=0")
    ws = make_workspace(tmp_path, certs)
    doc = json.loads(ok(run_cli(ws, "ppkg.info", str(wim), "--json")).stdout)
    assert doc["metadata"]["PACKAGEID"] == "{19738506-279f-4439-993d-779fef2a3d60}"
    assert doc["metadata"]["NOTES"] == notes and doc["package"]["altitude"] == 2000
    assert len(doc["settings"]) == 16 and len(doc["runtime_entries"]) == 15
    assert "/Multivariant/0/Prov/RunTime/2__OOBE_Desktop_HideOobe.provxml" in doc["members"]
    assert doc["warnings"] == []


def test_ppkg_info_refuses_a_file_that_is_not_a_wim(certs: Path, tmp_path: Path) -> None:
    ws = make_workspace(tmp_path, certs)
    (ws / "x.ppkg").write_bytes(b"PK\x03\x04 not a wim")
    p = run_cli(ws, "ppkg.info", "x.ppkg")
    assert p.returncode == 1 and "Traceback" not in p.stderr
    assert "x.ppkg: 0x0: not a provisioning package" in p.stderr and "(fix: " in p.stderr


def test_ppkg_resolve_through_the_command_line(built: dict) -> None:
    ws = built["ws"]
    (ws / "de.yaml").write_text("# a kiosk in Germany\nRegion: DE\nMCC: \"262\"\n")
    (ws / "us.json").write_text('{"Region": "US", "Roaming": false}')
    doc = json.loads(ok(run_cli(ws, "ppkg.resolve", "--device", "de.yaml", str(built["ppkg"]),
                                "products/SampleA/prov/customizations.xml", "--json")).stdout)
    assert [p["name"] for p in doc["packages"]] == ["SampleAProv", "SampleAProv"]
    bt = next(s for s in doc["settings"] if s["setting"] == "Policies/Connectivity/AllowBluetooth")
    assert bt["value"] == "No" and bt["section"] == "Variant" and bt["file"].endswith("customizations.xml")
    assert bt["target_state"]["conditions"] == {"Region": "Pattern:(DE|FR|NL)"}
    assert [o["value"] for o in bt["overrode"]] == ["Yes", "No", "Yes"]
    p = ok(run_cli(ws, "ppkg.resolve", "--device", "us.json", "--rules", "2017-01", str(built["ppkg"])))
    row = next(ln for ln in p.stdout.splitlines() if "AllowBluetooth" in ln)
    assert "Yes" in row and "Common" in row
    assert "ppkg.resolve: 1 package(s)" in p.stderr and "0 TargetState(s) matched" in p.stderr
    bad = run_cli(ws, "ppkg.resolve", "--device", "us.json", "--rules", "2018", str(built["ppkg"]))
    assert bad.returncode == 1 and "--rules '2018' is unknown" in bad.stderr and "Traceback" not in bad.stderr
