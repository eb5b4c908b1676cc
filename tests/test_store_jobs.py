"""The job store's state machine and leases, on each store backend with a hand-moved clock."""

from __future__ import annotations

from gateway.models import DocumentKind, FaxStatus, NewFax, SmtpLogEntry, SourceDocument
from gateway.store import Store
from gateway.store.records import AttemptOutcome, Claim
from tests.builders import tiff_bytes
from tests.conftest import Clock, Tenant, make_tenant
from tests.engine import g4_pdf, pending_job
from tests.stores import tx_result

LEASE = 30.0


def outcome(kind: str, success: bool = False, error: str | None = "Busy") -> AttemptOutcome:
    return AttemptOutcome(kind, None if success else "busy", tx_result(success, error))


async def claim_one(store: Store, owner: str = "w1", max_per_account: int = 10) -> Claim:
    claims = await store.claim_due(owner, LEASE, max_per_account, 1)
    assert len(claims) == 1
    return claims[0]


async def test_lifecycle_attaching_pending_processing_retry_completed(
    store: Store, tenant: Tenant, clock: Clock
) -> None:
    fax_id = await store.create_fax(
        NewFax(account_id=tenant.account_id, to_number="+14155550123", retries=3, source="api"),
        [SourceDocument(DocumentKind.TIFF, tiff_bytes(2), "in.tif", 2)],
    )
    assert (await store.get_fax(fax_id)).status is FaxStatus.ATTACHING_FILES
    assert await store.claim_due("w1", LEASE, 10, 5) == []  # not rendered yet: not sendable

    [claimed] = await store.claim_attaching("render", LEASE, 5)
    assert claimed.id == fax_id
    assert await store.claim_attaching("render-2", LEASE, 5) == []  # leased
    assert await store.finish_render(fax_id, "render", tiff_bytes(2), g4_pdf(2), 2)
    fax = await store.get_fax(fax_id)
    assert (fax.status, fax.pages, fax.next_attempt_at) == (FaxStatus.PENDING, 2, clock.now)
    assert [d.pages for d in await store.fax_documents(fax_id, "tiff")] == [2]
    assert (await store.fax_documents(fax_id, "pdf"))[0].data.startswith(b"%PDF")

    claim = await claim_one(store)
    assert (claim.attempt, claim.fax.status) == (1, FaxStatus.PROCESSING)
    assert await store.claim_due("w2", LEASE, 10, 5) == []  # claimed once only
    assert await store.finish_attempt(claim, "w1", outcome("retry"), clock.now + 180)
    fax = await store.get_fax(fax_id)
    assert (fax.status, fax.attempts, fax.error) == (FaxStatus.PENDING, 1, "Busy")
    assert fax.next_attempt_at == clock.now + 180

    clock.advance(179)
    assert await store.claim_due("w1", LEASE, 10, 5) == []  # not due yet
    clock.advance(1)
    claim = await claim_one(store)
    assert claim.attempt == 2
    assert await store.finish_attempt(claim, "w1", outcome("completed", success=True), None)
    fax = await store.get_fax(fax_id)
    assert (fax.status, fax.attempts, fax.error) == (FaxStatus.COMPLETED, 2, None)
    assert fax.delivered == clock.now
    assert fax.tx_result == tx_result(True).as_dict()

    # A completed job is never claimed, recovered or released again.
    clock.advance(10_000)
    assert await store.claim_due("w1", LEASE, 10, 5) == []
    assert await store.recover_expired() == 0
    assert await store.release_leases("w1") == 0
    assert (await store.get_fax(fax_id)).status is FaxStatus.COMPLETED
    log = await store.fax_attempts(fax_id)
    assert [(a["attempt"], a["outcome"]) for a in log] == [(1, "retry"), (2, "completed")]
    assert [a["failure_class"] for a in log] == ["busy", None]
    assert log[1]["started"] == log[0]["started"] + 180


async def test_render_failure_fails_the_job_and_notes_it_in_the_smtplog(
    store: Store, tenant: Tenant, clock: Clock
) -> None:
    entry = SmtpLogEntry(id="log1", created=clock.now, mail_from="alice@example.com")
    fax = NewFax(account_id=tenant.account_id, to_number="+14155550123")
    await store.accept_message(entry, [("fax1", fax)], [])
    assert [f.id for f in await store.claim_attaching("render", LEASE, 5)] == ["fax1"]
    assert not await store.fail_job("fax1", "x.pdf: corrupt", tx_result(), owner="other")
    assert await store.fail_job("fax1", "x.pdf: corrupt", tx_result(), owner="render")
    failed = await store.get_fax("fax1")
    assert (failed.status, failed.error, failed.folder) == (
        FaxStatus.FAILED,
        "x.pdf: corrupt",
        "outbox",
    )
    assert (await store.get_smtplog("log1")).errors == ["fax fax1: x.pdf: corrupt"]
    # final states stay final
    assert not await store.fail_job("fax1", "again", tx_result(), owner=None)


