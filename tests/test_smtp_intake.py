"""What an accepted message becomes: one job per recipient, every document, in order."""

from __future__ import annotations

import asyncio
import smtplib

import pytest

from gateway.bootstrap import ensure_demo
from gateway.config import BootstrapSettings, Settings
from gateway.models import Direction, DocumentKind, FaxStatus
from gateway.store import Store
from tests.builders import (
    forwarded_email,
    image_bytes,
    make_email,
    nested_email,
    pdf_bytes,
    single_part_email,
    tiff_bytes,
    with_inline_image,
)
from tests.conftest import Clock, SmtpHarness, Tenant, make_tenant, transact

RCPTS = ["+14155550100@fax.test", "+1 (415) 555-0101@fax.test", "+14155550102@fax.test"]


async def originals(store: Store, fax_id: str) -> list[tuple[DocumentKind, bytes, str]]:
    return [(d.kind, d.data, d.filename) for d in await store.fax_documents(fax_id)]


async def test_one_job_per_recipient_with_every_document(smtp: SmtpHarness, tenant: Tenant) -> None:
    one, two, tiff = pdf_bytes(1, label="one"), pdf_bytes(2, label="two"), tiff_bytes(2)
    message = make_email(
        attachments=[
            (one, "application/pdf", "one.pdf"),
            (two, "application/pdf", "two.pdf"),
            (tiff, "image/tiff", "scan.tif"),
        ]
    )
    rcpts = ["+14155550100@fax.test", "+14155550101@FAX.test", "+14155550102@fax.test"]
    out = await smtp.transact(message, rcpts=rcpts)
    assert [code for code, _ in out.rcpts] == [250, 250, 250]
    assert len(out.fax_ids) == 3 and len(set(out.fax_ids)) == 3
    expected = [
        (DocumentKind.PDF, one, "one.pdf"),
        (DocumentKind.PDF, two, "two.pdf"),
        (DocumentKind.TIFF, tiff, "scan.tif"),
    ]
    numbers = []
    for fax_id in out.fax_ids:
        assert await originals(smtp.store, fax_id) == expected
        fax = await smtp.store.get_fax(fax_id)
        numbers.append(fax.to_number)
    assert numbers == ["+14155550100", "+14155550101", "+14155550102"]


async def test_refused_recipient_does_not_spoil_the_others(
    smtp: SmtpHarness, tenant: Tenant
) -> None:
    rcpts = ["+14155550100@fax.test", "fax-me@fax.test", "+14155550102@fax.test"]
    out = await smtp.transact(
        make_email(attachments=[(pdf_bytes(), "application/pdf", "a.pdf")]), rcpts=rcpts
    )
    assert [code for code, _ in out.rcpts] == [250, 550, 250]
    assert len(out.fax_ids) == 2
    faxes = [await smtp.store.get_fax(i) for i in out.fax_ids]
    assert [f.to_number for f in faxes] == ["+14155550100", "+14155550102"]


async def test_same_number_twice_is_one_fax(smtp: SmtpHarness, tenant: Tenant) -> None:
    rcpts = ["+14155550100@fax.test", "1-415-555-0100@fax.test"]
    out = await smtp.transact(
        make_email(attachments=[(pdf_bytes(), "application/pdf", "a.pdf")]), rcpts=rcpts
    )
    assert [code for code, _ in out.rcpts] == [250, 250]
    assert len(out.fax_ids) == 1


async def test_attachments_in_message_order(smtp: SmtpHarness, tenant: Tenant) -> None:
    parts = [
        (image_bytes("PNG"), "image/png", "a.png", DocumentKind.PNG),
        (pdf_bytes(1), "application/pdf", "b.pdf", DocumentKind.PDF),
        (image_bytes("JPEG"), "image/jpeg", "c.jpg", DocumentKind.JPEG),
        (image_bytes("GIF"), "image/gif", "d.gif", DocumentKind.GIF),
        (tiff_bytes(1), "image/tiff", "e.tif", DocumentKind.TIFF),
    ]
    message = make_email(attachments=[(d, c, f) for d, c, f, _ in parts])
    out = await smtp.transact(message)
    assert await originals(smtp.store, out.fax_ids[0]) == [(k, d, f) for d, _, f, k in parts]


