"""SIP messages (RFC 3261 §7, §18.3, §20, §25): records, a hardened parser, serialization.

Pure: no I/O. ``parse_message`` reads one UDP datagram, ``StreamFramer`` cuts a TCP byte stream
into messages. Whatever the peer sends, the only exception either raises is ``SipParseError``;
for a request it keeps what could be read so that the transaction layer can still answer 400.
A message they return has readable Via, From, To, Call-ID and CSeq headers: the accessors for
those (``vias``, ``from_addr``...) do not raise on it.

Header *values* stay strings in the records (a proxy's Via or Record-Route must go back byte
for byte); the helpers ``SipUri``, ``NameAddr``, ``Via``, ``CSeq`` and ``AuthParams`` parse and
format them on demand. Content-Length is framing, not content: the parser consumes it and
``to_bytes`` always writes the true length of ``body``.
"""

from __future__ import annotations

import ipaddress
import re
import secrets
from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass, field

from gateway.errors import GatewayError


class SipParseError(GatewayError):
    """A message (or header value) that cannot be read, with a short reason.

    ``request`` is the request as far as it could be read (start line and well-formed headers,
    no body) when the start line was a request line. ``fatal`` is set by ``StreamFramer`` when
    the stream's framing is lost and the connection must be closed."""

    def __init__(self, reason: str, *, request: Request | None = None, fatal: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.request = request
        self.fatal = fatal

    @property
    def can_answer(self) -> bool:
        """Whether a 400 can be built for the request and routed back to its sender."""
        request = self.request
        if request is None or request.method == "ACK":  # an ACK is never answered
            return False
        try:
            _ = (request.vias[0], request.cseq, request.call_id, request.from_addr, request.to_addr)
        except (SipParseError, IndexError):
            return False
        return True


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


_TOKEN = re.compile(r"[A-Za-z0-9\-.!%*_+`'~]+")
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")  # CTLs but HTAB (RFC 3261 TEXT-UTF8)
# An unquoted parameter value: token, host or IPv6 reference (RFC 3261 gen-value), a bit wider.
_BARE_VALUE = re.compile(r"[!#$%&'*+\-./0-9:?@A-Z\[\]^_`a-z{|}~]+")
_QUOTED = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)

Params = tuple[tuple[str, str | None], ...]  # ordered; None is a flag parameter such as ;lr


def is_token(text: str) -> bool:
    return _TOKEN.fullmatch(text) is not None


