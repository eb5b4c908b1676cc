"""The send stage: claim due jobs under a lease, transmit, record the attempt, retry or finish.

Retry policy (HylaFAX-like): ``retries`` is the total number of attempts; busy, no answer and
line errors wait their configured delay; permanent failures fail at once.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
from collections.abc import Callable

from gateway.claims import ClaimLoop
from gateway.config import WorkerSettings
from gateway.errors import GatewayError, StorageError
from gateway.events import wait_any
from gateway.store import JobQueue
from gateway.store.records import AttemptOutcome, Claim, TxResultRecord
from gateway.transports.base import FailureClass, FaxTransport, OutboundCall, TxResult

log = logging.getLogger(__name__)


def retry_delay(failure_class: FailureClass, settings: WorkerSettings) -> float:
    return {
        FailureClass.BUSY: settings.retry_busy_s,
        FailureClass.NO_ANSWER: settings.retry_no_answer_s,
    }.get(failure_class, settings.retry_line_s)


def tx_result_of(result: TxResult, pages: int, elapsed: float) -> TxResultRecord:
    """The schema's tx_result keys, filled with the attempt's real figures."""
    return TxResultRecord(
        success=result.success,
        error_message=result.error_message,
        result_code=result.result_code,
        result_text=result.result_text,
        pages_sent=result.pages_sent,
        total_pages=pages,
        fax_speed=result.fax_speed,
        fax_error_correction=result.fax_error_correction,
        fax_receiver_id=result.fax_receiver_id,
        fax_bad_rows=result.fax_bad_rows,
        time_elapsed=round(max(0.0, elapsed)),
        failure_class=result.failure_class.value if result.failure_class else None,
        line_seconds=round(result.line_seconds, 1),
        sip_code=result.sip_code,
        media=result.media,
    )


def lease_owner() -> str:
    """A new lease holder's name: host, process and a random part (two workers in one process
    are two holders). A daemon gives its worker and its inbound line the same one, so that a
    stop hands back both the transmissions and the receptions it was running."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


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


