"""The store: the only code that writes SQL. A narrow async interface over SQLite, grouped by
concern (one module each) and combined here into the one ``Store`` the rest of the code sees."""

from gateway.store.core import CoreStore
from gateway.store.jobs import JobStore


class Store(JobStore, CoreStore):
    pass


__all__ = ["Store"]
