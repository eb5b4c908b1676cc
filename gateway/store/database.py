"""The SQLite connection pair, transactions and migrations: the store's plumbing."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager, suppress
from pathlib import Path
from typing import Any, Generic, TypeVar

import aiosqlite

from gateway.errors import StorageError
from gateway.store.schema import MIGRATIONS

T = TypeVar("T")


class Database:
    """One writer connection (serialized by a lock) and one reader connection, both WAL.

    SQLite allows one writer at a time anyway; serializing writers in asyncio avoids
    SQLITE_BUSY and keeps every transaction's statements together on one connection.

    Hot paths that write many rows at once use ``run_sync``: a whole transaction as one
    synchronous function, run in one round trip to a thread of its own (a plain sqlite3
    connection), under the same lock.
    """

    def __init__(self, path: Path, synchronous: str = "full") -> None:
        self.path = path
        self.synchronous = synchronous
        self._writer: aiosqlite.Connection | None = None
        self._reader: aiosqlite.Connection | None = None
        self._sync: sqlite3.Connection | None = None
        self._sync_thread: ThreadPoolExecutor | None = None
        self._lock = asyncio.Lock()

    async def open(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._writer = await self._connect()
            await self._migrate(self._writer)
            self._reader = await self._connect()
            self._sync_thread = ThreadPoolExecutor(1, thread_name_prefix="sqlite-sync")
            self._sync = await asyncio.get_running_loop().run_in_executor(
                self._sync_thread, self._connect_sync
            )
        except BaseException as exc:
            await self.close()
            if isinstance(exc, sqlite3.Error | OSError):
                raise StorageError(f"cannot open database {self.path}: {exc}") from exc
            raise

    async def _connect(self) -> aiosqlite.Connection:
        conn = await aiosqlite.connect(self.path, isolation_level=None)
        try:
            conn.row_factory = aiosqlite.Row
            # First: switching a new file to WAL needs a lock another process may hold.
            await conn.execute("PRAGMA busy_timeout=5000")
            await _switch_to_wal(conn)
            await conn.execute(f"PRAGMA synchronous={self.synchronous.upper()}")
            await conn.execute("PRAGMA foreign_keys=ON")
        except BaseException:
            await conn.close()
            raise
        return conn

    @staticmethod
    async def _user_version(conn: aiosqlite.Connection) -> int:
        async with conn.execute("PRAGMA user_version") as cur:
            row = await cur.fetchone()
        return int(row[0]) if row else 0

    async def _migrate(self, conn: aiosqlite.Connection) -> None:
        while (version := await self._user_version(conn)) < len(MIGRATIONS):
            try:
                # The version bump rides in the migration's own transaction. BEGIN IMMEDIATE
                # makes a second process (a CLI command beside a starting daemon) wait for the
                # first; it then fails on the tables just made, finds the new version, moves on.
                await conn.executescript(
                    f"BEGIN IMMEDIATE;\n{MIGRATIONS[version]}\n"
                    f"PRAGMA user_version={version + 1};\nCOMMIT;"
                )
            except sqlite3.Error:
                with suppress(sqlite3.Error):
                    await conn.execute("ROLLBACK")
                if await self._user_version(conn) <= version:
                    raise
        if version > len(MIGRATIONS):
            raise StorageError(
                f"database schema version {version} is newer than this gateway knows"
                f" ({len(MIGRATIONS)}); upgrade the gateway"
            )

    def _connect_sync(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None)
        try:
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA busy_timeout=5000")
            conn.execute(f"PRAGMA synchronous={self.synchronous.upper()}")
            conn.execute("PRAGMA foreign_keys=ON")
        except BaseException:
            conn.close()
            raise
        return conn

    async def close(self) -> None:
        for conn in (self._reader, self._writer):
            if conn is not None:
                await conn.close()
        self._reader = self._writer = None
        sync, pool, self._sync, self._sync_thread = self._sync, self._sync_thread, None, None
        if pool is not None:
            async with self._lock:  # a run_sync transaction in flight finishes first
                if sync is not None:
                    await asyncio.get_running_loop().run_in_executor(pool, sync.close)
            pool.shutdown(wait=False)

    async def run_sync(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``work`` inside BEGIN IMMEDIATE … COMMIT in the sync connection's thread, in
        one round trip; failures roll back and raise StorageError. Serialized with
        ``transaction()``. A caller cancelled meanwhile is cancelled once the transaction has
        ended (a thread cannot be stopped): the lock is held until then."""
        async with self._lock:
            if self._sync is None or self._sync_thread is None:
                raise StorageError("database is closed")
            call = asyncio.get_running_loop().run_in_executor(
                self._sync_thread, _transaction, self._sync, work
            )
            try:
                return await _to_the_end(call)
            except sqlite3.Error as exc:
                raise StorageError(f"database error: {exc}") from exc

    @property
    def schema_version(self) -> int:
        return len(MIGRATIONS)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[aiosqlite.Connection]:
        """BEGIN IMMEDIATE … COMMIT on the writer; any failure rolls back as StorageError.

        The writer is handed on only once its transaction has ended, however the task that
        opened it ends (an error, a cancellation while waiting for BEGIN, during the body, at
        COMMIT or during the ROLLBACK): one transaction left open would refuse every later
        one and hold SQLite's write lock until restart."""
        if self._writer is None:
            raise StorageError("database is closed")
        async with self._lock:
            conn = self._writer
            await _begin(conn)
            committed = False
            try:
                yield conn
                await _to_the_end(_execute(conn, "COMMIT"))
                committed = True
            except sqlite3.Error as exc:
                raise StorageError(f"database error: {exc}") from exc
            finally:
                if not committed:  # also after a COMMIT that failed or whose caller left
                    await _to_the_end(_rollback(conn))

    async def fetchall(self, sql: str, params: Iterable[Any] = ()) -> list[aiosqlite.Row]:
        if self._reader is None:
            raise StorageError("database is closed")
        try:
            # One round trip to the connection's thread (execute, fetch and close in one go).
            return list(await self._reader.execute_fetchall(sql, tuple(params)))
        except sqlite3.Error as exc:
            raise StorageError(f"database error: {exc}") from exc

    async def fetchone(self, sql: str, params: Iterable[Any] = ()) -> aiosqlite.Row | None:
        rows = await self.fetchall(sql, params)
        return rows[0] if rows else None

    async def backup_to(self, target: Path) -> None:
        if self._reader is None:
            raise StorageError("database is closed")
        dest = await aiosqlite.connect(target)
        try:
            await self._reader.backup(dest)
        except sqlite3.Error as exc:
            raise StorageError(f"backup failed: {exc}") from exc
        finally:
            await dest.close()

    async def writer_health(self, wait_s: float = 1.0) -> str | None:
        """The writer's state, for the health check: None (usable), "closed", "in a
        transaction" although we hold the lock (nothing will ever end it, and every later
        BEGIN fails), or "busy" (the lock was not free within ``wait_s``). Another process
        holding SQLite's write lock only makes our transactions wait (busy_timeout)."""
        if self._writer is None:
            return "closed"
        try:
            await asyncio.wait_for(self._lock.acquire(), wait_s)
        except TimeoutError:
            return "busy"
        try:
            if self._writer is None:
                return "closed"
            return "in a transaction" if self._writer.in_transaction else None
        except (ValueError, sqlite3.Error):  # aiosqlite's "no active connection"
            return "closed"
        finally:
            self._lock.release()