async def test_nested_multiparts(smtp: SmtpHarness, tenant: Tenant) -> None:
    pdfs = [pdf_bytes(1, label=f"n{n}") for n in range(3)]
    out = await smtp.transact(nested_email(pdfs))
    docs = await originals(smtp.store, out.fax_ids[0])
    assert docs == [
        (DocumentKind.PDF, pdfs[0], "first.pdf"),
        (DocumentKind.PDF, pdfs[1], "doc2.pdf"),
        (DocumentKind.PDF, pdfs[2], "doc3.pdf"),
    ]


async def test_attached_message_is_walked(smtp: SmtpHarness, tenant: Tenant) -> None:
    inner_pdf = pdf_bytes(1, label="inner")
    inner = make_email(subject="Original", attachments=[(inner_pdf, "application/pdf", "in.pdf")])
    out = await smtp.transact(forwarded_email(inner))
    assert await originals(smtp.store, out.fax_ids[0]) == [(DocumentKind.PDF, inner_pdf, "in.pdf")]


async def test_documents_found_by_content_not_label(smtp: SmtpHarness, tenant: Tenant) -> None:
    pdf, png = pdf_bytes(1, label="bytes"), image_bytes("PNG")
    message = make_email(
        attachments=[
            (pdf, "application/octet-stream", None),  # no name, generic type
            (pdf, "application/octet-stream", "scan.bin"),  # misleading extension
            (png, "application/pdf", "photo.pdf"),  # wrong label
            (pdf, "application/msword", "letter.doc"),  # wrong label and extension
            (pdf, "text/plain", "notes.txt"),  # even a text label
        ]
    )
    out = await smtp.transact(message)
    docs = await originals(smtp.store, out.fax_ids[0])
    assert [(k, d) for k, d, _ in docs] == [
        (DocumentKind.PDF, pdf),
        (DocumentKind.PDF, pdf),
        (DocumentKind.PNG, png),
        (DocumentKind.PDF, pdf),
        (DocumentKind.PDF, pdf),
    ]
    assert [name for _, _, name in docs][1:] == ["scan.bin", "photo.pdf", "letter.doc", "notes.txt"]


async def test_single_part_document_message(smtp: SmtpHarness, tenant: Tenant) -> None:
    pdf = pdf_bytes(1, label="single")
    out = await smtp.transact(single_part_email(pdf, "application/pdf", "whole.pdf"))
    assert await originals(smtp.store, out.fax_ids[0]) == [(DocumentKind.PDF, pdf, "whole.pdf")]


async def test_text_only_body_becomes_the_document(smtp: SmtpHarness, tenant: Tenant) -> None:
    body = "Dear Sir,\nplease find my order below.\n\n3 x widgets\n"
    out = await smtp.transact(make_email(body=body))
    docs = await originals(smtp.store, out.fax_ids[0])
    assert len(docs) == 1
    kind, data, _ = docs[0]
    assert kind is DocumentKind.TEXT
    assert data.decode() == body


async def test_html_only_body_becomes_text(smtp: SmtpHarness, tenant: Tenant) -> None:
    message = make_email(body=None)
    message.set_content(
        "<html><body><p>Order&nbsp;42</p><p>two lines</p></body></html>", subtype="html"
    )
    out = await smtp.transact(message)
    [(kind, data, _)] = await originals(smtp.store, out.fax_ids[0])
    assert kind is DocumentKind.TEXT
    assert data.decode() == "Order 42\ntwo lines"
    assert "<p>" not in data.decode()


async def test_body_is_not_faxed_beside_attachments(smtp: SmtpHarness, tenant: Tenant) -> None:
    out = await smtp.transact(make_email(attachments=[(pdf_bytes(), "application/pdf", "a.pdf")]))
    assert [k for k, _, _ in await originals(smtp.store, out.fax_ids[0])] == [DocumentKind.PDF]


