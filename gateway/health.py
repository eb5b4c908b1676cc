"""Can every part of the daemon do its work? The checks behind ``GET /healthz`` and the systemd
watchdog.

A check answers None when its part works, or a short reason ("stuck in a transaction for 31 s").
The daemon registers one per part: the store's reader and writer, the render pool, and the
loops of the render stage, the worker and the notifier. ``Health.check()`` runs them all, each
within a time limit, and never raises: a check that hangs or fails is itself the answer.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from gateway.store import AdminStore

Check = Callable[[], Awaitable[str | None]]
Clock = Callable[[], float]

OK = "ok"


@dataclass(frozen=True)
class Report:
    checks: dict[str, str]  # part -> "ok" or what is wrong with it, in registration order

    @property
    def failing(self) -> list[str]:
        return [name for name, state in self.checks.items() if state != OK]

    @property
    def healthy(self) -> bool:
        return not self.failing

    @property
    def summary(self) -> str:
        return OK if self.healthy else "unhealthy: " + ", ".join(self.failing)


class Health:
    def __init__(self, clock: Clock = time.monotonic, timeout_s: float = 2.0) -> None:
        self.clock = clock  # monotonic seconds: how long a problem has lasted
        self.timeout_s = timeout_s
        self._checks: dict[str, Check] = {}

    def add(self, name: str, check: Check) -> None:
        self._checks[name] = check

    async def check(self) -> Report:
        names = list(self._checks)
        answers = await asyncio.gather(*(self._run(self._checks[name]) for name in names))
        return Report(dict(zip(names, answers, strict=True)))

    async def _run(self, check: Check) -> str:
        try:
            problem = await asyncio.wait_for(check(), self.timeout_s)
        except TimeoutError:
            return f"no answer within {self.timeout_s:g} s"
        except Exception as exc:  # what broke is the answer
            return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        return OK if problem is None else problem


def for_store(
    store: AdminStore, clock: Clock = time.monotonic, busy_after_s: float = 30.0
) -> Health:
    """A ``Health`` that checks the store: a cheap read, and whether the writer is usable."""
    health = Health(clock)
    health.add("store", store_read(store))
    health.add("writer", store_writer(store, clock, busy_after_s))
    return health


def store_read(store: AdminStore) -> Check:
    async def check() -> str | None:
        await store.count_accounts()
        return None

    return check


def store_writer(store: AdminStore, clock: Clock, busy_after_s: float) -> Check:
    """The writer is closed, or in a transaction that nothing will end (seen while holding its
    lock, so no transaction of ours can be under way), or its lock has not been free at any
    check for ``busy_after_s``. Busy for less is ordinary: a transaction waiting for another
    process's write lock, a large document being stored."""
    stuck_since: float | None = None
    busy_since: float | None = None

    async def check() -> str | None:
        nonlocal stuck_since, busy_since
        state = await store.writer_health(wait_s=1.0)
        now = clock()
        if state != "in a transaction":
            stuck_since = None
        if state != "busy":
            busy_since = None
        if state == "in a transaction":
            stuck_since = now if stuck_since is None else stuck_since
            return f"stuck in a transaction for {now - stuck_since:.0f} s"
        if state == "busy":
            busy_since = now if busy_since is None else busy_since
            if now - busy_since < busy_after_s:
                return None
            return f"busy: no transaction has ended for {now - busy_since:.0f} s"
        return state

    return check


class PoolState(Protocol):
    def problem(self) -> str | None: ...


def render_pool(pool: PoolState) -> Check:
    async def check() -> str | None:
        return pool.problem()

    return check


def loop_alive(
    task: asyncio.Task[Any],
    heartbeat: Callable[[], float] | None = None,
    stale_after_s: float = 30.0,
    clock: Clock = time.monotonic,
) -> Check:
    """The loop's task has not ended, and (with ``heartbeat``: when its last iteration began,
    on ``clock``) it has gone round within ``stale_after_s``."""

    async def check() -> str | None:
        if task.done():
            if task.cancelled():
                return "stopped (cancelled)"
            exc = task.exception()
            return "stopped" if exc is None else f"stopped: {type(exc).__name__}: {exc}"
        if heartbeat is not None:
            age = clock() - heartbeat()
            if age > stale_after_s:
                return f"no loop iteration for {age:.0f} s"
        return None

    return check
