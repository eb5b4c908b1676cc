"""SDP: offers as real far ends send them, the answers we give field by field, our own offers
byte for byte, a build/parse round trip, and hostile bodies refused with SdpError."""

from __future__ import annotations

import contextlib
import string

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.sip.sdp import (
    MAX_BODY,
    AudioCaps,
    AudioChoice,
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
    T38Caps,
    T38Choice,
    T38Media,
    T38Params,
    UdpEc,
    accept_audio_answer,
    accept_t38_answer,
    answer_audio,
    answer_direction,
    answer_t38,
    build,
    build_answer,
    find_audio,
    find_t38,
    is_t38_switch,
    media_endpoint,
    offer_audio,
    offer_t38,
    parse,
    rejected,
)


def crlf(text: str) -> str:
    return text.strip("\n").replace("\n", "\r\n") + "\r\n"


OURS = Origin("fax-gateway", 1800000000, 1, "192.0.2.1")

# -- what far ends send (written from their SDP code and the RFCs) -------------------------------

FREESWITCH_AUDIO = crlf("""
v=0
o=FreeSWITCH 1733130000 1733130001 IN IP4 192.0.2.20
s=FreeSWITCH
c=IN IP4 192.0.2.20
t=0 0
m=audio 16384 RTP/AVP 0 8 101
a=rtpmap:0 PCMU/8000
a=rtpmap:8 PCMA/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-16
a=ptime:20
a=sendrecv
a=rtcp:16385 IN IP4 192.0.2.20
""")

FREESWITCH_T38 = crlf("""
v=0
o=FreeSWITCH 1733130000 1733130002 IN IP4 192.0.2.20
s=FreeSWITCH
c=IN IP4 192.0.2.20
t=0 0
m=image 16386 udptl t38
a=T38FaxVersion:0
a=T38MaxBitRate:14400
a=T38FaxFillBitRemoval
a=T38FaxRateManagement:transferredTCF
a=T38FaxMaxBuffer:2000
a=T38FaxMaxDatagram:400
a=T38FaxUdpEC:t38UDPRedundancy
""")

# Asterisk (res_pjsip_t38) writes no fill-bit removal unless configured, and no MaxBuffer;
# this one arrives with bare LF line ends, as some proxies rewrite bodies.
ASTERISK_T38 = """v=0
o=- 1996412151 1996412153 IN IP4 198.51.100.7
s=Asterisk
c=IN IP4 198.51.100.7
t=0 0
m=image 4010 udptl t38
a=T38FaxVersion:0
a=T38MaxBitRate:14400
a=T38FaxRateManagement:transferredTCF
a=T38FaxMaxDatagram:400
a=T38FaxUdpEC:t38UDPRedundancy
"""

# A Cisco IOS voice gateway: the flags as :0 values, small buffers, c= inside the media.
CISCO_AUDIO = crlf("""
v=0
o=CiscoSystemsSIP-GW-UserAgent 4063 1177 IN IP4 203.0.113.5
s=SIP Call
c=IN IP4 203.0.113.5
t=0 0
m=audio 17362 RTP/AVP 18 0 101 19
c=IN IP4 203.0.113.5
a=rtpmap:18 G729/8000
a=fmtp:18 annexb=no
a=rtpmap:0 PCMU/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-16
a=rtpmap:19 CN/8000
a=ptime:20
""")

CISCO_T38 = crlf("""
v=0
o=CiscoSystemsSIP-GW-UserAgent 4063 1178 IN IP4 203.0.113.5
s=SIP Call
c=IN IP4 203.0.113.5
t=0 0
m=image 17364 udptl t38
c=IN IP4 203.0.113.5
a=T38FaxVersion:0
a=T38MaxBitRate:9600
a=T38FaxFillBitRemoval:0
a=T38FaxTranscodingMMR:0
a=T38FaxTranscodingJBIG:0
a=T38FaxRateManagement:transferredTCF
a=T38FaxMaxBuffer:200
a=T38FaxMaxDatagram:320
a=T38FaxUdpEC:t38UDPRedundancy
""")

