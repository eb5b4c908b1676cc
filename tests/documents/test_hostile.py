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

from gateway.documents.inspect import InspectLimits, inspect_binary
from gateway.documents.render import RenderOptions, render_fax
from gateway.documents.structure import MAX_TIFF_BLOCKS
from gateway.errors import DocumentError, TooManyPagesError
from gateway.models import DocumentKind, SourceDocument
from tests import malformed
from tests.builders import g4_bytes

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


# -- malformed images: refused at intake, by the same specific reason at render time -------

LIMITS = InspectLimits()
TOO_LARGE = "image too large: 30000x30000 pixels (exceeds 50000000 pixels)"
MALFORMED = [
    (DocumentKind.PNG, malformed.png(400, 400, rows=120), "image data ends early: 120 of 400 rows"),
    (
        DocumentKind.PNG,
        malformed.png(400, 400, rows=120, interlaced=True),
        "image data ends early: 48120 of 160750 bytes of the interlaced image",
    ),
    (
        DocumentKind.PNG,
        malformed.png_with_bad_filter(),
        "image data is damaged: row 4 has filter type 9",
    ),
    (DocumentKind.PNG, malformed.png(30000, 30000, rows=1), TOO_LARGE),
    (
        DocumentKind.PNG,
        malformed.apng_with_damaged_second_frame(),
        "page 2: image data is damaged",
    ),
    (
        DocumentKind.TIFF,
        malformed.tiff_with_strip_offset_past_end(),
        "TIFF page 1: strip offset beyond end of file",
    ),
    (
        DocumentKind.TIFF,
        malformed.tiff_with_strip_offset_past_end(page=2),
        "TIFF page 2: strip offset beyond end of file",
    ),
    (
        DocumentKind.TIFF,
        malformed.tiff_with_strip_cut_short(),
        "TIFF page 1: strip data beyond end of file",
    ),
    (DocumentKind.TIFF, malformed.tiff_with_ifd_loop(), "TIFF IFD chain loops back to page 1"),
    (
        DocumentKind.TIFF,
        malformed.tiff_with_ifd_loop(pages=3),
        "TIFF IFD chain loops back to page 1",
    ),
    (DocumentKind.TIFF, malformed.tiff_claiming(30000, 30000), f"TIFF page 1: {TOO_LARGE}"),
    (DocumentKind.JPEG, malformed.truncated_jpeg(), "image data ends early (file truncated)"),
    (DocumentKind.JPEG, malformed.jpeg_claiming(30000, 30000), TOO_LARGE),
]
MALFORMED_IDS = [
    "png-short",
    "png-interlaced-short",
    "png-bad-filter",
    "png-too-large",
    "apng-frame-2-damaged",
    "tiff-strip-offset",
    "tiff-page-2-strip-offset",
    "tiff-strip-cut",
    "tiff-ifd-self-loop",
    "tiff-ifd-loop",
    "tiff-too-large",
    "jpeg-truncated",
    "jpeg-too-large",
]


@pytest.mark.parametrize(("kind", "data", "reason"), MALFORMED, ids=MALFORMED_IDS)
def test_malformed_image_is_refused_at_intake_saying_what_is_wrong(
    kind: DocumentKind, data: bytes, reason: str
) -> None:
    with pytest.raises(DocumentError) as error:
        inspect_binary(data, "evil", LIMITS)
    assert (error.value.part, error.value.reason) == ("evil", reason)


@pytest.mark.parametrize(("kind", "data", "reason"), MALFORMED, ids=MALFORMED_IDS)
def test_malformed_image_gets_the_same_reason_at_render_time(
    kind: DocumentKind, data: bytes, reason: str
) -> None:
    # A job accepted before intake knew better (or fetched by URL) fails as truthfully.
    with pytest.raises(DocumentError) as error:
        render(kind, data)
    assert error.value.reason == reason


def test_a_short_png_was_never_rendered_with_black_rows_instead() -> None:
    # Pillow fills the missing rows with zeros, which would have faxed a black block.
    with pytest.raises(DocumentError):
        render(DocumentKind.PNG, malformed.png(400, 400, rows=399))
    render(DocumentKind.PNG, malformed.png(400, 400))


def test_tiff_chain_longer_than_the_page_limit_is_not_walked_to_its_end() -> None:
    data = malformed.tiff(pages=6, size=(20, 20))
    with pytest.raises(TooManyPagesError) as error:
        inspect_binary(data, "long.tif", InspectLimits(max_pages=5))
    assert str(error.value) == "long.tif: more than the 5 pages allowed"
    assert inspect_binary(data, "long.tif", InspectLimits(max_pages=6)).pages == 6


def test_tiff_declaring_too_many_strips_is_refused_before_they_are_read() -> None:
    # Pillow reads every declared strip entry (about 10 us each) before decoding a pixel.
    assert inspect_binary(malformed.tiff_of_one_pixel_strips(2000), "ok.tif", LIMITS).pages == 1
    with pytest.raises(DocumentError) as error:
        inspect_binary(malformed.tiff_of_one_pixel_strips(MAX_TIFF_BLOCKS + 1), "f.tif", LIMITS)
    assert (
        error.value.reason
        == f"TIFF page 1: more than {MAX_TIFF_BLOCKS} strips or tiles in the file"
    )


def test_sound_images_still_pass_intake() -> None:
    for kind, data in [
        (DocumentKind.PNG, malformed.png(400, 400)),
        (DocumentKind.PNG, malformed.png(400, 400, interlaced=True)),
        (DocumentKind.TIFF, malformed.tiff(pages=3)),
        (DocumentKind.JPEG, malformed.jpeg()),
        (DocumentKind.TIFF, g4_bytes([Image.new("1", (1728, 2200), 1)] * 2)),
    ]:
        assert inspect_binary(data, "fine", LIMITS).kind is kind
