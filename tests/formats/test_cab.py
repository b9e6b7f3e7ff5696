"""MS-CAB records, checksum, MSZIP, writer and reader; outside tools check our cabs and make cabs we read."""

from __future__ import annotations

import hashlib
import io
import os
import random
import struct
import subprocess
import time
import tracemalloc
import zlib
from pathlib import Path

import iotbuild.formats.cab.writer as cabwriter
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from iotbuild.errors import FormatError, InputError
from iotbuild.formats.cab import (
    ATTR_ARCH,
    ATTR_NAME_IS_UTF,
    CabReader,
    CabSource,
    CfData,
    CfFile,
    CfFolder,
    CfHeader,
    CfReserveSizes,
    Compression,
    MszipCompressor,
    MszipDecompressor,
    cab_checksum,
    cfdata_checksum,
    dos_datetime,
    extract_with_cabextract,
    write_cab,
)
from iotbuild.formats.cab.records import BLOCK_MAX, MSZIP_MAX

from tests.conftest import require_tool

EPOCH = 1704164646  # 2024-01-02 03:04:06 UTC
u8, u16, u32 = (st.integers(0, (1 << b) - 1) for b in (8, 16, 32))
FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


# -- records ---------------------------------------------------------------------------------------

def common(cls, data: bytes, obj) -> None:
    """construct's ``common()``: parse, build and size agree for one hand-written sample."""
    parsed = cls.from_bytes(data)
    if isinstance(parsed, tuple):  # CfFile also returns the end offset
        parsed, end = parsed
        assert end == len(data)
    else:
        assert len(data) == cls.LAYOUT.size
    assert parsed == obj
    assert obj.to_bytes() == data


def test_records_reference_samples():
    # §1.2: the cabarchive cab, one MSZIP folder, 5 files, no reserve.
    common(CfHeader, bytes.fromhex("4D534346 00000000 BC110000 00000000 2C000000 00000000 03 01 0100 0500 0000 0000 0000"),
           CfHeader(cabinet_size=0x11BC, files_offset=0x2C, folder_count=1, file_count=5))
    common(CfFolder, bytes.fromhex("B6000000 0C00 0100"), CfFolder(0xB6, 12, Compression.MSZIP))
    # §2.1: the same cab after osslsigncode: reserve flag, 20-byte header reserve, everything shifted by 24.
    common(CfHeader, bytes.fromhex("4D534346 00000000 D4110000 00000000 44000000 00000000 03 01 0100 0500 0400 0000 0000"),
           CfHeader(0x11D4, 0x44, 1, 5, flags=4))
    common(CfReserveSizes, bytes.fromhex("1400 00 00"), CfReserveSizes(20, 0, 0))
    common(CfFolder, bytes.fromhex("CE000000 0C00 0100"), CfFolder(0xCE, 12, Compression.MSZIP))
    common(CfFolder, bytes.fromhex("00010000 0200 0315"), CfFolder(0x100, 2, Compression.LZX, 0x1500))  # LZX:21
    # §1.4: man.dsm.xml, 33 bytes, 2024-01-02 03:04:06, archive bit.
    common(CfFile, bytes.fromhex("21000000 00000000 0000 2258 8318 2000") + b"man.dsm.xml\0",
           CfFile(33, 0, 0, 0x5822, 0x1883, ATTR_ARCH, "man.dsm.xml"))
    common(CfFile, bytes.fromhex("13000000 21000000 0000 2258 8318 A000") + "3_café.txt".encode() + b"\0",
           CfFile(19, 33, 0, 0x5822, 0x1883, ATTR_ARCH | ATTR_NAME_IS_UTF, "3_café.txt"))
    common(CfData, bytes.fromhex("78563412 0A00 0080"), CfData(0x12345678, 10, 0x8000))
    assert dos_datetime(time.gmtime(EPOCH)) == (0x5822, 0x1883)


def test_record_errors_carry_offsets():
    with pytest.raises(FormatError, match="not 'MSCF'"):
        CfHeader.from_bytes(b"MSCX" + bytes(32))
    with pytest.raises(FormatError, match="truncated") as e:
        CfFolder.from_bytes(bytes(10), 4)
    assert e.value.offset == 4
    with pytest.raises(FormatError, match="typeCompress 7 unknown"):
        CfFolder.from_bytes(bytes.fromhex("00000000 0000 0700"))


