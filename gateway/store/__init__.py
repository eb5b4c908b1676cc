"""The store: the only code that writes SQL. A narrow async interface over SQLite, grouped by
concern (one module each) and combined here into the one ``Store`` the rest of the code sees."""

from gateway.store.core import CoreStore
from gateway.store.jobs import JobStore
from gateway.store.listing import ListingStore
from gateway.store.notifications import NotificationStore
from gateway.store.operations import OperationsStore
from gateway.store.retention import RetentionStore


class Store(OperationsStore, RetentionStore, ListingStore, JobStore, NotificationStore, CoreStore):
    pass


__all__ = ["Store"]
