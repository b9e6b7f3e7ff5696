"""The .wm.xml model: samples parse, macros expand, every problem names file and line."""

from __future__ import annotations

from pathlib import Path

import pytest

from iotbuild.errors import InputError, InputErrors
from iotbuild.formats.regfile import RegType
from iotbuild.models import wmxml

VARS = {"OEMNAME": "Contoso", "PROD": "SampleA", "PRJDIR": "/ws", "COMDIR": "/ws/Common", "BSPVER": "10.0.1.0",
        "BSPARCH": "amd64", "BUILDTIME": "20231114-2213", "BLDDIR": "/ws/build", "_RELEASEDIR": "./"}
HEAD = ('<identity xmlns="urn:Microsoft.CompPlat/ManifestSchema.v1.00" name="N" namespace="Ns" owner="$(OEMNAME)">'
        '<onecorePackageInfo targetPartition="MainOS" releaseType="Production" ownerType="OEM"/>')


def load(tmp_path: Path, body: str, *, files: dict[str, bytes] | None = None, cpu="amd64") -> wmxml.PackageDefinition:
    for name, data in (files or {}).items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(data)
    p = tmp_path / "N.wm.xml"
    p.write_text(HEAD + body + "</identity>")
    return wmxml.load(p, VARS, cpu=cpu, roots=(tmp_path,))


def errors_of(tmp_path, body, **kw) -> list[InputError]:
    with pytest.raises(InputError) as e:
        load(tmp_path, body, **kw)
    return e.value.errors if isinstance(e.value, InputErrors) else [e.value]


def test_kit_sample_registry_version(samples):
    p = samples / "addonkit/Workspace/Common/Packages/Registry.Version/Registry.Version.wm.xml"
    d = wmxml.load(p, VARS, cpu="amd64", roots=(p.parent,))
    assert d.package_name == "Contoso.Registry.Version"
    assert (d.owner, d.namespace, d.name) == ("Contoso", "Registry", "Version")
    assert d.partition is wmxml.Partition.MAINOS and d.release_type is wmxml.ReleaseType.PRODUCTION
    (key,) = d.reg_keys
    assert key.path == r"HKEY_LOCAL_MACHINE\Software\Contoso"
    assert [(v.name, v.type, v.data) for v in key.values] == [
        ("Product", RegType.REG_SZ, "SampleA"), ("Version", RegType.REG_SZ, "10.0.1.0"),
        ("BuildTime", RegType.REG_SZ, "20231114-2213")]


def test_kit_sample_provisioning_auto_needs_its_ppkg(samples, tmp_path):
    p = samples / "addonkit/Workspace/Common/ProdPackages/Provisioning.Auto/Provisioning.Auto.wm.xml"
    (tmp_path / "ppkgs").mkdir()
    (tmp_path / "ppkgs/SampleAProv.ppkg").write_bytes(b"ppkg")
    (tmp_path / "ppkgs/SampleAProv.cat").write_bytes(b"cat")
    d = wmxml.load(p, {**VARS, "BLDDIR": str(tmp_path)}, cpu="amd64", roots=(tmp_path,))
    assert [f.device_path for f in d.files] == [r"\Windows\Provisioning\Packages\ProvAuto.ppkg",
                                                r"\Windows\Provisioning\Packages\ProvAuto.cat"]


def test_cab_name_without_legacy_name(tmp_path):
    assert load(tmp_path, "").package_name == "Contoso-Ns-N"


def test_files_device_paths_and_build_filter(tmp_path):
    d = load(tmp_path, '<files><file source="a.txt"/><file source="sub\\b.bin" destinationDir="$(runtime.bootDrive)\\x" '
                       'name="c.bin"/><file source="a.txt" destinationDir="$(runtime.windows)" buildFilter="build.arch = arm"/>'
                       '</files>', files={"a.txt": b"a", "sub/b.bin": b"b"})
    assert [(f.device_path, f.source.name) for f in d.files] == [
        (r"\Windows\System32\a.txt", "a.txt"), (r"\x\c.bin", "b.bin")]


