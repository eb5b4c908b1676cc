"""SIP messages: what the parser reads from real peers, what it refuses, and what it writes."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from gateway.sip.headers import (
    AuthParams,
    CSeq,
    NameAddr,
    SipParseError,
    SipUri,
    Via,
    split_header_values,
)
from gateway.sip.message import (
    BRANCH_COOKIE,
    DEFAULT_LIMITS,
    Headers,
    Limits,
    Request,
    Response,
    StreamFramer,
    canonical_name,
    is_keepalive,
    new_branch,
    new_call_id,
    new_tag,
    parse_message,
    response_for,
)


def wire(text: str, body: str = "") -> bytes:
    """A message as a peer sends it: CRLF line ends; ``{length}`` becomes the body's length."""
    payload = body.replace("\n", "\r\n").encode()
    head = text.strip("\n").replace("{length}", str(len(payload))).replace("\n", "\r\n")
    return (head + "\r\n\r\n").encode() + payload


SDP = """v=0
o=FreeSWITCH 1701234567 1701234568 IN IP4 192.0.2.20
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
"""

FREESWITCH_INVITE = wire(
    """
INVITE sip:+14155550199@gw.example.net;transport=udp SIP/2.0
Via: SIP/2.0/UDP 192.0.2.20:5080;rport;branch=z9hG4bKN5B3tKQ3g4vHm
Max-Forwards: 69
From: "Fax Gateway" <sip:+14155550100@192.0.2.20:5080>;tag=F8a1Xg9B3v2Dc
To: <sip:+14155550199@gw.example.net>
Call-ID: 8b8c9a6e-1f2d-4c3b-9a7e-5d6c7b8a9f0e
CSeq: 128394712 INVITE
Contact: <sip:gw+carrier@192.0.2.20:5080;transport=udp;gw=carrier>
User-Agent: FreeSWITCH-mod_sofia/1.10.11-release~64bit
Allow: INVITE, ACK, BYE, CANCEL, OPTIONS, MESSAGE, INFO, UPDATE, REGISTER, REFER, NOTIFY
Supported: timer, path, replaces
Allow-Events: talk, hold, conference, refer
Content-Type: application/sdp
Content-Disposition: session
Content-Length: {length}
X-FS-Support: update_display,send_info
Remote-Party-ID: "Fax Gateway" <sip:+14155550100@192.0.2.20>;party=calling;screen=yes;privacy=off
""",
    SDP,
)

ASTERISK_401 = wire(
    """
SIP/2.0 401 Unauthorized
Via: SIP/2.0/UDP 192.0.2.10:5060;rport=5060;received=192.0.2.10;branch=z9hG4bKPj5c1d2e3f
Call-ID: 0d6a9c1e-7b2f-4e8a-9c3d-1a2b3c4d5e6f
From: <sip:fax@pbx.example.com>;tag=6e1f2a3b-4c5d
To: <sip:fax@pbx.example.com>;tag=z9hG4bKPj5c1d2e3f
CSeq: 26481 REGISTER
WWW-Authenticate: Digest realm="asterisk",nonce="1701234567/7c3e6f0b9a2d41e5b8c7d6e5f4a3b2c1",\
opaque="3f8b2a1c0d9e8f7a",algorithm=md5,qop="auth"
Server: Asterisk PBX 20.5.0
Content-Length:  0
"""
)

KAMAILIO_407 = wire(
    """
SIP/2.0 407 Proxy Authentication Required
Via: SIP/2.0/UDP 10.0.0.5:5060;branch=z9hG4bK776asdhds;rport=5060;received=203.0.113.7
From: "Fax" <sip:+14155550100@sip.example.net>;tag=1928301774
To: <sip:+14155550199@sip.example.net>;tag=b27e1a1d33761e85846fc98f5f3a7e58.ab12
Call-ID: a84b4c76e66710@pc33.example.com
CSeq: 1 INVITE
Proxy-Authenticate: Digest realm="sip.example.net", nonce="ZQ2b0WUNmqV3pJ5Yl8d2KxgW3k3Bk9PY", \
qop="auth"
Server: kamailio (5.6.3 (x86_64/linux))
Content-Length: 0
"""
)

OPTIONS_KEEPALIVE = wire(
    """
OPTIONS sip:gateway.example.com:5060 SIP/2.0
Via: SIP/2.0/UDP 198.51.100.2:5060;branch=z9hG4bK0a1b.c2d3e4f5.0
To: <sip:gateway.example.com:5060>
From: <sip:dispatcher@198.51.100.2>;tag=8a2e3b1c
CSeq: 10 OPTIONS
Call-ID: 4d5e6f7a-1b2c3d4e@198.51.100.2
Max-Forwards: 70
Content-Length: 0
"""
)

COMPACT_INVITE = wire(
    """
INVITE sip:bob@biloxi.example.com SIP/2.0
v: SIP/2.0/TCP client.atlanta.example.com:5060;branch=z9hG4bK74bf9
f: Alice <sip:alice@atlanta.example.com>;tag=9fxced76sl
t: Bob <sip:bob@biloxi.example.com>
i: 3848276298220188511@atlanta.example.com
CSeq: 1 INVITE
m: <sip:alice@client.atlanta.example.com;transport=tcp>
k: timer
s: fax
c: application/sdp
o: refer
e: gzip
l: {length}
""",
    SDP,
)

IPV6_REGISTER = wire(
    """
REGISTER sip:[2001:db8::10] SIP/2.0
To: sip:user@example.com
From: sip:user@example.com;tag=81x2
Via: SIP/2.0/UDP [2001:db8::9:1]:5070;branch=z9hG4bKas3-111;rport
Call-ID: SSG9559905523997077@hlau_4100
Max-Forwards: 70
Contact: "Caller" <sip:caller@[2001:db8::9:1]:5070>;expires=3600;q=0.7
CSeq: 98176 REGISTER
Content-Length: 0
"""
)

