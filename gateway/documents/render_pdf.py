"""PDF pages → grey fax pages with PDFium (pypdfium2), drawn straight onto the fax grid.

``FPDF_RenderPageBitmap`` takes the destination rectangle's width and height separately, so a
page is rasterised once, directly at 204 dpi across and 196 (or 98) lpi down, already fitted,
centred and (for landscape pages) rotated: no intermediate bitmap and no resampling pass.
Form fields are drawn by ``FPDF_FFLDraw`` into the same bitmap, which flattens them into the fax.
"""

from __future__ import annotations

from collections.abc import Iterator

import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c
from PIL import Image

from gateway.documents.raster import PageGeometry, place
from gateway.errors import DocumentError, TooManyPagesError

# Rotation constants of FPDF_RenderPageBitmap: 3 = a quarter turn counter-clockwise, which puts
# the top of a landscape page on the left, as printers do.
_QUARTER_TURN_CCW = 3
_FLAGS = pdfium_c.FPDF_ANNOT | pdfium_c.FPDF_PRINTING


def pdf_pages(
    data: bytes, filename: str, geometry: PageGeometry, page_budget: int
) -> Iterator[Image.Image]:
    """Yield one grey page per PDF page; raise before rendering if there are too many."""
    try:
        pdf = pdfium.PdfDocument(data)
    except pdfium.PdfiumError as exc:
        code = getattr(exc, "err_code", None)
        if code == pdfium_c.FPDF_ERR_PASSWORD:
            raise DocumentError(filename, "encrypted PDF needs a password") from exc
        if code == pdfium_c.FPDF_ERR_SECURITY:
            reason = "PDF encryption not supported (unsupported security scheme)"
            raise DocumentError(filename, reason) from exc
        raise DocumentError(filename, "not a readable PDF file") from exc
    try:
        count = len(pdf)
        if count == 0:
            raise DocumentError(filename, "PDF has no pages")
        if count > page_budget:
            raise TooManyPagesError(f"{filename}: {count} pages, more than the {page_budget} left")
        # Must precede loading pages, or PDFium renders no form fields.
        pdf.init_forms()
        for index in range(count):
            page = pdf[index]
            try:
                yield _render(page, geometry)
            finally:
                page.close()
    finally:
        pdf.close()


def _render(page: pdfium.PdfPage, geometry: PageGeometry) -> Image.Image:
    width_pt, height_pt = page.get_size()
    if width_pt <= 0 or height_pt <= 0:
        raise ValueError("empty page box")
    at = place(geometry, width_pt / 72, height_pt / 72)
    bitmap = pdfium.PdfBitmap.new_native(geometry.width, geometry.rows, pdfium_c.FPDFBitmap_Gray)
    bitmap.fill_rect((255, 255, 255, 255), 0, 0, geometry.width, geometry.rows)
    args = (at.left, at.top, at.width, at.height, _QUARTER_TURN_CCW if at.rotate else 0, _FLAGS)
    pdfium_c.FPDF_RenderPageBitmap(bitmap, page, *args)
    if page.formenv:
        pdfium_c.FPDF_FFLDraw(page.formenv, bitmap, page, *args)
    # to_pil shares the bitmap's buffer; copy so the page outlives the bitmap.
    image: Image.Image = bitmap.to_pil().copy()
    bitmap.close()
    return image
