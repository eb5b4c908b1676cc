"""What we offer, how we answer an offer and how we read an answer, for G.711 and T.38 (RFC
3264), the way FreeSWITCH's mod_spandsp does, claiming only what we do."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass

from gateway.sip.sdp.text import (
    FAR_MAX_DATAGRAM_DEFAULT,
    FAR_MAX_DATAGRAM_LIMIT,
    G711,
    AudioMedia,
    Connection,
    Direction,
    Fmtp,
    Media,
    Origin,
    OtherMedia,
    RateManagement,
    RtpMap,
    SdpError,
    SdpNegotiationError,
    SessionDescription,
    T38Media,
    T38Params,
    UdpEc,
)

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