def test_every_registry_type(tmp_path):
    d = load(tmp_path, '<regKeys><regKey keyName="$(hklm.system)\\K">'
                       '<regValue type="REG_SZ" value="dflt"/>'
                       '<regValue name="m" type="REG_MULTI_SZ" value="a;b\\;c"/>'
                       '<regValue name="d" type="REG_DWORD" value="0000001A"/>'
                       '<regValue name="q" type="REG_QWORD" value="0x1122334455667788"/>'
                       '<regValue name="b" type="REG_BINARY" value="00FF"/>'
                       '<regValue name="e" type="REG_EXPAND_SZ" value="%SystemRoot%"/>'
                       '</regKey><regKey keyName="$(hkuser.default)\\Empty"/></regKeys>')
    k, empty = d.reg_keys
    assert k.path == r"HKEY_LOCAL_MACHINE\SYSTEM\K" and empty.path == r"HKEY_USERS\.Default\Empty"
    assert [(v.name, v.data) for v in k.values] == [
        (None, "dflt"), ("m", ("a", "b;c")), ("d", 0x1A), ("q", 0x1122334455667788), ("b", b"\x00\xff"),
        ("e", "%SystemRoot%")]


@pytest.mark.parametrize("body, fragment", [
    ('<files><file source="a.txt" destinationDir="C:\\Windows"/></files>', "must start with a $(runtime.*) macro"),
    ('<files><file source="a.txt" destinationDir="$(runtime.windows)\\..\\.."/></files>', "contains '..'"),
    ('<files><file source="../outside.txt"/></files>', "outside the workspace"),
    ('<files><file source="/etc/passwd"/></files>', "outside the workspace"),
    ('<files><file source="C:\\x.txt"/></files>', "drive letter"),
    ('<files><file source="A.TXT"/></files>', "case-sensitive"),
    ('<files><file source="a.txt"/><file source="a.txt"/></files>', "also written by"),
    ('<regKeys><regKey keyName="$(hklm.software)\\K"><regValue name="v" type="REG_DWORD" value="xyz"/></regKey></regKeys>',
     "not a hexadecimal number"),
    ('<regKeys><regKey keyName="$(hklm.software)\\K"><regValue name="v" type="REG_DWORD" value="1FFFFFFFF"/>'
     '</regKey></regKeys>', "does not fit in 32 bits"),
    ('<regKeys><regKey keyName="HKLM\\Software"/></regKeys>', "must start with a registry macro"),
    ('<regKeys><regKey keyName="$(hklm.software)\\$(NOPE)"/></regKeys>', "unknown macro $(NOPE)"),
    ('<unknownThing/>', "unknown element <unknownThing>"),
    ('<files><file source="a.txt" bogus="1"/></files>', "unknown attribute 'bogus'"),
    ('<files><file source="a.txt" buildFilter="build.color = red"/></files>', "unknown identifier"),
])
def test_bad_definitions_name_line_and_fix(tmp_path, body, fragment):
    (tmp_path / "a.txt").write_text("a")
    errs = errors_of(tmp_path, body)
    assert any(fragment in str(e) for e in errs), [str(e) for e in errs]
    for e in errs:
        assert e.path and e.path.endswith("N.wm.xml") and e.line, str(e)


def test_all_problems_reported_together(tmp_path):
    errs = errors_of(tmp_path, '<files><file source="missing1"/><file source="missing2"/></files>')
    assert len(errs) == 2


def test_legacy_pkg_xml_is_refused_with_conversion_hint(tmp_path):
    p = tmp_path / "X.pkg.xml"
    p.write_text('<Package xmlns="urn:Microsoft.WindowsPhone/PackageSchema.v8.00"/>')
    with pytest.raises(InputError) as e:
        wmxml.load(p, VARS, cpu="amd64", roots=(tmp_path,))
    assert "/convert:pkg2wm" in e.value.hint


def test_entities_and_doctype_refused(tmp_path):
    p = tmp_path / "E.wm.xml"
    p.write_text('<?xml version="1.0"?>\n<!DOCTYPE identity [<!ENTITY x SYSTEM "file:///etc/passwd">]>\n'
                 '<identity xmlns="urn:Microsoft.CompPlat/ManifestSchema.v1.00" name="&x;" owner="o"/>')
    with pytest.raises(InputError) as e:
        wmxml.load(p, VARS, cpu="amd64", roots=(tmp_path,))
    assert e.value.line == 2 and "DOCTYPE" in str(e.value) + e.value.hint


def test_build_wow_guest_packages_are_refused_clearly(tmp_path):
    p = tmp_path / "W.wm.xml"
    p.write_text('<identity xmlns="urn:Microsoft.CompPlat/ManifestSchema.v1.00" name="W" namespace="N" owner="o"\n'
                 '  buildWow="true"/>')
    with pytest.raises(InputError) as e:
        wmxml.load(p, VARS, cpu="amd64", roots=(tmp_path,))
    assert "buildWow" in str(e.value) and e.value.line == 1 and e.value.hint
