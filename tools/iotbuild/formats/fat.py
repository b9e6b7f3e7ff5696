"""FAT32 partition images built from a staged folder with ``mkfs.fat`` (dosfstools) and mtools, never mounted.

    info = build_fat32(stage, Path("EFIESP.img"), size=131072 * 512, label="EFIESP", hidden_sectors=2048,
                       epoch=build_epoch(), volume_id=0x1234ABCD, name="EFIESP")

Reference: Microsoft FAT specification (2004 "fatgen103") §3.1 BPB, §3.3 FAT32 extended BPB, §5 FSInfo,
§6 directory entries and §7 long names; disk-and-boot-recipe.md step 4 (the tested command lines).

How the bytes become reproducible (two builds of one tree give the same image, checked by a test):

* ``mkfs.fat --invariant`` fixes what it would otherwise take from the clock; ``-i`` sets the volume id. Order
  matters: ``--invariant`` after ``-i`` silently resets the id to 1234-ABCD, so ``-i`` comes last.
* mtools 4.0.32 reads ``SOURCE_DATE_EPOCH`` for "now", which is what ``mmd`` and ``mcopy`` (without ``-m``)
  stamp on entries; it converts with ``localtime``, so ``TZ=UTC0`` too. The one entry mkfs.fat writes itself
  (the volume label in the root folder) gets the same time by a small rewrite of its date and time fields.
* Folders are created and files copied in sorted order, one folder at a time, so directory entries, 8.3 tails
  (``~1``) and cluster chains do not depend on the order the build host's filesystem lists a folder in.
* mtools reads /etc/mtools.conf, ~/.mtoolsrc and ``MTOOLS_*`` variables: each run gets its own HOME, an
  ``MTOOLSRC`` with every setting that changes what is written, and those variables set explicitly.

The folder is checked first: symlinks, devices, names FAT cannot hold and names that differ only in case are
refused (one error listing them all), and a conservative size estimate is compared with the data area right
after formatting, before any file is copied. The image appears at ``out`` only when complete.

This module also holds what ``ntfs.py`` shares with it: :class:`FsInfo`, :func:`scan_tree`,
:func:`capacity_error` and :func:`partial_output`.
"""

from __future__ import annotations

import contextlib
import os
import stat
import struct
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import FormatError, InputError, InputErrors, ToolError
from ..run import run

MKFS = "mkfs.fat"
FAT32_MIN_CLUSTERS = 65525           # fatgen103 §3.5: fewer clusters and every driver reads it as FAT16
FAT32_MAX_CLUSTERS = 0x0FFFFFF5 - 2  # cluster numbers 2 … 0x0FFFFFF6
FAT32_MAX_FILE = 0xFFFFFFFF           # DIR_FileSize is 32 bits
MAX_CLUSTER_BYTES = 32 * 1024        # the largest size Windows formats FAT32 with
DOS_EPOCH_MIN = 315532800            # 1980-01-01 00:00:00 UTC, the first DOS date
DOS_EPOCH_MAX = 4354819198           # 2107-12-31 23:59:58 UTC, the last one
LABEL_CHARS = 11
FORBIDDEN = frozenset('"*/:<>?\\|')   # not allowed in a Windows (and so FAT long or NTFS Win32) name
NAME_UNITS = 255                      # UTF-16 code units in a long name
_ARGV_BYTES = 64 * 1024               # split long mmd/mcopy argument lists into calls of about this size

