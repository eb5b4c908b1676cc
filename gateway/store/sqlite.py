"""``SqliteStore``: the embedded store, every role over one SQLite file (``Database``)."""

from __future__ import annotations

from gateway.store.core import CoreStore
from gateway.store.jobs import JobStore
from gateway.store.listing import ListingStore
from gateway.store.operations import OperationsStore
from gateway.store.retention import RetentionStore


class SqliteStore(OperationsStore, RetentionStore, ListingStore, JobStore, CoreStore):
    """Built on an injected ``Database`` (``SqliteStore(Database(path), clock)``); ``open``
    opens and migrates it. The groups of operations are mixins, one module each."""