async def _switch_to_wal(conn: aiosqlite.Connection, tries: int = 100) -> None:
    """``PRAGMA journal_mode=WAL``, waiting out another process doing the same.

    Two processes opening a new file at once (the daemon and a CLI command) race to switch it:
    SQLite answers the loser SQLITE_BUSY at once, without the busy handler (it would deadlock
    waiting), so the wait is ours: up to about busy_timeout in all."""
    for attempt in range(tries):
        try:
            await conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or attempt == tries - 1:
                raise
            await asyncio.sleep(0.05)


def _transaction(conn: sqlite3.Connection, work: Callable[[sqlite3.Connection], T]) -> T:
    conn.execute("BEGIN IMMEDIATE")
    try:
        result = work(conn)
        conn.execute("COMMIT")
    except BaseException:
        with suppress(sqlite3.Error):
            conn.execute("ROLLBACK")
        raise
    return result


async def _to_the_end(work: Awaitable[T]) -> T:
    """Await ``work`` until it has finished, however often the caller is cancelled meanwhile,
    then raise the cancellation (in place of the work's own outcome). A statement handed to a
    database thread runs to its end whatever happens to the coroutine that waits for it, and
    the state of the connection is known only once it has: a cancelled caller is held up at
    most for one statement (a BEGIN waits up to busy_timeout)."""
    task = asyncio.ensure_future(work)
    cancelled = False
    while not task.done():
        try:
            await asyncio.wait([task])
        except asyncio.CancelledError:
            cancelled = True
    if cancelled:
        if not task.cancelled():
            task.exception()  # retrieved: the caller hears of its cancellation instead
        raise asyncio.CancelledError
    return task.result()


