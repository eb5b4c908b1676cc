"""Rendering off the event loop, in a process pool that survives hostile documents.

Each document is rendered by its own pool call (``render_document``) with its own time limit,
so a stuck or crashing file is named precisely, a job's documents render in parallel on
several cores, and the parent only assembles the already-encoded pages (a byte copy).

A worker that overruns its limit cannot be interrupted (PDFium and libtiff run in C), so the
pool's processes are killed and a fresh pool is started; calls of other jobs that were running
in the killed pool are retried once in the new one, since they were not at fault. Workers
start by "forkserver" (where available): forking the daemon itself is unsafe because it runs
threads (aiosqlite, the default executor), and a fork server preloaded with the renderer
restarts workers much faster than "spawn" does after a kill.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import TypeVar

from gateway.documents.pdfout import tiff_to_pdf
from gateway.documents.render import assemble_fax, render_document
from gateway.documents.render_options import RenderedFax, RenderOptions
from gateway.documents.tiffout import EncodedPage
from gateway.errors import DocumentError, TooManyPagesError
from gateway.models import SourceDocument

T = TypeVar("T")
DocumentRenderer = Callable[[SourceDocument, RenderOptions, int], list[EncodedPage]]


def _limit_memory(max_bytes: int | None) -> None:
    """Worker initializer: cap the address space so a decompression bomb fails with MemoryError."""
    if max_bytes is None:
        return
    try:
        import resource  # POSIX only

        resource.setrlimit(resource.RLIMIT_AS, (max_bytes, max_bytes))
    except (ImportError, ValueError, OSError):
        pass


def _context() -> multiprocessing.context.BaseContext:
    if "forkserver" in multiprocessing.get_all_start_methods():
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(["gateway.documents.render"])
        return ctx
    return multiprocessing.get_context("spawn")


class RenderPool:
    """A process pool for ``render_document`` with per-document time limits.

    ``renderer`` exists so tests can inject a picklable stand-in (one that hangs or crashes);
    the daemon uses the default.
    """

    def __init__(
        self,
        workers: int | None = None,
        per_doc_seconds: float = 60.0,
        *,
        memory_limit_bytes: int | None = 2 * 1024**3,
        renderer: DocumentRenderer = render_document,
    ) -> None:
        self._workers = workers or os.cpu_count() or 1
        self._per_doc_seconds = per_doc_seconds
        self._memory_limit = memory_limit_bytes
        self._renderer = renderer
        self._context = _context()
        self._executor = self._new_executor()
        self._generation = 0
        self._closed = False

    def _new_executor(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(
            self._workers,
            mp_context=self._context,
            initializer=_limit_memory,
            initargs=(self._memory_limit,),
            # Recycle workers now and then: PDFium and image decoders may keep caches.
            max_tasks_per_child=200,
        )

    def _restart(self, generation: int) -> None:
        """Kill every worker and start a new pool, unless another caller already did."""
        if generation != self._generation:
            return
        old = self._executor
        self._generation += 1
        self._executor = self._new_executor()
        # ProcessPoolExecutor has no public way to kill a busy worker before Python 3.14
        # (kill_workers); its _processes mapping is the documented-by-use way in 3.11-3.13.
        processes = dict(getattr(old, "_processes", None) or {})
        for process in processes.values():
            process.kill()
        old.shutdown(wait=False, cancel_futures=True)

    async def _call(
        self, document: SourceDocument, options: RenderOptions, budget: int
    ) -> list[EncodedPage]:
        for attempt in range(2):
            generation = self._generation
            future: Future[list[EncodedPage]] = self._executor.submit(
                self._renderer, document, options, budget
            )
            try:
                return await asyncio.wait_for(asyncio.wrap_future(future), self._per_doc_seconds)
            except TimeoutError as exc:
                self._restart(generation)
                reason = f"rendering took longer than {self._per_doc_seconds:g} s"
                raise DocumentError(document.filename, reason) from exc
            except BrokenProcessPool as exc:
                if generation != self._generation and attempt == 0:
                    continue  # killed because of another job's document: try again
                self._restart(generation)
                raise DocumentError(document.filename, "rendering crashed the renderer") from exc
        raise AssertionError("unreachable")

    async def render(
        self, documents: Sequence[SourceDocument], options: RenderOptions
    ) -> RenderedFax:
        """Render documents in parallel (one pool call each) and assemble them in order."""
        if self._closed:
            raise RuntimeError("RenderPool is closed")
        # Every document may use the whole page budget; the sum is checked on assembly, which
        # costs at most one over-long render of work and keeps documents independent.
        tasks = [
            asyncio.ensure_future(self._call(document, options, options.max_pages))
            for document in documents
        ]
        try:
            rendered = await asyncio.gather(*tasks)
        except (DocumentError, TooManyPagesError):
            for task in tasks:
                task.cancel()
            raise
        # Assembly is a byte copy, but the cover page (if any) is rendered here: off the loop.
        return await self._simple(assemble_fax, rendered, options)

    async def to_pdf(self, tiff: bytes) -> bytes:
        """The PDF rendition of a fax TIFF, computed off the event loop."""
        return await self._simple(tiff_to_pdf, tiff)

    async def _simple(self, fn: Callable[..., T], *args: object) -> T:
        """Run trusted work (our own cover text, our own TIFF) in the pool, retrying once if a
        concurrent kill broke the pool under it."""
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, fn, *args)
        except BrokenProcessPool:
            return await loop.run_in_executor(self._executor, fn, *args)

    async def close(self, grace_seconds: float = 5.0) -> None:
        """Stop the workers: wait ``grace_seconds`` for running renders, then kill them."""
        self._closed = True
        executor = self._executor
        loop = asyncio.get_running_loop()
        try:
            await asyncio.wait_for(
                loop.run_in_executor(None, lambda: executor.shutdown(True, cancel_futures=True)),
                grace_seconds,
            )
        except TimeoutError:
            self._restart(self._generation)
            self._executor.shutdown(wait=False, cancel_futures=True)