# fatgen103 §3.1/§3.3, the fields this module reads back
_BPB = struct.Struct(
    "<3x8s"  # BS_jmpBoot BS_OEMName
    "H"      # BPB_BytsPerSec
    "B"      # BPB_SecPerClus
    "H"      # BPB_RsvdSecCnt
    "B"      # BPB_NumFATs
    "H"      # BPB_RootEntCnt (0 on FAT32)
    "H"      # BPB_TotSec16 (0 on FAT32)
    "B"      # BPB_Media
    "H"      # BPB_FATSz16 (0 on FAT32)
    "H"      # BPB_SecPerTrk
    "H"      # BPB_NumHeads
    "I"      # BPB_HiddSec
    "I"      # BPB_TotSec32
    "I"      # BPB_FATSz32
    "H"      # BPB_ExtFlags
    "H"      # BPB_FSVer
    "I"      # BPB_RootClus
    "H"      # BPB_FSInfo
    "H"      # BPB_BkBootSec
    "12x"    # BPB_Reserved
    "B"      # BS_DrvNum
    "x"      # BS_Reserved1
    "B"      # BS_BootSig (0x29)
    "I"      # BS_VolID
    "11s"    # BS_VolLab
    "8s"     # BS_FilSysType
)
_FSINFO_LEAD, _FSINFO_STRUC = 0x41615252, 0x61417272   # FSI_LeadSig, FSI_StrucSig (§5)
_DIR_ENTRY = 32
_ATTR_VOLUME_ID = 0x08


@dataclass(frozen=True)
class FsInfo:
    """What a built filesystem image holds, read back from its own boot sector and allocation map."""

    filesystem: str          # "FAT32" or "NTFS"
    size: int                # bytes of the image file (= the partition)
    sector_size: int
    cluster_size: int
    clusters: int            # clusters in the data area (FAT32) or the volume (NTFS)
    used_bytes: int          # allocated clusters × cluster size, metadata included
    free_bytes: int
    files: int
    dirs: int                # folders below the root
    content_bytes: int       # sum of the file sizes
    label: str
    serial: int              # FAT32 volume id, NTFS volume serial
    hidden_sectors: int      # the partition's first LBA as the boot sector records it


@dataclass(frozen=True)
class TreeFile:
    rel: str                 # POSIX path below the tree root
    path: Path
    size: int


@dataclass(frozen=True)
class Tree:
    """A staged folder, checked and listed in sorted order (parents before children)."""

    root: Path
    dirs: tuple[str, ...]               # POSIX paths below the root, "" not included
    files: tuple[TreeFile, ...]
    children: dict[str, tuple[str, ...]]  # folder ("" = root) → names of its folders and files

    @property
    def content_bytes(self) -> int:
        return sum(f.size for f in self.files)


def capacity_error(name: str, needed: int, available: int, *, filesystem: str = "",
                   detail: str = "") -> InputError:
    """The one message for content that does not fit into partition ``name``."""
    fs = f"the {filesystem} filesystem" if filesystem else "the filesystem"
    what = f"partition {name}: content needs {needed:,} bytes, {fs} offers {available:,}"
    if detail:
        what += f" ({detail})"
    return InputError(what, hint=f"raise TotalSectors or MinFreeSectors of partition {name} in the board's "
                                 f"DeviceLayout.xml, or remove packages that install files into {name}")


def _name_problem(name: str) -> str:
    if any(c in FORBIDDEN or ord(c) < 0x20 for c in name):
        return "has a character Windows cannot store in a name (\" * / : < > ? \\ | or a control code)"
    if name.endswith((" ", ".")):
        return "ends in a space or dot, which Windows strips"
    if len(name.encode("utf-16-le")) // 2 > NAME_UNITS:
        return f"is longer than {NAME_UNITS} UTF-16 characters"
    return ""


