"""REGF hives: records, our writer and reader, and outside readers (hivex, regipy) on what we write."""

from __future__ import annotations

import hashlib
import io
import os
import re
import struct
import subprocess
import time
import tracemalloc
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from iotbuild.errors import FormatError, InputError, InputErrors
from iotbuild.formats.regf import (
    BaseBlock,
    BigData,
    FastLeaf,
    HashLeaf,
    HBin,
    HiveReader,
    IndexLeaf,
    IndexRoot,
    KeyNode,
    KeyValue,
    SecurityKey,
    append_multi_sz,
    checksum,
    lh_hash,
    merge_keys,
    read_hive,
    split_by_hive,
    write_hive,
)
from iotbuild.formats.regf.records import (
    BASE_BLOCK_SIZE,
    DEFAULT_SECURITY_DESCRIPTOR,
    KEY_COMP_NAME,
    KEY_HIVE_ENTRY,
    KEY_NO_DELETE,
    LEAF_MAX,
    NIL,
    VALUE_COMP_NAME,
    filetime,
    upcase,
)
from iotbuild.formats.regfile import RegKey, RegType, RegValue

from tests.conftest import IN_CI, require_tool

T = RegType
EPOCH = 1704164646  # 2024-01-02 03:04:06 UTC
FT = filetime(EPOCH)
u16, u32 = st.integers(0, 0xFFFF), st.integers(0, 0xFFFFFFFF)
FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


# -- records ---------------------------------------------------------------------------------------

def common(cls, data: bytes, obj) -> None:
    """construct's ``common()``: parse and build agree for one hand-written sample."""
    assert cls.from_bytes(data) == obj
    assert obj.to_bytes() == data


def test_records_hand_written_samples():
    ts = struct.pack("<Q", FT).hex()
    common(HBin, bytes.fromhex(f"6862696e 00000000 00100000 00000000 00000000 {ts} 00000000"), HBin(0, 0x1000, FT))
    common(HBin, bytes.fromhex(f"6862696e 00100000 00300000 00000000 00000000 {'00' * 8} 00000000"),
           HBin(0x1000, 0x3000))
    # the root of an empty hive (§5.3): flags 0x2C, no subkeys or values, sk at 0x80, name "ROOT" compressed
    nk = bytes.fromhex(
        "6e6b 2c00" + ts + "00000000" + "ffffffff"      # nk, Flags, LastWriteTime, AccessBits, Parent
        "00000000 00000000 ffffffff ffffffff"            # SubKeyCounts, SubKeyLists
        "00000000 ffffffff 80000000 ffffffff"            # ValueList.Count/.List, Security, Class
        "00000000 00000000 00000000 00000000 00000000"   # MaxNameLen MaxClassLen MaxValueNameLen MaxValueDataLen WorkVar
        "0400 0000") + b"ROOT"                           # NameLength, ClassLength, Name
    common(KeyNode, nk, KeyNode(KEY_HIVE_ENTRY | KEY_NO_DELETE | KEY_COMP_NAME, FT, NIL, 0, NIL, 0, NIL, 0x80,
                                "ROOT"))
    assert len(nk) == KeyNode.LAYOUT.size + 4 == 80
    # a UTF-16 name (no KEY_COMP_NAME): NameLength counts bytes
    uni = KeyNode(0, FT, 0x20, 1, 0x200, 2, 0x300, 0x80, "ключ", max_subkey_name=10, max_value_name=8,
                  max_value_data=16)
    assert uni.to_bytes()[0x48:0x4A] == b"\x08\x00" and uni.to_bytes().endswith("ключ".encode("utf-16-le"))
    common(KeyNode, uni.to_bytes(), uni)
    # a REG_DWORD held inline (DataLength bit 31), and a 5-byte REG_BINARY in a data cell
    common(KeyValue, bytes.fromhex("766b 0a00 04000080 cd34ab12 04000000 0100 0000") + b"DWordValue",
           KeyValue("DWordValue", 0x80000004, 0x12AB34CD, 4, VALUE_COMP_NAME))
    common(KeyValue, bytes.fromhex("766b 0000 05000000 30010000 03000000 0000 0000"), KeyValue("", 5, 0x130, 3))
    assert KeyValue("", 0x80000002, 0, 3).inline and KeyValue("", 0x80000002, 0, 3).size == 2
    common(SecurityKey, bytes.fromhex("736b 0000 80000000 80000000 07000000 04000000 01020304"),
           SecurityKey(0x80, 0x80, 7, b"\x01\x02\x03\x04"))
    common(HashLeaf, bytes.fromhex("6c68 0200 20010000 66650100 a0010000 01000000"),
           HashLeaf(((0x120, 0x16566), (0x1A0, 1))))
    common(FastLeaf, bytes.fromhex("6c66 0100 20010000 41424300"), FastLeaf(((0x120, 0x434241),)))
    common(IndexLeaf, bytes.fromhex("6c69 0200 20010000 a0010000"), IndexLeaf((0x120, 0x1A0)))
    common(IndexRoot, bytes.fromhex("7269 0100 00200000"), IndexRoot((0x2000,)))
    common(BigData, bytes.fromhex("6462 0300 20050000"), BigData(3, 0x520))


