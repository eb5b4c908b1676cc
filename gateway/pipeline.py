"""The render stage: jobs in ``attaching_files`` become fax images and move to ``pending``.

Documents given by URL are fetched first. A document that cannot be faxed fails the job with
its reason (never stuck in ``attaching_files``). What is not the document's fault does not fail
it: a stop hands unfinished renders back (their lease released, rendered again at the next
start), exactly as it does transmissions; a renderer that crashes (its worker process died)
is retried once, and only a second crash fails the job. A crash of the daemon mid-render
leaves a lease that expires, and the job is taken up again.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable, Coroutine
from datetime import UTC, datetime
from typing import Any, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from gateway.claims import ClaimLoop
from gateway.config import Settings
from gateway.documents.pool import RendererCrashed, RenderInterrupted, RenderPool
from gateway.documents.render_options import CoverPage, RenderOptions
from gateway.errors import DocumentError, GatewayError, MessageError, StorageError
from gateway.events import wait_any
from gateway.models import Fax, SourceDocument
from gateway.store import RenderQueue
from gateway.store.records import TxResultRecord

log = logging.getLogger(__name__)

Fetcher = Callable[[dict[str, Any]], Awaitable[SourceDocument]]
T = TypeVar("T")


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
        fonts=settings.render.fonts,
    )


CRASHES_TO_FAIL = 2  # a job fails when its documents crashed the renderer this many times


class RenderStage(ClaimLoop):
    def __init__(
        self,
        store: RenderQueue,
        pool: RenderPool,
        settings: Settings,
        fetcher: Fetcher | None = None,
        on_ready: Callable[[], None] = lambda: None,
        owner: str | None = None,
    ) -> None:
        super().__init__()
        self.store: RenderQueue = store
        self.pool = pool
        self.settings = settings
        self.fetcher = fetcher
        self.on_ready = on_ready
        self.owner = owner or f"render-{os.getpid()}-{id(self):x}"
        self.capacity = max(1, settings.render.workers or os.cpu_count() or 1)
        self.steps: set[asyncio.Task[Any]] = set()  # fetches and renders now: what a stop cuts
        self.stopping = False
        self._cut = False

    @property
    def lease_s(self) -> float:
        # Renewed while rendering (like a transmission's), so a crash mid-render costs at most
        # this long before the job is rendered again.
        return self.settings.worker.lease_s

    async def run(self, stop: asyncio.Event) -> None:
        """Claim and render until ``stop`` is set; then drain (see ``drain``)."""
        while not stop.is_set():
            self.beat()
            self.wake.clear()  # before claiming: new mail or a freed slot meanwhile wakes us
            if await self.run_once():
                continue
            await wait_any(stop, self.wake, within=self.settings.worker.poll_s * 5)
        await self.drain()

    async def drain(self, within: float | None = None) -> None:
        """Let running renders finish for up to the drain timeout (the transmissions' own,
        ``worker.drain_timeout_s``: both drain at once); then cut the rest short and hand
        their jobs back, uncounted, to be rendered at the next start.

        Only the fetch and the rendering are cut: a render that has finished is always
        stored, and one that was stored is never handed back.
        """
        self.stopping = True
        limit = self.settings.worker.drain_timeout_s if within is None else within
        if self.tasks:
            log.info("render: waiting up to %gs for %d render(s)", limit, len(self.tasks))
            _, pending = await asyncio.wait(set(self.tasks), timeout=limit)
            if pending:
                self._cut = True
                for step in list(self.steps):
                    step.cancel()
                # Each render now hands its job back or stores what had just finished; a store
                # that hangs still cannot hold the stop.
                _, stuck = await asyncio.wait(pending, timeout=max(5.0, self.lease_s))
                for task in stuck:
                    task.cancel()
                await asyncio.gather(*pending, return_exceptions=True)
        try:
            released = await self.store.release_renders(self.owner)
        except StorageError:
            log.exception("render: cannot release leases; they will expire")
            return
        if released:
            log.warning("render: handed back %d unfinished render(s)", released)

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

    async def _step(self, work: Coroutine[Any, Any, T]) -> T:
        """The slow part of a render (a fetch, the rendering), as a task of its own: the part
        a stop may cut short, which then raises ``RenderInterrupted``."""
        if self._cut:
            work.close()
            raise RenderInterrupted("the render stage is stopping")
        task = asyncio.ensure_future(work)
        self.steps.add(task)
        task.add_done_callback(self.steps.discard)
        try:
            return await task
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise  # the render itself is being cancelled
            raise RenderInterrupted("cut short by the stop") from None

    async def _render(self, fax: Fax) -> None:
        try:
            documents = await self.store.fax_documents(fax.id, "original")
            if not documents and fax.document_request is not None:
                documents = [await self._step(self._fetch(fax.document_request))]
                if not await self.store.store_originals(fax.id, self.owner, documents):
                    return  # another renderer has the job now
            if not documents:
                raise DocumentError("document", "the fax has no document")
            options = render_options(fax, self.settings, self.store.clock())
            rendered = await self._step(self.pool.render(documents, options))
            pdf = await self._step(self.pool.to_pdf(rendered.tiff))
            if await self.store.finish_render(
                fax.id, self.owner, rendered.tiff, pdf, rendered.pages
            ):
                log.info("render fax=%s pages=%d ready", fax.id, rendered.pages)
                self.on_ready()
        except RenderInterrupted as exc:
            await self._hand_back(fax, str(exc))
        except RendererCrashed as exc:
            await self._crashed(fax, exc)
        except MessageError as exc:
            reason = str(exc)
            log.info("render fax=%s failed: %s", fax.id, reason)
            await self._fail(fax, reason)
        except StorageError:
            log.exception("render fax=%s: storage error; will retry when the lease expires", fax.id)
        except GatewayError as exc:
            await self._fail(fax, str(exc))
        except Exception as exc:  # a renderer bug fails this job, not the daemon
            if self.stopping:  # whatever broke while we stop, it was not shown to be the job
                await self._hand_back(fax, f"{type(exc).__name__} while stopping")
                return
            log.exception("render fax=%s: unexpected error", fax.id)
            await self._fail(fax, f"internal error while rendering ({type(exc).__name__})")

    async def _fetch(self, request: dict[str, Any]) -> SourceDocument:
        if self.fetcher is None:
            raise DocumentError(str(request.get("url", "document")), "fetching is not enabled")
        return await self.fetcher(request)

    async def _hand_back(self, fax: Fax, why: str) -> None:
        """Not the document's fault: release the job's lease, nothing counted. During a stop it
        is rendered at the next start; otherwise (no worker could start) after a pause, so
        that a pool that cannot start workers is not retried in a tight loop."""
        retry_at = None if self.stopping else self.store.clock() + self.settings.worker.poll_s * 5
        log.warning("render fax=%s: handed back (%s)", fax.id, why)
        try:
            await self.store.release_renders(self.owner, fax.id, retry_at)
        except StorageError:
            log.exception("render fax=%s: cannot hand back; the lease will expire", fax.id)

    async def _crashed(self, fax: Fax, exc: RendererCrashed) -> None:
        """The renderer's process died on this job. While we stop, that is our own doing (the
        pool is being shut down): hand the job back. Otherwise count it: the first crash is
        retried (it may have been another job's document, or memory pressure), the second
        fails the job."""
        if self.stopping:
            await self._hand_back(fax, f"{exc} while stopping")
            return
        try:
            crashes = await self.store.count_render_crash(fax.id, self.owner, CRASHES_TO_FAIL)
        except StorageError:
            log.exception("render fax=%s: cannot count the crash; will retry", fax.id)
            return
        if crashes is None:
            return  # another renderer has the job now
        if crashes < CRASHES_TO_FAIL:
            log.warning("render fax=%s: %s (crash %d); rendering it again", fax.id, exc, crashes)
            return
        reason = f"{exc.part}: rendering crashed the renderer twice"
        log.info("render fax=%s failed: %s", fax.id, reason)
        await self._fail(fax, reason)

    async def _fail(self, fax: Fax, reason: str) -> None:
        result = TxResultRecord.unsent(
            reason, "document could not be prepared", self.store.clock() - fax.created
        )
        try:
            await self.store.fail_job(fax.id, reason, result, owner=self.owner)
        except StorageError:
            log.exception("render fax=%s: could not record the failure", fax.id)
