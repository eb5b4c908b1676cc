"""The fax transport protocol: what the worker hands a line, and what the line hands back.

A transport never raises for an unsuccessful call: busy lines, dropped calls and refused
documents are ordinary outcomes, returned as a ``TxResult`` whose ``failure_class`` tells the
retry policy what to do. ``TransmitError`` is kept for a broken environment (the fax engine
cannot be loaded, the document cannot even be handed to it).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol


class FailureClass(StrEnum):
    """Why an attempt failed, in the terms the retry policy needs."""

    BUSY = "busy"
    NO_ANSWER = "no_answer"
    LINE = "line"  # line or protocol error: retry soon
    PERMANENT = "permanent"  # invalid number, unsendable document, remote refused it


@dataclass(frozen=True)
class OutboundCall:
    """One attempt to fax ``tiff`` to ``to_number``."""

    fax_id: str
    to_number: str  # E.164
    from_number: str | None
    tsi: str | None  # our transmitting subscriber id (the faxbox's fax_identity_number)
    header: str | None  # fax_identity_name, stamped on the page header line
    timezone: str  # IANA name; the header's date and time are in this zone
    tiff: bytes  # multi-page TIFF-F, G4 or G3
    pages: int


@dataclass(frozen=True)
class ReceivedFax:
    """The image an inbound call delivered, with the figures of ``rx_result``."""

    tiff: bytes
    pages: int
    remote_tsi: str | None
    success: bool
    result_text: str
    fax_speed: int
    fax_error_correction: bool
    fax_bad_rows: int


@dataclass(frozen=True)
class TxResult:
    """The outcome of one attempt, with the figures of ``tx_result``."""

    success: bool
    failure_class: FailureClass | None
    result_code: int  # T.30 completion code (0 = OK); negative for calls that never connected
    result_text: str
    error_message: str | None
    pages_sent: int
    fax_speed: int  # bit/s of the last image transfer, 0 when no page phase was reached
    fax_error_correction: bool
    fax_receiver_id: str | None  # the remote CSI
    fax_bad_rows: int
    line_seconds: float  # seconds of line time the call took (simulated on the loopback)
    sip_code: int | None = None  # the final SIP status of the call, when it went over SIP
    media: str | None = None  # "t38" or "g711" when media flowed


@dataclass(frozen=True)
class ArrivingCall:
    """A call arriving on any transport, as the far end dialled it."""

    dialled: str  # Request-URI user part, else the To user; normalized by the inbound line
    caller_number: str | None
    caller_name: str | None
    region: str | None = None  # the trunk's region for national forms (None: the default)


@dataclass(frozen=True)
class Reception:
    """An admitted inbound call: a fax in folder ``incoming`` of the faxbox that has the number."""

    fax_id: str
    faxbox_id: str
    csi: str | None  # our called subscriber id (the faxbox's fax identity)


class InboundLine(Protocol):
    """Where every transport hands in arriving calls (one implementation: ``gateway.inbound``).

    ``received`` is called exactly once for each admitted call, also when nothing arrived
    (``ReceivedFax(success=False, pages=0, ...)``): the fax is then recorded as failed.
    """

    async def arriving(self, call: ArrivingCall) -> Reception | None: ...

    async def received(self, reception: Reception, fax: ReceivedFax) -> None: ...


class FaxTransport(Protocol):
    async def start(self) -> None: ...

    async def send(self, call: OutboundCall) -> TxResult: ...

    async def close(self) -> None: ...