OK_WITH_RECORD_ROUTE = wire(
    """
SIP/2.0 200 OK
Via: SIP/2.0/UDP server10.biloxi.com;branch=z9hG4bKnashds8;received=192.0.2.3
Via: SIP/2.0/UDP bigbox3.site3.atlanta.com;branch=z9hG4bK77ef4c2312983.1;received=192.0.2.2, \
SIP/2.0/UDP pc33.atlanta.com;branch=z9hG4bK776asdhds ;received=192.0.2.1
Record-Route: <sip:p2.biloxi.com;lr>, <sip:p1.atlanta.com;lr>
Record-Route: <sip:edge.example.net;lr;transport=tcp>
To: Bob <sip:bob@biloxi.com>;tag=a6c85cf
From: Alice <sip:alice@atlanta.com>;tag=1928301774
Call-ID: a84b4c76e66710@pc33.atlanta.com
CSeq: 314159 INVITE
Contact: <sip:bob@192.0.2.4>
Content-Type: application/sdp
Content-Length: {length}
""",
    SDP,
)

REAL_MESSAGES = [
    FREESWITCH_INVITE,
    ASTERISK_401,
    KAMAILIO_407,
    OPTIONS_KEEPALIVE,
    COMPACT_INVITE,
    IPV6_REGISTER,
    OK_WITH_RECORD_ROUTE,
]


def request(data: bytes) -> Request:
    message = parse_message(data)
    assert isinstance(message, Request)
    return message


def response(data: bytes) -> Response:
    message = parse_message(data)
    assert isinstance(message, Response)
    return message


def refusal(data: bytes, limits: Limits = DEFAULT_LIMITS) -> SipParseError:
    with pytest.raises(SipParseError) as caught:
        parse_message(data, limits)
    return caught.value


# --- real messages -----------------------------------------------------------------------


def test_freeswitch_invite_with_sdp() -> None:
    invite = request(FREESWITCH_INVITE)
    assert invite.method == "INVITE"
    assert SipUri.parse(invite.uri).user == "+14155550199"
    assert SipUri.parse(invite.uri).param("transport") == "udp"
    assert invite.body == SDP.replace("\n", "\r\n").encode()
    assert invite.headers.get("content-type") == "application/sdp"
    (via,) = invite.vias
    assert (via.transport, via.host, via.port) == ("UDP", "192.0.2.20", 5080)
    assert via.branch == "z9hG4bKN5B3tKQ3g4vHm"
    assert via.has_param("rport") and via.rport is None  # requested, not yet filled in
    assert invite.from_addr.display_name == "Fax Gateway"
    assert invite.from_addr.tag == "F8a1Xg9B3v2Dc"
    assert invite.to_addr.tag is None
    assert invite.cseq == CSeq(128394712, "INVITE")
    assert invite.call_id == "8b8c9a6e-1f2d-4c3b-9a7e-5d6c7b8a9f0e"
    assert "UPDATE" in invite.headers.values("Allow")
    assert invite.headers.values("Supported") == ("timer", "path", "replaces")
    contact = NameAddr.parse(invite.headers.values("Contact")[0])
    assert contact.sip_uri.param("gw") == "carrier"


def test_content_length_is_framing_and_not_kept_in_the_headers() -> None:
    invite = request(FREESWITCH_INVITE)
    assert "Content-Length" not in invite.headers
    assert invite.headers.get("X-FS-Support") == "update_display,send_info"


def test_asterisk_register_challenge() -> None:
    challenge = response(ASTERISK_401)
    assert (challenge.status, challenge.reason) == (401, "Unauthorized")
    assert challenge.cseq == CSeq(26481, "REGISTER")
    assert challenge.vias[0].rport == 5060
    assert challenge.vias[0].received == "192.0.2.10"
    auth = AuthParams.parse(challenge.headers.get("WWW-Authenticate") or "")
    assert auth.scheme == "Digest"
    assert auth.get("realm") == "asterisk"
    assert auth.get("NONCE") == "1701234567/7c3e6f0b9a2d41e5b8c7d6e5f4a3b2c1"
    assert auth.get("algorithm") == "md5"
    assert auth.get("qop") == "auth"
    assert challenge.body == b""


def test_kamailio_proxy_challenge() -> None:
    challenge = response(KAMAILIO_407)
    assert challenge.status == 407
    assert challenge.reason == "Proxy Authentication Required"
    auth = AuthParams.parse(challenge.headers.get("Proxy-Authenticate") or "")
    assert auth.get("realm") == "sip.example.net"
    assert auth.get("nonce") == "ZQ2b0WUNmqV3pJ5Yl8d2KxgW3k3Bk9PY"
    assert challenge.to_addr.tag == "b27e1a1d33761e85846fc98f5f3a7e58.ab12"
    assert challenge.headers.get("Server") == "kamailio (5.6.3 (x86_64/linux))"


def test_options_keepalive() -> None:
    options = request(OPTIONS_KEEPALIVE)
    assert options.method == "OPTIONS"
    assert SipUri.parse(options.uri) == SipUri("gateway.example.com", port=5060)
    assert options.headers.get("Max-Forwards") == "70"


def test_compact_header_names_become_their_long_forms() -> None:
    invite = request(COMPACT_INVITE)
    names = [name for name, _ in invite.headers]
    assert names == [
        "Via", "From", "To", "Call-ID", "CSeq", "Contact", "Supported", "Subject",
        "Content-Type", "Event", "Content-Encoding",
    ]  # fmt: skip
    assert invite.vias[0].transport == "TCP"
    assert invite.from_addr.display_name == "Alice"
    assert invite.headers.get("i") == "3848276298220188511@atlanta.example.com"
    assert len(invite.body) == len(SDP.replace("\n", "\r\n"))


