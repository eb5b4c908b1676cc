"""Which parts of a message become pages (gateway.message): every faxable leaf, in order,
except images the message's own HTML shows; signatures never; TNEF (winmail.dat) unpacked."""

from __future__ import annotations

from email.message import EmailMessage
from email.mime.application import MIMEApplication
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from pathlib import Path

import pytest

from gateway.config import load_settings
from gateway.documents.office_process import LibreOfficeConverter, find_soffice
from gateway.documents.tnef import TnefLimits, read_attachments
from gateway.errors import ConversionError, DocumentError, UnsupportedDocumentError
from gateway.message import IntakeOptions, ParsedMessage, read_message
from gateway.models import DocumentKind
from tests.builders import (
    apple_mail_email,
    encrypted_pdf_bytes,
    html_with_images,
    image_bytes,
    make_email,
    pdf_bytes,
    tnef_bytes,
    with_inline_image,
)
from tests.documents.officegen import PAGE_BREAK, docx, rtf

OPTIONS = IntakeOptions()
STAMP = image_bytes("PNG", (50, 50))
TNEF_TYPE = "application/ms-tnef"


def parse(message: EmailMessage | MIMEMultipart | bytes) -> ParsedMessage:
    raw = message if isinstance(message, bytes) else message.as_bytes()
    return read_message(raw, OPTIONS)


def outcomes(parsed: ParsedMessage) -> list[tuple[str | None, str, str | None]]:
    return [(p.filename, p.outcome, p.reason) for p in parsed.parts]


def test_apple_mail_inline_attachment_is_a_page() -> None:
    parsed = parse(apple_mail_email(STAMP, "stamp.png"))
    assert [(d.kind, d.filename) for d in parsed.documents] == [(DocumentKind.PNG, "stamp.png")]
    assert outcomes(parsed) == [("stamp.png", "document", None)]


def test_image_the_html_shows_by_cid_is_not_a_page_and_the_body_is_faxed() -> None:
    message = html_with_images('<p>Order 42</p><img src="cid:logo@x">', [(STAMP, "<logo@x>", None)])
    parsed = parse(message)
    [body] = parsed.documents
    assert body.kind is DocumentKind.TEXT and body.data.decode().startswith("Order 42")
    assert outcomes(parsed)[-1] == (None, "skipped", "referenced by the HTML")


@pytest.mark.parametrize(
    ("src", "content_id"),
    [
        ("cid:LOGO@X", "<logo@x>"),  # case-insensitive
        ("cid:logo@x", "logo@x"),  # a Content-ID without angle brackets
        ("CID:logo%40x", "<logo@x>"),  # a cid URL is URL-encoded (RFC 2392)
        ("cid:<logo@x>", "<logo@x>"),  # brackets some clients leave in the URL
    ],
)
def test_cid_references_match_loosely(src: str, content_id: str) -> None:
    message = html_with_images(f"<p>hi</p><img src='{src}'>", [(STAMP, content_id, None)])
    assert [p.outcome for p in parse(message).parts][-1] == "skipped"


def test_image_the_html_shows_by_content_location_is_not_a_page() -> None:
    message = html_with_images(
        '<p>hi</p><img src="image001.png"><td background="http://x.test/bg.png">',
        [(STAMP, None, "image001.png"), (STAMP, None, "http://x.test/bg.png")],
    )
    assert [p.outcome for p in parse(message).parts][-2:] == ["skipped", "skipped"]


def test_html_of_another_alternative_still_claims_its_images() -> None:
    # multipart/related > (multipart/alternative > text, html), image: the text is faxed,
    # the HTML is not read for the body, but its image is still part of it.
    message = html_with_images(
        '<img src="cid:sig@x">', [(STAMP, "<sig@x>", None)], body="plain text"
    )
    parsed = parse(message)
    assert [d.data for d in parsed.documents] == [b"plain text"]


def test_images_not_referenced_are_pages_whatever_their_size() -> None:
    message = html_with_images(
        '<img src="cid:a@x">',
        [(STAMP, "<a@x>", None), (image_bytes("PNG", (20, 20)), "<b@x>", None)],
    )
    parsed = parse(message)
    assert [d.kind for d in parsed.documents] == [DocumentKind.PNG]
    assert [p.outcome for p in parsed.parts][-2:] == ["skipped", "document"]