# A carrier's SBC offering audio and image at once in the first INVITE, the image stream on
# another media address, with T.38 version 3 / V.34 rates and FEC.
CARRIER_BOTH = crlf("""
v=0
o=sbc-7 8253 8253 IN IP4 198.51.100.50
s=SBC
c=IN IP4 198.51.100.50
t=0 0
m=audio 31000 RTP/AVP 8 0 18 101
a=rtpmap:8 PCMA/8000
a=rtpmap:0 PCMU/8000
a=rtpmap:18 G729/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-15
a=ptime:20
a=maxptime:40
a=sendrecv
m=image 31002 udptl t38
c=IN IP4 198.51.100.51
a=T38FaxVersion:3
a=T38MaxBitRate:33600
a=T38FaxRateManagement:transferredTCF
a=T38FaxMaxBuffer:262
a=T38FaxMaxDatagram:176
a=T38FaxUdpEC:t38UDPFEC
a=T38FaxUdpECDepth:1 3
a=T38VendorInfo:0 0 0
""")

# rtpengine gatewaying with its local_tcf option (and its spelling of it).
RTPENGINE_T38 = crlf("""
v=0
o=- 1 2 IN IP4 127.0.0.1
s=rtpengine
c=IN IP4 127.0.0.1
t=0 0
m=image 30000 udptl t38
a=T38FaxVersion:0
a=T38MaxBitRate:14400
a=T38FaxRateManagement:localTFC
a=T38FaxMaxBuffer:1800
a=T38FaxMaxDatagram:512
a=T38FaxUdpEC:t38UDPNoEC
""")


def test_a_freeswitch_audio_offer_reads_field_by_field() -> None:
    offer = parse(FREESWITCH_AUDIO)
    assert offer.origin == Origin("FreeSWITCH", 1733130000, 1733130001, "192.0.2.20")
    assert offer.session_name == "FreeSWITCH"
    assert offer.connection == Connection("192.0.2.20")
    assert offer.media == (
        AudioMedia(
            port=16384,
            payload_types=(0, 8, 101),
            rtpmaps=(
                RtpMap(0, "PCMU", 8000),
                RtpMap(8, "PCMA", 8000),
                RtpMap(101, "telephone-event", 8000),
            ),
            fmtps=(Fmtp(101, "0-16"),),
            ptime=20,
            direction=Direction.SENDRECV,
            attributes=("rtcp:16385 IN IP4 192.0.2.20",),
        ),
    )
    assert not is_t38_switch(offer)
    assert media_endpoint(offer, offer.media[0]) == ("192.0.2.20", 16384)


def test_we_answer_freeswitch_audio_with_pcmu_at_20ms_and_its_events() -> None:
    audio = find_audio(parse(FREESWITCH_AUDIO))
    assert audio is not None
    media, choice = answer_audio(audio, AudioCaps(), port=40000)
    assert choice == AudioChoice(0, "PCMU", 101)
    answer = build_answer(parse(FREESWITCH_AUDIO), OURS, "192.0.2.1", {0: media})
    assert build(answer) == crlf("""
v=0
o=fax-gateway 1800000000 1 IN IP4 192.0.2.1
s=-
c=IN IP4 192.0.2.1
t=0 0
m=audio 40000 RTP/AVP 0 101
a=rtpmap:0 PCMU/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-15
a=ptime:20
a=sendrecv
""")


def test_a_freeswitch_t38_reinvite_is_answered_as_freeswitch_would() -> None:
    offer = parse(FREESWITCH_T38)
    assert is_t38_switch(offer)
    t38 = find_t38(offer)
    assert t38 is not None
    assert t38.params == T38Params(
        version=0,
        max_bit_rate=14400,
        fill_bit_removal=True,
        rate_management=RateManagement.TRANSFERRED_TCF,
        max_buffer=2000,
        max_datagram=400,
        udp_ec=UdpEc.REDUNDANCY,
    )
    params, choice = answer_t38(t38.params)
    assert params == t38.params  # FreeSWITCH offers just what we would answer
    assert choice == T38Choice(
        version=0,
        max_bit_rate=14400,
        fill_bit_removal=True,
        rate_management=RateManagement.TRANSFERRED_TCF,
        far_max_datagram=400,
        far_max_buffer=2000,
        redundancy=True,
    )
    answer = build_answer(offer, OURS.next_version(), "192.0.2.1", {0: T38Media(40002, params)})
    assert build(answer) == crlf("""
v=0
o=fax-gateway 1800000000 2 IN IP4 192.0.2.1
s=-
c=IN IP4 192.0.2.1
t=0 0
m=image 40002 udptl t38
a=T38FaxVersion:0
a=T38MaxBitRate:14400
a=T38FaxFillBitRemoval
a=T38FaxRateManagement:transferredTCF
a=T38FaxMaxBuffer:2000
a=T38FaxMaxDatagram:400
a=T38FaxUdpEC:t38UDPRedundancy
""")