def test_base_block_layout_and_checksum():
    bb = BaseBlock(1, 1, FT, 0x20, 0x1000, "SOFTWARE")
    data = bb.to_bytes()
    assert len(data) == BASE_BLOCK_SIZE == BaseBlock.LAYOUT.size
    assert data[:4] == b"regf" and struct.unpack_from("<IIQIIIIIII", data, 4) == (1, 1, FT, 1, 5, 0, 1, 0x20,
                                                                                 0x1000, 1)
    assert data[0x30:0x40] == "SOFTWARE".encode("utf-16-le")
    want = 0
    for (d,) in struct.iter_unpack("<I", data[:0x1FC]):
        want ^= d
    assert struct.unpack_from("<I", data, 0x1FC)[0] == want
    assert BaseBlock.from_bytes(data) == bb
    # the two special cases of the XOR
    assert checksum(bytes(0x200)) == 1
    assert checksum(b"\xff\xff\xff\xff" + bytes(0x1FC)) == 0xFFFFFFFE
    bad = bytearray(data)
    bad[0x30] ^= 1
    with pytest.raises(FormatError, match="CheckSum") as e:
        BaseBlock.from_bytes(bytes(bad))
    assert e.value.offset == 0x1FC
    with pytest.raises(FormatError, match="not a registry hive"):
        BaseBlock.from_bytes(b"regx" + data[4:])


@FAST
@given(st.text(max_size=40).filter(lambda s: "\0" not in s), u32, u32, u32, u16)
def test_key_value_round_trips(name, dlen, data, vtype, flags):
    vk = KeyValue(name, dlen, data, vtype, VALUE_COMP_NAME if name.isascii() else 0, flags)
    assert KeyValue.from_bytes(vk.to_bytes()) == vk


@FAST
@given(st.text(min_size=1, max_size=40).filter(lambda s: "\0" not in s), st.lists(u32, min_size=13, max_size=13))
def test_key_node_round_trips(name, ints):
    nk = KeyNode(KEY_COMP_NAME if name.isascii() else 0, ints[0] << 20, *ints[1:7], name, *ints[7:10])
    assert KeyNode.from_bytes(nk.to_bytes()) == nk


@FAST
@given(st.lists(st.tuples(u32, u32), max_size=50))
def test_hash_leaf_round_trips(entries):
    leaf = HashLeaf(tuple(entries))
    assert HashLeaf.from_bytes(leaf.to_bytes()) == leaf


def test_lh_hash_and_windows_order():
    assert lh_hash("abc") == ((65 * 37 + 66) * 37 + 67) == lh_hash("ABC")
    assert lh_hash("") == 0
    assert lh_hash("x" * 20) == sum(88 * 37 ** i for i in range(20)) % 2 ** 32
    assert upcase("straße ключ") == "STRAßE КЛЮЧ"  # one unit in, one unit out (str.upper would give SS)


def test_default_security_descriptor_parses():
    sd = DEFAULT_SECURITY_DESCRIPTOR
    rev, _sbz, control, owner, group, sacl, dacl = struct.unpack_from("<BBHIIII", sd)
    assert (rev, control, sacl) == (1, 0x8004, 0)
    assert sd[owner:owner + 16] == bytes.fromhex("0102000000000005 20000000 20020000")  # S-1-5-32-544
    assert sd[group:group + 12] == bytes.fromhex("0101000000000005 12000000")  # S-1-5-18
    acl_rev, _, acl_size, ace_count, _ = struct.unpack_from("<BBHHH", sd, dacl)
    assert (acl_rev, ace_count, dacl + acl_size) == (2, 5, len(sd))


# -- sample key sets ---------------------------------------------------------------------------------

BIG_TEXT = "Zeichenkette mit ß und 😀 " * 800  # > 16 KiB as UTF-16: stored as big data


