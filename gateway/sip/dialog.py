"""SIP dialog state (RFC 3261 §12): who we talk to, along which route, at which sequence number.

Pure: no I/O and no timers. A ``Dialog`` is made from the INVITE that created it and, on the
caller's side, the 2xx that answered it; it then builds our in-dialog requests (Request-URI,
Route, From/To with tags, the next CSeq) and checks the peer's requests against the remote
sequence number. Via is not ours to write: the user agent prepends the one the socket layer
gives it (``SipSockets.via_for``), because only that layer knows the transport and address.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from gateway.sip.headers import NameAddr, SipParseError, SipUri
from gateway.sip.message import Headers, Request, Response

# Requests that may change the remote target (RFC 3261 §12.2, RFC 3311 §5 for UPDATE).
TARGET_REFRESH = frozenset({"INVITE", "UPDATE"})
MAX_FORWARDS = "70"


@dataclass
class Dialog:
    """One confirmed dialog. ``route_set`` holds Route values in the order we send them;
    ``remote_seq`` is None until the peer sends its first in-dialog request (§12.1.2)."""

    call_id: str
    local_party: NameAddr  # From of our requests, with our tag
    remote_party: NameAddr  # To of our requests, with their tag (if they gave one)
    remote_target: str  # the peer's Contact URI: the Request-URI of our requests
    route_set: tuple[str, ...]
    local_seq: int
    remote_seq: int | None
    secure: bool
    local_contact: str | None = None  # our Contact value, sent in target refresh requests

    @property
    def local_tag(self) -> str:
        return self.local_party.tag or ""

    @property
    def remote_tag(self) -> str:
        # "" for an RFC 2543 peer that tags nothing: it is matched as "no tag" (§12.2.1.2)
        return self.remote_party.tag or ""

    @property
    def id(self) -> tuple[str, str, str]:
        """Call-ID, local tag, remote tag: what identifies the dialog (§12)."""
        return (self.call_id, self.local_tag, self.remote_tag)

    @classmethod
    def from_uac(cls, invite: Request, response: Response) -> Dialog:
        """The caller's dialog, made by a 2xx (or a tagged 1xx) to our ``invite`` (§12.1.2).

        Record-Route comes back in the order the proxies added it, so the caller reverses it.
        ``local_contact`` is the Contact the INVITE carried."""
        return cls(
            call_id=invite.call_id,
            local_party=invite.from_addr,
            remote_party=response.to_addr,
            remote_target=_contact_uri(response) or invite.uri,
            route_set=tuple(reversed(response.headers.values("Record-Route"))),
            local_seq=invite.cseq.number,
            remote_seq=None,
            secure=invite.uri.lower().startswith("sips:"),
            local_contact=invite.headers.get("Contact"),
        )

    @classmethod
    def from_uas(
        cls, invite: Request, local_tag: str, *, local_contact: str | None = None
    ) -> Dialog:
        """The callee's dialog for ``invite``, answered with To tag ``local_tag`` (§12.1.1).

        Our local sequence number starts at 0: the first request we send carries CSeq 1."""
        remote_party = invite.from_addr
        return cls(
            call_id=invite.call_id,
            local_party=invite.to_addr.with_param("tag", local_tag),
            remote_party=remote_party,
            remote_target=_contact_uri(invite) or remote_party.uri,
            route_set=invite.headers.values("Record-Route"),
            local_seq=0,
            remote_seq=invite.cseq.number,
            secure=invite.uri.lower().startswith("sips:"),
            local_contact=local_contact,
        )

    def request(
        self,
        method: str,
        body: bytes = b"",
        content_type: str | None = None,
        extra: Iterable[tuple[str, str]] = (),
    ) -> Request:
        """Our next in-dialog request (§12.2.1.1), without Via; takes the next CSeq.

        Not for ACK (use ``ack``) nor CANCEL (a CANCEL copies the INVITE it cancels)."""
        if method in ("ACK", "CANCEL"):
            raise ValueError(f"{method} is not built with Dialog.request")
        self.local_seq += 1
        contact = self.local_contact if method in TARGET_REFRESH else None
        return self._build(method, self.local_seq, body, content_type, extra, contact)

    def ack(self, for_invite_cseq: int, extra: Iterable[tuple[str, str]] = ()) -> Request:
        """The ACK to a 2xx for our INVITE numbered ``for_invite_cseq`` (§13.2.2.4): the same
        CSeq number, the dialog's route. We always offer in the INVITE, so it has no body."""
        return self._build("ACK", for_invite_cseq, b"", None, extra, None)

    def _build(
        self,
        method: str,
        number: int,
        body: bytes,
        content_type: str | None,
        extra: Iterable[tuple[str, str]],
        contact: str | None,
    ) -> Request:
        uri, routes = self._request_target()
        headers: list[tuple[str, str]] = [
            ("Max-Forwards", MAX_FORWARDS),
            ("From", str(self.local_party)),
            ("To", str(self.remote_party)),
            ("Call-ID", self.call_id),
            ("CSeq", f"{number} {method}"),
            *(("Route", route) for route in routes),
        ]
        if contact is not None:
            headers.append(("Contact", contact))
        if body and content_type is not None:
            headers.append(("Content-Type", content_type))
        headers.extend(extra)
        return Request(method, uri, Headers(tuple(headers)), body)

    def _request_target(self) -> tuple[str, tuple[str, ...]]:
        """Request-URI and Route headers (§12.2.1.1). A first route without ``lr`` is a strict
        router (RFC 2543): it becomes the Request-URI and the remote target goes last."""
        if not self.route_set:
            return self.remote_target, ()
        first = _route_uri(self.route_set[0])
        if first is None or first.has_param("lr"):
            return self.remote_target, self.route_set
        strict = SipUri(first.host, first.user, first.port, first.scheme, first.params)
        return str(strict), (*self.route_set[1:], f"<{self.remote_target}>")

    def next_hop(self) -> SipUri:
        """Where our in-dialog requests go (RFC 3263 target): the first route, else the remote
        target. Raises SipParseError when that is not a sip:/sips: URI."""
        if self.route_set:
            first = _route_uri(self.route_set[0])
            if first is not None:
                return first
        return SipUri.parse(self.remote_target)

    def matches(self, message: Request | Response) -> bool:
        """Whether ``message`` belongs to this dialog: a request from the peer (their tag in
        From, ours in To) or a response to one of our requests (ours in From, theirs in To)."""
        try:
            if message.call_id != self.call_id:
                return False
            from_tag = message.from_addr.tag or ""
            to_tag = message.to_addr.tag or ""
        except SipParseError:
            return False
        if isinstance(message, Request):
            return from_tag == self.remote_tag and to_tag == self.local_tag
        return from_tag == self.local_tag and to_tag == self.remote_tag

    def accept_remote_seq(self, request: Request) -> bool:
        """Check and record the CSeq of the peer's in-dialog request (§12.2.2). False means it
        is out of order and must be answered 500. ACK and CANCEL reuse the INVITE's number."""
        if request.method in ("ACK", "CANCEL"):
            return True
        number = request.cseq.number
        if self.remote_seq is not None and number < self.remote_seq:
            return False
        self.remote_seq = number
        return True

    def refresh_target(self, message: Request | Response) -> None:
        """Take the remote target from the Contact of a target refresh request, or of the 2xx
        to ours (§12.2.1.2, §12.2.2). A message without a usable Contact changes nothing."""
        contact = _contact_uri(message)
        if contact is not None:
            self.remote_target = contact


def _contact_uri(message: Request | Response) -> str | None:
    try:
        values = message.headers.values("Contact")
        if not values or values[0] == "*":
            return None
        return NameAddr.parse(values[0]).uri
    except SipParseError:
        return None


def _route_uri(route: str) -> SipUri | None:
    try:
        return NameAddr.parse(route).sip_uri
    except SipParseError:
        return None