def test_an_asterisk_offer_with_lf_line_ends_and_no_buffer_or_fill_bits() -> None:
    offer = parse(ASTERISK_T38)
    t38 = find_t38(offer)
    assert t38 is not None
    assert t38.params.fill_bit_removal is False
    assert t38.params.max_buffer is None
    params, choice = answer_t38(t38.params)
    assert params.fill_bit_removal is False  # never answered when not offered
    assert params.max_buffer == 2000
    assert params.max_datagram == 400
    assert choice.far_max_buffer == 2000  # the far end's, assumed when absent
    assert choice.far_max_datagram == 400
    assert media_endpoint(offer, t38) == ("198.51.100.7", 4010)


def test_a_cisco_audio_offer_is_answered_with_pcmu_its_only_g711() -> None:
    offer = parse(CISCO_AUDIO)
    audio = find_audio(offer)
    assert audio is not None
    media, choice = answer_audio(audio, AudioCaps(codecs=("PCMA", "PCMU")), port=40000)
    assert choice == AudioChoice(0, "PCMU", 101)
    assert media.payload_types == (0, 101)
    assert media.direction is Direction.SENDRECV  # no direction offered means sendrecv


def test_a_cisco_t38_offer_gets_its_flags_back_as_values_and_its_limits_respected() -> None:
    offer = parse(CISCO_T38)
    t38 = find_t38(offer)
    assert t38 is not None
    assert t38.params.flags_as_values
    assert t38.params.fill_bit_removal is False
    params, choice = answer_t38(t38.params)
    assert params.max_bit_rate == 9600
    assert choice.max_bit_rate == 9600
    assert choice.far_max_datagram == 320
    assert choice.far_max_buffer == 200
    text = build(SessionDescription(OURS, (T38Media(40002, params),), Connection("192.0.2.1")))
    assert "a=T38FaxFillBitRemoval:0\r\n" in text
    assert "a=T38FaxTranscodingMMR:0\r\n" in text
    assert "a=T38FaxTranscodingJBIG:0\r\n" in text
    assert media_endpoint(offer, t38) == ("203.0.113.5", 17364)


def test_a_carrier_offering_audio_and_image_together_gets_t38_and_a_refused_audio_line() -> None:
    offer = parse(CARRIER_BOTH)
    assert is_t38_switch(offer)
    t38 = find_t38(offer)
    assert t38 is not None
    assert media_endpoint(offer, t38) == ("198.51.100.51", 31002)  # the stream's own c=
    assert t38.attributes == ("T38FaxUdpECDepth:1 3", "T38VendorInfo:0 0 0")
    params, choice = answer_t38(t38.params)
    assert params.version == 0  # capped at our version
    assert params.max_bit_rate == 14400  # no V.34 here
    assert params.udp_ec is UdpEc.REDUNDANCY  # FEC offered: we read it, but send redundancy
    assert choice.redundancy is True
    assert choice.far_max_datagram == 176
    answer = build_answer(offer, OURS, "192.0.2.1", {1: T38Media(40002, params)})
    text = build(answer)
    assert "m=audio 0 RTP/AVP 8 0 18 101\r\nm=image 40002 udptl t38\r\n" in text
    assert parse(text).media[0] == AudioMedia(0, (8, 0, 18, 101))


def test_t38_version_follows_the_configured_ceiling() -> None:
    t38 = find_t38(parse(CARRIER_BOTH))
    assert t38 is not None
    assert answer_t38(t38.params, T38Caps(max_version=3))[0].version == 3
    assert answer_t38(T38Params(version=1), T38Caps(max_version=3))[0].version == 1


def test_audio_preference_is_ours_not_the_offers() -> None:
    audio = find_audio(parse(CARRIER_BOTH))
    assert audio is not None
    assert answer_audio(audio, AudioCaps(), 1)[1].encoding == "PCMU"
    assert answer_audio(audio, AudioCaps(codecs=("PCMA", "PCMU")), 1)[1].encoding == "PCMA"
    assert answer_audio(audio, AudioCaps(codecs=("PCMA",)), 1)[1].payload_type == 8


def test_localtcf_is_answered_as_offered_even_in_rtpengines_spelling() -> None:
    t38 = find_t38(parse(RTPENGINE_T38))
    assert t38 is not None
    assert t38.params.rate_management is RateManagement.LOCAL_TCF
    assert t38.params.udp_ec is UdpEc.NONE
    params, choice = answer_t38(t38.params)
    assert params.rate_management is RateManagement.LOCAL_TCF
    assert choice.rate_management is RateManagement.LOCAL_TCF
    assert params.udp_ec is UdpEc.NONE
    assert choice.redundancy is False
    assert choice.far_max_datagram == 512


