"""render_fax: every input kind becomes TIFF-F pages of the fax geometry, with the right tags."""

from __future__ import annotations

import io
import shutil
import subprocess
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pypdfium2 as pdfium
import pytest
from docgen import A4, LETTER, filled, image_bytes, pdf, photo, text_content
from PIL import Image, ImageDraw, ImageSequence

from gateway.documents.pdfout import tiff_to_pdf
from gateway.documents.render import CoverPage, RenderOptions, render_fax
from gateway.models import DocumentKind, SourceDocument
from tests.builders import g4_bytes

ROWS = {("fine", "letter"): 2156, ("fine", "a4"): 2292, ("standard", "letter"): 1078}
FULL = RenderOptions(page_chop=False)


def doc(kind: DocumentKind, data: bytes, name: str = "doc") -> SourceDocument:
    return SourceDocument(kind=kind, data=data, filename=name)


def pages_of(tiff: bytes) -> list[Image.Image]:
    with Image.open(io.BytesIO(tiff)) as image:
        return [frame.copy() for frame in ImageSequence.Iterator(image)]


def tags_of(tiff: bytes) -> list[dict[int, object]]:
    with Image.open(io.BytesIO(tiff)) as image:
        return [dict(frame.tag_v2) for frame in ImageSequence.Iterator(image)]


def ink_box(page: Image.Image) -> tuple[int, int, int, int]:
    """Bounding box of the black pixels of a page read back by Pillow (0 = black)."""
    box = page.convert("L").point(lambda v: 255 - v).getbbox()
    assert box is not None, "page is blank"
    return box


def text_pdf() -> bytes:
    return pdf([(*LETTER, text_content(["Hello fax world"] * 5))])


def gif_two_frames() -> bytes:
    frames = [Image.new("L", (300, 400), 255), Image.new("L", (300, 400), 0)]
    return image_bytes(frames[0], "GIF", save_all=True, append_images=frames[1:])


def tiff_three_pages() -> bytes:
    frames = [Image.new("1", (1728, 1000), 1) for _ in range(3)]
    for n, frame in enumerate(frames):
        ImageDraw.Draw(frame).rectangle((100, 100, 500 + 100 * n, 300), fill=0)
    return g4_bytes(frames, dpi=(204, 98))  # standard resolution


INPUTS = {
    "pdf": lambda: doc(DocumentKind.PDF, text_pdf()),
    "png": lambda: doc(DocumentKind.PNG, image_bytes(photo(), "PNG")),
    "jpeg": lambda: doc(DocumentKind.JPEG, image_bytes(photo(), "JPEG")),
    "gif": lambda: doc(DocumentKind.GIF, gif_two_frames()),
    "tiff": lambda: doc(DocumentKind.TIFF, tiff_three_pages()),
    "text": lambda: doc(DocumentKind.TEXT, b"Hello\tfax\nsecond line\n"),
}
EXPECTED_PAGES = {"pdf": 1, "png": 1, "jpeg": 1, "gif": 2, "tiff": 3, "text": 1}


@pytest.mark.parametrize("kind", sorted(INPUTS))
def test_every_kind_becomes_tiff_f_pages(kind: str, tmp_path: Path) -> None:
    fax = render_fax([INPUTS[kind]()], FULL)

    assert fax.pages == EXPECTED_PAGES[kind]
    pages = pages_of(fax.tiff)
    assert len(pages) == fax.pages
    for number, (page, tags) in enumerate(zip(pages, tags_of(fax.tiff), strict=True)):
        assert page.size == (1728, 2156)
        assert page.mode == "1"
        assert tags[259] == 4  # CCITT T.6
        assert tags[262] == 0  # MinIsWhite
        assert tags[278] == 2156  # one strip: RowsPerStrip = ImageLength
        assert len(tags[273]) == 1  # type: ignore[arg-type]
        assert (float(tags[282]), float(tags[283]), tags[296]) == (204.0, 196.0, 2)  # type: ignore[arg-type]
        assert tags[297] == (number, fax.pages)
    if shutil.which("tiffinfo"):
        path = tmp_path / "fax.tif"
        path.write_bytes(fax.tiff)
        info = subprocess.run(["tiffinfo", str(path)], capture_output=True, text=True, check=True)
        assert info.stdout.count("Photometric Interpretation: min-is-white") == fax.pages
        assert info.stdout.count("Compression Scheme: CCITT Group 4") == fax.pages
        assert info.stdout.count("Resolution: 204, 196 pixels/inch") == fax.pages
        assert "Rows/Strip: 2156" in info.stdout
        assert "Error" not in info.stderr


