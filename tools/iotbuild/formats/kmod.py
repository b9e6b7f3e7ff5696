"""Linux kernel modules as shipped in a kernel package: ``.modinfo`` of ``.ko``/``.ko.xz``/``.ko.gz``,
the dependency closure that depmod would compute, and decompression.

    tree = ModuleTree(Path("root/lib/modules/6.12.117+deb12-cloud-amd64"))
    for mod in tree.closure(["vfat", "ntfs3"]):       # dependencies first: fat, vfat, ntfs3
        (out / mod.file_name).write_bytes(decompress(mod.path))

Reference: the ELF specification (section header table, ``e_shstrndx``) and the kernel's modpost, which
writes ``.modinfo`` as NUL-separated ``key=value`` strings (``name=``, ``depends=a,b``, ``vermagic=``). A
kernel package that was unpacked rather than installed has no ``modules.dep`` (depmod runs in its postinst),
hence this reader. ``modules.builtin`` (shipped by the package) names modules compiled into the kernel; those
need no file and are left out of the closure. Symbol dependencies do not cover transport drivers (virtio_pci
on some kernels): list those explicitly.
"""

from __future__ import annotations

import difflib
import gzip
import lzma
import os
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from ..errors import FormatError, InputError

SUFFIXES = (".ko", ".ko.xz", ".ko.gz", ".ko.zst")
_ELF_MAGIC = b"\x7fELF"


def module_name(path: str | os.PathLike[str]) -> str:
    """``kernel/fs/nls/nls-cp437.ko.xz`` → ``nls_cp437`` (the kernel treats ``-`` and ``_`` alike)."""
    base = os.path.basename(os.fspath(path))
    for suffix in SUFFIXES:
        if base.endswith(suffix):
            base = base[: -len(suffix)]
            break
    return base.replace("-", "_")


def decompress(path: str | os.PathLike[str]) -> bytes:
    """The module's ELF bytes (``.ko`` as is; ``.xz`` and ``.gz`` unpacked). Signatures appended by the
    kernel build sit inside the compressed ELF, so they stay valid."""
    path = Path(path)
    raw = path.read_bytes()
    try:
        if path.name.endswith(".xz"):
            data = lzma.decompress(raw)
        elif path.name.endswith(".gz"):
            data = gzip.decompress(raw)
        elif path.name.endswith(".zst"):
            raise FormatError("zstd-compressed modules are not supported", path=path,
                              hint="use a kernel package with .ko or .ko.xz modules")
        else:
            data = raw
    except (lzma.LZMAError, OSError, EOFError) as e:
        raise FormatError(f"cannot decompress: {e}", path=path) from None
    if not data.startswith(_ELF_MAGIC):
        raise FormatError(f"not an ELF object (starts with {data[:4]!r})", offset=0, path=path)
    return data


def elf_section(data: bytes, wanted: str) -> bytes | None:
    """The bytes of the section named ``wanted`` in an ELF relocatable object (32/64-bit, either byte order)."""
    if not data.startswith(_ELF_MAGIC) or len(data) < 0x34:
        raise FormatError("not an ELF object", offset=0)
    cls, order = data[4], data[5]
    if cls not in (1, 2) or order not in (1, 2):
        raise FormatError(f"ELF class {cls} / data encoding {order} unknown", offset=4)
    e = "<" if order == 1 else ">"
    if cls == 2:
        shoff, = struct.unpack_from(e + "Q", data, 0x28)
        shentsize, shnum, shstrndx = struct.unpack_from(e + "HHH", data, 0x3A)
        sh = struct.Struct(e + "IIQQQQIIQQ")  # sh_name sh_type sh_flags sh_addr sh_offset sh_size ...
    else:
        shoff, = struct.unpack_from(e + "I", data, 0x20)
        shentsize, shnum, shstrndx = struct.unpack_from(e + "HHH", data, 0x2E)
        sh = struct.Struct(e + "IIIIIIIIII")
    if shentsize < sh.size or shoff + shnum * shentsize > len(data) or shstrndx >= shnum:
        raise FormatError(f"ELF section header table ({shnum} x {shentsize} at 0x{shoff:x}) does not fit",
                          offset=shoff)

    def header(i: int) -> tuple[int, int, int]:
        f = sh.unpack_from(data, shoff + i * shentsize)
        return f[0], f[4], f[5]  # name offset, file offset, size

    _, str_off, str_size = header(shstrndx)
    names = data[str_off:str_off + str_size]
    for i in range(shnum):
        name_off, off, size = header(i)
        end = names.find(b"\0", name_off)
        if names[name_off:end if end >= 0 else None].decode("ascii", "replace") == wanted:
            if off + size > len(data):
                raise FormatError(f"ELF section {wanted} runs past the end of the file", offset=off)
            return data[off:off + size]
    return None


