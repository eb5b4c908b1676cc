"""The SQLite connection pair, transactions and migrations: the store's plumbing."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager, suppress
from pathlib import Path
from typing import Any

import aiosqlite

from gateway.errors import StorageError
from gateway.store.schema import MIGRATIONS


class Database:
    """One writer connection (serialized by a lock) and one reader connection, both WAL.

    SQLite allows one writer at a time anyway; serializing writers in asyncio avoids
    SQLITE_BUSY and keeps every transaction's statements together on one connection.
    """

    def __init__(self, path: Path, synchronous: str = "full") -> None:
        self.path = path
        self.synchronous = synchronous
        self._writer: aiosqlite.Connection | None = None
        self._reader: aiosqlite.Connection | None = None
        self._lock = asyncio.Lock()

    async def open(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._writer = await self._connect()
            await self._migrate(self._writer)
            self._reader = await self._connect()
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
            await conn.execute("PRAGMA journal_mode=WAL")
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

    async def close(self) -> None:
        for conn in (self._reader, self._writer):
            if conn is not None:
                await conn.close()
        self._reader = self._writer = None

    @property
    def schema_version(self) -> int:
        return len(MIGRATIONS)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[aiosqlite.Connection]:
        """BEGIN IMMEDIATE … COMMIT on the writer; any failure rolls back as StorageError."""
        if self._writer is None:
            raise StorageError("database is closed")
        async with self._lock:
            conn = self._writer
            try:
                await conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise StorageError(f"cannot begin transaction: {exc}") from exc
            try:
                yield conn
                await conn.execute("COMMIT")
            except BaseException as exc:
                with suppress(sqlite3.Error):
                    await conn.execute("ROLLBACK")
                if isinstance(exc, sqlite3.Error):
                    raise StorageError(f"database error: {exc}") from exc
                raise

    async def fetchall(self, sql: str, params: Iterable[Any] = ()) -> list[aiosqlite.Row]:
        if self._reader is None:
            raise StorageError("database is closed")
        try:
            async with self._reader.execute(sql, tuple(params)) as cur:
                return list(await cur.fetchall())
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