async def test_include_body_puts_it_first(smtp: SmtpHarness, store: Store) -> None:
    await make_tenant(store, include_body=True)
    pdf = pdf_bytes()
    out = await smtp.transact(
        make_email(body="Cover note", attachments=[(pdf, "application/pdf", "a.pdf")])
    )
    docs = await originals(smtp.store, out.fax_ids[0])
    assert [(k, d) for k, d, _ in docs] == [
        (DocumentKind.TEXT, b"Cover note\n"),
        (DocumentKind.PDF, pdf),
    ]


async def test_small_inline_images_are_pages(smtp: SmtpHarness, tenant: Tenant) -> None:
    # No pixel rule (issue 11): only the HTML's own pictures are left out (test_message_smtp).
    pdf = pdf_bytes()
    message = make_email(attachments=[(pdf, "application/pdf", "a.pdf")])
    with_inline_image(message, image_bytes("PNG", (200, 80)))
    with_inline_image(message, image_bytes("GIF", (600, 299)), "gif")
    out = await smtp.transact(message)
    kinds = [k for k, _, _ in await originals(smtp.store, out.fax_ids[0])]
    assert kinds == [DocumentKind.PDF, DocumentKind.PNG, DocumentKind.GIF]
    [row] = await smtp.smtplog()
    assert [d["outcome"] for d in row.documents] == ["document", "document", "document"]


async def test_large_inline_image_and_small_attachment_are_kept(
    smtp: SmtpHarness, tenant: Tenant
) -> None:
    small = image_bytes("PNG", (100, 100))
    message = make_email(attachments=[(small, "image/png", "stamp.png")])  # attached: wanted
    with_inline_image(message, image_bytes("PNG", (800, 600)))  # inline but page-sized
    out = await smtp.transact(message)
    kinds = [k for k, _, _ in await originals(smtp.store, out.fax_ids[0])]
    assert kinds == [DocumentKind.PNG, DocumentKind.PNG]


async def test_several_messages_in_one_session(smtp: SmtpHarness, tenant: Tenant) -> None:
    pdfs = [pdf_bytes(1, label=f"m{n}") for n in range(3)]

    def conversation(client: smtplib.SMTP) -> list[list[str]]:
        ids = []
        for n, pdf in enumerate(pdfs):
            message = make_email(
                attachments=[(pdf, "application/pdf", f"m{n}.pdf")], subject=f"message {n}"
            )
            ids.append(transact(client, rcpts=[f"+1415555010{n}@fax.test"], data=message).fax_ids)
        return ids

    ids = await smtp.run(conversation)
    assert [len(i) for i in ids] == [1, 1, 1]
    for n, [fax_id] in enumerate(ids):
        fax = await smtp.store.get_fax(fax_id)
        assert fax.to_number == f"+1415555010{n}"
        assert fax.subject == f"message {n}"
        assert await originals(smtp.store, fax_id) == [(DocumentKind.PDF, pdfs[n], f"m{n}.pdf")]
    assert len(await smtp.smtplog()) == 3


async def test_rset_discards_the_transaction(smtp: SmtpHarness, tenant: Tenant) -> None:
    def conversation(client: smtplib.SMTP) -> tuple[int, list[str]]:
        client.ehlo()
        client.mail("alice@example.com")
        client.rcpt("+14155550199@fax.test")
        code = client.rset()[0]
        out = transact(
            client,
            rcpts=["+14155550100@fax.test"],
            data=make_email(attachments=[(pdf_bytes(), "application/pdf", "a.pdf")]),
        )
        return code, out.fax_ids

    code, fax_ids = await smtp.run(conversation)
    assert code == 250
    faxes = await smtp.store.recent_faxes(None, 10)
    assert [f.id for f in faxes] == fax_ids
    assert faxes[0].to_number == "+14155550100"
    rows = await smtp.smtplog()
    assert [r.reply_code for r in rows] == [None, 250]
    assert rows[0].errors == ["transaction reset by client (RSET)"]


