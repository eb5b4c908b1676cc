"""SIP messages (RFC 3261 §7, §18.3, §20): records, a hardened parser, serialization.

Pure: no I/O. ``parse_message`` reads one UDP datagram, ``StreamFramer`` cuts a TCP byte stream
into messages. Whatever the peer sends, the only exception either raises is ``SipParseError``;
for a request it keeps what could be read so that the transaction layer can still answer 400.
A message they return has readable Via, From, To, Call-ID and CSeq headers: the accessors for
those (``vias``, ``from_addr``...) do not raise on it.

Header *values* stay strings in the records; ``gateway.sip.headers`` parses and formats them on
demand. Content-Length is framing, not content: the parser consumes it and ``to_bytes`` always
writes the true length of ``body``.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from gateway.sip.headers import (
    TOKEN,
    AuthParams,
    CSeq,
    NameAddr,
    SipParseError,
    SipUri,
    Via,
    is_absolute_uri,
    is_token,
    split_header_values,
)

# The header-value records and SipParseError live in gateway.sip.headers; they are re-exported
# here because code written against the first layout (and docs/sip-internals.md) imports them
# from this module.
__all__ = [
    "BRANCH_COOKIE",
    "DEFAULT_LIMITS",
    "REASON_PHRASES",
    "AuthParams",
    "CSeq",
    "Headers",
    "Limits",
    "NameAddr",
    "Request",
    "Response",
    "SipParseError",
    "SipUri",
    "StreamFramer",
    "Via",
    "canonical_name",
    "is_keepalive",
    "new_branch",
    "new_call_id",
    "new_tag",
    "parse_message",
    "response_for",
]


@dataclass(frozen=True)
class Limits:
    """Bounds against hostile input; each one refused with its own reason."""

    max_message: int = 65_535  # one UDP datagram
    max_head: int = 16_384  # start line and headers, without the blank line
    max_headers: int = 100
    max_line: int = 8_192  # one header after unfolding
    max_body: int = 65_535  # over a stream; a datagram is bounded by max_message


DEFAULT_LIMITS = Limits()

# RFC 3261 §7.3.3 and the IANA registry of compact forms.
_COMPACT = {
    "a": "Accept-Contact", "b": "Referred-By", "c": "Content-Type", "d": "Request-Disposition",
    "e": "Content-Encoding", "f": "From", "i": "Call-ID", "j": "Reject-Contact", "k": "Supported",
    "l": "Content-Length", "m": "Contact", "n": "Identity-Info", "o": "Event", "r": "Refer-To",
    "s": "Subject", "t": "To", "u": "Allow-Events", "v": "Via", "x": "Session-Expires",
    "y": "Identity",
}  # fmt: skip
# Header names are case-insensitive; one spelling for the ones we know keeps records comparable.
_CANONICAL = {
    name.lower(): name
    for name in (
        *_COMPACT.values(),
        "Accept", "Accept-Encoding", "Accept-Language", "Alert-Info", "Allow", "Authorization",
        "Call-Info", "CSeq", "Content-Disposition", "Content-Language", "Date", "Error-Info",
        "Expires", "In-Reply-To", "Max-Forwards", "Min-Expires", "Min-SE", "MIME-Version",
        "Organization", "P-Asserted-Identity", "P-Preferred-Identity", "Path", "Priority",
        "Privacy", "Proxy-Authenticate", "Proxy-Authorization", "Proxy-Require", "RAck",
        "Reason", "Record-Route", "Remote-Party-ID", "Reply-To", "Require", "Retry-After",
        "Route", "RSeq", "Server", "Service-Route", "Timestamp", "Unsupported", "User-Agent",
        "Warning", "WWW-Authenticate",
    )
}  # fmt: skip


def canonical_name(name: str) -> str:
    """The long, canonically spelled form of a header name (``i`` → ``Call-ID``)."""
    lowered = name.lower()
    return _COMPACT.get(lowered) or _CANONICAL.get(lowered, name)


_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")  # CTLs but HTAB (RFC 3261 TEXT-UTF8)


@dataclass(frozen=True)
class Headers:
    """Ordered header lines, names in their long canonical form, looked up case-insensitively."""

    items: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        items = []
        for name, value in self.items:
            if not is_token(name) or _CONTROL.search(value):
                raise ValueError(f"invalid header {name!r}: {value!r}")
            items.append((canonical_name(name), value.strip(" \t")))
        object.__setattr__(self, "items", tuple(items))

    @classmethod
    def of(cls, *items: tuple[str, str]) -> Headers:
        return cls(items)

    def get(self, name: str) -> str | None:
        """The first value of ``name``."""
        return next(iter(self.get_all(name)), None)

    def get_all(self, name: str) -> tuple[str, ...]:
        """Every line of ``name``, in order."""
        wanted = canonical_name(name).lower()
        return tuple(value for key, value in self.items if key.lower() == wanted)

    def values(self, name: str) -> tuple[str, ...]:
        """Every element of a comma-separated header, across all its lines (SipParseError on
        an unterminated quote or <...>)."""
        return tuple(part for line in self.get_all(name) for part in split_header_values(line))

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and bool(self.get_all(name))

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)

    def add(self, name: str, value: str) -> Headers:
        return Headers((*self.items, (name, value)))

    def remove(self, name: str) -> Headers:
        wanted = canonical_name(name).lower()
        return Headers(tuple(item for item in self.items if item[0].lower() != wanted))

    def set(self, name: str, value: str) -> Headers:
        """One line of ``name`` with ``value``, where the first one was (else at the end)."""
        wanted = canonical_name(name).lower()
        position = next(
            (i for i, (key, _) in enumerate(self.items) if key.lower() == wanted), len(self.items)
        )
        kept = self.remove(name).items
        return Headers((*kept[:position], (name, value), *kept[position:]))


class _Message:
    """Accessors shared by requests and responses; they raise SipParseError when malformed."""

    headers: Headers
    body: bytes

    def _one(self, name: str) -> str:
        value = self.headers.get(name)
        if value is None:
            raise SipParseError(f"no {name} header")
        return value

    @property
    def call_id(self) -> str:
        return self._one("Call-ID")

    @property
    def cseq(self) -> CSeq:
        return CSeq.parse(self._one("CSeq"))

    @property
    def vias(self) -> tuple[Via, ...]:
        return tuple(Via.parse(value) for value in self.headers.values("Via"))

    @property
    def from_addr(self) -> NameAddr:
        return NameAddr.parse(self._one("From"))

    @property
    def to_addr(self) -> NameAddr:
        return NameAddr.parse(self._one("To"))

    def _serialize(self, start_line: str) -> bytes:
        lines = [start_line, *(f"{name}: {value}" for name, value in self.headers)]
        lines.append(f"Content-Length: {len(self.body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + self.body


def _check_headers(headers: Headers) -> None:
    if "Content-Length" in headers:
        raise ValueError("Content-Length is derived from the body; do not set it")


@dataclass(frozen=True)
class Request(_Message):
    method: str
    uri: str  # the Request-URI, as written
    headers: Headers = field(default_factory=Headers)
    body: bytes = b""

    def __post_init__(self) -> None:
        if (
            not is_token(self.method)
            or not re.fullmatch(r"\S+", self.uri)
            or _CONTROL.search(self.uri)
        ):
            raise ValueError(f"invalid request line {self.method!r} {self.uri!r}")
        _check_headers(self.headers)

    def to_bytes(self) -> bytes:
        return self._serialize(f"{self.method} {self.uri} SIP/2.0")


@dataclass(frozen=True)
class Response(_Message):
    status: int
    reason: str = ""
    headers: Headers = field(default_factory=Headers)
    body: bytes = b""

    def __post_init__(self) -> None:
        if not 100 <= self.status <= 699 or _CONTROL.search(self.reason):
            raise ValueError(f"invalid status line {self.status} {self.reason!r}")
        _check_headers(self.headers)

    def to_bytes(self) -> bytes:
        return self._serialize(f"SIP/2.0 {self.status} {self.reason}")


_HEAD_END = re.compile(rb"\r?\n\r?\n")
_LINE_END = re.compile(r"\r?\n")
_NOT_CRLF = re.compile(rb"[^\r\n]")
_REQUEST_LINE = re.compile(rf"({TOKEN.pattern}) +(\S+) +[Ss][Ii][Pp]/2\.0")
_STATUS_LINE = re.compile(r"[Ss][Ii][Pp]/2\.0 +([1-6][0-9][0-9])(?: (.*))?")


@dataclass
class _Head:
    """What one pass over a message head found, good and bad (internal scratch)."""

    request_line: tuple[str, str] | None = None
    status_line: tuple[int, str] | None = None
    headers: list[tuple[str, str]] = field(default_factory=list)
    content_length: int | None = None  # None: absent
    framing_error: str | None = None  # Content-Length unusable: a stream cannot go on
    error: str | None = None  # the first problem, the one reported
    _record: Headers | None = None  # built once for the checks, reused for the message

    def fail(self, reason: str) -> None:
        if self.error is None:
            self.error = reason

    def partial_request(self) -> Request | None:
        if self.request_line is None:
            return None
        return Request(*self.request_line, Headers(tuple(self.headers)))

    def build(self, body: bytes) -> Request | Response:
        error = self.error or self.framing_error
        if error is not None:
            raise SipParseError(error, request=self.partial_request())
        return self.message(body)

    def message(self, body: bytes) -> Request | Response:
        if self._record is None:
            self._record = Headers(tuple(self.headers))
        headers = self._record
        if self.request_line is not None:
            return Request(*self.request_line, headers, body)
        assert self.status_line is not None
        return Response(*self.status_line, headers, body)


def _decode(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")  # old phones send ISO-8859-1 display names


def _read_content_length(head: _Head, value: str) -> None:
    if not re.fullmatch(r"[0-9]{1,9}", value.strip()):
        head.framing_error = "bad Content-Length"
    elif head.content_length is not None and head.content_length != int(value):
        head.framing_error = "conflicting Content-Length headers"
    else:
        head.content_length = int(value)


def _parse_head(raw: bytes, limits: Limits) -> _Head:
    """Read everything that can be read, recording the first problem instead of stopping:
    a stream needs Content-Length even after a bad header, and a 400 needs the Via."""
    head = _Head()
    start, *lines = _LINE_END.split(_decode(raw))
    if _CONTROL.search(start):
        head.fail("control character in the start line")
    elif (request := _REQUEST_LINE.fullmatch(start)) is not None:
        head.request_line = (request.group(1), request.group(2))
    elif (status := _STATUS_LINE.fullmatch(start)) is not None:
        head.status_line = (int(status.group(1)), (status.group(2) or "").strip(" \t"))
    else:
        head.fail("malformed start line")
    folded: list[list[str]] = []
    for line in lines:  # unfold obsolete line folding (RFC 3261 §7.3.1)
        if line[:1] not in (" ", "\t"):
            folded.append([line.rstrip(" \t")])
        elif folded:
            folded[-1].append(line.strip(" \t"))
        else:
            head.fail("continuation line before the first header")
    for count, parts in enumerate(folded):
        line = " ".join(filter(None, parts))
        name, colon, value = line.partition(":")
        name = canonical_name(name.rstrip(" \t"))
        if name == "Content-Length" and colon:
            if len(line) > limits.max_line or _CONTROL.search(line):
                head.framing_error = "bad Content-Length"
            else:
                _read_content_length(head, value)
        elif count >= limits.max_headers:
            head.fail("too many headers")  # keep looking for Content-Length, nothing else
        elif len(line) > limits.max_line:
            head.fail("header line too long")
        elif _CONTROL.search(line):
            head.fail("control character in a header")
        elif not colon or not is_token(name):
            head.fail("malformed header line")
        else:
            head.headers.append((name, value.strip(" \t")))
    if head.error is None:
        _check_required(head)
    return head


def _check_required(head: _Head) -> None:
    """The headers every request and response carries (RFC 3261 §8.1.1), readable."""
    counts: dict[str, int] = {}
    for name, _ in head.headers:
        counts[name] = counts.get(name, 0) + 1
    for name in ("Call-ID", "CSeq", "From", "To"):
        if counts.get(name, 0) != 1:
            head.fail(f"{'no' if name not in counts else 'more than one'} {name} header")
            return
    if "Via" not in counts:
        head.fail("no Via header")
        return
    message = head.message(b"")
    try:  # after this, a parsed message's accessors never raise
        cseq = message.cseq
        _ = (message.vias, message.from_addr, message.to_addr)
        if not re.fullmatch(r"\S+", message.call_id):
            raise SipParseError("bad Call-ID")
        if isinstance(message, Request):
            if cseq.method != message.method:
                raise SipParseError("CSeq method differs from the request method")
            if not is_absolute_uri(message.uri):
                raise SipParseError("bad Request-URI")
            if message.uri.partition(":")[0].lower() in ("sip", "sips"):
                SipUri.parse(message.uri)
    except SipParseError as exc:
        head.fail(exc.reason)


def parse_message(data: bytes, limits: Limits = DEFAULT_LIMITS) -> Request | Response:
    """One message from one datagram (RFC 3261 §18.3: bytes past Content-Length are dropped)."""
    if len(data) > limits.max_message:
        raise SipParseError("message too large")
    data = data.lstrip(b"\r\n")
    if not data:
        raise SipParseError("empty message")
    end = _HEAD_END.search(data, 0, limits.max_head + 4)
    if end is None or end.start() > limits.max_head:
        raise SipParseError("head too large" if len(data) > limits.max_head else "no end of head")
    head = _parse_head(data[: end.start()], limits)
    rest = data[end.end() :]
    if head.content_length is not None and head.content_length > len(rest):
        head.fail("body shorter than Content-Length")
    return head.build(rest if head.content_length is None else rest[: head.content_length])


def is_keepalive(data: bytes) -> bool:
    """A CRLF keep-alive (RFC 5626 §3.5.1), which is not a message and gets no answer."""
    return not data.strip(b"\r\n")


class StreamFramer:
    """Cuts a TCP (or TLS) byte stream into messages by blank line and Content-Length.

    ``feed`` returns what became complete: messages, and ``SipParseError`` for a message that
    was framed but malformed (answer it, carry on). An error with ``fatal`` set means the
    framing is lost (no or bad Content-Length, oversize head or body): close the connection;
    feeding again raises that error."""

    def __init__(self, limits: Limits = DEFAULT_LIMITS) -> None:
        self._limits = limits
        self._buffer = bytearray()
        self._scan_from = 0  # where to resume looking for the blank line
        self._pending: tuple[_Head, int, int] | None = None  # head, body start, body length
        self._failed: SipParseError | None = None

    def feed(self, data: bytes) -> list[Request | Response | SipParseError]:
        if self._failed is not None:
            raise self._failed
        self._buffer += data
        out: list[Request | Response | SipParseError] = []
        while (item := self._next()) is not None:
            out.append(item)
            if isinstance(item, SipParseError) and item.fatal:
                self._failed = item
                self._buffer.clear()
                break
        return out

    def _next(self) -> Request | Response | SipParseError | None:
        if self._pending is None:
            found = self._next_head()
            if not isinstance(found, tuple):
                return found
            self._pending = found
        head, start, length = self._pending
        if len(self._buffer) < start + length:
            return None
        body = bytes(self._buffer[start : start + length])
        del self._buffer[: start + length]
        self._pending = None
        try:
            return head.build(body)
        except SipParseError as exc:
            return exc

    def _next_head(self) -> tuple[_Head, int, int] | SipParseError | None:
        limits = self._limits
        first = _NOT_CRLF.search(self._buffer)  # CRLF keep-alives between messages
        del self._buffer[: len(self._buffer) if first is None else first.start()]
        end = _HEAD_END.search(self._buffer, max(0, self._scan_from - 3), limits.max_head + 4)
        if end is None:
            self._scan_from = len(self._buffer)
            if len(self._buffer) > limits.max_head + 3:
                return SipParseError("head too large", fatal=True)
            return None
        self._scan_from = 0
        if end.start() > limits.max_head:
            return SipParseError("head too large", fatal=True)
        head = _parse_head(bytes(self._buffer[: end.start()]), limits)
        if head.framing_error is None and head.content_length is None:
            head.framing_error = "no Content-Length (required over a stream)"
        elif head.content_length is not None and head.content_length > limits.max_body:
            head.framing_error = "body too large"
        if head.framing_error is not None or head.content_length is None:
            reason = head.framing_error or "no Content-Length"
            return SipParseError(reason, request=head.partial_request(), fatal=True)
        return head, end.end(), head.content_length


BRANCH_COOKIE = "z9hG4bK"  # RFC 3261 §8.1.1.7


def new_branch() -> str:
    return BRANCH_COOKIE + secrets.token_hex(12)


def new_tag() -> str:
    return secrets.token_hex(8)


def new_call_id(host: str | None = None) -> str:
    return secrets.token_hex(16) + (f"@{host}" if host else "")


REASON_PHRASES = {
    100: "Trying", 180: "Ringing", 181: "Call Is Being Forwarded", 182: "Queued",
    183: "Session Progress", 200: "OK", 202: "Accepted", 301: "Moved Permanently",
    302: "Moved Temporarily", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden",
    404: "Not Found", 405: "Method Not Allowed", 406: "Not Acceptable",
    407: "Proxy Authentication Required", 408: "Request Timeout",
    413: "Request Entity Too Large", 415: "Unsupported Media Type", 416: "Unsupported URI Scheme",
    420: "Bad Extension", 421: "Extension Required", 422: "Session Interval Too Small",
    423: "Interval Too Brief", 480: "Temporarily Unavailable",
    481: "Call/Transaction Does Not Exist", 482: "Loop Detected", 483: "Too Many Hops",
    484: "Address Incomplete", 486: "Busy Here", 487: "Request Terminated",
    488: "Not Acceptable Here", 491: "Request Pending", 500: "Server Internal Error",
    501: "Not Implemented", 502: "Bad Gateway", 503: "Service Unavailable",
    504: "Server Time-out", 505: "Version Not Supported", 513: "Message Too Large",
    600: "Busy Everywhere", 603: "Decline", 604: "Does Not Exist Anywhere", 606: "Not Acceptable",
}  # fmt: skip


def response_for(
    request: Request,
    status: int,
    reason: str | None = None,
    *,
    to_tag: str | None = None,
    headers: Iterable[tuple[str, str]] = (),
    body: bytes = b"",
) -> Response:
    """A response to ``request`` as RFC 3261 §8.2.6 builds it: Via, From, Call-ID and CSeq
    copied, To copied with ``to_tag`` added unless it has a tag already, then ``headers``.

    Record-Route is copied into 101-299 (§12.1.1: a dialog-creating response carries it) and
    Timestamp into 100 (§8.2.6.1)."""
    if to_tag is not None and not is_token(to_tag):
        raise ValueError(f"invalid tag {to_tag!r}")
    copied: list[tuple[str, str]] = []
    for name, value in request.headers:
        if name in ("Via", "From", "Call-ID", "CSeq"):
            copied.append((name, value))
        elif name == "To":
            has_tag = _to_has_tag(value)
            copied.append((name, value if has_tag or to_tag is None else f"{value};tag={to_tag}"))
        elif (name == "Record-Route" and 100 < status < 300) or (
            name == "Timestamp" and status == 100
        ):
            copied.append((name, value))
    phrase = REASON_PHRASES.get(status, "") if reason is None else reason
    return Response(status, phrase, Headers((*copied, *headers)), body)


def _to_has_tag(value: str) -> bool:
    try:
        return NameAddr.parse(value).tag is not None
    except SipParseError:  # a To we cannot read gets no tag of ours either
        return True
