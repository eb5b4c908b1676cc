from __future__ import annotations

import io
from collections.abc import Callable

import pytest
from PIL import Image, ImageDraw

from gateway.transports.base import OutboundCall

PAGE_WIDTH = 1728  # R8 (204 dpi) across 215 mm
PAGE_LENGTH = 2200  # fine resolution, a little short of A4 to keep the tests quick


def g4_tiff(pages: int) -> bytes:
    """A multi-page TIFF-F (G4, 204x196 dpi) with a white top margin and text below it."""
    images = []
    for n in range(pages):
        page = Image.new("L", (PAGE_WIDTH, PAGE_LENGTH), 255)
        draw = ImageDraw.Draw(page)
        for y in range(200, PAGE_LENGTH - 200, 80):
            draw.text((120, y), f"page {n + 1} row {y}: the quick brown fox jumps", fill=0)
        draw.rectangle((300, 400 + 50 * n, 1400, 700 + 50 * n), outline=0, width=6)
        images.append(page.convert("1"))
    buf = io.BytesIO()
    images[0].save(
        buf,
        "TIFF",
        compression="group4",
        dpi=(204, 196),
        save_all=True,
        append_images=images[1:],
    )
    return buf.getvalue()


@pytest.fixture(scope="session")
def make_call() -> Callable[..., OutboundCall]:
    cache: dict[int, bytes] = {}

    def make(to_number: str = "+15550001000", pages: int = 1, **kw: object) -> OutboundCall:
        if pages not in cache:
            cache[pages] = g4_tiff(pages)
        fields: dict[str, object] = {
            "fax_id": "fax-1",
            "to_number": to_number,
            "from_number": "+15557770000",
            "tsi": "+15557770000",
            "header": "ACME Corp",
            "timezone": "Europe/Paris",
            "tiff": cache[pages],
            "pages": pages,
        }
        fields.update(kw)
        return OutboundCall(**fields)  # type: ignore[arg-type]

    return make