def test_ipv6_via_contact_and_request_uri() -> None:
    register = request(IPV6_REGISTER)
    assert SipUri.parse(register.uri).host == "2001:db8::10"
    via = register.vias[0]
    assert (via.host, via.port, via.branch) == ("2001:db8::9:1", 5070, "z9hG4bKas3-111")
    assert str(via) == "SIP/2.0/UDP [2001:db8::9:1]:5070;branch=z9hG4bKas3-111;rport"
    contact = NameAddr.parse(register.headers.get("Contact") or "")
    assert contact.sip_uri.host == "2001:db8::9:1"
    assert contact.param("expires") == "3600"
    assert contact.param("q") == "0.7"
    # A bare addr-spec: ;tag belongs to the header, not to the URI.
    assert register.from_addr == NameAddr("sip:user@example.com", params=(("tag", "81x2"),))


def test_multiple_via_lines_and_comma_joined_vias_in_order() -> None:
    ok = response(OK_WITH_RECORD_ROUTE)
    assert [via.host for via in ok.vias] == [
        "server10.biloxi.com",
        "bigbox3.site3.atlanta.com",
        "pc33.atlanta.com",
    ]
    assert ok.vias[2].received == "192.0.2.1"  # whitespace before ;received is allowed
    assert [NameAddr.parse(v).uri for v in ok.headers.values("Record-Route")] == [
        "sip:p2.biloxi.com;lr",
        "sip:p1.atlanta.com;lr",
        "sip:edge.example.net;lr;transport=tcp",
    ]


@pytest.mark.parametrize("data", REAL_MESSAGES)
def test_real_messages_round_trip(data: bytes) -> None:
    message = parse_message(data)
    assert parse_message(message.to_bytes()) == message


def test_serialization_writes_the_true_content_length_last() -> None:
    message = Request(
        "MESSAGE",
        "sip:bob@example.com",
        Headers.of(("Via", "SIP/2.0/UDP h;branch=z9hG4bK1"), ("Subject", "hi")),
        "héllo".encode(),
    )
    assert message.to_bytes() == (
        b"MESSAGE sip:bob@example.com SIP/2.0\r\n"
        b"Via: SIP/2.0/UDP h;branch=z9hG4bK1\r\n"
        b"Subject: hi\r\n"
        b"Content-Length: 6\r\n\r\n" + "héllo".encode()
    )


def test_records_refuse_a_content_length_of_their_own() -> None:
    with pytest.raises(ValueError, match="Content-Length"):
        Request("BYE", "sip:a@b", Headers.of(("l", "3")))


def test_records_refuse_header_injection() -> None:
    with pytest.raises(ValueError):
        Headers.of(("Subject", "a\r\nVia: evil"))
    with pytest.raises(ValueError):
        Headers.of(("Bad Name", "x"))
    with pytest.raises(ValueError):
        Request("INVITE", "sip:a@b c")
    with pytest.raises(ValueError):
        Response(200, "OK\r\nX: y")


# --- reading leniently what is legal, refusing what is not --------------------------------

MINIMAL = """
BYE sip:bob@192.0.2.4 SIP/2.0
Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKnashds7
From: <sip:alice@atlanta.com>;tag=1928301774
To: <sip:bob@biloxi.com>;tag=a6c85cf
Call-ID: a84b4c76e66710
CSeq: 231 BYE
"""


def test_folded_header_lines_are_unfolded() -> None:
    folded = wire(MINIMAL + "Subject: I know you're there,\n   pick up the phone\n\t and talk")
    assert request(folded).headers.get("Subject") == (
        "I know you're there, pick up the phone and talk"
    )


def test_bare_lf_line_ends_and_leading_crlfs_are_accepted() -> None:
    data = b"\r\n\r\n" + wire(MINIMAL).replace(b"\r\n", b"\n")
    assert request(data).method == "BYE"


def test_header_names_and_spacing_are_read_leniently() -> None:
    data = wire(MINIMAL.replace("CSeq: 231 BYE", "cseq   :231    BYE"))
    assert request(data).cseq == CSeq(231, "BYE")


def test_datagram_bytes_past_content_length_are_dropped() -> None:
    data = wire(MINIMAL + "Content-Length: 4") + b"bodyTRAILING GARBAGE"
    assert request(data).body == b"body"


def test_datagram_without_content_length_runs_to_its_end() -> None:
    assert request(wire(MINIMAL) + b"body").body == b"body"


def test_body_shorter_than_content_length_is_refused_but_answerable() -> None:
    error = refusal(wire(MINIMAL + "Content-Length: 10") + b"short")
    assert error.reason == "body shorter than Content-Length"
    assert error.can_answer
    assert error.request is not None
    answer = response_for(error.request, 400)
    assert [name for name, _ in answer.headers] == ["Via", "From", "To", "Call-ID", "CSeq"]


def test_a_malformed_header_keeps_the_rest_for_the_400() -> None:
    error = refusal(wire(MINIMAL + "this line has no colon\nUser-Agent: x"))
    assert error.reason == "malformed header line"
    assert error.can_answer
    assert error.request is not None and error.request.headers.get("User-Agent") == "x"


def test_a_response_that_cannot_be_read_has_nothing_to_answer() -> None:
    error = refusal(wire("SIP/2.0 200 OK\nVia: SIP/2.0/UDP h;branch=z9hG4bK1"))
    assert error.request is None and not error.can_answer


def test_an_unreadable_ack_is_never_answered() -> None:
    ack = wire(MINIMAL.replace("BYE", "ACK")).replace(b"Call-ID: a84b4c76e66710\r\n", b"")
    error = refusal(ack)
    assert error.reason == "no Call-ID header"
    assert error.request is not None and not error.can_answer


