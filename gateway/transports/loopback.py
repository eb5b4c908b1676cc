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
from collections.abc import Callable, Mapping
from concurrent.futures import Executor, ThreadPoolExecutor

from gateway.transports.base import OutboundCall, TxResult
from gateway.transports.remotes import RemoteDirectory
from gateway.transports.session import CallRequest, place_call
from gateway.transports.spandsp import library


def _no_local_numbers(_number: str) -> bool:
    return False


class LoopbackTransport:
    """``FaxTransport`` over the simulated line.

    ``remotes`` maps a number or ``fnmatch`` glob to a behaviour string (see ``remotes``);
    ``local_numbers(to_number)`` says whether the number is one of our own faxboxes, in which
    case the remote's received image comes back as ``TxResult.received``. ``pace`` makes each
    call take that many wall-clock seconds per simulated line second (0: as fast as it runs).
    """

    def __init__(
        self,
        remotes: Mapping[str, str] | None = None,
        local_numbers: Callable[[str], bool] | None = None,
        executor: Executor | None = None,
        pace: float = 0.0,
    ) -> None:
        self._directory = RemoteDirectory(remotes or {})
        self._pace = max(0.0, pace)
        self._local_numbers = local_numbers or _no_local_numbers
        self._owns_executor = executor is None
        self._executor = executor or ThreadPoolExecutor(
            max_workers=os.cpu_count() or 2, thread_name_prefix="fax-line"
        )
        library()  # fail at start-up (TransmitError) rather than at the first call

    async def send(self, call: OutboundCall) -> TxResult:
        request = CallRequest(
            call=call,
            remote=self._directory.lookup(call.to_number),
            capture=self._local_numbers(call.to_number),
            pace=self._pace,
        )
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, place_call, request)

    async def close(self) -> None:
        if self._owns_executor:
            # Waiting happens in a thread so a running call does not block the loop.
            await asyncio.to_thread(self._executor.shutdown, True)
