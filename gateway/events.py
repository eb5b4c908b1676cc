"""Waiting on several asyncio events at once, with an upper bound (used by the background loops)."""

from __future__ import annotations

import asyncio


async def wait_any(*events: asyncio.Event, within: float) -> None:
    """Return when any event is set or after ``within`` seconds, whichever comes first."""
    waiters = [asyncio.create_task(e.wait()) for e in events]
    try:
        await asyncio.wait(waiters, timeout=max(0.0, within), return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
