"""The store: the only code that writes SQL. A narrow async interface over SQLite."""

from gateway.store.store import Store

__all__ = ["Store"]
