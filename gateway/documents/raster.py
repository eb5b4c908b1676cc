"""Fax page geometry, fitting, binarization and page chop: grey pixels in, bilevel pages out.

Every renderer (PDF, image, text) produces a grey ``L`` image already on the fax grid (1728 px
wide, the page's length in rows at the target line density); this module turns it into the
bilevel "ink mask" the TIFF writer encodes. Only Pillow's C paths are used (``point``, ``reduce``,
``convert``, filters): a Python loop over 3.7 M pixels per page would cost seconds.

Polarity: a bilevel page here is a mode ``"1"`` image whose *set* bits are black ink. That is the
bit order of a MinIsWhite fax TIFF, so the encoder writes it unchanged (Pillow would otherwise
invert a mode "1" image pixel by pixel in Python to honour ``PhotometricInterpretation=0``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Literal

from PIL import Image, ImageChops, ImageFilter

FAX_WIDTH = 1728
X_DPI = 204
Y_DPI = {"fine": 196, "standard": 98}
# Physical paper lengths in inches; the 1728 px scan line (8.47 in) serves both papers.
PAPER_LENGTH_IN = {"letter": 11.0, "a4": 297 / 25.4}
PAPER_WIDTH_IN = {"letter": 8.5, "a4": 210 / 25.4}

# A pixel counts as "mid-tone" between these grey levels (after paper-white normalisation).
_MID_LO, _MID_HI = 48, 208
# A 32 px block is a photograph when this share of its pixels is mid-tone. Anti-aliased text
# edges stay far below it (thin glyph edges are ~10-20 % of a text block); photographs, even
# dark or light ones, are well above.
_PHOTO_BLOCK = 32
_PHOTO_SHARE = 0.40
# Grey level (0 black .. 255 white) under which a pixel of a text/line-art page is ink. Above the
# middle on purpose: it keeps the thin anti-aliased strokes of small type whole.
_TEXT_THRESHOLD = 160


@dataclass(frozen=True)
class PageGeometry:
    """The pixel grid of one fax page: fixed width, resolution and paper length."""

    width: int
    rows: int
    x_dpi: int
    y_dpi: int

    @classmethod
    def of(
        cls, resolution: Literal["fine", "standard"], paper: Literal["letter", "a4"]
    ) -> PageGeometry:
        y_dpi = Y_DPI[resolution]
        return cls(FAX_WIDTH, round(PAPER_LENGTH_IN[paper] * y_dpi), X_DPI, y_dpi)

    @property
    def width_in(self) -> float:
        return self.width / self.x_dpi

    @property
    def length_in(self) -> float:
        return self.rows / self.y_dpi


@dataclass(frozen=True)
class Placement:
    """Where a source page of ``src_w_in`` by ``src_h_in`` inches lands on the fax grid."""

    left: int
    top: int
    width: int
    height: int
    rotate: bool  # landscape source turned a quarter turn to portrait


def place(
    geometry: PageGeometry, src_w_in: float, src_h_in: float, *, enlarge: bool = True
) -> Placement:
    """Fit a page inside the fax page: aspect kept, centred, rotated if it is landscape.

    ``enlarge=False`` keeps small images (with a known DPI) at their physical size instead of
    blowing them up to the whole page.
    """
    rotate = src_w_in > src_h_in * 1.02
    if rotate:
        src_w_in, src_h_in = src_h_in, src_w_in
    scale = min(geometry.width_in / src_w_in, geometry.length_in / src_h_in)
    if not enlarge:
        scale = min(scale, 1.0)
    width = max(1, min(geometry.width, round(src_w_in * scale * geometry.x_dpi)))
    height = max(1, min(geometry.rows, round(src_h_in * scale * geometry.y_dpi)))
    return Placement(
        (geometry.width - width) // 2, (geometry.rows - height) // 2, width, height, rotate
    )


def _lut(fn: object) -> list[int]:
    assert callable(fn)
    return [int(fn(v)) for v in range(256)]


# Ink masks (255 = black ink) from grey levels; built once per process.
_TEXT_INK = _lut(lambda v: 255 if v < _TEXT_THRESHOLD else 0)
_MIDTONE = _lut(lambda v: 255 if _MID_LO <= v <= _MID_HI else 0)
_PHOTO_BLOCK_LUT = _lut(lambda v: 255 if v >= _PHOTO_SHARE * 255 else 0)


def _whitening(hist: list[int]) -> list[int] | None:
    """A LUT stretching levels so the paper (the brightest common grey) becomes pure white.

    Scans and photocopies have grey, noisy paper; without this their background would count as
    mid-tone (and be dithered into thousands of costly specks) or as ink. ``None`` when the
    paper is already white (or there is no clear paper level).
    """
    total = sum(hist)
    # Paper = the most common level among the brighter half; only stretch if it is clearly grey.
    paper = max(range(128, 256), key=hist.__getitem__)
    if paper >= 245 or hist[paper] * 20 < total:
        return None
    white_from = max(paper - 12, 129)  # the noise around the paper level goes white too
    return _lut(lambda v: 255 if v >= white_from else v * 255 // white_from)


@lru_cache(maxsize=4)
def _screen(size: tuple[int, int]) -> Image.Image:
    """A clustered-dot threshold screen tiled to ``size``.

    Clustered dots (unlike error diffusion's scattered specks) give long runs, which CCITT
    run-length coding compresses well, and survive the fax line's smearing; ~51 lines/inch at
    204 dpi is a classic fax/newsprint screen.
    """
    cell = [
        [24, 10, 12, 26, 35, 47, 49, 37],
        [8, 0, 2, 14, 45, 59, 61, 51],
        [22, 6, 4, 16, 43, 57, 63, 53],
        [30, 20, 18, 28, 33, 41, 55, 39],
        [34, 46, 48, 36, 25, 11, 13, 27],
        [44, 58, 60, 50, 9, 1, 3, 15],
        [42, 56, 62, 52, 23, 7, 5, 17],
        [32, 40, 54, 38, 31, 21, 19, 29],
    ]
    tile = Image.new("L", (8, 8))
    tile.putdata([int((v + 0.5) * 256 / 64) for row in cell for v in row])
    screen = Image.new("L", size)
    for y in range(0, size[1], 8):
        for x in range(0, size[0], 8):
            screen.paste(tile, (x, y))
    return screen


def _halftone(grey: Image.Image) -> Image.Image:
    """Ordered (clustered-dot) dither to an ink mask: ink where grey < screen threshold."""
    # subtract(screen, grey) > 0 exactly where the pixel is darker than its threshold.
    return ImageChops.subtract(_screen(grey.size), grey).point(_lut(lambda v: 255 if v else 0), "1")


def binarize(grey: Image.Image) -> Image.Image:
    """Grey page → ink mask: a sharp threshold for text and line art, halftone for photographs.

    The choice is made per 32 px block, so a page mixing text and a photograph gets a crisp
    text and a dithered picture. A mode "1" page (white paper) is already bilevel.
    """
    if grey.mode == "1":
        return ImageChops.invert(grey)  # already bilevel (white paper): the ink is the black
    # The page is analysed on every other pixel of every other row (a quarter of the pixels;
    # histogram and block shares are statistics the sample estimates well), the ink itself
    # is thresholded at full resolution.
    sample = grey.resize(
        (max(1, grey.width // 2), max(1, grey.height // 2)), Image.Resampling.NEAREST
    )
    hist = sample.histogram()
    whitening = _whitening(hist)
    if whitening is not None:
        grey, sample = grey.point(whitening), sample.point(whitening)
        hist = sample.histogram()
    ink = grey.point(_TEXT_INK, "1")
    if sum(hist[_MID_LO : _MID_HI + 1]) * 200 < sample.width * sample.height:
        return ink  # under 0.5 % mid-tone pixels: text or line art only
    mid = sample.point(_MIDTONE)
    blocks = mid.reduce(_PHOTO_BLOCK // 2).point(_PHOTO_BLOCK_LUT)
    # Drop lone blocks (a dense heading is not a photograph), then grow the rest by a block so
    # the photograph's soft edges are dithered too.
    blocks = blocks.filter(ImageFilter.MinFilter(3)).filter(ImageFilter.MaxFilter(5))
    box = blocks.getbbox()
    if box is None:
        return ink
    mask = blocks.resize(
        (blocks.width * _PHOTO_BLOCK, blocks.height * _PHOTO_BLOCK), Image.Resampling.NEAREST
    ).crop((0, 0, grey.width, grey.height))
    x0, y0, x1, y1 = (v * _PHOTO_BLOCK for v in box)
    region = (x0, y0, min(x1, grey.width), min(y1, grey.height))
    ink.paste(_halftone(grey.crop(region)), region[:2], mask.crop(region))
    return ink


def chop_would_cut(page: Image.Image, geometry: PageGeometry, threshold_in: float = 3.0) -> bool:
    """Whether ``chop`` would shorten this bilevel page (mode "1", white paper), cheaply."""
    blank_rows = math.ceil(threshold_in * geometry.y_dpi)
    if page.height < blank_rows:
        return False
    tail = page.crop((0, page.height - blank_rows, page.width, page.height))
    return bool(tail.getextrema()[0])  # no black pixel in the last threshold_in inches


def chop(ink: Image.Image, geometry: PageGeometry, threshold_in: float = 3.0) -> Image.Image:
    """Cut trailing blank rows when at least ``threshold_in`` inches are blank (HylaFAX PageChop).

    A quarter inch of margin is kept under the last ink so the page does not end abruptly.
    """
    box = ink.getbbox()
    last_ink = box[3] if box else 0
    blank = ink.height - last_ink
    if blank < threshold_in * geometry.y_dpi:
        return ink
    keep = min(ink.height, max(last_ink + geometry.y_dpi // 4, geometry.y_dpi))
    return ink.crop((0, 0, ink.width, keep))


# Bilevel sources within this factor of the fax grid (200 x 200 dpi scans, 203 x 196 fax
# pages) are resampled by picking the nearest pixel: averaging and thresholding again would cost
# far more and, at so close a scale, mostly only shift stroke edges by a pixel.
_NEAREST_BILEVEL = 1.1


def fit_bilevel(image: Image.Image, geometry: PageGeometry, placement: Placement) -> Image.Image:
    """Place a bilevel (mode "1", white paper) source on a white fax page at ``placement``.

    The page stays mode "1" (``binarize`` then only inverts it into an ink mask) when the scale
    is near 1 in both directions (see ``_NEAREST_BILEVEL``); otherwise it is resampled as grey
    by ``fit_grey`` like any other image.
    """
    assert image.mode == "1"
    if placement.rotate:
        image = image.transpose(Image.Transpose.ROTATE_90)
    size = (placement.width, placement.height)
    x_scale, y_scale = size[0] / image.width, size[1] / image.height
    if not all(1 / _NEAREST_BILEVEL <= s <= _NEAREST_BILEVEL for s in (x_scale, y_scale)):
        return fit_grey(image.convert("L"), geometry, replace(placement, rotate=False))
    if image.size != size:
        image = image.resize(size, Image.Resampling.NEAREST)
    page = Image.new("1", (geometry.width, geometry.rows), 1)
    page.paste(image, (placement.left, placement.top))
    return page


# Up to this enlargement bilinear interpolation replaces bicubic (see ``fit_grey``).
_BILINEAR_GROWTH = 1.5


def fit_grey(image: Image.Image, geometry: PageGeometry, placement: Placement) -> Image.Image:
    """Resample a grey source image onto a white fax page at ``placement``."""
    if placement.rotate:
        image = image.transpose(Image.Transpose.ROTATE_90)
    size = (placement.width, placement.height)
    if image.size != size:
        # Box filtering averages when shrinking (no aliasing of fine print); bicubic when growing
        # a lot, bilinear (half the cost, all but the same page once binarized) growing a little.
        shrinking = image.width >= size[0] and image.height >= size[1]
        growth = max(size[0] / image.width, size[1] / image.height)
        image = image.resize(
            size,
            Image.Resampling.BOX
            if shrinking
            else Image.Resampling.BILINEAR
            if growth <= _BILINEAR_GROWTH
            else Image.Resampling.BICUBIC,
            reducing_gap=3.0,
        )
    page = Image.new("L", (geometry.width, geometry.rows), 255)
    page.paste(image, (placement.left, placement.top))
    return page