def parse_modinfo(section: bytes) -> dict[str, tuple[str, ...]]:
    """``key=value`` strings → key → values (in order; ``alias`` and others repeat)."""
    out: dict[str, list[str]] = {}
    for item in section.split(b"\0"):
        if b"=" not in item:
            continue
        k, v = item.decode("utf-8", "replace").split("=", 1)
        out.setdefault(k, []).append(v)
    return {k: tuple(v) for k, v in out.items()}


@dataclass(frozen=True)
class KernelModule:
    name: str
    path: Path
    depends: tuple[str, ...]
    vermagic: str

    @property
    def file_name(self) -> str:
        """The decompressed file name: ``ntfs3.ko``."""
        base = self.path.name
        for suffix in (".xz", ".gz", ".zst"):
            if base.endswith(suffix):
                return base[: -len(suffix)]
        return base


def read_module(path: str | os.PathLike[str]) -> KernelModule:
    path = Path(path)
    try:
        section = elf_section(decompress(path), ".modinfo")
    except FormatError as e:
        raise e.with_path(path) from None
    if section is None:
        raise FormatError("no .modinfo section: not a kernel module", path=path)
    info = parse_modinfo(section)
    depends = tuple(d.strip().replace("-", "_") for v in info.get("depends", ()) for d in v.split(",") if d.strip())
    name = (info.get("name") or (module_name(path),))[0].replace("-", "_")
    return KernelModule(name=name, path=path, depends=depends, vermagic=(info.get("vermagic") or ("",))[0])


class ModuleTree:
    """The modules of one kernel: ``<root>/lib/modules/<version>`` of an unpacked kernel package."""

    def __init__(self, moddir: str | os.PathLike[str]) -> None:
        self.moddir = Path(moddir)
        if not self.moddir.is_dir():
            raise InputError(f"kernel module folder {self.moddir} does not exist",
                             hint="unpack the kernel package first (dpkg-deb -x)")
        self._files: dict[str, Path] | None = None
        self._builtin: set[str] | None = None
        self._info: dict[str, KernelModule] = {}

    @property
    def version(self) -> str:
        return self.moddir.name

    @property
    def files(self) -> dict[str, Path]:
        """Module name → file, for every module file under the folder (sorted walk, first one wins)."""
        if self._files is None:
            found: dict[str, Path] = {}
            for dirpath, dirnames, filenames in os.walk(self.moddir):
                dirnames.sort()
                for fn in sorted(filenames):
                    if fn.endswith(SUFFIXES):
                        found.setdefault(module_name(fn), Path(dirpath) / fn)
            self._files = found
        return self._files

    @property
    def builtin(self) -> set[str]:
        """Modules compiled into the kernel (``modules.builtin``), which need no file."""
        if self._builtin is None:
            f = self.moddir / "modules.builtin"
            lines = f.read_text().split() if f.is_file() else []
            self._builtin = {module_name(x) for x in lines}
        return self._builtin

    def module(self, name: str) -> KernelModule:
        key = name.replace("-", "_")
        if key not in self._info:
            path = self.files.get(key)
            if path is None:
                near = difflib.get_close_matches(key, self.files, n=3)
                raise InputError(f"kernel module {name} is not in {self.moddir}",
                                 hint=("did you mean " + ", ".join(near) + "?") if near
                                 else "check the name against the kernel's lib/modules tree")
            self._info[key] = read_module(path)
        return self._info[key]

    def closure(self, names: Iterable[str]) -> list[KernelModule]:
        """The modules to load for ``names``, each after everything it depends on; built-ins left out.

        Order is deterministic: the requested names in order, each preceded by its dependencies in their
        ``depends=`` order (depth first)."""
        order: list[KernelModule] = []
        done: set[str] = set()

        def visit(name: str, chain: tuple[str, ...]) -> None:
            key = name.replace("-", "_")
            if key in done:
                return
            if key in chain:
                raise FormatError("module dependency cycle: " + " → ".join((*chain, key)), path=self.moddir)
            if key in self.builtin and key not in self.files:
                done.add(key)
                return
            mod = self.module(key)
            for dep in mod.depends:
                visit(dep, (*chain, key))
            done.add(key)
            order.append(mod)

        for n in names:
            visit(n, ())
        return order


def find_module_dir(root: str | os.PathLike[str]) -> Path:
    """The single ``lib/modules/<version>`` (or ``usr/lib/modules/<version>``) of an unpacked kernel package."""
    root = Path(root)
    found = sorted(d for base in (root / "lib/modules", root / "usr/lib/modules") if base.is_dir()
                   for d in base.iterdir() if d.is_dir())
    if len(found) != 1:
        what = "no" if not found else f"{len(found)}"
        raise InputError(f"{what} kernel module folders under {root}/lib/modules" +
                         (": " + ", ".join(d.name for d in found) if found else ""),
                         hint="unpack exactly one kernel package")
    return found[0]
