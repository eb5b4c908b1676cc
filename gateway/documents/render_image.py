"""Images (TIFF, PNG, JPEG, GIF; every frame a page) → grey fax pages with Pillow.

Size limits are checked from the header, before any pixel is decoded, so a 50,000 x 50,000 PNG
costs a few bytes of parsing. EXIF orientation is applied, transparency is laid on white paper,
and each frame is placed at its physical size when it declares a believable resolution (a fax
TIFF at 204x98, a 300 dpi scan), or fitted to the page when it does not (a phone photo).
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Iterator
from typing import Any

from PIL import Image, ImageOps

from gateway.documents.raster import PageGeometry, fit_grey, place
from gateway.errors import DocumentError, TooManyPagesError
from gateway.models import DocumentKind

_PIL_FORMATS = {
    DocumentKind.TIFF: "TIFF",
    DocumentKind.PNG: "PNG",
    DocumentKind.JPEG: "JPEG",
    DocumentKind.GIF: "GIF",
}
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
) -> Iterator[Image.Image]:
    """Yield one grey page per frame; DocumentError/TooManyPagesError on hostile input."""
    # Our own limit is checked before decoding, so Pillow's global bomb warning is redundant
    # (and would be an error under a strict warnings filter).
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            image = Image.open(io.BytesIO(data), formats=[_PIL_FORMATS[kind]])
        except Image.DecompressionBombError as exc:
            # Pillow's own hard stop (twice its global limit) fires on open, before ours.
            raise DocumentError(filename, f"image exceeds {max_pixels} pixels") from exc
        with image:
            frames = getattr(image, "n_frames", 1)
            if frames > page_budget:
                raise TooManyPagesError(
                    f"{filename}: {frames} pages, more than the {page_budget} left"
                )
            for index in range(frames):
                image.seek(index)
                _check_size(image, filename, max_pixels)
                yield _to_page(image, geometry)


def _check_size(image: Image.Image, filename: str, max_pixels: int) -> None:
    width, height = image.size
    if width < 1 or height < 1:
        raise DocumentError(filename, "image has no pixels")
    if width * height > max_pixels:
        raise DocumentError(
            filename, f"image of {width}x{height} pixels exceeds {max_pixels} pixels"
        )


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


def _to_page(frame: Image.Image, geometry: PageGeometry) -> Image.Image:
    width_in, height_in, physical = _physical_size(frame)
    # exif_transpose swaps the axes for the 90-degree orientations; so must the size.
    orientation = frame.getexif().get(0x0112, 1)
    grey = _grey(ImageOps.exif_transpose(frame) or frame)
    if orientation in (5, 6, 7, 8):
        width_in, height_in = height_in, width_in
    at = place(geometry, width_in, height_in, enlarge=not physical)
    return fit_grey(grey, geometry, at)
