"""SMTP in -> rendered -> sent over the real loopback T.30 line -> completed (no mocks).

Everything real: the SMTP edge, SQLite, the render pool and libspandsp on both ends of the line.
"""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pypdf
import pytest
from PIL import Image, ImageSequence

from gateway.config import Settings
from gateway.documents.pool import RenderPool
from gateway.inbound import FaxboxInbound
from gateway.models import Direction, Fax, FaxStatus
from gateway.pipeline import RenderStage
from gateway.store import Store
from gateway.transports.loopback import LoopbackTransport
from gateway.worker import Worker
from tests.builders import image_bytes, make_email, pdf_bytes, tiff_bytes
from tests.conftest import Clock, SmtpHarness, Tenant, make_tenant

TIFF_COMPRESSION, PHOTOMETRIC, X_RES, Y_RES = 259, 262, 282, 283
CCITT_T6, MIN_IS_WHITE = 4, 0


@dataclass
class Gateway:
    """The daemon's send path, assembled as the daemon assembles it."""

    store: Store
    smtp: SmtpHarness
    render: RenderStage
    worker: Worker

    async def fax(self, message: object) -> Fax:
        """Mail ``message``, render it and send it; return the outbound fax."""
        await self.smtp.send(message)
        [entry] = await self.store.recent_smtplog(None, 1)
        assert entry.reply_code == 250, entry
        [fax_id] = entry.fax_ids
        await self.render.run_until_idle()
        rendered = await self.store.get_fax(fax_id)
        assert rendered.status is FaxStatus.PENDING, rendered.error
        await self.worker.run_until_idle()
        return await self.store.get_fax(fax_id)


@pytest.fixture
async def gateway(store: Store, smtp: SmtpHarness, settings: Settings) -> AsyncIterator[Gateway]:
    pool = RenderPool(2, 30)
    inbound = FaxboxInbound(store, pool.to_pdf, "w", settings.worker.lease_s)
    line = LoopbackTransport({}, inbound)
    worker = Worker(store, line, settings.worker, "w")
    yield Gateway(store, smtp, RenderStage(store, pool, settings), worker)
    await line.close()
    await pool.close()


async def test_an_email_becomes_a_completed_fax_with_real_figures(
    gateway: Gateway, tenant: Tenant, clock: Clock
) -> None:
    msg = make_email(
        to="+14155550123@fax.test", attachments=[(pdf_bytes(3), "application/pdf", "q3.pdf")]
    )
    fax = await gateway.fax(msg)
    assert (fax.status, fax.folder, fax.attempts, fax.pages) == (
        FaxStatus.COMPLETED,
        "outbox",
        1,
        3,
    )
    assert fax.delivered == clock.now
    tx = fax.tx_result
    assert tx is not None
    assert tx["success"] is True
    assert tx["error_message"] is None
    assert (tx["result_code"], tx["result_text"]) == (0, "OK")
    assert tx["pages_sent"] == tx["total_pages"] == 3
    assert tx["fax_speed"] == 14400  # V.17 on a clean line
    assert tx["fax_error_correction"] is True
    assert tx["fax_receiver_id"] == "+14155550123"  # the remote's CSI
    assert tx["fax_bad_rows"] == 0
    assert tx["time_elapsed"] == 0  # the hand clock stood still since submission
    assert 20 < tx["line_seconds"] < 120
    [attempt] = await gateway.store.fax_attempts(fax.id)
    assert attempt["outcome"] == "completed"
    assert attempt["result"] == tx


async def test_a_fax_to_a_local_faxbox_lands_in_its_inbox(
    gateway: Gateway, tenant: Tenant, store: Store
) -> None:
    local = await make_tenant(store, "local", domain="local.test", fax_number="+14155550777")
    msg = make_email(
        to="+14155550777@fax.test", attachments=[(pdf_bytes(2), "application/pdf", "two.pdf")]
    )
    sent = await gateway.fax(msg)
    assert sent.status is FaxStatus.COMPLETED
    assert sent.tx_result is not None and sent.tx_result["pages_sent"] == 2

    [received] = await store.recent_faxes(local.account_id, 10)
    assert received.direction is Direction.INBOUND
    assert (received.status, received.folder, received.pages) == (FaxStatus.COMPLETED, "inbox", 2)
    assert received.faxbox_id == local.faxbox.id
    assert received.to_number == "+14155550777"
    assert received.from_number == tenant.faxbox.caller_id
    assert received.fax_identity_number == tenant.faxbox.fax_identity  # the caller's TSI
    rx = received.rx_result
    assert rx is not None
    assert rx["success"] is True
    assert rx["total_pages"] == rx["pages_received"] == 2
    assert rx["remote_tsi"] == tenant.faxbox.fax_identity
    assert rx["fax_speed"] == 14400
    [tiff] = await store.fax_documents(received.id, "tiff")
    [pdf] = await store.fax_documents(received.id, "pdf")
    with Image.open(io.BytesIO(tiff.data)) as image:
        assert image.n_frames == 2
    assert len(pypdf.PdfReader(io.BytesIO(pdf.data)).pages) == 2
    # The sender's account sees only its outbound fax.
    assert [f.id for f in await store.recent_faxes(tenant.account_id, 10)] == [sent.id]


async def test_pdf_photo_and_tiff_make_one_fax_of_tiff_f_pages(
    gateway: Gateway, tenant: Tenant, store: Store
) -> None:
    msg = make_email(
        to="+14155550123@fax.test",
        attachments=[
            (pdf_bytes(2), "application/pdf", "letter.pdf"),
            (image_bytes("JPEG", (1600, 1200)), "image/jpeg", "photo.jpg"),
            (tiff_bytes(1), "image/tiff", "scan.tif"),
        ],
    )
    fax = await gateway.fax(msg)
    assert (fax.status, fax.pages) == (FaxStatus.COMPLETED, 4)
    assert fax.tx_result is not None and fax.tx_result["pages_sent"] == 4
    [tiff] = await store.fax_documents(fax.id, "tiff")
    with Image.open(io.BytesIO(tiff.data)) as image:
        pages = 0
        for page in ImageSequence.Iterator(image):
            pages += 1
            tags = page.tag_v2
            assert page.size[0] == 1728
            assert (round(float(tags[X_RES])), round(float(tags[Y_RES]))) == (204, 196)
            assert tags[TIFF_COMPRESSION] == CCITT_T6
            assert tags[PHOTOMETRIC] == MIN_IS_WHITE
            assert page.mode == "1"
        assert pages == 4