@pytest.mark.parametrize(
    ("offered", "caps", "answered", "redundancy"),
    [
        (UdpEc.REDUNDANCY, T38Caps(), UdpEc.REDUNDANCY, True),
        (UdpEc.FEC, T38Caps(), UdpEc.REDUNDANCY, True),
        (UdpEc.NONE, T38Caps(), UdpEc.NONE, False),
        (None, T38Caps(), None, False),
        (UdpEc.REDUNDANCY, T38Caps(redundancy=False), UdpEc.NONE, False),
    ],
)
def test_error_correction_answer(
    offered: UdpEc | None, caps: T38Caps, answered: UdpEc | None, redundancy: bool
) -> None:
    params, choice = answer_t38(T38Params(udp_ec=offered), caps)
    assert params.udp_ec == answered
    assert choice.redundancy is redundancy


def test_what_an_offer_leaves_out_is_answered_by_the_udp_rules() -> None:
    params, choice = answer_t38(T38Params())
    assert params.rate_management is RateManagement.TRANSFERRED_TCF
    assert params.max_bit_rate == 14400
    assert choice.far_max_datagram == 400


def test_fill_bit_removal_can_be_turned_off_and_mmr_and_jbig_never_answered() -> None:
    offer = T38Params(fill_bit_removal=True, transcoding_mmr=True, transcoding_jbig=True)
    params, _ = answer_t38(offer, T38Caps(fill_bit_removal=False))
    assert (params.fill_bit_removal, params.transcoding_mmr, params.transcoding_jbig) == (
        False,
        False,
        False,
    )


def test_a_far_max_datagram_past_the_mtu_is_capped() -> None:
    assert answer_t38(T38Params(max_datagram=65535))[1].far_max_datagram == 1400


def test_audio_answer_directions_mirror_the_offer() -> None:
    assert answer_direction(Direction.SENDONLY) is Direction.RECVONLY
    assert answer_direction(Direction.RECVONLY) is Direction.SENDONLY
    assert answer_direction(Direction.INACTIVE) is Direction.INACTIVE
    assert answer_direction(None) is Direction.SENDRECV
    held = AudioMedia(1, (0,), direction=Direction.SENDONLY)
    assert answer_audio(held, AudioCaps(), 2)[0].direction is Direction.RECVONLY


def test_a_session_level_direction_applies_to_streams_without_their_own() -> None:
    text = FREESWITCH_AUDIO.replace("a=sendrecv\r\n", "").replace(
        "t=0 0\r\n", "t=0 0\r\na=sendonly\r\n"
    )
    audio = find_audio(parse(text))
    assert audio is not None and audio.direction is Direction.SENDONLY


@pytest.mark.parametrize(
    ("media", "reason"),
    [
        (AudioMedia(1, (18,), (RtpMap(18, "G729", 8000),)), "no common codec"),
        (AudioMedia(1, (96,), (RtpMap(96, "PCMU", 16000),)), "no common codec"),
        (AudioMedia(1, (0,), protocol="RTP/SAVP"), "RTP/SAVP"),
        (AudioMedia(1, (0,), maxptime=10), "maxptime"),
        (AudioMedia(0, (0,)), "refused"),
    ],
)
def test_audio_we_cannot_take_is_a_negotiation_error(media: AudioMedia, reason: str) -> None:
    with pytest.raises(SdpNegotiationError, match=reason):
        answer_audio(media, AudioCaps(), 40000)


def test_g711_under_a_dynamic_payload_type_is_recognised() -> None:
    media = AudioMedia(1, (97,), (RtpMap(97, "pcma", 8000),))
    assert answer_audio(media, AudioCaps(), 2)[1] == AudioChoice(97, "PCMA", None)


def test_events_are_left_out_when_not_wanted() -> None:
    audio = find_audio(parse(FREESWITCH_AUDIO))
    assert audio is not None
    media, choice = answer_audio(audio, AudioCaps(telephone_event=False), 2)
    assert media.payload_types == (0,)
    assert choice.event_payload_type is None


# -- our own offers, and the far end's answers to them -------------------------------------------


