"""The send stage: claim due jobs under a lease, transmit, record the attempt, retry or finish.

Retry policy (HylaFAX-like): ``retries`` is the total number of attempts; busy, no answer and
line errors wait their configured delay; permanent failures fail at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Awaitable, Callable
from typing import Any

from gateway.config import WorkerSettings
from gateway.errors import GatewayError, StorageError
from gateway.events import wait_any
from gateway.store import Store
from gateway.store.jobs import AttemptOutcome, Claim
from gateway.transports.base import FailureClass, FaxTransport, OutboundCall, TxResult

log = logging.getLogger(__name__)

PdfMaker = Callable[[bytes], Awaitable[bytes]]


class LocalNumbers:
    """Numbers of our own faxboxes, for the loopback line (which asks synchronously)."""

    def __init__(self) -> None:
        self.numbers: set[str] = set()

    def __call__(self, number: str) -> bool:
        return number in self.numbers


def retry_delay(failure_class: FailureClass, settings: WorkerSettings) -> float:
    return {
        FailureClass.BUSY: settings.retry_busy_s,
        FailureClass.NO_ANSWER: settings.retry_no_answer_s,
    }.get(failure_class, settings.retry_line_s)


def tx_result_of(result: TxResult, pages: int, elapsed: float) -> dict[str, Any]:
    """The schema's tx_result keys, filled with the attempt's real figures."""
    return {
        "success": result.success,
        "error_message": result.error_message,
        "result_code": result.result_code,
        "result_text": result.result_text,
        "pages_sent": result.pages_sent,
        "total_pages": pages,
        "fax_speed": result.fax_speed,
        "fax_error_correction": result.fax_error_correction,
        "fax_receiver_id": result.fax_receiver_id,
        "fax_bad_rows": result.fax_bad_rows,
        "time_elapsed": round(max(0.0, elapsed)),
        "line_seconds": round(result.line_seconds, 1),
        "failure_class": result.failure_class.value if result.failure_class else None,
    }


def decide(
    result: TxResult, attempt: int, retries: int, settings: WorkerSettings, now: float
) -> tuple[str, float | None]:
    """The job's next state after an attempt: completed, failed, or retry at a time."""
    if result.success:
        return "completed", None
    if result.failure_class in (None, FailureClass.PERMANENT) or attempt >= retries:
        return "failed", None
    assert result.failure_class is not None
    return "retry", now + retry_delay(result.failure_class, settings)