async def test_a_lost_lease_cannot_overwrite_a_newer_decision(
    store: Store, tenant: Tenant, clock: Clock
) -> None:
    fax_id = await pending_job(store, tenant)
    stale = await claim_one(store, "w1")
    clock.advance(LEASE + 1)  # w1 hangs past its lease; the reaper takes the job back
    assert await store.recover_expired() == 1
    fresh = await claim_one(store, "w2")
    assert fresh.attempt == 2

    assert not await store.renew_lease(fax_id, "w1", LEASE)
    assert not await store.finish_attempt(stale, "w1", outcome("completed", True), None)
    assert (await store.get_fax(fax_id)).status is FaxStatus.PROCESSING
    assert await store.finish_attempt(fresh, "w2", outcome("failed", error="refused"), None)
    # ... nor after the job has ended.
    assert not await store.finish_attempt(stale, "w1", outcome("completed", True), None)
    fax = await store.get_fax(fax_id)
    assert (fax.status, fax.error) == (FaxStatus.FAILED, "refused")
    log = await store.fax_attempts(fax_id)
    assert [(a["attempt"], a["outcome"]) for a in log] == [(1, "interrupted"), (2, "failed")]


async def test_a_lost_render_lease_cannot_finish_the_render(
    store: Store, tenant: Tenant, clock: Clock
) -> None:
    fax_id = await store.create_fax(
        NewFax(account_id=tenant.account_id, to_number="+14155550123"),
        [SourceDocument(DocumentKind.TIFF, tiff_bytes(1), "in.tif")],
    )
    await store.claim_attaching("r1", LEASE, 5)
    clock.advance(LEASE + 1)
    [again] = await store.claim_attaching("r2", LEASE, 5)
    assert again.id == fax_id
    assert not await store.finish_render(fax_id, "r1", tiff_bytes(1), g4_pdf(1), 1)
    assert not await store.store_originals(fax_id, "r1", [])
    assert await store.finish_render(fax_id, "r2", tiff_bytes(1), g4_pdf(1), 1)


async def test_renewal_keeps_the_reaper_away(store: Store, tenant: Tenant, clock: Clock) -> None:
    fax_id = await pending_job(store, tenant)
    await claim_one(store)
    for _ in range(5):
        clock.advance(LEASE * 0.6)
        assert await store.renew_lease(fax_id, "w1", LEASE)
        assert await store.recover_expired() == 0
    assert await store.next_lease_expiry() == clock.now + LEASE


async def test_recover_expired_counts_the_interrupted_attempt_once(
    store: Store, tenant: Tenant, clock: Clock
) -> None:
    fax_id = await pending_job(store, tenant, pages=2, retries=2)
    await claim_one(store)
    clock.advance(LEASE - 1)
    assert await store.recover_expired() == 0  # not expired yet
    clock.advance(2)
    assert await store.recover_expired() == 1
    fax = await store.get_fax(fax_id)
    assert (fax.status, fax.attempts, fax.next_attempt_at) == (FaxStatus.PENDING, 1, clock.now)
    assert fax.tx_result is not None
    assert fax.tx_result["success"] is False
    assert fax.tx_result["result_text"] == "interrupted"
    assert fax.tx_result["total_pages"] == 2
    assert fax.tx_result["time_elapsed"] == round(LEASE + 1)
    [row] = await store.fax_attempts(fax_id)
    assert (row["outcome"], row["failure_class"], row["ended"]) == (
        "interrupted",
        "line",
        clock.now,
    )
    assert await store.recover_expired() == 0  # once only

    # The second (last) attempt is interrupted too: the job fails instead of looping.
    await claim_one(store)
    clock.advance(LEASE + 1)
    assert await store.recover_expired() == 1
    fax = await store.get_fax(fax_id)
    assert (fax.status, fax.attempts) == (FaxStatus.FAILED, 2)
    assert fax.error is not None and "interrupted" in fax.error
    assert [a["outcome"] for a in await store.fax_attempts(fax_id)] == ["interrupted"] * 2


async def test_release_leases_hands_back_only_the_owners_jobs(
    store: Store, tenant: Tenant, clock: Clock
) -> None:
    mine = await pending_job(store, tenant, "+14155550001")
    clock.advance(1)
    theirs = await pending_job(store, tenant, "+14155550002")
    await claim_one(store, "me")
    await claim_one(store, "them")
    attaching = await store.create_fax(
        NewFax(account_id=tenant.account_id, to_number="+14155550003"),
        [SourceDocument(DocumentKind.TIFF, tiff_bytes(1), "in.tif")],
    )
    await store.claim_attaching("me", LEASE, 5)

    clock.advance(5)
    assert await store.release_leases("me") == 1
    fax = await store.get_fax(mine)
    assert (fax.status, fax.attempts, fax.next_attempt_at) == (FaxStatus.PENDING, 0, clock.now)
    assert [a["outcome"] for a in await store.fax_attempts(mine)] == ["released"]
    assert (await store.get_fax(theirs)).status is FaxStatus.PROCESSING
    # The released render lease lets another renderer take the job at once.
    assert [f.id for f in await store.claim_attaching("other", LEASE, 5)] == [attaching]

    # The released attempt did not count: the next one is number 1 again, in a row of its own.
    claim = await claim_one(store, "me")
    assert (claim.fax.id, claim.attempt) == (mine, 1)
    assert await store.finish_attempt(claim, "me", outcome("completed", True), None)
    log = await store.fax_attempts(mine)
    assert [(a["attempt"], a["outcome"]) for a in log] == [(1, "released"), (1, "completed")]


