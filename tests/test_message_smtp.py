"""Which parts become pages, end to end over a real SMTP socket: the Apple Mail picture is
faxed, the HTML's own picture is not, and each part's outcome is in the smtplog."""

from __future__ import annotations

from gateway.models import DocumentKind
from tests.builders import (
    apple_mail_email,
    html_with_images,
    image_bytes,
    make_email,
    pdf_bytes,
    tnef_bytes,
)
from tests.conftest import SmtpHarness, Tenant

STAMP = image_bytes("PNG", (50, 50))


async def test_apple_mail_picture_is_faxed(smtp: SmtpHarness, tenant: Tenant) -> None:
    out = await smtp.transact(apple_mail_email(STAMP, "stamp.png"))
    assert out.data[0] == 250
    [fax_id] = out.fax_ids
    documents = await smtp.store.fax_documents(fax_id)
    assert [(d.kind, d.data, d.filename) for d in documents] == [
        (DocumentKind.PNG, STAMP, "stamp.png")
    ]
    [row] = await smtp.smtplog()
    assert [(d.get("filename"), d["outcome"]) for d in row.documents] == [("stamp.png", "document")]


async def test_html_picture_is_not_a_page_and_the_body_is(
    smtp: SmtpHarness, tenant: Tenant
) -> None:
    message = html_with_images(
        '<p>Please call back.</p><img src="cid:logo@x">', [(STAMP, "<logo@x>", None)]
    )
    out = await smtp.transact(message)
    assert out.data[0] == 250
    [fax_id] = out.fax_ids
    documents = await smtp.store.fax_documents(fax_id)
    assert [(d.kind, d.filename) for d in documents] == [(DocumentKind.TEXT, "body.txt")]
    [row] = await smtp.smtplog()
    assert [(d["outcome"], d.get("reason")) for d in row.documents] == [
        ("body", None),
        ("skipped", "referenced by the HTML"),
    ]


async def test_winmail_dat_attachments_are_faxed(smtp: SmtpHarness, tenant: Tenant) -> None:
    pdf = pdf_bytes(1, label="inside winmail")
    tnef = tnef_bytes([("order.pdf", pdf)])
    out = await smtp.transact(
        make_email(attachments=[(tnef, "application/ms-tnef", "winmail.dat")])
    )
    assert out.data[0] == 250
    [fax_id] = out.fax_ids
    documents = await smtp.store.fax_documents(fax_id)
    assert [(d.kind, d.data, d.filename) for d in documents] == [
        (DocumentKind.PDF, pdf, "order.pdf")
    ]


async def test_broken_winmail_dat_is_refused_with_the_fix(
    smtp: SmtpHarness, tenant: Tenant
) -> None:
    tnef = tnef_bytes([("order.pdf", pdf_bytes())])[:-40]
    out = await smtp.transact(
        make_email(attachments=[(tnef, "application/ms-tnef", "winmail.dat")])
    )
    code, text = out.data
    assert code == 554 and text.startswith("5.6.0 winmail.dat: TNEF attribute runs past the end")
    assert "Rich Text format turned off" in text
    [row] = await smtp.smtplog()
    assert [d["outcome"] for d in row.documents] == ["rejected"]
