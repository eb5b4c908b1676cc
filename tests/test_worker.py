"""The worker over real SQLite: limits, per-number serialization, retries, recovery, drain.

Retries go over the real loopback T.30 line (remotes configured per number); concurrency is
checked with ``HeldLine``, a transport that holds calls open until the test lets them go. The
clock is moved by hand: no test sleeps through a retry delay.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from gateway.config import Settings
from gateway.inbound import FaxboxInbound
from gateway.models import FaxStatus
from gateway.store import Store
from gateway.store.records import AttemptOutcome
from gateway.transports.base import FaxTransport
from gateway.transports.loopback import LoopbackTransport
from gateway.worker import Worker
from tests.conftest import Clock, Tenant, make_settings, make_tenant
from tests.engine import HeldLine, g4_pdf, pending_job, settle, until
from tests.stores import raw, tx_result

BUSY = "+14155550201"
NO_ANSWER = "+14155550301"
DROPS = "+14155550401"  # hangs up after the first page
REFUSES = "+14155550501"
UNALLOCATED = "+14155550601"
REMOTES = {
    BUSY: "busy",
    NO_ANSWER: "no_answer",
    DROPS: "hangup_after:1",
    REFUSES: "refuse",
    UNALLOCATED: "invalid_number",
}


def worker_for(store: Store, transport: FaxTransport, tmp_path: Path, **worker: Any) -> Worker:
    settings: Settings = make_settings(tmp_path, worker=worker)
    return Worker(store, transport, settings.worker, owner="test-worker")


@pytest.fixture
async def line() -> AsyncIterator[LoopbackTransport]:
    transport = LoopbackTransport(REMOTES)
    yield transport
    await transport.close()


# -- concurrency -----------------------------------------------------------------------------


async def test_lines_bound_the_transmissions_in_progress(
    store: Store, tenant: Tenant, tmp_path: Path
) -> None:
    jobs = [await pending_job(store, tenant, f"+1415555100{n}") for n in range(7)]
    held = HeldLine()
    worker = worker_for(store, held, tmp_path, lines=3, max_outbound=10)
    run = asyncio.create_task(worker.run_until_idle())
    await until(lambda: held.in_progress == 3)
    await settle()
    assert held.in_progress == 3  # no fourth call while three lines are busy
    held.gate.set()
    await asyncio.wait_for(run, 10)
    assert held.max_active == 3
    assert len(held.calls) == 7
    for fax_id in jobs:
        assert (await store.get_fax(fax_id)).status is FaxStatus.COMPLETED


@pytest.fixture
def idle_too_soon_on_postgres(request: pytest.FixtureRequest) -> None:
    """Known defect on PostgreSQL (issue 13, open): now and then the worker goes idle while a
    due job to a number just freed is still pending, so one call never happens. Reported as an
    expected failure there until it is found; on SQLite the test holds as it is."""
    callspec = getattr(request.node, "callspec", None)
    if callspec is not None and callspec.params.get("store") == "postgres":
        request.applymarker(
            pytest.mark.xfail(
                reason="PostgreSQL: worker idle with a due job (issue 13)", strict=False
            )
        )


async def test_max_outbound_is_per_account(
    idle_too_soon_on_postgres: None, store: Store, tenant: Tenant, clock: Clock, tmp_path: Path
) -> None:
    other = await make_tenant(store, "other", domain="other.test")
    owners: dict[str, str] = {}
    for n in range(5):
        clock.advance(1)
        owners[await pending_job(store, tenant, f"+1415555200{n}")] = "acme"
    for n in range(2):
        owners[await pending_job(store, other, f"+1415555300{n}")] = "other"
    held = HeldLine(account_of=owners.__getitem__)
    worker = worker_for(store, held, tmp_path, lines=6, max_outbound=2)
    run = asyncio.create_task(worker.run_until_idle())
    await until(lambda: held.in_progress == 4)
    await settle()
    # Six lines, but two per account: acme's other three jobs wait though lines are free.
    assert held.in_progress == 4
    assert held.active_accounts == {"acme": 2, "other": 2}
    held.gate.set()
    await asyncio.wait_for(run, 10)
    assert held.max_per_account == {"acme": 2, "other": 2}
    assert len(held.calls) == 7


async def test_two_jobs_to_one_number_never_overlap(
    idle_too_soon_on_postgres: None, store: Store, tenant: Tenant, clock: Clock, tmp_path: Path
) -> None:
    same = []
    for _ in range(3):
        clock.advance(1)
        same.append(await pending_job(store, tenant, "+14155554000"))
    elsewhere = await pending_job(store, tenant, "+14155554001")
    held = HeldLine()
    worker = worker_for(store, held, tmp_path, lines=4)
    run = asyncio.create_task(worker.run_until_idle())
    await until(lambda: held.in_progress == 2)
    await settle()
    assert held.active == {"+14155554000": 1, "+14155554001": 1}
    held.gate.set()
    await asyncio.wait_for(run, 10)
    assert held.max_per_number == 1
    # In order of submission, one after the other.
    assert [c.fax_id for c in held.calls if c.to_number == "+14155554000"] == same
    assert {c.fax_id for c in held.calls} == {*same, elsewhere}


async def test_a_blocked_job_starts_as_soon_as_its_number_is_free(
    store: Store, tenant: Tenant, clock: Clock, tmp_path: Path
) -> None:
    first = await pending_job(store, tenant, "+14155554100")
    clock.advance(1)
    second = await pending_job(store, tenant, "+14155554100")
    held = HeldLine()
    worker = worker_for(store, held, tmp_path, lines=2, poll_s=60)
    stop = asyncio.Event()
    run = asyncio.create_task(worker.run(stop))
    await until(lambda: len(held.calls) == 1)
    held.gate.set()
    # poll_s is a minute: only the wake-up on the freed line can start the second call now.
    await until(lambda: len(held.calls) == 2, timeout=5)
    stop.set()
    await asyncio.wait_for(run, 10)
    assert [c.fax_id for c in held.calls] == [first, second]


# -- retry policy over the real line ---------------------------------------------------------


async def test_busy_is_retried_after_the_busy_delay_then_succeeds(
    store: Store, tenant: Tenant, clock: Clock, tmp_path: Path, line: LoopbackTransport
) -> None:
    fax_id = await pending_job(store, tenant, BUSY, pages=2, retries=3)
    worker = worker_for(store, line, tmp_path, retry_busy_s=180)
    await worker.run_until_idle()
    fax = await store.get_fax(fax_id)
    assert (fax.status, fax.attempts, fax.error) == (FaxStatus.PENDING, 1, "Busy")
    assert fax.next_attempt_at == clock.now + 180
    assert fax.tx_result is not None
    assert fax.tx_result["failure_class"] == "busy"
    assert fax.tx_result["result_code"] == -17

    clock.advance(179)
    await worker.run_until_idle()
    assert (await store.get_fax(fax_id)).attempts == 1  # not before the delay

    clock.advance(1)
    worker.transport = free_line = LoopbackTransport({})  # the remote's line is free now
    await worker.run_until_idle()
    await free_line.close()
    fax = await store.get_fax(fax_id)
    assert (fax.status, fax.attempts, fax.error) == (FaxStatus.COMPLETED, 2, None)
    tx = fax.tx_result
    assert tx is not None
    assert tx["success"] is True
    assert tx["pages_sent"] == 2
    assert tx["fax_speed"] == 14400
    assert tx["fax_error_correction"] is True
    assert tx["fax_receiver_id"] == BUSY
    assert tx["time_elapsed"] == 180
    log = await store.fax_attempts(fax_id)
    assert [(a["outcome"], a["failure_class"]) for a in log] == [
        ("retry", "busy"),
        ("completed", None),
    ]
    assert log[1]["started"] - log[0]["ended"] == 180


@pytest.mark.parametrize(
    ("number", "delay", "error", "failure_class"),
    [
        (NO_ANSWER, 300, "No answer", "no_answer"),
        (DROPS, 60, "The call dropped prematurely", "line"),
    ],
)
async def test_retries_exhausted_fail_with_the_last_error(
    store: Store,
    tenant: Tenant,
    clock: Clock,
    tmp_path: Path,
    line: LoopbackTransport,
    number: str,
    delay: int,
    error: str,
    failure_class: str,
) -> None:
    fax_id = await pending_job(store, tenant, number, pages=2, retries=3)
    worker = worker_for(store, line, tmp_path)  # HylaFAX-like defaults: 300 s, 60 s
    for attempt in (1, 2):
        await worker.run_until_idle()
        fax = await store.get_fax(fax_id)
        assert (fax.status, fax.attempts) == (FaxStatus.PENDING, attempt)
        assert fax.next_attempt_at == clock.now + delay
        clock.advance(delay)
    await worker.run_until_idle()
    fax = await store.get_fax(fax_id)
    assert (fax.status, fax.attempts, fax.error) == (FaxStatus.FAILED, 3, error)
    assert fax.next_attempt_at is None
    tx = fax.tx_result
    assert tx is not None
    assert (tx["success"], tx["error_message"], tx["failure_class"]) == (
        False,
        error,
        failure_class,
    )
    assert tx["time_elapsed"] == 2 * delay
    if number == DROPS:  # the remote confirmed one page of two each time
        assert (tx["pages_sent"], tx["total_pages"]) == (1, 2)
        assert tx["fax_speed"] == 14400
    else:
        assert (tx["pages_sent"], tx["fax_speed"]) == (0, 0)
    log = await store.fax_attempts(fax_id)
    assert [a["outcome"] for a in log] == ["retry", "retry", "failed"]
    assert {a["failure_class"] for a in log} == {failure_class}
    # Failed is final: nothing more goes out, however long we wait.
    clock.advance(86400)
    await worker.run_until_idle()
    assert len(await store.fax_attempts(fax_id)) == 3


@pytest.mark.parametrize(
    ("number", "error"),
    [
        (REFUSES, "Far end is not able to receive"),
        (UNALLOCATED, "Unallocated (unassigned) number"),
    ],
)
async def test_a_permanent_failure_fails_after_one_attempt(
    store: Store,
    tenant: Tenant,
    clock: Clock,
    tmp_path: Path,
    line: LoopbackTransport,
    number: str,
    error: str,
) -> None:
    fax_id = await pending_job(store, tenant, number, retries=4)
    worker = worker_for(store, line, tmp_path)
    await worker.run_until_idle()
    fax = await store.get_fax(fax_id)
    assert (fax.status, fax.attempts, fax.error) == (FaxStatus.FAILED, 1, error)
    assert fax.tx_result is not None and fax.tx_result["failure_class"] == "permanent"
    clock.advance(86400)
    await worker.run_until_idle()
    assert [a["outcome"] for a in await store.fax_attempts(fax_id)] == ["failed"]


async def test_a_job_without_its_image_fails_at_once(
    store: Store, tenant: Tenant, tmp_path: Path, line: LoopbackTransport
) -> None:
    fax_id = await pending_job(store, tenant)
    # (no store API loses an image: plain SQL)
    await raw(store).execute(
        "DELETE FROM fax_documents WHERE fax_id = ? AND role = 'tiff'", (fax_id,)
    )
    await worker_for(store, line, tmp_path).run_until_idle()
    fax = await store.get_fax(fax_id)
    assert (fax.status, fax.attempts, fax.error) == (
        FaxStatus.FAILED,
        1,
        "the fax image is missing",
    )


# -- crashes and stops -----------------------------------------------------------------------


async def test_an_expired_lease_is_taken_back_and_the_job_completes_once(
    store: Store, tenant: Tenant, clock: Clock, tmp_path: Path, line: LoopbackTransport
) -> None:
    fax_id = await pending_job(store, tenant, retries=3)
    [dead] = await store.claim_due("crashed-node", 120, 10, 1)  # then the node died
    worker = worker_for(store, line, tmp_path, lease_s=120)
    await worker.run_until_idle()
    assert (await store.get_fax(fax_id)).status is FaxStatus.PROCESSING  # lease still valid

    clock.advance(121)
    await worker.run_until_idle()
    fax = await store.get_fax(fax_id)
    assert (fax.status, fax.attempts) == (FaxStatus.COMPLETED, 2)
    log = await store.fax_attempts(fax_id)
    assert [(a["attempt"], a["outcome"]) for a in log] == [(1, "interrupted"), (2, "completed")]
    # The dead node's late report changes nothing; a completed job is never sent again.
    late = AttemptOutcome("completed", None, tx_result(True))
    assert not await store.finish_attempt(dead, "crashed-node", late, None)
    clock.advance(86400)
    await worker.run_until_idle()
    assert len(await store.fax_attempts(fax_id)) == 2


async def test_an_interrupted_last_attempt_fails_the_job(
    store: Store, tenant: Tenant, clock: Clock, tmp_path: Path
) -> None:
    fax_id = await pending_job(store, tenant, retries=1)
    await store.claim_due("crashed-node", 120, 10, 1)
    held = HeldLine()
    held.gate.set()
    clock.advance(121)
    await worker_for(store, held, tmp_path).run_until_idle()
    fax = await store.get_fax(fax_id)
    assert (fax.status, fax.attempts) == (FaxStatus.FAILED, 1)
    assert held.calls == []


async def test_stop_lets_a_running_transmission_finish_within_the_drain_timeout(
    store: Store, tenant: Tenant, tmp_path: Path
) -> None:
    fax_id = await pending_job(store, tenant)
    held = HeldLine()
    worker = worker_for(store, held, tmp_path, drain_timeout_s=30)
    stop = asyncio.Event()
    run = asyncio.create_task(worker.run(stop))
    await until(lambda: held.in_progress == 1)
    stop.set()
    await settle()
    assert not run.done()  # draining
    held.gate.set()
    await asyncio.wait_for(run, 10)
    assert (await store.get_fax(fax_id)).status is FaxStatus.COMPLETED


async def test_stop_hands_back_what_outlasts_the_drain_timeout(
    store: Store, tenant: Tenant, clock: Clock, tmp_path: Path
) -> None:
    fax_ids = [await pending_job(store, tenant, f"+1415555500{n}") for n in range(3)]
    held = HeldLine()
    worker = worker_for(store, held, tmp_path, lines=2, drain_timeout_s=0.2)
    stop = asyncio.Event()
    run = asyncio.create_task(worker.run(stop))
    await until(lambda: held.in_progress == 2)  # every line busy: stop must still be heard
    stop.set()
    await asyncio.wait_for(run, 10)
    assert held.in_progress == 0
    for fax_id in fax_ids:
        fax = await store.get_fax(fax_id)
        assert (fax.status, fax.attempts) == (FaxStatus.PENDING, 0)
        assert fax.next_attempt_at == clock.now
    outcomes = [a["outcome"] for f in fax_ids for a in await store.fax_attempts(f)]
    assert sorted(outcomes) == ["released", "released"]
    # The next start sends them; the released attempts did not count.
    held.gate.set()
    await worker_for(store, held, tmp_path).run_until_idle()
    for fax_id in fax_ids:
        fax = await store.get_fax(fax_id)
        assert (fax.status, fax.attempts) == (FaxStatus.COMPLETED, 1)


async def test_a_call_that_has_ended_is_recorded_even_past_the_drain_timeout(
    store: Store, tenant: Tenant, tmp_path: Path
) -> None:
    """The remote confirmed the pages: handing the job back now would send the fax twice."""
    local = await make_tenant(store, "local", domain="local.test", fax_number="+14155550777")
    fax_id = await pending_job(store, tenant, "+14155550777")
    pdf_wanted, pdf_gate = asyncio.Event(), asyncio.Event()

    async def slow_pdf(tiff: bytes) -> bytes:  # the reception's PDF takes its time
        pdf_wanted.set()
        await pdf_gate.wait()
        return g4_pdf(1)

    settings = make_settings(tmp_path, worker={"drain_timeout_s": 0.05})
    line = LoopbackTransport({}, FaxboxInbound(store, slow_pdf, "w", settings.worker.lease_s))
    worker = Worker(store, line, settings.worker, owner="w")
    stop = asyncio.Event()
    run = asyncio.create_task(worker.run(stop))
    await asyncio.wait_for(pdf_wanted.wait(), 10)  # the call is over, the recording is not
    stop.set()
    await asyncio.sleep(0.2)  # well past the drain timeout
    assert not run.done()
    pdf_gate.set()
    await asyncio.wait_for(run, 10)
    await line.close()
    fax = await store.get_fax(fax_id)
    assert (fax.status, fax.attempts) == (FaxStatus.COMPLETED, 1)
    assert [a["outcome"] for a in await store.fax_attempts(fax_id)] == ["completed"]
    [received] = await store.recent_faxes(local.account_id, 10)
    assert (received.status, received.pages) == (FaxStatus.COMPLETED, 1)
