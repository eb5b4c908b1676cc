"""SqliteStore's own plumbing: its file, pragmas, migrations and group commit.

These tests build the store themselves from a ``Database`` they hold, so they read SQLite's
state through that collaborator rather than through the store.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from gateway import credentials
from gateway.config import StorageSettings
from gateway.errors import StorageError
from gateway.models import DocumentKind, NewFax, SmtpLogEntry, SourceDocument
from gateway.store import SqliteStore, open_store
from gateway.store.database import Database
from gateway.store.schema import MIGRATIONS
from tests.builders import pdf_bytes
from tests.conftest import Clock, make_tenant


@dataclass
class Embedded:
    store: SqliteStore
    database: Database

    def connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.database.path)


@pytest.fixture
async def embedded(tmp_path: Path, clock: Clock) -> AsyncIterator[Embedded]:
    database = Database(tmp_path / "gw.sqlite3", "normal")
    store = SqliteStore(database, clock)
    await store.open()
    yield Embedded(store, database)
    await store.close()


def entry() -> SmtpLogEntry:
    return SmtpLogEntry(id=credentials.new_id(), created=0.0)


def docs() -> list[SourceDocument]:
    return [SourceDocument(DocumentKind.PDF, pdf_bytes(1), "a.pdf", 1)]


async def test_open_store_opens_the_sqlite_file_storage_names(tmp_path: Path) -> None:
    path = tmp_path / "named.sqlite3"
    store = await open_store(StorageSettings(path=path, synchronous="normal"), lambda: 5.0)
    try:
        assert isinstance(store, SqliteStore)
        account, _, _ = await store.create_account("opened")
        assert account.created == 5.0  # the clock it was given
    finally:
        await store.close()
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT name FROM accounts").fetchall() == [("opened",)]


async def test_schema_is_migrated_to_the_latest_version(embedded: Embedded) -> None:
    with embedded.connect() as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {
        "accounts",
        "api_tokens",
        "faxboxes",
        "faxes",
        "documents",
        "fax_documents",
        "smtplog",
        "notifications",
    } <= tables
    assert embedded.database.schema_version == len(MIGRATIONS)


async def test_wal_and_foreign_keys_on_every_connection(embedded: Embedded) -> None:
    database = embedded.database
    for conn in (database._writer, database._reader):
        assert conn is not None
        async with conn.execute("PRAGMA journal_mode") as cur:
            assert (await cur.fetchone())[0] == "wal"  # type: ignore[index]
        async with conn.execute("PRAGMA foreign_keys") as cur:
            assert (await cur.fetchone())[0] == 1  # type: ignore[index]
    with embedded.connect() as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"  # persistent


@pytest.mark.parametrize(("setting", "value"), [("full", 2), ("normal", 1)])
async def test_synchronous_setting(tmp_path: Path, setting: str, value: int) -> None:
    database = Database(tmp_path / "s.sqlite3", setting)
    store = SqliteStore(database)
    await store.open()
    try:
        async with database._writer.execute("PRAGMA synchronous") as cur:  # type: ignore[union-attr]
            assert (await cur.fetchone())[0] == value  # type: ignore[index]
    finally:
        await store.close()


async def test_reopening_keeps_data_and_does_not_migrate_again(
    tmp_path: Path, clock: Clock
) -> None:
    path = tmp_path / "db" / "nested" / "gw.sqlite3"  # folders are created
    store = SqliteStore(Database(path, "normal"), clock)
    await store.open()
    account, _, _ = await store.create_account("kept")
    await store.close()
    again = SqliteStore(Database(path, "normal"), clock)
    await again.open()
    assert (await again.get_account(account.id)).name == "kept"
    await again.close()


async def test_upgrade_from_the_first_version(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    with sqlite3.connect(path) as db:
        db.executescript(MIGRATIONS[0] + "\nPRAGMA user_version=1;")
        db.execute("INSERT INTO accounts (id, name, realm, created) VALUES ('a1', 'old', NULL, 0)")
    store = SqliteStore(Database(path, "normal"))
    await store.open()
    try:
        assert (await store.get_account("a1")).name == "old"
        with sqlite3.connect(path) as db:
            assert db.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
    finally:
        await store.close()


async def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "future.sqlite3"
    with sqlite3.connect(path) as db:
        db.execute(f"PRAGMA user_version={len(MIGRATIONS) + 1}")
    store = SqliteStore(Database(path, "normal"))
    with pytest.raises(StorageError, match="newer than this gateway knows"):
        await store.open()


async def test_two_processes_starting_on_a_fresh_file(tmp_path: Path) -> None:
    """A CLI command and the daemon may open a new database at the same moment."""
    path = tmp_path / "race.sqlite3"
    stores = [SqliteStore(Database(path, "normal")) for _ in range(4)]
    await asyncio.gather(*(s.open() for s in stores))
    try:
        with sqlite3.connect(path) as db:
            assert db.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
    finally:
        for s in stores:
            await s.close()


async def test_not_a_database(tmp_path: Path) -> None:
    path = tmp_path / "garbage.sqlite3"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StorageError, match="cannot open database"):
        await SqliteStore(Database(path, "normal")).open()


async def test_tokens_never_reach_the_file(embedded: Embedded) -> None:
    _, auth_token, api_key = await embedded.store.create_account("acme")
    await embedded.store.close()  # checkpoint the WAL into the file
    on_disk = embedded.database.path.read_bytes()
    assert auth_token.encode() not in on_disk and api_key.encode() not in on_disk
    await embedded.store.open()


async def test_a_failing_smtplog_insert_takes_the_jobs_with_it(embedded: Embedded) -> None:
    tenant = await make_tenant(embedded.store)
    with embedded.connect() as db:
        db.execute(
            "CREATE TRIGGER no_log BEFORE INSERT ON smtplog BEGIN SELECT RAISE(ABORT, 'full'); END"
        )
    fax = NewFax(account_id=tenant.account_id, to_number="+14155550100")
    with pytest.raises(StorageError, match="full"):
        await embedded.store.accept_message(entry(), [(credentials.new_id(), fax)], docs())
    with embedded.connect() as db:
        for table in ("faxes", "documents", "fax_documents", "smtplog"):
            assert db.execute(f"SELECT count(*) FROM {table}").fetchone()[0] == 0
    await embedded.store.create_account("after")  # the writer is usable after the rollback


async def test_concurrent_messages_share_commits(embedded: Embedded) -> None:
    store = embedded.store
    tenant = await make_tenant(store)

    async def accept(n: int) -> None:
        fax = NewFax(account_id=tenant.account_id, to_number=f"+1415555{n:04d}")
        await store.accept_message(entry(), [(credentials.new_id(), fax)], docs())

    await asyncio.gather(*(accept(n) for n in range(40)))
    assert 1 <= store._intake_commits.commits < 40  # batched: fewer commits than messages
    # Document ids (taken as max(id)+1 in the batch) keep counting after a single write.
    await store.create_fax(NewFax(account_id=tenant.account_id, to_number="+14155550100"), docs())
    await accept(99)
    with embedded.connect() as db:
        assert db.execute("SELECT count(*) FROM documents").fetchone()[0] == 42
