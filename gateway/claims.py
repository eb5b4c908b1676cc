"""What the render stage and the send worker share: the tasks of the jobs they claimed, a
wake-up event, burst mode, the renewal of a claimed job's lease while it is worked on, and a
heartbeat for the health check."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Coroutine
from typing import Any

from gateway.errors import StorageError
from gateway.store import LeaseRenewal

log = logging.getLogger(__name__)


class ClaimLoop:
    """Subclasses claim jobs in ``run_once`` and hand each to ``start``."""

    store: LeaseRenewal
    owner: str

    def __init__(self) -> None:
        self.wake = asyncio.Event()  # new work arrived, or a slot is free again
        self.tasks: set[asyncio.Task[None]] = set()
        self.heartbeat = time.monotonic()  # when the run loop last went round

    def beat(self) -> None:
        """Called by the run loop at each round: a loop that stops going round (stuck in a
        claim, say) shows in the health check."""
        self.heartbeat = time.monotonic()

    @property
    def lease_s(self) -> float:
        raise NotImplementedError

    async def run_once(self) -> int:
        """Claim what can start now and start it; the number started."""
        raise NotImplementedError

    def start(self, work: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.create_task(work, name=name)
        self.tasks.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self.tasks.discard(task)
        self.wake.set()  # a slot is free: claim the next job now, not at the next poll

    async def run_until_idle(self) -> None:
        """Work off everything claimable now, and what becomes claimable meanwhile, then return
        (tests and tools: arq's burst mode). Slots are refilled as soon as one frees up."""
        while True:
            if await self.run_once():
                continue
            if not self.tasks:
                return
            await asyncio.wait(self.tasks, return_when=asyncio.FIRST_COMPLETED)

    async def keep_leases(self, fax_ids: list[str]) -> None:
        """Renew the leases of ``fax_ids`` every third of the lease time until cancelled; stop
        when the first (the claimed job's own) was lost to someone else."""
        interval = max(0.05, self.lease_s / 3)
        while True:
            await asyncio.sleep(interval)
            try:
                for n, fax_id in enumerate(list(fax_ids)):
                    renewed = await self.store.renew_lease(fax_id, self.owner, self.lease_s)
                    if n == 0 and not renewed:
                        log.warning("fax=%s: lease lost to another claimer", fax_id)
                        return
            except StorageError:
                log.exception("fax=%s: lease renewal failed", fax_ids[0])
