"""The SIP transport against SIPp (Debian's sip-tester) as a scripted far end, on loopback.

SIPp carries no fax media: where a scenario answers, the call has no RTP, so it ends on media
silence (kept short here) with T.30's own word for it, and our BYE. What these check is the
signalling and how each SIP outcome becomes a failure class the retry policy acts on.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest

from gateway.sip.message import Response, new_branch, new_call_id, new_tag, parse_message
from gateway.transports.base import FailureClass, OutboundCall, TxResult
from gateway.transports.sip import SipTransport
from gateway.transports.sip_session import T38Attempt
from tests.farend.fixtures import (  # noqa: F401
    KamailioFactory,
    SippLauncher,
    kamailio_factory,
    sipp,
)
from tests.farend.kamailio import KamailioConfig
from tests.farend.sipp import Sipp, SippResult, verify_digest
from tests.transports.sip_helpers import (
    CALLEE,
    CALLEE_CSI,
    GUARD_S,
    HOST,
    OTHER_HOST,
    TEST_PERIOD_S,
    Recorder,
    pages_in,
    running,
    sip_settings,
)

MakeCall = Callable[..., OutboundCall]
# Media seconds without RTP before a call ends: above the 2 s after which a sender asks for
# T.38, so that the re-INVITE goes out first.
SILENCE_S = 3.0


@asynccontextmanager
async def gateway_to(
    far: Sipp | None, line: Recorder | None = None, **keys: Any
) -> AsyncIterator[SipTransport]:
    """Our transport with the SIPp far end as its proxy (or, with none, only listening)."""
    settings = sip_settings(
        proxy_port=far.port if far is not None else 9,
        media_silence_s=SILENCE_S,
        rtp_port_min=44000,
        rtp_port_max=44999,
        **keys,
    )
    transport = SipTransport(settings, line or Recorder(), clock_period_s=TEST_PERIOD_S)
    async with running(transport):
        yield transport


async def send(gateway: SipTransport, call: OutboundCall) -> TxResult:
    return await asyncio.wait_for(gateway.send(call), GUARD_S)


def assert_ended_on_silence(result: TxResult) -> None:
    """Answered, no fax media ever came: a line failure in T.30's words, not a success."""
    assert not result.success
    assert (result.sip_code, result.media) == (200, "g711")
    assert result.failure_class is FailureClass.LINE
    assert result.result_text == "The call dropped prematurely"
    assert result.pages_sent == 0 and result.fax_receiver_id is None


# Refusals


@pytest.mark.parametrize(
    ("code", "reason", "extra", "failure"),
    [
        ("486", "Busy Here", "Server: farend-sipp", FailureClass.BUSY),
        ("404", "Not Found", "Server: farend-sipp", FailureClass.PERMANENT),
        ("503", "Service Unavailable", "Retry-After: 30", FailureClass.LINE),
    ],
)
async def test_a_refusal_becomes_its_failure_class(
    sipp: SippLauncher,  # noqa: F811
    make_call: MakeCall,
    code: str,
    reason: str,
    extra: str,
    failure: FailureClass,
) -> None:
    keys = {"reject_code": code, "reject_reason": reason, "reject_extra_header": extra}
    far = sipp.start("uas_reject", keys=keys)
    async with gateway_to(far) as gateway:
        result = await send(gateway, make_call())
    far_end = (await far.wait_async()).check()  # it got its ACK
    assert result.failure_class is failure
    assert result.sip_code == int(code)
    assert result.result_text == f"SIP {code} {reason}"
    assert result.media is None and result.pages_sent == 0
    [invite] = far_end.received("INVITE")
    assert invite.start_line == f"INVITE sip:{CALLEE}@{HOST} SIP/2.0"
    assert "m=audio" in invite.body and "RTP/AVP 0 8" in invite.body  # PCMU, PCMA offered


# Digest challenges


async def test_a_401_challenge_is_answered_with_the_accounts_digest(
    sipp: SippLauncher,  # noqa: F811
    make_call: MakeCall,
) -> None:
    far = sipp.start("uas_challenge_401", auth_user="gwa", auth_password="right")
    async with gateway_to(far, username="gwa", password="right") as gateway:
        result = await send(gateway, make_call())
    far_end = (await far.wait_async()).check()  # verifyauth accepted it, and our BYE came
    assert_ended_on_silence(result)
    first, retry = far_end.received("INVITE")
    assert first.header("Authorization") is None
    assert 'username="gwa"' in (retry.header("Authorization") or "")
    assert [m.method for m in far_end.received()][-1] == "BYE"


