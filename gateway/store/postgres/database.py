"""The PostgreSQL connection pool, transactions and migrations: the plumbing under
``PostgresStore``, shaped like the SQLite ``Database`` so the shared store code runs on both.

asyncpg, not psycopg 3: it is the maintained asyncio-native driver (binary protocol, prepared
statements cached per connection, a pool of its own). Not measured against psycopg 3 here
(it is not installed); bench/store.py measures asyncpg against SQLite.
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
from collections.abc import AsyncIterator, Callable, Generator, Iterable
from contextlib import asynccontextmanager
from contextvars import ContextVar
from typing import Any

import asyncpg

from gateway.errors import StorageError
from gateway.store.postgres.dialect import to_postgres
from gateway.store.postgres.schema import MIGRATIONS

# Set by a caller whose transaction must run alone among all nodes (claim_due): the
# transaction then begins by taking one advisory lock, released at its COMMIT.
serialized: ContextVar[bool] = ContextVar("serialized", default=False)
# Set by a caller whose transaction makes work for every node (new jobs, jobs made due): the
# transaction ends with a NOTIFY, which PostgreSQL delivers to the listeners at its COMMIT.
announce: ContextVar[bool] = ContextVar("announce", default=False)
WORK_CHANNEL = "fax_gateway_work"
_CLAIM_LOCK = 0x66617831  # "fax1": the advisory lock key of claim_due
_MIGRATE_LOCK = 0x66617832


def redacted(url: str) -> str:
    """The url without its password, for messages and logs."""
    return re.sub(r"(://[^:/@]+):[^@]*@", r"\1:***@", url)


class Cursor:
    """What the shared code reads of an sqlite3 cursor: rows, rowcount, lastrowid."""

    def __init__(self, rows: list[asyncpg.Record], rowcount: int) -> None:
        self._rows = rows
        self.rowcount = rowcount
        first = rows[0].get("id") if rows else None
        self.lastrowid: int | None = first if isinstance(first, int) else None

    async def fetchone(self) -> asyncpg.Record | None:
        return self._rows[0] if self._rows else None

    async def fetchall(self) -> list[asyncpg.Record]:
        return list(self._rows)

    async def close(self) -> None:
        return None


class _Statement:
    """``await conn.execute(...)`` and ``async with conn.execute(...) as cur``, as aiosqlite."""

    def __init__(self, conn: asyncpg.Connection, sql: str, params: tuple[Any, ...]) -> None:
        self._run = asyncio.ensure_future(_execute(conn, sql, params))

    def __await__(self) -> Generator[Any, None, Cursor]:
        return self._run.__await__()

    async def __aenter__(self) -> Cursor:
        return await self._run

    async def __aexit__(self, *exc: object) -> None:
        return None


class Connection:
    """One pooled connection inside a transaction, with aiosqlite's ``execute``."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.raw = conn

    def execute(self, sql: str, params: Iterable[Any] = ()) -> _Statement:
        return _Statement(self.raw, sql, tuple(params))

    async def executemany(self, sql: str, rows: Iterable[Iterable[Any]]) -> None:
        try:
            await self.raw.executemany(to_postgres(sql), [tuple(r) for r in rows])
        except asyncpg.PostgresError as exc:
            raise _as_sqlite(exc) from exc


async def _execute(conn: asyncpg.Connection, sql: str, params: tuple[Any, ...]) -> Cursor:
    text = to_postgres(sql)
    try:
        if "RETURNING" in text.upper() or text.lstrip().upper().startswith(("SELECT", "WITH")):
            rows = list(await conn.fetch(text, *params))
            return Cursor(rows, len(rows))
        status = await conn.execute(text, *params)
    except asyncpg.PostgresError as exc:
        raise _as_sqlite(exc) from exc
    tail = status.rsplit(" ", 1)[-1]
    return Cursor([], int(tail) if tail.isdigit() else -1)


def _as_sqlite(exc: asyncpg.PostgresError) -> sqlite3.Error:
    # The shared store code tells a constraint from other failures by sqlite3's classes.
    # SQLite's words are kept in front: callers tell a missing parent ("FOREIGN KEY") from a
    # duplicate ("UNIQUE") by them.
    if isinstance(exc, asyncpg.ForeignKeyViolationError):
        return sqlite3.IntegrityError(f"FOREIGN KEY constraint failed: {exc}")
    if isinstance(exc, asyncpg.UniqueViolationError):
        return sqlite3.IntegrityError(f"UNIQUE constraint failed: {exc}")
    if isinstance(exc, asyncpg.IntegrityConstraintViolationError):
        return sqlite3.IntegrityError(str(exc))
    return sqlite3.DatabaseError(f"{type(exc).__name__}: {exc}")


