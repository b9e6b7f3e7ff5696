"""buildpkg end to end on the sample workspace, every cab checked with tools nobody here wrote."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from iotbuild.formats.pe import authenticode_pe_hash, is_pe
from tests.conftest import REPO, require_tool

CLI = [sys.executable, "-m", "iotbuild.cli"]
SAMPLE_PACKAGES = {"Contoso.Registry.Version", "Contoso.Registry.AllTypes", "Contoso.Custom.Files",
                   "Contoso.Services.Heartbeat", "Contoso.Custom.OOBE", "Contoso.Custom.EFIESP",
                   "Contoso.QEMUx64.SampleDriver", "Contoso.QEMUx64.DeviceLayout", "Contoso.QEMUx64.BootChain"}


def run_cli(ws: Path, *args: str, env: dict | None = None, check: bool = True) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "SOURCE_DATE_EPOCH": "1700000000", **(env or {})}
    p = subprocess.run([*CLI, *args], cwd=ws, capture_output=True, text=True, env=full_env, timeout=300)
    if check and p.returncode != 0:
        raise AssertionError(f"{args} failed ({p.returncode}):\n{p.stdout}\n{p.stderr}")
    return p


@pytest.fixture(scope="module")
def sample_ws(tmp_path_factory) -> Path:
    """A copy of the repo's sample workspace, built once for the module."""
    ws = tmp_path_factory.mktemp("ws")
    for d in ("workspace", "packages", "bsp", "products"):
        if (REPO / d).exists():
            shutil.copytree(REPO / d, ws / d, ignore=shutil.ignore_patterns("Certs"))
    run_cli(ws, "preparesamples")
    run_cli(ws, "buildpkg")
    return ws


def cabs(ws: Path) -> list[Path]:
    return sorted((ws / "build/amd64/pkgs").glob("*.cab"))


def root_pem(ws: Path) -> Path:
    return ws / "workspace/Certs/test/root.pem"


def test_every_sample_package_is_built(sample_ws):
    assert {c.stem for c in cabs(sample_ws)} == SAMPLE_PACKAGES
    for name in SAMPLE_PACKAGES:
        assert (sample_ws / f"build/amd64/pkgs/logs/{name}.log").is_file()


def test_cabextract_and_gcab_accept_every_cab(sample_ws, tmp_path):
    require_tool("cabextract")
    require_tool("gcab")
    for cab in cabs(sample_ws):
        t = subprocess.run(["cabextract", "-t", cab], capture_output=True, text=True)
        assert t.returncode == 0 and "All done, no errors" in t.stdout, (cab, t.stdout, t.stderr)
        g = subprocess.run(["gcab", "-l", cab], capture_output=True, text=True)
        assert g.returncode == 0 and "man.dsm.xml" in g.stdout and "content.cat" in g.stdout, (cab, g.stderr)


def osslsigncode_verify(path: Path, ca: Path) -> str:
    require_tool("osslsigncode")
    p = subprocess.run(["osslsigncode", "verify", "-verbose", "-CAfile", ca, "-in", path], capture_output=True,
                       text=True)
    assert p.returncode == 0, (path, p.stdout, p.stderr)
    return p.stdout


def test_osslsigncode_verifies_every_cab_signature(sample_ws):
    for cab in cabs(sample_ws):
        out = osslsigncode_verify(cab, root_pem(sample_ws))
        current = re.search(r"Current message digest\s*:\s*([0-9A-F]+)", out).group(1)
        calculated = re.search(r"Calculated message digest\s*:\s*([0-9A-F]+)", out).group(1)
        assert current == calculated, cab
        assert "Signature verification: ok" in out


def extract(cab: Path, dest: Path) -> dict[str, bytes]:
    dest.mkdir(parents=True, exist_ok=True)
    subprocess.run(["cabextract", "-q", "-d", dest, cab], check=True, capture_output=True)
    return {p.name: p.read_bytes() for p in dest.iterdir()}


def test_catalog_verifies_and_lists_the_sha256_of_every_file(sample_ws, tmp_path):
    require_tool("cabextract")
    for cab in cabs(sample_ws):
        files = extract(cab, tmp_path / cab.stem)
        out = osslsigncode_verify(tmp_path / cab.stem / "content.cat", root_pem(sample_ws))
        members = out.split("Catalog members:", 1)[1].split("Message digest algorithm", 1)[0]
        listed = set(re.findall(r"Message digest: ([0-9A-F]{64})", members))
        assert "Signature verification: ok" in out
        for name, data in files.items():
            if name == "content.cat" or not data:
                continue
            # PE images are listed by their Authenticode image hash (the PE SIP), everything else by SHA-256.
            expected = authenticode_pe_hash(data) if is_pe(data) else hashlib.sha256(data).digest()
            assert expected.hex().upper() in listed, (cab.name, name)