def test_our_audio_offer() -> None:
    assert build(offer_audio(OURS, "192.0.2.1", 40000)) == crlf("""
v=0
o=fax-gateway 1800000000 1 IN IP4 192.0.2.1
s=-
c=IN IP4 192.0.2.1
t=0 0
m=audio 40000 RTP/AVP 0 8 101
a=rtpmap:0 PCMU/8000
a=rtpmap:8 PCMA/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-15
a=ptime:20
a=sendrecv
""")


def test_our_t38_offer_is_the_reference_notes_example() -> None:
    assert build(offer_t38(OURS, "2001:db8::1", 40002)) == crlf("""
v=0
o=fax-gateway 1800000000 1 IN IP4 192.0.2.1
s=-
c=IN IP6 2001:db8::1
t=0 0
m=image 40002 udptl t38
a=T38FaxVersion:0
a=T38MaxBitRate:14400
a=T38FaxFillBitRemoval
a=T38FaxRateManagement:transferredTCF
a=T38FaxMaxBuffer:2000
a=T38FaxMaxDatagram:400
a=T38FaxUdpEC:t38UDPRedundancy
""")


def test_the_far_ends_t38_answer_sets_what_we_send() -> None:
    ours = offer_t38(OURS, "192.0.2.1", 40002).media[0]
    assert isinstance(ours, T38Media)
    theirs = find_t38(parse(CISCO_T38))
    assert theirs is not None
    assert accept_t38_answer(ours.params, theirs.params) == T38Choice(
        version=0,
        max_bit_rate=9600,
        fill_bit_removal=False,
        rate_management=RateManagement.TRANSFERRED_TCF,
        far_max_datagram=320,
        far_max_buffer=200,
        redundancy=True,
    )


def test_a_t38_answer_never_raises_what_we_offered() -> None:
    ours = T38Params(version=0, max_bit_rate=9600, udp_ec=UdpEc.NONE)
    theirs = T38Params(version=3, max_bit_rate=14400, fill_bit_removal=True, udp_ec=UdpEc.FEC)
    choice = accept_t38_answer(ours, theirs)
    assert (choice.version, choice.max_bit_rate, choice.fill_bit_removal) == (0, 9600, False)
    assert choice.redundancy is False


def test_the_far_ends_audio_answer_sets_the_payload_types() -> None:
    answer = AudioMedia(5000, (8, 101), (RtpMap(101, "telephone-event", 8000),))
    assert accept_audio_answer(answer) == AudioChoice(8, "PCMA", 101)
    with pytest.raises(SdpNegotiationError):
        accept_audio_answer(AudioMedia(0, (0,)))
    with pytest.raises(SdpNegotiationError):
        accept_audio_answer(AudioMedia(5000, (18,)))


# -- helpers -------------------------------------------------------------------------------------


def test_a_refused_image_stream_is_no_t38_switch() -> None:
    offer = parse(FREESWITCH_T38.replace("m=image 16386", "m=image 0"))
    assert not is_t38_switch(offer)
    assert find_t38(offer) is None


def test_streams_we_do_not_know_are_kept_and_refused_in_the_answer() -> None:
    text = FREESWITCH_AUDIO + "m=video 5004 RTP/AVP 31\r\na=sendrecv\r\nm=image 5006 tcptl t38\r\n"
    offer = parse(text)
    assert offer.media[1] == OtherMedia("video", 5004, "RTP/AVP", ("31",), None, ("sendrecv",))
    assert offer.media[2] == OtherMedia("image", 5006, "tcptl", ("t38",))
    audio = find_audio(offer)
    assert audio is not None
    answer = build_answer(offer, OURS, "192.0.2.1", {0: answer_audio(audio, AudioCaps(), 9)[0]})
    assert [m.port for m in answer.media] == [9, 0, 0]
    assert "m=video 0 RTP/AVP 31\r\nm=image 0 tcptl t38\r\n" in build(answer)


@pytest.mark.parametrize(
    ("media", "line"),
    [
        (
            AudioMedia(
                1, (0, 8), (RtpMap(0, "PCMU", 8000),), ptime=20, direction=Direction.SENDRECV
            ),
            "m=audio 0 RTP/AVP 0 8\r\n",
        ),
        (T38Media(1, T38Params(max_datagram=400)), "m=image 0 udptl t38\r\na=T38FaxVersion:0\r\n"),
        (
            OtherMedia("video", 1, "RTP/AVP", ("31",), attributes=("sendrecv",)),
            "m=video 0 RTP/AVP 31\r\n",
        ),
    ],
)
def test_a_refused_stream_keeps_its_formats_and_nothing_else(media: Media, line: str) -> None:
    assert build(SessionDescription(OURS, (rejected(media),))).endswith("t=0 0\r\n" + line)


