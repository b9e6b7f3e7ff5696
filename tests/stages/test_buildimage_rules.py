"""buildimage's Test/Production rules (issue 4, "Release rules"), through the real command line.

* ``buildimage SampleA Retail`` in the sample workspace (test-signed packages) fails with one message naming a
  package, the rule and the fix, before any partition work: the Retail output folder is not even created;
* a Test image with test-signed packages but without IOT_ENABLE_TESTSIGNING fails the same way;
* with a retail PKI (no "TEST ONLY" anywhere) configured in IoTWorkspace.xml, ``buildimage SampleA Retail``
  succeeds: ``ffu.verify`` shows a retail signer chaining to the configured root, no package carries a
  TEST ONLY signature, and the SYSTEM hive records code integrity enforced and test signing off;
* a package with releaseType="Test" in a Production image is refused, naming it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import REPO, require_tool
from tests.imagecheck import (SECTOR, copy_workspace, cut, make_retail, ntfs_read, oeminput_without, out_dir,
                              require_module, run_cli)

SAMPLE_TEST = (REPO / "products" / "SampleA" / "TestOEMInput.xml").read_text()
SAMPLE_RETAIL = (REPO / "products" / "SampleA" / "RetailOEMInput.xml").read_text()


def error_lines(p) -> list[str]:  # noqa: ANN001
    """The lines of a failed run that report a problem (an InputErrors lists one per line)."""
    return [ln for ln in (p.stdout + p.stderr).splitlines() if ln.strip()]


@pytest.fixture(scope="module")
def test_ws(tmp_path_factory) -> Path:
    return copy_workspace(tmp_path_factory.mktemp("rules-test") / "ws")


@pytest.fixture(scope="module")
def retail_ws(tmp_path_factory) -> Path:
    ws = copy_workspace(tmp_path_factory.mktemp("rules-retail") / "ws")
    make_retail(ws)
    return ws


def test_retail_with_test_signed_packages_fails_before_partition_work(test_ws: Path) -> None:
    p = run_cli(test_ws, "buildimage", "SampleA", "Retail", check=False)
    lines = error_lines(p)
    assert p.returncode == 1 and "Traceback" not in p.stderr, p.stderr
    assert len(lines) == 1, lines
    (line,) = lines
    assert line.startswith("error: ") and "QEMUx64FM.xml:" in line  # the FM line that brought the package in
    assert "package Contoso." in line and "carries a TEST ONLY signature" in line
    assert "a Production image must not contain test-signed content" in line
    assert '(fix: rebuild it signed with the retail key: configure <Signing Mode="Retail">' in line
    # the check runs before the output folder (and its work folder) is made: no partition work happened
    assert not out_dir(test_ws, "SampleA", "Retail").exists()

    j = run_cli(test_ws, "buildimage", "SampleA", "Retail", "--json", "--no-inputs", check=False)
    doc = json.loads(j.stdout)
    assert j.returncode == 1 and doc["ok"] is False
    (err,) = doc["error"].get("errors") or [doc["error"]]
    assert err["message"].startswith("package Contoso.") and err["hint"] and err["line"]


def test_test_image_without_testsigning_fails_naming_a_package_and_the_fix(test_ws: Path) -> None:
    product = test_ws / "products" / "NoTestSigning"
    product.mkdir()
    oeminput = oeminput_without(SAMPLE_TEST, testsigning=False, prov_auto=False)
    (product / "TestOEMInput.xml").write_text(oeminput)
    p = run_cli(test_ws, "buildimage", "NoTestSigning", "Test", check=False)
    lines = error_lines(p)
    assert p.returncode == 1 and "Traceback" not in p.stderr and len(lines) == 1, lines
    assert "package Contoso." in lines[0] and "is test-signed" in lines[0]
    assert "does not select IOT_ENABLE_TESTSIGNING" in lines[0]
    assert "(fix: add <Feature>IOT_ENABLE_TESTSIGNING</Feature> under <Features><Microsoft>" in lines[0]
    assert not out_dir(test_ws, "NoTestSigning", "Test").exists()


def test_retail_signed_image_builds_without_any_test_only_signer(retail_ws: Path, tmp_path: Path) -> None:
    run_cli(retail_ws, "buildimage", "SampleA", "Retail")
    out = out_dir(retail_ws, "SampleA", "Retail")
    v = json.loads(run_cli(retail_ws, "ffu.verify", str(out / "Flash.ffu"), "--json").stdout)
    assert v["ok"] and v["chain_trusted"] and v["test_only"] is False
    assert "TEST ONLY" not in json.dumps(v)
    assert v["signer"] == "CN=Contoso Retail Code Signing" and v["chain"][-1] == "CN=Contoso Retail Root"
    packages = json.loads((out / "Flash.packages.json").read_text())["packages"]
    assert len(packages) >= 15
    for pkg in packages:
        assert pkg["test_only"] == [] and pkg["release_type"] == "Production", pkg["name"]
        assert pkg["chain"][-1] == "CN=Contoso Retail Root" and "TEST ONLY" not in pkg["signer"], pkg["name"]
    # the package signatures chain to the configured root for osslsigncode too
    require_tool("osslsigncode")
    root = retail_ws / "workspace" / "Certs" / "retail" / "root.pem"
    from tests.signing.helpers import osslsigncode_verify
    for pkg in packages[:3]:
        r = osslsigncode_verify(Path(pkg["cab"]), root)
        assert r.returncode == 0 and "Signature verification: ok" in r.output, r.output
    # code integrity: enforced, no test signing, where rules.py says it is recorded
    manifest = json.loads((out / "Flash.manifest.json").read_text())
    ci = manifest["code_integrity"]
    assert ci["enforced"] is True and ci["test_signing"] is False
    raw = tmp_path / "disk.raw"
    run_cli(retail_ws, "ffu.toraw", str(out / "Flash.ffu"), str(raw))
    main = next(p for p in manifest["partitions"] if p["name"] == "MainOS")
    image = cut(raw, main["first_lba"] * SECTOR, main["bytes"], tmp_path / "MainOS.img")
    hive = tmp_path / "SYSTEM"
    hive.write_bytes(ntfs_read(image, "\\Windows\\System32\\config\\SYSTEM"))
    regipy = require_module("regipy.registry")
    policy = regipy.RegistryHive(str(hive)).get_key("\\ControlSet001\\Control\\CI\\Policy")
    assert {v.name: v.value for v in policy.iter_values(as_json=False)} == \
        {"CodeIntegrityEnforced": 1, "TestSigning": 0}


def test_a_test_release_package_is_refused_in_a_production_image(retail_ws: Path) -> None:
    product = retail_ws / "products" / "WithTestTools"
    pkg = product / "Packages" / "Test.Tools"
    pkg.mkdir(parents=True)
    (pkg / "tool.cmd").write_text("@echo a diagnostics tool for test images\r\n")
    (pkg / "Test.Tools.wm.xml").write_text("""<?xml version="1.0" encoding="utf-8"?>
