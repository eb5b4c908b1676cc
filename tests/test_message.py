"""From message bytes to the documents to fax (gateway.message, gateway.documents.inspect)."""

from __future__ import annotations

import struct
import zlib
from email.message import EmailMessage
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText

import pytest

from gateway.documents.inspect import InspectLimits, inspect_binary, sniff, text_document
from gateway.errors import (
    DocumentError,
    MessageError,
    NoDocumentError,
    TooManyPagesError,
    UnsupportedDocumentError,
)
from gateway.message import IntakeOptions, read_message
from gateway.models import DocumentKind
from tests.builders import (
    corrupt_pdf_bytes,
    encrypted_pdf_bytes,
    forwarded_email,
    image_bytes,
    make_email,
    nested_email,
    pdf_bytes,
    single_part_email,
    tiff_bytes,
    with_inline_image,
)

OPTIONS = IntakeOptions()


def read(message: EmailMessage | bytes, **options: object) -> list[tuple[DocumentKind, str]]:
    raw = message if isinstance(message, bytes) else message.as_bytes()
    parsed = read_message(raw, IntakeOptions(**options))  # type: ignore[arg-type]
    return [(d.kind, d.filename) for d in parsed.documents]


def png_header(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width`` x ``height`` (pixels are never decoded)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    idat = zlib.compress(b"\0" * 64)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def test_headers_are_kept() -> None:
    raw = (
        b"From: alice@example.com\r\nMessage-ID: <m-1@x.test>\r\n"
        b"Subject: =?utf-8?q?Caf=C3=A9?=  order\r\n  42\r\n\r\nbody\r\n"
    )
    parsed = read_message(raw, OPTIONS)
    assert parsed.message_id == "<m-1@x.test>"
    assert parsed.subject == "Café order 42"
    assert parsed.from_header == "alice@example.com"


def test_message_without_headers_has_none() -> None:
    parsed = read_message(b"\r\njust a body\r\n", OPTIONS)
    assert parsed.message_id is None and parsed.subject is None
    assert [d.kind for d in parsed.documents] == [DocumentKind.TEXT]


def test_text_body_alone_is_the_document() -> None:
    parsed = read_message(make_email(body="Hello\r\nworld").as_bytes(), OPTIONS)
    [doc] = parsed.documents
    assert doc.kind is DocumentKind.TEXT
    assert doc.data == b"Hello\nworld\n"
    assert doc.filename == "body.txt"
    assert [p.view() for p in parsed.parts] == [
        {"content_type": "text/plain", "outcome": "body", "pages": "1"}
    ]


def test_body_is_first_only_with_include_body() -> None:
    message = make_email(attachments=[(pdf_bytes(), "application/pdf", "a.pdf")])
    assert read(message) == [(DocumentKind.PDF, "a.pdf")]
    assert read(message, include_body=True) == [
        (DocumentKind.TEXT, "body.txt"),
        (DocumentKind.PDF, "a.pdf"),
    ]


def test_alternative_prefers_plain_text() -> None:
    message = make_email(body="plain version")
    message.add_alternative("<p>html version</p>", subtype="html")
    parsed = read_message(message.as_bytes(), OPTIONS)
    assert parsed.documents[0].data == b"plain version\n"


def test_html_only_body_is_converted() -> None:
    message = make_email(body=None)
    message.set_content(
        "<html><head><style>p {color: red}</style><script>alert(1)</script></head>"
        "<body><h1>Order</h1><p>Two&nbsp;&amp; three<br>lines</p></body></html>",
        subtype="html",
    )
    [doc] = read_message(message.as_bytes(), OPTIONS).documents
    assert doc.data.decode() == "Order\nTwo & three\nlines"


def test_lying_charset_falls_back() -> None:
    raw = b"Content-Type: text/plain; charset=utf-8\r\n\r\nGr\xfc\xdfe aus K\xf6ln\r\n"
    [doc] = read_message(raw, OPTIONS).documents
    assert doc.data.decode() == "Grüße aus Köln\n"


def test_unknown_charset_falls_back() -> None:
    raw = b"Content-Type: text/plain; charset=x-unheard-of\r\n\r\nplain ascii\r\n"
    [doc] = read_message(raw, OPTIONS).documents
    assert doc.data == b"plain ascii\n"


def test_control_characters_do_not_make_a_document() -> None:
    with pytest.raises(NoDocumentError):
        read_message(b"Subject: x\r\n\r\n\x00\x01\x02\x1b\x7f\r\n", OPTIONS)


def test_nested_and_attached_messages_are_walked_in_order() -> None:
    pdfs = [pdf_bytes(1, label=f"x{n}") for n in range(3)]
    assert read(nested_email(pdfs)) == [
        (DocumentKind.PDF, "first.pdf"),
        (DocumentKind.PDF, "doc2.pdf"),
        (DocumentKind.PDF, "doc3.pdf"),
    ]
    inner = make_email(attachments=[(pdf_bytes(), "application/pdf", "inner.pdf")])
    assert read(forwarded_email(inner)) == [(DocumentKind.PDF, "inner.pdf")]


def test_deep_nesting_is_refused() -> None:
    leaf: MIMEMultipart | MIMEText = MIMEText("deep")
    for _ in range(30):
        parent = MIMEMultipart("mixed")
        parent.attach(leaf)
        leaf = parent
    with pytest.raises(DocumentError, match="nesting"):
        read_message(leaf.as_bytes(), OPTIONS)


def test_single_part_document() -> None:
    raw = single_part_email(pdf_bytes(), "application/pdf")
    assert read(raw) == [(DocumentKind.PDF, "part-1.pdf")]


def test_content_decides_the_kind() -> None:
    message = make_email(
        body=None,
        attachments=[
            (pdf_bytes(), "application/octet-stream", None),
            (image_bytes("JPEG"), "image/png", "photo.png"),
            (tiff_bytes(), "application/x-whatever", "fax.dat"),
            (pdf_bytes(), "text/plain", "notes.txt"),
        ],
    )
    assert read(message) == [
        (DocumentKind.PDF, "part-1.pdf"),
        (DocumentKind.JPEG, "photo.png"),
        (DocumentKind.TIFF, "fax.dat"),
        (DocumentKind.PDF, "notes.txt"),
    ]


def test_text_attachment_is_a_document() -> None:
    message = make_email(attachments=[(b"line one\nline two\n", "text/plain", "notes.txt")])
    assert read(message) == [(DocumentKind.TEXT, "notes.txt")]


def test_only_unsupported_documents() -> None:
    message = make_email(
        body="please fax the attachments",
        attachments=[
            (b"PK\x03\x04", "application/zip", "photos.zip"),
            (b"\x00\x01", "application/x-thing", None),
        ],
    )
    with pytest.raises(UnsupportedDocumentError) as refused:
        read_message(message.as_bytes(), OPTIONS)
    assert str(refused.value) == (
        "unsupported document type: photos.zip (application/zip), application/x-thing"
    )
    assert [p["outcome"] for p in refused.value.parts] == ["unsupported", "unsupported"]


def test_supported_beside_unsupported_is_faxed() -> None:
    message = make_email(
        attachments=[
            (b"PK\x03\x04", "application/zip", "photos.zip"),
            (pdf_bytes(), "application/pdf", "a.pdf"),
        ]
    )
    parsed = read_message(message.as_bytes(), OPTIONS)
    assert [d.filename for d in parsed.documents] == ["a.pdf"]
    assert [p.outcome for p in parsed.parts] == ["unsupported", "document"]


def test_signatures_and_calendars_are_not_unsupported_documents() -> None:
    message = make_email(
        body="signed mail",
        attachments=[
            (b"0\x82signature", "application/pkcs7-signature", "smime.p7s"),
            (b"BEGIN:VCALENDAR", "text/calendar", "invite.ics"),
        ],
    )
    assert read(message) == [(DocumentKind.TEXT, "body.txt")]


def test_no_document() -> None:
    with pytest.raises(NoDocumentError, match="no fax document in message"):
        read_message(make_email(body=None).as_bytes(), OPTIONS)
    with pytest.raises(NoDocumentError):
        read_message(make_email(body=" \n\t\n").as_bytes(), OPTIONS)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (encrypted_pdf_bytes(), "encrypted PDF needs a password"),
        (corrupt_pdf_bytes(), "corrupt PDF"),
        (b"", "empty document"),
        (b"plain words", "labelled application/pdf but is not one"),
    ],
)
def test_bad_pdf_names_the_part(data: bytes, reason: str) -> None:
    message = make_email(attachments=[(data, "application/pdf", "report.pdf")])
    with pytest.raises(DocumentError) as refused:
        read_message(message.as_bytes(), OPTIONS)
    assert refused.value.part == "report.pdf"
    assert refused.value.reason.startswith(reason)


