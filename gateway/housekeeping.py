"""Retention applied on schedule: the daemon's purge task and ``fax-gateway purge`` share this."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from gateway.config import RetentionSettings
from gateway.errors import StorageError
from gateway.events import wait_any
from gateway.store import AdminStore
from gateway.store.records import PurgeResult

log = logging.getLogger(__name__)

DAY_S = 86400.0


def cutoff(now: float, days: int) -> float | None:
    """The time before which things go; None when ``days`` is 0 (keep forever)."""
    return now - days * DAY_S if days > 0 else None


async def purge(store: AdminStore, retention: RetentionSettings) -> PurgeResult:
    now = store.clock()
    result = await store.purge(
        documents_before=cutoff(now, retention.documents_days),
        faxes_before=cutoff(now, retention.faxes_days),
        smtplog_before=cutoff(now, retention.smtplog_days),
    )
    counts = result.as_dict()
    if any(counts.values()):
        log.info(
            "purge: %s",
            " ".join(f"{k}={v}" for k, v in counts.items()),
            extra={"event": "purge", **counts},
        )
    return result


def enabled(retention: RetentionSettings) -> bool:
    return any((retention.documents_days, retention.faxes_days, retention.smtplog_days))


async def run(
    store: AdminStore, retention: Callable[[], RetentionSettings], stop: asyncio.Event
) -> None:
    """Purge now and every ``interval_s`` until ``stop``; ``retention`` is read each round,
    so a SIGHUP that changes the days takes effect at the next round."""
    while not stop.is_set():
        settings = retention()
        if enabled(settings):
            try:
                await purge(store, settings)
            except StorageError:
                log.exception("purge failed; trying again in %gs", settings.interval_s)
        await wait_any(stop, within=settings.interval_s)
