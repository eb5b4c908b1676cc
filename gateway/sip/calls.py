"""An answered call: one INVITE dialog and its session (RFC 3261 §12-§15, RFC 4028).

``Call`` is what both directions end up with (``OutboundCall`` from ``UserAgent.invite``,
``InboundCall`` from ``IncomingCall.answer``): re-INVITE sent (491 glare retried after RFC 3261
§14.1's random delay) and received (handed to ``on_reinvite``), BYE both ways, a hang-up when
our 2xx is never ACKed (the transaction layer resends it meanwhile, §13.3.1.4), re-ACKs for
retransmitted 2xx to our INVITEs, and session timers.

Session timers: a refresh whose SDP keeps the ``o=`` version (RFC 3264 §8: nothing changed) is
answered with our current SDP and never reaches ``on_reinvite`` — the media must not move
(FreeSWITCH loses fax pages when it does). When we are the refresher we refresh at half the
interval with UPDATE if the peer allows it, else re-INVITE, carrying the same SDP; when the
peer is and stays silent we hang up before the session expires (RFC 4028 §10).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from gateway.errors import CallEnded, SipError, SipTimeout
from gateway.sip.dialog import Dialog
from gateway.sip.message import Request, Response, SipParseError, response_for
from gateway.sip.sockets import Peer, Transport

if TYPE_CHECKING:
    from gateway.sip.transaction import ServerTransaction
    from gateway.sip.useragent import UserAgent

log = logging.getLogger(__name__)

ALLOW = "INVITE, ACK, CANCEL, BYE, OPTIONS, UPDATE"
SUPPORTED = "timer"
SDP = "application/sdp"
GLARE_RETRIES = 3

# What ``on_reinvite`` returns: the answer SDP, or the status to reject the offer with (488).
ReinviteHandler = Callable[[bytes], Awaitable[bytes | int]]


@dataclass(frozen=True)
class SessionTimer:
    """A negotiated session interval (RFC 4028) and whether we are the ones who refresh."""

    interval: int
    we_refresh: bool

    def header(self, *, we_send_request: bool) -> tuple[str, str]:
        """Session-Expires for a request we send (refresher named from our side as uac) or a
        response to the peer's request (we are the uas)."""
        us, them = ("uac", "uas") if we_send_request else ("uas", "uac")
        return ("Session-Expires", f"{self.interval};refresher={us if self.we_refresh else them}")

    @property
    def refresh_after(self) -> float:
        return self.interval / 2

    @property
    def give_up_after(self) -> float:
        # RFC 4028 §10: the side that does not refresh sends BYE this long after the refresh
        return self.interval - min(32.0, self.interval / 3)


def session_expires(message: Request | Response) -> tuple[int, str | None] | None:
    """Interval and refresher of a Session-Expires header (compact form ``x`` too)."""
    value = message.headers.get("Session-Expires")
    if value is None:
        return None
    number, *params = value.split(";")
    if not number.strip().isdigit():
        return None
    refresher = None
    for param in params:
        name, _, text = param.partition("=")
        if name.strip().lower() == "refresher" and text.strip().lower() in ("uac", "uas"):
            refresher = text.strip().lower()
    return int(number), refresher


def option_tags(message: Request | Response, name: str) -> set[str]:
    """The option tags of Supported, Require... (lower case; unreadable headers count empty)."""
    try:
        return {tag.lower() for tag in message.headers.values(name)}
    except SipParseError:
        return set()


def timer_from_answer(response: Response) -> SessionTimer | None:
    """The timer a 2xx to our INVITE or UPDATE sets: refresher=uac means us. A 2xx without
    Session-Expires turns the timer off (RFC 4028 §7.2)."""
    found = session_expires(response)
    if found is None or found[0] <= 0:
        return None
    interval, refresher = found
    return SessionTimer(interval, we_refresh=refresher != "uas")


def timer_for_request(request: Request) -> SessionTimer | None:
    """The timer we accept for the peer's INVITE or UPDATE (RFC 4028 §9). A peer that does not
    support timers cannot be made to refresh (a proxy asked for the timer): then we do."""
    found = session_expires(request)
    if found is None or found[0] <= 0:
        return None
    interval, refresher = found
    peer_can = "timer" in option_tags(request, "Supported")
    they_refresh = peer_can and refresher != "uas"
    return SessionTimer(interval, we_refresh=not they_refresh)


def interval_too_small(request: Request, min_se: int) -> bool:
    """Whether to answer 422 (RFC 4028 §9): only a peer that supports timers can retry."""
    found = session_expires(request)
    return (
        found is not None and 0 < found[0] < min_se and "timer" in option_tags(request, "Supported")
    )


