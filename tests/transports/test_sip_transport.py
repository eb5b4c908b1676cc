"""Two SIP transports in one process, A calling B as its proxy, over real sockets on 127.0.0.x.

B stands for the far gateway: its inbound line (``Recorder``) has one faxbox number and refuses
the others, and B lets in only 127.0.0.1. Every fax is a real multi-page TIFF-F through real
T.30 engines on both sides, over T.38 or G.711 as the t38 settings of the two make them
negotiate; the media clocks run 10x fast (media time moves by ticks only), so a call's figures
are those of a real call. Timeouts are guards, never assertions.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest

from gateway.transports.base import ArrivingCall, FailureClass, OutboundCall, TxResult
from gateway.transports.sip import SipTransport, format_number
from gateway.transports.sip_session import T38Attempt
from tests.transports.sip_helpers import (
    CALLEE,
    CALLEE_CSI,
    CALLER,
    GUARD_S,
    HOST,
    OTHER_HOST,
    TEST_PERIOD_S,
    Recorder,
    pages_in,
    running,
    sip_settings,
)

PAGES = 2
MakeCall = Callable[..., OutboundCall]


@asynccontextmanager
async def a_and_b(
    *,
    t38_a: str = "accept",
    t38_b: str = "accept",
    transport: str = "udp",
    a_host: str = HOST,
    line: Recorder | None = None,
    a: dict[str, Any] | None = None,
    b: dict[str, Any] | None = None,
) -> AsyncIterator[tuple[SipTransport, SipTransport, Recorder]]:
    """B listening (letting in 127.0.0.1 only), then A with B as its proxy."""
    line = line or Recorder()
    b_settings = sip_settings(
        proxy_port=9,  # B never calls out here
        allow_from=("127.0.0.1/32",),
        t38=t38_b,
        rtp_port_min=43000,
        rtp_port_max=43999,
        **(b or {}),
    )
    async with running(SipTransport(b_settings, line, clock_period_s=TEST_PERIOD_S)) as gw_b:
        a_settings = sip_settings(
            listen_host=a_host,
            proxy_port=gw_b.port,
            transport=transport,
            t38=t38_a,
            rtp_port_min=42000,
            rtp_port_max=42999,
            **(a or {}),
        )
        nobody = Recorder(numbers=())
        async with running(SipTransport(a_settings, nobody, clock_period_s=TEST_PERIOD_S)) as gw_a:
            yield gw_a, gw_b, line


async def send(gateway: SipTransport, call: OutboundCall) -> TxResult:
    return await asyncio.wait_for(gateway.send(call), GUARD_S)


def assert_fax_arrived(result: TxResult, line: Recorder, media: str) -> None:
    """A's result and B's reception agree, with the figures of a real call."""
    assert result.success, result
    assert result.failure_class is None and result.result_code == 0
    assert (result.sip_code, result.media) == (200, media)
    assert result.pages_sent == PAGES
    assert result.fax_speed == 14400 and result.fax_error_correction
    assert result.fax_receiver_id == CALLEE_CSI  # B's CSI, the faxbox's identity
    assert result.line_seconds > 0
    assert len(line.receptions) == 1
    reception, fax = line.receptions[0]
    assert reception.fax_id == "fax-in-1"
    assert fax.success and fax.pages == PAGES
    assert pages_in(fax.tiff) == PAGES
    assert fax.remote_tsi == CALLER
    assert fax.fax_speed == 14400 and fax.fax_error_correction
    assert line.arrived == [ArrivingCall(dialled=CALLEE, caller_number=CALLER, caller_name=None)]


# Faxes that go through


@pytest.mark.parametrize("transport", ["udp", "tcp"])
async def test_over_t38_the_receiver_switches_after_hearing_cng(
    make_call: MakeCall, transport: str
) -> None:
    """t38 = "accept" on both: the call starts in G.711, B (the receiver) hears A's CNG and
    re-INVITEs to T.38, A accepts; the pages go over T.38."""
    async with a_and_b(transport=transport) as (a, b, line):
        result = await send(a, make_call(pages=PAGES))
        await line.until(received=1)
    assert_fax_arrived(result, line, "t38")
    assert b.recent[-1].t38 == [T38Attempt(ours=True, status=200, switched=True)]
    assert a.recent[-1].t38 == [T38Attempt(ours=False, status=200, switched=True)]
    assert a.recent[-1].sip_end == "local bye"  # the sender hangs up once T.30 is done
    assert b.recent[-1].media == "t38" and b.recent[-1].sip_end == "remote bye"
    assert a.lines.in_use == b.lines.in_use == 0


async def test_over_g711_when_neither_side_does_t38(make_call: MakeCall) -> None:
    async with a_and_b(t38_a="off", t38_b="off") as (a, b, line):
        result = await send(a, make_call(pages=PAGES))
        await line.until(received=1)
    assert_fax_arrived(result, line, "g711")
    assert a.recent[-1].t38 == b.recent[-1].t38 == []  # nobody offered T.38


async def test_a_sender_that_requests_t38_ends_up_in_t38_once(make_call: MakeCall) -> None:
    """t38 = "request" on A: whoever asks first (A after 2 s of audio, B after CNG), the call
    switches once and the fax goes over T.38."""
    async with a_and_b(t38_a="request") as (a, b, line):
        result = await send(a, make_call(pages=PAGES))
        await line.until(received=1)
    assert_fax_arrived(result, line, "t38")
    switches = [t for t in [*a.recent[-1].t38, *b.recent[-1].t38] if t.switched]
    assert len(switches) == 2  # one re-INVITE, seen from both ends


async def test_a_t38_request_refused_488_carries_on_in_audio(make_call: MakeCall) -> None:
    """A asks for T.38, B (t38 = "off") answers 488: the fax completes in G.711."""
    async with a_and_b(t38_a="request", t38_b="off") as (a, b, line):
        result = await send(a, make_call(pages=PAGES))
        await line.until(received=1)
    assert_fax_arrived(result, line, "g711")
    assert a.recent[-1].t38 == [T38Attempt(True, 488, False, "Not Acceptable Here")]
    assert b.recent[-1].t38 == [T38Attempt(False, 488, False, "t38 = off")]


# Calls that do not go through


async def test_a_number_b_does_not_have_is_a_permanent_failure_404(make_call: MakeCall) -> None:
    async with a_and_b() as (a, _b, line):
        result = await send(a, make_call(to_number="+15559990000"))
    assert not result.success
    assert result.failure_class is FailureClass.PERMANENT
    assert result.sip_code == 404 and result.result_text == "SIP 404 Not Found"
    assert result.result_code == -1  # Q.850 "unallocated number", as a PSTN gateway says
    assert result.media is None and result.pages_sent == 0
    assert [call.dialled for call in line.arrived] == ["+15559990000"]
    assert line.receptions == []  # refused before it became a fax


async def test_a_caller_from_a_disallowed_address_gets_403(make_call: MakeCall) -> None:
    async with a_and_b(a_host=OTHER_HOST) as (a, _b, line):
        result = await send(a, make_call())
    assert result.failure_class is FailureClass.PERMANENT
    assert result.sip_code == 403 and result.result_text.startswith("SIP 403")
    assert line.arrived == []  # B's inbound line never heard of it


async def test_beyond_max_calls_an_outbound_attempt_fails_at_once_as_line_busy(
    make_call: MakeCall,
) -> None:
    hold = asyncio.Event()
    async with a_and_b(line=Recorder(hold=hold), a={"max_calls": 1}) as (a, _b, line):
        first = asyncio.create_task(send(a, make_call(to_number="+15559990000")))
        await line.until(arrived=1)  # A's one line is in use, ringing at B
        second = await send(a, make_call())
        hold.set()
        assert (await first).sip_code == 404
    assert second.failure_class is FailureClass.LINE
    assert second.result_text == "all lines busy (max_calls = 1)"
    assert second.sip_code is None and second.result_code == -34  # no circuit available
    assert len(line.arrived) == 1  # the second never left A


async def test_beyond_max_calls_an_inbound_call_is_refused_486(make_call: MakeCall) -> None:
    hold = asyncio.Event()
    async with a_and_b(line=Recorder(hold=hold), b={"max_calls": 1}) as (a, _b, line):
        first = asyncio.create_task(send(a, make_call(to_number="+15559990000")))
        await line.until(arrived=1)
        second = await send(a, make_call())
        hold.set()
        await first
    assert second.failure_class is FailureClass.BUSY
    assert second.sip_code == 486 and "all lines busy" in second.result_text
    assert len(line.arrived) == 1


async def test_ring_timeout_is_no_answer_and_b_still_closes_its_reception(
    make_call: MakeCall,
) -> None:
    """B's inbound line takes its time; A gives up after ring_timeout_s and cancels. B was
    admitting the call: its line still hears how it ended, exactly once."""
    hold = asyncio.Event()
    async with a_and_b(line=Recorder(hold=hold), a={"ring_timeout_s": 0.5}) as (a, _b, line):
        result = await send(a, make_call())
        hold.set()
        await line.until(received=1)
    assert result.failure_class is FailureClass.NO_ANSWER
    assert result.sip_code == 487  # B's answer to our CANCEL
    assert result.result_text.startswith("no answer within 0.5 s")
    [(_, fax)] = line.receptions
    assert not fax.success and fax.pages == 0 and fax.tiff == b""
    assert fax.result_text == "the caller hung up before the call was answered"


# Dialling


@pytest.mark.parametrize(
    ("number_format", "number", "region", "dialled"),
    [
        ("e164", "+14155550101", None, "+14155550101"),
        ("digits", "+14155550101", None, "14155550101"),
        ("national", "+14155550101", None, "4155550101"),
        ("national", "+14155550101", "US", "4155550101"),
        ("national", "+14155550101", "CA", "4155550101"),  # one numbering plan
        ("national", "+14155550101", "GB", "0014155550101"),
        ("national", "+442079460000", "US", "011442079460000"),
        ("national", "+442079460000", "GB", "02079460000"),
        ("national", "+442079460000", None, "02079460000"),
    ],
)
def test_number_formats(number_format: str, number: str, region: str | None, dialled: str) -> None:
    assert format_number(number, number_format, region) == dialled


def test_the_request_uri_has_the_prefix_the_domain_and_an_escaped_hash(
    make_call: MakeCall,
) -> None:
    settings = sip_settings(domain="carrier.example", dial_prefix="*31#", number_format="digits")
    transport = SipTransport(settings, Recorder())
    dialled = transport.dialled(make_call())
    assert dialled.uri == "sip:*31%2315550001000@carrier.example"
    assert dialled.from_user == "15557770000"  # the caller id, in the trunk's format too
    no_caller = transport.dialled(make_call(from_number=None))
    assert no_caller.from_user == "fax-gateway"
