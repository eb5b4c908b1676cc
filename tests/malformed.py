"""Builders of encrypted and malformed documents: real files, made byte by byte where a library
would refuse to write something so wrong (valid checksums around missing data, offsets that
point nowhere, IFD chains that loop)."""

from __future__ import annotations

import functools
import io
import struct
import zlib

import pypdf
from PIL import Image, ImageDraw

from tests.builders import pdf_bytes


@functools.lru_cache(maxsize=32)
def encrypted_pdf(
    algorithm: str, user_password: str = "", owner_password: str = "owner", pages: int = 2
) -> bytes:
    """``pages`` pages encrypted by pypdf; an empty user password means "permissions only":
    anyone may open it, only the owner password may change it."""
    writer = pypdf.PdfWriter(clone_from=io.BytesIO(pdf_bytes(pages, label="Encrypted")))
    writer.encrypt(
        user_password=user_password,
        owner_password=owner_password,
        algorithm=algorithm,
        permissions_flag=pypdf.constants.UserAccessPermissions.PRINT,
    )
    buf = io.BytesIO()
    writer.write(buf)
    return buf.getvalue()


def _replace_once(data: bytes, old: bytes, new: bytes) -> bytes:
    # Same length, so the cross-reference table stays right and only the one field is wrong.
    assert len(old) == len(new) and data.count(old) == 1, (old, data.count(old))
    return data.replace(old, new)


def pdf_with_unknown_security_handler() -> bytes:
    """A permissions-only AES-128 PDF whose /Encrypt names a handler other than /Standard."""
    return _replace_once(encrypted_pdf("AES-128"), b"/Filter /Standard", b"/Filter /Vendor01")


def pdf_with_unknown_encryption_version() -> bytes:
    return _replace_once(encrypted_pdf("AES-128"), b"/V 4", b"/V 7")


def pdf_with_unknown_crypt_filter() -> bytes:
    return _replace_once(encrypted_pdf("AES-128"), b"/CFM /AESV2", b"/CFM /AESV9")


def pdf_with_unknown_encryption_revision() -> bytes:
    return _replace_once(encrypted_pdf("AES-128"), b"/R 4", b"/R 9")


# The seven passes of an interlaced PNG: first column, first row, column step, row step.
ADAM7 = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2))
ADAM7 += ((0, 1, 1, 2),)


def _chunk(kind: bytes, body: bytes) -> bytes:
    crc = zlib.crc32(kind + body)
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)


def png(width: int, height: int, rows: int | None = None, interlaced: bool = False) -> bytes:
    """An 8-bit grey PNG with every checksum valid, whose IDAT holds ``rows`` rows (all of
    them by default) of mid-grey; the missing rows are simply not there. Interlaced, it holds
    as many bytes of the seven passes as ``rows`` full rows would take."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 1 if interlaced else 0)
    if interlaced:
        passes = [(-(-(width - x) // dx), -(-(height - y) // dy)) for x, y, dx, dy in ADAM7]
        raw = b"".join((b"\0" + b"\x80" * cols) * count for cols, count in passes if cols)
    else:
        raw = (b"\0" + b"\x80" * width) * height
    if rows is not None:
        raw = raw[: rows * (1 + width)]
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", ihdr)
        + _chunk(b"IDAT", zlib.compress(raw))
        + _chunk(b"IEND", b"")
    )


def png_with_bad_filter() -> bytes:
    """All rows present, but row 3 names filter type 9 (there are five, 0-4)."""
    width, height = 50, 10
    rows = [b"\0" + b"\x80" * width for _ in range(height)]
    rows[3] = b"\x09" + rows[3][1:]
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", ihdr)
        + _chunk(b"IDAT", zlib.compress(b"".join(rows)))
        + _chunk(b"IEND", b"")
    )


def apng_with_damaged_second_frame() -> bytes:
    """An animated PNG (two frames, so two pages) whose second frame's data (fdAT) is not a
    zlib stream, inside a chunk with a valid checksum."""
    frames = [page_image((100, 80)), Image.new("L", (100, 80), 0)]
    data = _save(frames[0], "PNG", save_all=True, append_images=frames[1:])
    start = data.index(b"fdAT") - 4
    (length,) = struct.unpack_from(">I", data, start)
    sequence = data[start + 8 : start + 12]
    damaged = _chunk(b"fdAT", sequence + b"\x78\x9c" + b"\xff" * (length - 6))
    return data[:start] + damaged + data[start + 12 + length :]


def _save(image: Image.Image, fmt: str, **params: object) -> bytes:
    buf = io.BytesIO()
    image.save(buf, fmt, **params)
    return buf.getvalue()


def page_image(size: tuple[int, int] = (200, 100), mode: str = "L") -> Image.Image:
    image = Image.new(mode, size, 255 if mode != "1" else 1)
    ImageDraw.Draw(image).rectangle((10, 10, size[0] // 2, size[1] // 2), fill=0)
    return image


def tiff(pages: int = 1, size: tuple[int, int] = (200, 100)) -> bytes:
    """An uncompressed grey TIFF (little-endian, one strip per page, as Pillow writes it)."""
    images = [page_image(size) for _ in range(pages)]
    return _save(images[0], "TIFF", save_all=True, append_images=images[1:])


def _ifds(data: bytes) -> list[int]:
    offsets = []
    (offset,) = struct.unpack_from("<I", data, 4)
    while offset:
        offsets.append(offset)
        (count,) = struct.unpack_from("<H", data, offset)
        (offset,) = struct.unpack_from("<I", data, offset + 2 + 12 * count)
    return offsets


def _set_tag(data: bytearray, ifd: int, tag: int, value: int) -> None:
    (count,) = struct.unpack_from("<H", data, ifd)
    for entry in range(ifd + 2, ifd + 2 + 12 * count, 12):
        number, kind, values = struct.unpack_from("<HHI", data, entry)
        if number == tag:
            assert values == 1, "a single value, stored in the entry itself"
            struct.pack_into("<I" if kind == 4 else "<H", data, entry + 8, value)
            return
    raise AssertionError(f"tag {tag} not in IFD at {ifd}")


def tiff_with_strip_offset_past_end(page: int = 1) -> bytes:
    """Page ``page``'s StripOffsets points 1000 bytes beyond the end of the file."""
    data = bytearray(tiff(pages=max(page, 1)))
    _set_tag(data, _ifds(bytes(data))[page - 1], 273, len(data) + 1000)
    return bytes(data)


