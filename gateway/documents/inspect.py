"""Fast checks at SMTP time: what a part really is and how many pages it has, without rendering.

The sender is still connected, so this must answer in milliseconds: headers are read, pixels
are not decoded and PDF pages are counted, not drawn.
"""

from __future__ import annotations

import io
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import pypdf
from PIL import Image, UnidentifiedImageError
from pypdf.errors import PyPdfError

from gateway.errors import DocumentError
from gateway.models import DocumentKind, SourceDocument

_MAGIC: tuple[tuple[bytes, DocumentKind], ...] = (
    (b"%PDF-", DocumentKind.PDF),
    (b"II*\x00", DocumentKind.TIFF),
    (b"MM\x00*", DocumentKind.TIFF),
    (b"\x89PNG\r\n\x1a\n", DocumentKind.PNG),
    (b"\xff\xd8\xff", DocumentKind.JPEG),
    (b"GIF87a", DocumentKind.GIF),
    (b"GIF89a", DocumentKind.GIF),
)
_PIL_FORMATS = {
    DocumentKind.TIFF: "TIFF",
    DocumentKind.PNG: "PNG",
    DocumentKind.JPEG: "JPEG",
    DocumentKind.GIF: "GIF",
}
# What Pillow raises on a damaged, truncated, hostile or unknown image.
_UNREADABLE = (
    UnidentifiedImageError,
    Image.DecompressionBombError,
    Image.DecompressionBombWarning,
    OSError,
    ValueError,
    SyntaxError,
    EOFError,
    RecursionError,
)
# Lines per page and columns of the text renderer at 10 pt on Letter, for an early page estimate.
TEXT_LINES_PER_PAGE = 60
TEXT_COLUMNS = 80


@dataclass(frozen=True)
class InspectLimits:
    max_image_pixels: int = 50_000_000
    max_pages: int = 100


def sniff(data: bytes) -> DocumentKind | None:
    """The document kind by its first bytes (a PDF may start after some junk, as readers allow)."""
    for magic, kind in _MAGIC:
        if data.startswith(magic):
            return kind
    if b"%PDF-" in data[:1024]:
        return DocumentKind.PDF
    return None


def inspect_binary(data: bytes, filename: str, limits: InspectLimits) -> SourceDocument:
    """Identify and validate one binary part; raise DocumentError naming it and saying why."""
    kind = sniff(data)
    if kind is None:
        raise DocumentError(filename, "not a PDF, TIFF, PNG, JPEG or GIF document")
    if kind is DocumentKind.PDF:
        pages = _pdf_pages(data, filename, limits)
    else:
        pages = _image_pages(data, filename, kind, limits)
    return SourceDocument(kind=kind, data=data, filename=filename, pages=pages)


def text_document(text: str, filename: str) -> SourceDocument:
    """A text document with an estimate of its pages (form feeds start a new page)."""
    pages = 0
    for section in text.expandtabs(8).split("\f"):
        rows = section.rstrip("\n").split("\n")
        lines = sum(max(1, -(-len(line) // TEXT_COLUMNS)) for line in rows)
        pages += max(1, -(-lines // TEXT_LINES_PER_PAGE))
    return SourceDocument(
        kind=DocumentKind.TEXT, data=text.encode("utf-8"), filename=filename, pages=pages
    )


def _pdf_pages(data: bytes, filename: str, limits: InspectLimits) -> int:
    # pypdf reports damage by logging and by exceptions (its warnings are only deprecations).
    try:
        reader = pypdf.PdfReader(io.BytesIO(data), strict=False)
        if reader.is_encrypted and not reader.decrypt(""):
            raise DocumentError(filename, "encrypted PDF needs a password")
        pages = len(reader.pages)
    except DocumentError:
        raise
    except (PyPdfError, ValueError, KeyError, TypeError, IndexError, RecursionError) as exc:
        raise DocumentError(filename, f"corrupt PDF ({type(exc).__name__})") from exc
    if pages < 1:
        raise DocumentError(filename, "PDF has no pages")
    return pages


def _image_pages(data: bytes, filename: str, kind: DocumentKind, limits: InspectLimits) -> int:
    try:
        with _bombs_raise():
            with Image.open(io.BytesIO(data), formats=[_PIL_FORMATS[kind]]) as image:
                frames = getattr(image, "n_frames", 1)
                width, height = image.size
                if frames > limits.max_pages:
                    return int(frames)
                for index in range(1, frames):
                    image.seek(index)
                    width, height = max(width, image.size[0]), max(height, image.size[1])
            if kind is DocumentKind.PNG:
                # Chunk checksums, without inflating pixels: catches truncated or damaged files.
                with Image.open(io.BytesIO(data), formats=["PNG"]) as image:
                    image.verify()
    except _UNREADABLE as exc:
        raise DocumentError(filename, f"corrupt or unreadable {kind.value.upper()} image") from exc
    if width < 1 or height < 1:
        raise DocumentError(filename, "image has no pixels")
    if width * height > limits.max_image_pixels:
        raise DocumentError(
            filename, f"image of {width}x{height} pixels exceeds {limits.max_image_pixels} pixels"
        )
    return int(frames)


def image_size(data: bytes) -> tuple[int, int] | None:
    """Width and height from the header, or None if unreadable (used to skip logos)."""
    try:
        with _bombs_raise(), Image.open(io.BytesIO(data)) as image:
            return image.size
    except _UNREADABLE:
        return None


# The warnings filters are process-wide and catch_warnings() is not thread-safe: intake runs
# these checks in several threads at once, so the filter is changed under a lock.
_WARNINGS_LOCK = threading.Lock()


@contextmanager
def _bombs_raise() -> Iterator[None]:
    """Pillow only warns about an image above its pixel limit: make that an error here. Its
    other warnings (a damaged EXIF block, ...) are about files we judge by other means."""
    with _WARNINGS_LOCK, warnings.catch_warnings():
        warnings.filterwarnings("ignore", module=r"PIL\.")
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        yield
