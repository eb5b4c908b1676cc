"""Each far-end harness on its own: kamailio, rtpengine and SIPp started privately on loopback,
against SIPp, raw sockets or each other (no gateway yet: its SIP transport is being built).

What these prove is that the harnesses work, so that the integration tests of issue 12 only
have to be written: a SIPp scenario is valid when a SIPp peer runs it to success; kamailio
authenticates, registers and proxies; rtpengine rewrites SDP and really gateways T.38 to G.711.
"""

from __future__ import annotations

import re
import socket
import struct
import time
from pathlib import Path

import pytest

from gateway.sip.digest import DigestClient, pick_challenge
from gateway.sip.message import Response, parse_message
from gateway.transports import udptl
from gateway.transports.media import AudioFaxEndpoint, T38Endpoint
from gateway.transports.spandsp import G711Law
from tests.farend.fixtures import KamailioFactory, SippLauncher
from tests.farend.kamailio import Kamailio, KamailioConfig, RtpengineLink, render_config
from tests.farend.process import FarEndError, free_port, socket_addresses
from tests.farend.rtpengine import Bencodable, NgClient, NgError, Rtpengine, bdecode, bencode
from tests.farend.sipp import SippResult, Transport, verify_digest
from tests.transports.backtoback import fax_files, receiver_config, sender_config
from tests.transports.conftest import g4_tiff

LOOP = "127.0.0.1"


def only_loopback(addresses: set[tuple[str, str, int]]) -> bool:
    return bool(addresses) and all(host.startswith("127.") for _, host, _ in addresses)


def starts(result: SippResult, direction: str) -> list[str]:
    return [m.start_line for m in result.messages if m.direction == direction]


# --- a few raw SIP exchanges over UDP, for what SIPp does not do (SHA-256, Max-Forwards 0) ---