async def test_a_407_challenge_is_answered_with_a_right_proxy_digest(
    sipp: SippLauncher,  # noqa: F811
    make_call: MakeCall,
) -> None:
    far = sipp.start("uas_challenge_407", auth_user="gwa")
    async with gateway_to(far, username="gwa", password="right") as gateway:
        result = await send(gateway, make_call())
    far_end = (await far.wait_async()).check()
    assert_ended_on_silence(result)
    retry = far_end.received("INVITE")[1]
    header = retry.header("Proxy-Authorization") or ""
    assert verify_digest(header, method="INVITE", password="right")


# T.38 refused


async def test_a_488_to_our_t38_reinvite_leaves_the_call_in_audio(
    sipp: SippLauncher,  # noqa: F811
    make_call: MakeCall,
) -> None:
    far = sipp.start("uas_reinvite_488")
    async with gateway_to(far, t38="request") as gateway:
        result = await send(gateway, make_call())
    far_end = (await far.wait_async()).check()
    # Our re-INVITE went, offering T.38 only; SIPp refused it; we stayed in G.711 (and the
    # call went on until the silence, not ended by the refusal).
    reinvite = far_end.received("INVITE")[1]
    assert "m=image" in reinvite.body and "udptl t38" in reinvite.body
    assert "m=audio" not in reinvite.body
    assert 488 in far_end.sent_statuses("INVITE")
    assert gateway.recent[-1].t38 == [T38Attempt(True, 488, False, "Not Acceptable Here")]
    assert gateway.recent[-1].media_end == "media_silence"
    assert_ended_on_silence(result)
    assert [m.method for m in far_end.received()] == ["INVITE", "ACK", "INVITE", "ACK", "BYE"]


# Hostile senders


