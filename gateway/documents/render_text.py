"""Plain text and cover pages → grey fax pages, drawn with the bundled DejaVu Sans Mono.

Text is laid out on a fixed grid (10 pt type, 12 pt lines, half-inch margins): tabs expanded to
8 columns, long lines wrapped at spaces, form feeds start a new page. Glyphs are drawn
anti-aliased at 204 dpi in both directions (FreeType has no anisotropic scaling) and the page is
then resampled to the target line density, so the binarizer sees smooth strokes.
"""

from __future__ import annotations

import io
import re
import textwrap
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

from PIL import Image, ImageDraw, ImageFont

from gateway.documents.raster import PageGeometry
from gateway.documents.render_options import CoverPage

FONT_PT = 10
LINE_PT = 12
MARGIN_IN = 0.5
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\x7f]")


@lru_cache(maxsize=8)
def _font(size_px: int) -> ImageFont.FreeTypeFont:
    font_file = resources.files("gateway.documents").joinpath("fonts/DejaVuSansMono.ttf")
    # From bytes, so the font also loads from a zipped package; FreeType keeps its own copy.
    return ImageFont.truetype(io.BytesIO(font_file.read_bytes()), size_px)


@dataclass(frozen=True)
class _Grid:
    """The text grid of one page at a square ``dpi`` (the fax's horizontal resolution)."""

    dpi: int
    width_px: int
    height_px: int

    @classmethod
    def of(cls, geometry: PageGeometry) -> _Grid:
        return cls(geometry.x_dpi, geometry.width, round(geometry.length_in * geometry.x_dpi))

    def px(self, points: float) -> int:
        return round(points * self.dpi / 72)

    @property
    def columns(self) -> int:
        usable = self.width_px - 2 * self.px(MARGIN_IN * 72)
        return max(20, int(usable // _font(self.px(FONT_PT)).getlength("M")))

    @property
    def lines(self) -> int:
        usable = self.height_px - 2 * self.px(MARGIN_IN * 72)
        return max(10, usable // self.px(LINE_PT))


def layout(
    text: str, columns: int, lines_per_page: int, first_page_lines: int = 0
) -> list[list[str]]:
    """Split text into pages of wrapped lines; ``first_page_lines`` reserves room on page one."""
    text = _CONTROL.sub(" ", text.replace("\r\n", "\n").replace("\r", "\n"))
    wrapper = textwrap.TextWrapper(
        width=columns, expand_tabs=False, replace_whitespace=False, break_on_hyphens=False
    )
    pages: list[list[str]] = []
    for chunk in text.split("\f"):
        page: list[str] = []
        capacity = lines_per_page - (first_page_lines if not pages else 0)
        for raw in chunk.split("\n"):
            for line in wrapper.wrap(raw.expandtabs(8)) or [""]:
                if len(page) >= capacity:
                    pages.append(page)
                    page, capacity = [], lines_per_page
                page.append(line)
        while page and not page[-1].strip():
            page.pop()  # trailing blank lines would only become chopped blank paper
        pages.append(page)
    return pages


def _draw(geometry: PageGeometry, grid: _Grid, lines: Sequence[tuple[str, int]]) -> Image.Image:
    """Draw (text, size in pt) lines top-down from the margin; return the page on the fax grid."""
    canvas = Image.new("L", (grid.width_px, grid.height_px), 255)
    draw = ImageDraw.Draw(canvas)
    x = y = grid.px(MARGIN_IN * 72)
    for text, size_pt in lines:
        if text:
            draw.text((x, y), text, font=_font(grid.px(size_pt)), fill=0)
        y += grid.px(size_pt * LINE_PT / FONT_PT)
    if canvas.height == geometry.rows:
        return canvas
    return canvas.resize((geometry.width, geometry.rows), Image.Resampling.BOX)


def text_pages(text: str, geometry: PageGeometry) -> Iterator[Image.Image]:
    """Yield grey pages for a plain-text document."""
    grid = _Grid.of(geometry)
    for page in layout(text, grid.columns, grid.lines):
        yield _draw(geometry, grid, [(line, FONT_PT) for line in page])


def count_text_pages(text: str, geometry: PageGeometry) -> int:
    grid = _Grid.of(geometry)
    return len(layout(text, grid.columns, grid.lines))


_TITLE_PT = 28
_HEADER_LINES = 14  # grid lines taken by the title and the field block on the first page


def _cover_fields(cover: CoverPage, total_pages: int) -> list[tuple[str, int]]:
    def who(name: str | None, number: str | None) -> str:
        return " ".join(
            part for part in (name, f"<{number}>" if number and name else number) if part
        )

    fields = [
        ("Date:", cover.sent_at.strftime("%Y-%m-%d %H:%M %Z").strip()),
        ("To:", who(cover.to_name, cover.to_number)),
        ("From:", who(cover.from_name, cover.from_number) or "-"),
        ("Subject:", cover.subject or "-"),
        ("Pages:", f"{total_pages} including this cover page"),
    ]
    lines: list[tuple[str, int]] = [("FAX", _TITLE_PT), ("", FONT_PT)]
    lines += [(f"{label:<9} {value}", 12) for label, value in fields]
    lines += [("", FONT_PT), ("_" * 60, FONT_PT), ("", FONT_PT)]
    return lines


def cover_page_count(cover: CoverPage, geometry: PageGeometry) -> int:
    grid = _Grid.of(geometry)
    if not cover.body:
        return 1
    return len(layout(cover.body, grid.columns, grid.lines, _HEADER_LINES))


def cover_pages(
    cover: CoverPage, geometry: PageGeometry, total_pages: int
) -> Iterator[Image.Image]:
    """Yield the cover: title, fields and page count, then the body text (more pages if long)."""
    grid = _Grid.of(geometry)
    body = layout(cover.body, grid.columns, grid.lines, _HEADER_LINES) if cover.body else [[]]
    for number, page in enumerate(body):
        head = _cover_fields(cover, total_pages) if number == 0 else []
        yield _draw(geometry, grid, head + [(line, FONT_PT) for line in page])
