"""The RFC 3261 §17 state machines (with RFC 6026's Accepted state) behind
``gateway.sip.transaction``: one client and one server transaction each, and their timers.

Timers are scheduled at absolute times from the first transmission, so how many
retransmissions happen before a timeout does not depend on how busy the event loop was.
Everything a transaction schedules is cancelled when it terminates; the sends it starts run
as tasks of the ``TransactionLayer``, which ends them at close.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from gateway.errors import SipError, SipTimeout, SipTransportError
from gateway.sip.headers import SipParseError, split_header_values
from gateway.sip.message import Headers, Request, Response, response_for
from gateway.sip.sockets import Peer

if TYPE_CHECKING:  # the layer imports us; we only call back into it
    from gateway.sip.transaction import TransactionLayer

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Timers:
    """RFC 3261 timer values in seconds (Table 4); tests use small ones."""

    t1: float = 0.5  # round-trip estimate: first retransmission interval
    t2: float = 4.0  # longest retransmission interval (non-INVITE requests, INVITE responses)
    t4: float = 5.0  # how long a message may stay in the network (Timers I and K)
    d: float = 32.0  # Timer D: how long a UAC absorbs retransmitted non-2xx finals over UDP
    trying: float = 0.2  # 100 Trying for an INVITE the user agent has not answered by then

    @property
    def timeout(self) -> float:
        """64*T1: Timers B, F, H, J and L."""
        return 64 * self.t1


DEFAULT_TIMERS = Timers()


def ack_for(invite: Request, response: Response) -> Request:
    """The ACK for a non-2xx final response to ``invite`` (RFC 3261 §17.1.1.3): the INVITE's
    Request-URI, top Via (same branch), Route, From, Call-ID and CSeq number, the response's
    To (with its tag)."""
    return _sibling(invite, "ACK", to=response.headers.get("To") or "")


def cancel_for(invite: Request) -> Request:
    """A CANCEL for a pending ``invite`` (RFC 3261 §9.1): the same Request-URI, top Via
    (branch), Route, From, To, Call-ID and CSeq number."""
    return _sibling(invite, "CANCEL", to=invite.headers.get("To") or "")


def _sibling(invite: Request, method: str, *, to: str) -> Request:
    top_via = split_header_values(invite.headers.get_all("Via")[0])[0]
    headers: list[tuple[str, str]] = [("Via", top_via)]
    headers += [("Route", value) for value in invite.headers.get_all("Route")]
    headers += [
        ("Max-Forwards", "70"),
        ("From", invite.headers.get("From") or ""),
        ("To", to),
        ("Call-ID", invite.call_id),
        ("CSeq", f"{invite.cseq.number} {method}"),
    ]
    return Request(method, invite.uri, Headers(tuple(headers)))


def to_tag(message: Request | Response | None) -> str | None:
    if message is None:
        return None
    try:
        return message.to_addr.tag
    except SipParseError:
        return None


class _Repeater:
    """Calls ``action`` after ``first`` seconds, then at doubling intervals (capped at ``cap``),
    at absolute times from ``start``."""

    def __init__(
        self, action: Callable[[], None], start: float, first: float, cap: float | None
    ) -> None:
        self._action = action
        self._at = start
        self._interval = first
        self._cap = cap
        self._flat = False
        self._handle: asyncio.TimerHandle | None = None
        self._schedule()

    def flatten(self) -> None:
        """From the next firing on, repeat every ``cap`` seconds (Timer E in Proceeding)."""
        self._flat = True

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _schedule(self) -> None:
        self._at += self._interval
        self._handle = asyncio.get_running_loop().call_at(self._at, self._fire)

    def _fire(self) -> None:
        doubled = self._interval * 2
        self._interval = doubled if self._cap is None else min(doubled, self._cap)
        if self._flat and self._cap is not None:
            self._interval = self._cap
        self._schedule()  # before the action, which may stop us
        self._action()


class _Transaction:
    """Timer bookkeeping shared by both sides: everything scheduled is cancelled at the end."""

    def __init__(self, layer: TransactionLayer, request: Request, peer: Peer) -> None:
        self._layer = layer
        self.request = request
        self.peer = peer
        self.reliable = peer.transport == "tcp"
        self._handles: list[asyncio.TimerHandle] = []
        self._repeaters: list[_Repeater] = []

    @property
    def _timers(self) -> Timers:
        return self._layer.timers

    def _at(self, when: float, callback: Callable[[], None]) -> None:
        self._handles.append(asyncio.get_running_loop().call_at(when, callback))

    def _later(self, delay: float, callback: Callable[[], None]) -> None:
        self._at(asyncio.get_running_loop().time() + delay, callback)

    def _repeat(self, action: Callable[[], None], first: float, cap: float | None) -> _Repeater:
        repeater = _Repeater(action, asyncio.get_running_loop().time(), first, cap)
        self._repeaters.append(repeater)
        return repeater

    def _stop_timers(self) -> None:
        for handle in self._handles:
            handle.cancel()
        for repeater in self._repeaters:
            repeater.stop()
        self._handles.clear()
        self._repeaters.clear()


class ClientTransaction(_Transaction):
    def __init__(
        self,
        layer: TransactionLayer,
        request: Request,
        peer: Peer,
        on_provisional: Callable[[Response], None] | None,
    ) -> None:
        super().__init__(layer, request, peer)
        self.key = (request.vias[0].branch, request.method)
        self.invite = request.method == "INVITE"
        self.state = "calling"  # calling (Trying for non-INVITE), proceeding, completed
        self.future: asyncio.Future[Response] = asyncio.get_running_loop().create_future()
        self._on_provisional = on_provisional
        self._ack: Request | None = None
        self._retransmit: _Repeater | None = None

    async def start(self) -> None:
        start = asyncio.get_running_loop().time()
        await self._layer.sockets.send(self.request, self.peer)
        if not self.reliable:  # Timer A (doubling without cap) or E (capped at T2)
            cap = None if self.invite else self._timers.t2
            self._retransmit = self._repeat(self._resend, self._timers.t1, cap)
        self._at(start + self._timers.timeout, self._timed_out)  # Timer B or F

    def _resend(self) -> None:
        self._layer.spawn_send(self.request, self.peer, on_error=self._failed)

    def _timed_out(self) -> None:
        timer = "B" if self.invite else "F"
        self._fail(
            SipTimeout(
                f"no final response to {self.request.method} from {self.peer} (Timer {timer})"
            )
        )

    def _failed(self, exc: SipTransportError) -> None:
        self._fail(exc)

    def _fail(self, exc: SipError) -> None:
        if not self.future.done():
            self.future.set_exception(exc)
        self.terminate()

    def terminate(self) -> None:
        self._stop_timers()
        self._layer.forget_client(self)

    def received(self, response: Response) -> None:
        if response.status < 200:
            self._provisional(response)
        elif self.state == "completed":  # a retransmitted final: absorbed (ACKed again)
            if self._ack is not None:
                self._layer.spawn_send(self._ack, self.peer)
        else:
            self._final(response)

    def _provisional(self, response: Response) -> None:
        if self.state == "calling":
            self.state = "proceeding"
            if self.invite:  # Timers A and B stop: ringing may last (the UA bounds it)
                self._stop_timers()
            elif self._retransmit is not None:
                self._retransmit.flatten()
        if self._on_provisional is not None and not self.future.done():
            try:
                self._on_provisional(response)
            except Exception:
                log.exception("on_provisional failed for %s", response.status)

    def _final(self, response: Response) -> None:
        self._stop_timers()
        if not self.future.done():
            self.future.set_result(response)
        if self.invite and response.status < 300:
            self.terminate()  # the 2xx is the UA's to ACK; retransmissions become strays
            return
        self.state = "completed"
        linger = self._timers.t4  # Timer K
        if self.invite:
            self._ack = ack_for(self.request, response)
            self._layer.spawn_send(self._ack, self.peer)
            linger = self._timers.d  # Timer D
        if self.reliable:
            self.terminate()
        else:
            self._later(linger, self.terminate)


class ServerTransaction(_Transaction):
    """A request that reached us, and the way to answer it (``respond``).

    ``cancelled`` is set when a CANCEL for this INVITE arrived before our final response;
    ``acked`` when the ACK for our final response to this INVITE arrived (for a 2xx: an ACK
    with its Call-ID, CSeq number and To tag); ``terminated`` when the transaction is over.
    For an ACK (handed up because it acknowledges a 2xx) nothing can be sent."""

    def __init__(
        self, layer: TransactionLayer, request: Request, peer: Peer, key: tuple[object, ...]
    ) -> None:
        super().__init__(layer, request, peer)
        self.key = key
        self.invite = request.method == "INVITE"
        self.cancelled = asyncio.Event()
        self.acked = asyncio.Event()
        self.terminated = asyncio.Event()
        self.final: Response | None = None
        self.last: Response | None = None  # what a retransmitted request gets again
        self.state = "proceeding"  # (Trying for non-INVITE), completed, accepted, confirmed
        if self.invite:
            self._later(self._timers.trying, self._send_trying)
        elif request.method != "ACK":  # a UA that never answers must not pin the entry
            self._later(self._timers.timeout, self._abandon)

    async def respond(self, response: Response) -> None:
        """Send a response; SipTransportError if it cannot go. After a final response, further
        responses are ignored (a UA's 200 racing its own 487, say)."""
        if self.request.method == "ACK":
            raise ValueError("an ACK is never answered")
        if self.final is not None:
            log.warning(
                "%s %s ignored: %s already sent",
                response.status,
                response.reason,
                self.final.status,
            )
            return
        self.last = response
        if response.status >= 200:
            self.final = response
            self._enter_final(response)
        try:
            await self._layer.sockets.reply(response, self.peer)
        except SipTransportError:
            self.terminate()
            raise
        if self.final is not None and self.reliable and not self.invite:
            self.terminate()  # Timer J is zero over TCP

    def _enter_final(self, response: Response) -> None:
        self._stop_timers()
        timers = self._timers
        if not self.invite:
            self.state = "completed"
            if not self.reliable:
                self._later(timers.timeout, self.terminate)  # Timer J
        elif response.status < 300:
            # RFC 6026 Accepted: INVITE retransmissions absorbed (the UA retransmits the 2xx).
            self.state = "accepted"
            self._layer.awaiting_ack[self._ack_key()] = self
            self._later(timers.timeout, self.terminate)  # Timer L
        else:
            self.state = "completed"
            if not self.reliable:
                self._repeat(self._resend_last, timers.t1, timers.t2)  # Timer G
            self._later(timers.timeout, self._no_ack)  # Timer H

    def _ack_key(self) -> tuple[str, int]:
        return (self.request.call_id, self.request.cseq.number)

    def _send_trying(self) -> None:
        if self.last is None:
            self.last = response_for(self.request, 100)
            self._layer.spawn_reply(self.last, self.peer)

    def _resend_last(self) -> None:
        if self.last is not None:
            self._layer.spawn_reply(self.last, self.peer)

    def _abandon(self) -> None:
        log.warning("%s from %s never answered", self.request.method, self.peer)
        self.terminate()

    def _no_ack(self) -> None:
        log.info(
            "no ACK for %s to INVITE from %s (Timer H)", self.last and self.last.status, self.peer
        )
        self.terminate()

    def retransmitted(self, request: Request, peer: Peer) -> None:
        """The same request again: the last response goes again (none yet: absorbed)."""
        self.peer = peer  # the sender's NAT binding may have moved
        if request.method == "ACK":
            self.ack_received()
        elif self.state != "confirmed":
            self._resend_last()

    def ack_received(self) -> None:
        self.acked.set()
        if self.state == "completed":  # Confirmed: absorb ACK retransmissions (Timer I)
            self.state = "confirmed"
            self._stop_timers()
            if self.reliable:
                self.terminate()
            else:
                self._later(self._timers.t4, self.terminate)
        elif self.state == "accepted":
            self._layer.awaiting_ack.pop(self._ack_key(), None)

    def terminate(self) -> None:
        self._stop_timers()
        self._layer.forget_server(self)
        self.terminated.set()
