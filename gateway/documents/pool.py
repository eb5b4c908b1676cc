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

Stopping is the daemon's business, not the workers': they ignore SIGTERM, SIGINT and SIGHUP,
so a signal sent to the whole process group (Ctrl-C in a terminal, ``kill -- -PGID``, systemd's
``KillMode=control-group``) reaches the daemon, which hands unfinished renders back, instead
of killing workers in the middle of a document and making it look like the document's fault.
They die with their parent (the fork server, which exits with the daemon), so an orphan never
outlives a daemon that was killed outright.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import functools
import multiprocessing
import os
import signal
import sys
import weakref
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import TypeVar

from gateway.documents.pdfout import tiff_to_pdf
from gateway.documents.render import assemble_fax, render_document
from gateway.documents.render_options import RenderedFax, RenderOptions
from gateway.documents.tiffout import EncodedPage
from gateway.errors import DocumentError
from gateway.models import SourceDocument

T = TypeVar("T")
DocumentRenderer = Callable[[SourceDocument, RenderOptions, int], list[EncodedPage]]


class RendererCrashed(DocumentError):
    """The worker process died while rendering the document (``os._exit``, a segfault in a
    decoder, the OOM killer). Perhaps the document's fault: the render stage retries the job
    once and fails it when it crashes the renderer a second time."""


class RenderInterrupted(Exception):
    """The render could not run for a reason that is not the document's: the pool was closed
    (the daemon is stopping) or could not start a worker. The job is handed back, not failed.

    Not a ``GatewayError``: nobody reports it to a sender; the render stage consumes it."""


_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
_PR_SET_PDEATHSIG = 1  # linux/prctl.h


def _init_worker(max_bytes: int | None) -> None:
    """Worker initializer: leave stop signals to the daemon, die with the parent, and cap the
    address space so a decompression bomb fails with MemoryError."""
    parent = os.getppid()
    for sig in _STOP_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)
    if sys.platform == "linux":
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(1)
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


def _start_fork_server(context: multiprocessing.context.BaseContext) -> None:
    """Start the fork server with stop signals blocked: it keeps the blocked mask, and hands it
    on to every worker it forks, so a signal meant for the daemon never kills them. A signal
    that reaches the daemon meanwhile is delivered as soon as the mask is restored.

    multiprocessing's resource tracker protects itself the same way, but unblocks SIGINT and
    SIGTERM when it has started; so it is started first.
    """
    if context.get_start_method() != "forkserver" or not hasattr(signal, "pthread_sigmask"):
        return
    from multiprocessing import forkserver, resource_tracker

    resource_tracker.ensure_running()
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS)
    try:
        forkserver.ensure_running()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _kill_processes(executor: ProcessPoolExecutor) -> None:
    # ProcessPoolExecutor has no public way to kill a busy worker before Python 3.14
    # (kill_workers); its _processes mapping is the documented-by-use way in 3.11-3.13.
    for process in list((getattr(executor, "_processes", None) or {}).values()):
        with contextlib.suppress(OSError, ValueError):  # already reaped, or closed
            process.kill()


def _kill_if_broken(executor: ProcessPoolExecutor, future: Future[object]) -> None:
    """Done-callback of every call: when a worker died, kill the executor's other workers.

    The executor would only ask them to terminate (SIGTERM, which they ignore) and then wait
    for them, possibly for ever when nobody awaits the call any more to restart the pool."""
    if not future.cancelled() and isinstance(future.exception(), BrokenProcessPool):
        _kill_processes(executor)