async def _execute(conn: aiosqlite.Connection, sql: str) -> None:
    await conn.execute(sql)


async def _rollback(conn: aiosqlite.Connection) -> None:
    # Fails harmlessly when there is nothing to roll back: a COMMIT got through after all, or
    # the connection is closed (which rolled back).
    with suppress(sqlite3.Error, ValueError):
        await conn.execute("ROLLBACK")


async def _begin(conn: aiosqlite.Connection) -> None:
    try:
        await _to_the_end(_execute(conn, "BEGIN IMMEDIATE"))
    except sqlite3.Error as exc:
        raise StorageError(f"cannot begin transaction: {exc}") from exc
    except asyncio.CancelledError:
        # The caller left while BEGIN waited for the write lock (busy_timeout); the BEGIN
        # went through or failed in its thread all the same: end what it may have opened.
        await _to_the_end(_rollback(conn))
        raise


class GroupCommit(Generic[T]):
    """Concurrent writes of one kind share a transaction: one COMMIT (one fsync) for all.

    Whatever is submitted while a batch is being written waits and goes in the next batch, so
    an idle store writes each item at once and a busy one writes many per commit. ``submit``
    returns only after the COMMIT that holds its item's rows (and raises if that failed). A
    batch that fails is written again one item per transaction, so that an item that cannot
    be written fails alone. The batches run in a task of their own: a caller that is cancelled
    (its client hung up) does not cut a commit in half.
    """

    def __init__(
        self,
        db: Database,
        write: Callable[[sqlite3.Connection, Sequence[T]], None],
        max_batch: int = 128,
    ) -> None:
        self.db = db
        self.write = write
        self.max_batch = max_batch
        self._queue: list[tuple[T, asyncio.Future[None]]] = []
        self._task: asyncio.Task[None] | None = None
        self.commits = 0  # transactions committed (fewer than items when it batches)

    async def submit(self, item: T) -> None:
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        self._queue.append((item, done))
        if self._task is None or self._task.done():
            self._task = loop.create_task(self._run())
        await done

    async def _run(self) -> None:
        while self._queue:
            batch = self._queue[: self.max_batch]
            del self._queue[: self.max_batch]
            try:
                # Cancelled or not, the batch's transaction ends in its thread: its callers
                # are told how it ended, not that it failed.
                await _to_the_end(self._write(batch))
            except BaseException as exc:  # cancelled (the loop is closing): fail the rest
                error = exc if isinstance(exc, Exception) else StorageError("intake stopped")
                for _, done in batch + self._queue:
                    _settle(done, error)
                self._queue.clear()
                raise

    async def _write(self, batch: list[tuple[T, asyncio.Future[None]]]) -> None:
        items = [item for item, _ in batch]
        try:
            await self.db.run_sync(lambda conn: self.write(conn, items))
        except Exception as exc:
            if len(batch) == 1:
                _settle(batch[0][1], exc)
                return
            for one in batch:  # find the item at fault: each in its own transaction
                await self._write([one])
            return
        self.commits += 1
        for _, done in batch:
            _settle(done, None)


def _settle(done: asyncio.Future[None], error: BaseException | None) -> None:
    if done.done():  # its caller was cancelled and no longer waits
        return
    if error is None:
        done.set_result(None)
    else:
        done.set_exception(error)
