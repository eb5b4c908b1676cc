"""Test inputs made in memory: minimal PDFs written by hand, images drawn with Pillow."""

from __future__ import annotations

import io
import struct
import zlib

from PIL import Image, ImageDraw

LETTER = (612.0, 792.0)
A4 = (595.28, 841.89)


def pdf(pages: list[tuple[float, float, str]], extra_objects: bool = False) -> bytes:
    """A PDF whose pages have the given size (points) and content stream (Courier as /F1)."""
    out = bytearray(b"%PDF-1.4\n")
    offsets: dict[int, int] = {}

    def put(number: int, body: bytes) -> None:
        offsets[number] = len(out)
        out.extend(f"{number} 0 obj\n".encode() + body + b"\nendobj\n")

    put(3, b"<< /Type /Font /Subtype /Type1 /BaseFont /Courier >>")
    kids = []
    for index, (width, height, content) in enumerate(pages):
        page_no, content_no = 4 + 2 * index, 5 + 2 * index
        stream = content.encode("latin-1")
        put(content_no, b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream")
        put(
            page_no,
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 {width} {height}]"
            f" /Resources << /Font << /F1 3 0 R >> >> /Contents {content_no} 0 R >>".encode(),
        )
        kids.append(page_no)
    refs = " ".join(f"{k} 0 R" for k in kids)
    put(2, f"<< /Type /Pages /Kids [{refs}] /Count {len(kids)} >>".encode())
    put(1, b"<< /Type /Catalog /Pages 2 0 R >>")
    xref = len(out)
    size = max(offsets) + 1
    out.extend(f"xref\n0 {size}\n0000000000 65535 f \n".encode())
    for number in range(1, size):
        out.extend(f"{offsets.get(number, 0):010d} 00000 n \n".encode())
    out.extend(f"trailer\n<< /Size {size} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode())
    return bytes(out)


def text_content(lines: list[str], size: float = 10, top: float = 740, left: float = 54) -> str:
    esc = [line.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)") for line in lines]
    body = " ".join(f"({line}) Tj T*" for line in esc)
    return f"BT /F1 {size} Tf {size * 1.2} TL {left} {top} Td {body} ET"


def filled(width: float, height: float) -> str:
    """A content stream painting the whole page black."""
    return f"0 g 0 0 {width} {height} re f"


def image_bytes(image: Image.Image, fmt: str, **params: object) -> bytes:
    buf = io.BytesIO()
    image.save(buf, fmt, **params)
    return buf.getvalue()


def photo(width: int = 800, height: int = 600) -> Image.Image:
    """A smooth colour gradient with shapes: a stand-in photograph."""
    gradient = Image.linear_gradient("L").resize((width, height))
    image = Image.merge("RGB", (gradient, gradient.rotate(90).resize((width, height)), gradient))
    draw = ImageDraw.Draw(image)
    draw.ellipse((width // 4, height // 4, width // 2, height // 2), fill=(200, 60, 60))
    return image


def png_header_only(width: int, height: int) -> bytes:
    """A valid-looking PNG claiming width x height, with almost no pixel data."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    idat = zlib.compress(b"\0" * 64)  # a few rows' worth: the rest is "missing"
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
