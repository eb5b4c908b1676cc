"""Pillow as this package uses it: which format each kind is, what Pillow raises on a bad
file, and what that means in words a sender can act on.

Pillow's own decompression-bomb check is switched off here, for the whole process: it fires
inside ``Image.open``, before the caller can read the size, so the sender would only learn
"unreadable" about a 30000x30000 image. Our limit is checked on the header before any pixel is
decoded (``structure.check_size``, from ``inspect`` and ``render_image``), and render workers
also run under an address-space limit. Pillow is used nowhere else in the gateway.
"""

from __future__ import annotations

import io
import struct

from PIL import Image, UnidentifiedImageError

from gateway.models import DocumentKind

Image.MAX_IMAGE_PIXELS = None

PIL_FORMATS = {
    DocumentKind.TIFF: "TIFF",
    DocumentKind.PNG: "PNG",
    DocumentKind.JPEG: "JPEG",
    DocumentKind.GIF: "GIF",
}
# What Pillow raises on a damaged, truncated, hostile or unknown image.
UNREADABLE = (
    UnidentifiedImageError,
    OSError,
    ValueError,
    SyntaxError,
    EOFError,
    RecursionError,
    struct.error,
    IndexError,
    KeyError,
    ZeroDivisionError,
)


def open_image(data: bytes, kind: DocumentKind) -> Image.Image:
    return Image.open(io.BytesIO(data), formats=[PIL_FORMATS[kind]])


def unreadable_reason(exc: BaseException, kind: DocumentKind) -> str:
    """Why Pillow could not decode an image, as specifically as its exception tells."""
    text = str(exc)
    if isinstance(exc, OSError) and "truncated" in text.lower():
        return "image data ends early (file truncated)"
    if isinstance(exc, OSError) and "broken data stream" in text:
        return "image data is damaged"
    return f"corrupt or unreadable {kind.value.upper()} image"