def test_a_request_without_a_readable_via_cannot_be_answered() -> None:
    data = wire(MINIMAL.replace("SIP/2.0/UDP 192.0.2.1:5060", "garbage"))
    error = refusal(data)
    assert error.request is not None and not error.can_answer


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (("CSeq: 231 BYE\n", ""), "no CSeq header"),
        (("CSeq: 231 BYE", "CSeq: 231 BYE\nCSeq: 232 BYE"), "more than one CSeq header"),
        (("CSeq: 231 BYE", "CSeq: 231 INVITE"), "CSeq method differs from the request method"),
        (("CSeq: 231 BYE", "CSeq: 4294967296 BYE"), "bad CSeq '4294967296 BYE'"),
        (("Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKnashds7\n", ""), "no Via header"),
        (("From: <sip:alice@atlanta.com>", "From: <sip:alice@atlanta.com"), "unterminated <uri>"),
        (("Call-ID: a84b4c76e66710", "Call-ID: a84b 4c76"), "bad Call-ID"),
        (
            ("BYE sip:bob@192.0.2.4 SIP/2.0", "BYE sip:bob@192.0.2.4 SIP/3.0"),
            "malformed start line",
        ),
        (("BYE sip:bob@192.0.2.4 SIP/2.0", "BYE  SIP/2.0"), "malformed start line"),
        (("BYE sip:bob@192.0.2.4", "BYE bob@192.0.2.4"), "bad Request-URI"),
        (("BYE sip:bob@192.0.2.4", "BYE sip:bob@[::zz]"), "bad IPv6 reference '[::zz]'"),
        (("Via:", " Via:"), "continuation line before the first header"),
        (("CSeq: 231 BYE", "CSeq: 231 BYE\nX: a\x00b"), "control character in a header"),
        (("BYE sip:bob", "BYE sip:b\x01ob"), "control character in the start line"),
        (("CSeq: 231 BYE", "CSeq: 231 BYE\nContent-Length: -1"), "bad Content-Length"),
        (
            ("CSeq: 231 BYE", "CSeq: 231 BYE\nContent-Length: 0\nl: 1"),
            "conflicting Content-Length headers",
        ),
    ],
)
def test_malformed_messages_are_refused_with_a_reason(change: tuple[str, str], reason: str) -> None:
    assert refusal(wire(MINIMAL.replace(*change))).reason == reason


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "empty message"),
        (b"\r\n\r\n", "empty message"),
        (b"BYE sip:a@b SIP/2.0\r\nVia: x", "no end of head"),
        (b"\xff\xfe\x00\x00\r\n\r\n", "control character in the start line"),
        (b"HTTP/1.1 200 OK\r\n\r\n", "malformed start line"),
    ],
)
def test_garbage_is_refused_with_a_reason(data: bytes, reason: str) -> None:
    assert refusal(data).reason == reason


def test_identical_repeated_content_lengths_are_tolerated() -> None:
    data = wire(MINIMAL + "Content-Length: 2\nl: 2") + b"ok"
    assert request(data).body == b"ok"


def test_limits_against_hostile_input() -> None:
    limits = Limits(max_message=2000, max_head=1000, max_headers=10, max_line=200)
    assert refusal(wire(MINIMAL) + b"x" * 2000, limits).reason == "message too large"
    assert refusal(wire(MINIMAL + "X: " + "y" * 1000), limits).reason == "head too large"
    many = MINIMAL + "\n".join(f"X-{i}: {i}" for i in range(10))
    error = refusal(wire(many), limits)
    assert error.reason == "too many headers"
    assert error.can_answer  # the first ten lines were read, Via and CSeq among them
    assert refusal(wire(MINIMAL + "X: " + "y" * 300), limits).reason == "header line too long"
    folded_long = MINIMAL + "X: start" + "\n y" * 150
    assert refusal(wire(folded_long), limits).reason == "header line too long"


def test_a_head_that_is_not_utf8_is_read_as_latin1() -> None:
    data = wire(MINIMAL).replace(b"From: <", b'From: "M\xfcller" <')
    assert request(data).from_addr.display_name == "Müller"


def test_responses_may_have_an_empty_reason_phrase() -> None:
    head = MINIMAL.replace("BYE sip:bob@192.0.2.4 SIP/2.0", "SIP/2.0 200")
    assert response(wire(head)).reason == ""
    assert response(wire(head.replace("SIP/2.0 200", "SIP/2.0 183 "))).reason == ""


def test_keepalives() -> None:
    assert is_keepalive(b"\r\n\r\n") and is_keepalive(b"\r\n") and is_keepalive(b"")
    assert not is_keepalive(OPTIONS_KEEPALIVE)


# --- headers --------------------------------------------------------------------------------


def test_headers_lookup_is_case_insensitive_and_ordered() -> None:
    headers = Headers.of(("v", "a"), ("VIA", "b, c"), ("X-Thing", "1"), ("x-thing", "2"))
    assert headers.get("via") == "a"
    assert headers.get_all("Via") == ("a", "b, c")
    assert headers.values("Via") == ("a", "b", "c")
    assert headers.get_all("X-THING") == ("1", "2")
    assert headers.get("Route") is None and "Route" not in headers
    assert [name for name, _ in headers] == ["Via", "Via", "X-Thing", "x-thing"]


def test_headers_edits_return_new_headers() -> None:
    headers = Headers.of(("Via", "a"), ("Contact", "<sip:x@y>"), ("Via", "b"))
    assert headers.set("Via", "c").items == (("Via", "c"), ("Contact", "<sip:x@y>"))
    assert headers.set("Route", "r").items[-1] == ("Route", "r")
    assert headers.remove("m").items == (("Via", "a"), ("Via", "b"))
    assert headers.add("Route", "r").items[-1] == ("Route", "r")
    assert len(headers) == 3