def test_manifest_lists_exactly_the_files_in_the_cab(sample_ws, tmp_path):
    from lxml import etree
    ns = "{http://schemas.microsoft.com/embedded/2004/10/ImageUpdate}"
    for cab in cabs(sample_ws):
        files = extract(cab, tmp_path / cab.stem)
        dsm = etree.fromstring(files["man.dsm.xml"])
        entries = {e.findtext(f"{ns}CabPath"): e for e in dsm.iter(f"{ns}FileEntry")}
        assert set(entries) == set(files), cab.name
        for name, e in entries.items():
            if e.findtext(f"{ns}FileType") in ("Regular", "Registry"):
                assert int(e.findtext(f"{ns}FileSize")) == len(files[name])
        assert dsm.find(f"{ns}Identity/{ns}Version").attrib == {"Major": "10", "Minor": "0", "QFE": "1", "Build": "0"}
        assert dsm.findtext(f"{ns}CpuType") == "AMD64"


def test_payload_names_and_partitions(sample_ws, tmp_path):
    files = extract(sample_ws / "build/amd64/pkgs/Contoso.Custom.Files.cab", tmp_path / "f")
    # <index>_<first 7 chars of a long stem><ext>; index counts man.dsm.xml and content.cat
    assert {"2_oemcust.cmd", "3_ReadMe.txt", "4_setting.ini", "5_default.ini"} <= set(files)
    assert "arm-only" not in " ".join(files), "buildFilter build.arch = arm excluded it on amd64"
    oobe = extract(sample_ws / "build/amd64/pkgs/Contoso.Custom.OOBE.cab", tmp_path / "o")
    assert b"<Partition>Data</Partition>" in oobe["man.dsm.xml"]
    assert b"<DevicePath>\\oobe\\settings.json</DevicePath>" in oobe["man.dsm.xml"]
    esp = extract(sample_ws / "build/amd64/pkgs/Contoso.Custom.EFIESP.cab", tmp_path / "e")
    assert b"<Partition>EFIESP</Partition>" in esp["man.dsm.xml"]


def reg_text(files: dict[str, bytes]) -> str:
    (name,) = [n for n in files if n.endswith(".reg")]
    assert files[name][:2] == b"\xff\xfe"
    return files[name][2:].decode("utf-16-le")


def test_driver_package_layout_and_registry(sample_ws, tmp_path):
    files = extract(sample_ws / "build/amd64/pkgs/Contoso.QEMUx64.SampleDriver.cab", tmp_path / "d")
    dsm = files["man.dsm.xml"].decode()
    assert re.search(r"\\Windows\\System32\\DriverStore\\FileRepository\\qemusample\.inf_amd64_[0-9a-f]{16}"
                     r"\\qemusample\.inf<", dsm)
    assert "<DevicePath>\\Windows\\System32\\drivers\\qemusample.sys</DevicePath>" in dsm
    reg = reg_text(files)
    assert "[HKEY_LOCAL_MACHINE\\SYSTEM\\CurrentControlSet\\Services\\QemuSample]" in reg
    assert '"Type"=dword:00000001' in reg and '"Start"=dword:00000003' in reg
    assert "[HKEY_LOCAL_MACHINE\\SYSTEM\\CurrentControlSet\\Services\\QemuSample\\Parameters]" in reg
    assert '"PollIntervalMs"=dword:000000FA' in reg
    assert ";Value:\\SystemRoot\\System32\\drivers\\qemusample.sys" in reg


def test_service_package_registry(sample_ws, tmp_path):
    files = extract(sample_ws / "build/amd64/pkgs/Contoso.Services.Heartbeat.cab", tmp_path / "s")
    reg = reg_text(files)
    assert "[HKEY_LOCAL_MACHINE\\SYSTEM\\CurrentControlSet\\Services\\ContosoHeartbeat]" in reg
    assert '"Start"=dword:00000002' in reg and '"DelayedAutostart"=dword:00000001' in reg
    assert '"ObjectName"="LocalSystem"' in reg
    # SERVICE_FAILURE_ACTIONS: reset 86400, 3 actions, restart after 1000 ms and 5000 ms, then none
    blob = "80,51,01,00,00,00,00,00,00,00,00,00,03,00,00,00,14,00,00,00,01,00,00,00,E8,03,00,00,01,00,00,00,88,13"
    assert blob in reg.replace(",\\\r\n", ",")


