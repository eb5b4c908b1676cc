"""The loopback transport: every call is a real T.30 session against a simulated remote.

Sessions run in an executor, never on the event loop. The default is a private thread pool:
ctypes releases the GIL inside each ``fax_tx``/``fax_rx`` call, where most of the time goes,
and the Python glue between blocks is a few microseconds, so threads scale across cores well
enough and cost nothing to start. A ``ProcessPoolExecutor`` may be passed instead for full
isolation (a crash inside libspandsp then kills a worker process, not the daemon); the session
takes and returns plain picklable records, so it works unchanged.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping
from concurrent.futures import Executor, ThreadPoolExecutor

from gateway.transports.base import (
    ArrivingCall,
    InboundLine,
    OutboundCall,
    ReceivedFax,
    Reception,
    TxResult,
)
from gateway.transports.remotes import RemoteDirectory
from gateway.transports.session import CallRequest, LineOutcome, place_call
from gateway.transports.spandsp import library


class LoopbackTransport:
    """``FaxTransport`` over the simulated line.

    ``remotes`` maps a number or ``fnmatch`` glob to a behaviour string (see ``remotes``).
    Each call is first offered to ``inbound`` as an arriving call: when one of our own
    faxboxes has the number, the remote is that faxbox, and what it received is handed to the
    inbound line as any transport's arriving fax would be. ``pace`` makes each call take that
    many wall-clock seconds per simulated line second (0: as fast as it runs).
    """

    def __init__(
        self,
        remotes: Mapping[str, str] | None = None,
        inbound: InboundLine | None = None,
        executor: Executor | None = None,
        pace: float = 0.0,
    ) -> None:
        self._directory = RemoteDirectory(remotes or {})
        self._pace = max(0.0, pace)
        self._inbound = inbound
        self._owns_executor = executor is None
        self._executor = executor or ThreadPoolExecutor(
            max_workers=os.cpu_count() or 2, thread_name_prefix="fax-line"
        )
        library()  # fail at start-up (TransmitError) rather than at the first call

    async def start(self) -> None:
        """Nothing listens: the loopback's only arriving calls are its own."""

    async def send(self, call: OutboundCall) -> TxResult:
        reception: Reception | None = None
        if self._inbound is not None:
            reception = await self._inbound.arriving(
                ArrivingCall(
                    dialled=call.to_number, caller_number=call.from_number, caller_name=None
                )
            )
        request = CallRequest(
            call=call,
            remote=self._directory.lookup(call.to_number),
            capture=reception is not None,
            remote_ident=reception.csi if reception else None,
            pace=self._pace,
        )
        loop = asyncio.get_running_loop()
        line: LineOutcome = await loop.run_in_executor(self._executor, place_call, request)
        if reception is not None and self._inbound is not None:
            # The far end's side first: once the call is over, the fax is in its inbox.
            received = line.received or _nothing(line.result)
            delivery = asyncio.ensure_future(self._inbound.received(reception, received))
            try:
                await asyncio.shield(delivery)
            except asyncio.CancelledError:
                # A stop cutting calls short came after this one ended: the far end has the
                # pages. Finish its side and report the call, so that the attempt is recorded
                # rather than handed back and sent a second time.
                await delivery
                current = asyncio.current_task()
                if current is not None:
                    current.uncancel()
        return line.result

    async def close(self) -> None:
        if self._owns_executor:
            # Waiting happens in a thread so a running call does not block the loop.
            await asyncio.to_thread(self._executor.shutdown, True)


def _nothing(result: TxResult) -> ReceivedFax:
    """What a local faxbox got from a call that delivered no page."""
    return ReceivedFax(
        tiff=b"",
        pages=0,
        remote_tsi=None,
        success=False,
        result_text=result.result_text,
        fax_speed=0,
        fax_error_correction=False,
        fax_bad_rows=0,
    )