names = st.one_of(
    st.tuples(st.text(st.characters(min_codepoint=1, max_codepoint=127), min_size=1, max_size=255), st.just(0)),
    st.tuples(st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\0"), min_size=1,
                      max_size=60), st.just(ATTR_NAME_IS_UTF)),
)


@FAST
@given(hdr=st.builds(CfHeader, u32, u32, u16, u16, u16, u16, u16), rsv=st.builds(CfReserveSizes, u16, u8, u8),
       folder=st.builds(CfFolder, u32, u16, st.sampled_from(Compression), st.integers(0, 0xFFF).map(lambda x: x << 4)),
       data=st.builds(CfData, u32, u16, u16), fields=st.tuples(u32, u32, u16, u16, u16, u16), name=names)
def test_records_round_trip(hdr, rsv, folder, data, fields, name):
    for rec in (hdr, rsv, folder, data):
        assert type(rec).from_bytes(rec.to_bytes()) == rec
    text, utf = name
    f = CfFile(*fields[:5], (fields[5] & ~ATTR_NAME_IS_UTF) | utf, text)
    raw = f.to_bytes()
    assert CfFile.from_bytes(b"pad" + raw, 3) == (f, 3 + len(raw))


# -- checksum --------------------------------------------------------------------------------------

def reference_checksum(data: bytes, seed: int = 0) -> int:
    """MS-CAB CSUMCompute written the obvious, slow way."""
    whole = len(data) // 4 * 4
    for (word,) in struct.iter_unpack("<I", data[:whole]):
        seed ^= word
    tail = 0
    for b in data[whole:]:
        tail = (tail << 8) | b
    return seed ^ tail


def test_checksum_known_values():
    assert cab_checksum(b"") == 0
    assert cab_checksum(b"\x01") == 0x01
    assert cab_checksum(b"\x01\x02") == 0x0102
    assert cab_checksum(b"\x01\x02\x03") == 0x010203
    assert cab_checksum(b"\x01\x02\x03\x04") == 0x04030201
    assert cab_checksum(b"\x01\x00\x00\x00\x01\x00\x00\x00\xAA", seed=0x100) == 0x1AA
    assert cfdata_checksum(b"", 0, 0) == 0
    assert cfdata_checksum(b"\x01\x02\x03\x04", 4, 4) == 0x04030201 ^ 0x00040004


def random_bytes(sizes: st.SearchStrategy[int]) -> st.SearchStrategy[bytes]:
    """Large random buffers; hypothesis's own st.binary is far too slow at 32 KiB."""
    return st.builds(lambda n, s: random.Random(s).randbytes(n), sizes, u32)


@settings(max_examples=300, deadline=None)
@given(data=st.one_of(st.binary(max_size=64), random_bytes(st.integers(32760, 32780)),
                      random_bytes(st.integers(0, 70000))), seed=u32)
def test_checksum_matches_reference(data, seed):
    assert cab_checksum(data, seed) == reference_checksum(data, seed)
    assert cab_checksum(memoryview(data)) == reference_checksum(data)


def test_checksum_large_and_odd_sizes():
    rng = random.Random(7)
    for size in (4, 8, 12, 4096 + 4, 65532, 1 << 20, (1 << 20) + 3):
        data = rng.randbytes(size)
        assert cab_checksum(data, 0xDEADBEEF) == reference_checksum(data, 0xDEADBEEF), size


# -- MSZIP -----------------------------------------------------------------------------------------

def text_like(size: int, seed: int) -> bytes:
    rng = random.Random(seed)
    words = ["".join(rng.choices("abcdefghijklmnopqrstuvwxyz", k=rng.randint(2, 9))) for _ in range(400)]
    out = bytearray()
    while len(out) < size:
        out += (" ".join(rng.choices(words, k=500)) + "\r\n").encode()
    return bytes(out[:size])