def quote(text: str) -> str:
    """``text`` as a quoted-string."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def unquote(text: str) -> str:
    """The content of a quoted-string, or ``text`` itself when it is not quoted."""
    if len(text) >= 2 and text[0] == text[-1] == '"':
        return re.sub(r"\\(.)", r"\1", text[1:-1], flags=re.DOTALL)
    return text


def _split_outside(text: str, separator: str, *, angles: bool = True) -> list[str]:
    """Split on ``separator`` where it is neither inside a quoted-string nor inside <...>."""
    if '"' not in text and "<" not in text and ">" not in text:
        return text.split(separator)
    parts: list[str] = []
    start = 0
    in_quotes = in_angles = False
    i = 0
    while i < len(text):
        char = text[i]
        if in_quotes:
            if char == "\\":
                i += 1
            elif char == '"':
                in_quotes = False
        elif char == '"':
            in_quotes = True
        elif angles and char == "<":
            if in_angles:
                raise SipParseError("'<' inside <...>")
            in_angles = True
        elif angles and char == ">":
            if not in_angles:
                raise SipParseError("'>' without '<'")
            in_angles = False
        elif char == separator and not in_angles:
            parts.append(text[start:i])
            start = i + 1
        i += 1
    if in_quotes:
        raise SipParseError("unterminated quoted string")
    if in_angles:
        raise SipParseError("unterminated <...>")
    parts.append(text[start:])
    return parts


def split_header_values(value: str) -> list[str]:
    """The elements of a comma-separated header (Via, Contact, Route, Allow...), stripped.

    Not for WWW-Authenticate and friends, whose parameters are comma-separated too."""
    return [part.strip() for part in _split_outside(value, ",") if part.strip()]


def _parse_params(text: str) -> Params:
    """``;name=value;flag`` header parameters (RFC 3261 generic-param), values kept raw."""
    text = text.strip()
    if not text:
        return ()
    if text[0] != ";":
        raise SipParseError(f"expected ';' before parameters, got {text[:20]!r}")
    params: list[tuple[str, str | None]] = []
    for part in _split_outside(text[1:], ";"):
        name, equals, value = part.partition("=")
        name, value = name.strip(), value.strip()
        if not is_token(name):
            raise SipParseError(f"bad parameter name {name[:20]!r}")
        if not equals:
            params.append((name, None))
        elif _BARE_VALUE.fullmatch(value) or _QUOTED.fullmatch(value):
            params.append((name, value))
        else:
            raise SipParseError(f"bad value for parameter {name!r}")
    return tuple(params)


def _format_params(params: Params) -> str:
    return "".join(f";{name}" if value is None else f";{name}={value}" for name, value in params)


def _find_param(params: Params, name: str) -> tuple[str, str | None] | None:
    lowered = name.lower()
    return next((item for item in params if item[0].lower() == lowered), None)


def _replace_param(params: Params, name: str, value: str | None) -> Params:
    lowered = name.lower()
    kept = tuple(item for item in params if item[0].lower() != lowered)
    return (*kept, (name, value))


class _WithParams:
    """Case-insensitive access to the ``params`` of a header-value record."""

    params: Params

    def has_param(self, name: str) -> bool:
        return _find_param(self.params, name) is not None

    def param(self, name: str) -> str | None:
        """The raw value (quotes included) of a parameter; None if absent or a flag."""
        found = _find_param(self.params, name)
        return None if found is None else found[1]


_HOSTNAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]*")


def _parse_hostport(text: str) -> tuple[str, int | None]:
    """``host[:port]`` with IPv6 references in brackets; the host comes back without them."""
    if text.startswith("["):
        inner, bracket, rest = text[1:].partition("]")
        try:
            ipaddress.IPv6Address(inner)
        except ValueError:
            raise SipParseError(f"bad IPv6 reference {text[:50]!r}") from None
        if not bracket or (rest and rest[0] != ":"):
            raise SipParseError(f"bad IPv6 reference {text[:50]!r}")
        host, port_text = inner, rest[1:] if rest else None
    else:
        host, colon, port_text_ = text.partition(":")
        port_text = port_text_ if colon else None
        if not _HOSTNAME.fullmatch(host):
            raise SipParseError(f"bad host {host[:50]!r}")
    return host, None if port_text is None else _port(port_text)


def _port(text: str) -> int:
    if not re.fullmatch(r"[0-9]{1,5}", text) or not 0 < int(text) < 65536:
        raise SipParseError(f"bad port {text[:10]!r}")
    return int(text)


def _format_hostport(host: str, port: int | None) -> str:
    shown = f"[{host}]" if ":" in host else host
    return shown if port is None else f"{shown}:{port}"


_URI_USER = re.compile(r"[^\s@<>\"\\:]+")  # RFC 3261 user, widened: phones send '#' unescaped
_URI_PARAM = re.compile(r"[A-Za-z0-9\-_.!~*'()%\[\]/:&+$]+")
_URI_HNAME = re.compile(r"[A-Za-z0-9\-_.!~*'()%\[\]/?:+$]+")
_URI_HVALUE = re.compile(r"[A-Za-z0-9\-_.!~*'()%\[\]/?:+$]*")


@dataclass(frozen=True)
class SipUri(_WithParams):
    """A sip: or sips: URI (RFC 3261 §19.1). A password in the userinfo is dropped on parse."""

    host: str  # IPv6 without brackets
    user: str | None = None  # kept escaped as written
    port: int | None = None
    scheme: str = "sip"
    params: Params = ()  # uri-parameters: transport, lr, user=phone...
    headers: tuple[tuple[str, str], ...] = ()

    @classmethod
    def parse(cls, text: str) -> SipUri:
        scheme, colon, rest = text.strip().partition(":")
        scheme = scheme.lower()
        if not colon or scheme not in ("sip", "sips"):
            raise SipParseError(f"not a sip: or sips: URI: {text[:50]!r}")
        user: str | None = None
        if "@" in rest:
            userinfo, _, rest = rest.partition("@")
            user = userinfo.partition(":")[0]
            if not _URI_USER.fullmatch(user):
                raise SipParseError(f"bad user part in {text[:50]!r}")
        rest, question, header_text = rest.partition("?")
        hostport, *param_parts = rest.split(";")
        host, port = _parse_hostport(hostport)
        params: list[tuple[str, str | None]] = []
        for part in param_parts:
            name, equals, value = part.partition("=")
            if not _URI_PARAM.fullmatch(name) or (equals and not _URI_PARAM.fullmatch(value)):
                raise SipParseError(f"bad URI parameter {part[:30]!r}")
            params.append((name, value if equals else None))
        headers: list[tuple[str, str]] = []
        for part in header_text.split("&") if question else ():
            name, equals, value = part.partition("=")
            if not equals or not _URI_HNAME.fullmatch(name) or not _URI_HVALUE.fullmatch(value):
                raise SipParseError(f"bad URI header {part[:30]!r}")
            headers.append((name, value))
        return cls(host, user, port, scheme, tuple(params), tuple(headers))

    def __str__(self) -> str:
        user = f"{self.user}@" if self.user is not None else ""
        text = f"{self.scheme}:{user}{_format_hostport(self.host, self.port)}"
        text += _format_params(self.params)
        if self.headers:
            text += "?" + "&".join(f"{name}={value}" for name, value in self.headers)
        return text

    def with_param(self, name: str, value: str | None = None) -> SipUri:
        return SipUri(
            self.host, self.user, self.port, self.scheme,
            _replace_param(self.params, name, value), self.headers,
        )  # fmt: skip


_ABSOLUTE_URI = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*:[^\s<>\"]+")


@dataclass(frozen=True)
class NameAddr(_WithParams):
    """From, To, Contact, Route...: ``"Display" <uri>;param=value`` (RFC 3261 §20.10).

    ``uri`` stays a string: carriers put tel: URIs in From. A Contact of ``*`` is not a
    name-addr; test the raw value for it first."""

    uri: str
    display_name: str | None = None  # unquoted; "" for an explicit empty quoted name
    params: Params = ()  # header parameters: tag, expires, q...

    @classmethod
    def parse(cls, text: str) -> NameAddr:
        text = text.strip()
        display: str | None = None
        if text.startswith('"'):
            quoted = _QUOTED.match(text)
            if quoted is None:
                raise SipParseError("unterminated display name")
            display = unquote(quoted.group())
            text = text[quoted.end() :].lstrip()
            if not text.startswith("<"):
                raise SipParseError("display name without <uri>")
        if "<" in text:
            before, _, after = text.partition("<")
            if display is None and before.strip():
                if '"' in before:
                    raise SipParseError("stray quote in display name")
                display = " ".join(before.split())
            uri, closed, rest = after.partition(">")
            if not closed:
                raise SipParseError("unterminated <uri>")
        else:  # addr-spec: parameters after it are header parameters (RFC 3261 §20)
            spec = re.match(r"[^;\s]*", text)
            uri = spec.group() if spec else ""
            rest = text[len(uri) :]
        if not _ABSOLUTE_URI.fullmatch(uri):
            raise SipParseError(f"bad URI {uri[:50]!r}")
        return cls(uri, display, _parse_params(rest))

    def __str__(self) -> str:
        name = "" if self.display_name is None else quote(self.display_name) + " "
        return f"{name}<{self.uri}>{_format_params(self.params)}"

    @property
    def tag(self) -> str | None:
        return self.param("tag")

    @property
    def sip_uri(self) -> SipUri:
        return SipUri.parse(self.uri)

    def with_param(self, name: str, value: str | None = None) -> NameAddr:
        return NameAddr(self.uri, self.display_name, _replace_param(self.params, name, value))


_VIA = re.compile(
    rf"\s*({_TOKEN.pattern})\s*/\s*({_TOKEN.pattern})\s*/\s*({_TOKEN.pattern})\s+([^;\s]+)\s*(.*)",
    re.DOTALL,
)


@dataclass(frozen=True)
class Via(_WithParams):
    """One Via element (RFC 3261 §20.42); rport may be a flag (RFC 3581)."""

    transport: str  # upper case: UDP, TCP, TLS...
    host: str  # IPv6 without brackets
    port: int | None = None
    params: Params = ()
    protocol: str = "SIP/2.0"

    @classmethod
    def parse(cls, text: str) -> Via:
        match = _VIA.fullmatch(text)
        if match is None:
            raise SipParseError(f"bad Via {text[:50]!r}")
        name, version, transport, sent_by, rest = match.groups()
        host, port = _parse_hostport(sent_by)
        via = cls(transport.upper(), host, port, _parse_params(rest), f"{name.upper()}/{version}")
        if (rport := via.param("rport")) is not None:
            _port(rport)
        return via

    def __str__(self) -> str:
        sent_by = _format_hostport(self.host, self.port)
        return f"{self.protocol}/{self.transport} {sent_by}{_format_params(self.params)}"

    @property
    def branch(self) -> str | None:
        return self.param("branch")

    @property
    def received(self) -> str | None:
        return self.param("received")

    @property
    def rport(self) -> int | None:
        """The port filled in by the server; None when absent or only requested (flag)."""
        value = self.param("rport")
        return None if value is None else int(value)

    def with_param(self, name: str, value: str | None = None) -> Via:
        params = _replace_param(self.params, name, value)
        return Via(self.transport, self.host, self.port, params, self.protocol)


@dataclass(frozen=True)
class CSeq:
    number: int
    method: str

    @classmethod
    def parse(cls, text: str) -> CSeq:
        match = re.fullmatch(rf"\s*([0-9]{{1,10}})\s+({_TOKEN.pattern})\s*", text)
        if match is None or int(match.group(1)) >= 2**31:  # RFC 3261 §8.1.1.5
            raise SipParseError(f"bad CSeq {text[:30]!r}")
        return cls(int(match.group(1)), match.group(2))

    def __str__(self) -> str:
        return f"{self.number} {self.method}"


@dataclass(frozen=True)
class AuthParams:
    """``Digest realm="x", nonce="y", ...``: a challenge or credentials (RFC 7235 auth-param).

    Values are stored unquoted; names are looked up case-insensitively."""

    scheme: str
    params: tuple[tuple[str, str], ...]

    @classmethod
    def parse(cls, text: str) -> AuthParams:
        match = re.fullmatch(rf"\s*({_TOKEN.pattern})\s+(.*)", text, re.DOTALL)
        if match is None:
            raise SipParseError("bad authentication header")
        params: list[tuple[str, str]] = []
        for part in _split_outside(match.group(2), ",", angles=False):
            if not part.strip():
                continue
            name, equals, value = part.partition("=")
            name, value = name.strip(), value.strip()
            if not equals or not is_token(name):
                raise SipParseError(f"bad authentication parameter {part.strip()[:30]!r}")
            if not (_QUOTED.fullmatch(value) or re.fullmatch(r'[^\s",]+', value)):
                raise SipParseError(f"bad value for authentication parameter {name!r}")
            if any(known.lower() == name.lower() for known, _ in params):
                raise SipParseError(f"authentication parameter {name!r} given twice")
            params.append((name, unquote(value)))
        return cls(match.group(1), tuple(params))

    def get(self, name: str) -> str | None:
        lowered = name.lower()
        return next((value for key, value in self.params if key.lower() == lowered), None)

    def to_string(self, bare: Collection[str] = ()) -> str:
        """Parameters named in ``bare`` are written unquoted when they are tokens."""
        bare_names = {name.lower() for name in bare}

        def one(name: str, value: str) -> str:
            shown = value if name.lower() in bare_names and is_token(value) else quote(value)
            return f"{name}={shown}"

        return f"{self.scheme} " + ", ".join(one(name, value) for name, value in self.params)


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
_REQUEST_LINE = re.compile(rf"({_TOKEN.pattern}) +(\S+) +[Ss][Ii][Pp]/2\.0")
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
            if not _ABSOLUTE_URI.fullmatch(message.uri):
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
