"""The whole path: an email over SMTP -> rendered -> sent over the loopback T.30 line ->
receipts at a real smarthost; a fax to a local faxbox -> its PDF by email. And no backscatter:
a message refused in the SMTP dialogue makes no email at all."""

from __future__ import annotations

import io
import smtplib
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from pypdf import PdfReader

from gateway.config import Settings
from gateway.documents.pool import RenderPool
from gateway.inbound import FaxboxInbound
from gateway.models import Direction, FaxStatus, NotificationState
from gateway.notify import Notifier
from gateway.pipeline import RenderStage
from gateway.store import Store
from gateway.transports.loopback import LoopbackTransport
from gateway.worker import Worker
from tests.builders import make_email, pdf_bytes
from tests.conftest import Clock, SmtpHarness, Tenant, make_tenant
from tests.notify.support import Collector, notify_settings, pdf_attachments


@dataclass
class Gateway:
    store: Store
    smtp: SmtpHarness
    render: RenderStage
    worker: Worker
    notifier: Notifier
    woken: list[str]

    async def run(self) -> None:
        await self.render.run_until_idle()
        await self.worker.run_until_idle()
        await self.notifier.run_until_idle()


@pytest.fixture
async def gateway(
    store: Store, smtp: SmtpHarness, settings: Settings, collector: Collector, tmp_path
) -> AsyncIterator[Gateway]:
    pool = RenderPool(2, 30)
    notifier = Notifier(store, notify_settings(tmp_path, collector.port).notifications)
    woken: list[str] = []

    def finished(fax_id: str) -> None:  # as the daemon wires it
        woken.append(fax_id)
        notifier.wake.set()

    inbound = FaxboxInbound(store, pool.to_pdf, "w", settings.worker.lease_s, on_finished=finished)
    line = LoopbackTransport({"+1415555020*": "busy"}, inbound)
    worker = Worker(store, line, settings.worker, "w", on_finished=finished)
    yield Gateway(store, smtp, RenderStage(store, pool, settings), worker, notifier, woken)
    await notifier.close()
    await line.close()
    await pool.close()


async def test_emailed_fax_gets_a_receipt_in_the_senders_thread(
    gateway: Gateway, tenant: Tenant, collector: Collector
) -> None:
    msg = make_email(
        to="+14155550123@fax.test",
        attachments=[(pdf_bytes(3), "application/pdf", "q3.pdf")],
        message_id="<q3-report@example.com>",
        subject="Q3 report",
    )
    await gateway.smtp.send(msg)
    await gateway.run()
    [fax] = await gateway.store.recent_faxes(tenant.account_id, 10)
    assert fax.status is FaxStatus.COMPLETED
    assert gateway.woken == [fax.id]

    # The sender, the faxbox's owner and its notify list (set at intake).
    assert sorted(r.rcpt_tos[0] for r in collector.received) == [
        "alice@example.com",
        "ops@acme.test",
        "owner@acme.test",
    ]
    [receipt] = collector.to("alice@example.com")
    assert receipt["In-Reply-To"] == "<q3-report@example.com>"
    assert receipt["Subject"] == "Fax to +14155550123 sent: 3 page(s)"
    [pdf] = pdf_attachments(receipt)
    assert len(PdfReader(io.BytesIO(pdf)).pages) == fax.pages == 3
    body = receipt.get_body(("plain",))
    assert body is not None and "Q3 report" in body.get_content()


async def test_received_fax_arrives_by_email_as_pdf(
    gateway: Gateway, tenant: Tenant, store: Store, collector: Collector
) -> None:
    local = await make_tenant(
        store,
        "local",
        domain="local.test",
        fax_number="+14155550777",
        inbound_notify=("inbox@local.test", "boss@local.test"),
        owner_email="owner@local.test",
    )
    msg = make_email(
        to="+14155550777@fax.test", attachments=[(pdf_bytes(2), "application/pdf", "two.pdf")]
    )
    await gateway.smtp.send(msg)
    await gateway.run()
    [received] = await store.recent_faxes(local.account_id, 10)
    assert received.direction is Direction.INBOUND and received.status is FaxStatus.COMPLETED

    for address in ("owner@local.test", "inbox@local.test", "boss@local.test"):
        [mail] = collector.to(address)
        assert mail["Subject"] == "New fax from +14155550199: 2 page(s)"
        assert mail["In-Reply-To"] is None  # not a reply: nobody emailed this faxbox
        [pdf] = pdf_attachments(mail)
        assert len(PdfReader(io.BytesIO(pdf)).pages) == 2
    rows = await store.notifications_of_fax(received.id)
    assert [(n.event.value, n.state) for n in rows] == [
        ("inbound_received", NotificationState.SENT)
    ] * 3


async def test_a_message_refused_in_the_smtp_dialogue_sends_no_email(
    gateway: Gateway, tenant: Tenant, store: Store, collector: Collector
) -> None:
    def refused_sender(client: smtplib.SMTP) -> None:
        msg = make_email(
            sender="mallory@evil.test", attachments=[(pdf_bytes(1), "application/pdf", "x.pdf")]
        )
        with pytest.raises(smtplib.SMTPException):
            client.send_message(msg)

    def broken_document(client: smtplib.SMTP) -> None:
        broken = (b"%PDF-1.7 this is not a PDF", "application/pdf", "broken.pdf")
        msg = make_email(body=None, attachments=[broken])
        with pytest.raises(smtplib.SMTPException):
            client.send_message(msg)

    await gateway.smtp.run(refused_sender)
    await gateway.smtp.run(broken_document)
    await gateway.run()
    logged = await store.recent_smtplog(None, 10)
    assert len(logged) == 2 and all(entry.reply_code != 250 for entry in logged)
    assert await store.recent_faxes(None, 10) == []
    assert collector.received == []


async def test_a_fax_that_fails_after_acceptance_notifies_the_sender_once(
    gateway: Gateway, tenant: Tenant, store: Store, collector: Collector, clock: Clock
) -> None:
    msg = make_email(
        to="+14155550201@fax.test", attachments=[(pdf_bytes(1), "application/pdf", "x.pdf")]
    )
    await gateway.smtp.send(msg)
    [fax] = await store.recent_faxes(None, 1)
    await gateway.render.run_until_idle()
    # A busy number: three attempts, then failed; only the final outcome notifies.
    for _ in range(fax.retries):
        await gateway.worker.run_until_idle()
        await gateway.notifier.run_until_idle()
        clock.advance(10_000)
    fax = await store.get_fax(fax.id)
    assert fax.status is FaxStatus.FAILED and fax.attempts == fax.retries
    [notice] = collector.to("alice@example.com")
    assert notice["Subject"].startswith("Fax to +14155550201 failed: ")
    assert len(collector.received) == 3  # one each for alice, owner, ops: none per retry
