"""SDP (RFC 4566) as a fax gateway needs it: G.711 audio and T.38 over UDPTL, offered and answered
(RFC 3264) the way FreeSWITCH's mod_spandsp does, with T.38's own attributes (T.38 Annex D).

Pure: ``parse`` reads a body into records, ``build`` writes them back (CRLF), and the offer and
answer functions decide what we say. ``SdpError`` is a body we cannot read; its subclass
``SdpNegotiationError`` is a readable offer we cannot accept, which the SIP layer answers 488.
"""

from __future__ import annotations

import ipaddress
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


# -- what we offer, and how we answer ------------------------------------------------------------


@dataclass(frozen=True)
class AudioCaps:
    codecs: tuple[str, ...] = ("PCMU", "PCMA")  # our preference, first wins
    telephone_event: bool = True  # answer RFC 4733 events when offered (we ignore them)

    def __post_init__(self) -> None:
        if not self.codecs or not set(self.codecs) <= set(G711):
            raise ValueError(f"audio codecs must be PCMU and/or PCMA, not {self.codecs}")


@dataclass(frozen=True)
class AudioChoice:
    """What both ends use: the G.711 law and the payload types to send with."""

    payload_type: int
    encoding: str  # "PCMU" or "PCMA"
    event_payload_type: int | None = None


@dataclass(frozen=True)
class T38Caps:
    # T.38 version 0 unless configured: every T.38 implementation has it, our own offers use it,
    # and later versions only add V.34 (which spandsp 0.0.6's terminal lacks) and IFP encodings
    # where implementations disagree. spandsp encodes versions 0..3, hence the ceiling.
    max_version: int = 0
    max_bit_rate: int = 14400  # V.17; 9600 without it
    fill_bit_removal: bool = True
    max_buffer: int = 2000
    max_datagram: int = 400  # what we accept: FreeSWITCH's LOCAL_FAX_MAX_DATAGRAM
    redundancy: bool = True  # send secondary IFPs when the far end accepts error correction

    def __post_init__(self) -> None:
        if not 0 <= self.max_version <= 3:
            raise ValueError(f"T.38 version {self.max_version} not in 0..3")
        if not 2400 <= self.max_bit_rate <= 14400:
            raise ValueError(f"T38MaxBitRate {self.max_bit_rate} not in 2400..14400")


@dataclass(frozen=True)
class T38Choice:
    """The agreed T.38 session: what to configure spandsp and the UDPTL sender with."""

    version: int
    max_bit_rate: int
    fill_bit_removal: bool
    rate_management: RateManagement
    far_max_datagram: int  # every UDPTL datagram we send stays within this
    far_max_buffer: int
    redundancy: bool  # whether we send secondary IFPs


def offer_audio(
    origin: Origin, address: str, port: int, caps: AudioCaps = AudioCaps()
) -> SessionDescription:
    rtpmaps = [RtpMap(G711[codec], codec, 8000) for codec in caps.codecs]
    fmtps = []
    if caps.telephone_event:
        rtpmaps.append(RtpMap(101, "telephone-event", 8000))
        fmtps.append(Fmtp(101, "0-15"))
    media = AudioMedia(
        port,
        tuple(r.payload_type for r in rtpmaps),
        tuple(rtpmaps),
        tuple(fmtps),
        ptime=20,
        direction=Direction.SENDRECV,
    )
    return SessionDescription(origin, (media,), Connection.for_address(address))


def offer_t38(
    origin: Origin, address: str, port: int, caps: T38Caps = T38Caps()
) -> SessionDescription:
    params = T38Params(
        version=0,  # what every far end can answer; it may not answer higher than we offer
        max_bit_rate=caps.max_bit_rate,
        fill_bit_removal=caps.fill_bit_removal,
        rate_management=RateManagement.TRANSFERRED_TCF,  # the rule over UDP
        max_buffer=caps.max_buffer,
        max_datagram=caps.max_datagram,
        udp_ec=UdpEc.REDUNDANCY if caps.redundancy else UdpEc.NONE,
    )
    media = T38Media(port, params)
    return SessionDescription(origin, (media,), Connection.for_address(address))


