"""Render a fax job's documents into one TIFF-F: the public, pure (bytes in, bytes out) API.

Pipeline per page: a kind-specific renderer puts grey pixels on the fax grid (``render_pdf``,
``render_image``, ``render_text``), ``raster`` binarizes and chops it, ``tiffout`` CCITT-encodes
it. Pages are encoded one by one, so peak memory is one page whatever the document's length,
and documents can be rendered in separate processes and assembled afterwards
(``render_document`` + ``assemble_fax``; see ``pool``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from PIL import Image

from gateway.documents.raster import PageGeometry, binarize, chop
from gateway.documents.render_image import image_pages
from gateway.documents.render_options import CoverPage, RenderedFax, RenderOptions
from gateway.documents.render_pdf import pdf_pages
from gateway.documents.render_text import cover_page_count, cover_pages, text_pages
from gateway.documents.tiffout import EncodedPage, assemble, encode_page
from gateway.errors import DocumentError, TooManyPagesError
from gateway.models import DocumentKind, SourceDocument

__all__ = [
    "CoverPage",
    "RenderOptions",
    "RenderedFax",
    "assemble_fax",
    "render_document",
    "render_fax",
]


def geometry_of(options: RenderOptions) -> PageGeometry:
    return PageGeometry.of(options.resolution, options.paper)


def _grey_pages(
    document: SourceDocument, options: RenderOptions, page_budget: int
) -> Iterable[Image.Image | EncodedPage]:
    geometry = geometry_of(options)
    if document.kind is DocumentKind.PDF:
        return pdf_pages(document.data, document.filename, geometry, page_budget)
    if document.kind is DocumentKind.TEXT:
        return text_pages(document.data.decode("utf-8", errors="replace"), geometry, options.fonts)
    return image_pages(
        document.data,
        document.kind,
        document.filename,
        geometry,
        page_budget,
        options.max_image_pixels,
        reuse=options.compression,
        page_chop=options.page_chop,
    )


def _encode(
    grey_pages: Iterable[Image.Image | EncodedPage], options: RenderOptions
) -> list[EncodedPage]:
    geometry = geometry_of(options)
    encoded = []
    for grey in grey_pages:
        if isinstance(grey, EncodedPage):  # a fax page taken over as it is
            encoded.append(grey)
            continue
        ink = binarize(grey)
        if options.page_chop:
            ink = chop(ink, geometry)
        encoded.append(encode_page(ink, geometry.x_dpi, geometry.y_dpi, options.compression))
    return encoded


def render_document(
    document: SourceDocument, options: RenderOptions, page_budget: int | None = None
) -> list[EncodedPage]:
    """Render one document into encoded pages; at most ``page_budget`` (default max_pages).

    Every failure of a parser on hostile input becomes a DocumentError naming the document.
    """
    budget = options.max_pages if page_budget is None else page_budget
    try:
        pages = _encode(_grey_pages(document, options, budget), options)
    except (DocumentError, TooManyPagesError):
        raise
    except MemoryError as exc:
        raise DocumentError(document.filename, "too large to render") from exc
    except Exception as exc:
        # Decoders of PDF, TIFF, PNG, JPEG and GIF raise anything from OSError to struct.error
        # and ZeroDivisionError on crafted files; to the sender they all mean one thing.
        kind = document.kind.value.upper()
        reason = f"corrupt or unreadable {kind} ({type(exc).__name__})"
        raise DocumentError(document.filename, reason) from exc
    if len(pages) > budget:  # text has no page count up front
        raise TooManyPagesError(f"{document.filename}: more than the {budget} pages allowed")
    return pages


def render_cover(
    cover: CoverPage, options: RenderOptions, document_pages: int
) -> list[EncodedPage]:
    """The cover page(s), stating the fax's total page count (cover included)."""
    geometry = geometry_of(options)
    total = cover_page_count(cover, geometry) + document_pages
    return _encode(cover_pages(cover, geometry, total, options.fonts), options)


def assemble_fax(documents: Sequence[list[EncodedPage]], options: RenderOptions) -> RenderedFax:
    """Join rendered documents (in order) behind the cover page, if any, into one TIFF-F."""
    pages = [page for document in documents for page in document]
    if len(pages) > options.max_pages:
        raise TooManyPagesError(f"{len(pages)} pages, more than the {options.max_pages} allowed")
    if options.cover is not None:
        pages = render_cover(options.cover, options, len(pages)) + pages
    if not pages:
        raise DocumentError("(none)", "nothing to render")
    return RenderedFax(assemble(pages), len(pages))


def render_fax(documents: Sequence[SourceDocument], options: RenderOptions) -> RenderedFax:
    """Render documents, in order, into one multi-page TIFF-F (see module docs for the format)."""
    rendered: list[list[EncodedPage]] = []
    used = 0
    for document in documents:
        pages = render_document(document, options, options.max_pages - used)
        used += len(pages)
        rendered.append(pages)
    return assemble_fax(rendered, options)