async def test_retry_with_same_message_id_is_idempotent(
    smtp: SmtpHarness, tenant: Tenant, clock: Clock
) -> None:
    message = make_email(
        attachments=[(pdf_bytes(), "application/pdf", "a.pdf")], message_id="<retry-1@example.com>"
    )
    first = await smtp.transact(message)
    clock.advance(23 * 3600)  # the MTA lost our 250 and retries within a day
    again = await smtp.transact(message)
    assert again.data is not None and again.data[0] == 250
    assert again.fax_ids == first.fax_ids
    assert len(await smtp.store.recent_faxes(None, 10)) == 1
    # To another recipient, the same message is a new fax.
    other = await smtp.transact(message, rcpts=["+14155550101@fax.test"])
    assert other.fax_ids != first.fax_ids
    # After the window, a resend is a new fax.
    clock.advance(3601)
    late = await smtp.transact(message)
    assert late.fax_ids != first.fax_ids
    assert len(await smtp.store.recent_faxes(None, 10)) == 3
    rows = await smtp.smtplog()
    assert len(rows) == 4
    assert rows[1].fax_ids == first.fax_ids
    assert rows[1].errors == [
        "duplicate of an earlier message (same Message-ID, sender and content)"
    ]


def shared_id_message(label: str) -> bytes:
    """A message under a Message-ID that another message may share."""
    message = make_email(
        attachments=[(pdf_bytes(label=label), "application/pdf", "a.pdf")],
        message_id="<shared-1@example.com>",
    )
    return message.as_bytes()


@pytest.mark.parametrize(
    ("sender", "label"),
    [
        pytest.param("alice@example.com", "original", id="the same message again"),
        pytest.param("Alice@EXAMPLE.com", "original", id="the sender spelt in other case"),
    ],
)
async def test_a_resend_of_the_same_message_is_answered_with_the_first_fax(
    smtp: SmtpHarness, tenant: Tenant, sender: str, label: str
) -> None:
    first = await smtp.transact(shared_id_message("original"), sender="alice@example.com")
    again = await smtp.transact(shared_id_message(label), sender=sender)
    assert again.fax_ids == first.fax_ids
    assert len(await smtp.store.recent_faxes(None, 10)) == 1


@pytest.mark.parametrize(
    ("sender", "label"),
    [
        pytest.param("bob@example.com", "bob's", id="another sender, another document"),
        pytest.param("bob@example.com", "original", id="another sender, the same document"),
        pytest.param("alice@example.com", "revised", id="the same sender, another document"),
    ],
)
async def test_another_message_under_the_same_message_id_is_a_new_fax(
    smtp: SmtpHarness, tenant: Tenant, sender: str, label: str
) -> None:
    """Message-IDs are not unique in the wild: only the same sender with the same content
    under the same Message-ID to the same number is a retry."""
    first = await smtp.transact(shared_id_message("original"), sender="alice@example.com")
    second = await smtp.transact(shared_id_message(label), sender=sender)
    assert second.data is not None and second.data[0] == 250
    assert second.fax_ids != first.fax_ids
    assert len(await smtp.store.recent_faxes(None, 10)) == 2
    [(_, data, _)] = await originals(smtp.store, second.fax_ids[0])
    assert data == pdf_bytes(label=label)  # its own document, not the first message's
    rows = await smtp.smtplog()
    assert rows[1].errors == []


async def test_the_same_message_on_two_connections_at_once_makes_one_fax(
    smtp: SmtpHarness, tenant: Tenant
) -> None:
    """An MTA that times out and retries on a second connection while the first still runs."""
    message = make_email(
        attachments=[(pdf_bytes(), "application/pdf", "a.pdf")], message_id="<twice@example.com>"
    )
    outcomes = await asyncio.gather(*(smtp.transact(message) for _ in range(4)))
    assert all(o.data is not None and o.data[0] == 250 for o in outcomes)
    assert len({tuple(o.fax_ids) for o in outcomes}) == 1
    assert len(await smtp.store.recent_faxes(None, 10)) == 1
    assert len(await smtp.smtplog()) == 4


async def test_partial_retry_creates_only_the_missing_fax(
    smtp: SmtpHarness, tenant: Tenant
) -> None:
    message = make_email(
        attachments=[(pdf_bytes(), "application/pdf", "a.pdf")], message_id="<retry-2@example.com>"
    )
    first = await smtp.transact(message, rcpts=["+14155550100@fax.test"])
    both = await smtp.transact(message, rcpts=["+14155550100@fax.test", "+14155550101@fax.test"])
    assert both.fax_ids[0] == first.fax_ids[0]
    assert len(both.fax_ids) == 2
    assert len(await smtp.store.recent_faxes(None, 10)) == 2


