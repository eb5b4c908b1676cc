"""One outbound fax over SIP: INVITE through the proxy, G.711 media, T.38 when either side
switches, BYE once T.30 is done; every way it can end becomes a ``TxResult`` (never raises for
an unsuccessful call).

The document goes to spandsp as a file: it is written to a private temporary directory off the
event loop, and removed when the call is over (spandsp reads it on the media thread; on Linux
an unlinked file stays readable to a handle already open, so a hang-up cannot pull it away
from under a page being sent).
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from gateway.errors import CallEnded, CallRejected, RingTimeout, SipTimeout, SipTransportError
from gateway.sip import sdp
from gateway.sip.calls import OutboundCall as SipCall
from gateway.sip.useragent import UserAgent
from gateway.transports import sip_outcome
from gateway.transports.base import FailureClass, OutboundCall, TxResult
from gateway.transports.rtp import PortsExhaustedError
from gateway.transports.session import sending_config
from gateway.transports.sip_session import (
    T38_REQUEST_AFTER_S,
    CallRecord,
    FaxSession,
    MediaContext,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Dialled:
    """Where the INVITE goes and who it says it is from."""

    uri: str  # the Request-URI: sip:<number>@<domain>
    from_user: str


class _Clock:
    """The line time of the call: wall seconds since we started dialling."""

    def __init__(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._start = self._loop.time()

    def seconds(self) -> float:
        return self._loop.time() - self._start


async def place_call(
    ctx: MediaContext, ua: UserAgent, fax: OutboundCall, dialled: Dialled, record: CallRecord
) -> TxResult:
    """The whole attempt; ``record`` is filled in as it goes."""
    clock = _Clock()
    workdir = await asyncio.to_thread(_write_document, fax.tiff)
    try:
        result = await _attempt(ctx, ua, fax, dialled, record, workdir / "tx.tif", clock)
    finally:
        await asyncio.to_thread(shutil.rmtree, workdir, True)
    record.sip_code = result.sip_code
    record.result = result.result_text
    log.info(
        "fax %s to %s: %s (SIP %s, %s)",
        fax.fax_id,
        dialled.uri,
        result.result_text,
        result.sip_code,
        result.media or "no media",
    )
    return result


def _write_document(tiff: bytes) -> Path:
    workdir = Path(tempfile.mkdtemp(prefix="fax-sip-"))
    (workdir / "tx.tif").write_bytes(tiff)
    return workdir


async def _attempt(
    ctx: MediaContext,
    ua: UserAgent,
    fax: OutboundCall,
    dialled: Dialled,
    record: CallRecord,
    document: Path,
    clock: _Clock,
) -> TxResult:
    settings = ctx.settings
    try:
        port = ctx.ports.open()
    except PortsExhaustedError as exc:
        return sip_outcome.no_call(FailureClass.LINE, sip_outcome.CAUSE_NO_CIRCUIT, str(exc))
    session = FaxSession(ctx, port, calling=True, record=record)
    try:
        call = await _dial(ua, session, dialled, settings.ring_timeout_s, clock)
    except BaseException:
        session.close()
        raise
    if isinstance(call, TxResult):
        session.close()
        return call
    record.call_id = call.call_id
    try:
        return await _converse(ctx, session, call, fax, document, clock)
    finally:
        await call.bye()  # nothing if the far end hung up first
        record.sip_end = call.end_reason


async def _dial(
    ua: UserAgent, session: FaxSession, dialled: Dialled, ring_timeout: float, clock: _Clock
) -> SipCall | TxResult:
    """The INVITE: the answered call, or the result of a call that never was."""
    try:
        return await ua.invite(
            dialled.uri, dialled.from_user, session.audio_offer(), ring_timeout=ring_timeout
        )
    except RingTimeout as exc:
        text = f"no answer within {ring_timeout:g} s (SIP {exc.status} after our CANCEL)"
        return sip_outcome.no_call(
            FailureClass.NO_ANSWER, 19, text, sip_code=exc.status, seconds=clock.seconds()
        )
    except CallRejected as exc:
        return sip_outcome.rejected(exc.status, exc.reason, clock.seconds())
    except SipTimeout:
        text = "no response to our INVITE from the proxy"
        return sip_outcome.no_call(
            FailureClass.LINE, sip_outcome.CAUSE_TIMER_EXPIRY, text, seconds=clock.seconds()
        )
    except SipTransportError as exc:
        text = f"cannot reach the proxy: {exc}"
        return sip_outcome.no_call(
            FailureClass.LINE, sip_outcome.CAUSE_TEMPORARY, text, seconds=clock.seconds()
        )
    except CallEnded:
        text = "the SIP transport is closing"
        return sip_outcome.no_call(
            FailureClass.LINE, sip_outcome.CAUSE_TEMPORARY, text, seconds=clock.seconds()
        )


async def _converse(
    ctx: MediaContext,
    session: FaxSession,
    call: SipCall,
    fax: OutboundCall,
    document: Path,
    clock: _Clock,
) -> TxResult:
    """The answered call: media until T.30 is done, the far end hangs up, or silence."""
    try:
        mode, remote = session.take_answer(call.remote_sdp)
    except sdp.SdpError as exc:
        session.close()
        result = sip_outcome.no_call(
            FailureClass.LINE,
            sip_outcome.CAUSE_TEMPORARY,
            f"the far end's SDP answer is unusable: {exc}",
            sip_code=200,
            seconds=clock.seconds(),
        )
        return result
    config = sending_config(fax, str(document), ecm=ctx.settings.ecm)
    try:
        session.start(call, mode, remote, config)
    except RuntimeError:  # the media clock stopped: the transport is closing
        session.close()
        return sip_outcome.no_call(
            FailureClass.LINE,
            sip_outcome.CAUSE_TEMPORARY,
            "the SIP transport is closing",
            sip_code=200,
            seconds=clock.seconds(),
        )
    if ctx.settings.t38 == "request":
        session.request_t38_after(T38_REQUEST_AFTER_S)
    try:
        outcome = await session.finish()
    except Exception as exc:  # the media broke (CallMedia.done carries the exception)
        log.exception("fax media of call %s failed", call.call_id)
        media = session.media.media if session.media else None
        return sip_outcome.media_failed(exc, media=media, seconds=clock.seconds())
    assert session.media is not None
    return sip_outcome.answered(outcome, media=session.media.media, seconds=clock.seconds())
