"""Plain text and cover pages → grey fax pages, in any script the gateway has fonts for.

Text is laid out on a fixed grid of cells (10 pt type, 12 pt lines, half-inch margins; see
``text_layout``), and each character is drawn in its cell with the first font of the chain that
has its glyph (``fonts``): the bundled DejaVu Sans Mono for Latin, system fonts for the rest. A
line holding right-to-left characters (Hebrew, Arabic) is drawn whole by raqm, which applies the
Unicode bidirectional algorithm (so Latin words and numbers inside it keep their order) and
Arabic shaping; its base direction is that of its first strong character, and a right-to-left
line is aligned to the right margin. Characters no font has are drawn as "?" (intake refuses
text with more than a few of them). Glyphs are drawn anti-aliased at 204 dpi in both
directions (FreeType has no anisotropic scaling) and the page is then resampled to the target
line density, so the binarizer sees smooth strokes.
"""

from __future__ import annotations

import io
import itertools
import unicodedata
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache

from PIL import Image, ImageDraw, ImageFont

from gateway.documents.fonts import BUNDLED, FontChain, FontFace, bundled_font_bytes, font_chain
from gateway.documents.raster import PageGeometry
from gateway.documents.render_options import CoverPage
from gateway.documents.text_layout import cells, layout

FONT_PT = 10
LINE_PT = 12
MARGIN_IN = 0.5
UNDRAWABLE = "?"
_RTL_CLASSES = frozenset({"R", "AL", "RLE", "RLO", "RLI"})


@lru_cache(maxsize=64)
def _font(face: FontFace, size_px: int) -> ImageFont.FreeTypeFont:
    if face.path == BUNDLED:
        # From bytes, so the font also loads from a zipped package; FreeType keeps its copy.
        return ImageFont.truetype(io.BytesIO(bundled_font_bytes()), size_px)
    return ImageFont.truetype(face.path, size_px, index=face.index)


