"""buildimage acceptance (issue 4): on a fresh copy of the sample workspace,
``iotbuild buildimage SampleA Test`` builds what it needs and writes Flash.ffu and its side files; everything
is then checked from outside:

* ``ffu.verify`` passes; ``ffu.toraw``'s disk passes ``sgdisk -v``; each partition cut out of it passes
  ``fsck.fat -n`` or ``ntfsfix -n``;
* every file of the image manifest is found, with its size and sha256, by mtools (EFIESP) or ntfs-3g (MainOS,
  Data), and the file systems hold nothing else; the in-image ``ImageManifest.sha256`` lists every other file;
* the hives, read by regipy, hold what the packages' ``.reg`` files (taken out of the cabs by cabextract)
  declare, plus the code integrity policy and ``Select``;
* the SPDX document is SPDX 2.3 (spdx-tools validates it);
* a second build with nothing changed is "up to date" and leaves Flash.ffu alone; ``--force`` rebuilds it
  byte for byte; a copy of the workspace elsewhere builds the same bytes (and no host path is in them);
* a byte flipped in the payload or in a metadata chunk makes ``ffu.verify`` fail naming that chunk.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import require_tool
from tests.imagecheck import (SECTOR, copy_workspace, cut, fat_files, fat_read, ffu_regions, hive_of,
                              ntfs_files, ntfs_read, out_dir, parse_reg_file, regipy_value, require_module,
                              run_cli, tool_ok)

OUTPUTS = ("Flash.ffu", "Flash.packages.json", "Flash.manifest.json", "Flash.spdx.json", "Flash.log")
ESP_TYPE = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"
BASIC_DATA = "EBD0A0A2-B9E5-4433-87C0-68B6B72699C7"
IN_IMAGE_MANIFEST = "\\Windows\\ImageUpdate\\ImageManifest.sha256"


@dataclass(frozen=True)
class Built:
    ws: Path
    out: Path
    stdout: str

    @property
    def ffu(self) -> Path:
        return self.out / "Flash.ffu"

    def json(self, name: str) -> dict:
        return json.loads((self.out / name).read_text())


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Built:
    ws = copy_workspace(tmp_path_factory.mktemp("buildimage") / "ws")
    assert not (ws / "build").exists() and not (ws / "workspace" / "Certs").exists()
    p = run_cli(ws, "buildimage", "SampleA", "Test")
    return Built(ws, out_dir(ws, "SampleA", "Test"), p.stdout + p.stderr)


@pytest.fixture(scope="module")
def manifest(built: Built) -> dict:
    return built.json("Flash.manifest.json")


@pytest.fixture(scope="module")
def raw(built: Built, tmp_path_factory) -> Path:
    disk = tmp_path_factory.mktemp("buildimage-raw") / "disk.raw"
    run_cli(built.ws, "ffu.toraw", str(built.ffu), str(disk))
    return disk


@pytest.fixture(scope="module")
def parts(raw: Path, manifest: dict) -> dict[str, Path]:
    """Each partition cut out of the raw disk where the manifest says it is (checked against sgdisk below)."""
    return {p["name"]: cut(raw, p["first_lba"] * SECTOR, p["bytes"], raw.with_name(p["name"] + ".img"))
            for p in manifest["partitions"]}


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --- outputs -----------------------------------------------------------------------------------------------
def test_buildimage_writes_the_ffu_and_its_side_files(built: Built, manifest: dict) -> None:
    for name in OUTPUTS:
        assert (built.out / name).is_file(), name
    assert not list(built.out.glob(".work-*")) and not list(built.out.glob("*.partial"))
    assert f"buildimage SampleA Test: {built.ffu}" in built.stdout
    assert manifest["ffu_sha256"] == sha256(built.ffu.read_bytes())
    resolved = built.json("Flash.packages.json")
    assert resolved["product"] == "SampleA" and resolved["release_type"] == "Test"
    names = {p["name"] for p in resolved["packages"]}
    assert {"Contoso.Registry.AllTypes", "Contoso.Services.Heartbeat", "Contoso.QEMUx64.SampleDriver",
            "Contoso.QEMUx64.DeviceLayout", "Contoso.Provisioning.Auto"} <= names
    log = (built.out / "Flash.log").read_text()
    assert log.startswith("buildimage SampleA Test\n") and manifest["ffu_sha256"] in log


def test_ffu_verify_passes(built: Built) -> None:
    p = run_cli(built.ws, "ffu.verify", str(built.ffu), "--json")
    v = json.loads(p.stdout)
    regions = ffu_regions(built.ffu.read_bytes())
    assert v["ok"] and v["chain_trusted"] and v["test_only"]  # the workspace's test root; a Test image
    assert v["chunks"] == (regions.size - regions.image) // regions.chunk
    assert "TEST ONLY" in v["signer"]


def test_the_raw_disk_passes_sgdisk(raw: Path, manifest: dict) -> None:
    assert raw.stat().st_size == manifest["disk_size"]
    v = tool_ok("sgdisk", "-v", raw)
    assert "No problems found" in v.stdout, v.stdout
    types = {"EFIESP": ESP_TYPE, "MainOS": BASIC_DATA, "Data": BASIC_DATA}
    for n, part in enumerate(manifest["partitions"], 1):
        info = tool_ok("sgdisk", "-i", str(n), raw).stdout
        assert f"Partition name: '{part['name']}'" in info, info
        assert re.search(rf"First sector: {part['first_lba']}\b", info), info
        assert re.search(rf"Partition size: {part['sectors']} sectors", info), info
        assert f"Partition GUID code: {types[part['name']]}" in info, info


def test_each_partition_passes_its_file_system_checker(parts: dict[str, Path], manifest: dict) -> None:
    assert {p["name"]: p["file_system"] for p in manifest["partitions"]} == \
        {"EFIESP": "FAT32", "MainOS": "NTFS", "Data": "NTFS"}
    tool_ok("fsck.fat", "-n", parts["EFIESP"])
    for name in ("MainOS", "Data"):
        out = tool_ok("ntfsfix", "-n", parts[name]).stdout
        assert "processed successfully" in out, out


# --- contents --------------------------------------------------------------------------------------------
def _read(partition: str, device_path: str, raw: Path, parts: dict[str, Path], manifest: dict) -> bytes:
    if partition == "EFIESP":
        first = next(p["first_lba"] for p in manifest["partitions"] if p["name"] == "EFIESP")
        return fat_read(raw, first * SECTOR, device_path)
    return ntfs_read(parts[partition], device_path)


def test_every_manifest_file_is_in_the_image_with_its_sha256(raw: Path, parts: dict[str, Path],
                                                            manifest: dict) -> None:
    files = manifest["files"]
    assert len(files) > 50
    for f in files:
        data = _read(f["partition"], f["path"], raw, parts, manifest)
        assert (len(data), sha256(data)) == (f["size"], f["sha256"]), f
    # …and the file systems hold nothing the manifest does not list
    first_esp = next(p["first_lba"] for p in manifest["partitions"] if p["name"] == "EFIESP")
    listed = {"EFIESP": fat_files(raw, first_esp * SECTOR), "MainOS": ntfs_files(parts["MainOS"]),
              "Data": ntfs_files(parts["Data"])}
    for name, found in listed.items():
        expected = {f["path"] for f in files if f["partition"] == name}
        assert {p.lower() for p in found} == {p.lower() for p in expected}, name
        assert found == expected, f"{name}: names are stored as the packages spell them"


def test_the_in_image_manifest_lists_every_other_file(parts: dict[str, Path], manifest: dict) -> None:
    text = ntfs_read(parts["MainOS"], IN_IMAGE_MANIFEST).decode()
    lines = text.splitlines()
    assert lines == sorted(lines) and text.endswith("\n")
    listed = {tuple(ln.split("  ", 1)) for ln in lines}
    expected = {(f["sha256"], f["partition"] + f["path"].replace("\\", "/")) for f in manifest["files"]
                if not (f["partition"] == "MainOS" and f["path"] == IN_IMAGE_MANIFEST)}
    assert listed == expected


def test_hives_hold_what_the_packages_declare(built: Built, parts: dict[str, Path], tmp_path: Path) -> None:
    require_tool("cabextract")
    regipy = require_module("regipy.registry")
    hives: dict[str, object] = {}

    def hive(name: str):
        if name not in hives:
            f = tmp_path / name
            f.write_bytes(ntfs_read(parts["MainOS"], f"\\Windows\\System32\\config\\{name}"))
            hives[name] = regipy.RegistryHive(str(f))
        return hives[name]

    compared: dict[str, set[str]] = {}
    types: set[str] = set()
    for pkg in built.json("Flash.packages.json")["packages"]:
        dest = tmp_path / pkg["name"]
        subprocess.run(["cabextract", "-q", "-d", str(dest), pkg["cab"]], check=True, capture_output=True)
        for reg in sorted(dest.glob("*.reg")):
            for key, values in parse_reg_file(reg.read_bytes()).items():
                name, path = hive_of(key)
                k = hive(name).get_key(path)  # raises if the key is missing
                found = {v.name: regipy_value(v) for v in k.iter_values(as_json=False)}
                for vname, want in values.items():
                    got = found.get(vname or "(default)")
                    assert got == want, \
                        f"{pkg['name']}: [{key}] {vname or '@'}: hive has {got}, .reg has {want}"
                    types.add(want.type)
                compared.setdefault(pkg["name"], set()).add(key)
    assert {"Contoso.Registry.AllTypes", "Contoso.Services.Heartbeat", "Contoso.QEMUx64.SampleDriver"} \
        <= set(compared)
    assert types >= {"REG_SZ", "REG_EXPAND_SZ", "REG_MULTI_SZ", "REG_DWORD", "REG_QWORD", "REG_BINARY"}
    assert any(k.endswith("\\EmptyKey") for k in compared["Contoso.Registry.AllTypes"])
    system = hive("SYSTEM")
    assert {s.name for s in system.root.iter_subkeys()} == {"ControlSet001", "Select"}  # no CurrentControlSet

    def values(path: str) -> dict[str, object]:
        return {v.name: v.value for v in system.get_key(path).iter_values(as_json=False)}

    assert values("\\ControlSet001\\Control\\CI\\Policy") == {"CodeIntegrityEnforced": 0, "TestSigning": 1}
    assert values("\\Select") == {"Current": 1, "Default": 1, "LastKnownGood": 1, "Failed": 0}


# --- SPDX ------------------------------------------------------------------------------------------------
def test_the_sbom_is_spdx_2_3(built: Built, manifest: dict) -> None:
    doc = built.json("Flash.spdx.json")
    for key in ("spdxVersion", "dataLicense", "SPDXID", "name", "documentNamespace", "creationInfo"):
        assert doc.get(key), key
    assert doc["spdxVersion"] == "SPDX-2.3" and doc["dataLicense"] == "CC0-1.0"
    assert doc["SPDXID"] == "SPDXRef-DOCUMENT"
    assert doc["creationInfo"]["created"] == "2023-11-14T22:13:20Z"  # SOURCE_DATE_EPOCH
    ids = [doc["SPDXID"]] + [p["SPDXID"] for p in doc["packages"]] + [f["SPDXID"] for f in doc["files"]]
    assert len(ids) == len(set(ids))
    for p in doc["packages"]:
        for key in ("name", "downloadLocation", "SPDXID"):
            assert p.get(key), (p["SPDXID"], key)
    for f in doc["files"]:
        algos = {c["algorithm"]: c["checksumValue"] for c in f["checksums"]}
        assert re.fullmatch(r"[0-9a-f]{40}", algos.get("SHA1", "")), f  # SPDX 2.3 §8.4: SHA1 is required
    assert {(f["fileName"], {c["algorithm"]: c["checksumValue"] for c in f["checksums"]}["SHA256"])
            for f in doc["files"]} == \
        {("./" + f["partition"] + f["path"].replace("\\", "/"), f["sha256"]) for f in manifest["files"]}
    for r in doc["relationships"]:
        assert r["spdxElementId"] in ids and r["relatedSpdxElement"] in ids, r
    image = next(p for p in doc["packages"] if p.get("packageFileName") == "Flash.ffu")
    assert {"spdxElementId": "SPDXRef-DOCUMENT", "relationshipType": "DESCRIBES",
            "relatedSpdxElement": image["SPDXID"]} in doc["relationships"]
    contained = {r["relatedSpdxElement"] for r in doc["relationships"] if r["relationshipType"] == "CONTAINS"}
    assert contained >= {f["SPDXID"] for f in doc["files"]}

    # and the reference implementation agrees
    parser = require_module("spdx_tools.spdx.parser.parse_anything")
    validator = require_module("spdx_tools.spdx.validation.document_validator")
    problems = validator.validate_full_spdx_document(parser.parse_file(str(built.out / "Flash.spdx.json")))
    assert not problems, "\n".join(m.validation_message[:300] for m in problems[:10])


# --- incremental and reproducible ----------------------------------------------------------------------
def test_nothing_changed_is_up_to_date_and_force_rebuilds_the_same_bytes(built: Built) -> None:
    before = built.ffu.stat()
    digest = sha256(built.ffu.read_bytes())
    p = run_cli(built.ws, "buildimage", "SampleA", "Test")
    assert "up to date" in p.stdout + p.stderr, p.stdout
    after = built.ffu.stat()
    same = ("st_ino", "st_mtime_ns", "st_size")
    assert [getattr(after, k) for k in same] == [getattr(before, k) for k in same]

    p = run_cli(built.ws, "buildimage", "SampleA", "Test", "--force")
    assert "up to date" not in p.stdout + p.stderr
    assert built.ffu.stat().st_ino != before.st_ino  # really written again (renamed into place)…
    assert sha256(built.ffu.read_bytes()) == digest  # …with the same bytes


def test_a_copy_elsewhere_builds_the_same_bytes_and_no_host_path_leaks(built: Built,
                                                                        tmp_path_factory) -> None:
    other = tmp_path_factory.mktemp("elsewhere") / "a" / "much" / "longer" / "path" / "ws2"
    copy_workspace(other)
    # the same signing identity (a fresh copy would make its own random test PKI, and so other signatures)
    shutil.copytree(built.ws / "workspace" / "Certs", other / "workspace" / "Certs")
    run_cli(other, "buildimage", "SampleA", "Test")
    second = out_dir(other, "SampleA", "Test")
    data = built.ffu.read_bytes()
    assert (second / "Flash.ffu").read_bytes() == data
    for name in ("Flash.manifest.json", "Flash.spdx.json"):
        assert (second / name).read_bytes() == (built.out / name).read_bytes(), name
    # the package list names the cabs and FMs it used: equal once each workspace's root is taken out
    ours = (built.out / "Flash.packages.json").read_text().replace(str(built.ws), "<ws>")
    theirs = (second / "Flash.packages.json").read_text().replace(str(other), "<ws>")
    assert ours == theirs
    for host in {str(built.ws), str(other), str(built.ws.parent.parent), str(Path.home()),
                 str(Path(__file__).resolve().parents[2])}:
        for enc in ("utf-8", "utf-16-le"):
            assert host.encode(enc) not in data, f"{host!r} ({enc}) is in Flash.ffu"


# --- damage ----------------------------------------------------------------------------------------------
def test_a_flipped_byte_makes_verify_fail_naming_the_chunk(built: Built, tmp_path: Path) -> None:
    data = built.ffu.read_bytes()
    r = ffu_regions(data)
    rng = random.Random(4)
    anywhere = [r.payload + rng.randrange(r.blocks * r.block_size) for _ in range(2)]
    payload_offsets = [r.payload, *anywhere, r.size - 1]
    # metadata: a byte of the manifest text and one of the padding after it (both in the first hashed chunk),
    # and one of the store's padding after its write descriptors
    meta_offsets = [r.manifest + 40, r.manifest + r.manifest_size + 100, r.payload - 1]
    bad = tmp_path / "Flash.ffu"
    for offset in payload_offsets + meta_offsets:
        damaged = bytearray(data)
        damaged[offset] ^= 0x01
        bad.write_bytes(damaged)
        p = run_cli(built.ws, "ffu.verify", str(bad), check=False)
        out = p.stdout + p.stderr
        assert p.returncode != 0 and "Traceback" not in out, out
        chunk = r.chunk_of(offset)
        chunk_at = r.image + chunk * r.chunk
        if offset >= r.payload:
            block = (offset - r.payload) // r.block_size
            assert f"payload block {block} of store 1" in out, (offset, out)
        else:
            assert f"metadata chunk {chunk}" in out, (offset, out)
        assert f"file offset 0x{chunk_at:x}" in out, (offset, out)
        assert "1 chunk(s) do not match" in out and str(bad) in out, out
