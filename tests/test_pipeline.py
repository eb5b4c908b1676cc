"""The render stage: SMTP intake -> ``attaching_files`` -> ``pending`` or ``failed``, with the
real render pool and a real SQLite store."""

from __future__ import annotations

import asyncio
import io
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pypdf
import pytest
from PIL import Image

from gateway.config import Settings
from gateway.documents.pool import RenderPool
from gateway.models import FaxStatus
from gateway.pipeline import RenderStage
from gateway.store import Store
from tests.builders import image_bytes, make_email, pdf_bytes
from tests.conftest import Clock, SmtpHarness, Tenant, make_settings
from tests.documents.stand_ins import crash_on_crash, hang_on_stuck
from tests.malformed import tiff_damaged_beyond_intake
from tests.stores import raw


@pytest.fixture
async def pool() -> AsyncIterator[RenderPool]:
    render_pool = RenderPool(2, 30)
    yield render_pool
    await render_pool.close()


async def submit(smtp: SmtpHarness, *attachments: tuple[bytes, str, str], to: str) -> str:
    await smtp.send(make_email(to=to, attachments=list(attachments)))
    [entry] = [
        e for e in await smtp.store.recent_smtplog(None, 100) if e.recipients[0].address == to
    ]
    assert entry.reply_code == 250, entry
    [fax_id] = entry.fax_ids
    return fax_id


async def test_attaching_files_becomes_pending_with_the_fax_image_and_its_pdf(
    smtp: SmtpHarness,
    tenant: Tenant,
    store: Store,
    settings: Settings,
    pool: RenderPool,
    clock: Clock,
) -> None:
    fax_id = await submit(
        smtp, (pdf_bytes(2), "application/pdf", "two.pdf"), to="+14155550123@fax.test"
    )
    assert (await store.get_fax(fax_id)).status is FaxStatus.ATTACHING_FILES
    ready: list[str] = []
    stage = RenderStage(store, pool, settings, on_ready=lambda: ready.append("ready"))
    await stage.run_until_idle()

    fax = await store.get_fax(fax_id)
    assert (fax.status, fax.pages, fax.folder) == (FaxStatus.PENDING, 2, "outgoing")
    assert fax.next_attempt_at == clock.now  # due at once
    assert ready == ["ready"]  # the worker is woken
    [tiff] = await store.fax_documents(fax_id, "tiff")
    [pdf] = await store.fax_documents(fax_id, "pdf")
    assert tiff.pages == pdf.pages == 2
    with Image.open(io.BytesIO(tiff.data)) as image:
        assert image.n_frames == 2
        assert image.size[0] == 1728
    assert len(pypdf.PdfReader(io.BytesIO(pdf.data)).pages) == 2
    # The render lease is gone: the job can be claimed for sending right away.
    [claim] = await store.claim_due("worker", 60, 10, 5)
    assert claim.fax.id == fax_id


async def test_a_corrupt_document_fails_its_job_naming_the_document(
    smtp: SmtpHarness,
    tenant: Tenant,
    store: Store,
    settings: Settings,
    pool: RenderPool,
    clock: Clock,
) -> None:
    # Its structure is sound and its page too large for SMTP intake to decode, so intake
    # accepts it; its pixel data is garbled, which only rendering finds out.
    broken = tiff_damaged_beyond_intake()
    bad = await submit(
        smtp,
        (pdf_bytes(1), "application/pdf", "cover.pdf"),
        (broken, "image/tiff", "scan.tif"),
        to="+14155550123@fax.test",
    )
    good = await submit(
        smtp, (pdf_bytes(1), "application/pdf", "fine.pdf"), to="+14155550124@fax.test"
    )
    clock.advance(3)
    await RenderStage(store, pool, settings).run_until_idle()

    fax = await store.get_fax(bad)
    assert (fax.status, fax.folder, fax.attempts) == (FaxStatus.FAILED, "outbox", 0)
    assert fax.error is not None and fax.error.startswith("scan.tif: ")
    tx = fax.tx_result
    assert tx is not None
    assert tx["success"] is False
    assert tx["error_message"] == fax.error
    assert "TIFF" in tx["error_message"]
    assert (tx["pages_sent"], tx["time_elapsed"], tx["failure_class"]) == (0, 3, "permanent")
    # The admin reading the smtplog sees why the message it accepted never went out.
    entry = await store.get_smtplog(fax.smtplog_id or "")
    assert entry.reply_code == 250
    assert entry.errors == [f"fax {bad}: {fax.error}"]
    # The other job was not hurt.
    assert (await store.get_fax(good)).status is FaxStatus.PENDING
    assert await store.claim_due("worker", 60, 10, 5) != []


