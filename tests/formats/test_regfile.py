"""Golden tests for the .reg/.rga text pkggen writes (reference cab-authenticode-registry.md §4.4).

Every expected line below was written by hand from the reference, not produced by the code under test.
"""

from __future__ import annotations

import pytest

from iotbuild.formats.regfile import RegKey, RegType, RegValue, render_reg, render_rga

KEY = r"HKEY_LOCAL_MACHINE\Software\Contoso"


def lines_of(keys, comments=()):
    data = render_reg(keys, comments)
    assert data[:2] == b"\xff\xfe", "UTF-16LE byte-order mark"
    text = data[2:].decode("utf-16-le")
    assert "\n" not in text.replace("\r\n", ""), "CRLF line ends only"
    return text.split("\r\n")


def one(value: RegValue) -> list[str]:
    lines = lines_of([RegKey(KEY, (value,))])
    assert lines[0] == "Windows Registry Editor Version 5.00"
    assert lines[1] == f"[{KEY}]"
    assert lines[-2:] == ["", ""], "blank line after the key, then the final CRLF"
    return lines[2:-2]


def test_reg_sz_escapes_backslash_and_quote():
    assert one(RegValue("Path", RegType.REG_SZ, 'C:\\Data "x"')) == ['"Path"="C:\\\\Data \\"x\\""']


def test_default_value_is_at_sign():
    assert one(RegValue(None, RegType.REG_SZ, "v")) == ['@="v"']


def test_reg_dword_eight_upper_hex_digits():
    assert one(RegValue("D", RegType.REG_DWORD, 0x12AB34CD)) == ['"D"=dword:12AB34CD']
    assert one(RegValue("D", RegType.REG_DWORD, 1)) == ['"D"=dword:00000001']


def test_reg_qword_comment_and_little_endian_bytes():
    assert one(RegValue("Q", RegType.REG_QWORD, 0x5B)) == [
        ";Value:0X000000000000005B", '"Q"=hex(b):5B,00,00,00,00,00,00,00']


def test_reg_expand_sz_utf16_with_nul():
    assert one(RegValue("E", RegType.REG_EXPAND_SZ, "%A%")) == [
        ";Value:%A%", '"E"=hex(2):25,00,41,00,25,00,00,00']


def test_reg_multi_sz_items_nul_separated_double_nul_end():
    assert one(RegValue("M", RegType.REG_MULTI_SZ, ("a", "b;c"))) == [
        ";Value:a;b\\;c", '"M"=hex(7):61,00,00,00,62,00,3B,00,63,00,00,00,00,00']


def test_reg_binary_upper_case():
    assert one(RegValue("B", RegType.REG_BINARY, bytes.fromhex("12abcdef"))) == ['"B"=hex:12,AB,CD,EF']


def test_long_hex_wraps_every_40_bytes_without_indent():
    data = bytes(range(90))
    got = one(RegValue("L", RegType.REG_BINARY, data))
    first = ",".join(f"{b:02X}" for b in data[:40])
    second = ",".join(f"{b:02X}" for b in data[40:80])
    third = ",".join(f"{b:02X}" for b in data[80:])
    assert got == [f'"L"=hex:{first},\\', f"{second},\\", third]


def test_empty_key_and_comments():
    lines = lines_of([RegKey(KEY + r"\Empty")], comments=["built by iotbuild"])
    assert lines == ["Windows Registry Editor Version 5.00", ";built by iotbuild", "", f"[{KEY}\\Empty]", "", ""]


def test_repeated_value_name_is_a_conflict():
    with pytest.raises(ValueError, match="conflict"):
        render_reg([RegKey(KEY, (RegValue("A", RegType.REG_SZ, "1"), RegValue("a", RegType.REG_SZ, "2")))])


def test_rga_accepts_only_multi_sz():
    render_rga([RegKey(KEY, (RegValue("M", RegType.REG_MULTI_SZ, ("x",)),))])
    with pytest.raises(ValueError, match="REG_MULTI_SZ"):
        render_rga([RegKey(KEY, (RegValue("D", RegType.REG_DWORD, 1),))])
