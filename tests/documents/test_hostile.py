"""Hostile and broken files fail with DocumentError or TooManyPagesError, quickly, not a crash."""

from __future__ import annotations

import contextlib
import io
import struct
import time

import pypdf
import pytest
from docgen import LETTER, image_bytes, pdf, png_header_only, text_content
from PIL import Image

from gateway.documents.render import RenderOptions, render_fax
from gateway.errors import DocumentError, TooManyPagesError
from gateway.models import DocumentKind, SourceDocument

OPTIONS = RenderOptions()


def render(kind: DocumentKind, data: bytes) -> None:
    render_fax([SourceDocument(kind=kind, data=data, filename="evil")], OPTIONS)


def test_truncated_pdf_is_a_document_error() -> None:
    data = pdf([(*LETTER, text_content(["hello"]))])
    with pytest.raises(DocumentError) as error:
        render(DocumentKind.PDF, data[:60])
    assert error.value.part == "evil"
    assert "PDF" in error.value.reason


def test_pdf_truncated_midway_renders_or_fails_cleanly() -> None:
    data = pdf([(*LETTER, text_content(["hello"] * 40))] * 3)
    with contextlib.suppress(DocumentError):
        render(DocumentKind.PDF, data[: len(data) * 2 // 3])


def test_pdf_with_thousands_of_pages_is_refused_before_rendering() -> None:
    data = pdf([(*LETTER, "")] * 5000)
    started = time.monotonic()
    with pytest.raises(TooManyPagesError):
        render(DocumentKind.PDF, data)
    assert time.monotonic() - started < 3


def test_pages_of_all_documents_count_against_the_limit() -> None:
    one = SourceDocument(DocumentKind.PDF, pdf([(*LETTER, "")] * 3), "three.pdf")
    with pytest.raises(TooManyPagesError):
        render_fax([one, one], RenderOptions(max_pages=5))
    with pytest.raises(TooManyPagesError):
        render_fax(
            [SourceDocument(DocumentKind.TEXT, b"x\f" * 9, "t.txt")], RenderOptions(max_pages=5)
        )


def test_encrypted_pdf_needs_a_password() -> None:
    writer = pypdf.PdfWriter()
    writer.add_blank_page(612, 792)
    writer.encrypt(user_password="secret", owner_password="owner")
    buf = io.BytesIO()
    writer.write(buf)
    with pytest.raises(DocumentError) as error:
        render(DocumentKind.PDF, buf.getvalue())
    assert error.value.reason == "encrypted PDF needs a password"


def test_decompression_bomb_header_is_refused_without_decoding() -> None:
    started = time.monotonic()
    with pytest.raises(DocumentError) as error:
        render(DocumentKind.PNG, png_header_only(50_000, 50_000))
    assert "exceeds" in error.value.reason
    assert time.monotonic() - started < 1


def test_image_just_over_the_configured_pixel_limit_is_refused() -> None:
    data = image_bytes(Image.new("L", (1000, 1001), 255), "PNG")
    with pytest.raises(DocumentError):
        render_fax(
            [SourceDocument(DocumentKind.PNG, data, "big.png")],
            RenderOptions(max_image_pixels=1_000_000),
        )


def test_zero_size_image_is_a_document_error() -> None:
    with pytest.raises(DocumentError):
        render(DocumentKind.PNG, png_header_only(0, 0))


def test_garbage_claiming_to_be_an_image_is_a_document_error() -> None:
    for kind in (DocumentKind.PNG, DocumentKind.JPEG, DocumentKind.GIF, DocumentKind.TIFF):
        with pytest.raises(DocumentError):
            render(kind, b"\x00" * 100)


def test_tiff_whose_ifd_points_to_itself_fails_in_bounded_time() -> None:
    data = bytearray(image_bytes(Image.new("1", (64, 64), 1), "TIFF"))
    (ifd,) = struct.unpack_from("<I", data, 4)
    (count,) = struct.unpack_from("<H", data, ifd)
    struct.pack_into("<I", data, ifd + 2 + 12 * count, ifd)  # next IFD = this IFD
    started = time.monotonic()
    # Refusing is fine; rendering the one real page once is fine too.
    with contextlib.suppress(DocumentError, TooManyPagesError):
        render(DocumentKind.TIFF, bytes(data))
    assert time.monotonic() - started < 5
