"""The ``$(…)`` vocabulary of package definitions (reference: iot-adk-addonkit.md §2.2, cab-authenticode-registry.md §4.4).

Three kinds of macro exist: build variables passed by the toolkit (``$(OEMNAME)`` …), device-path macros
(``$(runtime.system32)`` …, defined by the ADK's pkggen.cfg.xml) and registry-root macros (``$(hklm.software)`` …).
Expansion is strict: an unknown macro is an error with the list of known ones, because the kit's silent
pass-through produced cabs with literal ``$(FOO)`` paths that only failed at image time.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

# Device paths, relative to the root of the package's target partition.
RUNTIME_PATHS: dict[str, str] = {
    "runtime.bootDrive": "",
    "runtime.systemDrive": "",
    "runtime.root": "",
    "runtime.systemRoot": r"\Windows",
    "runtime.windows": r"\Windows",
    "runtime.system32": r"\Windows\System32",
    "runtime.system": r"\Windows\System",
    "runtime.drivers": r"\Windows\System32\drivers",
    "runtime.driverStore": r"\Windows\System32\DriverStore",
    "runtime.help": r"\Windows\Help",
    "runtime.inf": r"\Windows\INF",
    "runtime.fonts": r"\Windows\Fonts",
    "runtime.wbem": r"\Windows\System32\wbem",
    "runtime.appPatch": r"\Windows\AppPatch",
    "runtime.sysWow64": r"\Windows\SysWOW64",
    "runtime.mui": r"\Windows\MUI",
    "runtime.default": r"\Windows\System32\config",
    "runtime.commonFiles": r"\Program Files\Common Files",
    "runtime.commonFilesX86": r"\Program Files (x86)\Common Files",
    "runtime.programFiles": r"\Program Files",
    "runtime.programFilesX86": r"\Program Files (x86)",
    "runtime.programData": r"\ProgramData",
    "runtime.userProfile": r"\Users\Default",
    "runtime.startMenu": r"\ProgramData\Microsoft\Windows\Start Menu",
    "runtime.documentSettings": r"\Users",
    "runtime.sharedData": r"\SharedData",
    "runtime.apps": r"\Programs\WindowsApps",
    "runtime.clipAppLicenseInstall": r"\Windows\System32\Licenses\Install",
}

# Registry roots, as pkggen writes them into .reg files.
REGISTRY_ROOTS: dict[str, str] = {
    "hklm.system": r"HKEY_LOCAL_MACHINE\SYSTEM",
    "hklm.software": r"HKEY_LOCAL_MACHINE\Software",
    "hklm.hardware": r"HKEY_LOCAL_MACHINE\Hardware",
    "hklm.sam": r"HKEY_LOCAL_MACHINE\SAM",
    "hklm.security": r"HKEY_LOCAL_MACHINE\Security",
    "hklm.bcd": r"HKEY_LOCAL_MACHINE\BCD",
    "hklm.drivers": r"HKEY_LOCAL_MACHINE\Drivers",
    "hklm.svchost": r"HKEY_LOCAL_MACHINE\Software\Microsoft\Windows NT\CurrentVersion\Svchost",
    "hklm.policies": r"HKEY_LOCAL_MACHINE\Software\Policies",
    "hklm.microsoft": r"HKEY_LOCAL_MACHINE\Software\Microsoft",
    "hklm.windows": r"HKEY_LOCAL_MACHINE\Software\Microsoft\Windows",
    "hklm.windowsnt": r"HKEY_LOCAL_MACHINE\Software\Microsoft\Windows NT",
    "hklm.currentcontrolset": r"HKEY_LOCAL_MACHINE\SYSTEM\CurrentControlSet",
    "hklm.services": r"HKEY_LOCAL_MACHINE\SYSTEM\CurrentControlSet\Services",
    "hklm.control": r"HKEY_LOCAL_MACHINE\SYSTEM\CurrentControlSet\Control",
    "hklm.autologger": r"HKEY_LOCAL_MACHINE\SYSTEM\CurrentControlSet\Control\WMI\Autologger",
    "hklm.enum": r"HKEY_LOCAL_MACHINE\SYSTEM\CurrentControlSet\Enum",
    "hkcr.root": r"HKEY_LOCAL_MACHINE\Software\Classes",
    "hkcr.classes": r"HKEY_LOCAL_MACHINE\Software\Classes",
    "hkcu.root": r"HKEY_CURRENT_USER",
    "hkuser.default": r"HKEY_USERS\.Default",
}

# Build variables the toolkit passes to pkggen with /variables: (iot-adk-addonkit.md §3.1).
BUILD_VARIABLES = ("OEMNAME", "PROD", "PRJDIR", "COMDIR", "BSPVER", "BSPARCH", "BUILDTIME", "BLDDIR", "_RELEASEDIR")

MACRO_RE = re.compile(r"\$\(([^()$]*)\)")


class UnknownMacro(ValueError):
    """Raised with the macro name; the caller adds file and line."""

    def __init__(self, name: str, known: list[str]) -> None:
        super().__init__(name)
        self.name = name
        self.known = known


def _lookup(name: str, variables: Mapping[str, str], extra: Mapping[str, str]) -> str:
    if name in variables:
        return variables[name]
    # Toolkit variables are case-insensitive, as on Windows.
    for k, v in variables.items():
        if k.lower() == name.lower():
            return v
    if name in extra:
        return extra[name]
    for k, v in extra.items():
        if k.lower() == name.lower():
            return v
    raise UnknownMacro(name, sorted(variables) + sorted(extra))


def expand_variables(text: str, variables: Mapping[str, str], *, allow: Mapping[str, str] | None = None) -> str:
    """Replace ``$(NAME)`` with build variables (and ``allow``); raise UnknownMacro on anything else.

    ``runtime.*`` and registry macros are left in place when ``allow`` is None and they are known, so that
    the model can keep them symbolic until it resolves a device path or key.
    """
    def sub(m: re.Match[str]) -> str:
        name = m.group(1)
        if allow is None and (name in RUNTIME_PATHS or name in REGISTRY_ROOTS
                              or name.lower() in {k.lower() for k in (*RUNTIME_PATHS, *REGISTRY_ROOTS)}):
            return m.group(0)
        return _lookup(name, variables, allow or {})

    # Variables may expand to text containing further macros (e.g. BLDDIR); expand a few rounds.
    for _ in range(4):
        new = MACRO_RE.sub(sub, text)
        if new == text:
            break
        text = new
    return text


def _ci(table: Mapping[str, str], name: str) -> str | None:
    if name in table:
        return table[name]
    low = name.lower()
    for k, v in table.items():
        if k.lower() == low:
            return v
    return None


def split_leading_macro(text: str) -> tuple[str | None, str]:
    """``$(runtime.system32)\\foo`` -> (``runtime.system32``, ``\\foo``); (None, text) if no leading macro."""
    m = MACRO_RE.match(text)
    if not m:
        return None, text
    return m.group(1), text[m.end():]


def runtime_path(name: str) -> str | None:
    return _ci(RUNTIME_PATHS, name)


def registry_root(name: str) -> str | None:
    return _ci(REGISTRY_ROOTS, name)
