"""Helpers for the job-engine tests: ready-to-send jobs and a transport that holds calls open."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable
from functools import cache

from gateway.documents.pdfout import tiff_to_pdf
from gateway.models import DocumentKind, NewFax, SourceDocument
from gateway.store import Store
from gateway.transports.base import OutboundCall, TxResult
from tests.builders import tiff_bytes
from tests.conftest import Tenant


@cache
def g4_pdf(pages: int = 1) -> bytes:
    """The PDF rendition of ``tiff_bytes(pages)``."""
    return tiff_to_pdf(tiff_bytes(pages))


async def pending_job(
    store: Store,
    tenant: Tenant,
    to_number: str = "+14155550123",
    *,
    pages: int = 1,
    retries: int = 3,
) -> str:
    """A job as the render stage leaves it: ``pending``, due now, with its TIFF and PDF."""
    tiff = tiff_bytes(pages)
    fax_id = await store.create_fax(
        NewFax(
            account_id=tenant.account_id,
            to_number=to_number,
            from_number=tenant.faxbox.caller_id,
            faxbox_id=tenant.faxbox.id,
            from_name=tenant.faxbox.caller_name,
            fax_identity_number=tenant.faxbox.fax_identity,
            fax_identity_name=tenant.faxbox.fax_header,
            fax_timezone="Europe/Paris",
            retries=retries,
            source="api",
        ),
        [SourceDocument(DocumentKind.TIFF, tiff, "original.tif", pages)],
    )
    claimed = await store.claim_attaching("test-render", 60, 1)
    assert [f.id for f in claimed] == [fax_id]
    assert await store.finish_render(fax_id, "test-render", tiff, g4_pdf(pages), pages)
    return fax_id


def ok_result(call: OutboundCall) -> TxResult:
    return TxResult(
        success=True,
        failure_class=None,
        result_code=0,
        result_text="OK",
        error_message=None,
        pages_sent=call.pages,
        fax_speed=14400,
        fax_error_correction=True,
        fax_receiver_id=call.to_number,
        fax_bad_rows=0,
        line_seconds=20.0 * call.pages,
    )


class HeldLine:
    """A ``FaxTransport`` whose calls stay open until the test lets them go.

    It keeps the figures the concurrency tests check: calls in progress in all, per number
    and per account (the account is looked up through ``account_of``)."""

    def __init__(self, account_of: Callable[[str], str] | None = None) -> None:
        self.gate = asyncio.Event()
        self.account_of = account_of or (lambda fax_id: "")
        self.calls: list[OutboundCall] = []
        self.active: Counter[str] = Counter()  # per number
        self.active_accounts: Counter[str] = Counter()
        self.max_active = 0
        self.max_per_number = 0
        self.max_per_account: Counter[str] = Counter()

    @property
    def in_progress(self) -> int:
        return sum(self.active.values())

    async def send(self, call: OutboundCall) -> TxResult:
        account = self.account_of(call.fax_id)
        self.calls.append(call)
        self.active[call.to_number] += 1
        self.active_accounts[account] += 1
        self.max_active = max(self.max_active, self.in_progress)
        self.max_per_number = max(self.max_per_number, self.active[call.to_number])
        self.max_per_account[account] = max(
            self.max_per_account[account], self.active_accounts[account]
        )
        try:
            await self.gate.wait()
        finally:
            self.active[call.to_number] -= 1
            self.active_accounts[account] -= 1
        return ok_result(call)

    async def close(self) -> None:
        pass


async def until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    """Let the event loop run until ``predicate()`` holds (fails the test after ``timeout``)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.005)


async def settle(rounds: int = 50) -> None:
    """Give every runnable task many turns (to show that something does *not* happen)."""
    for _ in range(rounds):
        await asyncio.sleep(0)