class PgDatabase:
    def __init__(self, url: str, min_size: int = 1, max_size: int = 10) -> None:
        self.url = url
        self.min_size = min_size
        self.max_size = max_size
        self._pool: asyncpg.Pool | None = None
        self._listener: asyncpg.Connection | None = None

    @property
    def schema_version(self) -> int:
        return len(MIGRATIONS)

    async def open(self, migrate: bool = False) -> None:
        try:
            self._pool = await asyncpg.create_pool(
                self.url, min_size=self.min_size, max_size=self.max_size
            )
            if migrate:
                await self.migrate()
            version = await self.version()
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            await self.close()
            raise StorageError(f"cannot open database {redacted(self.url)}: {exc}") from exc
        if version != len(MIGRATIONS):
            await self.close()
            if version < len(MIGRATIONS):
                raise StorageError(
                    f"database schema version {version} is older than this gateway's"
                    f" ({len(MIGRATIONS)}): run fax-gateway migrate"
                )
            raise StorageError(
                f"database schema version {version} is newer than this gateway knows"
                f" ({len(MIGRATIONS)}); upgrade the gateway"
            )

    @property
    def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise StorageError("database is closed")
        return self._pool

    async def version(self) -> int:
        async with self.pool.acquire() as conn:
            exists = await conn.fetchval("SELECT to_regclass('schema_version') IS NOT NULL")
            if not exists:
                return 0
            return int(await conn.fetchval("SELECT coalesce(max(version), 0) FROM schema_version"))

    async def migrate(self) -> int:
        """Apply the migrations this database lacks, each in its own transaction (two nodes
        migrating at once wait for each other on an advisory lock); the version now."""
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", _MIGRATE_LOCK)
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_version"
                " (version BIGINT PRIMARY KEY, applied DOUBLE PRECISION NOT NULL)"
            )
            version = int(
                await conn.fetchval("SELECT coalesce(max(version), 0) FROM schema_version")
            )
            if version > len(MIGRATIONS):
                raise StorageError(
                    f"database schema version {version} is newer than this gateway knows"
                )
            for number in range(version, len(MIGRATIONS)):
                await conn.execute(MIGRATIONS[number])
                await conn.execute(
                    "INSERT INTO schema_version VALUES ($1, extract(epoch from now()))",
                    number + 1,
                )
        return len(MIGRATIONS)

    async def listen(self, on_work: Callable[[], None]) -> None:
        """Call ``on_work`` whenever any node commits new work (LISTEN on a connection of its
        own: a pooled one would be handed to others)."""
        try:
            self._listener = await asyncpg.connect(self.url)
            await self._listener.add_listener(WORK_CHANNEL, lambda *_: on_work())
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise StorageError(f"cannot listen on {redacted(self.url)}: {exc}") from exc

    async def close(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            await listener.close()
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Connection]:
        """A transaction on one pooled connection; any database failure rolls back as
        StorageError (a constraint: sqlite3.IntegrityError, as the shared code expects)."""
        try:
            async with self.pool.acquire() as conn, conn.transaction():
                if serialized.get():
                    await conn.execute("SELECT pg_advisory_xact_lock($1)", _CLAIM_LOCK)
                yield Connection(conn)
                if announce.get():
                    await conn.execute("SELECT pg_notify($1, '')", WORK_CHANNEL)
        except sqlite3.Error as exc:
            raise StorageError(f"database error: {exc}") from exc
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as exc:
            raise StorageError(f"database error: {exc}") from exc

    async def fetchall(self, sql: str, params: Iterable[Any] = ()) -> list[asyncpg.Record]:
        try:
            return list(await self.pool.fetch(to_postgres(sql), *tuple(params)))
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as exc:
            raise StorageError(f"database error: {exc}") from exc

    async def fetchone(self, sql: str, params: Iterable[Any] = ()) -> asyncpg.Record | None:
        rows = await self.fetchall(sql, params)
        return rows[0] if rows else None

    async def writer_health(self, wait_s: float = 1.0) -> str | None:
        if self._pool is None:
            return "closed"
        try:
            await asyncio.wait_for(self._pool.fetchval("SELECT 1"), wait_s)
        except TimeoutError:
            return "busy"
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as exc:
            return f"unreachable: {type(exc).__name__}"
        return None
