"""The value types of the rendering API: what to render with, and what comes out."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal


@dataclass(frozen=True)
class CoverPage:
    """What the cover page says. ``sent_at`` is aware, in the faxbox's time zone."""

    from_name: str | None
    from_number: str | None
    to_name: str | None
    to_number: str
    subject: str | None
    sent_at: datetime
    body: str | None


@dataclass(frozen=True)
class RenderOptions:
    """How to render: fax resolution, paper, CCITT coding, limits, page chop and cover page."""

    resolution: Literal["fine", "standard"] = "fine"
    paper: Literal["letter", "a4"] = "letter"
    compression: Literal["g4", "g3_1d", "g3_2d"] = "g4"
    max_pages: int = 100
    max_image_pixels: int = 50_000_000
    page_chop: bool = True
    cover: CoverPage | None = None
    fonts: tuple[str, ...] = ()  # font files tried after the bundled one ([render] fonts)


@dataclass(frozen=True)
class RenderedFax:
    """A multi-page TIFF-F and its page count (cover included)."""

    tiff: bytes
    pages: int