@pytest.mark.parametrize(
    ("connection", "reason"),
    [
        (Connection("gw.example.net"), "not a unicast IP address"),
        (Connection("224.2.1.1/127"), "not a unicast"),
        (Connection("ff02::1", "IP6"), "multicast"),
    ],
)
def test_media_endpoint_needs_a_unicast_address(connection: Connection, reason: str) -> None:
    session = SessionDescription(OURS, (AudioMedia(4000, (0,)),), connection)
    with pytest.raises(SdpError, match=reason):
        media_endpoint(session, session.media[0])


def test_media_endpoint_of_a_refused_or_unaddressed_stream_is_an_error() -> None:
    with pytest.raises(SdpError, match="port 0"):
        media_endpoint(SessionDescription(OURS, connection=Connection("192.0.2.9")), T38Media(0))
    with pytest.raises(SdpError, match="no connection"):
        media_endpoint(SessionDescription(OURS), T38Media(5))


def test_media_endpoint_prefers_the_streams_own_address() -> None:
    session = SessionDescription(OURS, connection=Connection("192.0.2.9"))
    media = T38Media(5, connection=Connection("2001:db8::7", "IP6"))
    assert media_endpoint(session, media) == ("2001:db8::7", 5)


def test_each_new_offer_in_a_dialog_has_the_next_version() -> None:
    assert OURS.next_version() == Origin("fax-gateway", 1800000000, 2, "192.0.2.1")


@pytest.mark.parametrize(
    "caps",
    [
        {"max_version": 4},
        {"max_version": -1},
        {"max_bit_rate": 33600},
        {"max_bit_rate": 0},
    ],
)
def test_t38_capabilities_out_of_range_are_refused(caps: dict[str, int]) -> None:
    with pytest.raises(ValueError):
        T38Caps(**caps)  # type: ignore[arg-type]


@pytest.mark.parametrize("codecs", [(), ("G729",), ("PCMU", "opus")])
def test_audio_capabilities_are_g711_only(codecs: tuple[str, ...]) -> None:
    with pytest.raises(ValueError):
        AudioCaps(codecs=codecs)


# -- hostile bodies ------------------------------------------------------------------------------

MINIMAL = "v=0\r\no=- 1 1 IN IP4 192.0.2.9\r\ns=-\r\nc=IN IP4 192.0.2.9\r\nt=0 0\r\n"


@pytest.mark.parametrize(
    "body",
    [
        pytest.param("", id="empty"),
        pytest.param("hello\r\n", id="not type=value"),
        pytest.param("v=1\r\n" + MINIMAL[5:], id="version 1"),
        pytest.param(MINIMAL.replace("v=0\r\n", ""), id="no v= first"),
        pytest.param(MINIMAL.replace("o=- 1 1 IN IP4 192.0.2.9\r\n", ""), id="no o="),
        pytest.param(MINIMAL.replace("o=- 1 1 IN", "o=- 1 IN"), id="short o="),
        pytest.param(MINIMAL.replace("o=- 1 1", "o=- x 1"), id="o= id not a number"),
        pytest.param(
            MINIMAL.replace("o=- 1 1", "o=- " + "9" * 5000 + " 1"), id="o= id of 5000 digits"
        ),
        pytest.param(MINIMAL.replace("c=IN IP4", "c=IN IPX"), id="unknown address type"),
        pytest.param(MINIMAL.replace("c=IN IP4 192.0.2.9", "c=IN IP4"), id="short c="),
        pytest.param(MINIMAL + "M=audio 1 RTP/AVP 0\r\n", id="upper-case type"),
        pytest.param(MINIMAL + "m=audio 70000 RTP/AVP 0\r\n", id="port out of range"),
        pytest.param(MINIMAL + "m=audio -1 RTP/AVP 0\r\n", id="negative port"),
        pytest.param(MINIMAL + "m=audio x RTP/AVP 0\r\n", id="port not a number"),
        pytest.param(MINIMAL + "m=audio 1 RTP/AVP\r\n", id="no formats"),
        pytest.param(MINIMAL + "m=audio 1 RTP/AVP 300\r\n", id="payload type over 127"),
        pytest.param(MINIMAL + "m=audio 1 RTP/AVP 0\r\na=rtpmap:0 PCMU\r\n", id="bad rtpmap"),
        pytest.param(MINIMAL + "m=image 1 udptl t38\r\na=T38FaxVersion:abc\r\n", id="bad version"),
        pytest.param(
            MINIMAL + "m=image 1 udptl t38\r\na=T38FaxMaxDatagram:99999999999999999999\r\n",
            id="huge number",
        ),
        pytest.param(
            MINIMAL + "m=image 1 udptl t38\r\na=T38FaxFillBitRemoval:yes\r\n", id="bad flag"
        ),
        pytest.param(
            MINIMAL + "m=image 1 udptl t38\r\na=T38FaxRateManagement:fast\r\n",
            id="bad rate management",
        ),
        pytest.param(MINIMAL + "m=image 1 udptl t38\r\na=T38FaxUdpEC:magic\r\n", id="bad EC"),
        pytest.param(
            MINIMAL.replace("c=IN IP4 192.0.2.9\r\n", "") + "m=audio 1 RTP/AVP 0\r\n",
            id="missing c=",
        ),
        pytest.param(MINIMAL + "m=audio 1 RTP/AVP 0\r\n" * 21, id="21 media"),
        pytest.param("v=0\r\n" + "a=" + "x" * MAX_BODY + "\r\n", id="over 16 KiB"),
    ],
)
def test_hostile_bodies_raise_sdp_error(body: str) -> None:
    with pytest.raises(SdpError):
        parse(body)