def test_canonical_names() -> None:
    assert [canonical_name(n) for n in ("i", "M", "call-id", "cseq", "www-authenticate")] == [
        "Call-ID",
        "Contact",
        "Call-ID",
        "CSeq",
        "WWW-Authenticate",
    ]
    assert canonical_name("X-Custom") == "X-Custom"


def test_comma_separated_values_respect_quotes_and_angle_brackets() -> None:
    value = '"Smith, John" <sip:a@b;x=1,2>;q=0.5 , <sip:c@d>,,sip:e@f'
    assert split_header_values(value) == [
        '"Smith, John" <sip:a@b;x=1,2>;q=0.5',
        "<sip:c@d>",
        "sip:e@f",
    ]
    assert split_header_values('"say \\"hi, there\\"" <sip:a@b>') == [
        '"say \\"hi, there\\"" <sip:a@b>'
    ]
    with pytest.raises(SipParseError, match="unterminated quoted string"):
        split_header_values('"open, <sip:a@b>')
    with pytest.raises(SipParseError, match=r"'<' inside <\.\.\.>"):
        split_header_values("<sip:a@b, <sip:c@d>")
    with pytest.raises(SipParseError, match=r"unterminated <\.\.\.>"):
        split_header_values("<sip:a@b, sip:c@d")


# --- header values ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "uri"),
    [
        ("sip:example.com", SipUri("example.com")),
        ("SIPS:alice@Example.com:5061", SipUri("Example.com", "alice", 5061, "sips")),
        ("sip:+14155550100@gw.example.net;user=phone", SipUri("gw.example.net", "+14155550100",
                                                              params=(("user", "phone"),))),
        ("sip:p1.example.com;lr", SipUri("p1.example.com", params=(("lr", None),))),
        ("sip:[2001:db8::1]:5060;transport=tcp",
         SipUri("2001:db8::1", None, 5060, params=(("transport", "tcp"),))),
        ("sip:alice:secret@atlanta.com", SipUri("atlanta.com", "alice")),
        ("sip:bob@biloxi.com?subject=project%20x&priority=urgent",
         SipUri("biloxi.com", "bob", headers=(("subject", "project%20x"), ("priority", "urgent")))),
        ("sip:*67%23@192.0.2.1", SipUri("192.0.2.1", "*67%23")),
    ],
)  # fmt: skip
def test_sip_uris(text: str, uri: SipUri) -> None:
    assert SipUri.parse(text) == uri
    assert SipUri.parse(str(uri)) == uri


def test_sip_uri_params_are_looked_up_case_insensitively() -> None:
    uri = SipUri.parse("sip:a@b;Transport=TCP;lr")
    assert uri.param("transport") == "TCP"
    assert uri.has_param("LR") and uri.param("lr") is None
    assert str(uri.with_param("transport", "udp")) == "sip:a@b;lr;transport=udp"


@pytest.mark.parametrize(
    "text",
    [
        "tel:+14155550100",
        "http://example.com",
        "sip:",
        "sip:@host",
        "sip:a@",
        "sip:a@host:0",
        "sip:a@host:65536",
        "sip:a@host:50x",
        "sip:a@[2001:db8::1",
        "sip:a@[2001:db8::1]x",
        "sip:a@ho st",
        "sip:a@host;=x",
        "sip:a@host;a=b=c",
        "sip:a@host?novalue",
        "sip:a b@host",
    ],
)
def test_bad_sip_uris_are_refused(text: str) -> None:
    with pytest.raises(SipParseError):
        SipUri.parse(text)


@pytest.mark.parametrize(
    ("text", "name_addr"),
    [
        ('"Fax Gateway" <sip:fax@example.com>;tag=abc',
         NameAddr("sip:fax@example.com", "Fax Gateway", (("tag", "abc"),))),
        ("Alice  Smith <sip:alice@example.com>", NameAddr("sip:alice@example.com", "Alice Smith")),
        ("<sip:a@b>", NameAddr("sip:a@b")),
        ('"" <sip:a@b>', NameAddr("sip:a@b", "")),
        ('"say \\"hi\\" \\\\o/" <sip:a@b>', NameAddr("sip:a@b", 'say "hi" \\o/')),
        ("sip:a@b;tag=x;expires=60", NameAddr("sip:a@b", params=(("tag", "x"), ("expires", "60")))),
        ("<sip:a@b;transport=tcp>;q=0.5;+sip.instance=\"<urn:uuid:00000000-0000>\"",
         NameAddr("sip:a@b;transport=tcp", None,
                  (("q", "0.5"), ("+sip.instance", '"<urn:uuid:00000000-0000>"')))),
        ("<tel:+14155550100>;tag=1", NameAddr("tel:+14155550100", params=(("tag", "1"),))),
        ('"Müller" <sip:m@b>', NameAddr("sip:m@b", "Müller")),
    ],
)  # fmt: skip
def test_name_addrs(text: str, name_addr: NameAddr) -> None:
    assert NameAddr.parse(text) == name_addr
    assert NameAddr.parse(str(name_addr)) == name_addr


def test_name_addr_with_param_replaces_a_tag() -> None:
    to = NameAddr.parse("<sip:a@b>;tag=1;x")
    assert str(to.with_param("tag", "2")) == "<sip:a@b>;x;tag=2"


@pytest.mark.parametrize(
    "text",
    [
        "",
        '"unterminated <sip:a@b>',
        '"name" sip:a@b',
        "<sip:a@b",
        "<>",
        "<not a uri>",
        "<sip:a@b> junk",
        "<sip:a@b>;tag=",
        "<sip:a@b>;tag=a b",
        "<sip:a@b>;=x",
        'Al"ice <sip:a@b>',
        '<sip:a@b>;x="open',
    ],
)
def test_bad_name_addrs_are_refused(text: str) -> None:
    with pytest.raises(SipParseError):
        NameAddr.parse(text)


