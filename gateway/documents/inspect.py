"""Checks at SMTP time: what a part really is, how many pages it has, and that it can be
decoded, without rendering it.

The sender is still connected, so this must answer quickly and in bounded memory: PDF pages
are counted, not drawn; PNG and TIFF structure is read directly (``structure``); JPEG is
decoded at 1/8 scale; TIFF and GIF frames are decoded one at a time, within a pixel budget
(``InspectLimits``). Whatever fails here is refused with its reason, rather than accepted and
failed at render time.
"""

from __future__ import annotations

import io
import logging
import threading
import warnings
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from types import TracebackType

import pypdf
from PIL import Image
from pypdf.errors import DependencyError

from gateway.documents.fonts import FontChain, font_chain
from gateway.documents.imaging import UNREADABLE, open_image, unreadable_reason
from gateway.documents.raster import PageGeometry
from gateway.documents.render_text import count_text_pages
from gateway.documents.structure import check_png, check_size, tiff_pages
from gateway.documents.text_layout import cells, clean
from gateway.errors import DocumentError, TooManyPagesError, UndrawableTextError
from gateway.models import DocumentKind, SourceDocument

log = logging.getLogger(__name__)

_MAGIC: tuple[tuple[bytes, DocumentKind], ...] = (
    (b"%PDF-", DocumentKind.PDF),
    (b"II*\x00", DocumentKind.TIFF),
    (b"MM\x00*", DocumentKind.TIFF),
    (b"\x89PNG\r\n\x1a\n", DocumentKind.PNG),
    (b"\xff\xd8\xff", DocumentKind.JPEG),
    (b"GIF87a", DocumentKind.GIF),
    (b"GIF89a", DocumentKind.GIF),
)
# Revisions of the standard security handler (2-4: RC4/AES-128, 5-6: AES-256); pypdf takes
# others for one of these and "opens" the file, which PDFium then refuses.
_PDF_REVISIONS = (2, 3, 4, 5, 6)
# The pypdf modules whose failures are about the encryption, not the file's structure.
_PYPDF_CRYPTO = ("pypdf._encryption", "pypdf._crypt_providers")
# Text pages are estimated on Letter in fine mode (A4 holds a few more lines per page).
_ESTIMATE_GEOMETRY = PageGeometry.of("fine", "letter")
UNDRAWABLE_ALLOWED = 3
EXACT_TEXT_CHARS = 1_000_000


@dataclass(frozen=True)
class InspectLimits:
    """``max_image_pixels`` and ``max_pages`` refuse; the decode limits only bound the work:
    a frame above ``decode_frame_pixels`` (or beyond ``decode_pixels`` in all) is checked
    by its structure here and decoded only by the renderer, under its memory limit."""

    max_image_pixels: int = 50_000_000
    max_pages: int = 100
    decode_frame_pixels: int = 16_000_000
    decode_pixels: int = 400_000_000


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