def test_mszip_round_trip_uses_history_and_stores_random():
    text = text_like(BLOCK_MAX, 1)
    again = text[BLOCK_MAX // 2:] + text_like(BLOCK_MAX // 2, 7)  # first half repeats block 0 at distance 16 KiB
    noise = random.Random(2).randbytes(BLOCK_MAX)
    blocks = [text, again, noise, noise, b"tail"]
    comp, dec = MszipCompressor(), MszipDecompressor()
    payloads = [comp.compress_block(b) for b in blocks]
    assert all(p[:2] == b"CK" and len(p) <= MSZIP_MAX for p in payloads)
    alone = len(zlib.compress(again, 6, wbits=-15))
    assert len(payloads[1]) < alone * 0.7  # the repeat became back-references into block 0: history carried
    assert payloads[2][2] == 0x01 and len(payloads[2]) == BLOCK_MAX + 7  # stored: BFINAL, BTYPE 00
    assert struct.unpack_from("<HH", payloads[2], 3) == (BLOCK_MAX, BLOCK_MAX ^ 0xFFFF)
    assert [dec.decompress_block(p, len(b)) for p, b in zip(payloads, blocks)] == blocks
    with pytest.raises(zlib.error):  # block 1 alone cannot be inflated: it needs block 0 as history
        zlib.decompress(payloads[1][2:], -15)


@FAST
@given(st.lists(st.one_of(random_bytes(st.integers(0, BLOCK_MAX)), st.integers(1, BLOCK_MAX).map(lambda n: b"ab" * n)),
                min_size=1, max_size=5).map(lambda bs: [b[:BLOCK_MAX] for b in bs]), st.integers(0, 9))
def test_mszip_property_round_trip(blocks, level):
    comp, dec = MszipCompressor(level), MszipDecompressor()
    for block in blocks:
        payload = comp.compress_block(block)
        assert len(payload) <= MSZIP_MAX
        assert dec.decompress_block(payload, len(block)) == block


@pytest.mark.parametrize("payload, size, message", [
    (b"XX\x03\x00", 0, "does not start with 'CK'"),
    (b"CK\xff\xff\xff", 10, "not valid deflate"),
    (b"CK" + zlib.compress(b"hello", wbits=-15)[:-1], 5, "no final deflate block|inflates to"),
    (b"CK" + zlib.compress(b"hello", wbits=-15), 4, "inflates to more than 4"),
    (b"CK" + zlib.compress(b"hello", wbits=-15), 6, "inflates to 5 bytes"),
    (b"CK" + zlib.compress(b"hello", wbits=-15) + b"junk", 5, "4 bytes after its final"),
])
def test_mszip_corrupt_blocks(payload, size, message):
    with pytest.raises(FormatError, match=message) as e:
        MszipDecompressor().decompress_block(payload, size, offset=0x40)
    assert e.value.offset == 0x40


# -- checks with outside tools (shared by the writer tests) ------------------------------------------

def run_tool(*argv, cwd=None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([os.fspath(a) for a in argv], check=False, cwd=cwd, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "LC_ALL": "C.UTF-8"})


def check_with_reader(cab: Path, expected: dict[str, bytes]) -> None:
    with CabReader.open(cab) as r:
        r.verify()
        assert r.names() == list(expected)
        for f, chunks in r.iter_members():
            parts = list(chunks)
            assert all(0 < len(p) <= BLOCK_MAX for p in parts)
            assert b"".join(parts) == expected[f.name], f.name


def check_with_cabextract(cab: Path, expected: dict[str, bytes], dest: Path) -> None:
    require_tool("cabextract")
    tested = run_tool("cabextract", "-t", cab)
    assert tested.returncode == 0 and "All done, no errors" in tested.stdout, tested.stdout + tested.stderr
    assert run_tool("cabextract", "-q", "-d", dest, cab).returncode == 0
    assert_tree(dest, expected)


def check_with_gcab(cab: Path, expected: dict[str, bytes], dest: Path) -> None:
    require_tool("gcab")
    listed = run_tool("gcab", "-l", cab)  # "name size date time attribs" per member
    assert listed.returncode == 0, listed.stderr
    rows = [line.rsplit(" ", 4) for line in listed.stdout.splitlines()]
    assert [(name, int(size)) for name, size, *_ in rows] == [(n, len(d)) for n, d in expected.items()]
    dest.mkdir()
    extracted = run_tool("gcab", "-x", "-C", dest, cab)
    assert extracted.returncode == 0, extracted.stderr
    assert_tree(dest, expected)


def assert_tree(dest: Path, expected: dict[str, bytes]) -> None:
    found = {p.relative_to(dest).as_posix(): p.read_bytes() for p in dest.rglob("*") if p.is_file()}
    want = {name.replace("\\", "/"): data for name, data in expected.items()}
    assert found.keys() == want.keys()
    for name, data in want.items():
        assert found[name] == data, f"{name}: first difference at {first_difference(found[name], data)}"


def first_difference(a: bytes, b: bytes) -> int:
    """Offset of the first differing byte (cabarchive's _check_range idea), for readable failures."""
    return next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))


