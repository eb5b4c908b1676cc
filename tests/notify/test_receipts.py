"""Receipts and failure notices of sent faxes reach a real smarthost, with the fax attached."""

from __future__ import annotations

import io

from pypdf import PdfReader

from gateway.models import NewFax, NotificationState
from gateway.store import Store
from gateway.store.records import AttemptOutcome
from tests.conftest import Clock, Tenant
from tests.notify.conftest import MakeNotifier
from tests.notify.support import Collector, finished_fax, pdf_attachments
from tests.stores import tx_result


async def test_receipt_reaches_the_smarthost_with_the_sent_fax_as_pdf(
    store: Store, tenant: Tenant, collector: Collector, make_notifier: MakeNotifier, clock: Clock
) -> None:
    fax_id = await finished_fax(
        store, tenant, pages=3, email_to=["alice@example.com", "owner@acme.test"]
    )
    notifier = make_notifier(collector.port)
    await notifier.run_until_idle()

    assert sorted(r.rcpt_tos[0] for r in collector.received) == [
        "alice@example.com",
        "owner@acme.test",
    ]
    [message] = collector.to("alice@example.com")
    assert collector.received[0].mail_from == "fax-gateway@localhost"
    assert message["To"] == "alice@example.com"
    assert message["From"] == "fax-gateway@localhost"
    assert message["Subject"] == "Fax to Bob's Bakery (+12125550188) sent: 3 page(s)"
    # Threaded under the email that asked for the fax; marked automatic (RFC 3834).
    assert message["In-Reply-To"] == "<order-17@example.com>"
    assert message["References"] == "<order-17@example.com>"
    assert message["Auto-Submitted"] == "auto-generated"
    assert message["X-Fax-Id"] == fax_id
    assert message["Message-ID"] == f"<fax.{fax_id}.1@localhost>"  # the same on every attempt
    body = message.get_body(("plain",))
    assert body is not None
    text = body.get_content()
    assert fax_id in text and "3 of 3" in text and "Quarterly report" in text
    assert "2027-01-15 09:00:00 CET" in text  # the fax's time zone (Europe/Paris)

    [pdf] = pdf_attachments(message)
    assert len(PdfReader(io.BytesIO(pdf)).pages) == 3
    assert f"fax-{fax_id}.pdf" in text

    [first, second] = await store.notifications_of_fax(fax_id)
    assert (first.state, first.attempts, first.sent) == (NotificationState.SENT, 1, clock.now)
    assert second.state is NotificationState.SENT
    shown = await store.fax_notifications(fax_id)
    assert shown[0] == {
        "id": first.id,
        "event": "outbound_completed",
        "channel": "email",
        "to": "alice@example.com",
        "state": "sent",
        "attempts": 1,
        "created": clock.now,
        "next_attempt_at": None,
        "sent": clock.now,
        "error": None,
    }

    await notifier.run_until_idle()  # nothing is sent twice
    assert len(collector.received) == 2


async def test_failure_notice_names_the_error(
    store: Store, tenant: Tenant, collector: Collector, make_notifier: MakeNotifier
) -> None:
    fax_id = await finished_fax(store, tenant, outcome="failed")
    await make_notifier(collector.port).run_until_idle()
    [message] = collector.to("alice@example.com")
    assert message["Subject"] == "Fax to Bob's Bakery (+12125550188) failed: the line was busy"
    assert message["In-Reply-To"] == "<order-17@example.com>"
    body = message.get_body(("plain",))
    assert body is not None and "busy" in body.get_content()
    assert [n.event.value for n in await store.notifications_of_fax(fax_id)] == ["outbound_failed"]


async def test_attach_pdf_off_sends_no_attachment(
    store: Store, tenant: Tenant, collector: Collector, make_notifier: MakeNotifier
) -> None:
    await finished_fax(store, tenant, render_options={"attach_pdf": False})
    await make_notifier(collector.port).run_until_idle()
    [message] = collector.to("alice@example.com")
    assert pdf_attachments(message) == []


async def test_a_job_that_fails_to_render_gets_a_notice_without_attachment(
    store: Store, tenant: Tenant, collector: Collector, make_notifier: MakeNotifier
) -> None:
    fax_id = await store.create_fax(
        NewFax(
            account_id=tenant.account_id,
            faxbox_id=tenant.faxbox.id,
            to_number="+12125550188",
            notifications={"email": {"send_to": "alice@example.com"}},  # a string works too
        )
    )
    [_] = await store.claim_attaching("render", 60, 1)
    assert await store.fail_job(fax_id, "report.pdf: encrypted", tx_result(), "render")
    assert not await store.fail_job(fax_id, "again", tx_result())  # final: no 2nd row
    await make_notifier(collector.port).run_until_idle()
    [message] = collector.to("alice@example.com")
    assert "report.pdf: encrypted" in message["Subject"]
    assert message["In-Reply-To"] is None  # no original message to thread under
    assert pdf_attachments(message) == []
    assert len(await store.notifications_of_fax(fax_id)) == 1


async def test_retries_notify_nobody_only_the_final_outcome_does(
    store: Store, tenant: Tenant, clock: Clock
) -> None:
    fax_id = await store.create_fax(
        NewFax(
            account_id=tenant.account_id,
            to_number="+12125550188",
            notifications={"email": {"send_to": ["a@example.com", "A@example.com"]}},
        )
    )
    [_] = await store.claim_attaching("r", 60, 1)
    assert await store.finish_render(fax_id, "r", b"tiff", b"%PDF", 1)
    [claim] = await store.claim_due("w", 60, 10, 1)
    retry = AttemptOutcome("retry", "busy", tx_result(error="busy"))
    assert await store.finish_attempt(claim, "w", retry, clock.now + 60)
    assert await store.notifications_of_fax(fax_id) == []
    clock.advance(60)
    [claim] = await store.claim_due("w", 60, 10, 1)
    done = AttemptOutcome("completed", None, tx_result(True))
    assert await store.finish_attempt(claim, "w", done, None)
    # One row per recipient (addresses compared case-insensitively).
    assert [n.recipient for n in await store.notifications_of_fax(fax_id)] == ["a@example.com"]
