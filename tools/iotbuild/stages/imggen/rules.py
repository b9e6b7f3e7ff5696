"""Test versus Production (retail) rules, checked before any partition work (iot-adk-addonkit.md §8).

Production (``ReleaseType`` Production, the kit's "Retail" configuration):
  * every package's releaseType is Production;
  * no TEST ONLY certificate anywhere: cab signatures, catalogs, signatures embedded in PE files;
  * every package chains to a configured retail root (``<TrustedRoot>`` in IoTWorkspace.xml);
  * no test feature manifest (``IoTUAPNonProductionPartnerShareFM``) and no test-only feature;
  * the FFU itself is signed with a retail identity.
Test:
  * a test-signed package needs the feature IOT_ENABLE_TESTSIGNING (what lets Windows load test-signed
    code at run time; without it the image would build and then refuse its own drivers).

Code integrity is recorded in the image's SYSTEM hive, key ``ControlSet001\\Control\\CI\\Policy``:
``CodeIntegrityEnforced`` (1 on Production, 0 on Test) and ``TestSigning`` (1 when IOT_ENABLE_TESTSIGNING
is selected). Every violation is one InputError naming the package, the rule and the fix.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ...errors import InputError
from ...formats.regfile import RegKey, RegType, RegValue
from ...models.oeminput import OEMInput
from .packages import ImagePackage

TESTSIGNING_FEATURE = "IOT_ENABLE_TESTSIGNING"
TEST_FM_MARKER = "IoTUAPNonProductionPartnerShareFM"
# The kit's test-only feature IDs (iot-adk-addonkit.md §5, "Test-only").
TEST_ONLY_FEATURES = frozenset({
    "IOT_BCD_FLASHMODE_SETTING", "IOT_DISABLE_TESTSIGNING", "IOT_EFIESP_TEST", "IOT_ENABLE_ADMIN",
    "IOT_ENABLE_TESTSIGNING", "IOT_KD_ON", "IOT_KDNETUSB_SETTINGS", "IOT_KDSERIAL_SETTINGS", "IOT_KDUSB_SETTINGS",
    "IOT_WDTF", "IOT_DIRECTX_TOOLS", "IOT_UMDFDBG_SETTINGS", "IOT_ENABLE_FLIGHTSIGNING", "IOT_DISABLE_FLIGHTSIGNING",
})
CI_KEY = "HKEY_LOCAL_MACHINE\\SYSTEM\\CurrentControlSet\\Control\\CI\\Policy"


@dataclass(frozen=True)
class CodeIntegrity:
    enforced: bool
    test_signing: bool

    def registry(self) -> RegKey:
        return RegKey(CI_KEY, (RegValue("CodeIntegrityEnforced", RegType.REG_DWORD, int(self.enforced)),
                               RegValue("TestSigning", RegType.REG_DWORD, int(self.test_signing))))

    def to_dict(self) -> dict[str, object]:
        return {"enforced": self.enforced, "test_signing": self.test_signing,
                "recorded_in": "MainOS \\Windows\\System32\\config\\SYSTEM: ControlSet001\\Control\\CI\\Policy "
                               "(CodeIntegrityEnforced, TestSigning)"}


def _selected(oi: OEMInput) -> set[str]:
    return {f.id.upper() for f in (*oi.microsoft_features, *oi.oem_features)}


def check_release_rules(oi: OEMInput, packages: Sequence[ImagePackage], *, retail_roots: Sequence[str],
                        signer_test_only: bool, signer_desc: str) -> tuple[CodeIntegrity, list[InputError]]:
    """All violations (empty when the image may be built) and what to record about code integrity.

    ``retail_roots`` are the subjects of the configured retail roots; ``signer_test_only`` tells whether the
    build's own signing identity (which signs the FFU catalog) is a TEST ONLY one.
    """
    production = oi.release_type.value == "Production"
    selected = _selected(oi)
    issues: list[InputError] = []
    where = oi.path
    if production:
        for ref in oi.additional_fms:
            if TEST_FM_MARKER.lower() in ref.text.lower():
                issues.append(InputError(f"test feature manifest {ref.text} is listed in a Production image",
                                         path=where, line=ref.line,
                                         hint="remove this AdditionalFM from the Retail OEMInput"))
        for f in (*oi.microsoft_features, *oi.oem_features):
            if f.id.upper() in TEST_ONLY_FEATURES:
                issues.append(InputError(f"feature {f.id} is test-only and may not be in a Production image",
                                         path=where, line=f.line, hint="remove it from the Retail OEMInput"))
        retail = {s.strip() for s in retail_roots}
        test_signed = [p for p in packages if p.test_only]
        for p in packages:
            if p.release_type != "Production":
                issues.append(InputError(
                    f"package {p.name} has releaseType {p.release_type or '(none)'}; a Production image takes "
                    "only Production packages", path=p.ref.fm, line=p.ref.line,
                    hint='set releaseType="Production" in its .wm.xml <onecorePackageInfo> (if it is fit for '
                         "retail) or leave its feature out of the Retail OEMInput"))
            if p.test_only:
                continue  # reported once, below
            top = p.chain[-1] if p.chain else p.signer
            if not retail or top not in retail:
                issues.append(InputError(
                    f"package {p.name} is signed by {p.signer!r}, whose chain ends at {top!r}, not at a configured "
                    "retail root", path=p.ref.fm, line=p.ref.line,
                    hint="add the retail root certificate as <TrustedRoot> in IoTWorkspace.xml, or re-sign the "
                         "package with the retail key"))
        # one error for one cause (a workspace signing in Test mode), as for Test images below
        if test_signed:
            p = test_signed[0]
            more = f" (and {len(test_signed) - 1} more package(s))" if len(test_signed) > 1 else ""
            also = f"; the build also signs with a TEST ONLY identity ({signer_desc})" if signer_test_only else ""
            issues.append(InputError(
                f"package {p.name} carries a TEST ONLY signature ({', '.join(p.test_only)}){more}; a Production "
                f"image must not contain test-signed content{also}", path=p.ref.fm, line=p.ref.line,
                hint="rebuild it signed with the retail key: configure <Signing Mode=\"Retail\"> in "
                     "IoTWorkspace.xml and run invoke buildimage again (packages are re-signed), or replace "
                     "the prebuilt cab with a retail-signed one"))
        elif signer_test_only:
            issues.append(InputError(f"the build signs with a TEST ONLY identity ({signer_desc}); a Production "
                                     "image's FFU catalog must be signed with the retail key",
                                     path=where, hint='set <Signing Mode="Retail"> with the retail key in '
                                                      'IoTWorkspace.xml (README "Signing")'))
    else:
        signed = [p for p in packages if p.test_only]
        if signed and TESTSIGNING_FEATURE not in selected:
            p = signed[0]
            more = f" (and {len(signed) - 1} more package(s))" if len(signed) > 1 else ""
            issues.append(InputError(
                f"package {p.name} is test-signed ({', '.join(p.test_only)}){more} but the image does not select "
                f"{TESTSIGNING_FEATURE}, so Windows would refuse to load it", path=p.ref.fm, line=p.ref.line,
                hint=f"add <Feature>{TESTSIGNING_FEATURE}</Feature> under <Features><Microsoft> in "
                     f"{oi.path.name}, or sign the packages with the retail key"))
    ci = CodeIntegrity(enforced=production, test_signing=(not production) and TESTSIGNING_FEATURE in selected)
    return ci, issues