def sample_keys() -> list[RegKey]:
    """Every value type, default values, empty keys, unicode names, big values and 1,000 subkeys."""
    return [
        RegKey("", (RegValue("RootValue", T.REG_SZ, "at the root"),)),
        RegKey(r"Contoso\Test", (
            RegValue("StringValue", T.REG_SZ, "Test string"),
            RegValue("EmptyString", T.REG_SZ, ""),
            RegValue("DWordValue", T.REG_DWORD, 0x12AB34CD),
            RegValue("DWordMax", T.REG_DWORD, 0xFFFFFFFF),
            RegValue("QWordValue", T.REG_QWORD, 0x0123456789ABCDEF),
            RegValue("BinaryValue", T.REG_BINARY, bytes.fromhex("12abcdef")),
            RegValue("Binary5", T.REG_BINARY, b"\x01\x02\x03\x04\x05"),
            RegValue("EmptyBinary", T.REG_BINARY, b""),
            RegValue("ExpandValue", T.REG_EXPAND_SZ, r"%SystemRoot%\x"),
            RegValue("MultiValue", T.REG_MULTI_SZ, ("a", "bc")),
            RegValue("EmptyMulti", T.REG_MULTI_SZ, ()),
            RegValue("NoneValue", T.REG_NONE, b""),
            RegValue("NoneData", T.REG_NONE, b"\x00\x01"),
            RegValue(None, T.REG_SZ, "default value"),
            RegValue('Quote"And\\Backslash', T.REG_SZ, 'a "quoted" \\ value'),
        )),
        RegKey(r"Contoso\Big", (
            RegValue("Exactly16344", T.REG_BINARY, bytes(range(256)) * 63 + bytes(216)),
            RegValue("Big16345", T.REG_BINARY, bytes(range(7)) * 2335),
            RegValue("BigBinary", T.REG_BINARY, bytes((i * 7) & 0xFF for i in range(100_000))),
            RegValue("BigString", T.REG_SZ, BIG_TEXT),
            RegValue(None, T.REG_MULTI_SZ, tuple(f"item {i}" for i in range(2000))),
        )),
        RegKey(r"Contoso\Empty"),
        RegKey(r"Contoso\Deep\Er\And\Deeper"),
        RegKey("Ünïcödé ключ 日本 😀", (
            RegValue("値", T.REG_SZ, "日本語"),
            RegValue("Ключ", T.REG_EXPAND_SZ, "%ПУТЬ%"),
            RegValue(None, T.REG_DWORD, 7),
        )),
        *[RegKey(f"Many\\{'sub' if i % 3 else 'Sub'}{i:04d}",
                 (RegValue("Index", T.REG_DWORD, i),) if i % 100 == 0 else ()) for i in range(1000)],
        RegKey(r"Many\_underscore"), RegKey(r"Many\zeta"), RegKey(r"Many\Alpha"),
    ]


def expected(keys: list[RegKey]) -> dict[str, dict[str | None, tuple[int, bytes]]]:
    """path -> {value name -> (type, stored bytes)}, ancestors included."""
    out: dict[str, dict[str | None, tuple[int, bytes]]] = {"": {}}
    for k in keys:
        parts = [p for p in k.path.split("\\") if p]
        for i in range(1, len(parts) + 1):
            out.setdefault("\\".join(parts[:i]), {})
        for v in k.values:
            out["\\".join(parts)][v.name or None] = (int(v.type), v.raw())
    return out


def as_table(keys: list[RegKey]) -> dict[str, dict[str | None, tuple[int, bytes]]]:
    return {k.path: {v.name or None: (int(v.type), v.raw()) for v in k.values} for k in keys}


def write(keys, **kw) -> bytes:
    buf = io.BytesIO()
    info = write_hive(buf, keys, root_name=kw.pop("root_name", "ROOT"), timestamp=kw.pop("timestamp", EPOCH), **kw)
    data = buf.getvalue()
    assert info.size == len(data) and info.sha256 == hashlib.sha256(data).hexdigest()
    return data


