"""What goes into a package: a definition's files, and its registry, services and drivers turned into
files and registry keys (iot-adk-addonkit.md §2.1; INF handling as pkggen's driver staging did)."""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass, field
from pathlib import Path

from ...errors import InputError, InputErrors
from ...formats.regfile import RegKey, RegType, RegValue
from ...models import inf as infmodel
from ...models.macros import REGISTRY_ROOTS
from ...models.wmxml import (ERROR_CONTROLS, FAILURE_ACTION_TYPES, SERVICE_STARTS, SERVICE_TYPES, SID_TYPES,
                             REGISTRY_PARTITIONS, PackageDefinition, ServiceItem)

SERVICES_KEY = r"HKEY_LOCAL_MACHINE\SYSTEM\CurrentControlSet\Services"
DRIVER_DATABASE = r"HKEY_LOCAL_MACHINE\Drivers\DriverDatabase\DriverPackages"
FILE_REPOSITORY = r"\Windows\System32\DriverStore\FileRepository"
RESERVED_DIRS = (r"\windows\packages\dsmfiles", r"\windows\packages\registryfiles", r"\windows\packages\policyfiles",
                 r"\windows\packages\certificates")


@dataclass(frozen=True)
class Payload:
    """A file placed on the device; ``origin`` says which definition line or INF put it there."""

    device_path: str
    source: Path
    origin: str = field(compare=False)


@dataclass(frozen=True)
class PackageContent:
    definition: PackageDefinition
    payloads: tuple[Payload, ...]
    registry: tuple[RegKey, ...]
    appends: tuple[RegKey, ...]  # REG_MULTI_SZ values to append (.rga)
    inputs: tuple[Path, ...]  # every host file read (for incremental builds)


class _Registry:
    """Keys in first-seen order; a value set twice to different data is a conflict naming both origins."""

    def __init__(self, definition: PackageDefinition) -> None:
        self.keys: dict[str, tuple[str, dict[str, tuple[RegValue, str]]]] = {}
        self.defn = definition
        self.issues: list[InputError] = []

    def key(self, path: str) -> dict[str, tuple[RegValue, str]]:
        k = path.lower()
        if k not in self.keys:
            self.keys[k] = (path, {})
        return self.keys[k][1]

    def set(self, path: str, value: RegValue, origin: str, line: int | None) -> None:
        values = self.key(path)
        ident = "@" if value.name is None else value.name.lower()
        if ident in values and values[ident][0] != value:
            self.issues.append(InputError(
                f"registry value {path}\\{value.name or '@'} is set by {values[ident][1]} and, differently, by {origin}",
                path=self.defn.path, line=line, hint="keep one of the two settings"))
            return
        values[ident] = (value, origin)

    def result(self) -> tuple[RegKey, ...]:
        return tuple(RegKey(path, tuple(v for v, _ in values.values())) for path, values in self.keys.values())


def collect(defn: PackageDefinition, *, cpu: str) -> PackageContent:
    issues: list[InputError] = []
    payloads: dict[str, Payload] = {}
    inputs: list[Path] = []
    reg = _Registry(defn)
    appends = _Registry(defn)

    def place(p: Payload, line: int | None) -> None:
        key = p.device_path.lower()
        if key.startswith(RESERVED_DIRS):
            issues.append(InputError(f"{p.device_path} is in a folder reserved for package metadata", path=defn.path,
                                     line=line, hint="choose another destinationDir"))
        elif key in payloads and payloads[key].source != p.source:
            issues.append(InputError(f"destination {p.device_path} is written by {payloads[key].origin} and by "
                                     f"{p.origin}", path=defn.path, line=line, hint="rename one of them"))
        else:
            payloads.setdefault(key, p)
            inputs.append(p.source)

    for f in defn.files:
        place(Payload(f.device_path, f.source, f"line {f.line}"), f.line)

    for k in defn.reg_keys:
        reg.key(k.path)
        for v, line in zip(k.values, k.value_lines or (k.line,) * len(k.values)):
            reg.set(k.path, v, f"line {line}", line)

    for s in defn.services:
        for path, value in service_values(s):
            reg.set(path, value, f"<service {s.name}> (line {s.line})", s.line)

    for d in defn.drivers:
        try:
            driver = infmodel.parse_inf(d.inf, arch=cpu)
        except InputErrors as e:
            issues.extend(e.errors)
            continue
        inputs.append(d.inf)
        _driver(driver, cpu, place, reg, appends, d.line)

    if (reg.keys or appends.keys) and defn.partition not in REGISTRY_PARTITIONS:
        issues.append(InputError(f"registry settings are not allowed in a {defn.partition.value} package",
                                 path=defn.path, line=None,
                                 hint="move the registry keys into a MainOS package"))
    issues.extend(reg.issues + appends.issues)
    if issues:
        raise InputErrors(issues)
    return PackageContent(definition=defn, payloads=tuple(payloads.values()), registry=reg.result(),
                          appends=appends.result(), inputs=tuple(dict.fromkeys([defn.path, *inputs])))


