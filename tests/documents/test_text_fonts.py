"""The font chain: which font draws each character, found from the fonts' own cmap tables."""

# ruff: noqa: RUF001 - the strings are in other scripts on purpose

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from gateway.documents.fonts import (
    BUNDLED,
    FontFace,
    FontFileError,
    build_chain,
    bundled_font_bytes,
    font_chain,
    fontconfig_faces,
    read_cmap,
)

NOTO_CJK = Path("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc")
DEJAVU_SANS = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")
needs_system_fonts = pytest.mark.skipif(
    shutil.which("fc-list") is None or not NOTO_CJK.exists() or not DEJAVU_SANS.exists(),
    reason="fontconfig, fonts-noto-cjk or fonts-dejavu-core not installed",
)


def test_the_bundled_font_maps_latin_greek_cyrillic_but_not_cjk() -> None:
    points = read_cmap(bundled_font_bytes())
    assert {ord(c) for c in "Aé€αж"} <= points
    assert ord("你") not in points and ord("ש") not in points


@needs_system_fonts
def test_a_collection_face_is_read_by_its_index() -> None:
    assert ord("你") in read_cmap(str(NOTO_CJK), 2)
    with pytest.raises(FontFileError):
        read_cmap(str(NOTO_CJK), 99)


def test_a_file_that_is_no_font_is_refused(tmp_path: Path) -> None:
    junk = tmp_path / "junk.ttf"
    junk.write_bytes(b"\x00\x01\x00\x00" + b"\xff" * 40)
    with pytest.raises(FontFileError):
        read_cmap(str(junk))


@needs_system_fonts
def test_the_system_chain_covers_every_promised_script() -> None:
    chain = font_chain()
    assert chain.faces[0] == FontFace(BUNDLED)
    for char in "AαжשعЖ你こ한":
        assert chain.can_draw(char), char
    assert chain.face_of("A") == 0  # Latin always from the bundled font
    assert chain.face_of("ก") is None  # Thai: no font installed by the Makefile has it


@needs_system_fonts
def test_configured_fonts_come_after_the_bundled_one_and_before_the_system_ones() -> None:
    chain = build_chain([f"{NOTO_CJK}#2", str(DEJAVU_SANS)], system=[])
    assert [face.describe() for face in chain.faces] == [
        BUNDLED,
        f"{NOTO_CJK}#2",
        str(DEJAVU_SANS),
    ]
    assert chain.face_of("你") == 1
    assert chain.face_of("ש") == 2


def test_a_wrong_configured_path_is_skipped_and_latin_still_drawn(tmp_path: Path) -> None:
    chain = build_chain([str(tmp_path / "missing.ttf")], system=[])
    assert chain.faces == (FontFace(BUNDLED),)
    assert chain.can_draw("A") and not chain.can_draw("你")


def test_without_fontconfig_the_system_adds_nothing(tmp_path: Path) -> None:
    assert fontconfig_faces(str(tmp_path / "no-fc-list")) == []


@needs_system_fonts
def test_fontconfig_picks_one_regular_sans_face_per_script() -> None:
    faces = fontconfig_faces()
    paths = [face.path for face in faces]
    assert str(DEJAVU_SANS) in paths  # Hebrew, Arabic
    assert str(NOTO_CJK) in paths  # Chinese, Japanese, Korean
    assert not any("Serif" in path or "Bold" in path for path in paths)