def _grid_font(size_px: int) -> ImageFont.FreeTypeFont:
    return _font(FontFace(BUNDLED), size_px)


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
        return max(20, int(usable // _grid_font(self.px(FONT_PT)).getlength("M")))

    @property
    def lines(self) -> int:
        usable = self.height_px - 2 * self.px(MARGIN_IN * 72)
        return max(10, usable // self.px(LINE_PT))


def _drawable(text: str, chain: FontChain) -> str:
    return "".join(
        c if c.isspace() or cells(c) == 0 or chain.can_draw(c) else UNDRAWABLE for c in text
    )


def _clusters(text: str) -> Iterator[str]:
    """Base characters with the combining marks that follow them."""
    cluster = ""
    for char in text:
        if cluster and cells(char) == 0:
            cluster += char
            continue
        if cluster:
            yield cluster
        cluster = char
    if cluster:
        yield cluster


class _LineDrawer:
    def __init__(self, draw: ImageDraw.ImageDraw, chain: FontChain, grid: _Grid) -> None:
        self.draw = draw
        self.chain = chain
        self.grid = grid

    def line(self, text: str, size_pt: int, y: int) -> None:
        text = _drawable(text, self.chain)
        if not text.strip():
            return
        size_px = self.grid.px(size_pt)
        baseline = y + _grid_font(size_px).getmetrics()[0]
        if any(unicodedata.bidirectional(c) in _RTL_CLASSES for c in text):
            self._bidi(text, size_px, baseline)
        else:
            self._cells(text, size_px, baseline)

    def _cells(self, text: str, size_px: int, baseline: int) -> None:
        """Left to right on the grid: runs of the grid font as strings, others per cell."""
        left = self.grid.px(MARGIN_IN * 72)
        cell = _grid_font(size_px).getlength("M")
        column, run, run_column = 0, "", 0
        for cluster in _clusters(text):
            # A mark or format character no font has (alone at the line's start) draws nothing.
            face = 0 if cluster.isspace() else (self.chain.face_of(cluster[0]) or 0)
            if face == 0:
                run_column = run_column if run else column
                run += cluster
            else:
                self._text(run, FontFace(BUNDLED), size_px, (left + run_column * cell, baseline))
                run = ""
                at = (left + column * cell, baseline)
                self._text(cluster, self.chain.faces[face], size_px, at)
            column += sum(cells(c) for c in cluster)
        self._text(run, FontFace(BUNDLED), size_px, (left + run_column * cell, baseline))

    def _bidi(self, text: str, size_px: int, baseline: int) -> None:
        """The whole line by raqm (bidi reordering, shaping) in the first face that has all of
        its characters; if none has, by font runs placed in bidi order (``_font_runs``)."""
        chars = [c for c in text if not c.isspace() and cells(c)]
        covering = [
            i for i, cov in enumerate(self.chain.coverage) if all(ord(c) in cov for c in chars)
        ]
        rtl = _base_rtl(text)
        runs = [_Run(covering[0], text, rtl, 0, 0)] if covering else self._font_runs(text, rtl)
        space = _grid_font(size_px).getlength(" ")
        fonts = [_font(self.chain.faces[run.face], size_px) for run in runs]
        lengths = [
            self.draw.textlength(run.text, font, direction=run.direction)
            for run, font in zip(runs, fonts, strict=True)
        ]
        # The spaces between two runs are those after the logically first of them.
        gaps = [0.0] + [
            space * min(a, b, key=lambda r: r.order).spaces for a, b in itertools.pairwise(runs)
        ]
        margin = self.grid.px(MARGIN_IN * 72)
        x: float = self.grid.width_px - margin - sum(lengths) - sum(gaps) if rtl else margin
        for run, font, length, gap in zip(runs, fonts, lengths, gaps, strict=True):
            x += gap
            self.draw.text(
                (x, baseline), run.text, font=font, fill=0, anchor="ls", direction=run.direction
            )
            x += length

    def _font_runs(self, text: str, rtl: bool) -> list[_Run]:
        """Runs of one face each, in visual order left to right, each with its direction.

        A simplification of the bidi algorithm at the level of runs: a run is right to left if
        it holds a right-to-left character; consecutive runs of one direction keep their order
        in that direction, and these groups are laid out in the line's base direction. Spaces
        and marks go with the run before them."""
        pieces: list[tuple[int, str]] = []
        for cluster in _clusters(text):
            drawn = not cluster.isspace() and cells(cluster[0]) > 0
            face = self.chain.face_of(cluster[0]) if drawn else None
            if pieces and (face is None or face == pieces[-1][0]):
                pieces[-1] = (pieces[-1][0], pieces[-1][1] + cluster)
            else:
                pieces.append((face or 0, cluster))
        groups: list[list[_Run]] = []
        for order, (face, piece) in enumerate(pieces):
            run_rtl = any(unicodedata.bidirectional(c) in _RTL_CLASSES for c in piece)
            stripped = piece.rstrip()
            run = _Run(face, stripped, run_rtl, order, len(piece) - len(stripped))
            if groups and groups[-1][0].rtl == run_rtl:
                groups[-1].append(run)
            else:
                groups.append([run])
        ordered = [group[::-1] if group[0].rtl else group for group in groups]
        return [run for group in (ordered[::-1] if rtl else ordered) for run in group]

    def _text(self, text: str, face: FontFace, size_px: int, at: tuple[float, int]) -> None:
        if text.strip():
            self.draw.text(at, text, font=_font(face, size_px), fill=0, anchor="ls")


@dataclass(frozen=True)
class _Run:
    """Characters of one line drawn with one face in one direction; ``order`` is its place in
    the line's logical order, ``spaces`` how many spaces followed it there."""

    face: int
    text: str
    rtl: bool
    order: int
    spaces: int

    @property
    def direction(self) -> str:
        return "rtl" if self.rtl else "ltr"


def _base_rtl(text: str) -> bool:
    """The paragraph direction by the first strong character (Unicode bidi rules P2, P3)."""
    for char in text:
        kind = unicodedata.bidirectional(char)
        if kind == "L":
            return False
        if kind in ("R", "AL"):
            return True
    return False


def _draw(
    geometry: PageGeometry, grid: _Grid, lines: Sequence[tuple[str, int]], chain: FontChain
) -> Image.Image:
    """Draw (text, size in pt) lines top-down from the margin; return the page on the fax grid."""
    canvas = Image.new("L", (grid.width_px, grid.height_px), 255)
    drawer = _LineDrawer(ImageDraw.Draw(canvas), chain, grid)
    y = grid.px(MARGIN_IN * 72)
    for text, size_pt in lines:
        drawer.line(text, size_pt, y)
        y += grid.px(size_pt * LINE_PT / FONT_PT)
    if canvas.height == geometry.rows:
        return canvas
    return canvas.resize((geometry.width, geometry.rows), Image.Resampling.BOX)


def text_pages(
    text: str, geometry: PageGeometry, fonts: Sequence[str] = ()
) -> Iterator[Image.Image]:
    """Yield grey pages for a plain-text document; ``fonts`` are configured font files."""
    grid = _Grid.of(geometry)
    chain = font_chain(fonts)
    for page in layout(text, grid.columns, grid.lines):
        yield _draw(geometry, grid, [(line, FONT_PT) for line in page], chain)


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
    cover: CoverPage, geometry: PageGeometry, total_pages: int, fonts: Sequence[str] = ()
) -> Iterator[Image.Image]:
    """Yield the cover: title, fields and page count, then the body text (more pages if long)."""
    grid = _Grid.of(geometry)
    chain = font_chain(fonts)
    body = layout(cover.body, grid.columns, grid.lines, _HEADER_LINES) if cover.body else [[]]
    for number, page in enumerate(body):
        head = _cover_fields(cover, total_pages) if number == 0 else []
        yield _draw(geometry, grid, head + [(line, FONT_PT) for line in page], chain)