class Worker(ClaimLoop):
    def __init__(
        self,
        store: JobQueue,
        transport: FaxTransport,
        settings: WorkerSettings,
        owner: str | None = None,
        on_finished: Callable[[str], None] = lambda fax_id: None,
    ) -> None:
        super().__init__()
        self.store: JobQueue = store
        self.transport = transport
        self.settings = settings
        self.owner = owner or lease_owner()
        self.on_finished = on_finished
        self.calls: set[asyncio.Task[TxResult]] = set()  # calls on the line now

    async def run(self, stop: asyncio.Event) -> None:
        """Claim and send until ``stop`` is set; then drain (see ``drain``)."""
        await self._recover()
        while not stop.is_set():
            self.beat()
            self.wake.clear()  # before claiming, so a line freed meanwhile is not missed
            if await self.run_once():
                continue
            await wait_any(stop, self.wake, within=await self._idle_time())
        await self.drain()

    async def _idle_time(self) -> float:
        """How long to sleep when nothing could be claimed: until the next job is due or the
        next lease runs out; a job that is due but blocked (its number or its account busy)
        is looked at again when one of our lines frees up (``wake``) or after ``poll_s``."""
        poll = self.settings.poll_s
        try:
            due = await self.store.next_due_at()
            lease = await self.store.next_lease_expiry()
        except StorageError:
            return poll
        now = self.store.clock()
        waits = [poll * 5]
        if due is not None:
            waits.append(due - now if due > now else poll)
        if lease is not None:
            waits.append(max(0.0, lease - now) + 0.01)
        return max(0.0, min(waits))

    async def _recover(self) -> None:
        try:
            recovered = await self.store.recover_expired()
        except StorageError:
            log.exception("worker: cannot recover expired leases")
            return
        if recovered:
            log.warning("worker: took back %d job(s) whose lease had expired", recovered)

    async def run_once(self) -> int:
        """Take back expired leases, claim what the free lines allow and start sending it;
        returns how many transmissions were started."""
        free = self.settings.lines - len(self.tasks)
        if free <= 0:
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
            self.start(self.transmit(claim), f"fax-{claim.fax.id}")
        return len(claims)

    @property
    def lease_s(self) -> float:
        return self.settings.lease_s

    async def drain(self, within: float | None = None) -> None:
        """Let running transmissions finish, up to the drain timeout; then hand the rest back
        (their leases released, their jobs due again, the cut-short attempts not counted).

        Only calls still on the line are cut: an attempt whose call has ended is always
        recorded, so a fax the remote has confirmed is never handed back to be sent again.
        """
        limit = self.settings.drain_timeout_s if within is None else within
        if self.tasks:
            log.info("worker: waiting up to %gs for %d transmission(s)", limit, len(self.tasks))
            _, pending = await asyncio.wait(set(self.tasks), timeout=limit)
            if pending:
                for call in list(self.calls):
                    call.cancel()
                # Each transmission now ends without recording (its call was cut) or records
                # the call that had just ended; a store that hangs still cannot hold the stop.
                _, stuck = await asyncio.wait(pending, timeout=max(5.0, self.settings.lease_s))
                for task in stuck:
                    task.cancel()
                await asyncio.gather(*pending, return_exceptions=True)
        try:
            released = await self.store.release_leases(self.owner)
        except StorageError:
            log.exception("worker: cannot release leases; they will expire")
            return
        if released:
            log.warning("worker: released %d unfinished transmission(s)", released)

    async def transmit(self, claim: Claim) -> None:
        """One attempt: send, record the outcome (and a local faxbox's reception), never raise
        for an unsuccessful call. The lease is renewed for as long as this runs."""
        fax = claim.fax
        renewer = asyncio.create_task(self.keep_leases([fax.id]))
        try:
            try:
                images = await self.store.fax_documents(fax.id, "tiff")
                if not images:
                    result = _no_call(
                        FailureClass.PERMANENT,
                        "document cannot be sent",
                        "the fax image is missing",
                    )
                else:
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
                    result = await self._call(call)
            except asyncio.CancelledError:
                current = asyncio.current_task()
                if current is not None and current.cancelling():
                    raise  # this transmission itself is being cancelled
                # Only the call was cut (drain timeout): nothing to record; ``drain`` hands
                # the job back and ends the reception it was feeding.
                log.warning("worker fax=%s: call cut short by the stop", fax.id)
                return
            except Exception as exc:  # a broken attempt is a line error, retried like one
                log.exception("worker fax=%s: attempt %d broke", fax.id, claim.attempt)
                result = _no_call(
                    FailureClass.LINE, "transmission error", f"transmission failed: {exc}"
                )
            try:
                await self._record(claim, result)
            except GatewayError:
                log.exception("worker fax=%s: cannot record attempt %d", fax.id, claim.attempt)
                # The lease runs out and the attempt is taken back as interrupted.
        finally:
            renewer.cancel()

    async def _call(self, call: OutboundCall) -> TxResult:
        """The call itself, as a task of its own: the one part a stop may cut short."""
        task = asyncio.create_task(self.transport.send(call), name=f"call-{call.fax_id}")
        self.calls.add(task)
        task.add_done_callback(self.calls.discard)
        return await task

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
            extra={  # fields of the JSON log format (gateway.logs)
                "event": "attempt",
                "fax_id": fax.id,
                "attempt": claim.attempt,
                "to_number": fax.to_number,
                "outcome": outcome if recorded else "lost-lease",
                "failure_class": cls,
                "pages_sent": result.pages_sent,
                "line_seconds": round(result.line_seconds, 1),
                "message_id": fax.message_id,
                "smtplog_id": fax.smtplog_id,
            },
        )
        if recorded and outcome != "retry":
            self.on_finished(fax.id)


def _no_call(failure_class: FailureClass, result_text: str, reason: str) -> TxResult:
    """An attempt that never reached the line."""
    return TxResult(
        success=False,
        failure_class=failure_class,
        result_code=-1,
        result_text=result_text,
        error_message=reason,
        pages_sent=0,
        fax_speed=0,
        fax_error_correction=False,
        fax_receiver_id=None,
        fax_bad_rows=0,
        line_seconds=0.0,
    )
