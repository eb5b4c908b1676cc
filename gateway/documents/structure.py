"""PNG and TIFF files checked byte by byte, before Pillow sees them.

Pillow is lenient where a fax must not be: it fills a PNG's missing rows with black, follows
a TIFF's IFD chain with a quadratic loop check, and reports a strip that points nowhere only
once it decodes it, as "image file is truncated". Here the structure is read directly, so the
sender learns what is wrong ("TIFF page 2: strip offset beyond end of file") while still
connected. Costs are bounded: a PNG's pixel data is inflated in 1 MiB steps and discarded
(time grows with the pixel limit, memory does not), and a TIFF's chain is walked only as far
as the page limit.
"""

from __future__ import annotations

import struct
import sys
import zlib
from array import array
from collections.abc import Iterator, Sequence

from gateway.errors import DocumentError

_INFLATE_STEP = 1 << 20


def check_size(width: int, height: int, filename: str, max_pixels: int, where: str = "") -> None:
    """Refuse an image by the size its header claims, before anything is decoded."""
    if width < 1 or height < 1:
        raise DocumentError(filename, f"{where}image has no pixels")
    if width * height > max_pixels:
        raise DocumentError(
            filename,
            f"{where}image too large: {width}x{height} pixels (exceeds {max_pixels} pixels)",
        )


# -- PNG ------------------------------------------------------------------------------------

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}
_PNG_DEPTHS = {0: (1, 2, 4, 8, 16), 2: (8, 16), 3: (1, 2, 4, 8), 4: (8, 16), 6: (8, 16)}
# Adam7 passes: first column, first row, column step, row step.
_ADAM7 = (
    (0, 0, 8, 8),
    (4, 0, 8, 8),
    (0, 4, 4, 8),
    (2, 0, 4, 4),
    (0, 2, 2, 4),
    (1, 0, 2, 2),
    (0, 1, 1, 2),
)
_FILTER_TYPES = bytes(range(5))