<identity xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
    name="Tools" namespace="Test" owner="$(OEMNAME)" legacyName="$(OEMNAME).Test.Tools"
    xmlns="urn:Microsoft.CompPlat/ManifestSchema.v1.00">
    <onecorePackageInfo targetPartition="MainOS" releaseType="Test" ownerType="OEM" />
    <files>
        <file source="tool.cmd" destinationDir="$(runtime.system32)\\Contoso" />
    </files>
</identity>
""")
    (product / "WithTestToolsFM.xml").write_text("""<?xml version="1.0" encoding="utf-8"?>
<FeatureManifest xmlns="http://schemas.microsoft.com/embedded/2004/10/ImageUpdate">
  <BasePackages />
  <Features>
    <OEM>
      <PackageFile Path="%PKGBLD_DIR%" Name="%OEM_NAME%.Test.Tools.cab">
        <FeatureIDs>
          <FeatureID>TEST_TOOLS</FeatureID>
        </FeatureIDs>
      </PackageFile>
    </OEM>
    <OEMFeatureGroups />
  </Features>
</FeatureManifest>
""")
    (product / "RetailOEMInput.xml").write_text(_retail_with(
        SAMPLE_RETAIL, fm="%IOTWKSPACE%\\products\\WithTestTools\\WithTestToolsFM.xml", feature="TEST_TOOLS"))
    p = run_cli(retail_ws, "buildimage", "WithTestTools", "Retail", check=False)
    lines = error_lines(p)
    assert p.returncode == 1 and "Traceback" not in p.stderr and len(lines) == 1, lines
    line = lines[0]
    assert "WithTestToolsFM.xml:6:" in line  # the PackageFile line that brought it in
    assert "package Contoso.Test.Tools has releaseType Test; a Production image takes only Production " \
           "packages" in line
    assert '(fix: set releaseType="Production" in its .wm.xml' in line
    assert not out_dir(retail_ws, "WithTestTools", "Retail").exists()


def _retail_with(text: str, *, fm: str, feature: str) -> str:
    """SampleA's Retail OEMInput without SampleA's own FM, plus ``fm`` and its ``feature``."""
    for old, new in (("%IOTWKSPACE%\\products\\SampleA\\SampleAFM.xml", fm), (">PROV_AUTO<", f">{feature}<")):
        assert old in text
        text = text.replace(old, new)
    return text