def test_no_pixel_rule_even_with_the_old_setting(tmp_path: Path) -> None:
    config = tmp_path / "gateway.toml"
    config.write_text("[smtp]\nmin_inline_image_px = 300\n")
    assert load_settings(config).smtp.min_inline_image_px == 300  # still loads, decides nothing
    message = with_inline_image(make_email(), image_bytes("PNG", (10, 10)))
    parsed = read_message(message.as_bytes(), IntakeOptions())
    assert [d.kind for d in parsed.documents] == [DocumentKind.PNG]


def test_an_html_link_to_an_attachment_does_not_hide_it() -> None:
    message = html_with_images('<a href="cid:a@x">the photo</a>', [(STAMP, "<a@x>", None)])
    assert [p.outcome for p in parse(message).parts][-1] == "document"


def test_attachments_in_the_html_alternative_are_pages() -> None:
    # Apple Mail's rich mail: alternative > (text/plain, mixed > (html, the PDF, html)).
    rich = MIMEMultipart("mixed")
    rich.attach(MIMEText("<p>See the order</p>", "html"))
    pdf = MIMEApplication(pdf_bytes(), "pdf")
    pdf.add_header("Content-Disposition", "inline", filename="order.pdf")
    rich.attach(pdf)
    rich.attach(MIMEText("<p>Thanks</p>", "html"))
    alternative = MIMEMultipart("alternative")
    alternative.attach(MIMEText("See the order\n\nThanks", "plain"))
    alternative.attach(rich)
    parsed = read_message(alternative.as_bytes(), IntakeOptions(include_body=True))
    assert [(d.kind, d.filename) for d in parsed.documents] == [
        (DocumentKind.TEXT, "body.txt"),
        (DocumentKind.PDF, "order.pdf"),
    ]
    assert parsed.documents[0].data == b"See the order\n\nThanks"


def test_text_attachment_is_a_page_and_the_body_is_not() -> None:
    message = make_email(body="cover note", attachments=[(b"line 1\n", "text/plain", "a.txt")])
    parsed = parse(message)
    assert [(d.filename, d.data) for d in parsed.documents] == [("a.txt", b"line 1\n")]


def test_text_marked_attachment_without_a_name_is_a_page() -> None:
    message = make_email(body="cover note")
    message.add_attachment("the letter\n", disposition="attachment")
    parsed = parse(message)
    assert [(d.filename, d.data) for d in parsed.documents] == [("part-2.txt", b"the letter\n")]


def test_body_split_around_an_inline_image_is_one_body() -> None:
    # Apple Mail: text, the picture, more text, all inline in multipart/mixed.
    message = apple_mail_email(STAMP, body="Before the photo.")
    message.attach(MIMEText("After the photo.", "plain"))
    parsed = read_message(message.as_bytes(), IntakeOptions(include_body=True))
    assert parsed.documents[0].data == b"Before the photo.\n\nAfter the photo."
    assert [d.kind for d in parsed.documents] == [DocumentKind.TEXT, DocumentKind.PNG]


@pytest.mark.parametrize(
    "ctype",
    ["application/pgp-signature", "application/pkcs7-signature", "application/x-pkcs7-signature"],
)
def test_signatures_are_never_faxed_even_when_they_look_like_a_document(ctype: str) -> None:
    message = make_email(body="signed", attachments=[(pdf_bytes(), ctype, "sig.p7s")])
    parsed = parse(message)
    assert [d.filename for d in parsed.documents] == ["body.txt"]
    assert ("sig.p7s", "ignored", "signature") in outcomes(parsed)


def signed(content: MIMEMultipart | MIMEText, signature: bytes, ctype: str) -> MIMEMultipart:
    outer = MIMEMultipart("signed", protocol=ctype, micalg="sha-256")
    outer["From"] = "alice@example.com"
    outer["Subject"] = "signed"
    outer.attach(content)
    subtype = ctype.split("/")[1]
    outer.attach(MIMEApplication(signature, subtype))
    return outer


