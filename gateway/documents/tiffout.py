"""TIFF-F output: CCITT-encode bilevel pages, then assemble them into one multi-page file.

Pillow's libtiff encoder produces the CCITT data of a page; we write the multi-page container
ourselves. That gives exactly the tag set of RFC 2306 / spandsp's reference pages
(MinIsWhite, one strip per page, PageNumber, CleanFaxData) without Pillow's pitfalls (mode "1"
written MinIsBlack or inverted by a per-pixel Python loop, strips cut at 64 KiB, no per-page
PageNumber), and lets pages encoded in different worker processes be joined without re-encoding.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from PIL import Image

Compression = Literal["g4", "g3_1d", "g3_2d"]

# TIFF Compression values and the T4Options of each mode.
_COMPRESSION = {"g4": 4, "g3_1d": 3, "g3_2d": 3}
_T4_OPTIONS = {"g3_1d": 0, "g3_2d": 1}
_PILLOW_NAME = {"g4": "group4", "g3_1d": "group3", "g3_2d": "group3"}


@dataclass(frozen=True)
class EncodedPage:
    """One page's CCITT data (a single strip) and the geometry needed to describe it."""

    width: int
    rows: int
    x_dpi: int
    y_dpi: int
    compression: Compression
    data: bytes


def encode_page(ink: Image.Image, x_dpi: int, y_dpi: int, compression: Compression) -> EncodedPage:
    """CCITT-encode an ink mask (mode "1", set bit = black) as one strip."""
    assert ink.mode == "1"
    buf = io.BytesIO()
    tiffinfo = {292: _T4_OPTIONS[compression]} if compression != "g4" else {}
    # strip_size larger than the page: one strip. The default photometric (MinIsBlack) makes
    # Pillow pass the bits through untouched; our container then declares them MinIsWhite.
    ink.save(
        buf,
        "TIFF",
        compression=_PILLOW_NAME[compression],
        tiffinfo=tiffinfo,
        strip_size=ink.width * ink.height + 1,
    )
    data = _single_strip(buf.getvalue())
    return EncodedPage(ink.width, ink.height, x_dpi, y_dpi, compression, data)


def reusable(page: TiffPage, x_dpi: int, y_dpi: int, compression: Compression) -> bool:
    """Whether a source page's strip can go into our TIFF-F as it is (same tags, same data)."""
    if not page.min_is_white or page.compression != _COMPRESSION[compression]:
        return False
    if (round(page.x_dpi), round(page.y_dpi)) != (x_dpi, y_dpi):
        return False
    if compression == "g4":
        return page.t6_options == 0
    return page.t4_options == _T4_OPTIONS[compression]


def _single_strip(tiff: bytes) -> bytes:
    """The strip of a one-strip TIFF that Pillow just wrote (little-endian, first IFD)."""
    order = "<" if tiff[:2] == b"II" else ">"
    (ifd,) = struct.unpack_from(order + "I", tiff, 4)
    (count,) = struct.unpack_from(order + "H", tiff, ifd)
    tags: dict[int, int] = {}
    for i in range(count):
        tag, typ, n, value = struct.unpack_from(order + "HHII", tiff, ifd + 2 + 12 * i)
        if n != 1:
            raise ValueError(f"tag {tag} has {n} values: expected one strip")
        if typ == 3:  # SHORT values sit left-justified in the value field
            value = struct.unpack_from(order + "H", tiff, ifd + 2 + 12 * i + 8)[0]
        tags[tag] = value
    offset, length = tags[273], tags[279]
    return tiff[offset : offset + length]


# TIFF field types
_SHORT, _LONG, _RATIONAL, _ASCII = 3, 4, 5, 2
_SOFTWARE = b"fax-gateway\0"


