"""Retention (purge), backup, and the admin actions on one fax, against a real SQLite store."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from gateway import credentials, housekeeping
from gateway.config import RetentionSettings
from gateway.errors import ConflictError, NotFoundError
from gateway.models import DocumentKind, FaxStatus, NewFax, SmtpLogEntry, SourceDocument
from gateway.store import Store
from tests.conftest import Clock, Tenant
from tests.engine import pending_job
from tests.stores import count, raw

DAY = 86400.0


async def set_status(store: Store, fax_id: str, status: str, **columns: object) -> None:
    sets = ", ".join(f"{k} = ?" for k in ("status", *columns))
    await raw(store).execute(
        f"UPDATE faxes SET {sets} WHERE id = ?", (status, *columns.values(), fax_id)
    )


async def message(store: Store, tenant: Tenant, numbers: list[str]) -> tuple[str, list[str]]:
    """What SMTP intake stores for one message to several numbers: one shared document."""
    entry = SmtpLogEntry(
        id=credentials.new_id(),
        created=store.clock(),
        peer_ip="127.0.0.1",
        helo="c",
        tls=False,
        auth_user=None,
        mail_from="a@example.com",
    )
    faxes = [
        (
            credentials.new_id(),
            NewFax(account_id=tenant.account_id, to_number=n, faxbox_id=tenant.faxbox.id),
        )
        for n in numbers
    ]
    entry.fax_ids = [fax_id for fax_id, _ in faxes]
    doc = SourceDocument(DocumentKind.TEXT, b"hello", "body.txt", 1)
    await store.accept_message(entry, faxes, [doc])
    return entry.id, entry.fax_ids


async def test_purge_takes_only_old_finished_faxes(store: Store, tenant: Tenant, clock: Clock):
    old_done = await pending_job(store, tenant, "+14155550101")
    old_failed = await pending_job(store, tenant, "+14155550102")
    old_pending = await pending_job(store, tenant, "+14155550103")
    await set_status(store, old_done, "completed")
    await set_status(store, old_failed, "failed", error="busy")
    log_id, (shared_done, shared_waiting) = await message(
        store, tenant, ["+14155550104", "+14155550105"]
    )
    await set_status(store, shared_done, "completed")
    await set_status(store, shared_waiting, "pending")  # not rendered: pending_job claims none
    clock.advance(10 * DAY)
    new_done = await pending_job(store, tenant, "+14155550106")
    await set_status(store, new_done, "completed")
    docs_before = await count(store, "SELECT count(*) FROM documents")

    kept_forever = await housekeeping.purge(store, RetentionSettings())
    assert kept_forever.as_dict() == dict.fromkeys(kept_forever.as_dict(), 0)

    result = await store.purge(
        documents_before=None, faxes_before=store.clock() - 5 * DAY, smtplog_before=None
    )
    assert result.faxes == 3  # old_done, old_failed, shared_done
    remaining = {r[0] for r in await raw(store).fetchall("SELECT id FROM faxes")}
    assert remaining == {old_pending, shared_waiting, new_done}
    # each pending_job has an original, a TIFF and a PDF; the shared text stays (still linked)
    assert result.documents == 6 and result.document_bytes > 0
    assert await count(store, "SELECT count(*) FROM documents") == docs_before - 6
    assert await count(store, "SELECT count(*) FROM attempts WHERE fax_id = ?", old_done) == 0
    assert await store.fax_documents(shared_waiting, "original")
    assert await count(store, "SELECT count(*) FROM smtplog WHERE id = ?", log_id) == 1

    stripped = await housekeeping.purge(store, RetentionSettings(documents_days=5, smtplog_days=5))
    assert stripped.faxes_stripped == 0 and stripped.smtplog == 1  # nothing old is finished
    await set_status(store, shared_waiting, "failed")
    stripped = await housekeeping.purge(store, RetentionSettings(documents_days=5))
    assert stripped.faxes_stripped == 1 and stripped.documents == 1  # the shared text, now
    assert (await store.get_fax(shared_waiting)).status is FaxStatus.FAILED  # the record stays
    assert await store.fax_documents(shared_waiting, "original") == []
    assert await store.fax_documents(new_done, "tiff")  # young: untouched
    assert await store.fax_documents(old_pending, "tiff")  # unfinished: untouched


async def test_a_fax_still_being_notified_is_kept(store: Store, tenant: Tenant, clock: Clock):
    fax_id = await pending_job(store, tenant)
    await set_status(store, fax_id, "completed")
    await raw(store).execute(
        "INSERT INTO notifications (fax_id, event, channel, recipient, state, created)"
        " VALUES (?, 'outbound_completed', 'email', 'a@example.com', 'pending', ?)",
        (fax_id, store.clock()),
    )
    clock.advance(30 * DAY)
    result = await housekeeping.purge(store, RetentionSettings(documents_days=1, faxes_days=1))
    assert result.faxes == 0 and result.faxes_stripped == 0
    await raw(store).execute("UPDATE notifications SET state = 'sent'")
    result = await housekeeping.purge(store, RetentionSettings(faxes_days=1))
    assert result.faxes == 1


async def test_backup_is_a_checked_self_contained_copy(
    store: Store, tenant: Tenant, tmp_path: Path, sqlite_only: None
):
    await pending_job(store, tenant)
    target = tmp_path / "backup.sqlite3"
    figures = await store.backup(target)
    assert figures["integrity"] == "ok" and figures["rows"]["faxes"] == 1
    assert figures["bytes"] == target.stat().st_size
    assert not list(tmp_path.glob(".backup.sqlite3.partial*"))
    with sqlite3.connect(target) as copy:
        assert copy.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
        assert copy.execute("SELECT count(*) FROM faxes").fetchone()[0] == 1


async def test_retry_puts_a_failed_job_back_with_more_attempts(store: Store, tenant: Tenant):
    fax_id = await pending_job(store, tenant, retries=2)
    await set_status(store, fax_id, "failed", attempts=2, error="busy")
    fax = await store.retry_fax(fax_id, 3)
    assert fax.status is FaxStatus.PENDING and fax.attempts == 2 and fax.retries == 5
    assert fax.error is None and fax.next_attempt_at == store.clock()
    with pytest.raises(ConflictError):
        await store.retry_fax(fax_id, 1)  # pending now, not failed

    await set_status(store, fax_id, "completed")
    with pytest.raises(ConflictError):
        await store.retry_fax(fax_id, 1)  # a completed fax is never sent again
    with pytest.raises(NotFoundError):
        await store.retry_fax("nope", 1)


async def test_retry_renders_again_or_refuses_without_documents(store: Store, tenant: Tenant):
    _, [fax_id] = await message(store, tenant, ["+14155550107"])
    await set_status(store, fax_id, "failed", error="render failed")
    assert (await store.retry_fax(fax_id, 1)).status is FaxStatus.ATTACHING_FILES
    await set_status(store, fax_id, "failed")
    await raw(store).execute("DELETE FROM fax_documents WHERE fax_id = ?", (fax_id,))
    with pytest.raises(ConflictError, match="purged"):
        await store.retry_fax(fax_id, 1)


async def test_retry_gives_a_job_that_crashed_the_renderer_a_fresh_start(
    store: Store, tenant: Tenant
):
    _, [fax_id] = await message(store, tenant, ["+14155550109"])
    assert await store.claim_attaching("node", 60, 1)
    assert await store.count_render_crash(fax_id, "node", limit=2) == 1
    await set_status(store, fax_id, "failed", error="rendering crashed the renderer twice")
    await store.retry_fax(fax_id, 1)
    assert await store.claim_attaching("node", 60, 1)
    # One crash after the retry is the first of two again, not the last.
    assert await store.count_render_crash(fax_id, "node", limit=2) == 1


async def test_cancel_fails_a_waiting_job_and_keeps_it(store: Store, tenant: Tenant):
    log_id, [fax_id] = await message(store, tenant, ["+14155550108"])
    fax = await store.cancel_fax(fax_id)
    assert fax.status is FaxStatus.FAILED and fax.error == "cancelled by admin"
    assert fax.tx_result is not None and fax.tx_result["result_text"] == "cancelled"
    assert await store.fax_documents(fax_id, "original")  # kept for the record
    entry = await store.get_smtplog(log_id)
    assert entry.errors[-1] == f"fax {fax_id}: cancelled by admin"
    with pytest.raises(ConflictError, match="failed"):
        await store.cancel_fax(fax_id)

    busy = await pending_job(store, tenant, "+14155550109")
    await set_status(store, busy, "processing")
    with pytest.raises(ConflictError, match="when the attempt ends"):
        await store.cancel_fax(busy)


async def test_queue_stats(store: Store, tenant: Tenant, clock: Clock):
    first = await pending_job(store, tenant, "+14155550110")
    clock.advance(60)
    await pending_job(store, tenant, "+14155550111")
    await set_status(store, first, "processing")
    stats = await store.queue_stats()
    assert stats.faxes == {("outbound", "processing"): 1, ("outbound", "pending"): 1}
    assert stats.due == 1
    assert stats.oldest_unfinished == clock() - 60
    assert stats.notification_backlog == 0


def test_cutoff() -> None:
    assert housekeeping.cutoff(10 * DAY, 0) is None
    assert housekeeping.cutoff(10 * DAY, 3) == 7 * DAY


async def test_purge_loop_runs_until_stopped(store: Store, tenant: Tenant, clock: Clock):
    import asyncio

    await message(store, tenant, ["+14155550112"])
    clock.advance(3 * DAY)
    stop = asyncio.Event()
    task = asyncio.create_task(
        housekeeping.run(store, lambda: RetentionSettings(smtplog_days=1, interval_s=0.01), stop)
    )
    for _ in range(200):
        if await count(store, "SELECT count(*) FROM smtplog") == 0:
            break
        await asyncio.sleep(0.01)
    stop.set()
    await asyncio.wait_for(task, 5)
    assert await count(store, "SELECT count(*) FROM smtplog") == 0


async def test_store_backup_path_error(store: Store, tmp_path: Path):
    from gateway.errors import StorageError

    with pytest.raises(StorageError):
        await store.backup(tmp_path / "missing-dir" / "copy.sqlite3")