def scan_tree(tree: Path, *, name: str) -> Tree:
    """List ``tree`` in sorted order, refusing what a FAT32 or NTFS partition cannot hold.

    Every problem is collected first and raised as one :class:`InputError` (an ``InputErrors`` when there are
    several): symlinks, devices/FIFOs/sockets, names Windows cannot store, and names in one folder that differ
    only in case (FAT and Windows' NTFS see them as one file).
    """
    try:
        st = os.lstat(tree)
    except OSError as e:
        raise InputError(f"partition {name}: staged folder cannot be read: {e.strerror}", path=tree) from None
    if not stat.S_ISDIR(st.st_mode):
        raise InputError(f"partition {name}: staged content is not a folder", path=tree)
    dirs: list[str] = []
    files: list[TreeFile] = []
    children: dict[str, tuple[str, ...]] = {}
    problems: list[InputError] = []
    pending = [""]
    while pending:
        rel_dir = pending.pop()
        folder = tree / rel_dir if rel_dir else tree
        try:
            with os.scandir(folder) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as e:
            problems.append(InputError(f"partition {name}: folder cannot be listed: {e.strerror}",
                                       path=folder))
            continue
        children[rel_dir] = tuple(e.name for e in entries)
        seen: dict[str, str] = {}
        subdirs = []
        for entry in entries:
            rel = f"{rel_dir}/{entry.name}" if rel_dir else entry.name
            if (problem := _name_problem(entry.name)):
                problems.append(InputError(f"partition {name}: name {entry.name!r} {problem}",
                                           path=entry.path))
            folded = _upcase(entry.name)
            if folded in seen:
                problems.append(InputError(
                    f"partition {name}: {entry.name!r} and {seen[folded]!r} differ only in case; the "
                    "filesystem would see one name", path=entry.path,
                    hint="rename one of them in its package"))
            seen[folded] = entry.name
            st = entry.stat(follow_symlinks=False)
            if stat.S_ISLNK(st.st_mode):
                problems.append(InputError(f"partition {name}: {rel} is a symbolic link; only files and "
                                           "folders can be placed", path=entry.path,
                                           hint="stage a copy of the target instead"))
            elif stat.S_ISDIR(st.st_mode):
                dirs.append(rel)
                subdirs.append(rel)
            elif stat.S_ISREG(st.st_mode):
                files.append(TreeFile(rel, Path(entry.path), st.st_size))
            else:
                problems.append(InputError(f"partition {name}: {rel} is a device, FIFO or socket; only "
                                           "files and folders can be placed", path=entry.path))
        pending.extend(reversed(subdirs))
    if problems:
        raise problems[0] if len(problems) == 1 else InputErrors(problems)
    dirs.sort(key=lambda r: r.split("/"))
    files.sort(key=lambda f: f.rel.split("/"))
    return Tree(tree, tuple(dirs), tuple(files), children)


@contextlib.contextmanager
def partial_output(out: Path) -> Iterator[Path]:
    """A hidden ``.<name>.*.partial`` file beside ``out``, renamed over it only if the block succeeds."""
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".partial", dir=out.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.chmod(tmp, 0o644)
        os.replace(tmp, out)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def _upcase(name: str) -> str:
    """Upper case one character at a time, as NTFS's $UpCase table and FAT compare names."""
    return "".join(u if len(u := c.upper()) == 1 else c for c in name)


def tool_timeout(nbytes: int) -> float:
    """Generous: two minutes plus 5 MB/s for the bytes a tool has to write."""
    return 120.0 + nbytes / 5e6


def check_size(name: str, size: int, sector_size: int) -> None:
    if sector_size not in (512, 1024, 2048, 4096):
        raise InputError(f"partition {name}: sector size {sector_size} is not 512, 1024, 2048 or 4096")
    if size <= 0 or size % sector_size:
        raise InputError(f"partition {name}: filesystem size {size:,} bytes is not a whole number of "
                         f"{sector_size}-byte sectors")


def chunked(args: Sequence[str], limit: int = _ARGV_BYTES) -> Iterator[list[str]]:
    """Split ``args`` into lists whose total length stays near ``limit`` (one element at least)."""
    batch: list[str] = []
    used = 0
    for a in args:
        if batch and used + len(a) + 1 > limit:
            yield batch
            batch, used = [], 0
        batch.append(a)
        used += len(a) + 1
    if batch:
        yield batch


# ------------------------------------------------------------------------------------------------------ FAT32


