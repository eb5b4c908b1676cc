"""Inbound fax calls over SIP: the user agent's ``CallHandler``.

An INVITE from an allowed source (the sockets answered the others 403) is checked before the
inbound line hears of it — a free line (else 486 Busy Here, what a fax line in use says: the
caller retries it as busy, and a proxy does not take the whole gateway for down as it may on
503), a media port (else 503, the server itself is short), an offer we can answer (else 488) —
then offered to the inbound line: no faxbox has the number, 404. An admitted call rings, is
answered (T.38 when the INVITE offered it and t38 allows, else G.711), and receives as the
called side with the faxbox's CSI; whatever happens next, the inbound line's ``received`` is
called exactly once, with what arrived.

The work runs in a task of the transport's, not the user agent's: closing the user agent
cancels its own tasks, and a fax being handed to the inbox must not be cut short by that.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import tempfile
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from gateway.errors import CallEnded, SipError
from gateway.sip import sdp
from gateway.sip.incoming import IncomingCall
from gateway.transports.base import ArrivingCall, InboundLine, Reception
from gateway.transports.media import FaxOutcome
from gateway.transports.rtp import PortsExhaustedError
from gateway.transports.sip_outcome import received_fax
from gateway.transports.sip_session import Address, CallRecord, FaxSession, MediaContext, Mode
from gateway.transports.spandsp import T30Config

log = logging.getLogger(__name__)

RETRY_AFTER_S = 30  # told to callers we cannot take for want of media ports


class Lines:
    """At most ``size`` calls at once, outbound and inbound together."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.in_use = 0

    def take(self) -> bool:
        if self.in_use >= self.size:
            return False
        self.in_use += 1
        return True

    def release(self) -> None:
        self.in_use -= 1


Spawn = Callable[[Coroutine[Any, Any, None]], "asyncio.Task[None]"]


class InboundCalls:
    """The ``CallHandler`` of the transport's user agent."""

    def __init__(
        self,
        ctx: MediaContext,
        inbound: InboundLine,
        lines: Lines,
        *,
        spawn: Spawn,
        keep: Callable[[CallRecord], None],
    ) -> None:
        self.ctx = ctx
        self.inbound = inbound
        self.lines = lines
        self._spawn = spawn
        self._keep = keep

    async def on_invite(self, incoming: IncomingCall) -> None:
        if not self.lines.take():
            log.info("call from %s to %s: all lines busy", incoming.caller, incoming.dialled)
            await incoming.reject(486, "Busy Here (all lines busy)")
            return
        task = self._spawn(self._take(incoming))
        # The user agent owns the call until this returns (an unanswered call is then
        # refused 480); if it is cancelled meanwhile, the task goes on by itself.
        await asyncio.shield(task)

    async def _take(self, incoming: IncomingCall) -> None:
        record = CallRecord("inbound", incoming.dialled, call_id=incoming.request.call_id)
        try:
            await self._admit(incoming, record)
        finally:
            self.lines.release()
            self._keep(record)

    async def _admit(self, incoming: IncomingCall, record: CallRecord) -> None:
        try:
            port = self.ctx.ports.open()
        except PortsExhaustedError as exc:
            log.warning("call to %s refused: %s", incoming.dialled, exc)
            record.sip_code, record.result = 503, str(exc)
            await incoming.reject(503, headers=(("Retry-After", str(RETRY_AFTER_S)),))
            return
        session = FaxSession(self.ctx, port, calling=False, record=record)
        try:
            answer, mode, remote = session.answer_offer(incoming.remote_sdp)
        except sdp.SdpError as exc:
            session.close()
            record.sip_code, record.result = 488, str(exc)
            log.info("call to %s refused 488: %s", incoming.dialled, exc)
            await incoming.reject(488, headers=(("Warning", f'304 fax-gateway "{_warning(exc)}"'),))
            return
        try:
            reception = await self.inbound.arriving(_arriving(incoming, self.ctx.settings.region))
        except BaseException:
            session.close()
            raise  # the user agent answers 500 (or the call was cancelled with the transport)
        if reception is None:
            session.close()
            record.sip_code, record.result = 404, "no faxbox has this number"
            log.info("call from %s to %s: no such faxbox", incoming.caller, incoming.dialled)
            await incoming.reject(404)
            return
        await self._receive(incoming, reception, session, answer, (mode, remote), record)

    async def _receive(
        self,
        incoming: IncomingCall,
        reception: Reception,
        session: FaxSession,
        answer: bytes,
        plan: tuple[Mode, Address],
        record: CallRecord,
    ) -> None:
        """An admitted call: from here on ``received`` is owed, exactly once."""
        outcome: FaxOutcome | None = None
        failure: str | None = None
        tiff = b""
        workdir = await asyncio.to_thread(lambda: Path(tempfile.mkdtemp(prefix="fax-sip-rx-")))
        rx_file = workdir / "rx.tif"
        try:
            config = T30Config(
                ident=reception.csi or "", rx_file=str(rx_file), ecm=self.ctx.settings.ecm
            )
            try:
                await incoming.ring()
                call = await incoming.answer(answer)
            except (CallEnded, SipError) as exc:
                session.close()
                failure = "the caller hung up before the call was answered"
                record.result = f"{failure} ({exc})"
                return
            record.sip_code = 200
            try:
                session.start(call, *plan, config)
            except RuntimeError:  # the media clock stopped: the transport is closing
                session.close()
                failure = "the SIP transport closed before the fax began"
            else:
                try:
                    outcome = await session.finish()
                except Exception as exc:  # what broke the media
                    log.exception("fax media of inbound call %s failed", call.call_id)
                    failure = f"fax media failed: {exc}"
            await session.await_far_end_hangup()
            await call.bye()
            record.sip_end = call.end_reason
            if outcome is not None and outcome.pages_received:
                tiff = await asyncio.to_thread(_read, rx_file)
        finally:
            fax = received_fax(outcome, tiff, failure)
            record.result = record.result or fax.result_text
            log.info(
                "fax %s from %s: %d page(s), %s (%s)",
                reception.fax_id,
                incoming.caller or "unknown",
                fax.pages,
                fax.result_text,
                record.media or "no media",
            )
            try:
                await self.inbound.received(reception, fax)
            finally:
                await asyncio.to_thread(shutil.rmtree, workdir, True)


def _arriving(incoming: IncomingCall, region: str | None) -> ArrivingCall:
    try:
        name = incoming.request.from_addr.display_name
    except SipError:
        name = None
    return ArrivingCall(
        dialled=incoming.dialled,
        caller_number=incoming.caller or None,
        caller_name=name or None,
        region=region,
    )


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError:
        return b""


def _warning(exc: Exception) -> str:
    """A Warning header's text: quoted-string safe, short."""
    return str(exc).replace("\\", "").replace('"', "'")[:100]
