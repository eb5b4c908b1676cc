"""Decoding text parts: the declared charset as clients really mean it, then UTF-8, then
Windows-1252, then Latin-1; never an exception."""

# ruff: noqa: RUF001 - the strings are in other scripts on purpose
from __future__ import annotations

import random

import pytest

from gateway.documents.charsets import codec_for, decode_text


@pytest.mark.parametrize(
    ("declared", "text", "written_as"),
    [
        ("gb2312", "张喆", "gbk"),  # Outlook: GBK under the GB 2312 name
        ("GB2312", "𠀀", "gb18030"),
        ("ks_c_5601-1987", "똠방각하", "cp949"),  # a cp949 extension beyond EUC-KR
        ("iso-8859-8-i", "שלום", "iso-8859-8"),
        ("iso-8859-1", "“quoted” – €5", "cp1252"),  # Windows quotes under the Latin-1 name
        ("shift_jis", "①髙", "cp932"),
        ("us-ascii", "café", "utf-8"),  # a client that labels everything ASCII
        ("windows-1251", "Привет", "cp1251"),
        ("iso-2022-jp", "こんにちは", "iso2022_jp"),
    ],
)
def test_declared_charsets_decode_as_their_supersets(
    declared: str, text: str, written_as: str
) -> None:
    assert decode_text(text.encode(written_as), declared) == text


def test_an_unknown_charset_falls_back_to_utf_8() -> None:
    assert decode_text("Grüße".encode(), "x-unknown-8bit") == "Grüße"


def test_a_lying_charset_falls_back_to_utf_8_then_windows_1252() -> None:
    assert decode_text("日本".encode(), "iso-2022-jp") == "日本"  # ESC-less bytes: not JIS
    assert decode_text("naïve “x”".encode("cp1252"), "utf-8") == "naïve “x”"


def test_bytes_undefined_in_windows_1252_decode_as_latin_1() -> None:
    assert decode_text(b"\x81\x8d\xff", "utf-8") == "\x81\x8d\xff"


@pytest.mark.parametrize("declared", ["base64", "zlib", "hex", "rot13", "idna", ""])
def test_a_charset_naming_no_text_codec_is_not_used(declared: str) -> None:
    assert codec_for(declared) in (None, "idna")
    assert decode_text(b"plain", declared) == "plain"


@pytest.mark.parametrize(
    "declared", ["gb2312", "utf-8", "utf-16", "utf-7", "iso-2022-jp", "idna", "big5", None]
)
def test_random_bytes_never_raise(declared: str | None) -> None:
    rng = random.Random(declared)
    for _ in range(200):
        data = bytes(rng.randrange(256) for _ in range(rng.randrange(64)))
        assert isinstance(decode_text(data, declared), str)


LOGICAL_HEBREW = "שלום עולם\nחשבונית מספר 42 (ABC)\n"
# As a visual-order client wrote it: each line as displayed, left to right.
VISUAL_HEBREW = "םלוע םולש\n(ABC) 42 רפסמ תינובשח\n"


def test_visual_iso_8859_8_is_turned_into_logical_order() -> None:
    assert decode_text(VISUAL_HEBREW.encode("iso-8859-8"), "iso-8859-8") == LOGICAL_HEBREW


@pytest.mark.parametrize("declared", ["iso-8859-8", "iso-8859-8-i", "windows-1255"])
def test_logical_hebrew_is_left_as_it_is(declared: str) -> None:
    assert decode_text(LOGICAL_HEBREW.encode("iso-8859-8"), declared) == LOGICAL_HEBREW