def failure_actions_blob(reset_period: int, actions: tuple[tuple[int, int], ...]) -> bytes:
    """SERVICE_FAILURE_ACTIONS as the service control manager stores it in ``FailureActions``: five DWORDs
    (reset period, reboot message, command, action count, a non-zero action-array marker) then SC_ACTIONs."""
    head = struct.pack("<IIIII", reset_period, 0, 0, len(actions), 0x14 if actions else 0)
    return head + b"".join(struct.pack("<II", t, delay) for t, delay in actions)


def service_values(s: ServiceItem) -> list[tuple[str, RegValue]]:
    key = f"{SERVICES_KEY}\\{s.name}"
    v: list[tuple[str, RegValue]] = [
        (key, RegValue("Type", RegType.REG_DWORD, SERVICE_TYPES[s.type])),
        (key, RegValue("Start", RegType.REG_DWORD, SERVICE_STARTS[s.start])),
        (key, RegValue("ErrorControl", RegType.REG_DWORD, ERROR_CONTROLS[s.error_control])),
        (key, RegValue("ImagePath", RegType.REG_EXPAND_SZ, s.image_path)),
    ]
    if s.start == "delayedAuto":
        v.append((key, RegValue("DelayedAutostart", RegType.REG_DWORD, 1)))
    if s.display_name:
        v.append((key, RegValue("DisplayName", RegType.REG_SZ, s.display_name)))
    if s.description:
        v.append((key, RegValue("Description", RegType.REG_SZ, s.description)))
    if s.object_name:
        v.append((key, RegValue("ObjectName", RegType.REG_SZ, s.object_name)))
    if s.depend_on_service:
        v.append((key, RegValue("DependOnService", RegType.REG_MULTI_SZ, s.depend_on_service)))
    if s.required_privileges:
        v.append((key, RegValue("RequiredPrivileges", RegType.REG_MULTI_SZ, s.required_privileges)))
    if s.sid_type:
        v.append((key, RegValue("ServiceSidType", RegType.REG_DWORD, SID_TYPES[s.sid_type])))
    if s.failure_actions or s.reset_period is not None:
        acts = tuple((FAILURE_ACTION_TYPES[a.type], a.delay_ms) for a in s.failure_actions)
        v.append((key, RegValue("FailureActions", RegType.REG_BINARY,
                                failure_actions_blob(s.reset_period or 0, acts))))
    return v


def driver_store_folder(driver: infmodel.InfDriver, cpu: str) -> str:
    """``<inf>_<arch>_<16 hex>``: like Windows' FileRepository names, with a hash of the INF's bytes so that
    two versions of one driver never share a folder (Windows uses a hash of the signed INF the same way)."""
    digest = hashlib.sha256(driver.path.read_bytes()).hexdigest()[:16]
    return f"{driver.path.name.lower()}_{cpu}_{digest}"


_INF_TYPES = {0x00000000: RegType.REG_SZ, 0x00010000: RegType.REG_MULTI_SZ, 0x00020000: RegType.REG_EXPAND_SZ,
              0x00000001: RegType.REG_BINARY, 0x00010001: RegType.REG_DWORD, 0x00020001: RegType.REG_NONE,
              0x000B0001: RegType.REG_QWORD}


def _inf_value(e: infmodel.InfRegEntry) -> RegValue:
    t = _INF_TYPES.get(e.flags & 0xFFFF0001)
    if t is None:
        raise ValueError(f"AddReg type flags 0x{e.flags & 0xFFFF0001:08X} are not supported")
    d = e.data
    if t in (RegType.REG_SZ, RegType.REG_EXPAND_SZ):
        return RegValue(e.value_name, t, d[0] if d else "")
    if t is RegType.REG_MULTI_SZ:
        return RegValue(e.value_name, t, tuple(x for x in d if x))
    if t in (RegType.REG_DWORD, RegType.REG_QWORD):
        text = d[0] if d else "0"
        n = int(text, 16) if text.lower().startswith("0x") else int(text)
        return RegValue(e.value_name, t, n)
    return RegValue(e.value_name, t, bytes(int(x, 16) for x in d if x))


