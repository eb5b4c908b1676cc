"""Page images for the console: one PNG per page of a stored fax TIFF, sized for a screen.

Decoding and scaling run in a thread (Pillow holds the GIL only in parts; the event loop must
not wait on it). Made images are kept in memory under a byte bound, least recently used first
out; the key includes the fax's ``modified`` time so a changed fax never shows a stale page.
"""

from __future__ import annotations

import asyncio
import io
from collections import OrderedDict

from PIL import Image, ImageSequence

from gateway.errors import NotFoundError

WIDTH = 850  # a fax page (1728 dots) at about half size: readable on a laptop screen
MAX_CACHE_BYTES = 64 * 1024 * 1024

Key = tuple[str, float, int]


def page_png(tiff: bytes, page: int, width: int = WIDTH) -> bytes:
    """Page ``page`` (0-based) of ``tiff`` as a greyscale PNG ``width`` pixels wide, with the
    height scaled for the fax's own vertical resolution (standard is half of fine)."""
    with Image.open(io.BytesIO(tiff)) as image:
        for index, frame in enumerate(ImageSequence.Iterator(image)):
            if index != page:
                continue
            x_dpi, y_dpi = frame.info.get("dpi", (204, 196))
            aspect = (float(x_dpi) / float(y_dpi)) if x_dpi and y_dpi else 1.0
            height = max(1, round(frame.height * aspect * width / frame.width))
            scaled = frame.convert("L").resize((width, height), Image.Resampling.LANCZOS)
            out = io.BytesIO()
            scaled.save(out, "PNG", optimize=False)
            return out.getvalue()
    raise NotFoundError(f"page {page + 1} not found")


class Thumbnails:
    def __init__(self, max_bytes: int = MAX_CACHE_BYTES) -> None:
        self.max_bytes = max_bytes
        self._cache: OrderedDict[Key, bytes] = OrderedDict()
        self._bytes = 0

    def cached(self, key: Key) -> bytes | None:
        png = self._cache.get(key)
        if png is not None:
            self._cache.move_to_end(key)
        return png

    async def page(self, key: Key, tiff: bytes) -> bytes:
        png = self.cached(key)
        if png is None:
            png = await asyncio.to_thread(page_png, tiff, key[2])
            self._keep(key, png)
        return png

    def _keep(self, key: Key, png: bytes) -> None:
        if len(png) > self.max_bytes:
            return
        self._cache[key] = png
        self._bytes += len(png)
        while self._bytes > self.max_bytes:
            _, old = self._cache.popitem(last=False)
            self._bytes -= len(old)
