"""An inbound line written for the tests: it admits the numbers it is told to and keeps what
each call delivered, so a test can read what the far end received."""

from __future__ import annotations

from collections.abc import Callable

from gateway.transports.base import ArrivingCall, ReceivedFax, Reception


class RecordingInbound:
    def __init__(self, admits: Callable[[str], bool] = lambda _number: True) -> None:
        self.admits = admits
        self.arrived: list[ArrivingCall] = []
        self.faxes: list[tuple[Reception, ReceivedFax]] = []

    async def arriving(self, call: ArrivingCall) -> Reception | None:
        self.arrived.append(call)
        if not self.admits(call.dialled):
            return None
        return Reception(fax_id=f"rx-{len(self.arrived)}", faxbox_id="box", csi=None)

    async def received(self, reception: Reception, fax: ReceivedFax) -> None:
        assert all(seen.fax_id != reception.fax_id for seen, _ in self.faxes), "received twice"
        self.faxes.append((reception, fax))

    @property
    def last(self) -> ReceivedFax | None:
        return self.faxes[-1][1] if self.faxes else None
