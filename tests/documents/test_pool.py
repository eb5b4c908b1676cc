"""RenderPool: renders off the event loop, kills stuck workers, survives crashes."""

from __future__ import annotations

import asyncio
import io
import time
from collections.abc import AsyncIterator

import pytest
from docgen import LETTER, pdf, text_content
from PIL import Image
from signal_stand_ins import signalled_mid_render
from stand_ins import crash_on_crash, hang_on_stuck, quick_or_slow

from gateway.documents.pool import RendererCrashed, RenderInterrupted, RenderPool
from gateway.documents.render import RenderOptions
from gateway.errors import DocumentError
from gateway.models import DocumentKind, SourceDocument

GOOD = SourceDocument(DocumentKind.PDF, pdf([(*LETTER, text_content(["pool"]))]), "good.pdf")
TEXT = SourceDocument(DocumentKind.TEXT, b"hello", "body.txt")


@pytest.fixture
async def pool() -> AsyncIterator[RenderPool]:
    pool = RenderPool(workers=2, per_doc_seconds=1.5, renderer=hang_on_stuck)
    yield pool
    await pool.close()


async def test_renders_documents_in_order_and_makes_a_pdf(pool: RenderPool) -> None:
    fax = await pool.render([GOOD, TEXT], RenderOptions())
    assert fax.pages == 2
    with Image.open(io.BytesIO(fax.tiff)) as image:
        assert image.n_frames == 2
    assert (await pool.to_pdf(fax.tiff)).startswith(b"%PDF-")


async def test_stuck_document_is_killed_and_named(pool: RenderPool) -> None:
    stuck = SourceDocument(DocumentKind.TEXT, b"x", "stuck")
    started = time.monotonic()
    with pytest.raises(DocumentError) as error:
        await pool.render([TEXT, stuck], RenderOptions())
    assert time.monotonic() - started < 5
    assert error.value.part == "stuck"
    assert error.value.reason == "rendering took longer than 1.5 s"
    # The pool works again afterwards.
    assert (await pool.render([GOOD], RenderOptions())).pages == 1


async def test_other_jobs_survive_a_kill_caused_by_a_stuck_document(pool: RenderPool) -> None:
    stuck = SourceDocument(DocumentKind.TEXT, b"x", "stuck")
    slow_but_fine = [GOOD] * 6
    results = await asyncio.gather(
        pool.render([stuck], RenderOptions()),
        pool.render(slow_but_fine, RenderOptions()),
        return_exceptions=True,
    )
    assert isinstance(results[0], DocumentError)
    assert not isinstance(results[1], BaseException) and results[1].pages == 6


async def test_crashing_worker_becomes_a_document_error_and_the_pool_recovers() -> None:
    pool = RenderPool(workers=1, per_doc_seconds=10, renderer=crash_on_crash)
    try:
        with pytest.raises(DocumentError) as error:
            await pool.render([SourceDocument(DocumentKind.TEXT, b"x", "crash")], RenderOptions())
        assert error.value.part == "crash"
        assert (await pool.render([TEXT], RenderOptions())).pages == 1
    finally:
        await pool.close()


async def test_event_loop_stays_responsive_while_rendering(pool: RenderPool) -> None:
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    task = asyncio.create_task(ticker())
    started = time.monotonic()
    await pool.render([GOOD] * 4, RenderOptions())
    elapsed = time.monotonic() - started
    task.cancel()
    assert ticks >= elapsed / 0.01 * 0.5


async def test_stop_signals_meant_for_the_daemon_do_not_kill_the_workers() -> None:
    # SIGTERM to the process group reaches the workers and the fork server too; stopping is
    # the daemon's business, so they carry on (and the daemon hands unfinished renders back).
    pool = RenderPool(workers=1, per_doc_seconds=10, renderer=signalled_mid_render)
    try:
        assert (await pool.render([TEXT], RenderOptions())).pages == 1
        assert (await pool.render([GOOD], RenderOptions())).pages == 1
    finally:
        await pool.close()


async def test_a_render_cut_short_by_closing_the_pool_is_not_the_documents_fault(
    pool: RenderPool,
) -> None:
    stuck = SourceDocument(DocumentKind.TEXT, b"x", "stuck")
    render = asyncio.create_task(pool.render([stuck], RenderOptions()))
    await asyncio.sleep(0.2)  # the worker has the document
    await pool.close(grace_seconds=0)
    with pytest.raises(RenderInterrupted):
        await render


async def test_a_crashing_document_is_reported_as_a_crash() -> None:
    pool = RenderPool(workers=1, per_doc_seconds=10, renderer=crash_on_crash)
    try:
        with pytest.raises(RendererCrashed) as error:
            await pool.render([SourceDocument(DocumentKind.TEXT, b"x", "crash")], RenderOptions())
        assert str(error.value) == "crash: rendering crashed the renderer"
    finally:
        await pool.close()


async def test_a_render_waiting_for_a_free_worker_is_not_timed_for_the_wait() -> None:
    # One worker, four documents of 0.5 s each: the last starts 1.5 s after submission, past
    # the 1 s limit, which is the document's own rendering time, not its time in the queue.
    pool = RenderPool(workers=1, per_doc_seconds=1.0, renderer=quick_or_slow)
    slow = SourceDocument(DocumentKind.TEXT, b"x", "slow")
    try:
        assert (await pool.render([slow] * 4, RenderOptions())).pages == 4
    finally:
        await pool.close()


async def test_recycled_workers_are_replaced_under_a_backlog() -> None:
    # Issue 13: CPython 3.11's max_tasks_per_child retired workers without replacing them
    # while calls were queued, leaving no worker process and renders that never finished.
    pool = RenderPool(workers=2, per_doc_seconds=10, renderer=quick_or_slow, recycle_after_calls=3)
    quick = SourceDocument(DocumentKind.TEXT, b"x", "quick")
    renders = [asyncio.ensure_future(pool.render([quick], RenderOptions())) for _ in range(20)]
    try:
        # A guard against hanging for ever, not a speed limit: 40 calls take about a second.
        done, stalled = await asyncio.wait(renders, timeout=120)
        assert not stalled
        assert [render.result().pages for render in done] == [1] * 20
    finally:
        for render in renders:
            render.cancel()
        await pool.close()
