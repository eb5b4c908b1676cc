"""SIP header values (RFC 3261 §7.3, §19.1, §20, §25; RFC 3581; RFC 7235): parse and format.

Pure: no I/O. Message records keep header values as strings (a proxy's Via or Record-Route must
go back byte for byte); these records parse and format them on demand: ``SipUri``, ``NameAddr``,
``Via``, ``CSeq``, ``AuthParams``, plus the token/quoting helpers. ``SipParseError`` lives here,
at the bottom of the SIP package, because both this module and ``gateway.sip.message`` raise it.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Collection
from dataclasses import dataclass
from typing import TYPE_CHECKING

from gateway.errors import SipError

if TYPE_CHECKING:  # the partial request an error carries; message.py imports us, not back
    from gateway.sip.message import Request


class SipParseError(SipError):
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


# RFC 3261 token; public for the request-line pattern of the parser.
TOKEN = re.compile(r"[A-Za-z0-9\-.!%*_+`'~]+")
# An unquoted parameter value: token, host or IPv6 reference (RFC 3261 gen-value), a bit wider.
_BARE_VALUE = re.compile(r"[!#$%&'*+\-./0-9:?@A-Z\[\]^_`a-z{|}~]+")
_QUOTED = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)

Params = tuple[tuple[str, str | None], ...]  # ordered; None is a flag parameter such as ;lr


def is_token(text: str) -> bool:
    return TOKEN.fullmatch(text) is not None


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


def format_hostport(host: str, port: int | None) -> str:
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
        text = f"{self.scheme}:{user}{format_hostport(self.host, self.port)}"
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


def is_absolute_uri(text: str) -> bool:
    """RFC 3261 absoluteURI, loosely: a scheme, a colon, no whitespace, quotes or angles."""
    return _ABSOLUTE_URI.fullmatch(text) is not None


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
        if not is_absolute_uri(uri):
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
    rf"\s*({TOKEN.pattern})\s*/\s*({TOKEN.pattern})\s*/\s*({TOKEN.pattern})\s+([^;\s]+)\s*(.*)",
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
        sent_by = format_hostport(self.host, self.port)
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
        match = re.fullmatch(rf"\s*([0-9]{{1,10}})\s+({TOKEN.pattern})\s*", text)
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
        match = re.fullmatch(rf"\s*({TOKEN.pattern})\s+(.*)", text, re.DOTALL)
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
