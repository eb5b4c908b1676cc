"""Builders for test inputs: real PDFs, images and MIME messages."""

from __future__ import annotations

import io
from email.message import EmailMessage
from email.utils import make_msgid

from PIL import Image, ImageDraw


def pdf_bytes(pages: int = 1, size: tuple[int, int] = (612, 792)) -> bytes:
    images = []
    for n in range(pages):
        image = Image.new("L", size, 255)
        ImageDraw.Draw(image).text((72, 72), f"Page {n + 1}", fill=0)
        images.append(image)
    buf = io.BytesIO()
    images[0].save(buf, "PDF", save_all=True, append_images=images[1:], resolution=72)
    return buf.getvalue()


def image_bytes(fmt: str = "PNG", size: tuple[int, int] = (800, 600), frames: int = 1) -> bytes:
    images = [Image.new("RGB", size, (255, 255, 255)) for _ in range(frames)]
    for n, image in enumerate(images):
        ImageDraw.Draw(image).rectangle((10, 10, 100 + n, 100), fill=(0, 0, 0))
    buf = io.BytesIO()
    if frames > 1:
        images[0].save(buf, fmt, save_all=True, append_images=images[1:])
    else:
        images[0].save(buf, fmt)
    return buf.getvalue()


def tiff_bytes(frames: int = 1) -> bytes:
    return image_bytes("TIFF", (1728, 2200), frames)


def make_email(
    to: str | list[str] = "+14155550100@fax.test",
    sender: str = "alice@example.com",
    body: str | None = "Please fax this.",
    attachments: list[tuple[bytes, str, str]] | None = None,
    subject: str = "Test fax",
    message_id: str | None = None,
) -> EmailMessage:
    """attachments: (data, content type, filename)."""
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to if isinstance(to, str) else ", ".join(to)
    msg["Subject"] = subject
    msg["Message-ID"] = message_id or make_msgid(domain="example.com")
    if body is not None:
        msg.set_content(body)
    for data, ctype, filename in attachments or []:
        maintype, subtype = ctype.split("/", 1)
        msg.add_attachment(data, maintype=maintype, subtype=subtype, filename=filename)
    return msg