class RenderPool:
    """A process pool for ``render_document`` with per-document time limits.

    ``renderer`` exists so tests can inject a picklable stand-in (one that hangs or crashes);
    the daemon uses the default.

    What callers may get besides the result: ``DocumentError`` (the document cannot be
    rendered, or took too long), ``RendererCrashed`` (its worker died), and
    ``RenderInterrupted`` (closed, or no worker could be started: not the document's fault).
    """

    def __init__(
        self,
        workers: int | None = None,
        per_doc_seconds: float = 60.0,
        *,
        memory_limit_bytes: int | None = 2 * 1024**3,
        renderer: DocumentRenderer = render_document,
        recycle_after_calls: int | None = None,
    ) -> None:
        self._workers = workers or os.cpu_count() or 1
        self._per_doc_seconds = per_doc_seconds
        self._memory_limit = memory_limit_bytes
        self._renderer = renderer
        # Fresh workers now and then: PDFium and image decoders may keep caches.
        self._recycle_after = max(1, recycle_after_calls or 200 * self._workers)
        self._calls = 0  # submitted to the current executor
        self._context = _context()
        _start_fork_server(self._context)
        self._executor = self._new_executor()
        self._restarted: weakref.WeakSet[ProcessPoolExecutor] = weakref.WeakSet()
        self._retiring: weakref.WeakSet[ProcessPoolExecutor] = weakref.WeakSet()
        self._slots: tuple[asyncio.AbstractEventLoop, asyncio.Semaphore] | None = None
        self._closed = False

    def _new_executor(self) -> ProcessPoolExecutor:
        # Not max_tasks_per_child: in CPython 3.11 a worker that retires is not replaced while
        # finished calls left "idle" tokens (_adjust_process_count), so under a backlog the
        # pool ends with no process at all and queued calls never finish (issue 13). The pool
        # recycles whole executors instead (``_submit``).
        return ProcessPoolExecutor(
            self._workers,
            mp_context=self._context,
            initializer=_init_worker,
            initargs=(self._memory_limit,),
        )

    def _restart(self, executor: ProcessPoolExecutor) -> None:
        """Kill ``executor``'s workers, and start a new pool if it was the current one; unless
        another caller already did."""
        if executor in self._restarted:
            return
        self._restarted.add(executor)
        if executor is self._executor:
            self._executor = self._new_executor()
            self._calls = 0
        _kill_processes(executor)
        executor.shutdown(wait=False, cancel_futures=True)

    def _recycle(self) -> None:
        """New calls go to a new executor; the old one finishes what it has, then exits."""
        old = self._executor
        self._executor = self._new_executor()
        self._calls = 0
        self._retiring.add(old)
        old.shutdown(wait=False)

    def _admission(self) -> asyncio.Semaphore:
        """At most one call per worker is handed to the executor, so that a call starts in a
        worker when submitted and its time limit does not include waiting behind others.
        (A semaphore belongs to one event loop; a pool may outlive one, as in tests.)"""
        loop = asyncio.get_running_loop()
        if self._slots is None or self._slots[0] is not loop:
            self._slots = (loop, asyncio.Semaphore(self._workers))
        return self._slots[1]

    def _submit(self, fn: Callable[..., T], *args: object) -> tuple[ProcessPoolExecutor, Future[T]]:
        """Hand ``fn(*args)`` to the current workers; also the executor it went to."""
        for _ in range(2):
            if self._closed:
                raise RenderInterrupted("the render pool is closed")
            if self._calls >= self._recycle_after:
                self._recycle()
            executor = self._executor
            try:
                future: Future[T] = executor.submit(fn, *args)
            except BrokenProcessPool:
                self._restart(executor)  # broke under earlier work: not this call's fault
                continue
            except (OSError, EOFError, RuntimeError) as exc:
                # No worker could be started: the fork server is gone (a stop signal that
                # reached it before the daemon) or the system is out of processes.
                self._restart(executor)
                raise RenderInterrupted(f"cannot start a render worker ({exc!r})") from exc
            self._calls += 1
            future.add_done_callback(functools.partial(_kill_if_broken, executor))
            return executor, future
        raise RenderInterrupted("the render pool broke twice before the render started")

    async def _call(
        self, document: SourceDocument, options: RenderOptions, budget: int
    ) -> list[EncodedPage]:
        for attempt in range(2):
            async with self._admission():
                executor, future = self._submit(self._renderer, document, options, budget)
                try:
                    return await asyncio.wait_for(
                        asyncio.wrap_future(future), self._per_doc_seconds
                    )
                except TimeoutError as exc:
                    self._restart(executor)
                    reason = f"rendering took longer than {self._per_doc_seconds:g} s"
                    raise DocumentError(document.filename, reason) from exc
                except BrokenProcessPool as exc:
                    if self._closed:
                        raise RenderInterrupted(
                            "the render pool was closed during the render"
                        ) from exc
                    if executor in self._restarted and attempt == 0:
                        continue  # killed because of another job's document: try again
                    self._restart(executor)
                    raise RendererCrashed(
                        document.filename, "rendering crashed the renderer"
                    ) from exc
        raise AssertionError("unreachable")

    async def render(
        self, documents: Sequence[SourceDocument], options: RenderOptions
    ) -> RenderedFax:
        """Render documents in parallel (one pool call each) and assemble them in order."""
        if self._closed:
            raise RenderInterrupted("the render pool is closed")
        # Every document may use the whole page budget; the sum is checked on assembly, which
        # costs at most one over-long render of work and keeps documents independent.
        tasks = [
            asyncio.ensure_future(self._call(document, options, options.max_pages))
            for document in documents
        ]
        try:
            rendered = await asyncio.gather(*tasks)
        except BaseException:
            for task in tasks:
                task.cancel()
            raise
        # Assembly is a byte copy, but the cover page (if any) is rendered here: off the loop.
        return await self._simple("cover page", assemble_fax, rendered, options)

    async def to_pdf(self, tiff: bytes) -> bytes:
        """The PDF rendition of a fax TIFF, computed off the event loop."""
        return await self._simple("PDF rendition", tiff_to_pdf, tiff)

    async def _simple(self, part: str, fn: Callable[..., T], *args: object) -> T:
        """Run trusted work (our own cover text, our own TIFF) in the pool, retrying once if a
        concurrent kill broke the pool under it."""
        for attempt in range(2):
            async with self._admission():
                executor, future = self._submit(fn, *args)
                try:
                    return await asyncio.wrap_future(future)
                except BrokenProcessPool as exc:
                    if self._closed:
                        raise RenderInterrupted(
                            "the render pool was closed during the render"
                        ) from exc
                    self._restart(executor)
                    if attempt == 1:
                        raise RendererCrashed(part, "rendering crashed the renderer") from exc
        raise AssertionError("unreachable")

    def problem(self) -> str | None:
        """Why the pool could not render now (for the health check); None when it can.

        A pool broken while idle (a worker killed from outside: the OOM killer, an admin) is
        reported once and restarted, as the next render would do: a load balancer that takes
        the node out on a 503 would otherwise bring no render to repair it."""
        if self._closed:
            return "closed"
        executor = self._executor
        if getattr(executor, "_broken", False):
            self._restart(executor)
            return "broken (a worker process died); restarted"
        processes = list((getattr(executor, "_processes", None) or {}).values())
        dead = sum(1 for process in processes if process.exitcode is not None)
        if processes and dead == len(processes):
            return f"no worker process alive ({dead} exited)"
        return None

    async def close(self, grace_seconds: float = 5.0) -> None:
        """Stop the workers: wait ``grace_seconds`` for running renders, then kill them. A call
        still waiting then raises ``RenderInterrupted``."""
        self._closed = True
        executors = [self._executor, *self._retiring]
        if grace_seconds > 0:
            loop = asyncio.get_running_loop()
            finish = [
                loop.run_in_executor(
                    None, functools.partial(executor.shutdown, True, cancel_futures=True)
                )
                for executor in executors
            ]
            try:
                await asyncio.wait_for(asyncio.gather(*finish), grace_seconds)
                return
            except TimeoutError:
                pass
        for executor in executors:
            _kill_processes(executor)
            executor.shutdown(wait=False, cancel_futures=True)