def test_pdf_encrypted_without_user_password_is_fine() -> None:
    import io

    import pypdf

    writer = pypdf.PdfWriter(clone_from=io.BytesIO(pdf_bytes(2)))
    writer.encrypt(user_password="", owner_password="owner", algorithm="AES-128")
    buf = io.BytesIO()
    writer.write(buf)
    doc = inspect_binary(buf.getvalue(), "perm.pdf", InspectLimits())
    assert doc.pages == 2


def test_decompression_bomb_is_refused_from_the_header() -> None:
    bomb = png_header(40_000, 40_000)
    with pytest.raises(DocumentError, match=r"bomb\.png"):
        inspect_binary(bomb, "bomb.png", InspectLimits())
    message = make_email(attachments=[(bomb, "image/png", "bomb.png")])
    with pytest.raises(DocumentError):
        read_message(message.as_bytes(), OPTIONS)
    inline = with_inline_image(make_email(), bomb)  # not mistaken for a logo either
    with pytest.raises(DocumentError):
        read_message(inline.as_bytes(), OPTIONS)


def test_image_pixel_limit_is_configurable() -> None:
    with pytest.raises(DocumentError, match="exceeds 1000 pixels"):
        inspect_binary(
            image_bytes("PNG", (100, 100)), "a.png", InspectLimits(max_image_pixels=1000)
        )


