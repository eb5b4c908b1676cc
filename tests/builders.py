"""Builders for test inputs: real PDFs, images and MIME messages."""

from __future__ import annotations

import functools
import io
import struct
import zipfile
from collections.abc import Sequence
from email.message import EmailMessage
from email.mime.application import MIMEApplication
from email.mime.base import MIMEBase
from email.mime.image import MIMEImage
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.utils import make_msgid

import pypdf
from PIL import Image, ImageDraw


@functools.lru_cache(maxsize=32)
def pdf_bytes(pages: int = 1, size: tuple[int, int] = (612, 792), label: str = "Page") -> bytes:
    images = []
    for n in range(pages):
        image = Image.new("L", size, 255)
        ImageDraw.Draw(image).text((72, 72), f"{label} {n + 1}", fill=0)
        images.append(image)
    buf = io.BytesIO()
    images[0].save(buf, "PDF", save_all=True, append_images=images[1:], resolution=72)
    return buf.getvalue()


def encrypted_pdf_bytes(password: str = "secret") -> bytes:
    """A PDF that needs a password to open (pypdf's PdfWriter.encrypt)."""
    writer = pypdf.PdfWriter(clone_from=io.BytesIO(pdf_bytes(1)))
    writer.encrypt(user_password=password, owner_password=password + "-owner", algorithm="AES-128")
    buf = io.BytesIO()
    writer.write(buf)
    return buf.getvalue()


def corrupt_pdf_bytes() -> bytes:
    """Starts like a PDF, but there is nothing readable after the header."""
    return b"%PDF-1.7\n" + b"\x00garbage, not an object\n" * 20 + b"%%EOF\n"


