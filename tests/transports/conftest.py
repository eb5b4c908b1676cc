from __future__ import annotations

from collections.abc import Callable

import pytest
from PIL import Image, ImageDraw

from gateway.transports.base import OutboundCall
from tests.builders import FAX_PAGE, g4_bytes

PAGE_LENGTH = FAX_PAGE[1]


def g4_tiff(pages: int) -> bytes:
    """A multi-page TIFF-F (G4, 204x196 dpi) with a white top margin, then rows of text and a
    rectangle: a page busier than ``tiff_bytes`` makes, for realistic line times."""
    images = []
    for n in range(pages):
        page = Image.new("L", FAX_PAGE, 255)
        draw = ImageDraw.Draw(page)
        for y in range(200, PAGE_LENGTH - 200, 80):
            draw.text((120, y), f"page {n + 1} row {y}: the quick brown fox jumps", fill=0)
        draw.rectangle((300, 400 + 50 * n, 1400, 700 + 50 * n), outline=0, width=6)
        images.append(page)
    return g4_bytes(images)


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