def check_png(data: bytes, filename: str, max_pixels: int) -> None:
    """Chunks whole and their checksums right, the header sane and within ``max_pixels``, and
    the pixel data complete: every row there, each naming one of the five filter types."""
    chunks = _png_chunks(data, filename)
    kind, header = next(chunks, (b"", b""))
    if kind != b"IHDR" or len(header) != 13:
        raise DocumentError(filename, "PNG header chunk (IHDR) missing or malformed")
    width, height, depth, colour, compression, filtering, interlace = struct.unpack(
        ">IIBBBBB", header
    )
    check_size(width, height, filename, max_pixels)
    if depth not in _PNG_DEPTHS.get(colour, ()) or compression or filtering or interlace > 1:
        raise DocumentError(
            filename, f"PNG header invalid (colour type {colour}, bit depth {depth})"
        )
    bits = depth * _PNG_CHANNELS[colour]
    if interlace:
        passes = [(-(-(width - x) // dx), -(-(height - y) // dy)) for x, y, dx, dy in _ADAM7]
        expected = sum(rows * (1 + -(-cols * bits // 8)) for cols, rows in passes if cols)
        stride = 0  # rows of different lengths: filter bytes are not checked
    else:
        stride = 1 + -(-width * bits // 8)
        expected = height * stride
    produced = _inflate_pixels(chunks, expected, stride, filename)
    if produced < expected:
        if stride:
            reason = f"image data ends early: {produced // stride} of {height} rows"
        else:
            reason = (
                f"image data ends early: {produced} of {expected} bytes of the interlaced image"
            )
        raise DocumentError(filename, reason)


def _png_chunks(data: bytes, filename: str) -> Iterator[tuple[bytes, memoryview]]:
    if not data.startswith(_PNG_SIGNATURE):
        raise DocumentError(filename, "not a PNG file")
    view = memoryview(data)
    pos = len(_PNG_SIGNATURE)
    while True:
        if pos + 8 > len(data):
            raise DocumentError(filename, "PNG file ends early (no IEND chunk)")
        (length,) = struct.unpack_from(">I", data, pos)
        kind = bytes(view[pos + 4 : pos + 8])
        name = kind.decode("latin-1")
        end = pos + 8 + length
        if end + 4 > len(data):
            raise DocumentError(filename, f"PNG file ends early (in its {name} chunk)")
        (crc,) = struct.unpack_from(">I", data, end)
        if zlib.crc32(view[pos + 4 : end]) != crc:
            raise DocumentError(filename, f"PNG {name} chunk damaged (checksum mismatch)")
        if kind == b"IEND":
            return
        yield kind, view[pos + 8 : end]
        pos = end + 4


def _inflate_pixels(
    chunks: Iterator[tuple[bytes, memoryview]], expected: int, stride: int, filename: str
) -> int:
    """Inflate the IDAT stream up to ``expected`` bytes, keeping none of it; bytes produced."""
    inflater = zlib.decompressobj()
    produced = 0
    for kind, body in chunks:  # every chunk, to the end: checksums are checked on the way
        if kind != b"IDAT" or produced >= expected or inflater.eof:
            continue
        pending: bytes | memoryview = body
        while pending and produced < expected:
            try:
                out = inflater.decompress(pending, min(_INFLATE_STEP, expected - produced))
            except zlib.error as exc:
                raise DocumentError(filename, f"image data is damaged (zlib: {exc})") from exc
            if stride:
                _check_filters(out, produced, stride, filename)
            produced += len(out)
            pending = inflater.unconsumed_tail
            if inflater.eof:
                break
    if not produced and expected:
        raise DocumentError(filename, "PNG has no image data (IDAT)")
    return produced


def _check_filters(out: bytes, offset: int, stride: int, filename: str) -> None:
    """Each row of the stream begins with its filter type; ``out`` starts at ``offset``."""
    first = -(-offset // stride)
    marks = out[first * stride - offset :: stride]
    if marks.translate(None, _FILTER_TYPES):
        index = next(i for i, mark in enumerate(marks) if mark > 4)
        raise DocumentError(
            filename,
            f"image data is damaged: row {first + index + 1} has filter type {marks[index]}",
        )


# -- TIFF -----------------------------------------------------------------------------------

_WIDTH, _LENGTH, _BITS, _COMPRESSION = 256, 257, 258, 259
_STRIP_OFFSETS, _SAMPLES, _ROWS_PER_STRIP, _STRIP_BYTES = 273, 277, 278, 279
_PLANAR, _TILE_WIDTH, _TILE_LENGTH, _TILE_OFFSETS, _TILE_BYTES = 284, 322, 323, 324, 325
_WANTED = {
    _WIDTH,
    _LENGTH,
    _BITS,
    _COMPRESSION,
    _STRIP_OFFSETS,
    _SAMPLES,
    _ROWS_PER_STRIP,
    _STRIP_BYTES,
    _PLANAR,
    _TILE_WIDTH,
    _TILE_LENGTH,
    _TILE_OFFSETS,
    _TILE_BYTES,
}
_TAG_NAMES = {_STRIP_OFFSETS: "StripOffsets", _STRIP_BYTES: "StripByteCounts"}
_TAG_NAMES |= {_TILE_OFFSETS: "TileOffsets", _TILE_BYTES: "TileByteCounts"}
# Pillow spends about 10 us on each strip or tile a file declares, before and while decoding;
# 100 fax pages of one row per strip need 229,200.
MAX_TIFF_BLOCKS = 262_144
# TIFF field types that these tags may have: BYTE, SHORT, LONG (array's "I" is 32 bits here).
_TYPES = {1: "B", 3: "H", 4: "I"}


def tiff_pages(data: bytes, filename: str, max_pages: int, max_pixels: int) -> int:
    """The pages of a classic TIFF after checking its IFD chain (no loop), each page's size and
    that its strips or tiles lie inside the file. Stops at ``max_pages + 1`` pages: a caller
    seeing that many refuses the file without the rest of the chain being read."""
    little = data[:2] == b"II"
    order = "<" if little else ">"
    if len(data) < 8:
        raise DocumentError(filename, "TIFF header cut off")
    (offset,) = struct.unpack_from(order + "I", data, 4)
    seen: dict[int, int] = {}
    blocks = 0
    while offset and len(seen) <= max_pages:
        page = len(seen) + 1
        if offset in seen:
            raise DocumentError(filename, f"TIFF IFD chain loops back to page {seen[offset]}")
        seen[offset] = page
        where = f"TIFF page {page}: "
        offset, count = _check_page(
            data, order, offset, where, filename, (max_pixels, MAX_TIFF_BLOCKS - blocks)
        )
        blocks += count
    if not seen:
        raise DocumentError(filename, "TIFF has no pages")
    return len(seen)


def _check_page(
    data: bytes, order: str, ifd: int, where: str, filename: str, limits: tuple[int, int]
) -> tuple[int, int]:
    """Check one IFD and the image data it points to; the offset of the next IFD (0: none)
    and how many strips or tiles the page declares. ``limits``: pixels, and strips or tiles
    still allowed in the file."""
    max_pixels, blocks_left = limits
    size = len(data)
    if ifd + 2 > size:
        raise DocumentError(filename, f"{where}IFD offset beyond end of file")
    (count,) = struct.unpack_from(order + "H", data, ifd)
    end = ifd + 2 + 12 * count
    if end > size:
        raise DocumentError(filename, f"{where}IFD cut off by end of file")
    tags: dict[int, Sequence[int]] = {}
    for entry in range(ifd + 2, end, 12):
        tag, kind, values = struct.unpack_from(order + "HHI", data, entry)
        if tag in (_STRIP_OFFSETS, _TILE_OFFSETS) and values > blocks_left:
            reason = f"{where}more than {MAX_TIFF_BLOCKS} strips or tiles in the file"
            raise DocumentError(filename, reason)
        if tag in _WANTED:
            tags[tag] = _values(data, order, entry, (tag, kind, values), where, filename)
    # A missing next-IFD offset after the last entry ends the chain, as libtiff reads it.
    (next_ifd,) = struct.unpack_from(order + "I", data, end) if end + 4 <= size else (0,)
    if not tags.get(_WIDTH) or not tags.get(_LENGTH):
        raise DocumentError(filename, f"{where}image size missing")
    width, height = tags[_WIDTH][0], tags[_LENGTH][0]
    check_size(width, height, filename, max_pixels, where)
    planes = (tags.get(_SAMPLES) or [1])[0] if (tags.get(_PLANAR) or [1])[0] == 2 else 1
    if _TILE_OFFSETS in tags:
        _check_tiles(tags, width, height, planes, size, where, filename)
        blocks = len(tags[_TILE_OFFSETS])
    elif _STRIP_OFFSETS in tags:
        _check_strips(tags, width, height, planes, size, where, filename)
        blocks = len(tags[_STRIP_OFFSETS])
    else:
        raise DocumentError(filename, f"{where}no image data (no StripOffsets)")
    return int(next_ifd), blocks


def _values(
    data: bytes, order: str, entry: int, field: tuple[int, int, int], where: str, filename: str
) -> Sequence[int]:
    tag, kind, count = field
    code = _TYPES.get(kind)
    name = _TAG_NAMES.get(tag, f"tag {tag}")
    if code is None:
        raise DocumentError(filename, f"{where}{name} has field type {kind}")
    values = array(code)
    length = count * values.itemsize
    start = entry + 8
    if length > 4:
        (start,) = struct.unpack_from(order + "I", data, start)
        if start + length > len(data):
            raise DocumentError(filename, f"{where}{name} beyond end of file")
    values.frombytes(data[start : start + length])
    if (order == "<") != (sys.byteorder == "little"):
        values.byteswap()
    return values


def _check_strips(
    tags: dict[int, Sequence[int]],
    width: int,
    height: int,
    planes: int,
    size: int,
    where: str,
    filename: str,
) -> None:
    rows_per_strip = (tags.get(_ROWS_PER_STRIP) or [height])[0]
    if not 1 <= rows_per_strip <= height:
        rows_per_strip = height
    per_plane = -(-height // rows_per_strip)
    offsets = tags[_STRIP_OFFSETS]
    if len(offsets) < per_plane * planes:
        rows = min(height, len(offsets) // planes * rows_per_strip)
        raise DocumentError(filename, f"{where}image data ends early: {rows} of {height} rows")
    _check_blocks(
        offsets, tags.get(_STRIP_BYTES), per_plane * planes, size, "strip", where, filename
    )
    counts = tags.get(_STRIP_BYTES)
    if (tags.get(_COMPRESSION) or [1])[0] != 1 or planes != 1 or not counts:
        return  # compressed data is checked by decoding it
    bits = sum(tags.get(_BITS) or [1])
    if len(tags.get(_BITS) or [1]) == 1:
        bits *= (tags.get(_SAMPLES) or [1])[0]
    row_bytes = -(-width * bits // 8)
    for index in range(min(per_plane, len(counts))):
        rows = min(rows_per_strip, height - index * rows_per_strip)
        if counts[index] < rows * row_bytes:
            have = index * rows_per_strip + counts[index] // row_bytes
            raise DocumentError(filename, f"{where}image data ends early: {have} of {height} rows")


def _check_tiles(
    tags: dict[int, Sequence[int]],
    width: int,
    height: int,
    planes: int,
    size: int,
    where: str,
    filename: str,
) -> None:
    tile_width = (tags.get(_TILE_WIDTH) or [0])[0]
    tile_length = (tags.get(_TILE_LENGTH) or [0])[0]
    if tile_width < 1 or tile_length < 1:
        raise DocumentError(filename, f"{where}tile size missing")
    needed = -(-width // tile_width) * -(-height // tile_length) * planes
    offsets = tags[_TILE_OFFSETS]
    if len(offsets) < needed:
        raise DocumentError(
            filename, f"{where}image data ends early: {len(offsets)} of {needed} tiles"
        )
    _check_blocks(offsets, tags.get(_TILE_BYTES), needed, size, "tile", where, filename)


def _check_blocks(
    offsets: Sequence[int],
    counts: Sequence[int] | None,
    needed: int,
    size: int,
    what: str,
    where: str,
    filename: str,
) -> None:
    """The first ``needed`` strips (or tiles) start, and end, inside the file."""
    if max(offsets[:needed], default=0) >= size:
        raise DocumentError(filename, f"{where}{what} offset beyond end of file")
    if counts is None:
        return
    for offset, count in zip(offsets[:needed], counts[:needed], strict=False):
        if offset + count > size:
            raise DocumentError(filename, f"{where}{what} data beyond end of file")
