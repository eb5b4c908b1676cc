"""``GET /healthz`` of a daemon started in this process: 200 while every part works, 503 naming
the part that does not (the store's writer, the render pool, a loop), in Kazoo's error shape."""

from __future__ import annotations

import asyncio
import multiprocessing
import sqlite3
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.daemon import Daemon
from gateway.health import loop_alive
from gateway.store import SqliteStore
from gateway.store.database import Database
from tests.builders import tiff_bytes
from tests.conftest import make_settings

PARTS = {"store", "writer", "render_pool", "render", "worker", "notifier"}


class MonotonicClock:
    """The health checks' clock: monotonic time, moved on by hand to make a problem last."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.monotonic() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds


@pytest.fixture
def clock() -> MonotonicClock:
    return MonotonicClock()


@pytest.fixture
async def daemon(tmp_path: Path, clock: MonotonicClock) -> AsyncIterator[Daemon]:
    settings = make_settings(tmp_path, http={"port": 0}, render={"workers": 1})
    served = Daemon(settings, announce=lambda _line: None, health_clock=clock)
    await served.start()
    yield served
    await served.stop()


async def healthz(daemon: Daemon) -> tuple[int, dict[str, Any]]:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{daemon.http_port}") as client:
        response = await client.get("/healthz")
    assert response.headers["content-type"] == "application/json"
    return response.status_code, response.json()


def sqlite_database(daemon: Daemon) -> Database:
    """The daemon's SQLite database: these tests hold its writer as a stuck task would."""
    assert isinstance(daemon.store, SqliteStore)
    return daemon.store.database


async def test_a_daemon_whose_parts_all_work_is_healthy(daemon: Daemon) -> None:
    status, body = await healthz(daemon)
    assert status == 200
    assert body == {"status": "ok", "data": dict.fromkeys(PARTS, "ok")}


async def test_a_writer_left_in_a_transaction_is_unhealthy(
    daemon: Daemon, clock: MonotonicClock
) -> None:
    # What a ROLLBACK that never ran leaves behind: nothing will end this transaction, and
    # every later BEGIN on the writer fails.
    db = sqlite_database(daemon)
    writer = db._writer
    assert writer is not None
    async with db._lock:  # between two of the daemon's own transactions
        await writer.execute("BEGIN")

    status, body = await healthz(daemon)
    assert status == 503
    assert body["status"] == "error" and body["error"] == "503"
    assert body["message"] == "unhealthy: writer"
    assert body["data"]["store"] == "ok"  # reading still works
    clock.advance(20)
    body = (await healthz(daemon))[1]
    assert body["data"]["writer"] == "stuck in a transaction for 20 s"

    async with db._lock:
        await writer.execute("ROLLBACK")
    assert (await healthz(daemon))[0] == 200


async def test_a_writer_whose_lock_is_never_free_is_unhealthy_once_that_lasts(
    daemon: Daemon, clock: MonotonicClock
) -> None:
    async with sqlite_database(daemon)._lock:  # as a task that hangs inside its transaction
        assert (await healthz(daemon))[0] == 200  # busy for a moment is ordinary
        clock.advance(30)
        status, body = await healthz(daemon)
        assert status == 503
        # The loops that wait for the writer are reported as stuck too (they are).
        assert body["message"].startswith("unhealthy: writer")
        assert body["data"]["writer"].startswith("busy: no transaction has ended for 3")


async def test_another_process_holding_the_write_lock_does_not_make_it_unhealthy(
    daemon: Daemon,
) -> None:
    # A sqlite3 shell in BEGIN IMMEDIATE: our writes wait for it (busy_timeout), then fail
    # and are retried; the writer itself is fine.
    path = daemon.settings.storage.path
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        # In a thread: this loop's own transactions must go on while it waits for them.
        await asyncio.to_thread(other.execute, "BEGIN IMMEDIATE")
        status, body = await healthz(daemon)
        assert status == 200, body
        other.execute("ROLLBACK")
    finally:
        other.close()


async def test_a_closed_store_is_unhealthy(daemon: Daemon) -> None:
    await daemon.store.close()
    status, body = await healthz(daemon)
    assert status == 503
    assert body["message"].startswith("unhealthy: store, writer")
    assert body["data"]["writer"] == "closed"
    assert "closed" in body["data"]["store"]
    await daemon.store.open()  # for the fixture's stop


async def test_a_render_pool_whose_worker_was_killed_is_reported_and_restarted(
    daemon: Daemon,
) -> None:
    await daemon.pool.to_pdf(tiff_bytes(1))  # a worker process is running now
    [worker] = multiprocessing.active_children()
    assert worker.pid is not None
    worker.kill()  # the OOM killer, or an admin
    worker.join()

    for _ in range(100):  # until the pool's manager thread has noticed
        status, body = await healthz(daemon)
        if status != 200:
            break
        await asyncio.sleep(0.05)
    assert status == 503
    assert body["message"] == "unhealthy: render_pool"
    assert body["data"]["render_pool"] == "broken (a worker process died); restarted"
    # Restarted: healthy again, and it renders.
    assert (await healthz(daemon))[0] == 200
    assert (await daemon.pool.to_pdf(tiff_bytes(1))).startswith(b"%PDF-")


async def test_a_worker_loop_that_ended_is_unhealthy(daemon: Daemon) -> None:
    worker_task = daemon.tasks[1]
    assert worker_task.get_name() == "worker"
    worker_task.cancel()
    await asyncio.gather(worker_task, return_exceptions=True)

    status, body = await healthz(daemon)
    assert status == 503
    assert body["message"] == "unhealthy: worker"
    assert body["data"]["worker"] == "stopped (cancelled)"
    assert body["data"]["render"] == "ok"


async def test_a_loop_is_reported_with_what_killed_it_or_when_it_stopped_going_round() -> None:
    async def dies() -> None:
        raise RuntimeError("lost the database")

    dead = asyncio.create_task(dies())
    await asyncio.gather(dead, return_exceptions=True)
    assert await loop_alive(dead)() == "stopped: RuntimeError: lost the database"

    stuck = asyncio.create_task(asyncio.Event().wait())
    last_round = time.monotonic() - 45
    assert await loop_alive(stuck, lambda: last_round, 30)() == "no loop iteration for 45 s"
    assert await loop_alive(stuck, time.monotonic, 30)() is None
    stuck.cancel()
