"""Text on the cell grid: wide characters take two cells, lines wrap where the reader expects,
the page estimate at SMTP time is the renderer's page count, right-to-left lines sit at the
right margin."""

# ruff: noqa: RUF001 - the strings are in other scripts on purpose
from __future__ import annotations

import random

import pytest
from PIL import Image

from gateway.documents.inspect import text_document
from gateway.documents.raster import PageGeometry
from gateway.documents.render import RenderOptions, render_fax
from gateway.documents.render_text import text_pages
from gateway.documents.text_layout import layout, width, wrap
from gateway.models import DocumentKind, SourceDocument


def test_wide_characters_take_two_cells_and_marks_none() -> None:
    assert width("abc") == 3
    assert width("你好") == 4
    assert width("ｆｕｌｌ") == 8  # fullwidth Latin
    assert width("e\u0301") == 1  # e + combining acute


def test_lines_wrap_at_spaces() -> None:
    assert wrap("the quick brown fox jumps", 10) == ["the quick", "brown fox", "jumps"]


def test_chinese_without_spaces_wraps_between_characters_by_cells() -> None:
    assert wrap("你好世界你好世界", 7) == ["你好世", "界你好", "世界"]


def test_a_word_longer_than_the_line_is_broken() -> None:
    assert wrap("see http://example.com/abcdef", 10) == ["see", "http://exa", "mple.com/a", "bcdef"]


def test_a_combining_mark_stays_with_its_letter_at_a_break() -> None:
    assert wrap("abcde\u0301f", 5) == ["abcde\u0301", "f"]


def test_trailing_blank_lines_make_no_extra_page() -> None:
    assert len(layout("x\n" * 60 + "\n\n", 80, 60)) == 1
    assert len(layout("x\n" * 61, 80, 60)) == 2


def rendered_pages(text: str) -> int:
    document = SourceDocument(DocumentKind.TEXT, text.encode(), "t.txt")
    return render_fax([document], RenderOptions(resolution="fine", paper="letter")).pages


@pytest.mark.parametrize(
    "text",
    [
        "one line",
        "x" * 90 * 60,
        "x" * (90 * 60 + 1),
        "中" * 45 * 60,  # 45 wide characters fill a line of 90 cells
        "中" * (45 * 60 + 1),
        "\n".join(["日本語のテキスト and some Latin words mixed in it"] * 70),
        "page one\fpage two\fpage three",
    ],
)
def test_the_smtp_estimate_is_the_rendered_page_count(text: str) -> None:
    assert text_document(text, "t.txt").pages == rendered_pages(text)


def ink_columns(image: Image.Image) -> tuple[int, int]:
    """The leftmost and rightmost column with ink on the page."""
    box = Image.eval(image, lambda v: 255 - v).getbbox()
    assert box is not None
    return box[0], box[2]


GEOMETRY = PageGeometry.of("fine", "letter")
MARGIN = 102  # half an inch at 204 dpi


def test_a_hebrew_line_is_aligned_to_the_right_margin() -> None:
    (page,) = text_pages("שלום עולם, חשבונית 42", GEOMETRY)
    left, right = ink_columns(page)
    assert right > GEOMETRY.width - MARGIN - 10
    assert left > GEOMETRY.width // 2


def test_a_latin_line_with_a_hebrew_word_stays_left_to_right() -> None:
    (page,) = text_pages("Invoice for שלום, number 42", GEOMETRY)
    left, right = ink_columns(page)
    assert left < MARGIN + 10
    assert right < GEOMETRY.width // 2


def test_chinese_is_drawn_on_the_grid_two_cells_per_character() -> None:
    latin, chinese = (ink_columns(next(text_pages(t, GEOMETRY))) for t in ("x" * 40, "中" * 20))
    assert abs(chinese[1] - latin[1]) < 20  # 20 wide characters end where 40 narrow ones do


def test_a_text_past_the_exact_budget_is_estimated_in_proportion() -> None:
    page = ("x" * 90 + "\n") * 60
    # A uniform text: at least the real count (so the page limit holds), and within 1 %.
    assert 500 <= text_document(page * 500, "big.txt").pages <= 505


@pytest.mark.parametrize(
    "text",
    [
        "\u0301 a line starting with a combining mark",
        "\ufeffa byte order mark, \u200ba zero width space",
        "\u202eright-to-left override\u202c and \u200f marks",
        "\U000e0001 a tag character no font has",
        "\u0300" * 200,
    ],
)
def test_marks_and_format_characters_anywhere_render(text: str) -> None:
    assert rendered_pages(text) == text_document(text, "t.txt").pages


def test_random_code_points_of_every_plane_render() -> None:
    rng = random.Random(11)
    for _ in range(20):
        points = [rng.randrange(0x20, 0x3000) for _ in range(40)]
        points += [rng.randrange(0x110000) for _ in range(20)] + [0x5D0, 0x627, 0x4E2D, 0x20]
        text = "".join(chr(rng.choice(points)) for _ in range(400))
        text = "".join(c for c in text if not 0xD800 <= ord(c) < 0xE000)  # no lone surrogates
        assert len(list(text_pages(text, GEOMETRY))) >= 1