def assemble(pages: Sequence[EncodedPage]) -> bytes:
    """Join encoded pages into one little-endian multi-page TIFF-F."""
    if not pages:
        raise ValueError("a fax needs at least one page")
    out = bytearray(b"II*\0\0\0\0\0")
    next_ifd_slot = 4
    total = len(pages)
    for number, page in enumerate(pages):
        strip_at = len(out)
        out += page.data
        if len(out) % 2:
            out += b"\0"
        # Out-of-line values (rationals, software name) precede the IFD.
        xres_at = len(out)
        out += struct.pack("<IIII", page.x_dpi, 1, page.y_dpi, 1)
        software_at = len(out)
        out += _SOFTWARE
        if len(out) % 2:
            out += b"\0"
        entries: list[tuple[int, int, int, bytes]] = [
            (254, _LONG, 1, struct.pack("<I", 2)),  # NewSubfileType: page of a multi-page doc
            (256, _LONG, 1, struct.pack("<I", page.width)),
            (257, _LONG, 1, struct.pack("<I", page.rows)),
            (258, _SHORT, 1, struct.pack("<H", 1)),  # BitsPerSample
            (259, _SHORT, 1, struct.pack("<H", _COMPRESSION[page.compression])),
            (262, _SHORT, 1, struct.pack("<H", 0)),  # Photometric: MinIsWhite
            (266, _SHORT, 1, struct.pack("<H", 1)),  # FillOrder: MSB2LSB (libtiff's output)
            (273, _LONG, 1, struct.pack("<I", strip_at)),
            (274, _SHORT, 1, struct.pack("<H", 1)),  # Orientation: top-left
            (277, _SHORT, 1, struct.pack("<H", 1)),  # SamplesPerPixel
            (278, _LONG, 1, struct.pack("<I", page.rows)),  # RowsPerStrip: the whole page
            (279, _LONG, 1, struct.pack("<I", len(page.data))),
            (282, _RATIONAL, 1, struct.pack("<I", xres_at)),
            (283, _RATIONAL, 1, struct.pack("<I", xres_at + 8)),
            (284, _SHORT, 1, struct.pack("<H", 1)),  # PlanarConfig: contiguous
        ]
        if page.compression == "g4":
            entries.append((293, _LONG, 1, struct.pack("<I", 0)))  # T6Options
        else:
            entries.append((292, _LONG, 1, struct.pack("<I", _T4_OPTIONS[page.compression])))
        entries += [
            (296, _SHORT, 1, struct.pack("<H", 2)),  # ResolutionUnit: inch
            (297, _SHORT, 2, struct.pack("<HH", number, total)),  # PageNumber (0-based, total)
            (305, _ASCII, len(_SOFTWARE), struct.pack("<I", software_at)),
            (327, _SHORT, 1, struct.pack("<H", 0)),  # CleanFaxData: clean
        ]
        ifd_at = len(out)
        struct.pack_into("<I", out, next_ifd_slot, ifd_at)
        out += struct.pack("<H", len(entries))
        for tag, typ, count, value in entries:
            out += struct.pack("<HHI", tag, typ, count) + value.ljust(4, b"\0")
        next_ifd_slot = len(out)
        out += b"\0\0\0\0"
    return bytes(out)


@dataclass(frozen=True)
class TiffPage:
    """One page read back from a TIFF: what the PDF writer needs to embed it as it is."""

    width: int
    rows: int
    x_dpi: float
    y_dpi: float
    compression: int
    t4_options: int
    min_is_white: bool
    data: bytes
    t6_options: int = 0


def read_pages(tiff: bytes) -> list[TiffPage]:
    """Parse a one-strip-per-page CCITT TIFF (ours, or any simple fax TIFF) without decoding.

    Raises ValueError for anything else (several strips, tiles, other compressions), so the
    caller can fall back to decoding.
    """
    if tiff[:4] not in (b"II*\0", b"MM\0*"):
        raise ValueError("not a TIFF")
    o = "<" if tiff[:2] == b"II" else ">"
    sizes = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8}
    pages: list[TiffPage] = []
    (ifd,) = struct.unpack_from(o + "I", tiff, 4)
    seen: set[int] = set()
    while ifd:
        if ifd in seen or ifd + 2 > len(tiff):
            raise ValueError("IFD loop or bad offset")
        seen.add(ifd)
        (count,) = struct.unpack_from(o + "H", tiff, ifd)
        tags: dict[int, tuple[float, ...]] = {}
        for i in range(count):
            at = ifd + 2 + 12 * i
            tag, typ, n = struct.unpack_from(o + "HHI", tiff, at)
            if typ not in sizes:
                continue
            size = sizes[typ] * n
            where = at + 8 if size <= 4 else struct.unpack_from(o + "I", tiff, at + 8)[0]
            if typ == 5:
                nums = struct.unpack_from(o + "II" * n, tiff, where)
                tags[tag] = tuple(nums[k] / (nums[k + 1] or 1) for k in range(0, 2 * n, 2))
            elif typ in (3, 4):
                tags[tag] = struct.unpack_from(o + ("H" if typ == 3 else "I") * n, tiff, where)
        if len(tags.get(273, ())) != 1 or tags.get(259, (1,))[0] not in (3, 4):
            raise ValueError("not a one-strip CCITT page")
        if tags.get(266, (1,))[0] != 1 or int(tags.get(292, (0,))[0]) & 2:
            raise ValueError("bit-reversed or uncompressed-mode CCITT data")
        start, length = int(tags[273][0]), int(tags[279][0])
        unit = tags.get(296, (2,))[0]
        per_inch = 2.54 if unit == 3 else 1.0
        pages.append(
            TiffPage(
                width=int(tags[256][0]),
                rows=int(tags[257][0]),
                x_dpi=tags.get(282, (204.0,))[0] * per_inch,
                y_dpi=tags.get(283, (196.0,))[0] * per_inch,
                compression=int(tags[259][0]),
                t4_options=int(tags.get(292, (0,))[0]),
                min_is_white=tags.get(262, (0,))[0] == 0,
                data=tiff[start : start + length],
                t6_options=int(tags.get(293, (0,))[0]),
            )
        )
        (ifd,) = struct.unpack_from(o + "I", tiff, ifd + 2 + 12 * count)
    return pages