class RawSip:
    """A bare UDP SIP client: send text, read parsed responses."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((LOOP, 0))
        self.port = self.sock.getsockname()[1]
        self.sock.settimeout(5)

    def request(
        self, method: str, uri: str, cseq: int, *headers: str, max_forwards: int = 70
    ) -> Response:
        """One request; the first final response (provisionals skipped)."""
        lines = [
            f"{method} {uri} SIP/2.0",
            f"Via: SIP/2.0/UDP {LOOP}:{self.port};branch=z9hG4bK-raw-{cseq}-{time.monotonic_ns()}"
            ";rport",
            f"Max-Forwards: {max_forwards}",
            f"Call-ID: raw-{self.port}@{LOOP}",
            f"CSeq: {cseq} {method}",
            *headers,
            "Content-Length: 0",
            "",
            "",
        ]
        self.sock.sendto("\r\n".join(lines).encode(), self.target)
        while True:
            message = parse_message(self.sock.recv(65535))
            assert isinstance(message, Response)
            if message.status >= 200:
                return message

    def close(self) -> None:
        self.sock.close()


def raw_register(kam: Kamailio, user: str, password: str, contact_port: int) -> list[int]:
    """REGISTER ``user`` with our own digest client; the statuses seen, in order."""
    raw = RawSip((kam.host, kam.port))
    aor = kam.aor(user)
    common = (
        f"From: <{aor}>;tag=raw{raw.port}",
        f"To: <{aor}>",
        f"Contact: <sip:{user}@{LOOP}:{contact_port}>",
        "Expires: 300",
    )
    try:
        first = raw.request("REGISTER", f"sip:{kam.domain}", 1, *common)
        statuses = [first.status]
        challenge = pick_challenge(first)
        if challenge is None:
            return statuses
        credentials = DigestClient(user, password).authorize(
            challenge, "REGISTER", f"sip:{kam.domain}"
        )
        name, value = credentials.header()
        second = raw.request("REGISTER", f"sip:{kam.domain}", 2, *common, f"{name}: {value}")
        statuses.append(second.status)
        return statuses
    finally:
        raw.close()


# --- kamailio ---


def test_kamailio_answers_options_on_loopback_only(kamailio: Kamailio) -> None:
    assert kamailio.options() == 200
    addresses = socket_addresses(kamailio.daemon.pid)
    assert ("udp", LOOP, kamailio.port) in addresses
    assert ("tcp", LOOP, kamailio.port) in addresses
    assert only_loopback(addresses), addresses
    assert "kamailio 5.6" in kamailio.rpc("core.version")


def test_kamailio_register_needs_digest_and_keeps_the_contact(
    kamailio: Kamailio, sipp: SippLauncher
) -> None:
    uas = sipp.start("uas_answer")
    sipp.register(kamailio, "gwb", uas)

    register = sipp.started[-1].result(0)
    assert [m.status for m in register.messages if m.direction == "received"] == [401, 200]
    challenge = next(m for m in register.messages if m.status == 401)
    assert 'realm="fax.test"' in (challenge.header("WWW-Authenticate") or "")
    assert kamailio.contacts("gwb") == [f"sip:gwb@{LOOP}:{uas.port};transport=UDP"]
    assert kamailio.contacts("gwa") == []

    sipp.register(kamailio, "gwb", uas, expires=0)  # Expires: 0 unregisters
    assert kamailio.contacts("gwb") == []


def test_kamailio_refuses_a_wrong_password(kamailio: Kamailio, sipp: SippLauncher) -> None:
    result = sipp.run(
        "uac_register",
        remote=(kamailio.host, kamailio.port),
        auth_user="gwb",
        auth_password="not-the-password",
        keys={"contact_port": "5999"},
        timeout=5,
    )
    assert result.returncode != 0
    # The retried REGISTER is challenged again instead of being accepted.
    assert result.final_statuses("REGISTER")[:2] == [401, 401]
    assert kamailio.contacts("gwb") == []


def test_kamailio_sha256_digest_with_our_own_client(kamailio_factory: KamailioFactory) -> None:
    kam = kamailio_factory(KamailioConfig(algorithm="SHA-256"))
    assert raw_register(kam, "gwa", kam.users["gwa"], 5998) == [401, 200]
    assert kam.contacts("gwa") == [f"sip:gwa@{LOOP}:5998"]
    assert raw_register(kam, "gwb", "wrong", 5997)[-1] == 401


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_kamailio_proxies_an_authenticated_invite_to_the_registered_contact(
    kamailio: Kamailio, sipp: SippLauncher, transport: Transport
) -> None:
    callee = sipp.start("uas_answer", timeout=30)
    sipp.register(kamailio, "gwb", callee)

    # The caller may come over TCP; the callee registered a UDP contact.
    caller = sipp.run(
        "uac_invite",
        transport=transport,
        remote=(kamailio.host, kamailio.port),
        service="gwb",
        auth_user="gwa",
        auth_password=kamailio.users["gwa"],
        keys={"ruri_host": kamailio.domain, "from_user": "gwa", "from_host": kamailio.domain},
        duration_ms=200,
        timeout=30,
    ).check()
    answered = callee.wait().check()

    # The proxy challenged the INVITE with 407, then relayed the retry to gwb's contact.
    assert caller.final_statuses() == [407, 200]
    invite = answered.received("INVITE")[0]
    assert invite.start_line == f"INVITE sip:gwb@{LOOP}:{callee.port};transport=UDP SIP/2.0"
    assert (invite.header("Record-Route") or "").startswith(f"<sip:{LOOP}:{kamailio.port}")
    assert invite.header("Proxy-Authorization") is None  # consumed by the proxy
    # In-dialog requests took the record-routed path: BYE arrived through kamailio.
    bye = answered.received("BYE")[0]
    assert f"{LOOP}:{kamailio.port}" in (bye.header("Via") or "")
    assert "authenticated gwa" in kamailio.log_text()


def test_kamailio_404_for_a_user_nobody_registered(kamailio: Kamailio, sipp: SippLauncher) -> None:
    caller = sipp.run(
        "uac_invite",
        remote=(kamailio.host, kamailio.port),
        service="gwb",
        auth_user="gwa",
        auth_password=kamailio.users["gwa"],
        keys={"ruri_host": kamailio.domain, "from_user": "gwa", "from_host": kamailio.domain},
        timeout=20,
    ).check()
    assert caller.final_statuses() == [407, 404]


def test_kamailio_static_route_for_a_number_prefix(
    kamailio_factory: KamailioFactory, sipp: SippLauncher
) -> None:
    carrier = sipp.start("uas_reject", keys={"reject_code": "486", "reject_reason": "Busy Here"})
    kam = kamailio_factory(KamailioConfig(static_routes={"1555": carrier.address}))
    caller = sipp.run(
        "uac_invite",
        remote=(kam.host, kam.port),
        service="+15550001000",
        auth_user="gwa",
        auth_password=kam.users["gwa"],
        keys={"ruri_host": kam.domain, "from_user": "gwa", "from_host": kam.domain},
        timeout=20,
    ).check()
    carrier.wait().check()
    assert caller.final_statuses() == [407, 486]


def test_kamailio_trusted_source_skips_digest(
    kamailio_factory: KamailioFactory, sipp: SippLauncher
) -> None:
    callee = sipp.start("uas_answer")
    peer_port = free_port(("udp",))
    kam = kamailio_factory(
        KamailioConfig(static_routes={"1555": callee.address}, trusted=((LOOP, peer_port),))
    )
    # SIPp from that very port: its INVITE is relayed with no challenge at all.
    caller = sipp.run(
        "uac_invite",
        remote=(kam.host, kam.port),
        service="15550001000",
        keys={"ruri_host": kam.domain},
        local_port=peer_port,
        timeout=20,
    )
    callee.wait().check()
    caller.check()
    assert caller.final_statuses() == [200]


def test_kamailio_max_forwards_and_malformed_flood(kamailio: Kamailio, sipp: SippLauncher) -> None:
    raw = RawSip((kamailio.host, kamailio.port))
    try:
        hop = raw.request(
            "OPTIONS",
            f"sip:gwb@{kamailio.domain}",
            1,
            f"From: <sip:probe@{LOOP}>;tag=mf",
            f"To: <sip:gwb@{kamailio.domain}>",
            max_forwards=0,
        )
    finally:
        raw.close()
    assert hop.status == 483

    flood = sipp.run(
        "uac_flood_malformed",
        remote=(kamailio.host, kamailio.port),
        calls=50,
        rate=500,
        timeout=20,
    )
    assert flood.returncode == 0, flood.describe()
    assert len([m for m in flood.messages if m.direction == "sent"]) == 50 * 10
    # Still serving, and it noticed.
    assert kamailio.options() == 200
    assert "core parsing of SIP message failed" in kamailio.log_text()
    # The well-formed ones among them were answered: 483 to Max-Forwards 0, 407 to the INVITEs.
    answered = {m.status for m in flood.messages if m.direction == "received"}
    assert {407, 483} <= answered


# --- SIPp scenarios, each against a SIPp peer ---


def uac(sipp: SippLauncher, target: tuple[str, int], **options: object) -> SippResult:
    options.setdefault("duration_ms", 200)
    options.setdefault("timeout", 20)
    return sipp.run("uac_invite", remote=target, **options)


@pytest.mark.parametrize(
    ("code", "reason", "extra"),
    [
        ("486", "Busy Here", "Server: farend-sipp"),
        ("404", "Not Found", "Server: farend-sipp"),
        ("503", "Service Unavailable", "Retry-After: 30"),
    ],
)
def test_sipp_uas_reject(sipp: SippLauncher, code: str, reason: str, extra: str) -> None:
    keys = {"reject_code": code, "reject_reason": reason, "reject_extra_header": extra}
    far = sipp.start("uas_reject", keys=keys)
    caller = uac(sipp, far.address).check()
    far.wait().check()
    assert caller.final_statuses() == [int(code)]
    final = next(m for m in caller.messages if m.status == int(code))
    assert final.start_line == f"SIP/2.0 {code} {reason}"
    assert final.header(extra.split(":")[0]) == extra.split(": ", 1)[1]
    assert starts(caller, "sent") == [
        f"INVITE sip:service@{LOOP}:{far.port} SIP/2.0",
        f"ACK sip:service@{LOOP}:{far.port} SIP/2.0",
    ]


def test_sipp_uas_answer_over_tcp(sipp: SippLauncher) -> None:
    far = sipp.start("uas_answer", transport="tcp")
    assert only_loopback(socket_addresses(far.daemon.pid))
    caller = uac(sipp, far.address, transport="tcp").check()
    answered = far.wait().check()
    assert caller.final_statuses() == [200]
    ok = next(m for m in caller.messages if m.status == 200 and m.cseq_method == "INVITE")
    assert re.search(rf"m=audio {far.media_port} RTP/AVP 0 8", ok.body)
    assert [m.method for m in answered.received()] == ["INVITE", "ACK", "BYE"]


def test_sipp_uas_challenge_401_verifies_the_digest(sipp: SippLauncher) -> None:
    far = sipp.start("uas_challenge_401", auth_user="gwa", auth_password="right")
    caller = uac(sipp, far.address, auth_user="gwa", auth_password="right").check()
    far.wait().check()
    assert caller.final_statuses() == [401, 200]

    far = sipp.start("uas_challenge_401", auth_user="gwa", auth_password="right")
    caller = uac(sipp, far.address, auth_user="gwa", auth_password="wrong")
    refused = far.wait()
    assert caller.final_statuses() == [401, 403]
    assert refused.returncode == 1 and refused.failed == 1  # a wrong digest fails the UAS


def test_sipp_uas_challenge_407_and_checking_its_digest(sipp: SippLauncher) -> None:
    far = sipp.start("uas_challenge_407", auth_user="gwa", auth_password="right")
    caller = uac(sipp, far.address, auth_user="gwa", auth_password="wrong").check()
    answered = far.wait().check()
    assert caller.final_statuses() == [407, 200]
    # The scenario only checks the user name (SIPp cannot verify Proxy-Authorization); the
    # test checks the digest itself.
    retry = answered.received("INVITE")[1]
    header = retry.header("Proxy-Authorization") or ""
    assert 'username="gwa"' in header
    assert not verify_digest(header, method="INVITE", password="right")
    assert verify_digest(header, method="INVITE", password="wrong")

    far = sipp.start("uas_challenge_407", auth_user="gwa")
    caller = uac(sipp, far.address, auth_user="somebody-else", auth_password="x")
    assert caller.final_statuses() == [407, 403]
    assert far.wait().returncode == 1  # wrong user name: refused, and the UAS fails the call


def test_sipp_uas_refuses_t38_reinvite_with_488(sipp: SippLauncher) -> None:
    far = sipp.start("uas_reinvite_488")
    caller = sipp.run("uac_reinvite_t38", remote=far.address, duration_ms=200, timeout=20).check()
    refused = far.wait().check()
    assert caller.final_statuses() == [200, 488]
    reinvite = refused.received("INVITE")[1]
    assert "m=image" in reinvite.body and "udptl t38" in reinvite.body
    assert [m.method for m in refused.received()] == ["INVITE", "ACK", "INVITE", "ACK", "BYE"]


def test_sipp_uas_reinvite_audio_answers_the_reinvite(sipp: SippLauncher) -> None:
    far = sipp.start("uas_reinvite_audio")
    caller = sipp.run("uac_reinvite_t38", remote=far.address, duration_ms=200, timeout=20).check()
    accepted = far.wait().check()
    assert caller.final_statuses() == [200, 200]
    assert [m.method for m in accepted.received()] == ["INVITE", "ACK", "INVITE", "ACK", "BYE"]
    answers = [m for m in caller.messages if m.status == 200 and m.cseq_method == "INVITE"]
    assert "o=sipp" in answers[-1].body and "m=audio" in answers[-1].body


def test_sipp_uas_answer_t38_answers_in_t38(sipp: SippLauncher) -> None:
    far = sipp.start("uas_answer_t38")
    caller = uac(sipp, far.address).check()
    far.wait().check()
    ok = next(m for m in caller.messages if m.status == 200 and m.cseq_method == "INVITE")
    assert f"m=image {far.media_port} udptl t38" in ok.body
    assert "a=T38FaxRateManagement:transferredTCF" in ok.body


def test_sipp_uas_hangs_up_with_bye(sipp: SippLauncher) -> None:
    far = sipp.start("uas_bye_after", duration_ms=200)
    # The caller would hold for 10 s; the far end's BYE comes first and ends the call.
    caller = uac(sipp, far.address, duration_ms=10_000).check()
    far.wait().check()
    bye = caller.received("BYE")[0]
    assert bye.start_line.startswith(f"BYE sip:sipp@{LOOP}:")
    assert caller.sent_statuses("BYE") == [200]
    assert not [m for m in caller.messages if m.direction == "sent" and m.method == "BYE"]


def test_sipp_flood_from_another_loopback_address(sipp: SippLauncher) -> None:
    """The flood really goes out, from 127.0.0.2 when asked (a source allow_from refuses)."""
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink.bind((LOOP, 0))
    sink.settimeout(5)
    sources: set[str] = set()
    datagrams: list[bytes] = []
    with sink:
        flood = sipp.start(
            "uac_flood_malformed",
            remote=sink.getsockname(),
            local_ip="127.0.0.2",
            calls=20,
            rate=200,
            timeout=20,
        )
        # Read while it sends: 20 x 10 datagrams, some 12 kB, overflow a default buffer.
        while len(datagrams) < 20 * 10:
            data, source = sink.recvfrom(65535)
            datagrams.append(data)
            sources.add(source[0])
        result = flood.wait()
    assert result.returncode == 0, result.describe()
    assert sources == {"127.0.0.2"}
    assert max(len(d) for d in datagrams) > 12000  # the huge header went out whole
    assert any(d.startswith(b"INVITE  sip: SIP/9.9") for d in datagrams)
    assert any(b"\xff\xfe" in d for d in datagrams)  # high-bit bytes, unmangled


# --- rtpengine ---


def audio_sdp(port: int, payloads: str = "8 0") -> str:
    lines = ["v=0", f"o=- 1 1 IN IP4 {LOOP}", "s=-", f"c=IN IP4 {LOOP}", "t=0 0"]
    lines += [f"m=audio {port} RTP/AVP {payloads}", "a=rtpmap:8 PCMA/8000"]
    lines += ["a=rtpmap:0 PCMU/8000", "a=sendrecv"]
    return "\r\n".join(lines) + "\r\n"


def t38_sdp(port: int) -> str:
    lines = ["v=0", f"o=- 1 1 IN IP4 {LOOP}", "s=-", f"c=IN IP4 {LOOP}", "t=0 0"]
    lines += [
        f"m=image {port} udptl t38",
        "a=T38FaxVersion:0",
        "a=T38MaxBitRate:14400",
        "a=T38FaxRateManagement:transferredTCF",
        "a=T38FaxMaxBuffer:262",
        "a=T38FaxMaxDatagram:300",
        "a=T38FaxUdpEC:t38UDPRedundancy",
        "a=sendrecv",
    ]
    return "\r\n".join(lines) + "\r\n"


def media_line(sdp: str) -> tuple[str, int, str]:
    """(media, port, rest) of the first m= line."""
    match = re.search(r"^m=(\w+) (\d+) (.*?)\r?$", sdp, re.MULTILINE)
    assert match, sdp
    return match.group(1), int(match.group(2)), match.group(3)


def test_bencode_round_trip() -> None:
    value: dict[str, Bencodable] = {
        "command": "offer",
        "T.38": ["force", "no-ECM"],
        "n": 3,
        "sdp": "v=0\r\n",
    }
    encoded = bencode(value)
    assert encoded.startswith(b"d4:T.38l5:force6:no-ECMe7:command5:offer")
    assert bdecode(encoded) == value


def test_rtpengine_ping_and_loopback_only(rtpengine: Rtpengine) -> None:
    with rtpengine.client() as ng:
        assert ng.ping() == "pong"
    addresses = socket_addresses(rtpengine.daemon.pid)
    assert ("udp", LOOP, rtpengine.ng_port) in addresses
    assert only_loopback(addresses), addresses


def test_rtpengine_rewrites_plain_audio(rtpengine: Rtpengine) -> None:
    with rtpengine.client() as ng:
        offer = ng.offer(audio_sdp(40000), "plain", "caller", ICE="remove")
        answer = ng.answer(audio_sdp(40100), "plain", "caller", "callee", ICE="remove")
        to_callee, to_caller = media_line(offer["sdp"]), media_line(answer["sdp"])
        for media, port, rest in (to_callee, to_caller):
            assert media == "audio" and rest == "RTP/AVP 8 0"
            assert rtpengine.port_min <= port <= rtpengine.port_max
        assert to_callee[1] != to_caller[1]
        assert f"c=IN IP4 {LOOP}" in offer["sdp"]
        assert set(ng.query("plain")["tags"]) == {"caller", "callee"}
        ng.delete("plain", "caller")
        with pytest.raises(NgError, match="Unknown call-id"):
            ng.query("plain")


def test_rtpengine_t38_force_and_decode_rewrite_the_media(rtpengine: Rtpengine) -> None:
    with rtpengine.client() as ng:
        # An audio caller, a T.38 callee: the callee is offered T.38, the caller answered audio.
        offer = ng.offer(audio_sdp(40000), "force", "caller", ICE="remove", T38=["force"])
        assert media_line(offer["sdp"])[::2] == ("image", "udptl t38")
        assert "a=T38FaxRateManagement:transferredTCF" in offer["sdp"]
        answer = ng.answer(t38_sdp(40100), "force", "caller", "callee", ICE="remove")
        assert media_line(answer["sdp"])[::2] == ("audio", "RTP/AVP 8")

        # A T.38 caller, an audio callee: the callee is offered PCMU/PCMA, the caller T.38.
        offer = ng.offer(t38_sdp(40200), "decode", "caller", ICE="remove", T38=["decode"])
        assert media_line(offer["sdp"])[::2] == ("audio", "RTP/AVP 0 8")
        answer = ng.answer(audio_sdp(40300, "8"), "decode", "caller", "callee", ICE="remove")
        assert media_line(answer["sdp"])[::2] == ("image", "udptl t38")


def rtp(seq: int, payload: bytes) -> bytes:
    return struct.pack("!BBHII", 0x80, 8, seq & 0xFFFF, (seq * 160) & 0xFFFFFFFF, 0xFA7) + payload


def test_rtpengine_gateways_a_real_fax_from_g711_to_t38(rtpengine: Rtpengine) -> None:
    """One page from a G.711 fax modem (ours, PCMA over RTP) through rtpengine's spandsp
    t38_gateway to a T.38 terminal (ours, UDPTL): T.38 <-> audio by an implementation that is
    not ours, in userspace. rtpengine paces the audio it generates by its own clock, so the
    call runs in real time on a 20 ms tick (about 20 s for the page)."""
    audio = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    image = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for s in (audio, image):
        s.bind((LOOP, 0))
        s.setblocking(False)
    with (
        audio,
        image,
        rtpengine.client() as ng,
        fax_files(g4_tiff(1)) as files,
        AudioFaxEndpoint(calling=True, config=sender_config(files, 1), law=G711Law.ALAW) as tx,
        T38Endpoint(calling=False, config=receiver_config(files)) as rx,
    ):
        offer_sdp = audio_sdp(audio.getsockname()[1], "8")
        offer = ng.offer(offer_sdp, "fax", "caller", ICE="remove", T38=["force"])
        answer = ng.answer(t38_sdp(image.getsockname()[1]), "fax", "caller", "callee")
        to_audio = (LOOP, media_line(answer["sdp"])[1])
        to_image = (LOOP, media_line(offer["sdp"])[1])
        sender, receiver = udptl.UdptlSender(300, redundancy=3), udptl.UdptlReceiver()
        start, tick, end_at = time.monotonic(), 0, None
        while tick < 120 * 50 and (end_at is None or tick < end_at):  # guard: 120 s of media
            time.sleep(max(0.0, start + tick * 0.02 - time.monotonic()))
            audio.sendto(rtp(tick, tx.transmit_frame()), to_audio)
            rx.tick()
            for out in rx.take_outgoing():
                datagram = sender.build(out.ifp)
                for _ in range(out.count):
                    image.sendto(datagram, to_image)
            for data in _drain(audio):
                tx.receive_frame(data[12 + 4 * (data[0] & 0x0F) :], G711Law.ALAW)
            for data in _drain(image):
                for got in receiver.receive(udptl.decode_packet(data)):
                    rx.receive_ifp(got.seq, got.ifp)
            tick += 1
            if end_at is None and (tx.done or rx.done):
                end_at = tick + 25  # half a second for the last frames, then "BYE"
        tx.hangup()
        rx.hangup()
        sent, received = tx.outcome(), rx.outcome()
    assert sent.success and received.success, (sent, received, rtpengine.log_text()[-2000:])
    assert (sent.pages_sent, received.pages_received) == (1, 1)
    assert sent.remote_ident == "+15550001000" and received.remote_ident == "+15557770000"


def _drain(sock: socket.socket) -> list[bytes]:
    out = []
    while True:
        try:
            out.append(sock.recv(65535))
        except BlockingIOError:
            return out


def test_kamailio_puts_rtpengine_in_the_media_path(
    kamailio_factory: KamailioFactory, rtpengine: Rtpengine, sipp: SippLauncher
) -> None:
    """kamailio's rtpengine module with T.38=force on the initial INVITE: an audio caller
    reaches a T.38 callee, both SDPs pointing at rtpengine."""
    callee = sipp.start("uas_answer_t38")
    kam = kamailio_factory(
        KamailioConfig(
            static_routes={"1555": callee.address},
            rtpengine=RtpengineLink(rtpengine.ng_port, offer_flags="T.38=force ICE=remove"),
        )
    )
    caller = sipp.run(
        "uac_invite",
        remote=(kam.host, kam.port),
        service="15550001000",
        auth_user="gwa",
        auth_password=kam.users["gwa"],
        keys={"ruri_host": kam.domain, "from_user": "gwa", "from_host": kam.domain},
        duration_ms=200,
        timeout=20,
    ).check()
    answered = callee.wait().check()

    offered = answered.received("INVITE")[0].body
    media, port, rest = media_line(offered)
    assert (media, rest) == ("image", "udptl t38")
    assert rtpengine.port_min <= port <= rtpengine.port_max
    ok = next(m for m in caller.messages if m.status == 200 and m.cseq_method == "INVITE")
    media, port, rest = media_line(ok.body)
    assert media == "audio" and rest.startswith("RTP/AVP")
    assert rtpengine.port_min <= port <= rtpengine.port_max
    assert "Received command 'offer'" in rtpengine.log_text()
    assert "Received command 'delete'" in rtpengine.log_text()  # at the BYE


def test_kamailio_rtpengine_decode_turns_a_t38_reinvite_into_audio(
    kamailio_factory: KamailioFactory, rtpengine: Rtpengine, sipp: SippLauncher
) -> None:
    """The set-up for "a T.38 leg meets a G.711 leg": the caller re-INVITEs to T.38, kamailio
    has rtpengine decode it (T.38=decode), the G.711 callee sees an audio re-INVITE and
    answers it in audio, and the caller is answered T.38, by rtpengine's gateway."""
    callee = sipp.start("uas_reinvite_audio")
    kam = kamailio_factory(
        KamailioConfig(
            static_routes={"1555": callee.address},
            rtpengine=RtpengineLink(
                rtpengine.ng_port, offer_flags="ICE=remove", reoffer_flags="T.38=decode"
            ),
        )
    )
    caller = sipp.run(
        "uac_reinvite_t38",
        remote=(kam.host, kam.port),
        service="15550001000",
        auth_user="gwa",
        auth_password=kam.users["gwa"],
        keys={"ruri_host": kam.domain, "from_user": "gwa", "from_host": kam.domain},
        duration_ms=300,
        timeout=20,
    ).check()
    answered = callee.wait().check()

    assert caller.final_statuses() == [407, 200, 200]
    reinvite = answered.received("INVITE")[1]
    assert media_line(reinvite.body)[::2] == ("audio", "RTP/AVP 0 8")
    t38_answer = [m for m in caller.messages if m.status == 200 and m.cseq_method == "INVITE"]
    media, port, rest = media_line(t38_answer[-1].body)
    assert (media, rest) == ("image", "udptl t38")
    assert rtpengine.port_min <= port <= rtpengine.port_max


def test_ng_client_refuses_a_non_loopback_target() -> None:
    with pytest.raises(FarEndError, match="loopback"):
        NgClient("192.0.2.1", 2223)


def test_kamailio_config_refuses_a_non_loopback_route() -> None:
    with pytest.raises(ValueError, match="loopback"):
        render_config(KamailioConfig(static_routes={"1": ("192.0.2.1", 5060)}), 5060, "x")


def test_paths_stay_in_tmp(kamailio: Kamailio, tmp_path: Path) -> None:
    assert kamailio.config_path.is_relative_to(tmp_path)
    assert f"-Y {kamailio.directory}" in " ".join(kamailio.daemon.argv)