def _driver(driver: infmodel.InfDriver, cpu: str, place, reg: _Registry, appends: _Registry, line: int) -> None:
    store = f"{FILE_REPOSITORY}\\{driver_store_folder(driver, cpu)}"
    origin = f"driver {driver.path.name}"
    place(Payload(f"{store}\\{driver.path.name}", driver.path, origin), line)
    for f in driver.files:
        place(Payload(f"{store}\\{f.name}", f.source, origin), line)
        if f.dirid != infmodel.DRIVER_STORE_DIRID:
            base = infmodel.DIRIDS[f.dirid]
            dest = "\\".join(p for p in (base, f.subdir.strip("\\"), f.name) if p)
            place(Payload(dest if dest.startswith("\\") else "\\" + dest, f.source, origin), line)
    if driver.catalog_file:
        cat = driver.path.parent / driver.catalog_file
        if cat.is_file():
            place(Payload(f"{store}\\{driver.catalog_file}", cat, origin), line)

    def dirid_path(text: str) -> str:
        for dirid, base in infmodel.DIRIDS.items():
            text = text.replace(f"%{dirid}%", r"\SystemRoot" + base[len(r"\Windows"):] if base.startswith(r"\Windows")
                                else base)
        return text.replace(f"%{infmodel.DRIVER_STORE_DIRID}%", r"\SystemRoot" + store[len(r"\Windows"):])

    for s in driver.services:
        key = f"{SERVICES_KEY}\\{s.name}"
        vals = [RegValue("Type", RegType.REG_DWORD, s.service_type),
                RegValue("Start", RegType.REG_DWORD, s.start_type),
                RegValue("ErrorControl", RegType.REG_DWORD, s.error_control),
                RegValue("ImagePath", RegType.REG_EXPAND_SZ, dirid_path(s.binary))]
        if s.display_name:
            vals.append(RegValue("DisplayName", RegType.REG_SZ, s.display_name))
        if s.description:
            vals.append(RegValue("Description", RegType.REG_SZ, s.description))
        if s.load_order_group:
            vals.append(RegValue("Group", RegType.REG_SZ, s.load_order_group))
        if s.dependencies:
            vals.append(RegValue("DependOnService", RegType.REG_MULTI_SZ, s.dependencies))
        for v in vals:
            reg.set(key, v, f"{origin} AddService (INF line {s.line})", line)

    pkg_key = f"{DRIVER_DATABASE}\\{driver_store_folder(driver, cpu)}"
    for e in driver.registry:
        if e.root == "HKR":
            if e.context.startswith("service:"):
                base = f"{SERVICES_KEY}\\{e.context.split(':', 1)[1]}"
            else:
                section = driver.install_sections[0]
                base = f"{pkg_key}\\Configurations\\{section}\\{'Device' if e.context == 'device' else 'Driver'}"
        elif e.root == "HKCR":
            base = REGISTRY_ROOTS["hkcr.root"]
        else:
            base = "HKEY_LOCAL_MACHINE"
        sub = e.subkey.strip("\\")
        if e.root == "HKLM":
            first, _, rest = sub.partition("\\")
            sub = {"software": "Software", "system": "SYSTEM"}.get(first.lower(), first) + (f"\\{rest}" if rest else "")
        path = f"{base}\\{sub}" if sub else base
        where = f"{origin} AddReg (INF line {e.line})"
        if e.flags & 0x10 or (e.value_name is None and not e.data):
            reg.key(path)
            continue
        try:
            value = _inf_value(e)
        except ValueError as err:
            reg.issues.append(InputError(f"{driver.path.name}:{e.line}: {err}", path=driver.path, line=e.line))
            continue
        if e.flags & 0x8:
            if value.type is not RegType.REG_MULTI_SZ:
                reg.issues.append(InputError("FLG_ADDREG_APPEND (0x8) needs a REG_MULTI_SZ value", path=driver.path,
                                             line=e.line, hint="use flags 0x00010008"))
                continue
            appends.set(path, value, where, line)
        else:
            reg.set(path, value, where, line)