@dataclass(frozen=True)
class Fat32Geometry:
    """The boot sector fields of a formatted FAT32 image (fatgen103 §3.1, §3.3)."""

    sector_size: int
    sectors_per_cluster: int
    reserved_sectors: int
    fats: int
    sectors_per_track: int
    heads: int
    hidden_sectors: int
    total_sectors: int
    fat_sectors: int
    root_cluster: int
    fsinfo_sector: int
    volume_id: int
    label: str
    fs_type: str

    @property
    def cluster_size(self) -> int:
        return self.sector_size * self.sectors_per_cluster

    @property
    def data_start(self) -> int:
        """Byte offset of cluster 2."""
        return (self.reserved_sectors + self.fats * self.fat_sectors) * self.sector_size

    @property
    def clusters(self) -> int:
        data = self.total_sectors - self.reserved_sectors - self.fats * self.fat_sectors
        return data // self.sectors_per_cluster

    @classmethod
    def from_bytes(cls, buf: bytes) -> Fat32Geometry:
        if len(buf) < 512 or buf[510:512] != b"\x55\xaa":
            raise FormatError("no boot sector signature 55 AA", offset=510)
        (_oem, bps, spc, reserved, fats, root_entries, tot16, _media, fat16, spt, heads, hidden, tot32, fat32,
         _ext, _ver, root_cluster, fsinfo, _backup, _drv, sig, volid, label,
         fstype) = _BPB.unpack_from(buf, 0)
        if bps not in (512, 1024, 2048, 4096):
            raise FormatError(f"BPB_BytsPerSec {bps} is not 512, 1024, 2048 or 4096", offset=0x0B)
        if not spc or spc & (spc - 1):
            raise FormatError(f"BPB_SecPerClus {spc} is not a power of two", offset=0x0D)
        if root_entries or tot16 or fat16 or not fat32:
            raise FormatError("not a FAT32 boot sector (BPB_RootEntCnt/TotSec16/FATSz16 not 0)", offset=0x11)
        if sig != 0x29:
            raise FormatError(f"BS_BootSig 0x{sig:02x} is not 0x29", offset=0x42)
        return cls(bps, spc, reserved, fats, spt, heads, hidden, tot32, fat32, root_cluster, fsinfo, volid,
                   label.decode("cp850").rstrip(), fstype.decode("ascii", "replace").rstrip())


def default_cluster_size(size: int, sector_size: int) -> int:
    """Windows' FAT32 default for ``size``, made smaller while that leaves under 65,525 clusters."""
    mib = 1 << 20
    for limit, cluster in ((64 * mib, 512), (128 * mib, 1024), (256 * mib, 2048), (8192 * mib, 4096),
                           (16384 * mib, 8192), (32768 * mib, 16384)):
        if size < limit:
            break
    else:
        cluster = 32768
    cluster = max(cluster, sector_size)
    while cluster > sector_size and estimate_clusters(size, sector_size, cluster) < FAT32_MIN_CLUSTERS:
        cluster //= 2
    return cluster


