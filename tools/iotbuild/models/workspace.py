"""The workspace: ``IoTWorkspace.xml`` read like the kit's (iot-adk-addonkit.md §1.2, §1.4), plus signing.

A workspace is a folder holding ``workspace/IoTWorkspace.xml`` (iotbuild layout: ``packages/``, ``bsp/``,
``products/``) or ``IoTWorkspace.xml`` at its root (the kit's layout: ``Common/``, ``Source-<arch>/``).
Environment variables override the file, as ``Set-IoTEnvironment`` did, so that a build server can
change the OEM name, version, output folder or signing key without editing the workspace.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from ..errors import InputError
from ..outputs import build_epoch
from ..signing.config import SigningConfig, SigningMode
from ..xmlsafe import localname, parse

CONFIG_NAME = "IoTWorkspace.xml"


class Arch(StrEnum):
    ARM = "arm"
    X86 = "x86"
    X64 = "x64"
    ARM64 = "arm64"

    @property
    def bsparch(self) -> str:
        """The build folder and pkggen ``/cpu:`` name: x64 becomes amd64, the others stay."""
        return "amd64" if self is Arch.X64 else self.value

    @property
    def cpu_type(self) -> str:
        """Spelling used in man.dsm.xml ``CpuType``."""
        return {"arm": "ARM", "x86": "x86", "x64": "AMD64", "arm64": "ARM64"}[self.value]

    @classmethod
    def parse(cls, value: str, *, path: Path | None = None, line: int | None = None) -> Arch:
        v = value.strip().lower()
        if v == "amd64":
            return cls.X64
        try:
            return cls(v)
        except ValueError:
            raise InputError(f"unknown architecture {value!r}", path=path, line=line,
                             hint="use one of arm, x86, x64, arm64") from None


_VERSION_RE = re.compile(r"^\d{1,5}\.\d{1,5}\.\d{1,5}\.\d{1,5}$")
_OEM_RE = re.compile(r"^[A-Za-z0-9]+$")


@dataclass(frozen=True)
class Workspace:
    root: Path
    config_path: Path
    oem_name: str
    arch: Arch
    bsp_version: str
    build_dir: Path
    signing: SigningConfig
    kit_layout: bool = False
    ms_package_root: Path | None = None
    bsp_pkg_dir_override: Path | None = None
    env: Mapping[str, str] = field(default_factory=dict, compare=False, repr=False)

    # -- well-known folders ------------------------------------------------------------------
    @property
    def bsparch(self) -> str:
        return self.arch.bsparch

    @property
    def pkg_dir(self) -> Path:
        return self.build_dir / "pkgs"

    @property
    def bsp_pkg_dir(self) -> Path:
        """BSPPKG_DIR: where prebuilt board cabs live (Env/BSPPkgDir, default the package output folder)."""
        return self.bsp_pkg_dir_override or self.pkg_dir

    @property
    def log_dir(self) -> Path:
        return self.pkg_dir / "logs"

    @property
    def ppkg_dir(self) -> Path:
        return self.build_dir / "ppkgs"

    @property
    def common_dir(self) -> Path:
        return self.root / "Common" if self.kit_layout else self.root / "packages"

    @property
    def source_dir(self) -> Path:
        return self.root / f"Source-{self.arch.value}" if self.kit_layout else self.root

    @property
    def package_roots(self) -> list[Path]:
        """Folders ``buildpkg All`` searches for ``*.wm.xml`` (the kit's Common, PKGSRC and BSPSRC)."""
        if self.kit_layout:
            return [self.root / "Common" / "Packages", self.source_dir / "Packages", self.source_dir / "BSP"]
        return [self.root / "packages", self.root / "bsp"]

    @property
    def search_roots(self) -> list[Path]:
        """Folders searched for a package given as ``Ns.Name`` (includes product-only packages)."""
        extra = [self.root / "Common" / "ProdPackages"] if self.kit_layout else [self.root / "products"]
        return [*self.package_roots, *extra]

    @property
    def products_dir(self) -> Path:
        return self.source_dir / "Products" if self.kit_layout else self.root / "products"

    def variables(self, *, product: str = "Default", release_dir: Path | None = None) -> dict[str, str]:
        """The ``/variables:`` pkggen received from the toolkit (§3.1), BUILDTIME from SOURCE_DATE_EPOCH."""
        return {
            "OEMNAME": self.oem_name,
            "PROD": product,
            "PRJDIR": str(self.source_dir),
            "COMDIR": str(self.common_dir),
            "BSPVER": self.bsp_version,
            "BSPARCH": self.bsparch,
            "BUILDTIME": time.strftime("%Y%m%d-%H%M", time.gmtime(build_epoch())),
            "BLDDIR": str(self.build_dir),
            "_RELEASEDIR": str(release_dir) + os.sep if release_dir else "." + os.sep,
        }


def find_config(start: Path) -> Path | None:
    """The workspace config for ``start`` or the nearest parent that has one."""
    start = start.resolve()
    for d in (start, *start.parents):
        for cand in (d / "workspace" / CONFIG_NAME, d / CONFIG_NAME):
            if cand.is_file():
                return cand
    return None


def _text(el) -> str:
    return (el.text or "").strip() if el is not None else ""


def _expand_env(value: str, env: Mapping[str, str]) -> str:
    """Expand ``%NAME%`` the way cmd.exe does; unknown names stay as they are (and are caught later)."""
    return re.sub(r"%([A-Za-z_][A-Za-z0-9_]*)%", lambda m: env.get(m.group(1), m.group(0)), value)


def load_workspace(where: Path | None = None, *, env: Mapping[str, str] | None = None,
                   arch: str | None = None) -> Workspace:
    """Read the workspace containing ``where`` (default: the current folder).

    Overrides: ``IOTBUILD_WORKSPACE`` (folder), ``OEM_NAME``, ``ARCH``, ``BSP_VERSION``, ``BLD_DIR``,
    ``IOTBUILD_SIGN_MODE`` (test|retail), ``IOTBUILD_SIGN_KEY``, ``IOTBUILD_SIGN_CERT``,
    ``IOTBUILD_SIGN_CHAIN`` (os.pathsep-separated), ``IOTBUILD_SIGN_COMMAND``, ``IOTBUILD_SIGN_PFX_PASSWORD_ENV``,
    ``IOTBUILD_SIGN_TRUSTED_ROOT`` (os.pathsep-separated).
    """
    env = dict(os.environ if env is None else env)
    start = Path(env.get("IOTBUILD_WORKSPACE") or where or Path.cwd())
    config = find_config(start)
    if config is None:
        raise InputError(f"no {CONFIG_NAME} found in {start} or its parents", path=start,
                         hint="run inside a workspace, pass --workspace DIR, or set IOTBUILD_WORKSPACE")
    root = config.parent.parent if config.parent.name == "workspace" else config.parent
    kit_layout = config.parent == root and (root / "Common").is_dir()
    xml = parse(config, what="workspace configuration")
    if localname(xml) != "IoTWorkspace":
        raise InputError(f"root element is <{localname(xml)}>, expected <IoTWorkspace>", path=config,
                         line=xml.sourceline, hint="this does not look like an IoTWorkspace.xml")
    cfg = xml.find("Config")
    if cfg is None:
        raise InputError("<Config> is missing", path=config, line=xml.sourceline,
                         hint="add <Config><OemName>…</OemName></Config>")

    arch_name = arch or env.get("ARCH") or _text(xml.find("CurrentEnv")) or "x64"
    if arch_name == "undefined":
        arch_name = "x64"
    the_arch = Arch.parse(arch_name, path=config, line=getattr(xml.find("CurrentEnv"), "sourceline", None))

    oem_el = cfg.find("OemName")
    oem = env.get("OEM_NAME") or _text(oem_el)
    if not _OEM_RE.match(oem or ""):
        raise InputError(f"OemName {oem!r} must be letters and digits only (it prefixes every cab name)",
                         path=config, line=getattr(oem_el, "sourceline", None), hint="e.g. <OemName>Contoso</OemName>")

    env_el = next((e for e in xml.findall("Env") if (e.get("Name") or "").lower() == the_arch.value), None)
    ver_el = env_el.find("BSPVersion") if env_el is not None else None
    version = env.get("BSP_VERSION") or _text(ver_el) or "10.0.0.0"
    if not _VERSION_RE.match(version) or any(int(p) > 65535 for p in version.split(".")):
        raise InputError(f"BSPVersion {version!r} is not a 4-part version a.b.c.d (each 0–65535)",
                         path=config, line=getattr(ver_el, "sourceline", None), hint="e.g. 10.0.1.0")

    xenv = {**env, "IOTWKSPACE": str(root), "BSP_ARCH": the_arch.bsparch, "ARCH": the_arch.value,
            "OEM_NAME": oem}
    build_text = env.get("BLD_DIR") or _text(cfg.find("BuildDir")) or str(Path("build") / the_arch.bsparch)
    build_dir = Path(_expand_env(build_text.replace("\\", "/"), xenv))
    if "%" in str(build_dir):
        raise InputError(f"BuildDir {build_text!r} names an unknown %VARIABLE%", path=config,
                         line=getattr(cfg.find("BuildDir"), "sourceline", None),
                         hint="use %IOTWKSPACE%, %BSP_ARCH% or an environment variable that is set")
    if not build_dir.is_absolute():
        build_dir = root / build_dir

    bsp_pkg_text = env.get("BSPPKG_DIR") or _text(env_el.find("BSPPkgDir") if env_el is not None else None)
    bsp_pkg_dir = None
    if bsp_pkg_text and bsp_pkg_text.strip() != "%PKGBLD_DIR%":
        bsp_pkg_dir = Path(_expand_env(bsp_pkg_text.replace("\\", "/"),
                                       {**xenv, "PKGBLD_DIR": str(build_dir / "pkgs"), "BLD_DIR": str(build_dir)}))
        if "%" in str(bsp_pkg_dir):
            raise InputError(f"BSPPkgDir {bsp_pkg_text!r} names an unknown %VARIABLE%", path=config,
                             hint="use %PKGBLD_DIR%, %IOTWKSPACE% or an absolute folder")
        if not bsp_pkg_dir.is_absolute():
            bsp_pkg_dir = root / bsp_pkg_dir

    ms_root_text = env.get("MSPKG_ROOT") or _text(cfg.find("MSPkgRoot"))
    ms_root = Path(_expand_env(ms_root_text, xenv)) if ms_root_text else None

    signing = _signing_config(cfg, config, root, env)
    return Workspace(root=root, config_path=config, oem_name=oem, arch=the_arch, bsp_version=version,
                     build_dir=build_dir, signing=signing, kit_layout=kit_layout, ms_package_root=ms_root, bsp_pkg_dir_override=bsp_pkg_dir, env=env)


def _paths(value: str, base: Path) -> tuple[Path, ...]:
    return tuple((base / p).resolve() if not Path(p).is_absolute() else Path(p)
                 for p in value.split(os.pathsep) if p.strip())


def _signing_config(cfg, config: Path, root: Path, env: Mapping[str, str]) -> SigningConfig:
    """``<Config><Signing Mode="Test|Retail">`` (an iotbuild addition: the kit used the Windows cert store)."""
    el = cfg.find("Signing")
    get = (lambda tag: _text(el.find(tag)) if el is not None else "")
    mode_text = env.get("IOTBUILD_SIGN_MODE") or (el.get("Mode") if el is not None else "") or "test"
    try:
        mode = SigningMode(mode_text.strip().lower())
    except ValueError:
        raise InputError(f"signing mode {mode_text!r} unknown", path=config,
                         line=getattr(el, "sourceline", None), hint='use Mode="Test" or Mode="Retail"') from None
    cert_dir = root / "workspace" / "Certs" if (root / "workspace").is_dir() else root / "Certs"

    def one(env_name: str, tag: str) -> Path | None:
        value = env.get(env_name) or get(tag)
        return _paths(value, config.parent)[0] if value else None

    signing = SigningConfig(
        mode=mode,
        cert_dir=cert_dir,
        key=one("IOTBUILD_SIGN_KEY", "Key"),
        certificate=one("IOTBUILD_SIGN_CERT", "Certificate"),
        chain=_paths(env.get("IOTBUILD_SIGN_CHAIN") or os.pathsep.join(
            _text(c) for c in (el.findall("Chain") if el is not None else [])), config.parent),
        pfx_password_env=env.get("IOTBUILD_SIGN_PFX_PASSWORD_ENV") or get("PfxPasswordEnv") or None,
        command=env.get("IOTBUILD_SIGN_COMMAND") or get("Command") or None,
        trusted_roots=_paths(env.get("IOTBUILD_SIGN_TRUSTED_ROOT") or os.pathsep.join(
            _text(c) for c in (el.findall("TrustedRoot") if el is not None else [])), config.parent),
    )
    if mode is SigningMode.RETAIL and not (signing.key or signing.command):
        raise InputError("retail signing needs a key or an external signer command", path=config,
                         line=getattr(el, "sourceline", None),
                         hint="add <Key> (PEM or PFX) and <Certificate>, or <Command> and <Certificate> under <Signing>, "
                              "or set IOTBUILD_SIGN_KEY / IOTBUILD_SIGN_COMMAND")
    return signing
