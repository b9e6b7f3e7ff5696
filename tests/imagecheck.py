"""Shared by the buildimage tests: sample workspace copies, the real command line, and checks of the outputs
made with tools nobody here wrote (sgdisk, fsck.fat, ntfsfix, mtools, ntfscat, cabextract, regipy).

Nothing in here reads an image with project code: the FFU's regions are located from the spec's field layout
(ffu.md §1–2), ``.reg`` files are parsed by :func:`parse_reg_file` (written for the tests, from the regedit
format), partitions are read by mtools and ntfs-3g, hives by regipy.
"""

from __future__ import annotations

import os
import re
import shutil
import struct
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from iotbuild import samples
import pytest

from tests.conftest import IN_CI, REPO, require_tool

CLI = [sys.executable, "-m", "iotbuild"]
EPOCH = "1700000000"
ARCH_DIR = Path("build/amd64")
# Settings load_workspace takes from the environment: the developer's shell must not change what is tested.
OVERRIDES = ("IOTBUILD_", "OEM_NAME", "ARCH", "BSP_VERSION", "BLD_DIR")
SECTOR = 512


# --- workspaces and the command line ---------------------------------------------------------------------
def copy_workspace(dest: Path) -> Path:
    """A fresh copy of the sample workspace as a new clone has it (no build/, no test PKI, no generated
    files), with the generated sample inputs prepared."""
    dest.mkdir(parents=True, exist_ok=True)
    for d in ("bsp", "packages", "products", "workspace"):
        shutil.copytree(REPO / d, dest / d,
                        ignore=shutil.ignore_patterns("Certs", "*.sys", "prepared", "__pycache__"))
    samples.prepare(dest)
    return dest


def cli_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(OVERRIDES)}
    env.update(SOURCE_DATE_EPOCH=EPOCH, LC_ALL="C.UTF-8", NO_COLOR="1", TERM="dumb", **(extra or {}))
    return env


def cli_argv(ws: Path | None, *args: str) -> list[str]:
    return [*CLI, *(["--workspace", str(ws)] if ws is not None else []), *args]