def estimate_clusters(size: int, sector_size: int, cluster_size: int) -> int:
    """Data clusters mkfs.fat makes (32 reserved sectors and 2 FATs, both aligned to the cluster)."""
    spc = cluster_size // sector_size
    sectors = size // sector_size
    reserved = -(-32 // spc) * spc
    fat = 0
    for _ in range(8):   # fixed point of: FAT sectors cover the clusters that remain beside the FATs
        clusters = (sectors - reserved - 2 * fat) // spc
        fat = -(-((clusters + 2) * 4) // sector_size)
        fat = -(-fat // spc) * spc
    return max(0, (sectors - reserved - 2 * fat) // spc)


def fat_dir_bytes(names: Sequence[str], *, root: bool) -> int:
    """Bytes of a folder's entries, counting a long name for every child (so never too few)."""
    entries = 1 if root else 2       # the volume label entry, or "." and ".."
    for n in names:
        entries += 1 + -(-len(n.encode("utf-16-le")) // 26)
    return entries * _DIR_ENTRY


def fat_needed_bytes(tree: Tree, cluster_size: int) -> int:
    """Conservative bytes of data area the tree takes: files and folders rounded up to whole clusters."""
    def whole(n: int) -> int:
        return -(-n // cluster_size) * cluster_size
    total = sum(whole(f.size) for f in tree.files)
    for rel, names in tree.children.items():
        total += max(cluster_size, whole(fat_dir_bytes(names, root=rel == "")))
    return total


def dos_datetime(epoch: int) -> tuple[int, int]:
    """(time, date) words of a FAT directory entry for ``epoch`` in UTC (fatgen103 §6.1)."""
    t = time.gmtime(epoch)
    dos_time = (t.tm_hour << 11) | (t.tm_min << 5) | (t.tm_sec // 2)
    dos_date = ((t.tm_year - 1980) << 9) | (t.tm_mon << 5) | t.tm_mday
    return dos_time, dos_date


def _check_args(name: str, size: int, sector_size: int, label: str, hidden_sectors: int,
                cluster_size: int | None, epoch: int, volume_id: int) -> None:
    check_size(name, size, sector_size)
    problems = []
    if not 0 <= hidden_sectors <= 0xFFFFFFFF:
        problems.append(f"hidden sectors {hidden_sectors} do not fit the boot sector's 32 bits")
    if not 0 <= volume_id <= 0xFFFFFFFF:
        problems.append(f"volume id {volume_id} is not a 32-bit number")
    if not DOS_EPOCH_MIN <= epoch <= DOS_EPOCH_MAX:
        problems.append(f"build time {epoch} is outside the FAT date range 1980-2107")
    try:
        encoded = label.encode("ascii")
    except UnicodeEncodeError:
        encoded = b"?" * 12
    if len(encoded) > LABEL_CHARS or any(c in '"*+,./:;<=>?[\\]|' or ord(c) < 0x20 for c in label):
        problems.append(f"label {label!r} is not up to {LABEL_CHARS} ASCII characters without "
                        "\" * + , . / : ; < = > ? [ \\ ] |")
    if cluster_size is not None and (cluster_size < sector_size or cluster_size > MAX_CLUSTER_BYTES
                                     or cluster_size & (cluster_size - 1)):
        problems.append(f"cluster size {cluster_size} is not a power of two from the sector size to "
                        f"{MAX_CLUSTER_BYTES}")
    if problems:
        raise InputError(f"partition {name}: " + "; ".join(problems))


def _geometry_args(sectors: int) -> str:
    """``-g heads/sectors``: mkfs.fat rounds the size down to whole tracks, so use a track that divides it."""
    track = next(t for t in (63, 32, 16, 8, 4, 2, 1) if sectors % t == 0)
    return f"255/{track}"


def read_geometry(image: Path) -> Fat32Geometry:
    with open(image, "rb") as f:
        head = f.read(512)
    try:
        return Fat32Geometry.from_bytes(head)
    except FormatError as e:
        raise e.with_path(image) from None


def _stamp_label_entry(image: Path, geo: Fat32Geometry, epoch: int) -> None:
    """Give the volume label entry mkfs.fat wrote (first entry of the root folder) the build time."""
    offset = geo.data_start + (geo.root_cluster - 2) * geo.cluster_size
    with open(image, "r+b") as f:
        f.seek(offset)
        entry = bytearray(f.read(_DIR_ENTRY))
        if len(entry) < _DIR_ENTRY or not entry[11] & _ATTR_VOLUME_ID or entry[0] in (0, 0xE5):
            return   # no label entry (mkfs.fat writes none for "NO NAME")
        tm, dt = dos_datetime(epoch)
        # DIR_CrtTimeTenth DIR_CrtTime DIR_CrtDate DIR_LstAccDate, then DIR_WrtTime DIR_WrtDate
        struct.pack_into("<BHHH", entry, 13, 0, tm, dt, dt)
        struct.pack_into("<HH", entry, 22, tm, dt)
        f.seek(offset)
        f.write(entry)


def read_free_clusters(image: Path, geo: Fat32Geometry) -> int:
    """FSI_Free_Count of the FSInfo sector (fatgen103 §5), which mtools keeps up to date."""
    with open(image, "rb") as f:
        f.seek(geo.fsinfo_sector * geo.sector_size)
        sector = f.read(512)
    lead, = struct.unpack_from("<I", sector, 0)
    struc, free = struct.unpack_from("<II", sector, 0x1E4)
    if lead != _FSINFO_LEAD or struc != _FSINFO_STRUC or free > geo.clusters:
        raise FormatError("FSInfo sector has no valid signature or free count",
                          offset=geo.fsinfo_sector * geo.sector_size, path=image)
    return int(free)


def mtools_dos_path(rel: str, *, literal_last: bool = False) -> str:
    """``::/a/b`` for mtools. mtools expands ``*``, ``?`` and ``[…]`` in the folders of a path (FAT names
    cannot hold the first two), so ``[`` becomes the one-character class ``[[]``; ``mmd`` takes the last
    part of its argument literally, hence ``literal_last``."""
    parts = rel.split("/") if rel else []
    escaped = [p.replace("[", "[[]") for p in parts]
    if literal_last and parts:
        escaped[-1] = parts[-1]
    return "::/" + "/".join(escaped)


@contextlib.contextmanager
def mtools_env(epoch: int) -> Iterator[dict[str, str]]:
    """Environment for mtools that no user or system setting can change, with the build time as "now"."""
    with tempfile.TemporaryDirectory(prefix="iotbuild-mtools-") as home:
        rc = Path(home) / "mtoolsrc"
        rc.write_text("mtools_skip_check=0\nmtools_fat_compatibility=0\nmtools_lower_case=0\nmtools_no_vfat=0\n"
                      "mtools_name_numeric_tail=1\nmtools_lock_timeout=10\ndefault_codepage=850\n",
                      encoding="ascii")
        yield {"HOME": home, "MTOOLSRC": os.fspath(rc), "TZ": "UTC0", "SOURCE_DATE_EPOCH": str(epoch),
               "MTOOLS_SKIP_CHECK": "0", "MTOOLS_FAT_COMPATIBILITY": "0", "MTOOLS_LOWER_CASE": "0",
               "MTOOLS_NO_VFAT": "0", "MTOOLS_NAME_NUMERIC_TAIL": "1", "MTOOLS_USE_XDF": "0",
               "MTOOLS_LOCK_TIMEOUT": "10"}


def build_fat32(tree: Path, out: Path, *, size: int, sector_size: int = 512, label: str, hidden_sectors: int,
                cluster_size: int | None = None, epoch: int, volume_id: int, name: str) -> FsInfo:
    """Format a FAT32 image of exactly ``size`` bytes at ``out`` and copy ``tree`` into it, reproducibly.

    ``hidden_sectors`` is the partition's first LBA (BPB_HiddSec); ``cluster_size`` defaults to Windows'
    choice for the size, made smaller if FAT32's 65,525-cluster minimum asks for it; ``epoch`` stamps every
    entry; ``name`` is the partition's name in messages. Raises :class:`InputError` (via
    :func:`capacity_error`) when the content does not fit.
    """
    _check_args(name, size, sector_size, label, hidden_sectors, cluster_size, epoch, volume_id)
    content = scan_tree(tree, name=name)
    too_big = [f for f in content.files if f.size > FAT32_MAX_FILE]
    if too_big:
        raise InputError(f"partition {name}: {too_big[0].rel} has {too_big[0].size:,} bytes; a FAT32 file holds "
                         f"at most {FAT32_MAX_FILE:,}", path=too_big[0].path)
    cluster = cluster_size or default_cluster_size(size, sector_size)
    clusters = estimate_clusters(size, sector_size, cluster)
    if not FAT32_MIN_CLUSTERS <= clusters <= FAT32_MAX_CLUSTERS:
        least = (FAT32_MIN_CLUSTERS + 2100) * sector_size
        raise InputError(f"partition {name}: {size:,} bytes in {cluster}-byte clusters give {clusters:,} "
                         f"clusters; FAT32 needs {FAT32_MIN_CLUSTERS:,} to {FAT32_MAX_CLUSTERS:,}",
                         hint=f"give the partition at least {least:,} bytes or choose another cluster size")
    sectors = size // sector_size
    with partial_output(out) as tmp:
        os.truncate(tmp, size)
        argv = [MKFS, "-F", "32", "-S", str(sector_size), "-s", str(cluster // sector_size),
                "-g", _geometry_args(sectors), "-h", str(hidden_sectors)]
        if label:
            argv += ["-n", label]
        # --invariant before -i: given after, it replaces the volume id with 0x1234ABCD.
        argv += ["--invariant", "-i", f"{volume_id:08X}", os.fspath(tmp)]
        run(argv, timeout=tool_timeout(size // 64))
        geo = read_geometry(tmp)
        if geo.clusters < FAT32_MIN_CLUSTERS or geo.total_sectors != sectors:
            raise InputError(f"partition {name}: mkfs.fat made {geo.clusters:,} clusters in "
                             f"{geo.total_sectors:,} sectors; FAT32 needs {FAT32_MIN_CLUSTERS:,} clusters "
                             f"filling all {sectors:,}",
                             hint="choose a smaller cluster size or a larger partition")
        _stamp_label_entry(tmp, geo, epoch)
        available = geo.clusters * geo.cluster_size
        needed = fat_needed_bytes(content, geo.cluster_size)
        if needed > available:
            raise capacity_error(name, needed, available, filesystem="FAT32")
        try:
            _copy_tree(content, tmp, epoch, content.content_bytes)
        except ToolError as e:
            if "Disk full" in e.stderr or "No space" in e.stderr:
                detail = "an estimate; mcopy ran out of space while copying, so it needs more"
                raise capacity_error(name, needed, available, filesystem="FAT32", detail=detail) from None
            raise
        free = read_free_clusters(tmp, geo)
        info = FsInfo("FAT32", size, sector_size, geo.cluster_size, geo.clusters,
                      (geo.clusters - free) * geo.cluster_size, free * geo.cluster_size, len(content.files),
                      len(content.dirs), content.content_bytes, geo.label if label else "", geo.volume_id,
                      geo.hidden_sectors)
    return info


def _copy_tree(content: Tree, image: Path, epoch: int, nbytes: int) -> None:
    """``mmd`` every folder (parents first), then one ``mcopy`` per folder with its files in sorted order."""
    img = os.fspath(image)
    with mtools_env(epoch) as env:
        for batch in chunked([mtools_dos_path(d, literal_last=True) for d in content.dirs]):
            run(["mmd", "-i", img, *batch], timeout=tool_timeout(0), env=env)
        by_dir: dict[str, list[str]] = {}
        for f in content.files:
            by_dir.setdefault(f.rel.rpartition("/")[0], []).append(os.fspath(f.path.absolute()))
        timeout = tool_timeout(nbytes)
        for rel_dir in sorted(by_dir, key=lambda r: r.split("/") if r else []):
            target = mtools_dos_path(rel_dir) + ("/" if rel_dir else "")
            for batch in chunked(by_dir[rel_dir]):
                # -Q: stop at the first failure (e.g. disk full) instead of carrying on with the next file
                run(["mcopy", "-Q", "-i", img, *batch, target], timeout=timeout, env=env)
