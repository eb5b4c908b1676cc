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
    """The image the far end received, when the far end is one of our own faxboxes."""

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
    line_seconds: float  # simulated seconds of line time the call took
    received: ReceivedFax | None = None


class FaxTransport(Protocol):
    async def send(self, call: OutboundCall) -> TxResult: ...

    async def close(self) -> None: ...