def test_black_is_black_and_paper_is_white() -> None:
    page = pages_of(render_fax([doc(DocumentKind.PDF, text_pdf())], FULL).tiff)[0]
    histogram = page.histogram()
    assert histogram[255] > 0.95 * 1728 * 2156  # mostly white paper
    assert histogram[0] > 1000  # and some black ink


@pytest.mark.parametrize(
    ("resolution", "paper"), [("fine", "letter"), ("fine", "a4"), ("standard", "letter")]
)
def test_page_length_follows_resolution_and_paper(resolution: str, paper: str) -> None:
    options = RenderOptions(resolution=resolution, paper=paper, page_chop=False)  # type: ignore[arg-type]
    fax = render_fax([doc(DocumentKind.PDF, text_pdf())], options)
    (page,) = pages_of(fax.tiff)
    assert page.size == (1728, ROWS[resolution, paper])
    assert page.info["dpi"] == (204, 196 if resolution == "fine" else 98)


@pytest.mark.parametrize(
    ("size", "paper", "rotated"),
    [
        (LETTER, "letter", False),
        (A4, "letter", False),
        (A4, "a4", False),
        ((792.0, 612.0), "letter", True),
        ((1224.0, 792.0), "a4", True),
    ],
)
def test_aspect_ratio_is_kept(size: tuple[float, float], paper: str, rotated: bool) -> None:
    options = RenderOptions(paper=paper, page_chop=False)  # type: ignore[arg-type]
    fax = render_fax([doc(DocumentKind.PDF, pdf([(*size, filled(*size))]))], options)
    (page,) = pages_of(fax.tiff)
    left, top, right, bottom = ink_box(page)
    width_in, height_in = (right - left) / 204, (bottom - top) / 196
    portrait = (min(size), max(size))
    assert width_in / height_in == pytest.approx(portrait[0] / portrait[1], rel=0.01)
    # Fitted: it touches two opposite edges of the page and is centred between the others.
    assert (left, right) == (0, 1728) or (top, bottom) == (0, page.height)
    assert abs(left - (1728 - right)) <= 1 and abs(top - (page.height - bottom)) <= 1


def test_landscape_image_is_rotated_to_portrait() -> None:
    image = Image.new("L", (1600, 1000), 255)
    ImageDraw.Draw(image).rectangle((0, 0, 799, 999), fill=0)  # left half black
    fax = render_fax([doc(DocumentKind.PNG, image_bytes(image, "PNG"))], FULL)
    (page,) = pages_of(fax.tiff)
    left, top, right, bottom = ink_box(page)
    # The landscape's left half ends up as the bottom half of the portrait page.
    assert top > page.height // 3 and bottom > page.height * 2 // 3
    # The black half (800 x 1000 px before rotation) keeps its aspect, now 1000 wide, 800 high.
    assert ((right - left) / 204) / ((bottom - top) / 196) == pytest.approx(1000 / 800, rel=0.01)


def test_exif_orientation_is_honoured() -> None:
    image = Image.new("L", (400, 600), 255)
    ImageDraw.Draw(image).rectangle((0, 0, 399, 99), fill=0)  # black band at the top
    exif = Image.Exif()
    exif[0x0112] = 3  # rotated 180 degrees: the band belongs at the bottom
    fax = render_fax([doc(DocumentKind.JPEG, image_bytes(image, "JPEG", exif=exif))], FULL)
    (page,) = pages_of(fax.tiff)
    _, top, _, _bottom = ink_box(page)
    assert top > page.height // 2


