"""One simulated fax call: the gateway's fax machine dials a simulated remote machine.

Both machines are real spandsp T.30 endpoints exchanging 8 kHz audio in 20 ms blocks, so the
outcome (speed, ECM, pages, errors) is what T.30 negotiated, not what we made up. Calls that
never reach T.30 (busy, no answer) return at once with the line time they would have cost.

This runs synchronously and burns CPU: callers run it off the event loop (see ``loopback``).
Everything here is picklable in and out, so a process pool works as well as a thread.
"""

from __future__ import annotations

import ctypes
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from gateway.transports.base import OutboundCall, ReceivedFax, TxResult
from gateway.transports.classify import (
    CAUSE_NO_ANSWER,
    CAUSE_UNALLOCATED,
    CAUSE_USER_BUSY,
    classify,
)
from gateway.transports.linemodel import NoisyLine
from gateway.transports.posix_tz import posix_tz
from gateway.transports.remotes import Remote, RemoteKind
from gateway.transports.spandsp import (
    SAMPLE_RATE,
    FaxEndpoint,
    Stats,
    T30Config,
    completion_text,
)

BLOCK = 160  # 20 ms at 8 kHz
BLOCKS_PER_SECOND = SAMPLE_RATE // BLOCK
BUSY_SECONDS = 6.0  # post-dial delay plus enough busy tone to recognise it
NO_ANSWER_SECONDS = 45.0  # ring timeout
UNALLOCATED_SECONDS = 2.0  # until the network's release with cause 1
PACE_EVERY_BLOCKS = 5  # with pacing, catch up with the wall clock every 100 ms of line time
HANGUP_GRACE_BLOCKS = 2 * BLOCKS_PER_SECOND  # the remote still sends MCF for its last page
DISCONNECT_NOTICE_BLOCKS = BLOCKS_PER_SECOND // 2  # until the network tells us it hung up
NOISE_SEED = 20240607  # fixed: a given SNR gives the same outcome every run
T30_ERR_BADTIFF = 43
_TIFF_MAGIC = (b"II*\x00", b"MM\x00*")


@dataclass(frozen=True)
class CallRequest:
    """What the session needs beyond the call itself (picklable, for process pools)."""

    call: OutboundCall
    remote: Remote
    capture: bool  # hand back what the remote received (the number is a local faxbox)
    remote_ident: str | None = None  # the remote's CSI (a local faxbox's identity); else the number
    # Wall-clock seconds per simulated line second: 0 runs as fast as the CPU allows; 1 takes
    # as long as a real call would. Tests and demos use it to catch a call in progress.
    pace: float = 0.0


def max_line_seconds(pages: int) -> int:
    """Backstop on simulated time: generous enough for 2400 bit/s pages with ECM retries."""
    return 120 + 180 * max(pages, 1)


@dataclass(frozen=True)
class LineOutcome:
    """Both ends of a loopback call: our result, and what the remote received if captured."""

    result: TxResult
    received: ReceivedFax | None = None


def place_call(request: CallRequest) -> LineOutcome:
    outcome = _place_call(request)
    return outcome if isinstance(outcome, LineOutcome) else LineOutcome(outcome)


def _place_call(request: CallRequest) -> TxResult | LineOutcome:
    remote = request.remote
    if remote.kind is RemoteKind.BUSY:
        return _paced(_without_t30(CAUSE_USER_BUSY, "Busy", BUSY_SECONDS), request.pace)
    if remote.kind is RemoteKind.NO_ANSWER:
        return _paced(_without_t30(CAUSE_NO_ANSWER, "No answer", NO_ANSWER_SECONDS), request.pace)
    if remote.kind is RemoteKind.INVALID_NUMBER:
        text = "Unallocated (unassigned) number"
        return _paced(_without_t30(CAUSE_UNALLOCATED, text, UNALLOCATED_SECONDS), request.pace)
    if request.call.tiff[:4] not in _TIFF_MAGIC:
        # Not worth a call (and libtiff would complain on stderr): fail as spandsp would.
        return _without_t30(T30_ERR_BADTIFF, completion_text(T30_ERR_BADTIFF), 0.0)
    with tempfile.TemporaryDirectory(prefix="fax-line-") as tmp:
        return _run_t30(request, Path(tmp))


def _paced(result: TxResult, pace: float) -> TxResult:
    if pace > 0:
        time.sleep(result.line_seconds * pace)
    return result


def _without_t30(cause: int, text: str, seconds: float) -> TxResult:
    return TxResult(
        success=False,
        failure_class=classify(cause),
        result_code=cause,
        result_text=text,
        error_message=text,
        pages_sent=0,
        fax_speed=0,
        fax_error_correction=False,
        fax_receiver_id=None,
        fax_bad_rows=0,
        line_seconds=seconds,
    )