def sdp_version(body: bytes) -> tuple[bytes, ...] | None:
    """Username, session id and version of an SDP ``o=`` line; None without one."""
    for line in body.splitlines():
        if line.startswith(b"o="):
            fields = line[2:].split()
            return tuple(fields[:3]) if len(fields) >= 3 else None
    return None


def _media_lines(body: bytes) -> list[bytes]:
    """The lines that say where and what the media are (m= and c=), in order."""
    return [line.strip() for line in body.splitlines() if line.startswith((b"m=", b"c="))]


def unchanged_offer(offer: bytes, current: bytes) -> bool:
    """An offer without SDP, or one whose ``o=`` version is the one we hold and whose media
    are the same: a refresh. Some far ends switch to T.38 without bumping the version
    (RFC 3264 §8 says they must): the media lines tell such a switch from a refresh."""
    if not offer.strip():
        return True
    version = sdp_version(offer)
    return (
        version is not None
        and version == sdp_version(current)
        and _media_lines(offer) == _media_lines(current)
    )


def allowed_methods(message: Request | Response) -> frozenset[str]:
    try:
        return frozenset(method.upper() for method in message.headers.values("Allow"))
    except SipParseError:
        return frozenset()


class Call:
    """An answered call. ``ended`` is set once, with ``end_reason`` one of: "local bye",
    "remote bye", "session expired", "no ack", "no response" (an in-dialog request timed out),
    "dialog gone" (the peer answered 481), "closed"."""

    outbound: bool = False

    def __init__(
        self,
        ua: UserAgent,
        dialog: Dialog,
        transport: Transport,
        *,
        local_sdp: bytes,
        remote_sdp: bytes,
        remote_allow: frozenset[str],
        timer: SessionTimer | None,
    ) -> None:
        self.ua = ua
        self.dialog = dialog
        self.transport: Transport = transport
        self.local_sdp = local_sdp
        self.remote_sdp = remote_sdp
        self.remote_allow = remote_allow
        self.on_reinvite: ReinviteHandler | None = None
        self.ended = asyncio.Event()
        self.end_reason: str | None = None
        self.refreshes = 0  # session refreshes done, either way, that left the media alone
        self._offer_lock = asyncio.Lock()  # one offer/answer exchange at a time (RFC 3261 §14)
        self._offering = False  # our re-INVITE or UPDATE is out: theirs gets 491
        self._answering = False  # theirs is being answered: theirs gets 500, ours waits
        self._offered_in_2xx = False  # the peer's INVITE had no SDP: its ACK brings the answer
        self._last_ack: Request | None = None  # for re-ACKing their retransmitted 2xx
        self._ack_peer: Peer | None = None
        self._timer = timer
        self._refreshed_at = asyncio.get_running_loop().time()
        self._timer_changed = asyncio.Event()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._spawn(self._session_timer())

    # -- the in-dialog API -----------------------------------------------------------------

    async def reinvite(self, sdp: bytes) -> Response:
        """Offer ``sdp`` in a re-INVITE; the final response. On 2xx ``remote_sdp`` holds the
        answer; on any other the session is as it was (488: the peer keeps the old media).
        A 491 (both sides offered at once) is retried after the random delay of §14.1."""
        return await self._offer("INVITE", sdp)

    async def bye(self) -> None:
        """Hang up (BYE) unless the call is over already; the call is ended either way."""
        if self.ended.is_set():
            return
        await self._hangup("local bye")

    @property
    def call_id(self) -> str:
        return self.dialog.call_id

    @property
    def session_timer(self) -> SessionTimer | None:
        return self._timer

    # -- sending ---------------------------------------------------------------------------

    async def _next_hop(self) -> Peer:
        uri = self.dialog.next_hop()
        transport = (uri.param("transport") or self.transport).lower()
        chosen: Transport = "tcp" if transport == "tcp" else "udp"
        return Peer(chosen, uri.host, uri.port or 5060)

    def _request_builder(
        self, method: str, body: bytes, extra: Iterable[tuple[str, str]]
    ) -> Callable[[], Request]:
        headers = (*extra, *self.ua.client.common_headers())
        return lambda: self.dialog.request(method, body, SDP if body else None, headers)

    async def _offer(self, method: str, sdp: bytes) -> Response:
        response: Response | None = None
        for attempt in range(GLARE_RETRIES + 1):
            if attempt:
                await asyncio.sleep(self.ua.glare_delay(owner=self.outbound))
            async with self._offer_lock:
                if self.ended.is_set():
                    raise CallEnded(f"call {self.call_id} is over ({self.end_reason})")
                self._offering = True
                try:
                    response = await self._send_offer(method, sdp)
                finally:
                    self._offering = False
            if response.status != 491:
                return response
        assert response is not None
        return response

    async def _send_offer(self, method: str, sdp: bytes) -> Response:
        extra = [("Supported", SUPPORTED)]
        if self._timer is not None:
            extra += [self._timer.header(we_send_request=True), self.ua.min_se_header()]
        peer = await self._next_hop()
        build = self._request_builder(method, sdp, extra)
        try:
            if method == "INVITE":
                sent, response = await self.ua.client.send_invite(
                    build, peer, on_late_2xx=self.ack_2xx
                )
            else:
                sent, response = await self.ua.client.authenticated(build, peer)
        except SipTimeout:
            await self._hangup("no response")
            raise
        if 200 <= response.status < 300:
            if method == "INVITE":
                await self.ack_2xx(sent, response)
            self.dialog.refresh_target(response)
            if response.body:
                self.local_sdp, self.remote_sdp = sdp, response.body
            self._set_timer(timer_from_answer(response))
        elif response.status == 408:  # RFC 3261 §12.2.1.2: the dialog is gone
            await self._hangup("no response")
        elif response.status == 481:
            self._end("dialog gone")
        return response

    async def ack_2xx(self, invite: Request, response: Response) -> None:
        """ACK a 2xx to our INVITE in the dialog (§13.2.2.4), with the INVITE's credentials."""
        credentials = [
            (name, value)
            for name, value in invite.headers
            if name in ("Authorization", "Proxy-Authorization")
        ]
        ack = self.dialog.ack(invite.cseq.number, credentials)
        peer = await self._next_hop()
        ack = self.ua.client.with_via(ack, peer.transport)
        self._last_ack, self._ack_peer = ack, peer
        with contextlib.suppress(SipError):
            await self.ua.sockets.send(ack, peer)

    def on_2xx_retransmission(self, response: Response) -> None:
        """A 2xx to our INVITE came again: our ACK was lost (§13.2.2.4), send it again."""
        ack, peer = self._last_ack, self._ack_peer
        if ack is not None and peer is not None and ack.cseq.number == response.cseq.number:
            self._spawn(self._send_quietly(ack, peer))

    async def _send_quietly(self, message: Request, peer: Peer) -> None:
        with contextlib.suppress(SipError):
            await self.ua.sockets.send(message, peer)

    async def _hangup(self, reason: str) -> None:
        if self.ended.is_set():
            return
        self._end(reason)  # first: nothing else starts on a call being hung up
        try:
            peer = await self._next_hop()
            await self.ua.client.authenticated(self._request_builder("BYE", b"", ()), peer)
        except SipError as exc:  # the peer may be gone; the call is over for us anyway
            log.info("BYE for call %s: %s", self.call_id, exc)

    def _end(self, reason: str) -> None:
        if self.ended.is_set():
            return
        self.end_reason = reason
        self.ended.set()
        log.info("call %s ended: %s", self.call_id, reason)
        self.ua.forget(self)
        current = asyncio.current_task()
        for task in self._tasks:
            if task is not current:
                task.cancel()

    def close(self) -> None:
        """End without a word to the peer (the user agent is closing after its BYEs)."""
        self._end("closed")

    def _spawn(self, coroutine: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- receiving -------------------------------------------------------------------------

    async def handle(self, tx: ServerTransaction) -> None:
        """An in-dialog request from the peer (the user agent matched the dialog)."""
        request = tx.request
        if request.method == "ACK":
            self._on_ack(request)
            return
        if not self.dialog.accept_remote_seq(request):
            await tx.respond(response_for(request, 500, "CSeq Out Of Order"))
            return
        if request.method == "BYE":
            await tx.respond(response_for(request, 200))
            self._end("remote bye")
        elif request.method in ("INVITE", "UPDATE"):
            await self._on_offer(tx)
        elif request.method == "OPTIONS":
            await tx.respond(self.ua.options_response(request))
        else:  # the user agent answers 405/501 before it looks for a dialog
            await tx.respond(response_for(request, 405, headers=(("Allow", ALLOW),)))

    def _on_ack(self, request: Request) -> None:
        # The transaction layer saw it first (it stops resending our 2xx); what is left for us
        # is the answer an ACK carries when our 2xx made the offer (an offerless INVITE).
        if request.body.strip() and self._offered_in_2xx:
            self.remote_sdp = request.body
            self._offered_in_2xx = False

    async def _on_offer(self, tx: ServerTransaction) -> None:
        request = tx.request
        has_offer = bool(request.body.strip())
        if interval_too_small(request, self.ua.options.min_se):
            await tx.respond(response_for(request, 422, headers=(self.ua.min_se_header(),)))
            return
        if request.method == "UPDATE" and not has_offer:
            await self._answer_offer(tx, False)  # a pure refresh: no offer, nothing to lock
            return
        if self._offering and (has_offer or request.method == "INVITE"):
            await tx.respond(response_for(request, 491))  # glare: both offered (§14.2)
            return
        if self._answering:
            retry = str(random.randint(0, 10))  # §14.2: 500 with a random Retry-After
            await tx.respond(response_for(request, 500, headers=(("Retry-After", retry),)))
            return
        self._answering = True
        async with self._offer_lock:
            try:
                await self._answer_offer(tx, has_offer)
            finally:
                self._answering = False

    async def _answer_offer(self, tx: ServerTransaction, has_offer: bool) -> None:
        request = tx.request
        refresh = unchanged_offer(request.body, self.remote_sdp)
        answer = self.local_sdp
        if request.method == "UPDATE" and not has_offer:
            answer = b""  # a refresh without offer/answer (RFC 3311)
        elif not refresh:
            status = 488
            if self.on_reinvite is not None:
                result = await self.on_reinvite(request.body)
                if isinstance(result, bytes):
                    answer, status = result, 200
                else:
                    status = result
            if status >= 300:
                await tx.respond(response_for(request, status))
                return
        self.dialog.refresh_target(request)
        timer = timer_for_request(request)
        extra = [("Contact", self.dialog.local_contact or ""), ("Supported", SUPPORTED)]
        if timer is not None:
            extra.append(timer.header(we_send_request=False))
            if not timer.we_refresh:
                extra.append(("Require", "timer"))
        extra += [("Content-Type", SDP)] if answer else []
        extra += self.ua.client.common_headers()
        ok = response_for(request, 200, headers=[h for h in extra if h[1]], body=answer)
        if refresh:
            self.refreshes += 1
        else:
            self.remote_sdp, self.local_sdp = request.body, answer
        self._set_timer(timer)
        if request.method == "INVITE":
            await self.deliver_2xx(tx, ok)
        else:
            await tx.respond(ok)

    async def deliver_2xx(
        self, tx: ServerTransaction, response: Response, *, background: bool = False
    ) -> None:
        """Send our 2xx to an INVITE and wait for its ACK (the transaction layer resends the
        2xx meanwhile, §13.3.1.4); none before the transaction gives up (64*T1): hang up.
        With ``background`` only the sending is awaited."""
        self._offered_in_2xx = not tx.request.body.strip()
        await tx.respond(response)
        if background:
            self._spawn(self._await_ack(tx))
        else:
            await self._await_ack(tx)

    async def _await_ack(self, tx: ServerTransaction) -> None:
        waits = [
            asyncio.ensure_future(tx.acked.wait()),
            asyncio.ensure_future(tx.terminated.wait()),
        ]
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for wait in waits:
                wait.cancel()
        if not tx.acked.is_set():
            await self._hangup("no ack")

    # -- session timer ---------------------------------------------------------------------

    def _set_timer(self, timer: SessionTimer | None) -> None:
        self._timer = timer
        self._refreshed_at = asyncio.get_running_loop().time()
        self._timer_changed.set()

    async def _session_timer(self) -> None:
        loop = asyncio.get_running_loop()
        retry_at: float | None = None
        while not self.ended.is_set():
            self._timer_changed.clear()
            timer = self._timer
            if timer is None:
                await self._timer_changed.wait()
                continue
            give_up = self._refreshed_at + timer.give_up_after
            if timer.we_refresh:
                due = retry_at if retry_at is not None else self._refreshed_at + timer.refresh_after
            else:
                due = give_up
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._timer_changed.wait(), max(0.0, due - loop.time()))
                retry_at = None
                continue  # refreshed or renegotiated: start over
            if not timer.we_refresh or loop.time() >= give_up:
                await self._hangup("session expired")
                return
            refreshed = await self._refresh()
            # A failed refresh is tried again halfway to the end; a success moved the timer.
            retry_at = None if refreshed else (loop.time() + give_up) / 2

    async def _refresh(self) -> bool:
        method = "UPDATE" if "UPDATE" in self.remote_allow else "INVITE"
        try:
            response = await self._offer(method, self.local_sdp)
        except SipError as exc:
            log.info("session refresh of call %s failed: %s", self.call_id, exc)
            return False
        if response.status == 422:
            found = response.headers.get("Min-SE")
            if found is not None and found.split(";")[0].strip().isdigit() and self._timer:
                interval = max(self._timer.interval, int(found.split(";")[0]))
                self._timer = SessionTimer(interval, we_refresh=True)
        if 200 <= response.status < 300:
            self.refreshes += 1
            return True
        return False


class OutboundCall(Call):
    """A call we placed (we own the Call-ID: the longer glare delay is ours, §14.1)."""

    outbound = True


class InboundCall(Call):
    """A call we answered."""