async def test_one_message_to_two_numbers_renders_two_jobs(
    smtp: SmtpHarness, tenant: Tenant, store: Store, settings: Settings, pool: RenderPool
) -> None:
    msg = make_email(
        to=["+14155550123@fax.test", "+14155550124@fax.test"],
        attachments=[(image_bytes("JPEG", (1600, 1200)), "image/jpeg", "photo.jpg")],
    )
    await smtp.send(msg)
    [entry] = await store.recent_smtplog(None, 10)
    assert len(entry.fax_ids) == 2
    await RenderStage(store, pool, settings).run_until_idle()
    for fax_id in entry.fax_ids:
        fax = await store.get_fax(fax_id)
        assert (fax.status, fax.pages) == (FaxStatus.PENDING, 1)


async def test_more_jobs_than_render_slots_render_without_waiting_for_the_poll(
    smtp: SmtpHarness, tenant: Tenant, store: Store, pool: RenderPool, tmp_path: Path
) -> None:
    numbers = [f"+1415555012{n}@fax.test" for n in range(3)]
    await smtp.send(
        make_email(to=numbers, attachments=[(pdf_bytes(1), "application/pdf", "a.pdf")])
    )
    [entry] = await store.recent_smtplog(None, 10)
    # One render slot and a one-minute poll: only the wake-up of a finished render can start
    # the next job in time.
    settings = make_settings(tmp_path, render={"workers": 1}, worker={"poll_s": 60})
    stage = RenderStage(store, pool, settings)
    stop = asyncio.Event()
    run = asyncio.create_task(stage.run(stop))
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        faxes = [await store.get_fax(fax_id) for fax_id in entry.fax_ids]
        if all(f.status is FaxStatus.PENDING for f in faxes):
            break
        await asyncio.sleep(0.02)
    stop.set()
    await asyncio.wait_for(run, 10)
    assert [f.status for f in faxes] == [FaxStatus.PENDING] * 3


async def test_a_document_that_crashes_the_renderer_fails_only_when_it_crashed_it_twice(
    smtp: SmtpHarness, tenant: Tenant, store: Store, settings: Settings
) -> None:
    # crash_on_crash kills its worker process (os._exit) on a document named "crash".
    crashing = await submit(
        smtp, (pdf_bytes(1), "application/pdf", "crash"), to="+14155550123@fax.test"
    )
    innocent = await submit(
        smtp, (pdf_bytes(1), "application/pdf", "fine.pdf"), to="+14155550124@fax.test"
    )
    crashing_pool = RenderPool(2, 30, renderer=crash_on_crash)
    try:
        first = RenderStage(store, crashing_pool, settings)
        await first.run_once()
        await asyncio.gather(*first.tasks)
        # One crash may be bad luck (another job's document, memory pressure): retried.
        fax = await store.get_fax(crashing)
        assert (fax.status, fax.error) == (FaxStatus.ATTACHING_FILES, None)

        # The count is kept in the store: a restarted daemon (another stage) counts on.
        await RenderStage(store, crashing_pool, settings).run_until_idle()
    finally:
        await crashing_pool.close()

    fax = await store.get_fax(crashing)
    assert (fax.status, fax.error) == (
        FaxStatus.FAILED,
        "crash: rendering crashed the renderer twice",
    )
    assert fax.tx_result is not None and fax.tx_result["error_message"] == fax.error
    entry = await store.get_smtplog(fax.smtplog_id or "")
    assert entry.errors == [f"fax {crashing}: {fax.error}"]
    # The job rendered beside it (perhaps killed with it once) is not blamed.
    assert (await store.get_fax(innocent)).status is FaxStatus.PENDING


async def test_a_stop_hands_unfinished_renders_back_uncounted(
    smtp: SmtpHarness, tenant: Tenant, store: Store, tmp_path: Path
) -> None:
    # hang_on_stuck never finishes a document named "stuck" (within its 30 s limit).
    fax_id = await submit(
        smtp, (pdf_bytes(1), "application/pdf", "stuck"), to="+14155550123@fax.test"
    )
    settings = make_settings(tmp_path, worker={"drain_timeout_s": 0})
    slow_pool = RenderPool(1, 30, renderer=hang_on_stuck)
    stage = RenderStage(store, slow_pool, settings)
    stop = asyncio.Event()
    try:
        running = asyncio.create_task(stage.run(stop))
        while not await raw(store).fetchone(  # the render is under way
            "SELECT 1 FROM faxes WHERE id = ? AND lease_owner IS NOT NULL", (fax_id,)
        ):
            await asyncio.sleep(0.01)
        stop.set()
        await running
    finally:
        await slow_pool.close(grace_seconds=0)

    fax = await store.get_fax(fax_id)
    assert (fax.status, fax.error) == (FaxStatus.ATTACHING_FILES, None)
    # Its lease was released: the next start renders it at once.
    [claimed] = await store.claim_attaching("next-start", 60, 5)
    assert claimed.id == fax_id
    [crashes] = await raw(store).fetchone(
        "SELECT render_crashes FROM faxes WHERE id = ?", (fax_id,)
    )
    assert crashes == 0
