"""The user agent against a far end scripted packet by packet (a raw UDP socket): what two
of our own cannot be made to do — a 2xx crossing our CANCEL, a lost ACK, a second fork
answering, a peer that forgets to refresh the session, a caller that never ACKs."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator

import pytest

from gateway.sip.calls import Call, OutboundCall
from gateway.sip.message import Headers, Request, Response, response_for
from gateway.sip.sockets import Peer, SipSockets
from tests.sip.net import RawUdp, make_request
from tests.sip.stations import (
    CALLEE_SDP,
    CALLER_SDP,
    GUARD,
    NUMBER,
    TIMERS,
    Station,
    ringing_sets,
    station,
    until,
)

# --- against a scripted far end: what only a raw peer can make happen ----------------------


async def expect(raw: RawUdp, method: str) -> Request:
    """The next request ``method`` that reaches ``raw`` (retransmissions of others skipped)."""
    async with asyncio.timeout(GUARD):
        while True:
            message = await raw.receive()
            if isinstance(message, Request) and message.method == method:
                return message


def answer(invite: Request, raw: RawUdp, tag: str) -> Response:
    contact = ("Contact", f"<sip:far@127.0.0.1:{raw.port}>")
    return response_for(
        invite,
        200,
        to_tag=tag,
        headers=(contact, ("Content-Type", "application/sdp")),
        body=CALLEE_SDP,
    )


@contextlib.asynccontextmanager
async def scripted() -> AsyncIterator[tuple[Station, RawUdp]]:
    raw = await RawUdp.open()
    try:
        async with station(Peer("udp", "127.0.0.1", raw.port)) as a:
            yield a, raw
    finally:
        raw.close()


async def hang_up(call: Call, raw: RawUdp) -> None:
    ending = asyncio.create_task(call.bye())
    bye = await expect(raw, "BYE")
    raw.send(response_for(bye, 200), a_sockets(call))
    await asyncio.wait_for(ending, GUARD)


def a_sockets(call: Call) -> SipSockets:
    return call.ua.sockets


async def test_an_answer_crossing_the_cancel_is_acked_and_hung_up() -> None:
    async with scripted() as (a, raw):
        ringing = asyncio.Event()
        task = asyncio.create_task(
            a.ua.invite(
                f"sip:{NUMBER}@127.0.0.1",
                "fax",
                CALLER_SDP,
                on_provisional=ringing_sets(ringing),
            )
        )
        invite = await expect(raw, "INVITE")
        raw.send(response_for(invite, 180, to_tag="far1"), a.sockets)
        await asyncio.wait_for(ringing.wait(), GUARD)
        task.cancel()
        cancel = await expect(raw, "CANCEL")
        assert cancel.vias[0].branch == invite.vias[0].branch
        raw.send(response_for(cancel, 200, to_tag="far1"), a.sockets)
        raw.send(answer(invite, raw, "far1"), a.sockets)  # the far end answered first
        ack = await expect(raw, "ACK")
        bye = await expect(raw, "BYE")
        raw.send(response_for(bye, 200), a.sockets)
        assert ack.to_addr.tag == bye.to_addr.tag == "far1"
        assert ack.uri == bye.uri == f"sip:far@127.0.0.1:{raw.port}"
        with pytest.raises(asyncio.CancelledError):
            await task
        assert a.ua.calls == ()


async def test_no_cancel_goes_before_a_provisional_response() -> None:
    async with scripted() as (a, raw):
        task = asyncio.create_task(a.ua.invite(f"sip:{NUMBER}@127.0.0.1", "fax", CALLER_SDP))
        invite = await expect(raw, "INVITE")
        task.cancel()
        methods = set()
        with contextlib.suppress(TimeoutError):  # a short look, to show an absence
            while True:
                methods.add(getattr(await raw.receive(timeout=0.2), "method", None))
        assert methods <= {"INVITE"}  # retransmissions only: RFC 3261 §9.1 waits
        raw.send(response_for(invite, 100), a.sockets)
        await expect(raw, "CANCEL")
        raw.send(response_for(invite, 487, to_tag="far1"), a.sockets)
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_a_retransmitted_2xx_is_acked_again() -> None:
    async with scripted() as (a, raw):
        task = asyncio.create_task(a.ua.invite(f"sip:{NUMBER}@127.0.0.1", "fax", CALLER_SDP))
        invite = await expect(raw, "INVITE")
        ok = answer(invite, raw, "far1")
        raw.send(ok, a.sockets)
        first = await expect(raw, "ACK")
        outbound = await asyncio.wait_for(task, GUARD)
        raw.send(ok, a.sockets)  # as if the ACK were lost
        again = await expect(raw, "ACK")
        assert str(again.cseq) == str(first.cseq) == f"{invite.cseq.number} ACK"
        assert not outbound.ended.is_set()
        await hang_up(outbound, raw)


async def test_a_second_fork_answering_is_acked_and_hung_up() -> None:
    async with scripted() as (a, raw):
        task = asyncio.create_task(a.ua.invite(f"sip:{NUMBER}@127.0.0.1", "fax", CALLER_SDP))
        invite = await expect(raw, "INVITE")
        raw.send(answer(invite, raw, "fork1"), a.sockets)
        raw.send(answer(invite, raw, "fork2"), a.sockets)
        acks = {(await expect(raw, "ACK")).to_addr.tag for _ in range(2)}
        assert acks == {"fork1", "fork2"}
        bye = await expect(raw, "BYE")
        assert bye.to_addr.tag == "fork2"
        raw.send(response_for(bye, 200), a.sockets)
        outbound = await asyncio.wait_for(task, GUARD)
        assert outbound.dialog.remote_tag == "fork1"
        assert not outbound.ended.is_set()
        await hang_up(outbound, raw)


# --- session timers against a scripted far end ----------------------------------------------


async def answered_by_raw(a: Station, raw: RawUdp, *extra: tuple[str, str]) -> OutboundCall:
    task = asyncio.create_task(a.ua.invite(f"sip:{NUMBER}@127.0.0.1", "fax", CALLER_SDP))
    invite = await expect(raw, "INVITE")
    assert invite.headers.get("Supported") == "timer"
    ok = answer(invite, raw, "far1")
    raw.send(Response(ok.status, ok.reason, Headers((*ok.headers, *extra)), ok.body), a.sockets)
    await expect(raw, "ACK")
    return await asyncio.wait_for(task, GUARD)


async def test_we_refresh_with_a_reinvite_of_the_same_sdp_when_update_is_not_allowed() -> None:
    async with scripted() as (a, raw):
        outbound = await answered_by_raw(
            a, raw, ("Session-Expires", "1;refresher=uac"), ("Allow", "INVITE, ACK, BYE")
        )
        assert outbound.session_timer is not None and outbound.session_timer.we_refresh
        refresh = await expect(raw, "INVITE")
        assert refresh.to_addr.tag == "far1"  # in the dialog
        assert refresh.body == CALLER_SDP  # the very same SDP: the media does not move
        assert refresh.headers.get("Session-Expires") == "1;refresher=uac"
        raw.send(answer(refresh, raw, "far1"), a.sockets)  # no Session-Expires: timer off
        await expect(raw, "ACK")
        await until(lambda: outbound.refreshes == 1)
        assert outbound.session_timer is None
        await hang_up(outbound, raw)


async def test_we_refresh_with_update_when_the_peer_allows_it() -> None:
    async with scripted() as (a, raw):
        outbound = await answered_by_raw(
            a, raw, ("Session-Expires", "1;refresher=uac"), ("Allow", "INVITE, ACK, BYE, UPDATE")
        )
        update = await expect(raw, "UPDATE")
        assert update.body == CALLER_SDP
        ok = answer(update, raw, "far1")
        with_timer = ok.headers.add("Session-Expires", "90;refresher=uac")
        raw.send(Response(200, "OK", with_timer, ok.body), a.sockets)
        await until(lambda: outbound.refreshes == 1)
        assert outbound.session_timer is not None and outbound.session_timer.interval == 90
        await hang_up(outbound, raw)


async def test_a_peer_that_should_refresh_and_does_not_is_hung_up_on() -> None:
    async with scripted() as (a, raw):
        outbound = await answered_by_raw(a, raw, ("Session-Expires", "1;refresher=uas"))
        assert outbound.session_timer is not None and not outbound.session_timer.we_refresh
        bye = await expect(raw, "BYE")  # before the second is over (RFC 4028 §10)
        raw.send(response_for(bye, 200), a.sockets)
        await asyncio.wait_for(outbound.ended.wait(), GUARD)
        assert outbound.end_reason == "session expired"


# --- the callee's side against a scripted caller --------------------------------------------


async def test_a_2xx_never_acked_is_hung_up_with_bye() -> None:
    fast = dataclasses.replace(TIMERS, t1=0.01, t2=0.04)
    raw = await RawUdp.open()
    try:
        async with station(Peer("udp", "127.0.0.1", raw.port), timers=fast) as b:
            b.callee.answers(CALLEE_SDP, ring=False)
            invite = make_request("INVITE", via=raw.via, uri=f"sip:{NUMBER}@127.0.0.1")
            contact = ("Contact", f"<sip:far@127.0.0.1:{raw.port}>")
            invite = Request(invite.method, invite.uri, invite.headers.add(*contact), CALLER_SDP)
            raw.send(invite, b.sockets)
            inbound = await b.callee.next_answered()
            bye = await expect(raw, "BYE")  # 200s came meanwhile, unacknowledged
            raw.send(response_for(bye, 200), b.sockets)
            await asyncio.wait_for(inbound.ended.wait(), GUARD)
            assert inbound.end_reason == "no ack"
    finally:
        raw.close()