class Worker:
    def __init__(
        self,
        store: Store,
        transport: FaxTransport,
        settings: WorkerSettings,
        make_pdf: PdfMaker,
        local_numbers: LocalNumbers | None = None,
        owner: str | None = None,
        on_finished: Callable[[str], None] = lambda fax_id: None,
    ) -> None:
        self.store = store
        self.transport = transport
        self.settings = settings
        self.make_pdf = make_pdf
        self.local_numbers = local_numbers or LocalNumbers()
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"
        self.on_finished = on_finished
        self.wake = asyncio.Event()
        self.tasks: set[asyncio.Task[None]] = set()

    async def run(self, stop: asyncio.Event) -> None:
        await self._recover()
        while not stop.is_set():
            started = await self.run_once()
            if started:
                continue
            self.wake.clear()
            await wait_any(stop, self.wake, within=await self._idle_time())
        await self.drain()

    async def _idle_time(self) -> float:
        poll = self.settings.poll_s
        try:
            due = await self.store.next_due_at()
        except StorageError:
            return poll
        if due is None:
            return poll * 5
        return min(poll * 5, max(0.0, due - self.store.clock()))

    async def _recover(self) -> None:
        try:
            recovered = await self.store.recover_expired()
        except StorageError:
            log.exception("worker: cannot recover expired leases")
            return
        if recovered:
            log.warning("worker: took back %d job(s) whose lease had expired", recovered)

    async def run_once(self) -> int:
        free = self.settings.lines - len(self.tasks)
        if free <= 0:
            await asyncio.wait(self.tasks, return_when=asyncio.FIRST_COMPLETED)
            return 0
        await self._recover()
        try:
            claims = await self.store.claim_due(
                self.owner, self.settings.lease_s, self.settings.max_outbound, free
            )
        except StorageError:
            log.exception("worker: cannot claim jobs")
            return 0
        for claim in claims:
            task = asyncio.create_task(self.transmit(claim))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
        return len(claims)

    async def run_until_idle(self) -> None:
        """Send everything due now, then return (tests and tools: arq's burst mode)."""
        while await self.run_once() or self.tasks:
            await asyncio.gather(*self.tasks)

    async def drain(self, within: float | None = None) -> None:
        """Let running transmissions finish, up to the drain timeout; then hand them back."""
        limit = self.settings.drain_timeout_s if within is None else within
        if self.tasks:
            _, pending = await asyncio.wait(self.tasks, timeout=limit)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.gather(*pending, return_exceptions=True)
        with contextlib.suppress(StorageError):
            released = await self.store.release_leases(self.owner)
            if released:
                log.warning("worker: released %d unfinished transmission(s)", released)

    async def transmit(self, claim: Claim) -> None:
        fax = claim.fax
        renewer = asyncio.create_task(self._renew(fax.id))
        inbound_id: str | None = None
        try:
            images = await self.store.fax_documents(fax.id, "tiff")
            if not images:
                result = _unsendable("the fax image is missing")
            else:
                local = await self.store.faxbox_by_fax_number(fax.to_number)
                if local is not None:
                    self.local_numbers.numbers.add(fax.to_number)
                    inbound_id = await self.store.begin_inbound(
                        local, fax.from_number, fax.fax_identity_number
                    )
                call = OutboundCall(
                    fax_id=fax.id,
                    to_number=fax.to_number,
                    from_number=fax.from_number,
                    tsi=fax.fax_identity_number,
                    header=fax.fax_identity_name,
                    timezone=fax.fax_timezone or "UTC",
                    tiff=images[0].data,
                    pages=fax.pages or images[0].pages,
                )
                result = await self.transport.send(call)
            await self._record(claim, result)
            if inbound_id is not None:
                await self._deliver_inbound(inbound_id, result)
        except Exception as exc:  # a broken attempt is a line error, retried like one
            log.exception("worker fax=%s: attempt %d broke", fax.id, claim.attempt)
            with contextlib.suppress(GatewayError):
                await self._record(claim, _line_error(f"transmission failed: {exc}"))
        finally:
            renewer.cancel()

    async def _record(self, claim: Claim, result: TxResult) -> None:
        fax = claim.fax
        now = self.store.clock()
        outcome, next_at = decide(result, claim.attempt, fax.retries, self.settings, now)
        tx = tx_result_of(result, fax.pages or 0, now - fax.created)
        cls = result.failure_class.value if result.failure_class else None
        recorded = await self.store.finish_attempt(
            claim, self.owner, AttemptOutcome(outcome, cls, tx), next_at
        )
        log.info(
            "attempt fax=%s n=%d to=%s outcome=%s class=%s pages=%d/%d speed=%d msgid=%s",
            fax.id,
            claim.attempt,
            fax.to_number,
            outcome if recorded else "lost-lease",
            cls,
            result.pages_sent,
            fax.pages or 0,
            result.fax_speed,
            fax.message_id,
        )
        if recorded and outcome != "retry":
            self.on_finished(fax.id)

    async def _deliver_inbound(self, inbound_id: str, result: TxResult) -> None:
        received = result.received
        rx: dict[str, Any] = {
            "success": bool(received and received.success and received.pages > 0),
            "result_text": received.result_text if received else result.result_text,
            "total_pages": received.pages if received else 0,
            "pages_received": received.pages if received else 0,
            "fax_speed": received.fax_speed if received else 0,
            "fax_error_correction": received.fax_error_correction if received else False,
            "fax_bad_rows": received.fax_bad_rows if received else 0,
            "remote_tsi": received.remote_tsi if received else None,
        }
        tiff = received.tiff if received and received.pages else None
        pdf = await self.make_pdf(tiff) if tiff else None
        await self.store.finish_inbound(inbound_id, rx, tiff, pdf, rx["pages_received"])
        self.on_finished(inbound_id)

    async def _renew(self, fax_id: str) -> None:
        interval = max(0.05, self.settings.lease_s / 3)
        while True:
            await asyncio.sleep(interval)
            try:
                if not await self.store.renew_lease(fax_id, self.owner, self.settings.lease_s):
                    return
            except StorageError:
                log.exception("worker fax=%s: lease renewal failed", fax_id)


def _unsendable(reason: str) -> TxResult:
    return TxResult(
        success=False,
        failure_class=FailureClass.PERMANENT,
        result_code=-1,
        result_text="document cannot be sent",
        error_message=reason,
        pages_sent=0,
        fax_speed=0,
        fax_error_correction=False,
        fax_receiver_id=None,
        fax_bad_rows=0,
        line_seconds=0.0,
    )


def _line_error(reason: str) -> TxResult:
    return TxResult(
        success=False,
        failure_class=FailureClass.LINE,
        result_code=-1,
        result_text="transmission error",
        error_message=reason,
        pages_sent=0,
        fax_speed=0,
        fax_error_correction=False,
        fax_receiver_id=None,
        fax_bad_rows=0,
        line_seconds=0.0,
    )