def tiff_with_strip_cut_short() -> bytes:
    """The strip starts inside the file, but the file ends before its StripByteCounts."""
    data = tiff()
    assert _ifds(data)[0] < 1000, "Pillow writes the IFD before the strip"
    return data[:-5000]


def tiff_with_ifd_loop(pages: int = 1) -> bytes:
    """The last page's next-IFD offset points back to the first page: a reader that follows
    the chain blindly never stops."""
    data = bytearray(tiff(pages=pages))
    offsets = _ifds(bytes(data))
    (count,) = struct.unpack_from("<H", data, offsets[-1])
    struct.pack_into("<I", data, offsets[-1] + 2 + 12 * count, offsets[0])
    return bytes(data)


def tiff_damaged_beyond_intake() -> bytes:
    """One LZW page larger than intake decodes (InspectLimits.decode_frame_pixels, 16 M
    pixels), whose strips are garbled: its structure is sound, so only the renderer, which
    decodes it, can tell."""
    image = page_image((4100, 4000))
    data = bytearray(_save(image, "TIFF", compression="tiff_lzw"))
    with Image.open(io.BytesIO(bytes(data))) as parsed:
        strips = zip(parsed.tag_v2[273], parsed.tag_v2[279], strict=True)
    for offset, length in strips:
        data[offset + length // 3 : offset + length // 3 + 64] = b"\xff" * 64
    return bytes(data)


def tiff_of_one_pixel_strips(rows: int) -> bytes:
    """A 1-pixel-wide, ``rows``-high uncompressed TIFF with one strip per row: every strip
    a separate entry that a reader must load (written by hand; Pillow would not)."""
    entries = [(256, 1), (257, rows), (258, 8), (262, 1), (273, 0), (278, 1), (279, 0)]
    ifd_size = 2 + 12 * len(entries) + 4
    offsets_at = 8 + ifd_size
    counts_at = offsets_at + 4 * rows
    pixels_at = counts_at + 4 * rows
    ifd = struct.pack("<H", len(entries))
    for tag, value in entries:
        if tag == 273:
            ifd += struct.pack("<HHII", tag, 4, rows, offsets_at)
        elif tag == 279:
            ifd += struct.pack("<HHII", tag, 4, rows, counts_at)
        else:
            ifd += struct.pack("<HHII", tag, 3 if tag in (258, 262) else 4, 1, value)
    ifd += struct.pack("<I", 0)
    offsets = struct.pack(f"<{rows}I", *range(pixels_at, pixels_at + rows))
    counts = struct.pack("<I", 1) * rows
    return b"II*\x00" + struct.pack("<I", 8) + ifd + offsets + counts + b"\x80" * rows


def tiff_claiming(width: int, height: int) -> bytes:
    """A small TIFF whose header claims width x height pixels."""
    data = bytearray(tiff())
    ifd = _ifds(bytes(data))[0]
    _set_tag(data, ifd, 256, width)
    _set_tag(data, ifd, 257, height)
    return bytes(data)


@functools.lru_cache(maxsize=4)
def jpeg(size: tuple[int, int] = (800, 600)) -> bytes:
    image = Image.radial_gradient("L").resize(size).convert("RGB")
    ImageDraw.Draw(image).rectangle((40, 40, size[0] // 2, size[1] // 2), fill=(0, 0, 0))
    return _save(image, "JPEG", quality=90)


def truncated_jpeg() -> bytes:
    """The first half of a baseline JPEG: headers whole, scan data cut off."""
    data = jpeg()
    return data[: len(data) // 2]


def jpeg_claiming(width: int, height: int) -> bytes:
    """A small JPEG whose frame header (SOF0) claims width x height pixels."""
    data = bytearray(jpeg())
    sof = data.index(b"\xff\xc0")
    struct.pack_into(">HH", data, sof + 5, height, width)
    return bytes(data)