async def test_a_reception_cut_short_ends_as_a_failed_inbound_fax(
    store: Store, tenant: Tenant, clock: Clock
) -> None:
    local = await make_tenant(store, "local", domain="local.test", fax_number="+14155550777")
    crashed = await store.begin_inbound(local.faxbox, "+14155550199", "ACME", "w1", LEASE)
    stopped = await store.begin_inbound(local.faxbox, "+14155550199", "ACME", "w2", LEASE)
    incoming = await store.get_fax(crashed)
    assert (incoming.status, incoming.folder) == (FaxStatus.PROCESSING, "incoming")

    assert await store.release_leases("w2") == 0  # no outbound job, but the reception ends
    clock.advance(LEASE + 1)
    await store.recover_expired()
    for fax_id in (crashed, stopped):
        fax = await store.get_fax(fax_id)
        assert (fax.status, fax.folder) == (FaxStatus.FAILED, "inbox")
        assert fax.rx_result is not None and fax.rx_result["success"] is False
    # A late finish of a reception that was already ended changes nothing.
    rx = {"success": True, "pages_received": 1}
    assert not await store.finish_inbound(crashed, rx, tiff_bytes(1), None, 1)
    assert (await store.get_fax(crashed)).status is FaxStatus.FAILED


async def test_claim_due_serializes_numbers_and_limits_accounts(
    store: Store, tenant: Tenant, clock: Clock
) -> None:
    other = await make_tenant(store, "other", domain="other.test")

    async def job(owner: Tenant, number: str) -> str:
        clock.advance(1)  # distinct times, so that "oldest first" is well defined
        return await pending_job(store, owner, number)

    same = [await job(tenant, "+14155550100") for _ in range(3)]
    a_jobs = [await job(tenant, f"+1415555020{n}") for n in range(4)]
    b_job = await job(other, "+14155550300")

    claims = await store.claim_due("w1", LEASE, 2, 10)
    # One job per number; the account limit (2) stops the first account; and accounts take
    # turns: the other account's job, although the newest, comes before the first account's
    # second one.
    assert [c.fax.id for c in claims] == [same[0], b_job, a_jobs[0]]
    assert [c.attempt for c in claims] == [1, 1, 1]
    # Nothing more while the limits hold, even with lines to spare.
    assert await store.claim_due("w1", LEASE, 2, 10) == []
    # A finished job frees its number and an account slot: the oldest job to that number next.
    assert await store.finish_attempt(claims[0], "w1", outcome("completed", True), None)
    assert [c.fax.id for c in await store.claim_due("w1", LEASE, 2, 10)] == [same[1]]


async def test_claim_due_respects_the_limit_and_fifo_within_an_account(
    store: Store, tenant: Tenant, clock: Clock
) -> None:
    jobs = []
    for n in range(5):
        clock.advance(1)
        jobs.append(await pending_job(store, tenant, f"+1415555040{n}"))
    first = await store.claim_due("w1", LEASE, 10, 2)
    assert [c.fax.id for c in first] == jobs[:2]
    second = await store.claim_due("w1", LEASE, 10, 10)
    assert [c.fax.id for c in second] == jobs[2:]


async def test_inbound_receptions_do_not_count_as_outbound_transmissions(
    store: Store, tenant: Tenant
) -> None:
    local = await make_tenant(store, "local", domain="local.test", fax_number="+14155550777")
    await store.begin_inbound(local.faxbox, "+14155550199", "ACME", "w1", LEASE)
    await pending_job(store, local, "+14155550777")  # to the number being received on
    assert len(await store.claim_due("w1", LEASE, 1, 10)) == 1


async def test_a_claim_without_its_attempt_id_ends_the_attempt_by_its_number(
    store: Store, tenant: Tenant
) -> None:
    """A Claim made before attempt ids were kept (a worker of the previous version)."""
    fax_id = await pending_job(store, tenant)
    claimed = await claim_one(store)
    assert claimed.attempt_id is not None
    legacy = Claim(claimed.fax, claimed.attempt)
    assert await store.finish_attempt(legacy, "w1", outcome("completed", True), None)
    log = await store.fax_attempts(fax_id)
    assert [(a["attempt"], a["outcome"]) for a in log] == [(1, "completed")]