def run_cli(ws: Path | None, *args: str, check: bool = True, timeout: float = 300,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """``python -m iotbuild [--workspace ws] args…`` in ``ws``; ``check``: it must succeed."""
    p = subprocess.run(cli_argv(ws, *args), cwd=ws or REPO, capture_output=True, text=True, timeout=timeout,
                       env=cli_env(env), stdin=subprocess.DEVNULL)
    if check and p.returncode != 0:
        raise AssertionError(f"{args}: exit {p.returncode}\n--- stdout\n{p.stdout}\n--- stderr\n{p.stderr}")
    return p


def out_dir(ws: Path, product: str, config: str) -> Path:
    return ws / ARCH_DIR / product / config


def oeminput_without(text: str, *, testsigning: bool = True, prov_auto: bool = True) -> str:
    """SampleA's OEMInput text without the IOT_ENABLE_TESTSIGNING feature and/or without SampleA's own FM and
    its PROV_AUTO feature (whose package is built only for SampleA)."""
    if not testsigning:
        old = "    <Microsoft>\n      <Feature>IOT_ENABLE_TESTSIGNING</Feature>\n    </Microsoft>\n"
        assert old in text
        text = text.replace(old, "    <Microsoft />\n")
    if not prov_auto:
        for old in ("    <AdditionalFM>%IOTWKSPACE%\\products\\SampleA\\SampleAFM.xml</AdditionalFM>\n",
                    "      <Feature>PROV_AUTO</Feature>\n"):
            assert old in text
            text = text.replace(old, "")
    return text


def make_retail(ws: Path) -> dict[str, Path]:
    """Sign ``ws`` with a retail PKI (no "TEST ONLY" anywhere), configured in IoTWorkspace.xml as README
    "Signing" shows; returns the PKI's files."""
    from tests.signing.helpers import retail_chain
    paths = retail_chain().write(ws / "workspace" / "Certs" / "retail")
    paths["key"].chmod(0o600)
    config = ws / "workspace" / "IoTWorkspace.xml"
    text = config.read_text()
    assert '<Signing Mode="Test" />' in text
    config.write_text(text.replace('<Signing Mode="Test" />', (
        '<Signing Mode="Retail">\n'
        '            <Key>Certs/retail/leaf.key</Key>\n'
        '            <Certificate>Certs/retail/leaf.pem</Certificate>\n'
        '            <Chain>Certs/retail/intermediate.pem</Chain>\n'
        '            <TrustedRoot>Certs/retail/root.pem</TrustedRoot>\n'
        '        </Signing>')))
    return paths


# --- the FFU's regions, from the spec's layouts (ffu.md §1–2) -------------------------------------------
@dataclass(frozen=True)
class FfuRegions:
    size: int
    chunk: int
    catalog: int            # offset of the catalog (after the 32-byte SECURITY_HEADER)
    catalog_size: int
    hash_table: int
    hash_table_size: int
    image: int              # IMAGE_HEADER: the first hashed chunk
    manifest: int
    manifest_size: int
    store: int              # STORE_HEADER (V1)
    payload: int            # first payload block
    block_size: int
    blocks: int

    def chunk_of(self, offset: int) -> int:
        """Index of the hashed chunk holding file offset ``offset``."""
        return (offset - self.image) // self.chunk

    def anchor(self, name: str) -> int:
        return {"start": 0, "catalog": self.catalog, "hashtable": self.hash_table, "image": self.image,
                "manifest": self.manifest, "store": self.store, "payload": self.payload,
                "end": self.size}[name]

    def at(self, spec: str | int) -> int:
        """``1234``, ``"0x20"``, ``"payload+0x60000"``, ``"end-5000"``: an offset in the file."""
        if isinstance(spec, int):
            return spec
        m = re.fullmatch(r"([a-z]+)?\s*(?:([+-])\s*(0x[0-9a-fA-F]+|\d+))?", spec.strip())
        if not m or not (m.group(1) or m.group(3)):
            raise ValueError(f"bad offset {spec!r}")
        base = self.anchor(m.group(1)) if m.group(1) else 0
        delta = int(m.group(3), 0) if m.group(3) else 0
        return base + (delta if m.group(2) != "-" else -delta)


def _align(n: int, a: int) -> int:
    return -(-n // a) * a


def ffu_regions(data: bytes) -> FfuRegions:
    # SECURITY_HEADER: cbSize, signature[12], dwChunkSizeInKb, dwAlgId, dwCatalogSize, dwHashTableSize
    cb, sig, chunk_kb, _alg, cat, ht = struct.unpack_from("<I12sIIII", data, 0)
    assert cb == 32 and sig == b"SignedImage ", (cb, sig)
    chunk = chunk_kb * 1024
    image = _align(32 + cat + ht, chunk)
    # IMAGE_HEADER: cbSize, Signature[12], ManifestLength, dwChunkSize
    icb, isig, mlen, _ = struct.unpack_from("<I12sII", data, image)
    assert isig == b"ImageFlash  ", isig
    store = _align(image + icb + mlen, chunk)
    # STORE_HEADER V1: dwUpdateType, Major, Minor, FFMajor, FFMinor, szPlatformId[192], dwBlockSizeInBytes,
    # dwWriteDescriptorCount, dwWriteDescriptorLength, dwValidateDescriptorCount, dwValidateDescriptorLength,
    # then three (index, count) pairs: 248 bytes
    fields = struct.unpack_from("<IHHHH192sIIIII", data, store)
    (_t, major, _mi, _fa, _fi, _pid, block, count, dlen, _vc, vlen) = fields
    assert major == 1, f"STORE_HEADER.MajorVersion {major}: these tests read V1 stores"
    payload = _align(store + 248 + vlen + dlen, block)
    return FfuRegions(len(data), chunk, 32, cat, 32 + cat, ht, image, image + icb, mlen, store, payload,
                      block, count)


# --- disks and partitions ---------------------------------------------------------------------------------
def cut(raw: Path, offset: int, size: int, dest: Path) -> Path:
    """Bytes ``offset`` … ``offset+size`` of ``raw`` as a sparse file (all-zero MiBs are skipped)."""
    step = 1 << 20
    with open(raw, "rb") as src, open(dest, "wb") as out:
        src.seek(offset)
        done = 0
        while done < size:
            block = src.read(min(step, size - done))
            if not block:
                raise AssertionError(f"{raw} ends at {offset + done}, before {offset + size}")
            if block.count(0) != len(block):
                out.seek(done)
                out.write(block)
            done += len(block)
        out.truncate(size)
    return dest


def fat_read(raw: Path, offset: int, device_path: str) -> bytes:
    """A file of the FAT file system at byte ``offset`` of ``raw``, read by mtools."""
    require_tool("mcopy")
    p = subprocess.run(["mcopy", "-n", "-i", f"{raw}@@{offset}", "::" + device_path.replace("\\", "/"), "-"],
                       capture_output=True, timeout=60)
    assert p.returncode == 0, f"mcopy {device_path}: {p.stderr.decode(errors='replace')}"
    return p.stdout


def fat_files(raw: Path, offset: int) -> set[str]:
    """Every file (not folder) of the FAT file system, as ``\\dir\\name``, listed by ``mdir -/ -b``."""
    require_tool("mdir")
    p = subprocess.run(["mdir", "-/", "-b", "-i", f"{raw}@@{offset}", "::/"], capture_output=True, text=True,
                       timeout=60)
    assert p.returncode == 0, p.stderr
    return {ln[2:].replace("/", "\\") for ln in p.stdout.splitlines() if ln.startswith("::/") and
            not ln.endswith("/")}


def ntfs_read(image: Path, device_path: str) -> bytes:
    """A file of an NTFS partition image, read by ntfscat (ntfs-3g)."""
    require_tool("ntfscat")
    p = subprocess.run(["ntfscat", str(image), device_path.replace("\\", "/")], capture_output=True,
                       timeout=60)
    assert p.returncode == 0, f"ntfscat {device_path}: {p.stderr.decode(errors='replace')}"
    return p.stdout


def ntfs_files(image: Path) -> set[str]:
    """Every file (not folder) of an NTFS partition image, as ``\\dir\\name``, listed by ``ntfsls -R -F``."""
    require_tool("ntfsls")
    p = subprocess.run(["ntfsls", "-R", "-F", str(image)], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    files, folder = set(), None
    for ln in p.stdout.splitlines():
        if ln.endswith(":") and ln.startswith("/"):
            folder = ln[:-1].rstrip("/")
        elif ln and folder is not None and not ln.endswith("/"):
            files.add(f"{folder}/{ln}".replace("/", "\\"))
    return files


# --- .reg files (regedit 5.00 format), parsed independently of iotbuild.formats.regfile --------------------
@dataclass(frozen=True)
class RegValue:
    type: str      # REG_SZ, REG_EXPAND_SZ, REG_MULTI_SZ, REG_DWORD, REG_QWORD, REG_BINARY, REG_NONE
    data: object   # str | list[str] | int | bytes


def _unquote(text: str, at: int) -> tuple[str, int]:
    """The regedit string starting at ``text[at] == '"'``; returns it and the index after its end quote."""
    assert text[at] == '"', text
    out, i = [], at + 1
    while text[i] != '"':
        if text[i] == "\\":
            i += 1
        out.append(text[i])
        i += 1
    return "".join(out), i + 1


def _reg_data(raw: str) -> RegValue | None:
    if raw == "-":
        return None
    if raw.startswith('"'):
        return RegValue("REG_SZ", _unquote(raw, 0)[0])
    if raw.lower().startswith("dword:"):
        return RegValue("REG_DWORD", int(raw[6:], 16))
    m = re.fullmatch(r"hex(?:\(([0-9a-fA-F]+)\))?:([0-9a-fA-F,\s]*)", raw)
    assert m, f"unreadable .reg data {raw!r}"
    kind = int(m.group(1), 16) if m.group(1) else 3
    data = bytes(int(b, 16) for b in m.group(2).replace(" ", "").split(",") if b)
    if kind == 2:
        return RegValue("REG_EXPAND_SZ", data.decode("utf-16-le").rstrip("\0"))
    if kind == 7:
        return RegValue("REG_MULTI_SZ", [s for s in data.decode("utf-16-le").split("\0") if s])
    if kind == 0xB:
        return RegValue("REG_QWORD", int.from_bytes(data, "little"))
    if kind == 4:
        return RegValue("REG_DWORD", int.from_bytes(data, "little"))
    if kind == 1:
        return RegValue("REG_SZ", data.decode("utf-16-le").rstrip("\0"))
    return RegValue({3: "REG_BINARY", 0: "REG_NONE"}.get(kind, f"REG_{kind}"), data)


def parse_reg_file(data: bytes) -> dict[str, dict[str, RegValue]]:
    """``{key path: {value name ("" = default): value}}`` of a regedit 5.00 file (UTF-16 + BOM, or UTF-8)."""
    text = data.decode("utf-16") if data[:2] in (b"\xff\xfe", b"\xfe\xff") else data.decode("utf-8-sig")
    lines, buf = [], ""
    for ln in text.splitlines():  # join continuation lines ("…,\" + indented rest)
        ln = ln.strip() if buf else ln.rstrip()
        if ln.endswith("\\") and not ln.startswith(";"):
            buf += ln[:-1]
            continue
        lines.append(buf + ln)
        buf = ""
    keys: dict[str, dict[str, RegValue]] = {}
    current = None
    for ln in lines:
        if not ln or ln.startswith(";") or ln.startswith("Windows Registry Editor"):
            continue
        if ln.startswith("["):
            current = keys.setdefault(ln[1:ln.rindex("]")], {})
            continue
        assert current is not None, f".reg value outside a key: {ln!r}"
        if ln.startswith("@="):
            name, rest = "", ln[2:]
        else:
            name, end = _unquote(ln, 0)
            assert ln[end] == "=", ln
            rest = ln[end + 1:]
        value = _reg_data(rest.strip())
        if value is not None:
            current[name] = value
    return keys


def hive_of(key: str) -> tuple[str, str]:
    """(hive file, path inside it) of a .reg key as the offline image stores it: ``HKLM\\SYSTEM\\
    CurrentControlSet`` is ``ControlSet001`` offline (only a running system has the link)."""
    parts = key.split("\\")
    root = parts[0].upper()
    assert root in ("HKEY_LOCAL_MACHINE", "HKLM"), f"key outside HKLM: {key}"
    hive, rest = parts[1].upper(), parts[2:]
    if hive == "SYSTEM" and rest and rest[0].lower() == "currentcontrolset":
        rest = ["ControlSet001", *rest[1:]]
    return hive, "\\" + "\\".join(rest)


def regipy_value(v) -> RegValue:  # noqa: ANN001  (a regipy value)
    """A regipy value in :class:`RegValue` terms (regipy shows REG_BINARY as hex text, the default as
    "(default)")."""
    data = v.value
    if v.value_type == "REG_BINARY" and isinstance(data, str):
        data = bytes.fromhex(data)
    if v.value_type == "REG_MULTI_SZ":
        data = [s for s in data if s]
    return RegValue(v.value_type, data)


def require_module(name: str):  # noqa: ANN201
    """``import name``: skipped when missing locally, a failure in CI (it is in the ``test`` extra)."""
    import importlib
    try:
        return importlib.import_module(name)
    except ImportError:
        if IN_CI:
            pytest.fail(f"{name} is required in CI; scripts/setup.sh --test installs it")
        pytest.skip(f"{name} not installed")


def tool_ok(*argv: str | os.PathLike[str], timeout: float = 120) -> subprocess.CompletedProcess:
    """Run an outside checker; it must exit 0 (its output is in the failure message)."""
    require_tool(os.fspath(argv[0]))
    p = subprocess.run([os.fspath(a) for a in argv], capture_output=True, text=True, timeout=timeout)
    assert p.returncode == 0, f"{argv}: exit {p.returncode}\n{p.stdout}\n{p.stderr}"
    return p
