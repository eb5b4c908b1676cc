"""Fax TIFF pages that already fit the output exactly are taken over without re-encoding."""

from __future__ import annotations

import io

from PIL import Image, ImageDraw

from gateway.documents.render import RenderOptions, render_fax
from gateway.documents.tiffout import assemble, encode_page, read_pages
from gateway.models import DocumentKind, SourceDocument


def fax_tiff(rows: int, y_dpi: int, ink_to: int, compression: str = "g4") -> bytes:
    """A one-strip MinIsWhite fax TIFF (as fax machines and spandsp write) with ink down to row
    ``ink_to``."""
    page = Image.new("1", (1728, rows), 0)  # ink mask: set bit = black
    draw = ImageDraw.Draw(page)
    draw.rectangle((100, 100, 900, 300), fill=1)
    draw.line((50, ink_to - 1, 1600, ink_to - 1), fill=1)
    encoded = encode_page(page, 204, y_dpi, compression)  # type: ignore[arg-type]
    return assemble([encoded, encoded])


def render(data: bytes, **options: object) -> bytes:
    document = SourceDocument(DocumentKind.TIFF, data, "in.tif")
    return render_fax([document], RenderOptions(**options)).tiff  # type: ignore[arg-type]


def pixels(tiff: bytes) -> list[bytes]:
    with Image.open(io.BytesIO(tiff)) as image:
        out = []
        for n in range(image.n_frames):
            image.seek(n)
            out.append(image.convert("L").tobytes())
        return out


def test_fitting_fax_page_is_copied_unchanged() -> None:
    source = fax_tiff(2156, 196, ink_to=2150)
    out = render(source)
    assert [p.data for p in read_pages(out)] == [p.data for p in read_pages(source)]
    assert pixels(out) == pixels(source)


def test_page_chop_still_applies() -> None:
    source = fax_tiff(2156, 196, ink_to=400)
    (first, _) = read_pages(render(source))
    assert first.rows < 2156
    assert read_pages(render(source, page_chop=False))[0].data == read_pages(source)[0].data


def test_other_geometry_or_encoding_is_rendered() -> None:
    standard = fax_tiff(1078, 98, ink_to=1070)
    out = read_pages(render(standard))  # fine output: resampled
    assert out[0].rows == 2156 and out[0].y_dpi == 196
    g3 = fax_tiff(2156, 196, ink_to=2150, compression="g3_2d")
    out = read_pages(render(g3))  # G4 asked for: re-encoded
    assert out[0].compression == 4
    assert pixels(render(g3)) == pixels(g3)


def test_orientation_tag_is_not_ignored() -> None:
    source = bytearray(fax_tiff(2156, 196, ink_to=2150))
    # Turn the first IFD's Orientation (274, value 1) into 3: rotated 180 degrees.
    at = source.index(b"\x12\x01\x03\x00\x01\x00\x00\x00\x01\x00")
    source[at + 8] = 3
    out = pixels(render(bytes(source)))
    upright = pixels(bytes(source))[0]
    flipped = Image.frombytes("L", (1728, 2156), upright).rotate(180)
    assert out[0] == flipped.tobytes()
