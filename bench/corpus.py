"""The reference corpus for the conversion benchmarks, generated in memory (deterministic).

Each item carries the text a perfect reader would recover (for OCR accuracy), so the
benchmarks need no files checked in. ``bench/convert.py`` imports it; a later line-time benchmark
can too.
"""

from __future__ import annotations

import io
import random
from dataclasses import dataclass
from importlib import resources

from PIL import Image, ImageDraw, ImageFilter, ImageFont

from gateway.models import DocumentKind

WORDS = (  # noqa: SIM905 - reads better as prose
    "fax invoice payment account service quarterly agreement shipping pallet reference office "
    "customer balance transfer number contract delivery schedule review report signature "
    "the of and to in for with on by at from please note total amount due date march april"
).split()


@dataclass(frozen=True)
class CorpusItem:
    name: str
    kind: DocumentKind
    data: bytes
    pages: int
    text: list[str]  # known text per page ("" where there is none to read)


def _sentences(rng: random.Random, lines: int, width: int = 78) -> list[str]:
    out = []
    for _ in range(lines):
        words: list[str] = []
        while len(" ".join(words)) < width - 12:
            words.append(rng.choice(WORDS))
        words.append(str(rng.randint(10, 99999)))
        out.append(" ".join(words).capitalize() + ".")
    return out


def _pdf(pages: list[tuple[str, bytes | None]]) -> bytes:
    """Letter pages with a content stream each, Helvetica as /F1 and an optional JPEG as /Im1."""
    objects: list[bytes] = [b"", b"", b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"]
    kids = []
    for content, jpeg in pages:
        resources_ = "/Font << /F1 3 0 R >>"
        if jpeg is not None:
            with Image.open(io.BytesIO(jpeg)) as im:
                w, h = im.size
            objects.append(
                b"<< /Type /XObject /Subtype /Image /Width %d /Height %d /ColorSpace /DeviceRGB"
                b" /BitsPerComponent 8 /Filter /DCTDecode /Length %d >>\nstream\n"
                % (w, h, len(jpeg))
                + jpeg
                + b"\nendstream"
            )
            resources_ += f" /XObject << /Im1 {len(objects)} 0 R >>"
        stream = content.encode("latin-1")
        objects.append(b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream")
        objects.append(
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << {resources_} >>"
            f" /Contents {len(objects)} 0 R >>".encode()
        )
        kids.append(len(objects))
    objects[0] = b"<< /Type /Catalog /Pages 2 0 R >>"
    objects[1] = (
        f"<< /Type /Pages /Kids [{' '.join(f'{k} 0 R' for k in kids)}] /Count {len(kids)} >>"
    ).encode()
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{o:010d} 00000 n \n".encode() for o in offsets)
    out += (
        f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    )
    return bytes(out)


def _text_ops(lines: list[str], size: float, top: float) -> str:
    esc = [s.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)") for s in lines]
    return (
        f"BT /F1 {size} Tf {size * 1.25} TL 54 {top} Td "
        + " ".join(f"({s}) Tj T*" for s in esc)
        + " ET"
    )


def _photo(width: int, height: int, seed: int) -> Image.Image:
    """A photograph stand-in: smooth colour fields, shapes, blur and grain."""
    rng = random.Random(seed)
    image = Image.merge(
        "RGB",
        (
            Image.linear_gradient("L").resize((width, height)),
            Image.radial_gradient("L").resize((width, height)),
            Image.linear_gradient("L").rotate(90).resize((width, height)),
        ),
    )
    draw = ImageDraw.Draw(image)
    for _ in range(12):
        x, y = rng.randrange(width), rng.randrange(height)
        r = rng.randrange(20, width // 4)
        draw.ellipse((x - r, y - r, x + r, y + r), fill=tuple(rng.randrange(256) for _ in range(3)))
    image = image.filter(ImageFilter.GaussianBlur(6))
    grain = Image.effect_noise((width, height), 18).convert("RGB")
    return Image.blend(image, grain, 0.12)


def _font(size: int) -> ImageFont.FreeTypeFont:
    data = resources.files("gateway.documents").joinpath("fonts/DejaVuSansMono.ttf").read_bytes()
    return ImageFont.truetype(io.BytesIO(data), size)


def _draw_lines(
    image: Image.Image, lines: list[str], size: int, fill: int, left: int, top: int
) -> None:
    draw = ImageDraw.Draw(image)
    font = _font(size)
    for n, line in enumerate(lines):
        draw.text((left, top + n * int(size * 1.3)), line, font=font, fill=fill)


def build() -> list[CorpusItem]:
    rng = random.Random(20250301)
    items = []

    pages = [_sentences(rng, 48, 92) for _ in range(10)]
    data = _pdf([(_text_ops(p, 10, 740), None) for p in pages])
    items.append(
        CorpusItem("text-10p.pdf", DocumentKind.PDF, data, 10, ["\n".join(p) for p in pages])
    )

    lines = _sentences(rng, 14, 92)
    jpeg = io.BytesIO()
    _photo(900, 600, 1).save(jpeg, "JPEG", quality=85)
    content = (
        _text_ops(lines[:7], 10, 740)
        + " q 468 0 0 312 72 330 cm /Im1 Do Q "
        + _text_ops(lines[7:], 10, 300)
    )
    items.append(
        CorpusItem(
            "mixed.pdf", DocumentKind.PDF, _pdf([(content, jpeg.getvalue())]), 1, ["\n".join(lines)]
        )
    )

    # A 200 dpi grey scan: off-white paper, grain, slightly soft dark-grey type.
    lines = _sentences(rng, 40, 70)
    scan = Image.new("L", (1700, 2200), 222)
    _draw_lines(scan, lines, 34, 45, 120, 150)
    scan = scan.filter(ImageFilter.GaussianBlur(0.8))
    scan = Image.blend(scan, Image.effect_noise(scan.size, 40), 0.18)
    buf = io.BytesIO()
    scan.save(buf, "PNG", dpi=(200, 200))
    items.append(
        CorpusItem("scan-grey.png", DocumentKind.PNG, buf.getvalue(), 1, ["\n".join(lines)])
    )

    tiff_pages, texts = [], []
    for _ in range(3):
        lines = _sentences(rng, 40, 70)
        page = Image.new("L", (1700, 2200), 255)
        _draw_lines(page, lines, 34, 0, 120, 150)
        tiff_pages.append(page.point(lambda v: 255 if v > 128 else 0).convert("1"))
        texts.append("\n".join(lines))
    buf = io.BytesIO()
    tiff_pages[0].save(
        buf,
        "TIFF",
        save_all=True,
        append_images=tiff_pages[1:],
        compression="group4",
        dpi=(200, 200),
    )
    items.append(CorpusItem("scan-3p.tiff", DocumentKind.TIFF, buf.getvalue(), 3, texts))

    buf = io.BytesIO()
    _photo(1600, 1200, 2).save(buf, "PNG")
    items.append(CorpusItem("photo.png", DocumentKind.PNG, buf.getvalue(), 1, [""]))
    return items