def answer_direction(offered: Direction | None) -> Direction:
    return {
        Direction.SENDONLY: Direction.RECVONLY,
        Direction.RECVONLY: Direction.SENDONLY,
        Direction.INACTIVE: Direction.INACTIVE,
    }.get(offered or Direction.SENDRECV, Direction.SENDRECV)


def answer_audio(offer: AudioMedia, local: AudioCaps, port: int) -> tuple[AudioMedia, AudioChoice]:
    """Our answer to an audio stream: one G.711 law at 20 ms, or ``SdpNegotiationError``."""
    if offer.port == 0:
        raise SdpNegotiationError("the audio stream is refused by the offer itself")
    if offer.protocol.upper() != "RTP/AVP":
        raise SdpNegotiationError(f"audio over {offer.protocol} is not supported")
    if offer.maxptime is not None and offer.maxptime < 20:
        raise SdpNegotiationError(f"maxptime {offer.maxptime} is below our 20 ms packets")
    offered = _codecs(offer)
    chosen = next(((pt, c) for c in local.codecs for pt, name in offered if name == c), None)
    if chosen is None:
        names = " ".join(name for _, name in offered) or "none"
        raise SdpNegotiationError(f"no common codec: G.711 offered: {names}")
    pt, encoding = chosen
    rtpmaps = [RtpMap(pt, encoding, 8000)]
    fmtps = []
    event = _telephone_event(offer) if local.telephone_event else None
    if event is not None:
        rtpmaps.append(RtpMap(event, "telephone-event", 8000))
        fmtps.append(Fmtp(event, "0-15"))
    media = AudioMedia(
        port,
        tuple(r.payload_type for r in rtpmaps),
        tuple(rtpmaps),
        tuple(fmtps),
        ptime=20,
        direction=answer_direction(offer.direction),
    )
    return media, AudioChoice(pt, encoding, event)


def accept_audio_answer(answer: AudioMedia) -> AudioChoice:
    """What to send with, from the far end's answer to our audio offer."""
    codecs = _codecs(answer)
    if answer.port == 0 or not codecs:
        raise SdpNegotiationError("the far end accepted no G.711 audio")
    pt, encoding = codecs[0]
    return AudioChoice(pt, encoding, _telephone_event(answer))


def answer_t38(offer: T38Params, local: T38Caps = T38Caps()) -> tuple[T38Params, T38Choice]:
    """Our answer to a T.38 offer, as FreeSWITCH's negotiate_t38 gives it, and the agreement.

    Where we differ: the flags are answered only when offered (FreeSWITCH answers fill-bit
    removal regardless, then needs an exception for Cisco), the bit rate is never above the
    offer's, and the rate management is answered as offered, localTCF included: the offerer will
    behave as it said whatever we answer, Annex D (as we read it) has the answer repeat it, and
    spandsp implements both methods.
    """
    version = min(offer.version, local.max_version)
    bit_rate = min(offer.max_bit_rate or local.max_bit_rate, local.max_bit_rate)
    fill_bit_removal = offer.fill_bit_removal and local.fill_bit_removal
    rate_management = offer.rate_management or RateManagement.TRANSFERRED_TCF
    udp_ec = offer.udp_ec
    if udp_ec in (UdpEc.REDUNDANCY, UdpEc.FEC):
        # We read FEC but send redundancy, as FreeSWITCH and Asterisk answer: parity carries no
        # lengths, so a rebuilt IFP may end in padding that spandsp's IFP decoder refuses.
        udp_ec = UdpEc.REDUNDANCY if local.redundancy else UdpEc.NONE
    answer = T38Params(
        version=version,
        max_bit_rate=bit_rate,
        fill_bit_removal=fill_bit_removal,
        rate_management=rate_management,
        max_buffer=local.max_buffer,
        max_datagram=local.max_datagram,
        udp_ec=udp_ec,
        flags_as_values=offer.flags_as_values,
    )
    choice = _t38_choice(offer, version, bit_rate, fill_bit_removal, rate_management, udp_ec)
    return answer, choice


