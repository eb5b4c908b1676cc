"""The SIP user agent core (RFC 3261 §8, §13-§15): places calls, takes calls, routes in-dialog
requests to their call, answers OPTIONS and refuses the rest the way the RFC says.

Above the transaction layer: requests we send go through ``uac.Client`` (a Via from
``SipSockets.via_for``, digest retry, CANCEL); requests we receive arrive as
``ServerTransaction``s in ``on_request``, and 2xx retransmissions our INVITE transactions no
longer want in ``on_stray_2xx``.

Placing a call: ``invite`` returns once the 2xx is ACKed, or raises ``CallRejected`` (the final
status), ``RingTimeout`` (nobody answered in time; we cancelled) or ``SipTimeout``. Cancelling
the task that awaits ``invite`` cancels the call (CANCEL after a provisional response; a 2xx
that crosses our CANCEL is ACKed and hung up): there is no call object before the answer, so
the task is the handle.

Taking a call: ``handler.on_invite(IncomingCall)`` runs in its own task and owns the call until
it returns: it rings, answers or rejects; a call still unanswered when it returns is rejected
480, one it raised on gets 500.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from gateway.errors import CallEnded, CallRejected, RingTimeout, SipError
from gateway.sip.calls import (
    ALLOW,
    SDP,
    SUPPORTED,
    Call,
    OutboundCall,
    allowed_methods,
    interval_too_small,
    option_tags,
    timer_from_answer,
)
from gateway.sip.dialog import Dialog
from gateway.sip.digest import DigestClient
from gateway.sip.headers import NameAddr, SipUri
from gateway.sip.incoming import IncomingCall
from gateway.sip.message import (
    Headers,
    Request,
    Response,
    SipParseError,
    new_call_id,
    new_tag,
    response_for,
)
from gateway.sip.sockets import Peer, SipSockets, Transport
from gateway.sip.transaction import ServerTransaction, Timers, TransactionLayer
from gateway.sip.uac import Challenges, Client, InviteProgress

log = logging.getLogger(__name__)

# Methods we know but do not do: 405 with Allow. Anything else unknown: 501 (RFC 3261 §8.2.1).
KNOWN_ELSEWHERE = frozenset(
    {"REGISTER", "SUBSCRIBE", "NOTIFY", "REFER", "MESSAGE", "PUBLISH", "INFO", "PRACK"}
)
HANDLED = frozenset({"INVITE", "ACK", "CANCEL", "BYE", "OPTIONS", "UPDATE"})


@dataclass(frozen=True)
class SipAccount:
    """Who we are at the trunk or PBX, and where every out-of-dialog request goes."""

    username: str
    password: str
    domain: str
    proxy: Peer
    display: str | None = None


@dataclass(frozen=True)
class UaOptions:
    ring_timeout: float = 60.0
    session_expires: int = 1800  # asked for in our INVITEs (RFC 4028); 0: none asked
    min_se: int = 90  # the smallest interval we accept (RFC 4028's own minimum)
    glare_owner: tuple[float, float] = (2.1, 4.0)  # RFC 3261 §14.1 retry delay, Call-ID owner
    glare_other: tuple[float, float] = (0.0, 2.0)
    reinvite_timeout: float = 32.0  # a re-INVITE unanswered this long is cancelled
    user_agent: str = "fax-gateway"


class CallHandler(Protocol):
    async def on_invite(self, call: IncomingCall) -> None: ...


@dataclass
class _Dialing:
    """An INVITE of ours until its call ends: a 2xx from another fork is ACKed and hung up."""

    invite: Request | None = None
    done: asyncio.Event = field(default_factory=asyncio.Event)


class UserAgent:
    def __init__(
        self,
        layer: TransactionLayer,
        sockets: SipSockets,
        account: SipAccount,
        handler: CallHandler | None = None,
        *,
        options: UaOptions | None = None,
    ) -> None:
        self.layer = layer
        self.sockets = sockets
        self.account = account
        self.handler = handler
        self.options = options or UaOptions()
        self.client = Client(
            layer,
            sockets,
            DigestClient(account.username, account.password),
            user_agent=self.options.user_agent,
            reinvite_timeout=self.options.reinvite_timeout,
        )
        self._calls: dict[tuple[str, str, str], Call] = {}
        self._dialing: dict[tuple[str, str], _Dialing] = {}  # our INVITEs: forked 2xx
        self._incoming: dict[tuple[str, str, int], IncomingCall] = {}  # retransmissions
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closed = False
        layer.on_request = self.on_request  # as the layer installs itself in the sockets
        layer.on_stray_2xx = self.on_stray_2xx

    @property
    def timers(self) -> Timers:
        return self.layer.timers

    @property
    def calls(self) -> tuple[Call, ...]:
        return tuple(self._calls.values())

    # -- helpers for calls and registration ------------------------------------------------

    def min_se_header(self) -> tuple[str, str]:
        return ("Min-SE", str(self.options.min_se))

    def glare_delay(self, *, owner: bool) -> float:
        low, high = self.options.glare_owner if owner else self.options.glare_other
        return random.uniform(low, high)

    def contact(self, user: str | None, transport: Transport) -> str:
        return f"<{self.sockets.contact_uri(user, transport)}>"

    def options_response(self, request: Request) -> Response:
        headers = (
            ("Allow", ALLOW),
            ("Accept", SDP),
            ("Accept-Encoding", "identity"),
            ("Accept-Language", "en"),
            ("Supported", SUPPORTED),
            *self.client.common_headers(),
        )
        return response_for(request, 200, to_tag=new_tag(), headers=headers)

    def spawn(self, coroutine: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def register(self, call: Call) -> None:
        self._calls[call.dialog.id] = call

    def forget(self, call: Call) -> None:
        if self._calls.get(call.dialog.id) is call:  # not a fork's 2xx we only ACK and BYE
            del self._calls[call.dialog.id]
            self._dialing.pop((call.call_id, call.dialog.local_tag), None)

    # -- placing calls ---------------------------------------------------------------------

    async def invite(
        self,
        to_uri: str,
        from_user: str,
        sdp: bytes,
        *,
        ring_timeout: float | None = None,
        on_provisional: Callable[[Response], object] | None = None,
        extra: Iterable[tuple[str, str]] = (),
    ) -> OutboundCall:
        """Call ``to_uri`` through the account's proxy, offering ``sdp``."""
        if self._closed:
            raise CallEnded("the user agent is closed")
        peer = self.account.proxy
        local = NameAddr(
            str(SipUri(self.account.domain, from_user)),
            self.account.display,
            (("tag", new_tag()),),
        )
        call_id = new_call_id()
        contact = self.contact(from_user, peer.transport)
        extra = tuple(extra)
        cseq = 0
        interval = self.options.session_expires

        def build() -> Request:
            nonlocal cseq
            cseq += 1
            headers = [
                ("Max-Forwards", "70"),
                ("From", str(local)),
                ("To", f"<{to_uri}>"),
                ("Call-ID", call_id),
                ("CSeq", f"{cseq} INVITE"),
                ("Contact", contact),
                ("Allow", ALLOW),
                ("Supported", SUPPORTED),
            ]
            if interval:
                headers += [("Session-Expires", str(interval)), self.min_se_header()]
            headers += [*self.client.common_headers(), ("Content-Type", SDP), *extra]
            return Request("INVITE", to_uri, Headers(tuple(headers)), sdp)

        loop = asyncio.get_running_loop()
        deadline = loop.time() + (ring_timeout or self.options.ring_timeout)
        progress = InviteProgress(on_provisional)
        challenges: Challenges = {}
        dialing = _Dialing()
        key = (call_id, local.tag or "")
        self._dialing[key] = dialing
        try:
            for _ in range(2):  # a 422 is retried once with the interval it asks for
                invite, response = await self.client.send_invite(
                    build,
                    peer,
                    progress=progress,
                    deadline=deadline,
                    challenges=challenges,
                    on_late_2xx=self._discard_answer,
                )
                dialing.invite = invite
                min_se = _number(response.headers.get("Min-SE"))
                if response.status != 422 or not interval or min_se is None:
                    break
                interval = max(interval, min_se)
            call = await self._answered(invite, response, sdp, peer, progress)
        except BaseException:
            self._dialing.pop(key, None)
            raise
        finally:
            dialing.done.set()
        return call

    async def _answered(
        self, invite: Request, response: Response, sdp: bytes, peer: Peer, progress: InviteProgress
    ) -> OutboundCall:
        if response.status >= 300:
            if progress.cancelled:
                raise RingTimeout(response.status, response.reason or "ring timeout")
            raise CallRejected(response.status, response.reason)
        call = OutboundCall(
            self,
            Dialog.from_uac(invite, response),
            peer.transport,
            local_sdp=sdp,
            remote_sdp=response.body,
            remote_allow=allowed_methods(response),
            timer=timer_from_answer(response),
        )
        self.register(call)
        await call.ack_2xx(invite, response)
        if progress.cancelled or not response.body.strip():
            # Answered after our CANCEL went, or answered without the SDP answer our offer
            # needs (RFC 3264 §5): the session cannot go on.
            await call.bye()
            if progress.cancelled:
                raise RingTimeout(487, "answered after the ring timeout; hung up")
            raise CallRejected(response.status, "answered without SDP; hung up")
        log.info("call %s answered (%d)", call.call_id, response.status)
        return call

    async def _discard_answer(self, invite: Request, response: Response) -> None:
        """ACK and BYE a 2xx nobody wants: it crossed our CANCEL, or it came from a fork
        after another branch answered (RFC 3261 §13.2.2.4)."""
        call = OutboundCall(
            self,
            Dialog.from_uac(invite, response),
            self.account.proxy.transport,
            local_sdp=invite.body,
            remote_sdp=response.body,
            remote_allow=frozenset(),
            timer=None,
        )
        await call.ack_2xx(invite, response)
        await call.bye()

    def on_stray_2xx(self, response: Response, peer: Peer | None = None) -> None:
        """A 2xx to an INVITE of ours that its transaction no longer wants: a retransmission
        (re-ACK it) or another fork's answer (ACK and BYE it)."""
        try:
            call_id, local, remote = (
                response.call_id,
                response.from_addr.tag or "",
                response.to_addr.tag or "",
            )
        except SipParseError:
            return
        call = self._calls.get((call_id, local, remote))
        if call is not None:
            call.on_2xx_retransmission(response)
            return
        dialing = self._dialing.get((call_id, local))
        if dialing is not None:
            self.spawn(self._stray_while_dialing(dialing, response))

    async def _stray_while_dialing(self, dialing: _Dialing, response: Response) -> None:
        # The first 2xx may still be on its way up to invite(): wait until it is settled.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(dialing.done.wait(), 64 * self.timers.t1)
        key = (response.call_id, response.from_addr.tag or "", response.to_addr.tag or "")
        call = self._calls.get(key)
        if call is not None:
            call.on_2xx_retransmission(response)
        elif dialing.invite is not None and response.cseq.number == dialing.invite.cseq.number:
            with contextlib.suppress(SipError):
                await self._discard_answer(dialing.invite, response)

    # -- receiving -------------------------------------------------------------------------

    async def on_request(self, tx: ServerTransaction) -> None:
        """Every request the transaction layer hands up (install as its ``on_request``)."""
        request = tx.request
        try:
            await self._route(tx)
        except Exception as exc:
            if request.method == "ACK":
                return
            status = 400 if isinstance(exc, SipParseError) else 500
            if status == 500:
                log.exception("%s from %s failed", request.method, tx.peer)
            with contextlib.suppress(Exception):
                await tx.respond(response_for(request, status, to_tag=new_tag()))

    async def _route(self, tx: ServerTransaction) -> None:
        request = tx.request
        method = request.method
        if method == "ACK":
            call = self._find(request)
            if call is not None:
                await call.handle(tx)
            return
        if method not in HANDLED:
            status = 405 if method in KNOWN_ELSEWHERE else 501
            await self._reply(tx, status, headers=(("Allow", ALLOW),))
            return
        if request.uri.partition(":")[0].lower() not in ("sip", "sips"):
            await self._reply(tx, 416)
            return
        unsupported = option_tags(request, "Require") - {"timer"}
        if unsupported and method != "CANCEL":
            await self._reply(tx, 420, headers=(("Unsupported", ", ".join(sorted(unsupported))),))
            return
        if request.to_addr.tag is not None:
            call = self._find(request)
            if call is None:
                await self._reply(tx, 481)
            else:
                await call.handle(tx)
        elif method == "INVITE":
            await self._on_invite(tx)
        elif method == "OPTIONS":
            await tx.respond(self.options_response(request))
        else:  # BYE, UPDATE or an unmatched CANCEL outside any dialog
            await self._reply(tx, 481)

    def _find(self, request: Request) -> Call | None:
        key = (request.call_id, request.to_addr.tag or "", request.from_addr.tag or "")
        return self._calls.get(key)

    async def _reply(
        self, tx: ServerTransaction, status: int, headers: Iterable[tuple[str, str]] = ()
    ) -> None:
        headers = (*headers, *self.client.common_headers())
        await tx.respond(response_for(tx.request, status, to_tag=new_tag(), headers=headers))

    async def _on_invite(self, tx: ServerTransaction) -> None:
        request = tx.request
        key = (request.call_id, request.from_addr.tag or "", request.cseq.number)
        known = self._incoming.get(key)
        if known is not None:
            if known.request.vias[0].branch != request.vias[0].branch:
                await self._reply(tx, 482)  # merged: a fork of it reached us twice (§8.2.2.2)
            elif known.last_response is not None:
                await tx.respond(known.last_response)  # outlived its transaction
            return
        if self._closed or self.handler is None:
            await self._reply(tx, 480)
            return
        if interval_too_small(request, self.options.min_se):
            await self._reply(tx, 422, headers=(self.min_se_header(),))
            return
        call = IncomingCall(self, tx)
        self._incoming[key] = call
        self.spawn(self._offer_call(call, key))

    async def _offer_call(self, call: IncomingCall, key: tuple[str, str, int]) -> None:
        assert self.handler is not None
        try:
            await self.handler.on_invite(call)
        except Exception:
            log.exception("on_invite failed for call %s", call.request.call_id)
            with contextlib.suppress(SipError):
                await call.reject(500)
        else:
            with contextlib.suppress(SipError):
                await call.reject(480)  # nothing if it was answered or rejected
        # Keep it for retransmitted INVITEs as long as their transaction could live.
        await asyncio.sleep(64 * self.timers.t1)
        self._incoming.pop(key, None)

    async def close(self) -> None:
        """Hang up every call (BYE), refuse ringing ones (503), stop our tasks."""
        self._closed = True
        for incoming in list(self._incoming.values()):
            with contextlib.suppress(SipError):
                await incoming.reject(503)
        calls = list(self._calls.values())
        await asyncio.gather(*(call.bye() for call in calls), return_exceptions=True)
        for call in calls:
            call.close()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def _number(value: str | None) -> int | None:
    text = (value or "").split(";")[0].strip()
    return int(text) if text.isdigit() else None