def options_status(port: int) -> int:
    """One OPTIONS from 127.0.0.1 over UDP: the status of the final response. Sent again as
    RFC 3261's Timer E does (0.5 s, doubling, up to Timer F's 32 s): a datagram may be lost,
    and a UDP client that sends once and gives up proves nothing about the server."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((HOST, 0))
        local = sock.getsockname()[1]
        lines = [
            f"OPTIONS sip:{CALLEE}@{HOST}:{port} SIP/2.0",
            f"Via: SIP/2.0/UDP {HOST}:{local};branch={new_branch()};rport",
            "Max-Forwards: 70",
            f"From: <sip:probe@{HOST}>;tag={new_tag()}",
            f"To: <sip:{CALLEE}@{HOST}>",
            f"Call-ID: {new_call_id()}",
            "CSeq: 1 OPTIONS",
            "Content-Length: 0",
            "",
            "",
        ]
        request = "\r\n".join(lines).encode()
        interval, waited = 0.5, 0.0
        while waited < 32:
            sock.sendto(request, (HOST, port))
            sock.settimeout(interval)
            try:
                while True:
                    response = parse_message(sock.recv(65535))
                    assert isinstance(response, Response)
                    if response.status >= 200:
                        return response.status
            except TimeoutError:
                waited += interval
                interval = min(interval * 2, 4.0)
        raise TimeoutError("no final response to OPTIONS within Timer F (32 s)")


async def invite_from_sipp(sipp: SippLauncher, port: int) -> SippResult:  # noqa: F811
    return await sipp.start(
        "uac_invite", remote=(HOST, port), service=CALLEE, duration_ms=200, timeout=20
    ).wait_async()


@pytest.mark.parametrize("source", [OTHER_HOST, HOST], ids=["disallowed", "allowed"])
async def test_a_malformed_flood_leaves_the_transport_answering(
    sipp: SippLauncher,  # noqa: F811
    source: str,
) -> None:
    line = Recorder()
    async with gateway_to(None, line, allow_from=("127.0.0.1/32",)) as gateway:
        flood = await sipp.start(
            "uac_flood_malformed",
            remote=(HOST, gateway.port),
            local_ip=source,
            calls=50,
            rate=500,
            timeout=20,
        ).wait_async()
        assert flood.returncode == 0, flood.describe()
        assert len([m for m in flood.messages if m.direction == "sent"]) == 50 * 10
        assert line.arrived == []  # none of it reached the inbound line

        assert await asyncio.to_thread(options_status, gateway.port) == 200
        caller = await invite_from_sipp(sipp, gateway.port)
        await line.until(received=1)
    caller.check()
    assert caller.final_statuses() == [200]
    assert [call.dialled for call in line.arrived] == [CALLEE]
    [(_, fax)] = line.receptions  # SIPp sent no fax: received, and recorded as failed
    assert not fax.success and fax.pages == 0


# Inbound calls that bring T.38 themselves


def answers(result: SippResult) -> list[str]:
    """The bodies of the 200s SIPp received to its INVITEs (first and re-)."""
    return [m.body for m in result.messages if m.status == 200 and m.cseq_method == "INVITE"]


@pytest.mark.parametrize(
    ("t38", "taken", "refused"),
    [("accept", "m=image", "m=audio 0 "), ("off", "m=audio", "m=image 0 ")],
)
async def test_t38_offered_beside_audio_in_the_invite_is_taken_unless_off(
    sipp: SippLauncher,  # noqa: F811
    t38: str,
    taken: str,
    refused: str,
) -> None:
    line = Recorder()
    async with gateway_to(None, line, allow_from=("127.0.0.1/32",), t38=t38) as gateway:
        caller = await sipp.start(
            "uac_invite_audio_and_t38",
            remote=(HOST, gateway.port),
            service=CALLEE,
            duration_ms=300,
            timeout=20,
        ).wait_async()
        await line.until(received=1)
    caller.check()
    [answer] = answers(caller)
    assert refused in answer  # one answer line per offered stream, the other one refused
    [accepted] = [line for line in answer.splitlines() if line.startswith(taken)]
    assert not accepted.startswith(f"{taken} 0 ")
    record = gateway.recent[-1]
    assert record.direction == "inbound" and record.sip_code == 200
    assert record.media == ("t38" if t38 == "accept" else "g711")
    if t38 == "accept":
        assert record.t38 == [T38Attempt(False, 200, True, "T.38 offered in the INVITE")]
    [(_, fax)] = line.receptions
    assert not fax.success and fax.pages == 0  # SIPp is no fax machine


@pytest.mark.parametrize(
    "scenario",
    [
        "uac_reinvite_t38_next_version",
        pytest.param(
            "uac_reinvite_t38",
            id="same-version",
        ),
    ],
)
async def test_the_callers_t38_reinvite_is_answered_and_switches_the_media(
    sipp: SippLauncher,  # noqa: F811
    scenario: str,
) -> None:
    line = Recorder()
    async with gateway_to(None, line, allow_from=("127.0.0.1/32",)) as gateway:
        caller = await sipp.start(
            scenario,
            remote=(HOST, gateway.port),
            service=CALLEE,
            duration_ms=100,
            timeout=20,
        ).wait_async()
        await line.until(received=1)
    caller.check()
    assert caller.final_statuses() == [200, 200]
    first, switched = answers(caller)
    assert "m=audio" in first and "m=image" not in first
    assert "m=image" in switched and "udptl t38" in switched
    assert "T38FaxRateManagement:transferredTCF" in switched
    record = gateway.recent[-1]
    assert record.t38 == [T38Attempt(ours=False, status=200, switched=True)]
    assert record.media == "t38" and record.sip_end == "remote bye"


# Through a real proxy and registrar


async def test_a_fax_through_kamailio_to_a_registered_gateway(
    kamailio_factory: KamailioFactory,  # noqa: F811
    make_call: MakeCall,
) -> None:
    """B registers its number at kamailio (digest); A sends through kamailio, answering its
    407; kamailio finds B by the registration and record-routes the dialog, so B's T.38
    re-INVITE and A's BYE go through it too. B's binding is removed when B closes."""
    kam = kamailio_factory(KamailioConfig(users={"gwa": "secret-a", CALLEE: "secret-b"}))
    common = {"proxy_host": kam.host, "proxy_port": kam.port, "domain": kam.domain}
    b_settings = sip_settings(
        **common,
        username=CALLEE,
        password="secret-b",
        register=True,
        rtp_port_min=45000,
        rtp_port_max=45999,
    )
    a_settings = sip_settings(
        **common, username="gwa", password="secret-a", rtp_port_min=46000, rtp_port_max=46999
    )
    line = Recorder()
    b = SipTransport(b_settings, line, clock_period_s=TEST_PERIOD_S)
    async with running(b):
        assert b.registration is not None
        await asyncio.wait_for(b.registration.registered.wait(), GUARD_S)
        assert kam.contacts(CALLEE) == [f"sip:{CALLEE}@{HOST}:{b.port}"]
        a = SipTransport(a_settings, Recorder(numbers=()), clock_period_s=TEST_PERIOD_S)
        async with running(a):
            result = await send(a, make_call(pages=2))
            await line.until(received=1)
    assert kam.contacts(CALLEE) == []  # unregistered at close
    assert result.success, result
    assert (result.sip_code, result.media, result.pages_sent) == (200, "t38", 2)
    assert result.fax_receiver_id == CALLEE_CSI
    [(_, fax)] = line.receptions
    assert fax.success and fax.pages == 2 and pages_in(fax.tiff) == 2
    assert b.recent[-1].t38 == [T38Attempt(ours=True, status=200, switched=True)]
    assert "authenticated gwa" in kam.log_text()
