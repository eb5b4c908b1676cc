"""Every transaction ends (COMMIT or ROLLBACK) whatever happens to the task that opened it.

aiosqlite runs each statement in a thread of its own: cancelling the coroutine that waits for
a statement does not stop it. A ``BEGIN IMMEDIATE`` waiting for another connection's write
lock still begins later, and a transaction nobody closes would hold the writer (and SQLite's
write lock) until restart. These tests hold the write lock from another connection, as a CLI
command, a backup or another process does, and cancel at each point.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from gateway import credentials
from gateway.models import DocumentKind, NewFax, SmtpLogEntry, SourceDocument
from gateway.store import SqliteStore
from gateway.store.database import Database
from tests.builders import pdf_bytes
from tests.conftest import Tenant


@pytest.fixture
def store(sqlite_store: SqliteStore) -> SqliteStore:
    """About SQLite's write lock: this module runs on SQLite alone."""
    return sqlite_store


@contextmanager
def another_writer(path: Path) -> Iterator[sqlite3.Connection]:
    """Another connection holding the database's write lock until the block ends."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
        yield conn
        conn.execute("ROLLBACK")
    finally:
        conn.close()


def log_entry() -> SmtpLogEntry:
    return SmtpLogEntry(id=credentials.new_id(), created=0.0)


def smtplog_ids(path: Path) -> list[str]:
    with sqlite3.connect(path) as db:
        return [row[0] for row in db.execute("SELECT id FROM smtplog ORDER BY rowid")]


async def started(task: asyncio.Task[object]) -> None:
    """Let ``task`` run its first step: it takes the writer and sends its BEGIN."""
    await asyncio.sleep(0)
    assert not task.done()


async def test_cancelled_while_waiting_to_begin_leaves_the_writer_usable(
    store: SqliteStore, database: Database
) -> None:
    path = database.path
    with another_writer(path):
        waiting: asyncio.Task[object] = asyncio.ensure_future(store.write_smtplog(log_entry()))
        await started(waiting)
        waiting.cancel()
    # The lock is free: the BEGIN that was waiting for it goes through after its caller left.
    with pytest.raises(asyncio.CancelledError):
        await waiting
    later = log_entry()
    await store.write_smtplog(later)
    assert smtplog_ids(path) == [later.id]  # the cancelled write wrote nothing
    with another_writer(path):  # and nothing of ours holds the write lock any more
        pass


async def test_cancelled_while_waiting_to_begin_then_again_while_it_ends(
    store: SqliteStore, database: Database
) -> None:
    with another_writer(database.path):
        waiting: asyncio.Task[object] = asyncio.ensure_future(store.write_smtplog(log_entry()))
        await started(waiting)
        waiting.cancel()
        await asyncio.sleep(0)
        waiting.cancel()  # a second hang-up, a shutdown on top of a timeout, ...
    with pytest.raises(asyncio.CancelledError):
        await waiting
    await store.create_account("after")


async def test_cancelled_inside_the_transaction_rolls_back(
    store: SqliteStore, database: Database
) -> None:
    inside = asyncio.Event()

    async def write() -> None:
        async with database.transaction() as db:
            await db.execute("INSERT INTO accounts (id, name, created) VALUES ('a', 'a', 0)")
            inside.set()
            await asyncio.Event().wait()  # until cancelled

    task = asyncio.ensure_future(write())
    await inside.wait()
    task.cancel()
    await asyncio.sleep(0)
    task.cancel()  # and once more while it rolls back
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await store.count_accounts() == 0
    await store.create_account("after")
    assert await store.count_accounts() == 1


async def test_cancelled_during_commit_the_commit_completes(
    store: SqliteStore, database: Database
) -> None:
    inside, finish = asyncio.Event(), asyncio.Event()

    async def write() -> None:
        async with database.transaction() as db:
            await db.execute("INSERT INTO accounts (id, name, created) VALUES ('a', 'a', 0)")
            inside.set()
            await finish.wait()

    task = asyncio.ensure_future(write())
    await inside.wait()
    finish.set()
    await asyncio.sleep(0)  # the body has ended and COMMIT is sent
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert await store.count_accounts() == 1
    await store.create_account("after")
    assert await store.count_accounts() == 2


async def test_intake_commit_interrupted_tells_its_callers_the_truth(
    store: SqliteStore, database: Database, tenant: Tenant
) -> None:
    """The group commit's own task cancelled (the loop shutting down) while its batch waits
    for the write lock: the batch still commits, and its callers hear that it did."""
    fax_id = credentials.new_id()
    fax = NewFax(account_id=tenant.account_id, to_number="+14155550100")
    doc = SourceDocument(DocumentKind.PDF, pdf_bytes(1), "a.pdf", 1)
    with another_writer(database.path):
        accepting = asyncio.ensure_future(store.accept_message(log_entry(), [(fax_id, fax)], [doc]))
        await asyncio.sleep(0)  # the message is queued and the batch task started
        await asyncio.sleep(0)  # the batch is in the database thread, waiting for the lock
        batches = store._intake_commits._task
        assert batches is not None and not batches.done()
        batches.cancel()
    await accepting  # no error: the rows are committed
    assert (await store.get_fax(fax_id)).id == fax_id
    await store.create_account("after")
