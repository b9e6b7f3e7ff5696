"""Kernel module metadata and dependency closure: synthetic ELF objects, and the real Debian 6.12 cloud kernel
from build/debs checked against busybox depmod (an outside implementation of the same rules)."""

from __future__ import annotations

import gzip
import lzma
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from iotbuild.errors import FormatError, InputError
from iotbuild.formats.kmod import (ModuleTree, decompress, elf_section, find_module_dir, module_name,
                                   parse_modinfo, read_module)
from iotbuild.stages.bsp.prepare import default_debs_dirs
from tests.conftest import IN_CI, REPO, require_tool

KERNEL_GLOB = "linux-image-6.12.*-cloud-amd64_*.deb"
SMOKE_MODULES = ["virtio_blk", "vfat", "nls_cp437", "nls_ascii", "nls_utf8", "ntfs3"]


def kernel_deb() -> Path:
    """The kernel .deb scripts/setup.sh fetched; skipped when absent locally, required in CI."""
    for d in default_debs_dirs(REPO):
        hits = sorted(d.glob(KERNEL_GLOB)) if d.is_dir() else []
        if hits:
            return hits[-1]
    if IN_CI:
        pytest.fail("build/debs has no 6.12 cloud kernel: CI must run scripts/setup.sh --test first")
    pytest.skip("build/debs has no 6.12 cloud kernel (run scripts/setup.sh)")


@pytest.fixture(scope="module")
def kernel_root(tmp_path_factory) -> Path:
    deb = kernel_deb()
    root = tmp_path_factory.mktemp("kernel")
    subprocess.run([require_tool("dpkg-deb"), "-x", deb, root], check=True, timeout=300)
    return root


# --- synthetic objects --------------------------------------------------------------------------------------
def elf(modinfo: bytes, *, bits: int = 64, big: bool = False) -> bytes:
    """A minimal relocatable ELF with sections: null, .modinfo, .shstrtab."""
    e = ">" if big else "<"
    names = b"\0.modinfo\0.shstrtab\0"
    ehsize, shentsize = (64, 64) if bits == 64 else (52, 40)
    mod_off = ehsize
    str_off = mod_off + len(modinfo)
    shoff = str_off + len(names)
    ident = b"\x7fELF" + bytes([2 if bits == 64 else 1, 2 if big else 1, 1]) + bytes(9)
    if bits == 64:
        head = ident + struct.pack(e + "HHIQQQIHHHHHH", 1, 62, 1, 0, 0, shoff, 0, ehsize, 0, 0, shentsize, 3, 2)
        sh = struct.Struct(e + "IIQQQQIIQQ")
    else:
        head = ident + struct.pack(e + "HHIIIIIHHHHHH", 1, 3, 1, 0, 0, shoff, 0, ehsize, 0, 0, shentsize, 3, 2)
        sh = struct.Struct(e + "IIIIIIIIII")
    sections = sh.pack(*[0] * 10) + sh.pack(1, 1, 2, 0, mod_off, len(modinfo), 0, 0, 1, 0) + \
        sh.pack(10, 3, 0, 0, str_off, len(names), 0, 0, 1, 0)
    assert len(head) == ehsize
    return head + modinfo + names + sections


def modinfo(name: str, depends: str = "") -> bytes:
    return b"".join(f"{k}={v}\0".encode() for k, v in (("alias", "fs-x"), ("depends", depends), ("alias", "fs-y"),
                                                          ("name", name), ("vermagic", "6.1-test SMP")))


@pytest.mark.parametrize("bits,big", [(64, False), (32, True), (32, False), (64, True)])
def test_modinfo_from_any_elf_class_and_byte_order(bits, big):
    data = elf(modinfo("nls_cp437", "a,b-c"), bits=bits, big=big)
    info = parse_modinfo(elf_section(data, ".modinfo"))
    assert info["alias"] == ("fs-x", "fs-y") and info["depends"] == ("a,b-c",) and info["name"] == ("nls_cp437",)
    assert elf_section(data, ".text") is None


def test_bad_elf_is_a_format_error(tmp_path):
    with pytest.raises(FormatError, match="not an ELF"):
        elf_section(b"MZ" + bytes(100), ".modinfo")
    data = bytearray(elf(b"name=x\0"))
    data[0x28:0x30] = struct.pack("<Q", 1 << 40)  # section table far outside the file
    with pytest.raises(FormatError, match="does not fit"):
        elf_section(bytes(data), ".modinfo")
    (tmp_path / "junk.ko.xz").write_bytes(b"not xz")
    with pytest.raises(FormatError, match="junk.ko.xz: cannot decompress"):
        decompress(tmp_path / "junk.ko.xz")
    # the same object with its section renamed: no .modinfo at all
    (tmp_path / "plain.ko").write_bytes(elf(b"license=GPL\0").replace(b".modinfo\0", b".modinfX\0"))
    with pytest.raises(FormatError, match="plain.ko: no .modinfo"):
        read_module(tmp_path / "plain.ko")


