"""Fixtures of the notification tests (the servers themselves are in ``support``)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.notify import Notifier
from gateway.store import Store
from tests.conftest import free_port
from tests.notify.support import Collector, Webhook, notify_settings

MakeNotifier = Callable[..., Notifier]


@pytest.fixture
async def collector() -> AsyncIterator[Collector]:
    sink = Collector()
    await sink.start()
    yield sink
    await sink.stop()


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    hook = Webhook()
    hook.thread.start()
    yield hook
    hook.server.shutdown()
    hook.server.server_close()
    hook.thread.join(5)


@pytest.fixture
async def make_notifier(store: Store, tmp_path: Path) -> AsyncIterator[MakeNotifier]:
    made: list[Notifier] = []

    def make(port: int | None, **notifications: Any) -> Notifier:
        settings = notify_settings(tmp_path, port, **notifications)
        notifier = Notifier(store, settings.notifications)
        made.append(notifier)
        return notifier

    yield make
    for notifier in made:
        await notifier.close()


@pytest.fixture
def closed_port() -> int:
    """A port nothing listens on (the smarthost that is down)."""
    return free_port()