def test_multipart_signed_faxes_its_content_not_its_signature() -> None:
    content = MIMEMultipart("mixed")
    content.attach(MIMEText("see the order", "plain"))
    pdf = MIMEApplication(pdf_bytes(), "pdf")
    pdf.add_header("Content-Disposition", "attachment", filename="order.pdf")
    content.attach(pdf)
    # Whatever the signature part claims to be, the second part of multipart/signed is it.
    parsed = parse(signed(content, pdf_bytes(), "application/pkcs7-signature"))
    assert [d.filename for d in parsed.documents] == ["order.pdf"]
    assert outcomes(parsed)[-1] == (None, "ignored", "signature")


def test_signed_text_body_is_the_body() -> None:
    parsed = parse(signed(MIMEText("signed words", "plain"), b"sig", "application/pgp-signature"))
    assert [d.data for d in parsed.documents] == [b"signed words"]


@pytest.mark.parametrize(
    ("ctype", "filename"),
    [
        ("application/ms-tnef", "winmail.dat"),
        ("application/vnd.ms-tnef", None),
        ("application/octet-stream", "WINMAIL.DAT"),
        ("application/octet-stream", "attachment.bin"),  # known by its signature
    ],
)
def test_tnef_attachments_are_parts_like_any_other(ctype: str, filename: str | None) -> None:
    tnef = tnef_bytes([("report.pdf", pdf_bytes(2)), ("STAMP.PNG", STAMP)])
    parsed = parse(make_email(attachments=[(tnef, ctype, filename)]))
    assert [(d.kind, d.filename, d.pages) for d in parsed.documents] == [
        (DocumentKind.PDF, "report.pdf", 2),
        (DocumentKind.PNG, "STAMP.PNG", 1),
    ]
    assert outcomes(parsed) == [
        (filename, "ignored", "Outlook Rich Text, 2 attached"),
        ("report.pdf", "document", None),
        ("STAMP.PNG", "document", None),
    ]


@pytest.mark.parametrize("unicode", [False, True])
def test_tnef_long_file_name_replaces_the_short_title(unicode: bool) -> None:
    name = "Quarterly report 2026.pdf" if not unicode else "Отчёт за квартал.pdf"
    tnef = tnef_bytes([("QUARTE~1.PDF", pdf_bytes())], long_names=[name], unicode=unicode)
    parsed = parse(make_email(attachments=[(tnef, TNEF_TYPE, "winmail.dat")]))
    assert [d.filename for d in parsed.documents] == [name]


def test_every_cut_of_a_tnef_stream_is_read_or_refused() -> None:
    # Hostile or damaged streams: any prefix either unpacks or is refused by name.
    tnef = tnef_bytes([("a.pdf", pdf_bytes()), ("b.png", STAMP)], long_names=["long a.pdf"])
    for end in range(0, len(tnef), 7):
        try:
            read_attachments(tnef[:end], "winmail.dat", TnefLimits())
        except DocumentError as exc:
            assert exc.part == "winmail.dat"


def test_tnef_attachment_count_is_bounded() -> None:
    tnef = tnef_bytes([(f"{n}.pdf", b"x") for n in range(5)])
    with pytest.raises(DocumentError, match="more than 4 attachments"):
        read_attachments(tnef, "winmail.dat", TnefLimits(max_attachments=4))


def test_tnef_without_attachments_leaves_the_body() -> None:
    tnef = tnef_bytes([])
    parsed = parse(make_email(body="rich mail", attachments=[(tnef, TNEF_TYPE, "winmail.dat")]))
    assert [d.filename for d in parsed.documents] == ["body.txt"]


def test_tnef_attachment_without_bytes_is_unsupported() -> None:
    tnef = tnef_bytes([("Embedded message", None)])
    message = make_email(attachments=[(tnef, TNEF_TYPE, "winmail.dat")])
    with pytest.raises(UnsupportedDocumentError, match=r"Embedded message \("):
        parse(message)