def test_kit_registry_version_sample_builds(samples, tmp_path):
    ws = tmp_path / "kit"
    shutil.copytree(REPO / "workspace", ws / "workspace", ignore=shutil.ignore_patterns("Certs"))
    src = samples / "addonkit/Workspace/Common/Packages/Registry.Version"
    shutil.copytree(src, ws / "packages/Registry.Version")
    p = run_cli(ws, "buildpkg", "Registry.Version", "--product", "SampleA", "--json")
    result = json.loads(p.stdout)
    assert result["ok"] and result["packages"][0]["status"] == "built"
    files = extract(ws / "build/amd64/pkgs/Contoso.Registry.Version.cab", tmp_path / "x")
    reg = reg_text(files)
    assert '"Product"="SampleA"' in reg and '"Version"="10.0.1.0"' in reg
    assert '"BuildTime"="20231114-2213"' in reg  # SOURCE_DATE_EPOCH=1700000000


def test_rebuild_is_byte_identical(sample_ws, tmp_path):
    before = {c.name: c.read_bytes() for c in cabs(sample_ws)}
    run_cli(sample_ws, "buildpkg", "--force")
    after = {c.name: c.read_bytes() for c in cabs(sample_ws)}
    assert before == after


def test_unchanged_inputs_are_not_rebuilt_and_why_says_so(sample_ws):
    p = run_cli(sample_ws, "buildpkg", "--json")
    assert {r["status"] for r in json.loads(p.stdout)["packages"]} == {"up-to-date"}
    payload = sample_ws / "packages/Custom.Files/content/readme.txt"
    payload.write_text(payload.read_text() + "changed\n")
    p = run_cli(sample_ws, "buildpkg", "--why")
    assert re.search(r"Contoso\.Custom\.Files: built — input changed: .*readme\.txt", p.stderr), p.stderr
    assert "Contoso.Registry.Version: up-to-date" in p.stderr
    p = run_cli(sample_ws, "buildpkg", "--why", env={"OEM_NAME": "Contoso", "BSP_VERSION": "10.0.2.0"})
    assert "package version changed" in p.stderr
    run_cli(sample_ws, "buildpkg", "--force")  # back to the module's state


def test_verifycab_passes_and_reports_test_chain(sample_ws):
    p = run_cli(sample_ws, "verifycab", "build/amd64/pkgs/Contoso.Services.Heartbeat.cab", "--json")
    r = json.loads(p.stdout)
    assert r["ok"] and r["test_only"] and r["cab_signature"]["chain_trusted"]


def flip(src: Path, dst: Path, offset: int) -> None:
    data = bytearray(src.read_bytes())
    data[offset] ^= 0x01
    dst.write_bytes(bytes(data))


def test_verifycab_detects_a_flipped_payload_byte(sample_ws, tmp_path):
    from iotbuild.formats.cab import CabReader
    cab = sample_ws / "build/amd64/pkgs/Contoso.Custom.Files.cab"
    with CabReader.open(cab) as r:
        data_start = r.folders[0].data_offset
    bad = tmp_path / "payload.cab"
    flip(cab, bad, data_start + 20)
    p = run_cli(sample_ws, "verifycab", str(bad), check=False)
    assert p.returncode != 0 and "Traceback" not in p.stderr
    assert "modified" in p.stderr or "checksum" in p.stderr, p.stderr


def test_verifycab_detects_a_flipped_signature_byte(sample_ws, tmp_path):
    from iotbuild.formats.cab import CabReader
    cab = sample_ws / "build/amd64/pkgs/Contoso.Custom.Files.cab"
    with CabReader.open(cab) as r:
        sig_off, sig_len = r.signature_region
    bad = tmp_path / "sig.cab"
    # the RSA signature value sits near the end of the PKCS#7 blob (before the padding)
    flip(cab, bad, sig_off + sig_len - 40)
    p = run_cli(sample_ws, "verifycab", str(bad), check=False)
    assert p.returncode != 0 and "Traceback" not in p.stderr
    assert "signature" in p.stderr.lower(), p.stderr


def test_clean_removes_packages(tmp_path):
    ws = tmp_path / "c"
    shutil.copytree(REPO / "workspace", ws / "workspace", ignore=shutil.ignore_patterns("Certs"))
    (ws / "packages").mkdir()
    (ws / "build/amd64/pkgs").mkdir(parents=True)
    (ws / "build/amd64/pkgs/x.cab").write_bytes(b"x")
    run_cli(ws, "buildpkg", "Clean")
    assert not (ws / "build/amd64/pkgs").exists()