def test_bytes_that_are_not_utf8_raise_sdp_error() -> None:
    with pytest.raises(SdpError, match="UTF-8"):
        parse(MINIMAL.encode() + b"a=\xff\xfe\r\n")


def test_twenty_media_and_a_refused_stream_without_address_are_fine() -> None:
    offer = parse(MINIMAL + "m=audio 1 RTP/AVP 0\r\n" * 20)
    assert len(offer.media) == 20
    assert parse(MINIMAL.replace("c=IN IP4 192.0.2.9\r\n", "") + "m=audio 0 RTP/AVP 0\r\n")


def test_lines_of_unknown_types_and_trailing_blanks_are_ignored() -> None:
    body = (
        MINIMAL + "b=AS:64\r\nz=0 0\r\ny=whatever\r\nm=audio 1 RTP/AVP 0 \r\nb=TIAS:64000\r\n\r\n"
    )
    assert parse(body).media == (AudioMedia(1, (0,)),)


def test_an_odd_ptime_is_kept_as_it_came_not_refused() -> None:
    audio = find_audio(parse(MINIMAL + "m=audio 1 RTP/AVP 0\r\na=ptime:20.0\r\n"))
    assert audio is not None
    assert (audio.ptime, audio.attributes) == (None, ("ptime:20.0",))


@pytest.mark.parametrize("field", ["session_name", "address"])
def test_build_refuses_values_that_would_break_lines(field: str) -> None:
    if field == "session_name":
        session = SessionDescription(OURS, session_name="x\r\nm=audio 1 RTP/AVP 0")
    else:
        session = SessionDescription(OURS, connection=Connection("1.2.3.4\na=evil"))
    with pytest.raises(SdpError):
        build(session)


def test_build_refuses_a_port_out_of_range() -> None:
    with pytest.raises(SdpError):
        build(SessionDescription(OURS, (T38Media(65536),)))


line_types = st.sampled_from([*"vosictmab", "x", "M", " "])
line_values = st.one_of(
    st.text(max_size=40),
    st.sampled_from(
        [
            "0",
            "- 1 1 IN IP4 1.2.3.4",
            "IN IP4 1.2.3.4",
            "audio 9 RTP/AVP 0 8",
            "image 9 udptl t38",
            "rtpmap:0 PCMU/8000",
            "fmtp:101 0-15",
            "T38FaxFillBitRemoval:1",
            "T38FaxUdpEC:t38UDPFEC",
            "sendonly",
        ]
    ),
)


@given(st.lists(st.tuples(line_types, line_values), max_size=30), st.sampled_from(["\r\n", "\n"]))
@settings(max_examples=1000)
def test_arbitrary_line_soup_parses_or_raises_sdp_error(
    lines: list[tuple[str, str]], eol: str
) -> None:
    body = eol.join(f"{kind}={value}" for kind, value in [("v", "0"), *lines])
    with contextlib.suppress(SdpError):
        parse(body)


@given(st.binary(max_size=400))
@settings(max_examples=500)
def test_arbitrary_bytes_parse_or_raise_sdp_error(data: bytes) -> None:
    with contextlib.suppress(SdpError):
        parse(data)


# -- round trip ----------------------------------------------------------------------------------

