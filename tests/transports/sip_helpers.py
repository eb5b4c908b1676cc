"""What the SIP transport tests share: settings on 127.0.0.x, an inbound line that records what
it is handed, and the fast media clock.

``Recorder`` is the test's own ``InboundLine`` (a collaborator, not a stand-in for one of our
modules): it admits the numbers it was given, refuses the others (404), and can hold a call in
``arriving`` until the test lets it go (to keep a line busy, or to let a caller give up).
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from PIL import Image

from gateway.config import SipSettings
from gateway.transports.base import ArrivingCall, ReceivedFax, Reception
from gateway.transports.sip import SipTransport

HOST = "127.0.0.1"
OTHER_HOST = "127.0.0.2"  # a loopback address no allow_from of these tests lets in
TEST_PERIOD_S = 0.002  # the media clock 10x faster than a gateway's (as test_callmedia does)
GUARD_S = 120.0  # wall time after which a test gives up waiting; never an assertion
CALLEE = "+15550001000"  # the number B's faxbox has (make_call's default to_number)
CALLEE_CSI = "+1 555 000 1000"
CALLER = "+15557770000"  # make_call's from_number and TSI


def sip_settings(**keys: Any) -> SipSettings:
    """A transport on 127.0.0.1 at a free port with short SIP timers; ``keys`` override."""
    values: dict[str, Any] = {
        "listen_host": HOST,
        "listen_port": 0,
        "proxy_host": HOST,
        "t1_ms": 100,
        "ring_timeout_s": 20,
        "media_silence_s": 5,
    }
    values.update(keys)
    return SipSettings(**values)


@dataclass
class Recorder:
    """An ``InboundLine`` admitting ``numbers``; records every call and every reception."""

    numbers: tuple[str, ...] = (CALLEE,)
    csi: str | None = CALLEE_CSI
    hold: asyncio.Event | None = None  # when set up: arriving() waits until it is set
    arrived: list[ArrivingCall] = field(default_factory=list)
    receptions: list[tuple[Reception, ReceivedFax]] = field(default_factory=list)
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    async def arriving(self, call: ArrivingCall) -> Reception | None:
        self.arrived.append(call)
        self._changed.set()
        if self.hold is not None:
            await self.hold.wait()
        if call.dialled not in self.numbers:
            return None
        return Reception(f"fax-in-{len(self.arrived)}", "faxbox-b", self.csi)

    async def received(self, reception: Reception, fax: ReceivedFax) -> None:
        self.receptions.append((reception, fax))
        self._changed.set()

    async def until(self, *, arrived: int = 0, received: int = 0) -> None:
        """Wait (bounded by GUARD_S) until that many calls arrived and were received."""
        async with asyncio.timeout(GUARD_S):
            while len(self.arrived) < arrived or len(self.receptions) < received:
                self._changed.clear()
                await self._changed.wait()


@asynccontextmanager
async def running(transport: SipTransport) -> AsyncIterator[SipTransport]:
    await transport.start()
    try:
        yield transport
    finally:
        await transport.close()


def pages_in(tiff: bytes) -> int:
    return int(getattr(Image.open(io.BytesIO(tiff)), "n_frames", 1))