def test_truncated_png_is_refused() -> None:
    png = image_bytes("PNG", (800, 600))
    with pytest.raises(DocumentError, match=r"cut\.png"):
        inspect_binary(png[: len(png) // 2], "cut.png", InspectLimits())


def test_pages_are_counted() -> None:
    message = make_email(
        attachments=[
            (pdf_bytes(3), "application/pdf", "a.pdf"),
            (tiff_bytes(2), "image/tiff", "b.tif"),
            (image_bytes("GIF", (400, 400), frames=2), "image/gif", "c.gif"),
        ]
    )
    parsed = read_message(message.as_bytes(), OPTIONS)
    assert [d.pages for d in parsed.documents] == [3, 2, 2]
    assert parsed.pages == 7


def test_too_many_pages() -> None:
    message = make_email(
        attachments=[
            (pdf_bytes(2), "application/pdf", "a.pdf"),
            (tiff_bytes(2), "image/tiff", "b.tif"),
        ]
    )
    read_message(message.as_bytes(), IntakeOptions(limits=InspectLimits(max_pages=4)))
    with pytest.raises(TooManyPagesError):
        read_message(message.as_bytes(), IntakeOptions(limits=InspectLimits(max_pages=3)))


@pytest.mark.parametrize(
    ("text", "pages"),
    [
        ("one line", 1),
        ("\n".join(["x"] * 60) + "\n", 1),
        ("\n".join(["x"] * 61), 2),
        ("page one\fpage two\fpage three", 3),
        ("x" * 90 * 60, 1),  # 90 columns of DejaVu Sans Mono 10 pt on Letter
        ("x" * (90 * 60 + 1), 2),
    ],
)
def test_text_page_estimate(text: str, pages: int) -> None:
    assert text_document(text, "t.txt").pages == pages


def test_file_names_lose_their_folders() -> None:
    message = make_email(
        attachments=[
            (pdf_bytes(), "application/pdf", "C:\\Users\\alice\\report.pdf"),
            (pdf_bytes(), "application/pdf", "/etc/../tmp/scan.pdf"),
            (pdf_bytes(), "application/pdf", "bad\x07name.pdf"),
        ]
    )
    assert [name for _, name in read(message)] == ["report.pdf", "scan.pdf", "badname.pdf"]


@pytest.mark.parametrize(
    ("data", "kind"),
    [
        (b"%PDF-1.7\n", DocumentKind.PDF),
        (b"\xef\xbb\xbf junk before %PDF-1.4\n", DocumentKind.PDF),
        (b"II*\x00rest", DocumentKind.TIFF),
        (b"MM\x00*rest", DocumentKind.TIFF),
        (b"\x89PNG\r\n\x1a\n", DocumentKind.PNG),
        (b"\xff\xd8\xff\xe0", DocumentKind.JPEG),
        (b"GIF89a", DocumentKind.GIF),
        (b"GIF87a", DocumentKind.GIF),
        (b"PK\x03\x04", None),
        (b"", None),
    ],
)
def test_sniff(data: bytes, kind: DocumentKind | None) -> None:
    assert sniff(data) is kind


def test_message_errors_carry_the_parts_seen() -> None:
    message = make_email(
        attachments=[
            (pdf_bytes(), "application/pdf", "ok.pdf"),
            (encrypted_pdf_bytes(), "application/pdf", "locked.pdf"),
        ]
    )
    with pytest.raises(MessageError) as refused:
        read_message(message.as_bytes(), OPTIONS)
    assert [(p.get("filename"), p["outcome"]) for p in refused.value.parts] == [
        ("ok.pdf", "document"),
        ("locked.pdf", "rejected"),
    ]