def docx_bytes() -> bytes:
    """A word-processing document: a ZIP container (we cannot fax these)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("[Content_Types].xml", "<Types/>")
        z.writestr("word/document.xml", "<w:document/>")
    return buf.getvalue()


DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"


@functools.lru_cache(maxsize=32)
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


FAX_FINE_DPI = (204, 196)  # TIFF-F fine resolution: R8 across, 7.7 lines/mm
FAX_PAGE = (1728, 2200)  # 215 mm across; a little short of A4 to keep the tests quick


def g4_bytes(pages: Sequence[Image.Image], dpi: tuple[int, int] = FAX_FINE_DPI) -> bytes:
    """``pages`` as one multi-page TIFF, 1 bit (converted if need be), G4 compressed."""
    images = [page.convert("1") for page in pages]
    buf = io.BytesIO()
    images[0].save(
        buf, "TIFF", compression="group4", dpi=dpi, save_all=True, append_images=images[1:]
    )
    return buf.getvalue()


@functools.lru_cache(maxsize=32)
def tiff_bytes(pages: int = 1, size: tuple[int, int] = FAX_PAGE, label: str = "TIFF page") -> bytes:
    """A fax-like TIFF (G4, fine resolution), one page per frame, "``label`` N" on page N."""
    images = []
    for n in range(pages):
        image = Image.new("1", size, 1)
        ImageDraw.Draw(image).text((100, 100 + 40 * n), f"{label} {n + 1}", fill=0)
        images.append(image)
    return g4_bytes(images)


def make_email(
    to: str | list[str] = "+14155550100@fax.test",
    sender: str = "alice@example.com",
    body: str | None = "Please fax this.",
    attachments: list[tuple[bytes, str, str | None]] | None = None,
    subject: str = "Test fax",
    message_id: str | None = None,
) -> EmailMessage:
    """attachments: (data, content type, filename or None)."""
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


def with_inline_image(message: EmailMessage, data: bytes, subtype: str = "png") -> EmailMessage:
    """Add an inline (not attached) image, as mail clients do for logos and signatures."""
    if not message.is_multipart():
        message.make_mixed()
    part = MIMEImage(data, _subtype=subtype)
    part.add_header("Content-Disposition", "inline")
    part.add_header("Content-ID", make_msgid())
    message.attach(part)
    return message


def nested_email(pdfs: list[bytes], subject: str = "Nested") -> bytes:
    """multipart/mixed > multipart/alternative (text, html) + multipart/related (html, pdf 0)
    + multipart/mixed (pdf 1 ...): documents sit at different depths, in order."""
    outer = MIMEMultipart("mixed")
    outer["From"] = "alice@example.com"
    outer["To"] = "+14155550100@fax.test"
    outer["Subject"] = subject
    outer["Message-ID"] = make_msgid(domain="example.com")
    alternative = MIMEMultipart("alternative")
    alternative.attach(MIMEText("plain body", "plain"))
    alternative.attach(MIMEText("<p>html body</p>", "html"))
    outer.attach(alternative)
    related = MIMEMultipart("related")
    related.attach(MIMEText("<p>see attached</p>", "html"))
    first = MIMEApplication(pdfs[0], "pdf")
    first.add_header("Content-Disposition", "attachment", filename="first.pdf")
    related.attach(first)
    outer.attach(related)
    inner = MIMEMultipart("mixed")
    for n, data in enumerate(pdfs[1:], start=2):
        part = MIMEApplication(data, "pdf")
        part.add_header("Content-Disposition", "attachment", filename=f"doc{n}.pdf")
        inner.attach(part)
    outer.attach(inner)
    return outer.as_bytes()


def forwarded_email(inner: EmailMessage, body: str = "see the forwarded message") -> bytes:
    """A message with another message attached as message/rfc822."""
    outer = MIMEMultipart("mixed")
    outer["From"] = "alice@example.com"
    outer["To"] = "+14155550100@fax.test"
    outer["Subject"] = "Fwd: " + str(inner["Subject"])
    outer["Message-ID"] = make_msgid(domain="example.com")
    outer.attach(MIMEText(body, "plain"))
    attached = MIMEBase("message", "rfc822")
    attached.set_payload([inner])
    attached.add_header("Content-Disposition", "attachment", filename="forwarded.eml")
    outer.attach(attached)
    return outer.as_bytes()


def single_part_email(data: bytes, ctype: str, filename: str | None = None) -> bytes:
    """A message whose whole body is one document (no multipart at all)."""
    maintype, subtype = ctype.split("/", 1)
    part = MIMEBase(maintype, subtype)
    part.set_payload(data)
    from email import encoders

    encoders.encode_base64(part)
    if filename:
        part.add_header("Content-Disposition", "attachment", filename=filename)
    part["From"] = "alice@example.com"
    part["To"] = "+14155550100@fax.test"
    part["Subject"] = "single part"
    part["Message-ID"] = make_msgid(domain="example.com")
    part["MIME-Version"] = "1.0"
    return part.as_bytes()


def apple_mail_email(
    image: bytes, filename: str = "photo.png", body: str = "Here is the photo."
) -> EmailMessage:
    """As Apple Mail sends an attached picture: multipart/mixed, a text/plain body and the
    image marked ``Content-Disposition: inline`` with a file name and a Content-ID, and no
    HTML part that refers to it."""
    msg = make_email(body=body, subject="Photo")
    msg.make_mixed()
    part = MIMEImage(image, _subtype="png", name=filename)
    part.add_header("Content-Disposition", "inline", filename=filename)
    part.add_header("Content-ID", make_msgid(domain="apple.test"))
    msg.attach(part)
    return msg


def html_with_images(
    html: str, images: list[tuple[bytes, str | None, str | None]], body: str | None = None
) -> EmailMessage:
    """multipart/related: an HTML part (inside multipart/alternative with ``body`` as its
    text/plain when given), then each image (data, Content-ID or None, Content-Location or
    None), inline, as mail clients send pictures embedded in the HTML."""
    msg = make_email(body=None, subject="HTML mail")
    related = MIMEMultipart("related")
    if body is None:
        related.attach(MIMEText(html, "html"))
    else:
        alternative = MIMEMultipart("alternative")
        alternative.attach(MIMEText(body, "plain"))
        alternative.attach(MIMEText(html, "html"))
        related.attach(alternative)
    for data, cid, location in images:
        part = MIMEImage(data, _subtype="png")
        part.add_header("Content-Disposition", "inline")
        if cid is not None:
            part.add_header("Content-ID", cid)
        if location is not None:
            part.add_header("Content-Location", location)
        related.attach(part)
    msg.make_mixed()
    msg.attach(related)
    return msg


def tnef_bytes(
    attachments: list[tuple[str | None, bytes | None]],
    long_names: Sequence[str | None] = (),
    unicode: bool = False,
) -> bytes:
    """A TNEF stream (winmail.dat) as Outlook writes it (MS-OXTNEF): message attributes
    (version, code page, class, properties), then per attachment attAttachRendData,
    attAttachTitle (when given), attAttachData (when given) and attAttachment with
    PR_ATTACH_METHOD, a named property and PR_ATTACH_LONG_FILENAME (``long_names[n]``, as
    PtypString8 or with ``unicode`` PtypString), each attribute with its checksum."""

    def attribute(level: int, attr_id: int, data: bytes) -> bytes:
        checksum = sum(data) & 0xFFFF
        return struct.pack("<BII", level, attr_id, len(data)) + data + struct.pack("<H", checksum)

    def counted(value: bytes) -> bytes:
        return struct.pack("<I", len(value)) + value + b"\0" * (-len(value) % 4)

    def properties(long_name: str | None) -> bytes:
        props = [struct.pack("<HHI", 0x0003, 0x3705, 1)]  # PR_ATTACH_METHOD = by value
        name = "X-Flag".encode("utf-16-le") + b"\0\0"
        props.append(  # a named boolean (MNID_STRING), padded to 4
            struct.pack("<HH", 0x000B, 0x8001) + b"\x11" * 16 + struct.pack("<I", 1)
            + counted(name) + struct.pack("<HH", 1, 0)
        )  # fmt: skip
        if long_name is not None:
            kind = 0x001F if unicode else 0x001E
            text = (
                long_name.encode("utf-16-le") + b"\0\0" if unicode else long_name.encode() + b"\0"
            )
            props.append(struct.pack("<HHI", kind, 0x3707, 1) + counted(text))
        return struct.pack("<I", len(props)) + b"".join(props)

    out = b"\x78\x9f\x3e\x22" + struct.pack("<H", 0x0100)
    out += attribute(1, 0x00089006, struct.pack("<I", 0x00010000))  # attTnefVersion
    out += attribute(1, 0x00069007, struct.pack("<II", 1252, 0))  # attOemCodepage
    out += attribute(1, 0x00078008, b"IPM.Microsoft Mail.Note\0")  # attMessageClass
    out += attribute(1, 0x00069003, b"\x01\x00\x00\x00" + b"\x00" * 60)  # attMsgProps
    for n, (title, data) in enumerate(attachments):
        out += attribute(2, 0x00069002, b"\x01\x00" + b"\xff" * 12)  # attAttachRendData
        if title is not None:
            out += attribute(2, 0x00018010, title.encode("cp1252") + b"\0")
        if data is not None:
            out += attribute(2, 0x0006800F, data)
        long_name = long_names[n] if n < len(long_names) else None
        out += attribute(2, 0x00069005, properties(long_name))  # attAttachment
    return out