def accept_t38_answer(offer: T38Params, answer: T38Params) -> T38Choice:
    """The agreement, from the far end's answer to our T.38 offer: never more than we offered."""
    bit_rate = min(answer.max_bit_rate or offer.max_bit_rate or 14400, offer.max_bit_rate or 14400)
    return _t38_choice(
        answer,
        min(answer.version, offer.version),
        bit_rate,
        answer.fill_bit_removal and offer.fill_bit_removal,
        answer.rate_management or offer.rate_management or RateManagement.TRANSFERRED_TCF,
        answer.udp_ec if offer.udp_ec not in (None, UdpEc.NONE) else UdpEc.NONE,
    )


def _t38_choice(
    far: T38Params,
    version: int,
    bit_rate: int,
    fill_bit_removal: bool,
    rate_management: RateManagement,
    udp_ec: UdpEc | None,
) -> T38Choice:
    far_datagram = far.max_datagram or FAR_MAX_DATAGRAM_DEFAULT
    return T38Choice(
        version=version,
        max_bit_rate=bit_rate,
        fill_bit_removal=fill_bit_removal,
        rate_management=rate_management,
        far_max_datagram=min(far_datagram, FAR_MAX_DATAGRAM_LIMIT),
        far_max_buffer=far.max_buffer or 2000,
        redundancy=udp_ec in (UdpEc.REDUNDANCY, UdpEc.FEC),
    )


def _codecs(media: AudioMedia) -> list[tuple[int, str]]:
    """The G.711 payload types of a stream, in its order: by rtpmap, else by static number."""
    rtpmaps = {r.payload_type: r for r in media.rtpmaps}
    static = {pt: name for name, pt in G711.items()}
    found = []
    for pt in media.payload_types:
        rtpmap = rtpmaps.get(pt)
        if rtpmap is None:
            name = static.get(pt)
        elif rtpmap.clock_rate == 8000 and rtpmap.channels in (None, 1):
            name = rtpmap.encoding.upper()
        else:
            name = None
        if name in G711:
            found.append((pt, name))
    return found


def _telephone_event(media: AudioMedia) -> int | None:
    rtpmaps = {r.payload_type: r for r in media.rtpmaps}
    for pt in media.payload_types:
        rtpmap = rtpmaps.get(pt)
        if rtpmap and rtpmap.encoding.lower() == "telephone-event" and rtpmap.clock_rate == 8000:
            return pt
    return None


# -- reading an offer ----------------------------------------------------------------------------


def find_t38(session: SessionDescription) -> T38Media | None:
    return next((m for m in session.media if isinstance(m, T38Media) and m.port), None)


def find_audio(session: SessionDescription) -> AudioMedia | None:
    return next((m for m in session.media if isinstance(m, AudioMedia) and m.port), None)


def is_t38_switch(session: SessionDescription) -> bool:
    """Whether an offer asks for T.38: an image stream it does not itself refuse."""
    return find_t38(session) is not None


def media_endpoint(session: SessionDescription, media: Media) -> tuple[str, int]:
    """Where to send a stream: its own c= address, else the session's, and its port."""
    connection = media.connection or session.connection
    if connection is None:
        raise SdpError("no connection address")
    if media.port == 0:
        raise SdpError("the stream is refused (port 0)")
    try:
        address = ipaddress.ip_address(connection.address)
    except ValueError as exc:
        raise SdpError(f"{connection.address[:60]!r} is not a unicast IP address") from exc
    if address.is_multicast:
        raise SdpError(f"{address} is a multicast address")
    return str(address), media.port


def rejected(media: Media) -> Media:
    """The answer's copy of a stream we refuse: the same m= line with port 0 (RFC 3264 §6)."""
    if isinstance(media, AudioMedia):
        return AudioMedia(0, media.payload_types, protocol=media.protocol)
    if isinstance(media, T38Media):
        return T38Media(0)
    return OtherMedia(media.media, 0, media.protocol, media.formats)


def build_answer(
    offer: SessionDescription, origin: Origin, address: str, accepted: Mapping[int, Media]
) -> SessionDescription:
    """An answer with one stream per offered stream, in order (RFC 3264 §6): those at the given
    indexes of ``offer.media`` accepted, every other one refused."""
    media = tuple(
        accepted[index] if index in accepted else rejected(offered)
        for index, offered in enumerate(offer.media)
    )
    return SessionDescription(origin, media, Connection.for_address(address))