def test_standard_resolution_tiff_is_resampled_to_fine() -> None:
    fax = render_fax([doc(DocumentKind.TIFF, tiff_three_pages())], FULL)
    first = pages_of(fax.tiff)[0]
    left, top, right, bottom = ink_box(first)
    # A 400 x 200 px box at 204 x 98 dpi is 400 x ~400 px at 204 x 196 dpi.
    assert right - left == pytest.approx(401, abs=3)
    assert bottom - top == pytest.approx(401, abs=6)


def test_g3_options_are_written_and_readable() -> None:
    for compression, t4 in (("g3_1d", 0), ("g3_2d", 1)):
        options = RenderOptions(compression=compression, page_chop=False)  # type: ignore[arg-type]
        fax = render_fax([doc(DocumentKind.PDF, text_pdf())], options)
        (tags,) = tags_of(fax.tiff)
        assert (tags[259], tags[292]) == (3, t4)
        (page,) = pages_of(fax.tiff)
        assert page.histogram()[0] > 1000


def test_blank_bottom_is_chopped_only_when_asked() -> None:
    short = doc(DocumentKind.TEXT, b"one line only\n")
    chopped = pages_of(render_fax([short], RenderOptions()).tiff)[0]
    full = pages_of(render_fax([short], FULL).tiff)[0]
    assert full.height == 2156
    assert chopped.height < 600
    assert ink_box(chopped) == ink_box(full)


def test_text_wraps_expands_tabs_and_breaks_pages_on_form_feed() -> None:
    long_line = "word " * 60
    text = f"a\tb\n{long_line}\n\fsecond page\n" + "line\n" * 130
    fax = render_fax([doc(DocumentKind.TEXT, text.encode())], FULL)
    assert fax.pages == 4  # first page, second page starting at the form feed, 2 overflow pages
    first = pages_of(fax.tiff)[0]
    left, _, right, _ = ink_box(first)
    assert left >= 90 and right <= 1728 - 90  # within the half-inch margins


def test_cover_page_comes_first_and_counts_all_pages() -> None:
    cover = CoverPage(
        from_name="Ann",
        from_number="+15551230000",
        to_name="Bob",
        to_number="+15559870000",
        subject="Quarterly report",
        sent_at=datetime(2025, 3, 1, 9, 30, tzinfo=ZoneInfo("Europe/Paris")),
        body="Please find the report attached.",
    )
    fax = render_fax([doc(DocumentKind.PDF, text_pdf())], RenderOptions(cover=cover))
    assert fax.pages == 2
    assert [tags[297] for tags in tags_of(fax.tiff)] == [(0, 2), (1, 2)]


def test_documents_are_joined_in_order() -> None:
    fax = render_fax([INPUTS["tiff"](), INPUTS["pdf"](), INPUTS["png"]()], FULL)
    assert fax.pages == 5


def test_pdf_rendition_embeds_pages_at_fax_size() -> None:
    fax = render_fax([INPUTS["tiff"](), INPUTS["pdf"]()], RenderOptions())
    rendition = tiff_to_pdf(fax.tiff)
    document = pdfium.PdfDocument(rendition)
    assert len(document) == fax.pages
    width, _height = document[0].get_size()
    assert width == pytest.approx(1728 / 204 * 72, abs=0.01)
    # G4 data embedded as it is: the PDF is barely larger than the TIFF.
    assert len(rendition) < len(fax.tiff) + 2000
    # Same ink in the PDF as in the TIFF (the PDF renders with square pixels: 204/196 taller).
    bitmap = document[3].render(scale=204 / 72, grayscale=True).to_pil()
    pdf_ink = sum(bitmap.histogram()[:128]) * 196 / 204
    tiff_ink = pages_of(fax.tiff)[3].histogram()[0]
    assert pdf_ink == pytest.approx(tiff_ink, rel=0.1)