async def test_faxbox_defaults_and_headers_on_the_job(
    smtp: SmtpHarness, store: Store, clock: Clock
) -> None:
    tenant = await make_tenant(
        store,
        caller_id="+14155550199",
        caller_name="ACME Sales",
        fax_header="ACME Corp Sales",
        fax_identity="+1 415 555 0199",
        retries=5,
        owner_email="owner@acme.test",
        outbound_notify=("ops@acme.test", "Alice@Example.com"),
    )
    message = make_email(
        subject="Quarterly order",
        message_id="<q-1@example.com>",
        attachments=[(pdf_bytes(), "application/pdf", "a.pdf")],
    )
    out = await smtp.transact(message, sender="alice@example.com")
    assert out.data is not None
    assert out.data[1] == f"2.0.0 queued as {out.fax_ids[0]}"
    fax = await store.get_fax(out.fax_ids[0])
    assert fax.account_id == tenant.account_id
    assert fax.faxbox_id == tenant.faxbox.id
    assert fax.direction is Direction.OUTBOUND
    assert fax.status is FaxStatus.ATTACHING_FILES
    assert fax.folder == "outgoing"
    assert fax.from_number == "+14155550199"
    assert fax.from_name == "ACME Sales"
    assert fax.fax_identity_number == "+1 415 555 0199"
    assert fax.fax_identity_name == "ACME Corp Sales"
    assert fax.retries == 5
    assert fax.notifications == {
        "email": {"send_to": ["alice@example.com", "owner@acme.test", "ops@acme.test"]}
    }
    assert fax.message_id == "<q-1@example.com>"
    assert fax.subject == "Quarterly order"
    assert fax.created == clock.now
    [row] = await smtp.smtplog()
    assert fax.smtplog_id == row.id


async def test_default_retries_is_three(smtp: SmtpHarness, tenant: Tenant) -> None:
    out = await smtp.transact(make_email())
    assert (await smtp.store.get_fax(out.fax_ids[0])).retries == 3


async def test_queued_reply_lists_every_fax_id(smtp: SmtpHarness, tenant: Tenant) -> None:
    out = await smtp.transact(make_email(), rcpts=RCPTS[::2])
    assert out.data is not None
    assert out.data[1] == "2.0.0 queued as " + " ".join(out.fax_ids)
    for fax_id in out.fax_ids:
        assert len(fax_id) == 32 and int(fax_id, 16) >= 0


async def test_restarts_do_not_pile_up_permanent_demo_tokens(
    store: Store, settings: Settings, clock: Clock
) -> None:
    dev = settings.model_copy(update={"bootstrap": BootstrapSettings(enabled=True)})
    await ensure_demo(store, dev)
    restarted = await ensure_demo(store, dev)
    assert restarted is not None
    assert await store.account_for_token(restarted.auth_token) is not None
    clock.advance(settings.http.token_ttl_s + 1)
    assert await store.account_for_token(restarted.auth_token) is None  # it expired


async def test_bootstrap_demo_faxbox_accepts_any_sender(
    smtp: SmtpHarness, store: Store, settings: Settings
) -> None:
    dev = settings.model_copy(update={"bootstrap": BootstrapSettings(enabled=True)})
    first = await ensure_demo(store, dev)
    again = await ensure_demo(store, dev)  # a restart: the same faxbox, a fresh token
    assert first is not None and again is not None
    assert first.created and not again.created
    assert (again.account_id, again.faxbox_id) == (first.account_id, first.faxbox_id)
    assert again.auth_token != first.auth_token
    assert await store.account_for_token(first.auth_token) is not None
    out = await smtp.transact(
        make_email(), sender="anyone@anywhere.example", rcpts=[f"+14155550100@{first.smtp_domain}"]
    )
    fax = await store.get_fax(out.fax_ids[0])
    assert fax.faxbox_id == first.faxbox_id
    assert await ensure_demo(store, settings) is None  # off unless enabled
