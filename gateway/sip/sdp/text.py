"""SDP records and their text: ``parse`` reads a body (bounded, one specific error), ``build``
writes it back with CRLF line ends."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any, TypeVar

MAX_BODY = 16 * 1024
MAX_MEDIA = 20
FAR_MAX_DATAGRAM_DEFAULT = 400  # assumed when an offer omits T38FaxMaxDatagram (as Asterisk does)
FAR_MAX_DATAGRAM_LIMIT = 1400  # and never more: larger datagrams fragment on a 1500-octet path
G711 = {"PCMU": 0, "PCMA": 8}  # static payload types (RFC 3551)

_E = TypeVar("_E")


class SdpError(ValueError):
    """A body that is not SDP we can read."""


class SdpNegotiationError(SdpError):
    """A readable offer with nothing we can accept (SIP 488 Not Acceptable Here)."""


class Direction(StrEnum):
    SENDRECV = "sendrecv"
    SENDONLY = "sendonly"
    RECVONLY = "recvonly"
    INACTIVE = "inactive"


class RateManagement(StrEnum):
    LOCAL_TCF = "localTCF"
    TRANSFERRED_TCF = "transferredTCF"


class UdpEc(StrEnum):
    NONE = "t38UDPNoEC"
    REDUNDANCY = "t38UDPRedundancy"
    FEC = "t38UDPFEC"


_DIRECTIONS = frozenset(d.value for d in Direction)


@dataclass(frozen=True)
class Origin:
    """The ``o=`` line; ``version`` must grow with every new offer in a dialog (RFC 3264 §8)."""

    username: str
    session_id: int
    version: int
    address: str
    addr_type: str = "IP4"

    def next_version(self) -> Origin:
        return replace(self, version=self.version + 1)


@dataclass(frozen=True)
class Connection:
    address: str
    addr_type: str = "IP4"

    @classmethod
    def for_address(cls, address: str) -> Connection:
        return cls(address, "IP6" if ":" in address else "IP4")


@dataclass(frozen=True)
class RtpMap:
    payload_type: int
    encoding: str
    clock_rate: int
    channels: int | None = None


@dataclass(frozen=True)
class Fmtp:
    payload_type: int
    params: str


@dataclass(frozen=True)
class AudioMedia:
    port: int
    payload_types: tuple[int, ...]
    rtpmaps: tuple[RtpMap, ...] = ()
    fmtps: tuple[Fmtp, ...] = ()
    ptime: int | None = None
    maxptime: int | None = None
    direction: Direction | None = None
    connection: Connection | None = None
    protocol: str = "RTP/AVP"
    attributes: tuple[str, ...] = ()  # other a= lines, verbatim after "a="


@dataclass(frozen=True)
class T38Params:
    version: int = 0
    max_bit_rate: int | None = None
    fill_bit_removal: bool = False
    transcoding_mmr: bool = False
    transcoding_jbig: bool = False
    rate_management: RateManagement | None = None
    max_buffer: int | None = None
    max_datagram: int | None = None
    udp_ec: UdpEc | None = None
    # Annex D writes the three flags bare (present = true); some boxes want ":1" and ":0".
    flags_as_values: bool = False


@dataclass(frozen=True)
class T38Media:
    port: int
    params: T38Params = T38Params()
    connection: Connection | None = None
    direction: Direction | None = None
    attributes: tuple[str, ...] = ()


@dataclass(frozen=True)
class OtherMedia:
    """A stream we do not handle (video, T.38 over TCP, ...), kept so an answer can refuse it."""

    media: str
    port: int
    protocol: str
    formats: tuple[str, ...]
    connection: Connection | None = None
    attributes: tuple[str, ...] = ()


Media = AudioMedia | T38Media | OtherMedia


@dataclass(frozen=True)
class SessionDescription:
    origin: Origin
    media: tuple[Media, ...] = ()
    connection: Connection | None = None
    session_name: str = "-"
    timing: str = "0 0"
    attributes: tuple[str, ...] = ()


# -- parse ---------------------------------------------------------------------------------------

_FLAGS = {
    "t38faxfillbitremoval": "fill_bit_removal",
    "t38faxtranscodingmmr": "transcoding_mmr",
    "t38faxtranscodingjbig": "transcoding_jbig",
}
_NUMBERS = {
    "t38faxversion": "version",
    "t38maxbitrate": "max_bit_rate",
    "t38faxmaxbuffer": "max_buffer",
    "t38faxmaxdatagram": "max_datagram",
}
_RATE_MANAGEMENT = {
    "localtcf": RateManagement.LOCAL_TCF,
    "localtfc": RateManagement.LOCAL_TCF,  # rtpengine's spelling
    "transferredtcf": RateManagement.TRANSFERRED_TCF,
}
_UDP_EC = {
    "t38udpnoec": UdpEc.NONE,
    "none": UdpEc.NONE,
    "t38udpredundancy": UdpEc.REDUNDANCY,
    "t38udpfec": UdpEc.FEC,
}


def parse(body: str | bytes) -> SessionDescription:
    """Read a body; CRLF or LF, unknown line types ignored, unknown attributes kept verbatim."""
    if len(body) > MAX_BODY:
        raise SdpError(f"SDP body over {MAX_BODY} octets")
    if isinstance(body, bytes):
        try:
            body = body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise SdpError("SDP body is not UTF-8") from exc
    lines = []
    for number, raw in enumerate(body.split("\n"), 1):
        line = raw.rstrip("\r\t ")
        if not line:
            continue
        if len(line) < 2 or line[1] != "=" or not "a" <= line[0] <= "z":
            raise SdpError(f"SDP line {number} is not <type>=<value>: {line[:40]!r}")
        lines.append((line[0], line[2:]))
    if not lines or lines[0] != ("v", "0"):
        raise SdpError("SDP does not start with v=0")
    sections: list[list[tuple[str, str]]] = [[]]
    for kind, value in lines[1:]:
        if kind == "m":
            if len(sections) > MAX_MEDIA:
                raise SdpError(f"more than {MAX_MEDIA} media streams")
            sections.append([])
        sections[-1].append((kind, value))
    return _session(sections[0], [_media(section) for section in sections[1:]])


def _session(lines: list[tuple[str, str]], media: list[Media]) -> SessionDescription:
    origin: Origin | None = None
    connection: Connection | None = None
    name, timing = "-", None
    attributes: list[str] = []
    direction = None
    for kind, value in lines:
        if kind == "o":
            origin = _origin(value)
        elif kind == "c":
            connection = _connection(value)
        elif kind == "s":
            name = value
        elif kind == "t" and timing is None:
            timing = value
        elif kind == "a" and value in _DIRECTIONS:
            direction = Direction(value)
        elif kind == "a":
            attributes.append(value)
    if origin is None:
        raise SdpError("SDP has no o= line")
    if direction is not None:  # a session-level direction is the default of every stream
        media = [
            replace(m, direction=direction)
            if not isinstance(m, OtherMedia) and m.direction is None
            else m
            for m in media
        ]
    for m in media:
        if m.port and m.connection is None and connection is None:
            raise SdpError(f"no connection address (c=) for the stream on port {m.port}")
    return SessionDescription(
        origin, tuple(media), connection, name, timing or "0 0", tuple(attributes)
    )


def _origin(value: str) -> Origin:
    fields = value.split()
    if len(fields) != 6 or fields[3] != "IN":
        raise SdpError(f"bad o= line: {value[:80]!r}")
    session_id = _int(fields[1], "o= session id", 10**30)  # NTP-style ids pass 2**63
    version = _int(fields[2], "o= session version", 10**30)
    return Origin(fields[0], session_id, version, fields[5], _addr_type(fields[4]))


def _connection(value: str) -> Connection:
    fields = value.split()
    if len(fields) != 3 or fields[0] != "IN":
        raise SdpError(f"bad c= line: {value[:80]!r}")
    return Connection(fields[2], _addr_type(fields[1]))


def _addr_type(text: str) -> str:
    if text not in ("IP4", "IP6"):
        raise SdpError(f"unknown address type {text[:20]!r}")
    return text


def _int(text: str, what: str, maximum: int = 2**31 - 1) -> int:
    if not _is_int(text, maximum):
        raise SdpError(f"{what}: {text[:20]!r} is not a number up to {maximum}")
    return int(text)


def _is_int(text: str, maximum: int) -> bool:
    # Length first: int() of thousands of digits is slow, then refused by Python itself.
    digits = text.isascii() and text.isdigit() and len(text) <= len(str(maximum))
    return digits and int(text) <= maximum


def _media(lines: list[tuple[str, str]]) -> Media:
    fields = lines[0][1].split()
    if len(fields) < 4:
        raise SdpError(f"bad m= line: {lines[0][1][:80]!r}")
    kind, port_field, protocol, formats = fields[0], fields[1], fields[2], tuple(fields[3:])
    port = _int(port_field.split("/")[0], "m= port", 65535)
    connection = None
    attributes = []
    for line_kind, value in lines[1:]:
        if line_kind == "c":
            connection = _connection(value)
        elif line_kind == "a":
            attributes.append(value)
    if kind == "audio" and protocol.upper().startswith("RTP/"):
        return _audio(port, protocol, formats, connection, attributes)
    if kind == "image" and protocol.lower() == "udptl" and [f.lower() for f in formats] == ["t38"]:
        return _t38(port, connection, attributes)
    return OtherMedia(kind, port, protocol, formats, connection, tuple(attributes))


def _audio(
    port: int,
    protocol: str,
    formats: tuple[str, ...],
    connection: Connection | None,
    attributes: list[str],
) -> AudioMedia:
    payload_types = tuple(_int(f, "payload type", 127) for f in formats)
    rtpmaps, fmtps, other = [], [], []
    ptime = maxptime = None
    direction = None
    for attribute in attributes:
        name, _, value = attribute.partition(":")
        if name == "rtpmap":
            rtpmaps.append(_rtpmap(value))
        elif name == "fmtp":
            pt, _, params = value.partition(" ")
            fmtps.append(Fmtp(_int(pt, "fmtp payload type", 127), params.strip()))
        elif name == "ptime" and _is_int(value, 1000):
            ptime = int(value)
        elif name == "maxptime" and _is_int(value, 1000):
            maxptime = int(value)  # an odd one ("20.0") is only a hint: kept verbatim below
        elif attribute in _DIRECTIONS:
            direction = Direction(attribute)
        else:
            other.append(attribute)
    return AudioMedia(
        port=port,
        payload_types=payload_types,
        rtpmaps=tuple(rtpmaps),
        fmtps=tuple(fmtps),
        ptime=ptime,
        maxptime=maxptime,
        direction=direction,
        connection=connection,
        protocol=protocol,
        attributes=tuple(other),
    )


def _rtpmap(value: str) -> RtpMap:
    pt, _, codec = value.partition(" ")
    parts = codec.strip().split("/")
    if len(parts) not in (2, 3) or not parts[0]:
        raise SdpError(f"bad rtpmap: {value[:80]!r}")
    channels = _int(parts[2], "rtpmap channels", 255) if len(parts) == 3 else None
    rate = _int(parts[1], "rtpmap clock rate")
    return RtpMap(_int(pt, "rtpmap payload type", 127), parts[0], rate, channels)


def _t38(port: int, connection: Connection | None, attributes: list[str]) -> T38Media:
    values: dict[str, Any] = {}
    direction = None
    other = []
    for attribute in attributes:
        name, colon, value = attribute.partition(":")
        key, value = name.lower(), value.strip()
        if key in _FLAGS:
            if colon and value not in ("0", "1"):
                raise SdpError(f"{name}: {value[:20]!r} is neither 0 nor 1")
            values[_FLAGS[key]] = value != "0"
            values["flags_as_values"] = values.get("flags_as_values", False) or bool(colon)
        elif key in _NUMBERS:
            values[_NUMBERS[key]] = _int(value, name)
        elif key == "t38faxratemanagement":
            values["rate_management"] = _enum(_RATE_MANAGEMENT, name, value)
        elif key == "t38faxudpec":
            values["udp_ec"] = _enum(_UDP_EC, name, value)
        elif attribute in _DIRECTIONS:
            direction = Direction(attribute)
        else:
            other.append(attribute)
    params = T38Params(**values)
    return T38Media(port, params, connection, direction, tuple(other))


def _enum(table: Mapping[str, _E], name: str, value: str) -> _E:
    if value.lower() not in table:
        raise SdpError(f"{name}: unknown value {value[:30]!r}")
    return table[value.lower()]


# -- build ---------------------------------------------------------------------------------------


def build(session: SessionDescription) -> str:
    o = session.origin
    lines = [
        "v=0",
        f"o={o.username} {o.session_id} {o.version} IN {o.addr_type} {o.address}",
        f"s={session.session_name}",
        *_connection_lines(session.connection),
        f"t={session.timing}",
        *(f"a={a}" for a in session.attributes),
    ]
    if len(session.media) > MAX_MEDIA:
        raise SdpError(f"more than {MAX_MEDIA} media streams")
    for media in session.media:
        if not 0 <= media.port <= 65535:
            raise SdpError(f"port {media.port} out of range")
        lines += _media_lines(media)
    # Everything but the fixed words comes from configuration or the far end: no line breaks.
    if any("\r" in line or "\n" in line or "\0" in line for line in lines):
        raise SdpError("an SDP value contains a line break")
    return "\r\n".join(lines) + "\r\n"


def _connection_lines(connection: Connection | None) -> list[str]:
    return [f"c=IN {connection.addr_type} {connection.address}"] if connection else []


def _media_lines(media: Media) -> list[str]:
    if isinstance(media, OtherMedia):
        head = f"m={media.media} {media.port} {media.protocol} {' '.join(media.formats)}"
        return [head, *_connection_lines(media.connection), *(f"a={a}" for a in media.attributes)]
    if isinstance(media, AudioMedia):
        formats = " ".join(str(pt) for pt in media.payload_types)
        lines = [f"m=audio {media.port} {media.protocol} {formats}"]
        attributes = [_rtpmap_text(r) for r in media.rtpmaps]
        attributes += [f"fmtp:{f.payload_type} {f.params}" for f in media.fmtps]
        attributes += [f"ptime:{media.ptime}"] if media.ptime is not None else []
        attributes += [f"maxptime:{media.maxptime}"] if media.maxptime is not None else []
    else:
        lines = [f"m=image {media.port} udptl t38"]
        attributes = _t38_attributes(media.params)
    attributes += [media.direction.value] if media.direction else []
    attributes += media.attributes
    return [*lines, *_connection_lines(media.connection), *(f"a={a}" for a in attributes)]


def _rtpmap_text(rtpmap: RtpMap) -> str:
    channels = f"/{rtpmap.channels}" if rtpmap.channels is not None else ""
    return f"rtpmap:{rtpmap.payload_type} {rtpmap.encoding}/{rtpmap.clock_rate}{channels}"


def _t38_attributes(p: T38Params) -> list[str]:
    out = [f"T38FaxVersion:{p.version}"]
    if p.max_bit_rate is not None:
        out.append(f"T38MaxBitRate:{p.max_bit_rate}")
    for name, on in (
        ("T38FaxFillBitRemoval", p.fill_bit_removal),
        ("T38FaxTranscodingMMR", p.transcoding_mmr),
        ("T38FaxTranscodingJBIG", p.transcoding_jbig),
    ):
        if p.flags_as_values:
            out.append(f"{name}:{int(on)}")
        elif on:
            out.append(name)
    if p.rate_management is not None:
        out.append(f"T38FaxRateManagement:{p.rate_management.value}")
    if p.max_buffer is not None:
        out.append(f"T38FaxMaxBuffer:{p.max_buffer}")
    if p.max_datagram is not None:
        out.append(f"T38FaxMaxDatagram:{p.max_datagram}")
    if p.udp_ec is not None:
        out.append(f"T38FaxUdpEC:{p.udp_ec.value}")
    return out
