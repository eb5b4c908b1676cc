"""Images (TIFF, PNG, JPEG, GIF; every frame a page) → grey fax pages with Pillow.

Size limits are checked from the header, before any pixel is decoded, so a 50,000 x 50,000 PNG
costs a few bytes of parsing; PNG and TIFF structure is checked as at intake (``structure``), so
a file accepted before those checks existed fails with the same specific reason. EXIF
orientation is applied, transparency is laid on white paper, and each frame is placed at its
physical size when it declares a believable resolution (a fax TIFF at 204x98, a 300 dpi scan),
or fitted to the page when it does not (a phone photo).
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import Any

from PIL import Image, ImageOps

from gateway.documents import tiffout
from gateway.documents.imaging import UNREADABLE, open_image, unreadable_reason
from gateway.documents.raster import (
    PageGeometry,
    Placement,
    chop_would_cut,
    fit_bilevel,
    fit_grey,
    place,
)
from gateway.documents.structure import check_png, check_size, tiff_pages
from gateway.documents.tiffout import Compression, EncodedPage
from gateway.errors import DocumentError, TooManyPagesError
from gateway.models import DocumentKind

# Resolutions outside this range are defaults or nonsense (1 dpi, 72 dpi screenshots of
# photos are handled by the "fit" rule anyway); inside it the image means its physical size.
_MIN_DPI, _MAX_DPI = 60.0, 2400.0


def image_pages(
    data: bytes,
    kind: DocumentKind,
    filename: str,
    geometry: PageGeometry,
    page_budget: int,
    max_pixels: int,
    *,
    reuse: Compression | None = None,
    page_chop: bool = True,
) -> Iterator[Image.Image | EncodedPage]:
    """Yield one grey page per frame; DocumentError/TooManyPagesError on hostile input.

    With ``reuse`` (the output's compression), a TIFF frame that already is a fax page of
    exactly this geometry and encoding (one strip, MinIsWhite, nothing for page chop to cut) is
    yielded as its encoded strip, unchanged: it is decoded (to check it) but not re-encoded.
    """
    pages = None
    if kind is DocumentKind.PNG:
        check_png(data, filename, max_pixels)
    elif kind is DocumentKind.TIFF:
        pages = tiff_pages(data, filename, page_budget, max_pixels)
        if pages > page_budget:
            raise TooManyPagesError(f"{filename}: more than the {page_budget} pages left")
    try:
        image = open_image(data, kind)
    except UNREADABLE as exc:
        raise DocumentError(filename, unreadable_reason(exc, kind)) from exc
    with image:
        frames = pages or int(getattr(image, "n_frames", 1))
        if frames > page_budget:
            raise TooManyPagesError(f"{filename}: {frames} pages, more than the {page_budget} left")
        strips = _fax_strips(data, frames) if reuse and kind is DocumentKind.TIFF else []
        for index in range(frames):
            where = f"page {index + 1}: " if frames > 1 else ""
            try:
                image.seek(index)
                check_size(*image.size, filename, max_pixels, where)
                upright, at = _placement(image, geometry)
                strip = strips[index] if strips else None
                if (
                    reuse
                    and strip is not None
                    and tiffout.reusable(strip, geometry.x_dpi, geometry.y_dpi, reuse)
                    and _reusable(image, at, geometry, page_chop)
                ):
                    g = geometry
                    page: Image.Image | EncodedPage = EncodedPage(
                        g.width, g.rows, g.x_dpi, g.y_dpi, reuse, strip.data
                    )
                else:
                    page = _to_page(upright, geometry, at)
            except UNREADABLE as exc:
                raise DocumentError(filename, where + unreadable_reason(exc, kind)) from exc
            yield page


def _fax_strips(data: bytes, frames: int) -> list[tiffout.TiffPage]:
    """The pages of a one-strip-per-page CCITT TIFF, or [] for any other TIFF."""
    try:
        pages = tiffout.read_pages(data)
    except (ValueError, struct.error, IndexError, KeyError):
        return []
    return pages if len(pages) == frames else []


def _reusable(frame: Image.Image, at: Placement, geometry: PageGeometry, page_chop: bool) -> bool:
    """A bilevel frame that lands on the page pixel for pixel (and that chop leaves whole)."""
    if frame.mode != "1" or frame.size != (geometry.width, geometry.rows):
        return False
    if frame.getexif().get(0x0112, 1) != 1:  # to be turned or mirrored
        return False
    if at != Placement(0, 0, geometry.width, geometry.rows, False):
        return False
    frame.load()  # a corrupt strip fails here as it would when rendered
    return not (page_chop and chop_would_cut(frame, geometry))


def _physical_size(image: Image.Image) -> tuple[float, float, bool]:
    """Size in inches, and whether it is real (from the file's resolution) or assumed."""
    dpi: Any = image.info.get("dpi")
    try:
        x_dpi, y_dpi = float(dpi[0]), float(dpi[1])
    except (TypeError, ValueError, IndexError):
        x_dpi = y_dpi = 0.0
    if _MIN_DPI <= x_dpi <= _MAX_DPI and _MIN_DPI <= y_dpi <= _MAX_DPI:
        return image.width / x_dpi, image.height / y_dpi, True
    return image.width / 200, image.height / 200, False


def _grey(image: Image.Image) -> Image.Image:
    """Any mode → ``L`` on white paper (transparent areas become paper, not black)."""
    if image.mode in ("L", "1"):
        return image.convert("L")
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        return ImageOps.autocontrast(image.convert("I").point(lambda v: v / 256).convert("L"))
    if (image.mode == "P" and "transparency" in image.info) or image.mode in ("LA", "PA", "RGBA"):
        rgba = image.convert("RGBA")
        paper = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(paper, rgba).convert("L")
    return image.convert("L")


def _placement(frame: Image.Image, geometry: PageGeometry) -> tuple[Image.Image, Placement]:
    """The frame turned upright (EXIF orientation) and where it lands on the page."""
    width_in, height_in, physical = _physical_size(frame)
    # exif_transpose swaps the axes for the 90-degree orientations; so must the size.
    orientation = frame.getexif().get(0x0112, 1)
    upright = ImageOps.exif_transpose(frame) or frame
    if orientation in (5, 6, 7, 8):
        width_in, height_in = height_in, width_in
    return upright, place(geometry, width_in, height_in, enlarge=not physical)


def _to_page(upright: Image.Image, geometry: PageGeometry, at: Placement) -> Image.Image:
    if upright.mode == "1":
        return fit_bilevel(upright, geometry, at)
    return fit_grey(_grey(upright), geometry, at)