tokens = st.text(string.ascii_letters + string.digits + ".-_", min_size=1, max_size=12)
connections = st.builds(Connection, tokens, st.sampled_from(["IP4", "IP6"]))
directions = st.none() | st.sampled_from(Direction)
counts = st.none() | st.integers(0, 100_000)
audio_media = st.builds(
    AudioMedia,
    port=st.integers(0, 65535),
    payload_types=st.lists(st.integers(0, 127), min_size=1, max_size=6).map(tuple),
    rtpmaps=st.lists(
        st.builds(
            RtpMap,
            st.integers(0, 127),
            tokens,
            st.integers(1, 96000),
            st.none() | st.integers(1, 8),
        ),
        max_size=4,
    ).map(tuple),
    fmtps=st.lists(
        st.builds(Fmtp, st.integers(0, 127), st.sampled_from(["0-15", "annexb=no", "a=1; b=2"])),
        max_size=2,
    ).map(tuple),
    ptime=st.none() | st.integers(1, 1000),
    maxptime=st.none() | st.integers(1, 1000),
    direction=directions,
    connection=st.none() | connections,
    protocol=st.sampled_from(["RTP/AVP", "RTP/SAVP", "RTP/AVPF"]),
    attributes=st.lists(
        st.sampled_from(["rtcp:9 IN IP4 0.0.0.0", "silenceSupp:off - - - -", "mid:0"]), max_size=3
    ).map(tuple),
)
t38_media = st.builds(
    T38Media,
    port=st.integers(0, 65535),
    params=st.builds(
        T38Params,
        version=st.integers(0, 255),
        max_bit_rate=counts,
        fill_bit_removal=st.booleans(),
        transcoding_mmr=st.booleans(),
        transcoding_jbig=st.booleans(),
        rate_management=st.none() | st.sampled_from(RateManagement),
        max_buffer=counts,
        max_datagram=counts,
        udp_ec=st.none() | st.sampled_from(UdpEc),
        flags_as_values=st.booleans(),
    ),
    connection=st.none() | connections,
    direction=directions,
    attributes=st.lists(
        st.sampled_from(["T38VendorInfo:0 0 0", "T38FaxMaxIFP:72", "T38FaxUdpECDepth:1 3"]),
        max_size=3,
    ).map(tuple),
)
other_media = st.builds(
    OtherMedia,
    media=st.sampled_from(["video", "application", "text", "message"]),
    port=st.integers(0, 65535),
    protocol=st.sampled_from(["RTP/AVP", "UDP/BFCP", "TCP/MSRP"]),
    formats=st.lists(tokens, min_size=1, max_size=3).map(tuple),
    connection=st.none() | connections,
    attributes=st.lists(st.sampled_from(["sendrecv", "label:1", "rtpmap:31 H261/90000"])).map(
        tuple
    ),
)
sessions = st.builds(
    SessionDescription,
    origin=st.builds(
        Origin,
        tokens,
        st.integers(0, 2**64),
        st.integers(0, 2**32),
        tokens,
        st.sampled_from(["IP4", "IP6"]),
    ),
    media=st.lists(audio_media | t38_media | other_media, max_size=5).map(tuple),
    connection=connections,
    session_name=st.text(string.printable.strip(), min_size=1, max_size=20)
    | st.just("a call with spaces"),
    timing=st.sampled_from(["0 0", "3034423619 3042462419"]),
    attributes=st.lists(st.sampled_from(["tool:fax-gateway", "group:BUNDLE 0"]), max_size=2).map(
        tuple
    ),
)


@given(sessions)
@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
def test_every_description_survives_build_then_parse(session: SessionDescription) -> None:
    text = build(session)
    assert text.endswith("\r\n") and "\n" not in text.replace("\r\n", "")
    assert parse(text) == session
    assert parse(text.encode()) == session
    assert parse(text.replace("\r\n", "\n")) == session


def test_build_refuses_more_than_twenty_media() -> None:
    with pytest.raises(SdpError):
        build(SessionDescription(OURS, (T38Media(0),) * 21))


def test_our_audio_offer_without_events_and_pcma_first() -> None:
    session = offer_audio(OURS, "192.0.2.1", 40000, AudioCaps(("PCMA", "PCMU"), False))
    assert session.media == (
        AudioMedia(
            40000,
            (8, 0),
            (RtpMap(8, "PCMA", 8000), RtpMap(0, "PCMU", 8000)),
            ptime=20,
            direction=Direction.SENDRECV,
        ),
    )