def test_tnef_inside_tnef_is_not_unpacked() -> None:
    inner = tnef_bytes([("a.pdf", pdf_bytes())])
    tnef = tnef_bytes([("winmail.dat", inner)])
    with pytest.raises(UnsupportedDocumentError, match=r"winmail\.dat \(application/ms-tnef"):
        parse(make_email(attachments=[(tnef, TNEF_TYPE, "winmail.dat")]))


def test_tnef_attachment_is_checked_like_any_other() -> None:
    tnef = tnef_bytes([("locked.pdf", encrypted_pdf_bytes())])
    with pytest.raises(DocumentError, match=r"locked\.pdf: encrypted PDF"):
        parse(make_email(attachments=[(tnef, TNEF_TYPE, "winmail.dat")]))


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (tnef_bytes([("a.pdf", pdf_bytes())])[:-40], "runs past the end"),
        (tnef_bytes([])[:9], "ends inside an attribute header"),
        (b"\x78\x9f\x3e\x22\x01\x00\x07" + b"\x00" * 10, "unknown level 7"),
    ],
)
def test_broken_tnef_is_refused_with_the_fix(data: bytes, reason: str) -> None:
    message = make_email(attachments=[(data, TNEF_TYPE, "winmail.dat")])
    with pytest.raises(DocumentError) as refused:
        parse(message)
    assert refused.value.part == "winmail.dat"
    assert reason in refused.value.reason and "Rich Text format turned off" in refused.value.reason
    assert [p["outcome"] for p in refused.value.parts] == ["rejected"]


def test_winmail_dat_that_is_not_tnef_is_refused_by_name() -> None:
    message = make_email(attachments=[(b"MZ\x90\x00", "application/octet-stream", "winmail.dat")])
    with pytest.raises(
        UnsupportedDocumentError, match=r"winmail\.dat: labelled TNEF but is not one"
    ):
        parse(message)


def test_attached_message_parts_are_walked_and_its_images_follow_its_html() -> None:
    inner = html_with_images('<img src="cid:in@x">', [(STAMP, "<in@x>", None)])
    inner.attach(MIMEApplication(pdf_bytes(), "pdf"))
    outer = make_email(body="forwarding")
    outer.add_attachment(inner)
    parsed = parse(outer)
    assert [d.kind for d in parsed.documents] == [DocumentKind.PDF]
    assert "skipped" in [p.outcome for p in parsed.parts]


SOFFICE = find_soffice("auto")


def office_email(data: bytes, filename: str = "letter.docx") -> EmailMessage:
    return make_email(attachments=[(data, "application/octet-stream", filename)])


def test_office_document_without_libreoffice_is_refused_by_name() -> None:
    with pytest.raises(UnsupportedDocumentError) as refused:
        parse(office_email(docx(["Invoice"])))
    assert str(refused.value) == "letter.docx: office documents need LibreOffice on this gateway"
    assert [p["outcome"] for p in refused.value.parts] == ["rejected"]


@pytest.mark.skipif(SOFFICE is None, reason="LibreOffice not installed")
def test_office_document_becomes_its_pdf_under_the_senders_name() -> None:
    assert SOFFICE is not None
    options = IntakeOptions(office=LibreOfficeConverter(SOFFICE, slots=1))
    message = office_email(docx(["Invoice", PAGE_BREAK, "Terms"]))
    parsed = read_message(message.as_bytes(), options)
    [doc] = parsed.documents
    assert (doc.kind, doc.filename, doc.pages) == (DocumentKind.PDF, "letter.docx", 2)
    assert doc.data.startswith(b"%PDF-")
    assert outcomes(parsed) == [("letter.docx", "document", None)]


def test_office_document_libreoffice_cannot_convert_is_refused(tmp_path: Path) -> None:
    made_nothing = tmp_path / "soffice"
    made_nothing.write_text("#!/bin/sh\nexit 0\n")
    made_nothing.chmod(0o755)
    options = IntakeOptions(office=LibreOfficeConverter(str(made_nothing), slots=1))
    with pytest.raises(ConversionError) as refused:
        read_message(office_email(rtf(["x"]), "notes.rtf").as_bytes(), options)
    assert refused.value.part == "notes.rtf"
    assert [p["outcome"] for p in refused.value.parts] == ["rejected"]