@pytest.fixture(scope="module")
def sample_hive(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("regf") / "SOFTWARE"
    path.write_bytes(write(sample_keys(), file_name="SOFTWARE"))
    return path


# -- our writer, our reader ------------------------------------------------------------------------

def test_round_trip_through_our_reader(sample_hive):
    with open(sample_hive, "rb") as f:
        got = read_hive(f)
    assert as_table(got) == expected(sample_keys())
    # values come back decoded to the types they went in as
    by_path = {k.path: {v.name: v for v in k.values} for k in got}
    assert by_path[r"Contoso\Test"]["MultiValue"] == RegValue("MultiValue", T.REG_MULTI_SZ, ("a", "bc"))
    assert by_path[r"Contoso\Test"]["EmptyMulti"].data == ()
    assert by_path[r"Contoso\Test"][None] == RegValue(None, T.REG_SZ, "default value")
    assert by_path[r"Contoso\Big"]["BigString"].data == BIG_TEXT
    assert by_path["Ünïcödé ключ 日本 😀"]["値"].data == "日本語"
    # writing what we read gives the same bytes
    assert write(got, file_name="SOFTWARE") == sample_hive.read_bytes()


def test_layout_follows_the_format(sample_hive):
    data = sample_hive.read_bytes()
    size = len(data)
    assert size % 4096 == 0 and struct.unpack_from("<I", data, 0x28)[0] == size - 4096
    assert struct.unpack_from("<II", data, 4) == (1, 1)
    pos, nbins = 4096, 0
    while pos < size:  # every hbin is fully covered by 8-aligned cells
        hb = HBin.from_bytes(data, pos)
        assert hb.offset == pos - 4096 and hb.timestamp == (FT if nbins == 0 else 0)
        cellpos = pos + 32
        while cellpos < pos + hb.size:
            (csize,) = struct.unpack_from("<i", data, cellpos)
            assert csize != 0 and abs(csize) % 8 == 0
            cellpos += abs(csize)
        assert cellpos == pos + hb.size
        pos += hb.size
        nbins += 1
    with open(sample_hive, "rb") as f:
        hive = HiveReader(f)
        assert hive.root_name == "ROOT" and hive.base.root_cell == 0x20  # regipy expects the root first
        nodes = dict(hive.walk())
        root = nodes[""]
        assert root.flags == KEY_HIVE_ENTRY | KEY_NO_DELETE | KEY_COMP_NAME and root.parent == NIL
        sk = hive.security(root)
        assert sk.descriptor == DEFAULT_SECURITY_DESCRIPTOR and sk.flink == sk.blink == root.security
        assert sk.reference_count == len(nodes) and all(n.security == root.security for n in nodes.values())
        assert all(n.timestamp == FT for n in nodes.values())
        # 1,003 subkeys: an ri over lh leaves of <= 506 entries, hashed, in Windows' upper-case order
        many = nodes["Many"]
        assert many.subkey_count == 1003 and many.max_subkey_name == len("_underscore") * 2
        ri = IndexRoot.from_bytes(hive.cell(many.subkey_list, "ri"))
        leaves = [HashLeaf.from_bytes(hive.cell(o, "lh")) for o in ri.offsets]
        assert len(leaves) == 2 and all(len(leaf.entries) <= LEAF_MAX for leaf in leaves)
        names, parents = [], set()
        for leaf in leaves:
            for off, h in leaf.entries:
                child = hive.key_node(off)
                assert h == lh_hash(child.name)
                names.append(child.name)
                parents.add(child.parent)
        assert len(parents) == 1 and hive.key_node(parents.pop()) == many
        assert names == sorted(names, key=lambda s: upcase(s)) and names[0] == "Alpha" and names[-1] == "_underscore"
        # big data: > 16344 bytes go to a db cell; exactly 16344 does not
        big = {vk.name: vk for vk in hive.value_cells(nodes[r"Contoso\Big"])}
        assert hive.cell(big["Exactly16344"].data, "data")[:2] != b"db"
        db = BigData.from_bytes(hive.cell(big["Big16345"].data, "db"))
        assert db.segment_count == 2
        assert BigData.from_bytes(hive.cell(big["BigBinary"].data, "db")).segment_count == 7
        small = {vk.name: vk for vk in hive.value_cells(nodes[r"Contoso\Test"])}
        assert small["DWordValue"].inline and small["DWordValue"].data == 0x12AB34CD
        assert small["Binary5"].data_length == 5 and not small["Binary5"].inline


def test_deterministic_and_pinned():
    keys = sample_keys()
    assert write(keys) == write(list(reversed(keys)))  # key order does not matter, subkeys are sorted
    assert write(keys) != write(keys, timestamp=EPOCH + 1)
    small = [RegKey(r"Contoso\Test", (RegValue("StringValue", T.REG_SZ, "Test string"),
                                      RegValue("DWordValue", T.REG_DWORD, 0x12AB34CD),
                                      RegValue(None, T.REG_MULTI_SZ, ("a", "bc")))),
             RegKey(r"Contoso\Empty")]
    data = write(small, root_name="ROOT", file_name="SOFTWARE")
    assert len(data) == 8192
    assert hashlib.sha256(data).hexdigest() == "90eca1cf0f42117866a8f15dacb24f0fb64b36f42a324171bb675a491ceea05a"


def test_empty_hive_is_8_kib():
    data = write([])
    assert len(data) == 8192
    assert read_hive(io.BytesIO(data)) == [RegKey("", ())]


def test_write_hive_refuses_bad_input():
    with pytest.raises(InputError, match="empty name"):
        write([RegKey(r"a\\b")])
    with pytest.raises(InputError, match="longer than 255"):
        write([RegKey("x" * 256)])
    with pytest.raises(InputError, match="split_by_hive"):
        write([RegKey(r"HKEY_LOCAL_MACHINE\Software\x")])
    with pytest.raises(InputError, match="given twice with different data") as e:
        write([RegKey("a", (RegValue("v", T.REG_DWORD, 1),)), RegKey("A", (RegValue("V", T.REG_DWORD, 2),))])
    assert "merge_keys" in str(e.value)
    with pytest.raises(InputErrors) as e:  # all problems at once
        write([RegKey("a", (RegValue("d", T.REG_DWORD, -1),)), RegKey("b", (RegValue("q", T.REG_QWORD, "x"),))])
    assert len(e.value.errors) == 2 and "'d'" in str(e.value) and "'q'" in str(e.value)
    with pytest.raises(InputError, match="root name"):
        write([], root_name="a\\b")
    # the same key twice in another letter case, same data: one key
    got = read_hive(io.BytesIO(write([RegKey("Key", (RegValue("v", T.REG_DWORD, 1),)),
                                      RegKey("KEY", (RegValue("V", T.REG_DWORD, 1),))])))
    assert got == [RegKey("", ()), RegKey("Key", (RegValue("v", T.REG_DWORD, 1),))]


def test_reader_refuses_damage(sample_hive):
    data = bytearray(sample_hive.read_bytes())
    with pytest.raises(FormatError, match="shorter than"):
        read_hive(io.BytesIO(bytes(data[:100])))
    dirty = bytearray(data)
    dirty[8] = 2
    dirty[0x1FC:0x200] = struct.pack("<I", checksum(bytes(dirty)))
    with pytest.raises(FormatError, match="sequence numbers"):
        read_hive(io.BytesIO(bytes(dirty)))
    broken = bytearray(data)
    broken[4096 + 0x20 + 4:4096 + 0x20 + 6] = b"xx"  # the root nk's signature
    with pytest.raises(FormatError, match="nk cell") as e:
        read_hive(io.BytesIO(bytes(broken)))
    assert e.value.offset == 4096 + 0x24
    path = sample_hive.parent / "broken"
    path.write_bytes(bytes(broken))
    with pytest.raises(FormatError) as e, HiveReader.open(path):
        pass
    assert str(path) in str(e.value)


# -- outside readers: hivex (libhivex-bin, libwin-hivex-perl) and regipy --------------------------

def parse_hivex_export(text: str, prefix: str) -> dict[str, dict[str | None, tuple[int, bytes]]]:
    """hivexregedit --export output -> path -> {name -> (type, bytes)}."""
    out: dict[str, dict[str | None, tuple[int, bytes]]] = {}
    current: dict[str | None, tuple[int, bytes]] = {}
    for line in text.splitlines():
        if not line or line.startswith("Windows Registry Editor"):
            continue
        if line.startswith("["):
            path = line[1:-1]
            assert path.startswith(prefix + "\\"), line
            current = out.setdefault(path[len(prefix) + 1:].strip("\\"), {})
            continue
        if line.startswith("@="):
            name, rest = None, line[2:]
        else:
            m = re.match(r'"((?:[^"\\]|\\.)*)"=(.*)$', line)
            assert m, line
            name, rest = re.sub(r"\\(.)", r"\1", m.group(1)), m.group(2)
        if rest.startswith("dword:"):
            current[name] = (4, int(rest[6:], 16).to_bytes(4, "little"))
        else:
            m = re.match(r"hex(?:\(([0-9a-f]+)\))?:(.*)$", rest)
            assert m, line
            current[name] = (int(m.group(1) or "3", 16), bytes.fromhex(m.group(2).replace(",", "")))
    return out


def hivex_export(hive: Path) -> dict[str, dict[str | None, tuple[int, bytes]]]:
    require_tool("hivexregedit")
    prefix = "HKEY_LOCAL_MACHINE\\SOFTWARE"
    res = subprocess.run(["hivexregedit", "--export", "--prefix", prefix, os.fspath(hive), "\\"],
                         capture_output=True, timeout=120, check=True)
    return parse_hivex_export(res.stdout.decode("utf-8"), prefix)


def test_hivex_reads_every_key_and_value(sample_hive):
    assert hivex_export(sample_hive) == expected(sample_keys())


def test_hivexget_and_hivexsh(sample_hive, tmp_path):
    require_tool("hivexget")
    require_tool("hivexsh")

    def get(key: str, value: str) -> str:
        return subprocess.run(["hivexget", os.fspath(sample_hive), key, value], capture_output=True, check=True,
                              timeout=60).stdout.decode().rstrip("\n")

    assert get(r"\Contoso\Test", "QWordValue") == str(0x0123456789ABCDEF)
    assert get(r"\Contoso\Test", "StringValue") == "Test string"
    assert get(r"\Contoso\Test", "MultiValue") == "a\nbc"
    assert get(r"\Ünïcödé ключ 日本 😀", "値") == "日本語"
    script = tmp_path / "ls.hivexsh"
    script.write_text("cd \\Many\nls\n")
    res = subprocess.run(["hivexsh", "-f", os.fspath(script), os.fspath(sample_hive)], capture_output=True,
                         check=True, timeout=60)
    names = res.stdout.decode().splitlines()
    assert len(names) == 1003 and {"Alpha", "zeta", "_underscore", "Sub0999"} <= set(names)  # hivexsh sorts itself


def test_hivex_checks_the_checksum(sample_hive, tmp_path):
    require_tool("hivexget")
    bad = tmp_path / "bad"
    data = bytearray(sample_hive.read_bytes())
    data[0x30] ^= 0x40  # inside the file name: only the checksum notices
    bad.write_bytes(bytes(data))
    res = subprocess.run(["hivexget", os.fspath(bad), r"\Contoso\Test", "QWordValue"], capture_output=True,
                         check=False, timeout=60, env={**os.environ, "HIVEX_DEBUG": "1"})
    assert res.returncode != 0 and b"bad checksum" in res.stderr


def test_hivex_edits_our_hive_and_we_read_its_changes(sample_hive, tmp_path):
    """The other direction: hivex writes (into our hive), our reader reads what it wrote."""
    require_tool("hivexregedit")
    hive = tmp_path / "edited"
    hive.write_bytes(sample_hive.read_bytes())
    reg = tmp_path / "add.reg"
    reg.write_text("Windows Registry Editor Version 5.00\n\n"
                   "[HKEY_LOCAL_MACHINE\\SOFTWARE\\Fabrikam]\n"
                   '"Added"=dword:0000002a\n'
                   '"Text"=hex(1):68,00,69,00,00,00\n\n'
                   "[HKEY_LOCAL_MACHINE\\SOFTWARE\\Many\\Sub0000]\n"
                   '"Index"=dword:00000063\n', encoding="utf-8")
    subprocess.run(["hivexregedit", "--merge", "--prefix", "HKEY_LOCAL_MACHINE\\SOFTWARE", os.fspath(hive),
                    os.fspath(reg)], capture_output=True, check=True, timeout=120)
    with open(hive, "rb") as f:
        got = as_table(read_hive(f))
    want = expected(sample_keys())
    want["Fabrikam"] = {"Added": (4, (42).to_bytes(4, "little")), "Text": (1, "hi\0".encode("utf-16-le"))}
    want["Many\\Sub0000"] = {"Index": (4, (99).to_bytes(4, "little"))}
    assert got == want


@pytest.fixture
def regipy():
    try:
        from regipy.registry import RegistryHive
    except ImportError:
        if IN_CI:
            pytest.fail("regipy is required in CI; it is in the [test] extra")
        pytest.skip("regipy not installed")
    return RegistryHive


def test_regipy_reads_every_key_and_value(sample_hive, regipy):
    hive = regipy(os.fspath(sample_hive))
    assert hive.header.minor_version == 5 and hive.header.file_name == "SOFTWARE"
    want = expected(sample_keys())
    listed = {s.path.strip("\\"): {v.name for v in s.values} for s in hive.recurse_subkeys()}
    assert listed == {p: {"(default)" if n is None else n for n in vals} for p, vals in want.items()}
    for path, values in want.items():
        if not values:
            continue
        key = hive.get_key("\\" + path)
        got = {v.name: (v.value_type, v.value) for v in key.iter_values(trim_values=False)}
        assert set(got) == {"(default)" if n is None else n for n in values}, path
        for name, (vtype, raw) in values.items():
            rtype, rvalue = got["(default)" if name is None else name]
            assert rtype == RegType(vtype).name, (path, name)
            if vtype in (1, 2):
                assert rvalue == raw.decode("utf-16-le")[:-1], (path, name)
            elif vtype == 7:  # regipy drops empty strings
                assert rvalue == [s for s in raw.decode("utf-16-le").split("\0") if s], (path, name)
            elif vtype in (4, 11):
                assert rvalue == int.from_bytes(raw, "little"), (path, name)
            else:
                assert rvalue == raw, (path, name)
    # regipy walks the ri and lh lists in stored order: Windows' upper-case order
    order = [k.name for k in hive.get_key("\\Many").iter_subkeys()]
    assert len(order) == 1003 and order[0] == "Alpha" and order[-2:] == ["zeta", "_underscore"]
    assert order == sorted(order, key=str.upper)
    sd = hive.root.get_security_key_info()
    assert (sd["owner"], sd["group"]) == ("S-1-5-32-544", "S-1-5-18")
    assert [a["sid"] for a in sd["dacl"]] == ["S-1-5-18", "S-1-5-32-544", "S-1-5-32-545", "S-1-3-0", "S-1-15-2-1"]


# -- merging packages, .rga, hives -----------------------------------------------------------------

HKLM_SW = r"HKEY_LOCAL_MACHINE\Software"


def test_merge_identical_values_and_case():
    a = [RegKey(HKLM_SW + r"\Contoso", (RegValue("V", T.REG_DWORD, 1), RegValue(None, T.REG_SZ, "x")))]
    b = [RegKey(r"HKLM\SOFTWARE\contoso", (RegValue("v", T.REG_DWORD, 1), RegValue("W", T.REG_SZ, "y")))]
    merged = merge_keys([("Contoso.A", a), ("Contoso.B", b)])
    assert merged == [RegKey(HKLM_SW + r"\Contoso", (RegValue("V", T.REG_DWORD, 1), RegValue(None, T.REG_SZ, "x"),
                                                     RegValue("W", T.REG_SZ, "y")))]


def test_merge_conflict_names_both_packages():
    a = [RegKey(HKLM_SW + r"\Contoso", (RegValue("Mode", T.REG_DWORD, 1), RegValue(None, T.REG_SZ, "a")))]
    b = [RegKey(HKLM_SW + r"\CONTOSO", (RegValue("mode", T.REG_DWORD, 2),))]
    with pytest.raises(InputError) as e:
        merge_keys([("Contoso.A", a), ("Contoso.B", b)])
    msg = str(e.value)
    assert "Contoso.A" in msg and "Contoso.B" in msg and "Mode" in msg and "0x1" in msg and "0x2" in msg
    # type differs, same text: still a conflict; every conflict is reported at once
    c = [RegKey(HKLM_SW + r"\Contoso", (RegValue("Mode", T.REG_QWORD, 1), RegValue(None, T.REG_EXPAND_SZ, "a")))]
    with pytest.raises(InputErrors) as e:
        merge_keys([("Contoso.A", a), ("Contoso.C", c)])
    assert len(e.value.errors) == 2 and all("Contoso.A" in str(x) and "Contoso.C" in str(x) for x in e.value.errors)
    with pytest.raises(InputError, match="Contoso.A sets it twice"):
        merge_keys([("Contoso.A", a + [RegKey(HKLM_SW + r"\Contoso", (RegValue("Mode", T.REG_DWORD, 3),))])])


def test_rga_appends_to_multi_sz():
    base = [RegKey(r"HKEY_LOCAL_MACHINE\SYSTEM\Setup", (RegValue("List", T.REG_MULTI_SZ, ("one", "two")),
                                                        RegValue("Count", T.REG_DWORD, 2)))]
    rga = [RegKey(r"HKLM\System\setup", (RegValue("list", T.REG_MULTI_SZ, ("TWO", "three")),
                                          RegValue("New", T.REG_MULTI_SZ, ("x",)))),
           RegKey(r"HKEY_LOCAL_MACHINE\SYSTEM\Other", (RegValue("L", T.REG_MULTI_SZ, ("y",)),))]
    got = append_multi_sz(base, [("Pkg.A", rga), ("Pkg.B", [RegKey(r"HKEY_LOCAL_MACHINE\SYSTEM\Setup", (
        RegValue("List", T.REG_MULTI_SZ, ("four", "three")),))])])
    assert got == [
        RegKey(r"HKEY_LOCAL_MACHINE\SYSTEM\Setup", (RegValue("List", T.REG_MULTI_SZ, ("one", "two", "three", "four")),
                                                    RegValue("Count", T.REG_DWORD, 2),
                                                    RegValue("New", T.REG_MULTI_SZ, ("x",)))),
        RegKey(r"HKEY_LOCAL_MACHINE\SYSTEM\Other", (RegValue("L", T.REG_MULTI_SZ, ("y",)),)),
    ]
    with pytest.raises(InputError, match=r"Pkg\.C.*REG_DWORD"):
        append_multi_sz(base, [("Pkg.C", [RegKey(r"HKEY_LOCAL_MACHINE\SYSTEM\Setup",
                                                 (RegValue("Count", T.REG_MULTI_SZ, ("3",)),))])])
    with pytest.raises(InputError, match=r"Pkg\.D.*REG_MULTI_SZ only"):
        append_multi_sz(base, [("Pkg.D", [RegKey(r"HKEY_LOCAL_MACHINE\SYSTEM\Setup",
                                                 (RegValue("List", T.REG_SZ, "3"),))])])


def test_split_by_hive():
    v = (RegValue("x", T.REG_DWORD, 1),)
    keys = [RegKey(r"HKEY_LOCAL_MACHINE\SYSTEM\ControlSet001\Services\Foo", v),
            RegKey(r"hkey_local_machine\software\Contoso", v),
            RegKey(r"HKEY_LOCAL_MACHINE\Software", v),
            RegKey(r"HKEY_LOCAL_MACHINE\Drivers\DriverDatabase", v),
            RegKey(r"HKEY_LOCAL_MACHINE\SAM\SAM", v),
            RegKey(r"HKEY_LOCAL_MACHINE\Security\Policy", v),
            RegKey(r"HKEY_LOCAL_MACHINE\BCD\Objects", v),
            RegKey(r"HKEY_USERS\.Default\Control Panel", v),
            RegKey(r"HKEY_CURRENT_USER\Software\Contoso", v),
            RegKey(r"HKCR\.txt", v)]
    assert split_by_hive(keys) == {
        "SYSTEM": [RegKey(r"ControlSet001\Services\Foo", v)],
        "SOFTWARE": [RegKey("Contoso", v), RegKey("", v), RegKey(r"Classes\.txt", v)],
        "DRIVERS": [RegKey("DriverDatabase", v)],
        "SAM": [RegKey("SAM", v)],
        "SECURITY": [RegKey("Policy", v)],
        "BCD": [RegKey("Objects", v)],
        "DEFAULT": [RegKey("Control Panel", v)],
        "NTUSER.DAT": [RegKey(r"Software\Contoso", v)],
    }
    with pytest.raises(InputErrors) as e:
        split_by_hive([RegKey(r"HKEY_LOCAL_MACHINE\HARDWARE\x"), RegKey("HKEY_LOCAL_MACHINE")])
    assert len(e.value.errors) == 2 and "HKEY_LOCAL_MACHINE\\SYSTEM" in str(e.value)


def test_packages_to_hives_end_to_end(tmp_path):
    """merge -> .rga -> split -> write each hive; hivex reads back what the packages said."""
    pkgs = [("Contoso.Settings", [RegKey(HKLM_SW + r"\Contoso", (RegValue("Mode", T.REG_DWORD, 1),)),
                                  RegKey(r"HKEY_LOCAL_MACHINE\SYSTEM\Setup", (RegValue("L", T.REG_MULTI_SZ, ("a",)),))]),
            ("Contoso.Other", [RegKey(HKLM_SW + r"\Contoso", (RegValue("Mode", T.REG_DWORD, 1),
                                                              RegValue("Name", T.REG_SZ, "x")))])]
    keys = append_multi_sz(merge_keys(pkgs), [("Contoso.Rga", [RegKey(r"HKEY_LOCAL_MACHINE\SYSTEM\Setup", (
        RegValue("L", T.REG_MULTI_SZ, ("b",)),))])])
    hives = split_by_hive(keys)
    for name, hive_keys in hives.items():
        (tmp_path / name).write_bytes(write(hive_keys, file_name=name))
    assert as_table(read_hive(io.BytesIO((tmp_path / "SYSTEM").read_bytes()))) == {
        "": {}, "Setup": {"L": (7, "a\0b\0\0".encode("utf-16-le"))}}
    assert hivex_export(tmp_path / "SOFTWARE") == {
        "": {}, "Contoso": {"Mode": (4, b"\x01\0\0\0"), "Name": (1, "x\0".encode("utf-16-le"))}}


# -- performance -----------------------------------------------------------------------------------

def test_performance_100k_values(capsys):
    keys = [RegKey(f"Perf\\Group{i // 100:03d}\\Key{i:05d}", tuple(
        RegValue(f"Value{j}", (T.REG_SZ, T.REG_DWORD, T.REG_BINARY, T.REG_MULTI_SZ, T.REG_QWORD)[j % 5],
                 (f"string {i} {j}", i * j, bytes([j]) * 24, (f"a{i}", f"b{j}"), i << 33)[j % 5])
        for j in range(10))) for i in range(10_000)]

    class Sink:
        def __init__(self) -> None:
            self.sha, self.n, self.largest = hashlib.sha256(), 0, 0

        def write(self, b: bytes) -> None:
            self.sha.update(b)
            self.n += len(b)
            self.largest = max(self.largest, len(b))

    sink = Sink()
    t0 = time.perf_counter()
    info = write_hive(sink, keys, root_name="ROOT", timestamp=EPOCH)
    elapsed = time.perf_counter() - t0
    # memory, traced on a fifth of the input (tracing is slow): the key tree plus one bin, not the hive
    part = keys[:2000]
    tracemalloc.start()
    try:
        small = write_hive(Sink(), part, root_name="ROOT", timestamp=EPOCH)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    with capsys.disabled():
        print(f"\nregf: {info.values} values in {info.keys} keys -> {info.size / 2**20:.1f} MiB hive in "
              f"{elapsed:.2f} s; largest write {sink.largest} bytes; traced peak {peak / 2**20:.1f} MiB for "
              f"{small.values} values ({small.size / 2**20:.1f} MiB hive)")
    assert info.values == 100_000 and sink.n == info.size
    assert sink.largest <= 8192  # written bin by bin, never the whole hive at once
    assert peak < 16 * 2**20
