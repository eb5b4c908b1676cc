"""Office attachments over SMTP, end to end: converted during the transaction (the page count is
known before 250, the PDF is what is stored), refused with a clear reply when LibreOffice
hangs, is busy or is missing, and the server keeps taking mail afterwards."""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from email.message import EmailMessage
from pathlib import Path

import pytest
from officegen import PAGE_BREAK, docx, rtf, stand_in

from gateway.config import Settings
from gateway.documents.office import OfficeConverter
from gateway.documents.office_process import LibreOfficeConverter, OfficeLimits, find_soffice
from gateway.errors import ConversionError
from gateway.models import DocumentKind
from gateway.smtp.handler import IntakeHandler
from gateway.smtp.server import SmtpServer
from gateway.store import Store
from tests.conftest import Clock, Outcome, SmtpHarness, Tenant, transact

DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"

StartOffice = Callable[[OfficeConverter | None], Awaitable[SmtpHarness]]


@pytest.fixture
async def start_office(
    store: Store, settings: Settings, clock: Clock
) -> AsyncIterator[StartOffice]:
    started: list[SmtpHarness] = []

    async def start(office: OfficeConverter | None) -> SmtpHarness:
        handler = IntakeHandler(store, settings.smtp, clock=clock, office=office)
        server = SmtpServer(handler, settings.smtp)
        harness = SmtpHarness(await server.start(), server, store)
        started.append(harness)
        return harness

    yield start
    for harness in started:
        await harness.server.close()


def message_with(data: bytes, filename: str, ctype: str = DOCX) -> EmailMessage:
    message = EmailMessage()
    message["From"] = "alice@example.com"
    message["To"] = "+14155550100@fax.test"
    message["Subject"] = "the contract"
    maintype, subtype = ctype.split("/")
    message.add_attachment(data, maintype=maintype, subtype=subtype, filename=filename)
    return message


@pytest.mark.skipif(find_soffice("auto") is None, reason="LibreOffice not installed")
async def test_docx_is_converted_during_the_transaction(
    start_office: StartOffice, tenant: Tenant
) -> None:
    smtp = await start_office(LibreOfficeConverter(find_soffice("auto") or "", slots=1))
    document = docx(["Quarterly invoice", PAGE_BREAK, "Shipping manifest"])
    outcome = await smtp.transact(message_with(document, "invoice.docx"))
    assert outcome.final[0] == 250, outcome
    [fax_id] = outcome.fax_ids
    [stored] = await smtp.store.fax_documents(fax_id)
    assert stored.kind is DocumentKind.PDF
    assert stored.pages == 2
    assert stored.data.startswith(b"%PDF")
    [entry] = await smtp.smtplog()
    assert entry.reply_code == 250


async def test_no_libreoffice_is_refused_by_name(start_office: StartOffice, tenant: Tenant) -> None:
    smtp = await start_office(None)
    outcome = await smtp.transact(message_with(docx(["Hello"]), "letter.docx"))
    assert outcome.final[0] == 554
    assert outcome.final[1].startswith("5.6.1 ")
    assert "office documents need LibreOffice on this gateway" in outcome.final[1]


async def test_a_hanging_conversion_is_refused_and_the_server_goes_on(
    start_office: StartOffice, tenant: Tenant, tmp_path: Path
) -> None:
    converter = LibreOfficeConverter(
        stand_in(tmp_path, "sleep 1000; true"), 1, OfficeLimits(timeout_s=0.5)
    )
    smtp = await start_office(converter)
    outcome = await smtp.transact(message_with(rtf(["x"]), "hang.rtf", "application/rtf"))
    assert outcome.final == (554, "5.6.5 hang.rtf: LibreOffice timed out after 0.5 s")
    # The same server takes the next message (a plain text body) as before.
    plain = EmailMessage()
    plain["From"] = "alice@example.com"
    plain["To"] = "+14155550100@fax.test"
    plain["Subject"] = "after the hang"
    plain.set_content("Still here.")
    assert (await smtp.transact(plain)).final[0] == 250


async def test_every_slot_busy_is_a_temporary_refusal(
    start_office: StartOffice, tenant: Tenant, tmp_path: Path
) -> None:
    gate, started = tmp_path / "gate", tmp_path / "started"
    script = stand_in(
        tmp_path,
        f'touch "{started}"; while [ ! -e "{gate}" ]; do sleep 0.05; done; exit 3',
    )
    smtp = await start_office(LibreOfficeConverter(script, 1, OfficeLimits(slot_wait_s=0.2)))
    first = asyncio.ensure_future(
        asyncio.to_thread(
            lambda: _transact(smtp, message_with(rtf(["a"]), "a.rtf", "application/rtf"))
        )
    )
    try:
        while not started.exists():
            await asyncio.sleep(0.01)
        # Not smtp.transact: it waits for every connection to end, the held one too.
        second = await asyncio.to_thread(
            _transact, smtp, message_with(rtf(["b"]), "b.rtf", "application/rtf")
        )
    finally:
        gate.touch()
    assert second.final[0] == 451
    assert second.final[1].startswith("4.3.2 ")
    assert "slot" in second.final[1]
    held = await first
    assert held.final[0] == 554  # the stand-in failed it once let go: exit status 3


def _transact(smtp: SmtpHarness, message: EmailMessage) -> Outcome:
    with smtp.client() as client:
        return transact(client, data=message)


class HeldConverter:
    """An Office converter that holds every conversion until let go, as LibreOffice slots
    taken by a burst of Office mail do."""

    def __init__(self) -> None:
        self.entered = threading.Semaphore(0)
        self.release = threading.Event()

    def to_pdf(self, data: bytes, fmt: str, filename: str) -> bytes:
        self.entered.release()
        self.release.wait()
        raise ConversionError(filename, "let go by the test")


async def test_held_conversions_do_not_stall_other_mail(
    start_office: StartOffice, tenant: Tenant
) -> None:
    office = HeldConverter()
    smtp = await start_office(office)
    # More conversions waiting than the default thread pool has threads; the test waits in
    # threads of its own, so that it cannot be stalled by what it tests.
    held = min(32, (os.cpu_count() or 1) + 4) + 1
    waiter = ThreadPoolExecutor(2)
    loop = asyncio.get_running_loop()
    results: list[Outcome] = []
    clients = [
        threading.Thread(
            target=lambda: results.append(
                _transact(smtp, message_with(rtf(["x"]), "x.rtf", "application/rtf"))
            )
        )
        for _ in range(held)
    ]
    for client in clients:
        client.start()
    try:
        # The guards only keep a failure from hanging: every conversion must start, and the
        # plain note must be answered while they are held.
        entered = [
            await loop.run_in_executor(waiter, lambda: office.entered.acquire(timeout=60))
            for _ in range(held)
        ]
        assert all(entered), "not every Office message reached its conversion"
        plain = EmailMessage()
        plain["From"] = "alice@example.com"
        plain["To"] = "+14155550100@fax.test"
        plain["Subject"] = "while Office mail waits"
        plain.set_content("A plain note.")
        done: list[Outcome] = []
        talker = threading.Thread(target=lambda: done.append(_transact(smtp, plain)))
        talker.start()
        await loop.run_in_executor(waiter, talker.join, 60)
        assert done and done[0].final[0] == 250
    finally:
        office.release.set()
        for client in clients:
            await loop.run_in_executor(waiter, client.join)
        waiter.shutdown()
    assert [r.final[0] for r in results] == [554] * held