def write(path: Path, members, **kw) -> Path:
    with open(path, "wb") as out:
        write_cab(out, members, epoch=kw.pop("epoch", EPOCH), **kw)
    return path


@pytest.fixture
def mixed(tmp_path) -> tuple[list[CabSource], dict[str, bytes]]:
    """A 3 MiB mix of random and text-like files with odd sizes, so members straddle many block edges."""
    src = tmp_path / "src"
    src.mkdir()
    rng = random.Random(42)
    contents = {
        "man.dsm.xml": b'<?xml version="1.0"?>\r\n<Package/>\r\n',
        "empty.bin": b"",
        "1_random.bin": rng.randbytes(1_000_003),
        "2_text.txt": text_like(1_200_001, 3),
        "sub\\3_random.bin": rng.randbytes(500_000),
        "sub\\4_text.txt": text_like(444_444, 4),
        "5_café.txt": "über grüße\r\n".encode() * 10,
        "6_tiny": b"x",
    }
    members = []
    for i, (name, data) in enumerate(contents.items()):
        if i % 2:
            members.append(CabSource(name, data=data))
        else:
            path = src / f"in{i}"
            path.write_bytes(data)
            members.append(CabSource(name, path=path))
    return members, contents


# -- writer ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("compression", [Compression.NONE, Compression.MSZIP])
def test_written_cab_passes_outside_tools(tmp_path, mixed, compression):
    members, expected = mixed
    cab = write(tmp_path / "out.cab", members, compression=compression)
    with CabReader.open(cab) as r:
        assert r.header.flags == 0 and r.reserve is None and len(r.folders) == 1
        assert r.folders[0].compression == compression
        utf = {f.name: bool(f.attribs & ATTR_NAME_IS_UTF) for f in r.files}
        assert utf == {n: not n.isascii() for n in expected}
        assert {(f.date, f.time) for f in r.files} == {(0x5822, 0x1883)}
        blocks = list(r._folder_blocks(0))
        assert [len(b) for b in blocks[:-1]] == [BLOCK_MAX] * (len(blocks) - 1)
    check_with_reader(cab, expected)
    check_with_cabextract(cab, expected, tmp_path / "cabextract")
    check_with_gcab(cab, expected, tmp_path / "gcab")


def test_many_files(tmp_path):
    expected = {f"dir{i % 7}\\file{i:04d}.txt": f"content {i}\n".encode() * (i % 5) for i in range(1500)}
    cab = write(tmp_path / "many.cab", [CabSource(n, data=d) for n, d in expected.items()])
    check_with_reader(cab, expected)
    check_with_cabextract(cab, expected, tmp_path / "x")


def test_only_empty_files_make_a_folder_without_blocks(tmp_path):
    expected = {"a": b"", "b": b""}
    cab = write(tmp_path / "e.cab", [CabSource(n, data=d) for n, d in expected.items()])
    with CabReader.open(cab) as r:
        assert r.folders[0].data_blocks == 0
    check_with_reader(cab, expected)
    check_with_cabextract(cab, expected, tmp_path / "x")
    check_with_gcab(cab, expected, tmp_path / "g")


