"""asyncio coordination: waiting on several events at once, and locks by key."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator


async def wait_any(*events: asyncio.Event, within: float) -> None:
    """Return when any event is set or after ``within`` seconds, whichever comes first."""
    waiters = [asyncio.create_task(e.wait()) for e in events]
    try:
        await asyncio.wait(waiters, timeout=max(0.0, within), return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()


class KeyedLock:
    """One asyncio lock per key, held only while someone uses it (no key: no lock)."""

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    @contextlib.asynccontextmanager
    async def hold(self, key: str | None) -> AsyncIterator[None]:
        if key is None:
            yield
            return
        lock, users = self._locks.get(key, (asyncio.Lock(), 0))
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users == 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)