def _run_t30(request: CallRequest, tmp: Path) -> LineOutcome:
    call, remote = request.call, request.remote
    tx_path, rx_path = tmp / "tx.tif", tmp / "rx.tif"
    tx_path.write_bytes(call.tiff)
    # Leaving the block releases both endpoints, which closes spandsp's TIFF handles before
    # the temporary directory goes.
    with FaxEndpoint(calling=True) as gateway, FaxEndpoint(calling=False) as machine:
        gateway.configure(sending_config(call, str(tx_path)))
        # A machine that offers no receive file leaves "ready to receive" out of its DIS:
        # that is how a remote refuses the document (T30_ERR_RX_INCAPABLE at our end).
        refuse = remote.kind is RemoteKind.REFUSE
        ident = request.remote_ident or call.to_number
        machine.configure(T30Config(ident=ident, rx_file=None if refuse else str(rx_path)))
        blocks = _pump(gateway, machine, remote, max_line_seconds(call.pages), request.pace)
        sent, got = gateway.stats(), machine.stats()
        code = gateway.completion if gateway.completion is not None else sent.status
        receiver_id = gateway.remote_ident()
        remote_tsi = machine.remote_ident()
        machine_code = machine.completion if machine.completion is not None else got.status
    received = None
    if request.capture and got.pages_rx > 0 and rx_path.exists():
        received = _received(rx_path.read_bytes(), got, remote_tsi, machine_code)
    return LineOutcome(tx_result(code, sent, receiver_id, blocks / BLOCKS_PER_SECOND), received)


def _pump(
    gateway: FaxEndpoint, machine: FaxEndpoint, remote: Remote, max_seconds: int, pace: float = 0.0
) -> int:
    """Exchange audio until both sides reached phase E; return the number of 20 ms blocks."""
    to_machine = (ctypes.c_int16 * BLOCK)()
    to_gateway = (ctypes.c_int16 * BLOCK)()
    noisy = remote.kind is RemoteKind.NOISY
    # One independent noise source per direction, as on a real 4-wire path.
    forward = NoisyLine(remote.snr_db, NOISE_SEED) if noisy else None
    backward = NoisyLine(remote.snr_db, NOISE_SEED + 1) if noisy else None
    hangup_at: list[int] = []  # block at which the remote goes on-hook, once it is known
    blocks = 0
    if remote.kind is RemoteKind.HANGUP_AFTER:

        def on_page(_result: int) -> None:
            if not hangup_at and machine.stats().pages_rx >= remote.hangup_after:
                hangup_at.append(blocks + HANGUP_GRACE_BLOCKS)

        machine.on_phase_d = on_page

    limit = max_seconds * BLOCKS_PER_SECOND
    started = time.monotonic()
    while not (gateway.finished and machine.finished) and blocks < limit:
        if pace > 0 and blocks % PACE_EVERY_BLOCKS == 0:
            ahead = blocks / BLOCKS_PER_SECOND * pace - (time.monotonic() - started)
            if ahead > 0:
                time.sleep(ahead)
        on_hook = bool(hangup_at) and blocks >= hangup_at[0]
        gateway.tx(to_machine, BLOCK)
        if on_hook:
            ctypes.memset(to_gateway, 0, ctypes.sizeof(to_gateway))
        else:
            machine.tx(to_gateway, BLOCK)
        if forward is not None and backward is not None:
            forward.apply(to_machine, BLOCK)
            backward.apply(to_gateway, BLOCK)
        gateway.rx(to_gateway, BLOCK)
        if not on_hook:
            machine.rx(to_machine, BLOCK)
        elif blocks == hangup_at[0]:
            machine.terminate()
        if on_hook and blocks == hangup_at[0] + DISCONNECT_NOTICE_BLOCKS:
            # A real telephony stack hears the disconnect and ends T.30 the same way.
            gateway.terminate()
        blocks += 1
    for side in (gateway, machine):
        if not side.finished:
            side.terminate()  # the backstop: treat it as a dropped call
    return blocks


def sending_config(call: OutboundCall, tx_file: str, *, ecm: bool = True) -> T30Config:
    """How our fax machine is set up to send ``call``, over any medium (audio or T.38)."""
    tsi = call.tsi or call.from_number or ""
    # spandsp stamps the header line (date, time, info, TSI, page) only when the info text
    # is non-empty; the page count keeps it non-empty when only a TSI is configured.
    stamp = bool(call.header or tsi)
    return T30Config(
        ident=tsi,
        header_info=header_text(call) if stamp else None,
        header_tz=posix_tz(call.timezone) if stamp else None,
        tx_file=tx_file,
        ecm=ecm,
    )


def tx_result(
    code: int,
    sent: Stats,
    receiver_id: str | None,
    seconds: float,
) -> TxResult:
    """The sending side's T.30 outcome as a ``TxResult`` (failure class from ``classify``)."""
    text = completion_text(code)
    reached_pages = sent.pages_tx > 0  # before phase C, the stats hold defaults, not figures
    return TxResult(
        success=code == 0,
        failure_class=classify(code),
        result_code=code,
        result_text=text,
        error_message=None if code == 0 else text,
        pages_sent=sent.pages_tx,
        fax_speed=sent.bit_rate if reached_pages else 0,
        fax_error_correction=sent.ecm and reached_pages,
        fax_receiver_id=receiver_id,
        fax_bad_rows=sent.bad_rows,
        line_seconds=round(seconds, 2),
    )


def _received(tiff: bytes, got: Stats, remote_tsi: str | None, code: int) -> ReceivedFax:
    return ReceivedFax(
        tiff=tiff,
        pages=got.pages_rx,
        remote_tsi=remote_tsi,
        success=code == 0,
        result_text=completion_text(code),
        fax_speed=got.bit_rate,
        fax_error_correction=got.ecm,
        fax_bad_rows=got.bad_rows,
    )


def header_text(call: OutboundCall) -> str:
    """The header's info text. spandsp 0.0.6 ends the line with "p.N" and has no "of M", so
    the total goes into the text: the line then reads "<header>, M pages  <TSI>  p.N"."""
    total = f"{call.pages} page" + ("" if call.pages == 1 else "s")
    return f"{call.header}, {total}" if call.header else total
