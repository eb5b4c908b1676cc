"""The store backends tests run against, and raw row access for the few tests that must look
under the interface.

``BACKENDS`` maps a backend's name to a factory: given the test's settings and clock, it yields
an opened store and cleans up after it. The ``store`` fixture (tests/conftest.py) is
parametrized over ``BACKENDS``; a new backend adds one entry here and one ``RAW`` adapter.

``raw(store)`` gives SQL access to whatever database the store holds: statements are written
once with ``?`` placeholders and the portable subset of SQL both backends read (an adapter
rewrites the placeholders its driver wants). Use it to seed a state no public method makes, or
to check a row no public method shows; prefer the store's own methods everywhere else.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, Protocol

from gateway.config import Settings
from gateway.models import SourceDocument
from gateway.store import SqliteStore, Store
from gateway.store.database import Database
from gateway.store.records import TxResultRecord

Clock = Callable[[], float]
Row = Any  # aiosqlite.Row, asyncpg.Record: both index by position and by column name
StoreFactory = Callable[[Settings, Clock], AbstractAsyncContextManager[Store]]


class RawRows(Protocol):
    # An ORDER BY expression that lists a table's rows in the order they were inserted.
    write_order: str

    async def fetchall(self, sql: str, params: Iterable[Any] = ()) -> list[Row]: ...

    async def fetchone(self, sql: str, params: Iterable[Any] = ()) -> Row | None: ...

    async def execute(self, sql: str, params: Iterable[Any] = ()) -> list[Row]:
        """One statement in a transaction of its own (rows of a RETURNING clause, if any)."""
        ...

    async def script(self, statements: Sequence[tuple[str, Iterable[Any]]]) -> None:
        """Several statements in one transaction."""
        ...


@asynccontextmanager
async def sqlite_store(settings: Settings, clock: Clock) -> AsyncIterator[Store]:
    store = SqliteStore(Database(settings.storage.path, settings.storage.synchronous), clock)
    await store.open()
    try:
        yield store
    finally:
        await store.close()


@asynccontextmanager
async def postgres_store(settings: Settings, clock: Clock) -> AsyncIterator[Store]:
    """A PostgresStore on a new database of the session's private cluster (tests/pgcluster)."""
    from gateway.store.postgres import PgDatabase, PostgresStore
    from tests.pgcluster import session_cluster

    cluster = session_cluster()
    name = "t_" + uuid.uuid4().hex[:16]
    url = cluster.create_database(name)
    await PostgresStore(PgDatabase(url), clock).migrate()
    store = PostgresStore(PgDatabase(url), clock)
    await store.open()
    try:
        yield store
    finally:
        await store.close()
        cluster.drop_database(name)


BACKENDS: dict[str, StoreFactory] = {"sqlite": sqlite_store, "postgres": postgres_store}


class SqliteRows:
    write_order = "rowid"

    def __init__(self, database: Database) -> None:
        self.database = database

    async def fetchall(self, sql: str, params: Iterable[Any] = ()) -> list[Row]:
        return await self.database.fetchall(sql, params)

    async def fetchone(self, sql: str, params: Iterable[Any] = ()) -> Row | None:
        return await self.database.fetchone(sql, params)

    async def execute(self, sql: str, params: Iterable[Any] = ()) -> list[Row]:
        async with self.database.transaction() as db, db.execute(sql, tuple(params)) as cur:
            return list(await cur.fetchall())

    async def script(self, statements: Sequence[tuple[str, Iterable[Any]]]) -> None:
        async with self.database.transaction() as db:
            for sql, params in statements:
                await db.execute(sql, tuple(params))


# How to reach the rows of each implementation: its type and an adapter over what it holds.
RAW: list[tuple[type[Any], Callable[[Any], RawRows]]] = [
    (SqliteStore, lambda store: SqliteRows(store.database)),
]


def raw(store: Store) -> RawRows:
    for kind, adapter in RAW:
        if isinstance(store, kind):
            return adapter(store)
    raise TypeError(f"no raw row access for {type(store).__name__}: add it to tests.stores.RAW")


async def count(store: Store, sql: str, *params: object) -> int:
    """The single number a ``SELECT count(*) ...`` gives."""
    row = await raw(store).fetchone(sql, params)
    assert row is not None
    return int(row[0])


def tx_result(success: bool = False, error: str | None = "Busy", pages: int = 1) -> TxResultRecord:
    """An attempt's result with only what a store test looks at."""
    return TxResultRecord(
        success=success,
        error_message=None if success else error,
        result_code=0 if success else 3,
        result_text="OK" if success else (error or "failed"),
        pages_sent=pages if success else 0,
        total_pages=pages,
        fax_speed=14400 if success else 0,
        fax_error_correction=False,
        fax_receiver_id=None,
        fax_bad_rows=0,
        time_elapsed=0,
        failure_class=None if success else "busy",
    )


async def link_new_document(
    store: Store, fax_id: str, role: str, seq: int, doc: SourceDocument
) -> int:
    """Store ``doc``'s bytes and link them to the fax as ``role``, as intake or a render
    would: for seeding a fax in a state no public method reaches directly. The document id."""
    rows = raw(store)
    [row] = await rows.execute(
        "INSERT INTO documents (data, size, sha256) VALUES (?, ?, ?) RETURNING id",
        (doc.data, len(doc.data), hashlib.sha256(doc.data).hexdigest()),
    )
    document_id = int(row[0])
    await rows.execute(
        "INSERT INTO fax_documents (fax_id, role, seq, document_id, filename, kind, pages)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        (fax_id, role, seq, document_id, doc.filename, doc.kind.value, doc.pages),
    )
    return document_id
