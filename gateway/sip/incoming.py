"""A call offered to us (RFC 3261 §13.3), from the INVITE until we answer, reject, or the
caller cancels (the transaction layer answers the CANCEL 200; the INVITE's 487 is ours)."""

from __future__ import annotations

import asyncio
import logging
import re
import urllib.parse
from collections.abc import Iterable
from typing import TYPE_CHECKING

from gateway.errors import CallEnded
from gateway.sip.calls import ALLOW, SDP, SUPPORTED, InboundCall, allowed_methods, timer_for_request
from gateway.sip.dialog import Dialog
from gateway.sip.headers import SipUri
from gateway.sip.message import Response, SipParseError, new_tag, response_for
from gateway.sip.transaction import ServerTransaction

if TYPE_CHECKING:
    from gateway.sip.useragent import UserAgent

log = logging.getLogger(__name__)


def uri_user(uri: str) -> str | None:
    """The user (a number, usually) of a sip:, sips: or tel: URI, unescaped."""
    scheme, _, rest = uri.partition(":")
    if scheme.lower() == "tel":
        return rest.partition(";")[0] or None
    if scheme.lower() not in ("sip", "sips"):
        return None
    try:
        user = SipUri.parse(uri).user
    except SipParseError:
        return None
    return urllib.parse.unquote(user.partition(";")[0]) if user else None


_PHONE = re.compile(r"\+?[0-9][0-9.\-]*")  # a dialled number (with visual separators)


def dialled_user(target: str | None, to: str | None) -> str:
    """The number a caller dialled: the Request-URI's user, else the To's. A registrar that
    routed the call to our registered contact has put our username there; when that is not a
    number and the To's user is, the To's user is what was dialled."""
    if target and to and not _PHONE.fullmatch(target) and _PHONE.fullmatch(to):
        return to
    return target or to or ""


class IncomingCall:
    """An INVITE offered to us, until it is answered, rejected or cancelled.

    ``dialled`` is the Request-URI's user, else the To's; when the Request-URI's user is not a
    number and the To's is (a registrar that rewrote the Request-URI to our registered
    username), the To's. ``caller`` is the From's (or "").
    ``ended`` is set when it can no longer be answered: ``end_reason`` "cancelled" (the caller
    sent CANCEL: we answered 487) or "rejected"."""

    def __init__(self, ua: UserAgent, tx: ServerTransaction) -> None:
        self.ua = ua
        self.tx = tx
        self.request = tx.request
        self.local_tag = new_tag()
        self.dialled = dialled_user(uri_user(self.request.uri), uri_user(self.request.to_addr.uri))
        self.caller = uri_user(self.request.from_addr.uri) or ""
        self.remote_sdp = self.request.body
        self.ended = asyncio.Event()
        self.end_reason: str | None = None
        self.last_response: Response | None = None
        self.final: Response | None = None
        self._watch = ua.spawn(self._watch_cancel())

    async def ring(self) -> None:
        """180 Ringing (nothing once a final response went)."""
        if self.final is None:
            await self._send(self._response(180, ("Contact", self._contact())))

    async def answer(self, sdp: bytes) -> InboundCall:
        """200 with our SDP answer; returns the answered call (the 2xx is resent until the
        ACK comes). ``CallEnded`` if the caller cancelled first."""
        if self.final is not None or self.ended.is_set() or self.tx.cancelled.is_set():
            raise CallEnded(f"call {self.request.call_id} can no longer be answered")
        request = self.request
        contact = self._contact()
        timer = timer_for_request(request)
        headers = [("Contact", contact), ("Allow", ALLOW), ("Supported", SUPPORTED)]
        if timer is not None:
            headers.append(timer.header(we_send_request=False))
            if not timer.we_refresh:
                headers.append(("Require", "timer"))
        ok = self._response(200, *headers, ("Content-Type", SDP), body=sdp)
        call = InboundCall(
            self.ua,
            Dialog.from_uas(request, self.local_tag, local_contact=contact),
            self.tx.peer.transport,
            local_sdp=sdp,
            remote_sdp=request.body,
            remote_allow=allowed_methods(request),
            timer=timer,
        )
        self.ua.register(call)
        self._finish(ok)
        await call.deliver_2xx(self.tx, ok, background=True)
        log.info("call %s answered", request.call_id)
        return call

    async def reject(
        self, status: int, reason: str | None = None, headers: Iterable[tuple[str, str]] = ()
    ) -> None:
        """A final response >= 300 (nothing once a final response went); ``headers`` for what
        the status needs (WWW-Authenticate for 401, Contact for 3xx, Retry-After...)."""
        if self.final is not None:
            return
        response = response_for(
            self.request,
            status,
            reason,
            to_tag=self.local_tag,
            headers=(*headers, *self.ua.client.common_headers()),
        )
        self._finish(response)
        self._end("rejected")
        await self.tx.respond(response)

    def _contact(self) -> str:
        return self.ua.contact(self.dialled or None, self.tx.peer.transport)

    def _response(self, status: int, *headers: tuple[str, str], body: bytes = b"") -> Response:
        return response_for(
            self.request,
            status,
            to_tag=self.local_tag,
            headers=(*headers, *self.ua.client.common_headers()),
            body=body,
        )

    async def _send(self, response: Response) -> None:
        self.last_response = response
        await self.tx.respond(response)

    def _finish(self, response: Response) -> None:
        self.final = self.last_response = response
        if self._watch is not asyncio.current_task():
            self._watch.cancel()

    def _end(self, reason: str) -> None:
        if not self.ended.is_set():
            self.end_reason = reason
            self.ended.set()

    async def _watch_cancel(self) -> None:
        # The transaction layer answered the CANCEL itself; the INVITE's 487 is ours.
        await self.tx.cancelled.wait()
        if self.final is None:
            response = self._response(487)
            self._finish(response)
            self._end("cancelled")
            await self.tx.respond(response)
