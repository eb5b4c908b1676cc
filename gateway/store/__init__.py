"""The store: the only code that writes SQL.

The rest of the gateway sees it through the protocols of ``gateway.store.protocols`` (one per
role, and ``Store`` for all of them) and gets one from ``open_store``; ``SqliteStore`` is the
embedded implementation.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from gateway.config import StorageSettings
from gateway.store.database import Database
from gateway.store.protocols import (
    AdminStore,
    AuthStore,
    FaxboxStore,
    FaxListing,
    FaxReader,
    InboundStore,
    IntakeStore,
    JobQueue,
    LeaseRenewal,
    NotificationQueue,
    RenderQueue,
    Store,
)
from gateway.store.sqlite import SqliteStore


def store_for(storage: StorageSettings, clock: Callable[[], float] = time.time) -> Store:
    """The store ``[storage]`` names, not yet opened (``await store.open()``)."""
    if storage.url is not None:
        from gateway.store.postgres import PgDatabase, PostgresStore  # asyncpg only if used

        return PostgresStore(PgDatabase(storage.url), clock)
    return SqliteStore(Database(storage.path, storage.synchronous), clock)


async def open_store(storage: StorageSettings, clock: Callable[[], float] = time.time) -> Store:
    """The store ``[storage]`` names, opened (and migrated, where the backend does that)."""
    store = store_for(storage, clock)
    await store.open()
    return store


__all__ = [
    "AdminStore",
    "AuthStore",
    "FaxListing",
    "FaxReader",
    "FaxboxStore",
    "InboundStore",
    "IntakeStore",
    "JobQueue",
    "LeaseRenewal",
    "NotificationQueue",
    "RenderQueue",
    "SqliteStore",
    "Store",
    "open_store",
    "store_for",
]