def text_document(text: str, filename: str, fonts: Sequence[str] = ()) -> SourceDocument:
    """A text document with its pages as the renderer lays them out (on Letter, fine), or
    UndrawableTextError when too much of it is in characters no font here has (``fonts``
    are the configured font files)."""
    # Exact up to ~185 dense pages (past any sane page limit); a longer text is judged by that
    # much and its pages scaled from it, so a 25 MB text costs a second, not half a minute.
    sample = text[:EXACT_TEXT_CHARS]
    missing = undrawable(sample, font_chain(fonts))
    if sum(missing.values()) > _undrawable_allowance(sample):
        points = " ".join(f"U+{ord(char):04X}" for char, _ in missing.most_common(5))
        more = " ..." if len(missing) > 5 else ""
        raise UndrawableTextError(
            filename, f"characters no font on this gateway can draw: {points}{more}"
        )
    pages = count_text_pages(sample, _ESTIMATE_GEOMETRY)
    if len(text) > len(sample):
        pages = -(-pages * len(text) // len(sample))
    return SourceDocument(
        kind=DocumentKind.TEXT, data=text.encode("utf-8"), filename=filename, pages=pages
    )


def undrawable(text: str, chain: FontChain) -> Counter[str]:
    """Characters that would be drawn as "?" (spaces, controls and marks need no glyph)."""
    return Counter(
        char
        for char in clean(text)
        if not char.isspace() and cells(char) and not chain.can_draw(char)
    )


def _undrawable_allowance(text: str) -> int:
    """A few stray symbols (an emoji in a signature) become "?"; more than 3, or more than
    1 % of the text, and the fax would not say what the sender wrote."""
    printable = sum(1 for char in text if not char.isspace())
    return max(UNDRAWABLE_ALLOWED, printable // 100)


def _pdf_pages(data: bytes, filename: str, limits: InspectLimits) -> int:
    # pypdf reports damage by logging and by exceptions (its warnings are only deprecations).
    try:
        reader = pypdf.PdfReader(io.BytesIO(data), strict=False)
        if reader.is_encrypted:
            _check_encryption(reader, filename)
        pages = len(reader.pages)
    except DocumentError:
        raise
    except Exception as exc:  # pypdf parses a stranger's bytes: any failure means unreadable
        raise DocumentError(filename, _pdf_reason(exc, filename)) from exc
    if pages < 1:
        raise DocumentError(filename, "PDF has no pages")
    return pages


def _check_encryption(reader: pypdf.PdfReader, filename: str) -> None:
    """Opening tried the empty user password, which permissions-only PDFs have."""
    if not reader.decrypt(""):
        raise DocumentError(filename, "encrypted PDF needs a password")
    encrypt = reader.trailer["/Encrypt"].get_object()
    revision = encrypt.get("/R") if isinstance(encrypt, pypdf.generic.DictionaryObject) else None
    if revision not in _PDF_REVISIONS:
        raise DocumentError(filename, f"PDF encryption not supported (revision R={revision})")


def _pdf_reason(exc: Exception, filename: str) -> str:
    if isinstance(exc, DependencyError):
        # A broken installation, not the sender's fault; the sender still gets a final answer
        # (retrying would not help until the operator acts), and the operator a log line.
        log.error("inspect: cannot decrypt %s: %s (reinstall the gateway)", filename, exc)
        return f"PDF encryption not supported here ({exc})"
    if _raised_in(exc.__traceback__, _PYPDF_CRYPTO):
        detail = str(exc).rstrip("!") or type(exc).__name__
        if isinstance(exc, NotImplementedError):
            return f"PDF encryption not supported ({detail})"
        return f"PDF encryption damaged ({detail})"
    return f"corrupt PDF ({type(exc).__name__})"


def _raised_in(tb: TracebackType | None, modules: tuple[str, ...]) -> bool:
    """Whether the innermost frame of ``tb`` is in one of ``modules`` (or below them)."""
    name = ""
    while tb is not None:
        name = str(tb.tb_frame.f_globals.get("__name__", ""))
        tb = tb.tb_next
    return name.startswith(modules)


def _image_pages(data: bytes, filename: str, kind: DocumentKind, limits: InspectLimits) -> int:
    pages = None
    if kind is DocumentKind.PNG:
        check_png(data, filename, limits.max_image_pixels)
    elif kind is DocumentKind.TIFF:
        pages = tiff_pages(data, filename, limits.max_pages, limits.max_image_pixels)
        if pages > limits.max_pages:
            raise TooManyPagesError(f"{filename}: more than the {limits.max_pages} pages allowed")
    try:
        with _quiet_pillow(), open_image(data, kind) as image:
            frames = pages or int(getattr(image, "n_frames", 1))
            if frames > limits.max_pages:
                return frames  # the caller refuses it, counting the other documents too
            for index in range(frames):  # every frame by its header first: nothing decoded
                image.seek(index)
                check_size(*image.size, filename, limits.max_image_pixels, _page(index, frames))
            _decode(image, kind, frames, filename, limits)
    except DocumentError:
        raise
    except UNREADABLE as exc:
        raise DocumentError(filename, unreadable_reason(exc, kind)) from exc
    return frames


def _decode(
    image: Image.Image, kind: DocumentKind, frames: int, filename: str, limits: InspectLimits
) -> None:
    """Decode what the budget allows, so damaged data is found while the sender waits."""
    budget = limits.decode_pixels
    # check_png has inflated a PNG's first frame; an animated PNG's others are Pillow's to read.
    for index in range(1 if kind is DocumentKind.PNG else 0, frames):
        image.seek(index)
        width, height = image.size
        if kind is DocumentKind.JPEG:
            # DCT scaling: every byte of the scan is still decoded, into 1/64 of the pixels.
            image.draft("L", (max(1, width // 8), max(1, height // 8)))
            width, height = image.size
        cost = width * height
        if cost > limits.decode_frame_pixels:
            continue
        if cost > budget:
            return
        budget -= cost
        try:
            image.load()
        except UNREADABLE as exc:
            where = _page(index, frames)
            raise DocumentError(filename, where + unreadable_reason(exc, kind)) from exc


def _page(index: int, frames: int) -> str:
    return f"page {index + 1}: " if frames > 1 else ""


def image_size(data: bytes) -> tuple[int, int] | None:
    """Width and height from the header, or None if unreadable (used to skip logos)."""
    kind = sniff(data)
    if kind is None or kind is DocumentKind.PDF:
        return None
    try:
        with _quiet_pillow(), open_image(data, kind) as image:
            return image.size
    except UNREADABLE:
        return None


# The warnings filters are process-wide and catch_warnings() is not thread-safe: intake runs
# these checks in several threads at once, so the filter is changed under a lock.
_WARNINGS_LOCK = threading.Lock()


@contextmanager
def _quiet_pillow() -> Iterator[None]:
    """Pillow's warnings (a damaged EXIF block, ...) are about files we judge by other means."""
    with _WARNINGS_LOCK, warnings.catch_warnings():
        warnings.filterwarnings("ignore", module=r"PIL\.")
        yield
