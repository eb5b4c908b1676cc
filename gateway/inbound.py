"""The inbound line: where every transport hands in an arriving fax call.

A call is admitted when a faxbox has the dialled number as its ``fax_number``; it is then a fax
in ``incoming`` held under a lease (renewed while the call lasts, so that a crash mid-call
cannot leave it there for ever), and ends in ``inbox`` with its ``rx_result``, the image and
its PDF rendition, which the notifier then emails to the faxbox's inbound list.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from gateway.errors import InvalidNumberError, StorageError
from gateway.numbers import normalize_number
from gateway.store import InboundStore
from gateway.transports.base import ArrivingCall, ReceivedFax, Reception

log = logging.getLogger(__name__)


def dialled_number(dialled: str, region: str) -> str | None:
    """The E.164 form of a dialled number, with or without ``+``, or in the national form of
    ``region``; None when it cannot be a phone number. Trunks send all three: ``+14155550101``,
    ``14155550101`` (E.164 digits without the plus) and ``4155550101``."""
    text = dialled.strip()
    candidates = [text]
    if text.isdigit():
        candidates.append("+" + text)
    for candidate in candidates:
        try:
            return normalize_number(candidate, region)
        except InvalidNumberError:
            continue
    return None


class FaxboxInbound:
    """``InboundLine`` over the store: dialled number → faxbox, reception → inbox."""

    def __init__(
        self,
        store: InboundStore,
        make_pdf: Callable[[bytes], Awaitable[bytes]],
        owner: str,
        lease_s: float,
        region: str = "US",
        on_finished: Callable[[str], None] = lambda fax_id: None,
    ) -> None:
        self.store = store
        self.make_pdf = make_pdf
        self.owner = owner
        self.lease_s = lease_s
        self.region = region
        self.on_finished = on_finished
        self._renewals: dict[str, asyncio.Task[None]] = {}

    async def arriving(self, call: ArrivingCall) -> Reception | None:
        number = dialled_number(call.dialled, call.region or self.region)
        if number is None:
            return None
        faxbox = await self.store.faxbox_by_fax_number(number)
        if faxbox is None:
            return None
        fax_id = await self.store.begin_inbound(
            faxbox, call.caller_number, None, self.owner, self.lease_s
        )
        self._renewals[fax_id] = asyncio.create_task(
            self._keep_lease(fax_id), name=f"inbound-lease-{fax_id}"
        )
        log.info("inbound fax=%s to=%s from=%s", fax_id, number, call.caller_number)
        return Reception(fax_id=fax_id, faxbox_id=faxbox.id, csi=faxbox.fax_identity)

    async def received(self, reception: Reception, fax: ReceivedFax) -> None:
        renewal = self._renewals.pop(reception.fax_id, None)
        if renewal is not None:
            renewal.cancel()
        rx: dict[str, Any] = {
            "success": fax.success and fax.pages > 0,
            "result_text": fax.result_text,
            "total_pages": fax.pages,
            "pages_received": fax.pages,
            "fax_speed": fax.fax_speed,
            "fax_error_correction": fax.fax_error_correction,
            "fax_bad_rows": fax.fax_bad_rows,
            "remote_tsi": fax.remote_tsi,
        }
        tiff = fax.tiff if fax.pages else None
        pdf = None
        if tiff:
            try:
                pdf = await self.make_pdf(tiff)
            except Exception:  # the TIFF is kept; the PDF rendition can be made again later
                log.exception("inbound fax=%s: no PDF rendition", reception.fax_id)
        if await self.store.finish_inbound(reception.fax_id, rx, tiff, pdf, fax.pages):
            self.on_finished(reception.fax_id)

    async def _keep_lease(self, fax_id: str) -> None:
        while True:
            await asyncio.sleep(max(0.05, self.lease_s / 3))
            try:
                if not await self.store.renew_lease(fax_id, self.owner, self.lease_s):
                    return  # taken back (a stop or an expiry): nothing left to keep
            except StorageError:
                log.exception("inbound fax=%s: lease renewal failed", fax_id)

    async def close(self) -> None:
        """Stop renewing: receptions cut short by a stop are ended by the store's release."""
        renewals, self._renewals = list(self._renewals.values()), {}
        for task in renewals:
            task.cancel()
        await asyncio.gather(*renewals, return_exceptions=True)