def test_vias() -> None:
    via = Via.parse(
        "sip / 2.0 / udp  host.example.com:5062 ; branch=z9hG4bK1 ;rport=40000;received=1.2.3.4"
    )
    assert via == Via(
        "UDP",
        "host.example.com",
        5062,
        (("branch", "z9hG4bK1"), ("rport", "40000"), ("received", "1.2.3.4")),
    )
    assert via.rport == 40000 and via.received == "1.2.3.4"
    assert (
        str(via) == "SIP/2.0/UDP host.example.com:5062;branch=z9hG4bK1;rport=40000;received=1.2.3.4"
    )
    answered = Via.parse("SIP/2.0/TCP h;rport;branch=z9hG4bK2").with_param("rport", "5070")
    assert str(answered.with_param("received", "192.0.2.9")) == (
        "SIP/2.0/TCP h;branch=z9hG4bK2;rport=5070;received=192.0.2.9"
    )


@pytest.mark.parametrize(
    "text",
    [
        "",
        "SIP/2.0/UDP",
        "SIP/2.0 host",
        "SIP/2.0/UDP host:99999",
        "SIP/2.0/UDP host;rport=abc",
        "SIP/2.0/UDP host;rport=0",
        "SIP/2.0/UDP host junk",
        "SIP/2.0/UDP [::1;branch=x",
    ],
)
def test_bad_vias_are_refused(text: str) -> None:
    with pytest.raises(SipParseError):
        Via.parse(text)


def test_cseq() -> None:
    assert CSeq.parse(" 42   INVITE ") == CSeq(42, "INVITE")
    assert str(CSeq(42, "ACK")) == "42 ACK"
    for bad in ("", "INVITE", "1", "-1 INVITE", "1 INV ITE", "2147483648 BYE", "12345678901 BYE"):
        with pytest.raises(SipParseError):
            CSeq.parse(bad)


def test_auth_params() -> None:
    params = AuthParams.parse(
        'Digest username="bob", realm="a, b", nonce="x\\"y", uri="sip:b@c", algorithm=SHA-256,'
        " qop=auth, nc=00000001"
    )
    assert params.scheme == "Digest"
    assert params.get("realm") == "a, b"
    assert params.get("nonce") == 'x"y'
    assert params.get("NC") == "00000001"
    text = params.to_string(bare=("algorithm", "qop", "nc"))
    assert text == (
        'Digest username="bob", realm="a, b", nonce="x\\"y", uri="sip:b@c", algorithm=SHA-256, '
        "qop=auth, nc=00000001"
    )
    assert AuthParams.parse(text) == params


@pytest.mark.parametrize(
    "text",
    ["", "Digest", 'Digest realm="open', "Digest realm", "Digest realm=a b", 'Digest a="1", A="2"'],
)
def test_bad_auth_params_are_refused(text: str) -> None:
    with pytest.raises(SipParseError):
        AuthParams.parse(text)


# --- generation and responses ------------------------------------------------------------


def test_generated_identifiers() -> None:
    branches = {new_branch() for _ in range(100)}
    assert len(branches) == 100
    assert all(
        b.startswith(BRANCH_COOKIE) and Via("UDP", "h", params=(("branch", b),)) for b in branches
    )
    assert len({new_tag() for _ in range(100)}) == 100
    assert new_call_id("gw.example.com").endswith("@gw.example.com")
    assert "@" not in new_call_id()


def test_response_for_copies_what_rfc3261_8_2_6_says() -> None:
    invite = request(FREESWITCH_INVITE)
    ringing = response_for(invite, 180, to_tag="ourtag")
    assert ringing.reason == "Ringing"
    assert ringing.headers.items == (
        ("Via", "SIP/2.0/UDP 192.0.2.20:5080;rport;branch=z9hG4bKN5B3tKQ3g4vHm"),
        ("From", '"Fax Gateway" <sip:+14155550100@192.0.2.20:5080>;tag=F8a1Xg9B3v2Dc'),
        ("To", "<sip:+14155550199@gw.example.net>;tag=ourtag"),
        ("Call-ID", "8b8c9a6e-1f2d-4c3b-9a7e-5d6c7b8a9f0e"),
        ("CSeq", "128394712 INVITE"),
    )
    assert parse_message(ringing.to_bytes()) == ringing


def test_response_for_keeps_an_existing_to_tag_and_every_via() -> None:
    bye = request(wire(MINIMAL.replace("CSeq:", "Via: SIP/2.0/UDP proxy;branch=z9hG4bK9\nCSeq:")))
    ok = response_for(bye, 200, to_tag="ignored", headers=[("Server", "fax-gateway")])
    assert ok.to_addr.tag == "a6c85cf"
    assert [via.host for via in ok.vias] == ["192.0.2.1", "proxy"]
    assert ok.headers.get("Server") == "fax-gateway"


def test_response_for_copies_record_route_into_dialog_creating_responses() -> None:
    route = "Record-Route: <sip:p1.example.net;lr>, <sip:p2.example.net;lr>"
    invite = request(wire(MINIMAL.replace("BYE", "INVITE") + route + "\nTimestamp: 54"))
    assert response_for(invite, 200, to_tag="t").headers.get("Record-Route") == (
        "<sip:p1.example.net;lr>, <sip:p2.example.net;lr>"
    )
    assert "Record-Route" not in response_for(invite, 486).headers
    assert "Record-Route" not in response_for(invite, 100).headers
    assert response_for(invite, 100).headers.get("Timestamp") == "54"
    assert "Timestamp" not in response_for(invite, 180).headers