def test_result_and_deterministic_output(tmp_path, mixed):
    members, expected = mixed
    a, b = io.BytesIO(), io.BytesIO()
    result = write_cab(a, members, epoch=EPOCH)
    write_cab(b, members, epoch=EPOCH)
    assert a.getvalue() == b.getvalue()
    assert result.size == len(a.getvalue()) and result.folder_count == 1
    assert result.uncompressed_size == sum(map(len, expected.values()))
    assert result.data_blocks == -(-result.uncompressed_size // BLOCK_MAX)
    assert result.compressed_size == result.size - 44 - sum(17 + len(n.encode()) for n in expected) - 8 * result.data_blocks
    c = io.BytesIO()
    write_cab(c, members, epoch=EPOCH + 2)
    assert c.getvalue() != a.getvalue()


GOLDEN_MEMBERS = [("a.txt", b"alpha\r\n" * 300), ("b\\c.bin", bytes(range(256)) * 200), ("d.txt", b"")]
GOLDEN_STORED = "bb1182c4160368989b9e749bc287ec9615aa04b75bf9dc7269736d88db11cf41"
GOLDEN_MSZIP = ("1.2.13", "2c9baa0151797fb4b184e5479826808554c0c1901c098fb367344e8387335062")


@pytest.mark.parametrize("compression", [Compression.NONE, Compression.MSZIP])
def test_golden_sha256(compression):
    """Guards bit-identical rebuilds. MSZIP bytes depend on the zlib build, so that pin is per zlib version."""
    out = io.BytesIO()
    write_cab(out, [CabSource(n, data=d) for n, d in sorted(GOLDEN_MEMBERS)], compression=compression,
              epoch=1700000000)
    digest = hashlib.sha256(out.getvalue()).hexdigest()
    if compression == Compression.NONE:
        assert digest == GOLDEN_STORED
    elif zlib.ZLIB_RUNTIME_VERSION != GOLDEN_MSZIP[0]:
        pytest.skip(f"MSZIP golden value is for zlib {GOLDEN_MSZIP[0]}, this is {zlib.ZLIB_RUNTIME_VERSION}")
    else:
        assert digest == GOLDEN_MSZIP[1]


@FAST
@given(st.lists(st.tuples(st.sampled_from(["a", "b\\c", "é", "d.txt", "e\\f\\g"]),
                          st.one_of(random_bytes(st.integers(0, 70000)), st.integers(0, 70000).map(lambda n: b"z" * n))),
                min_size=1, max_size=5, unique_by=lambda m: m[0]),
       st.sampled_from([Compression.NONE, Compression.MSZIP]))
def test_writer_reader_property(members, compression):
    out = io.BytesIO()
    write_cab(out, [CabSource(n, data=d) for n, d in members], compression=compression, epoch=EPOCH)
    out.seek(0)
    reader = CabReader(out)
    reader.verify()
    assert {n: reader.read(n) for n in reader.names()} == dict(members)


def test_memory_stays_bounded(tmp_path):
    big = tmp_path / "big.bin"
    with open(big, "wb") as f:
        rng = random.Random(5)
        f.writelines(rng.randbytes(1 << 20) if i % 2 else text_like(1 << 20, i) for i in range(12))
    tracemalloc.start()
    try:
        write(tmp_path / "big.cab", [CabSource("big.bin", path=big)])
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 << 20, f"peak {peak} bytes for a 12 MiB member"


@pytest.mark.parametrize("name, message", [
    ("", "empty"),
    ("a\0b", "NUL"),
    ("x" * 256, "256 bytes, the limit is 255"),
    ("é" * 128, "256 bytes, the limit is 255"),
    ("\\abs", "not a relative path"),
    ("a\\..\\b", "not a relative path"),
    ("a\\\\b", "not a relative path"),
    ("C:x", "not a relative path"),
    ("a/b", "contains '/'"),
])
def test_bad_names_refused(name, message):
    with pytest.raises(InputError, match=message):
        write_cab(io.BytesIO(), [CabSource(name, data=b"")], epoch=EPOCH)


def test_name_limit_is_exactly_255_bytes(tmp_path):
    expected = {"x" * 255: b"ok"}
    cab = write(tmp_path / "long.cab", [CabSource("x" * 255, data=b"ok")])
    check_with_reader(cab, expected)


def test_all_member_problems_reported_together():
    members = [CabSource("", data=b""), CabSource("A.txt", data=b""), CabSource("a.TXT", data=b"")]
    with pytest.raises(InputError) as e:
        write_cab(io.BytesIO(), members, epoch=EPOCH)
    assert "empty" in str(e.value) and "collide" in str(e.value)


def test_caller_mistakes():
    with pytest.raises(InputError, match="exactly one of"):
        CabSource("a")
    with pytest.raises(InputError, match="exactly one of"):
        CabSource("a", path=Path("x"), data=b"")
    with pytest.raises(InputError, match="at least one member"):
        write_cab(io.BytesIO(), [], epoch=EPOCH)
    with pytest.raises(InputError, match="LZX is not supported"):
        write_cab(io.BytesIO(), [CabSource("a", data=b"")], compression=Compression.LZX, epoch=EPOCH)
    with pytest.raises(InputError, match="MSZIP level must be 0..9, got 10"):
        write_cab(io.BytesIO(), [CabSource("a", data=b"")], level=10, epoch=EPOCH)
    with pytest.raises(InputError, match="after 2107"):
        write_cab(io.BytesIO(), [CabSource("a", data=b"")], epoch=2**33)
    with pytest.raises(InputError, match="cannot read") as e:
        write_cab(io.BytesIO(), [CabSource("a", path=Path("/nonexistent/x"))], epoch=EPOCH)
    assert e.value.path == "/nonexistent/x"


def test_epoch_before_1980_is_clamped():
    out = io.BytesIO()
    write_cab(out, [CabSource("a", data=b"")], epoch=0)
    out.seek(0)
    f = CabReader(out).files[0]
    assert (f.date, f.time) == ((0 << 9) | (1 << 5) | 1, 0)


def test_limits_refused_with_numbers(monkeypatch):
    members = [CabSource(f"f{i}", data=b"x" * 100) for i in range(4)]
    monkeypatch.setattr(cabwriter, "FILES_MAX", 3)
    with pytest.raises(InputError, match=r"4 CAB members; a cabinet holds at most 3") as e:
        write_cab(io.BytesIO(), members, epoch=EPOCH)
    assert "split the package" in str(e.value)
    monkeypatch.undo()
    monkeypatch.setattr(cabwriter, "FOLDER_UNCOMPRESSED_MAX", 150)
    with pytest.raises(InputError, match=r"members total 400 bytes; one cabinet folder holds at most 150"):
        write_cab(io.BytesIO(), members, epoch=EPOCH)
    monkeypatch.setattr(cabwriter, "FOLDER_UNCOMPRESSED_MAX", 50)
    with pytest.raises(InputError, match=r"'f0' is 100 bytes; the format limit is 50"):
        write_cab(io.BytesIO(), members, epoch=EPOCH)


@pytest.mark.parametrize("compression", [Compression.NONE, Compression.MSZIP])
def test_cabinet_size_limit(monkeypatch, compression):
    rng = random.Random(1)
    members = [CabSource("r", data=rng.randbytes(200_000))]
    monkeypatch.setattr(cabwriter, "CABINET_MAX", 100_000)
    out = io.BytesIO()
    with pytest.raises(InputError, match=r"cabinet would exceed 100000 bytes .* \(reached \d+\)"):
        write_cab(out, members, compression=compression, epoch=EPOCH)
    if compression == Compression.NONE:
        assert out.tell() == 0  # known up front: nothing written


@pytest.mark.parametrize("delta, message", [(-1, "grew while being read"), (+1, "shrank while being read")])
def test_file_changing_size_is_refused(tmp_path, monkeypatch, delta, message):
    path = tmp_path / "in.bin"
    path.write_bytes(b"q" * 100_000)
    real = cabwriter._member_size
    monkeypatch.setattr(cabwriter, "_member_size", lambda m: real(m) + delta)  # as if it changed after stat()
    with pytest.raises(InputError, match=message):
        write_cab(io.BytesIO(), [CabSource("in.bin", path=path)], epoch=EPOCH)


# -- reader ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("flags", [[], ["-z"]])
def test_reader_reads_gcab_output(tmp_path, mixed, flags):
    require_tool("gcab")
    _members, expected = mixed
    src = tmp_path / "tree"
    for name, data in expected.items():
        (src / name.replace("\\", "/")).parent.mkdir(parents=True, exist_ok=True)
        (src / name.replace("\\", "/")).write_bytes(data)
    cab = tmp_path / "gcab.cab"
    made = run_tool("gcab", "-c", *flags, cab, *[n.replace("\\", "/") for n in expected], cwd=src)
    assert made.returncode == 0, made.stderr
    with CabReader.open(cab) as r:
        assert r.folders[0].compression == (Compression.MSZIP if flags else Compression.NONE)
    check_with_reader(cab, expected)
    with CabReader.open(cab) as r:
        out = tmp_path / "ours"
        written = r.extract_all(out)
        assert len(written) == len(expected)
    assert_tree(out, expected)


def cfdata_offset(cab: bytes) -> int:
    return CfFolder.from_bytes(cab, 36).data_offset


def test_checksum_corruption_detected(tmp_path):
    expected = {"a.txt": text_like(100_000, 9)}
    cab = write(tmp_path / "ok.cab", [CabSource("a.txt", data=expected["a.txt"])])
    data = bytearray(cab.read_bytes())
    first = cfdata_offset(data)
    second = first + 8 + CfData.from_bytes(data, first).compressed_size
    data[second + 8 + 20] ^= 0x01
    bad = tmp_path / "bad.cab"
    bad.write_bytes(data)
    with CabReader.open(bad) as r, pytest.raises(FormatError, match="CFDATA 1 of folder 0: checksum") as e:
        r.read("a.txt")
    assert e.value.offset == second and e.value.path == str(bad)
    require_tool("cabextract")
    tested = run_tool("cabextract", "-t", bad)
    assert tested.returncode != 0 and "checksum error" in tested.stdout
    # A zero csum means "not supplied": accepted by us and cabextract alike.
    data = bytearray(cab.read_bytes())
    data[first:first + 4] = bytes(4)
    bad.write_bytes(data)
    check_with_reader(bad, expected)
    check_with_cabextract(bad, expected, tmp_path / "x")


def patched(cab: bytes, offset: int, new: bytes) -> io.BytesIO:
    data = bytearray(cab)
    data[offset:offset + len(new)] = new
    return io.BytesIO(bytes(data))


def test_reader_refuses_bad_files():
    out = io.BytesIO()
    write_cab(out, [CabSource("a.txt", data=text_like(70_000, 1)), CabSource("b", data=b"x")], epoch=EPOCH)
    cab = out.getvalue()
    data_at = cfdata_offset(cab)
    with pytest.raises(FormatError, match="truncated"):
        CabReader(io.BytesIO(cab[:-10]))
    with pytest.raises(FormatError, match="multi-cabinet set"):
        CabReader(patched(cab, 0x1E, b"\x02\x00"))
    lzx = CabReader(patched(cab, 36 + 6, b"\x03\x15"))
    assert lzx.names() == ["a.txt", "b"]
    with pytest.raises(FormatError, match="LZX-compressed folder: read it with cabextract") as e:
        lzx.read("a.txt")
    assert e.value.offset == 36 and "extract_with_cabextract" in str(e.value)
    with pytest.raises(FormatError, match="does not start with 'CK'"):
        CabReader(patched(cab, data_at, bytes(4) + b"\x00\x00\x00\x80XX")).read("a.txt")
    with pytest.raises(FormatError, match="cbUncomp 0 not in"):
        CabReader(patched(cab, data_at, bytes(4) + b"\x00\x00\x00\x00")).read("a.txt")
    with pytest.raises(FormatError, match="iFolder 3 but there are 1 folders"):
        CabReader(patched(cab, 44 + 8, b"\x03\x00"))
    with pytest.raises(FormatError, match="extends to folder offset 70001, past the end"):
        CabReader(patched(cab, 36 + 4, b"\x02\x00")).read("b")  # folder claims 2 of its 3 blocks
    with pytest.raises(InputError, match="no member 'zz'"):
        CabReader(io.BytesIO(cab)).read("zz")


@pytest.mark.parametrize("evil", ["..\\x", "\\abs", "C:x", "a\\..\\..\\x"])
def test_extract_all_refuses_escaping_names(tmp_path, evil):
    placeholder = "".join("_" if c in ".:\\" else c for c in evil).replace("_", "q")
    out = io.BytesIO()
    write_cab(out, [CabSource("ok.txt", data=b"fine"), CabSource(placeholder, data=b"evil")], epoch=EPOCH)
    cab = out.getvalue()
    at = cab.index(placeholder.encode())
    reader = CabReader(patched(cab, at, evil.encode()))
    assert reader.names() == ["ok.txt", evil]
    with pytest.raises(FormatError, match="not a safe relative path"):
        reader.extract_all(tmp_path / "dest")
    assert not (tmp_path / "dest").exists()  # checked before anything was written


def test_read_middle_member_and_stale_iterators():
    expected = {"a": text_like(100_000, 1), "b": random.Random(3).randbytes(70_000), "c": b"end"}
    out = io.BytesIO()
    write_cab(out, [CabSource(n, data=d) for n, d in expected.items()], epoch=EPOCH)
    reader = CabReader(out)
    assert reader.read("b") == expected["b"] and reader.read("a") == expected["a"]
    members = reader.iter_members()
    _fa, chunks_a = next(members)
    next(chunks_a)
    _fb, chunks_b = next(members)
    assert b"".join(chunks_b) == expected["b"]  # skipping the rest of "a" is fine
    with pytest.raises(RuntimeError, match="after the next member"):
        next(chunks_a)


def insert_signature_reserve(cab: bytes, blob: bytes) -> bytes:
    """What a signer does (§2.1): a 20-byte header reserve at 0x24, offsets +24, blob appended, 8-byte padded."""
    header = CfHeader.from_bytes(cab)
    folder = CfFolder.from_bytes(cab, 36)
    size = header.cabinet_size + 24
    padded = blob + bytes(-len(blob) % 8)
    reserve = CfReserveSizes(20, 0, 0).to_bytes() + struct.pack("<III8x", 0x00100000, size, len(padded))
    head = CfHeader(size, header.files_offset + 24, 1, header.file_count, flags=4).to_bytes()
    moved = CfFolder(folder.data_offset + 24, folder.data_blocks, folder.compression).to_bytes()
    return head + reserve + moved + cab[44:] + padded


def test_reader_handles_signature_reserve(tmp_path):
    expected = {"a.txt": text_like(50_000, 2), "b": b"bee"}
    out = io.BytesIO()
    write_cab(out, [CabSource(n, data=d) for n, d in expected.items()], epoch=EPOCH)
    signed = tmp_path / "signed.cab"
    signed.write_bytes(insert_signature_reserve(out.getvalue(), b"\x30\x82fake-pkcs7"))
    with CabReader.open(signed) as r:
        assert r.reserve == CfReserveSizes(20, 0, 0)
        assert r.signature_region == (len(out.getvalue()) + 24, 16)
    check_with_reader(signed, expected)


def test_reader_reads_osslsigncode_signed_cab(tmp_path):
    require_tool("osslsigncode")
    from datetime import UTC, datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "iotbuild test")])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(datetime(2020, 1, 1, tzinfo=UTC))
            .not_valid_after(datetime(2040, 1, 1, tzinfo=UTC))
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), critical=False)
            .sign(key, hashes.SHA256()))
    (tmp_path / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "key.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                         serialization.NoEncryption()))
    expected = {"man.dsm.xml": b"<Package/>", "1_data.bin": text_like(90_000, 5)}
    cab = write(tmp_path / "u.cab", [CabSource(n, data=d) for n, d in expected.items()])
    signed = tmp_path / "s.cab"
    done = run_tool("osslsigncode", "sign", "-certs", tmp_path / "cert.pem", "-key", tmp_path / "key.pem",
                    "-h", "sha256", "-in", cab, "-out", signed)
    assert done.returncode == 0, done.stdout + done.stderr
    with CabReader.open(signed) as r:
        offset, length = r.signature_region
        assert offset == r.header.cabinet_size == cab.stat().st_size + 24
        assert offset + length == signed.stat().st_size
    check_with_reader(signed, expected)


def test_extract_with_cabextract(tmp_path, mixed):
    require_tool("cabextract")
    members, expected = mixed
    cab = write(tmp_path / "m.cab", members)
    files = extract_with_cabextract(cab, tmp_path / "x")
    assert len(files) == len(expected)
    assert_tree(tmp_path / "x", expected)