@pytest.fixture
def fake_tree(tmp_path) -> Path:
    """lib/modules/6.1-test with xz, gz and plain modules, a dash in a file name, and a built-in module."""
    moddir = tmp_path / "lib/modules/6.1-test"
    (moddir / "kernel/fs").mkdir(parents=True)
    (moddir / "kernel/drivers").mkdir(parents=True)
    mods = {"kernel/fs/fat.ko.xz": ("fat", ""), "kernel/fs/vfat.ko.gz": ("vfat", "fat"),
            "kernel/drivers/scsi_mod.ko": ("scsi_mod", "scsi_common"),
            "kernel/drivers/scsi_common.ko.xz": ("scsi_common", ""),
            "kernel/drivers/sd-mod.ko.xz": ("sd_mod", "scsi_mod,virtio"),
            "kernel/drivers/loop_a.ko": ("loop_a", "loop_b"),
            "kernel/drivers/loop_b.ko": ("loop_b", "loop_a")}
    for rel, (name, deps) in mods.items():
        raw = elf(modinfo(name, deps))
        if rel.endswith(".xz"):
            raw = lzma.compress(raw)
        elif rel.endswith(".gz"):
            raw = gzip.compress(raw, mtime=0)
        (moddir / rel).write_bytes(raw)
    (moddir / "modules.builtin").write_text("kernel/drivers/virtio/virtio.ko\n")
    return moddir


def test_closure_orders_dependencies_first_and_skips_builtins(fake_tree):
    tree = ModuleTree(fake_tree)
    assert tree.version == "6.1-test"
    order = tree.closure(["sd-mod", "vfat", "fat"])
    assert [m.name for m in order] == ["scsi_common", "scsi_mod", "sd_mod", "fat", "vfat"]
    assert [m.file_name for m in order] == ["scsi_common.ko", "scsi_mod.ko", "sd-mod.ko", "fat.ko", "vfat.ko"]
    assert tree.closure(["virtio"]) == []
    assert decompress(order[-1].path).startswith(b"\x7fELF")
    assert module_name("kernel/fs/nls/nls-cp437.ko.zst") == "nls_cp437"


def test_unknown_module_and_cycles_are_clear_errors(fake_tree):
    tree = ModuleTree(fake_tree)
    with pytest.raises(InputError, match="kernel module vfta is not in .*did you mean vfat") as e:
        tree.closure(["vfta"])
    assert "did you mean vfat" in str(e.value)
    with pytest.raises(FormatError, match="cycle: loop_a → loop_b → loop_a"):
        tree.closure(["loop_a"])
    with pytest.raises(InputError, match="does not exist"):
        ModuleTree(fake_tree / "nope")
    with pytest.raises(InputError, match="no kernel module folders"):
        find_module_dir(fake_tree / "kernel")


# --- the real kernel ------------------------------------------------------------------------------------------
def test_real_kernel_closure_for_the_smoke_initramfs(kernel_root):
    tree = ModuleTree(find_module_dir(kernel_root))
    assert tree.version.endswith("-cloud-amd64") and tree.version.startswith("6.12.")
    order = tree.closure(SMOKE_MODULES)
    assert [m.name for m in order] == ["virtio_blk", "fat", "vfat", "nls_cp437", "nls_ascii", "nls_utf8", "ntfs3"]
    assert "virtio_pci" in tree.builtin and tree.closure(["virtio_pci"]) == []
    for m in order:
        assert m.vermagic.startswith(tree.version + " ")
        assert m.path.name.endswith(".ko.xz")


def test_real_modules_decompress_like_xz(kernel_root):
    xz = require_tool("xz")
    tree = ModuleTree(find_module_dir(kernel_root))
    path = tree.module("ntfs3").path
    ours = decompress(path)
    theirs = subprocess.run([xz, "-dc", path], capture_output=True, check=True, timeout=60).stdout
    assert ours == theirs and ours.startswith(b"\x7fELF")


def test_every_real_module_agrees_with_busybox_depmod(kernel_root, tmp_path):
    """All ~1100 modules: our closure == the dependency list busybox depmod writes to modules.dep."""
    bb = require_tool("busybox")
    moddir = find_module_dir(kernel_root)
    copy = tmp_path / "lib/modules" / moddir.name
    shutil.copytree(moddir, copy)
    subprocess.run([bb, "depmod", "-b", tmp_path, moddir.name], check=True, timeout=300)
    theirs = {}
    for line in (copy / "modules.dep").read_text().splitlines():
        key, deps = line.split(":", 1)
        theirs[module_name(key)] = {module_name(d) for d in deps.split()}
    tree = ModuleTree(moddir)
    assert set(theirs) == set(tree.files) and len(theirs) > 500
    mismatches = {n: ({m.name for m in tree.closure([n])} - {n}, theirs[n]) for n in tree.files
                  if {m.name for m in tree.closure([n])} - {n} != theirs[n]}
    assert not mismatches