def test_response_for_reason_phrases() -> None:
    options = request(OPTIONS_KEEPALIVE)
    assert response_for(options, 488).reason == "Not Acceptable Here"
    assert response_for(options, 499).reason == ""
    assert response_for(options, 403, "Not On The List").reason == "Not On The List"
    with pytest.raises(ValueError):
        response_for(options, 200, to_tag="bad tag")


# --- TCP framing ----------------------------------------------------------------------------


def test_stream_framer_cuts_messages_by_content_length() -> None:
    # CRLF keep-alives between messages (RFC 5626 §3.5.1) are skipped.
    stream = FREESWITCH_INVITE + b"\r\n\r\n" + OPTIONS_KEEPALIVE + b"\r\n" + KAMAILIO_407
    assert StreamFramer().feed(stream) == [
        parse_message(FREESWITCH_INVITE),
        parse_message(OPTIONS_KEEPALIVE),
        parse_message(KAMAILIO_407),
    ]


def test_stream_framer_reassembles_byte_by_byte() -> None:
    framer = StreamFramer()
    out: list[object] = []
    for i in range(len(FREESWITCH_INVITE)):
        out += framer.feed(FREESWITCH_INVITE[i : i + 1])
    assert out == [parse_message(FREESWITCH_INVITE)]
    assert framer.feed(b"") == []


def test_stream_framer_reports_a_framed_bad_message_and_carries_on() -> None:
    bad = wire(MINIMAL.replace("CSeq: 231 BYE", "CSeq: 231 INVITE") + "Content-Length: 2") + b"xx"
    framer = StreamFramer()
    error, options = framer.feed(bad + OPTIONS_KEEPALIVE)
    assert isinstance(error, SipParseError) and not error.fatal and error.can_answer
    assert options == parse_message(OPTIONS_KEEPALIVE)


def test_stream_framer_needs_content_length() -> None:
    framer = StreamFramer()
    (error,) = framer.feed(wire(MINIMAL) + OPTIONS_KEEPALIVE)
    assert isinstance(error, SipParseError) and error.fatal
    assert error.reason == "no Content-Length (required over a stream)"
    assert error.can_answer  # a 400 may still go out before the connection closes
    with pytest.raises(SipParseError):
        framer.feed(OPTIONS_KEEPALIVE)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"GET / HTTP/1.1\r\nHost: x\r\n" + b"X: y\r\n" * 200, "head too large"),
        (wire(MINIMAL + "X: " + "y" * 1100), "head too large"),
        (wire(MINIMAL + "Content-Length: 2001"), "body too large"),
        (wire(MINIMAL + "Content-Length: 0x10"), "bad Content-Length"),
        (
            wire(MINIMAL + "Content-Length: 1\nContent-Length: 2"),
            "conflicting Content-Length headers",
        ),
    ],
)
def test_stream_framer_refuses_unframeable_input(data: bytes, reason: str) -> None:
    framer = StreamFramer(Limits(max_head=1000, max_body=2000))
    (error,) = framer.feed(data)
    assert isinstance(error, SipParseError) and error.fatal and error.reason == reason


def test_stream_framer_waits_for_the_whole_body() -> None:
    framer = StreamFramer()
    assert framer.feed(FREESWITCH_INVITE[:-10]) == []
    assert framer.feed(FREESWITCH_INVITE[-10:]) == [parse_message(FREESWITCH_INVITE)]


# --- properties -------------------------------------------------------------------------------

TOKEN_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.!%*_+`'~"
TOKEN = st.text(TOKEN_CHARS, min_size=1, max_size=10)
TEXT = st.text(st.characters(exclude_categories=("Cc", "Cs")), max_size=20)
LABEL = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,8}[a-z0-9])?", fullmatch=True)
HOST = st.one_of(
    st.lists(LABEL, min_size=1, max_size=3).map(".".join),
    st.ip_addresses(v=4).map(str),
    st.ip_addresses(v=6).map(str),
)
PORT = st.none() | st.integers(1, 65535)
URI_CHARS = st.text("abcXYZ019-_.!~*'()%[]/:&+$", min_size=1, max_size=8)
HEADER_CHARS = "abcXYZ019-_.!~*'()%[]/?:+$"  # of the ?name=value&... part of a URI
BARE = st.text("abcXYZ019-.!%*_+`'~:[]/?@&$#^{}|", min_size=1, max_size=8)
PARAM_VALUE = (
    st.none() | BARE | TEXT.map(lambda t: '"' + t.replace("\\", "\\\\").replace('"', '\\"') + '"')
)
HEADER_PARAMS = st.lists(
    st.tuples(TOKEN.filter(lambda n: n.lower() != "rport"), PARAM_VALUE), max_size=3
).map(tuple)

SIP_URIS = st.builds(
    SipUri,
    host=HOST,
    user=st.none() | st.text("abcXYZ019-_.!~*'()&=+$,;?/#", min_size=1, max_size=10),
    port=PORT,
    scheme=st.sampled_from(["sip", "sips"]),
    params=st.lists(st.tuples(URI_CHARS, st.none() | URI_CHARS), max_size=3).map(tuple),
    headers=st.lists(
        st.tuples(st.text(HEADER_CHARS, min_size=1, max_size=8), st.text(HEADER_CHARS, max_size=8)),
        max_size=2,
    ).map(tuple),
)
NAME_ADDRS = st.builds(
    NameAddr,
    uri=SIP_URIS.map(str) | st.just("tel:+14155550100"),
    display_name=st.none() | TEXT,
    params=HEADER_PARAMS,
)
VIAS = st.builds(
    Via,
    transport=st.sampled_from(["UDP", "TCP", "TLS", "WS", "SCTP"]),
    host=HOST,
    port=PORT,
    params=st.tuples(
        st.builds(lambda: ("branch", new_branch())),
        st.just(("rport", None)) | st.integers(1, 65535).map(lambda port: ("rport", str(port))),
        HEADER_PARAMS,
    ).map(lambda drawn: (drawn[0], drawn[1], *drawn[2])),
)
EXTRA_HEADERS = st.lists(
    st.tuples(
        TOKEN.filter(lambda n: canonical_name(n) not in {"Via", "From", "To", "Call-ID", "CSeq",
                                                          "Content-Length"}),
        TEXT.map(lambda t: t.strip(" \t")),
    ),
    max_size=6,
)  # fmt: skip


