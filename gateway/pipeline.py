"""The render stage: jobs in ``attaching_files`` become fax images and move to ``pending``.

Documents given by URL are fetched first. Any failure fails the job with its reason (never
stuck in ``attaching_files``); a crash mid-render leaves a lease that expires, and the job is
taken up again.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from gateway.claims import ClaimLoop
from gateway.config import Settings
from gateway.documents.pool import RenderPool
from gateway.documents.render_options import CoverPage, RenderOptions
from gateway.errors import DocumentError, GatewayError, MessageError, StorageError
from gateway.events import wait_any
from gateway.models import Fax, SourceDocument, unsent_tx_result
from gateway.store import Store

log = logging.getLogger(__name__)

Fetcher = Callable[[dict[str, Any]], Awaitable[SourceDocument]]


def zone(name: str | None) -> ZoneInfo:
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def render_options(fax: Fax, settings: Settings, now: float) -> RenderOptions:
    opts = fax.render_options
    cover = None
    if opts.get("cover_page"):
        cover = CoverPage(
            from_name=fax.from_name,
            from_number=fax.from_number,
            to_name=fax.to_name,
            to_number=fax.to_number,
            subject=fax.subject,
            sent_at=datetime.fromtimestamp(now, UTC).astimezone(zone(fax.fax_timezone)),
            body=opts.get("body"),
        )
    return RenderOptions(
        resolution="standard" if opts.get("resolution") == "standard" else "fine",
        paper="a4" if opts.get("paper", settings.render.paper) == "a4" else "letter",
        compression=settings.render.compression,
        max_pages=settings.smtp.max_pages,
        max_image_pixels=settings.smtp.max_image_pixels,
        cover=cover,
    )


class RenderStage(ClaimLoop):
    def __init__(
        self,
        store: Store,
        pool: RenderPool,
        settings: Settings,
        fetcher: Fetcher | None = None,
        on_ready: Callable[[], None] = lambda: None,
        owner: str | None = None,
    ) -> None:
        super().__init__()
        self.store = store
        self.pool = pool
        self.settings = settings
        self.fetcher = fetcher
        self.on_ready = on_ready
        self.owner = owner or f"render-{os.getpid()}-{id(self):x}"
        self.capacity = max(1, settings.render.workers or os.cpu_count() or 1)

    @property
    def lease_s(self) -> float:
        # Renewed while rendering (like a transmission's), so a crash mid-render costs at most
        # this long before the job is rendered again.
        return self.settings.worker.lease_s

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            self.wake.clear()  # before claiming: new mail or a freed slot meanwhile wakes us
            if await self.run_once():
                continue
            await wait_any(stop, self.wake, within=self.settings.worker.poll_s * 5)
        if self.tasks:
            await asyncio.gather(*self.tasks, return_exceptions=True)

    async def run_once(self) -> int:
        """Claim what can start now and start it; the number started."""
        free = self.capacity - len(self.tasks)  # claim no more than can run now
        if free <= 0:
            return 0  # a finishing render sets ``wake``
        try:
            faxes = await self.store.claim_attaching(self.owner, self.lease_s, free)
        except StorageError:
            log.exception("render: cannot claim jobs")
            return 0
        for fax in faxes:
            self.start(self.render(fax), f"render-{fax.id}")
        return len(faxes)

    async def render(self, fax: Fax) -> None:
        renewer = asyncio.create_task(self.keep_leases([fax.id]))
        try:
            await self._render(fax)
        finally:
            renewer.cancel()

    async def _render(self, fax: Fax) -> None:
        try:
            documents = await self.store.fax_documents(fax.id, "original")
            if not documents and fax.document_request is not None:
                documents = [await self._fetch(fax.document_request)]
                if not await self.store.store_originals(fax.id, self.owner, documents):
                    return  # another renderer has the job now
            if not documents:
                raise DocumentError("document", "the fax has no document")
            options = render_options(fax, self.settings, self.store.clock())
            rendered = await self.pool.render(documents, options)
            pdf = await self.pool.to_pdf(rendered.tiff)
            if await self.store.finish_render(
                fax.id, self.owner, rendered.tiff, pdf, rendered.pages
            ):
                log.info("render fax=%s pages=%d ready", fax.id, rendered.pages)
                self.on_ready()
        except MessageError as exc:
            reason = str(exc)
            log.info("render fax=%s failed: %s", fax.id, reason)
            await self._fail(fax, reason)
        except StorageError:
            log.exception("render fax=%s: storage error; will retry when the lease expires", fax.id)
        except GatewayError as exc:
            await self._fail(fax, str(exc))
        except Exception as exc:  # a renderer bug fails this job, not the daemon
            log.exception("render fax=%s: unexpected error", fax.id)
            await self._fail(fax, f"internal error while rendering ({type(exc).__name__})")

    async def _fetch(self, request: dict[str, Any]) -> SourceDocument:
        if self.fetcher is None:
            raise DocumentError(str(request.get("url", "document")), "fetching is not enabled")
        return await self.fetcher(request)

    async def _fail(self, fax: Fax, reason: str) -> None:
        result = unsent_tx_result(
            reason, "document could not be prepared", self.store.clock() - fax.created
        )
        try:
            await self.store.fail_job(fax.id, reason, result, owner=self.owner)
        except StorageError:
            log.exception("render fax=%s: could not record the failure", fax.id)