@st.composite
def messages(draw: st.DrawFn) -> Request | Response:
    method = draw(
        st.sampled_from(["INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "REGISTER"]) | TOKEN
    )
    vias = draw(st.lists(VIAS, min_size=1, max_size=3))
    joined = draw(st.booleans())
    via_headers = (
        [("Via", ", ".join(map(str, vias)))] if joined else [("Via", str(v)) for v in vias]
    )
    headers = Headers(
        (
            *via_headers,
            ("From", str(draw(NAME_ADDRS))),
            ("To", str(draw(NAME_ADDRS))),
            ("Call-ID", draw(TOKEN) + "@" + draw(HOST)),
            ("CSeq", str(CSeq(draw(st.integers(0, 2**31 - 1)), method))),
            *draw(EXTRA_HEADERS),
        )
    )
    body = draw(st.binary(max_size=200))
    if draw(st.booleans()):
        return Request(method, str(draw(SIP_URIS)), headers, body)
    reason = draw(TEXT).strip(" \t")
    return Response(draw(st.integers(100, 699)), reason, headers, body)


def read_everything(message: Request | Response) -> None:
    """What the layers above will ask of any message the parser accepted: it must not raise."""
    _ = (message.vias, message.cseq, message.call_id, message.from_addr, message.to_addr)
    if isinstance(message, Request) and message.uri.startswith(("sip:", "sips:")):
        SipUri.parse(message.uri)


@given(messages())
@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
def test_generated_messages_round_trip(message: Request | Response) -> None:
    parsed = parse_message(message.to_bytes())
    assert parsed == message
    read_everything(parsed)
    framer = StreamFramer()
    assert framer.feed(message.to_bytes() * 2) == [message, message]


@given(SIP_URIS)
def test_generated_uris_round_trip(uri: SipUri) -> None:
    assert SipUri.parse(str(uri)) == uri


@given(NAME_ADDRS)
def test_generated_name_addrs_round_trip(name_addr: NameAddr) -> None:
    assert NameAddr.parse(str(name_addr)) == name_addr


@given(VIAS)
def test_generated_vias_round_trip(via: Via) -> None:
    assert Via.parse(str(via)) == via


@given(TOKEN, st.lists(st.tuples(TOKEN, TEXT), max_size=4))
def test_generated_auth_params_round_trip(scheme: str, params: list[tuple[str, str]]) -> None:
    names = [name.lower() for name, _ in params]
    assume(len(set(names)) == len(names))
    original = AuthParams(scheme, tuple(params))
    assert AuthParams.parse(original.to_string(bare=names[:1])) == original


@given(st.binary(max_size=2000))
@settings(max_examples=500)
def test_arbitrary_bytes_raise_nothing_but_sip_parse_error(data: bytes) -> None:
    with contextlib.suppress(SipParseError):
        read_everything(parse_message(data))
    for item in StreamFramer().feed(data):
        if not isinstance(item, SipParseError):
            read_everything(item)


SEEDS = st.sampled_from(REAL_MESSAGES) | messages().map(lambda m: m.to_bytes())
SIP_BYTES = st.sampled_from(
    [b"\r\n", b"\n", b" ", b"\t", b":", b";", b",", b'"', b"<", b">", b"@", b"[", b"]", b"=",
     b"\\", b"\x00", b"\xff", b"SIP/2.0", b"Content-Length: ", b"z9hG4bK", b"tag=", b"sip:",
     b"0", b"99999999999"]
)  # fmt: skip


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(SEEDS))
    for _ in range(draw(st.integers(1, 6))):
        position = draw(st.integers(0, len(data)))
        action = draw(st.sampled_from(["insert", "delete", "replace", "duplicate"]))
        if action == "insert":
            data[position:position] = draw(SIP_BYTES | st.binary(min_size=1, max_size=4))
        elif action == "delete":
            del data[position : position + draw(st.integers(1, 20))]
        elif action == "replace" and position < len(data):
            data[position] = draw(st.integers(0, 255))
        else:
            data[position:position] = data[position : position + draw(st.integers(1, 40))]
    return bytes(data)


@given(mutated(), st.lists(st.integers(1, 64), max_size=20))
@settings(max_examples=500, suppress_health_check=[HealthCheck.too_slow])
def test_mutated_messages_raise_nothing_but_sip_parse_error(data: bytes, cuts: list[int]) -> None:
    try:
        read_everything(parse_message(data))
    except SipParseError as exc:
        if exc.can_answer:
            assert exc.request is not None
            response_for(exc.request, 400).to_bytes()
    framer = StreamFramer()
    position = 0
    for size in [*cuts, len(data)]:
        try:
            items = framer.feed(data[position : position + size])
        except SipParseError as exc:
            assert exc.fatal
            break
        position += size
        for item in items:
            if not isinstance(item, SipParseError):
                read_everything(item)


@given(st.text(max_size=200))
@settings(max_examples=300)
def test_header_value_helpers_raise_nothing_but_sip_parse_error(text: str) -> None:
    for parse in (SipUri.parse, NameAddr.parse, Via.parse, CSeq.parse, AuthParams.parse,
                  split_header_values):  # fmt: skip
        with contextlib.suppress(SipParseError):
            parse(text)
