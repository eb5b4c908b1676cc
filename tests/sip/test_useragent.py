"""The user agent, caller and callee, two of ours talking over real UDP and TCP sockets on
127.0.0.1: calls answered, refused, cancelled, renegotiated, refreshed, hung up, and what a
callee says to requests it does not take."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from gateway.errors import CallEnded, CallRejected, RingTimeout
from gateway.sip.incoming import IncomingCall
from gateway.sip.message import Request
from gateway.sip.sockets import Transport
from tests.sip.stations import (
    CALLEE_SDP,
    CALLER_SDP,
    GUARD,
    NUMBER,
    OPTIONS,
    Behaviour,
    answering,
    ask,
    call,
    out_of_dialog,
    pair,
    ringing_sets,
    sdp,
    until,
)

TRANSPORTS = pytest.mark.parametrize("transport", ["udp", "tcp"])


# --- calls that get answered ---------------------------------------------------------------


@TRANSPORTS
async def test_a_call_is_answered_and_both_sides_hold_the_other_sides_sdp(
    transport: Transport,
) -> None:
    async with pair(transport) as (a, b):
        heard: list[int] = []
        outbound, inbound = await call(a, b, on_provisional=lambda r: heard.append(r.status))
        assert outbound.remote_sdp == CALLEE_SDP
        assert inbound.remote_sdp == CALLER_SDP
        assert 180 in heard
        assert outbound.call_id == inbound.call_id
        assert outbound.outbound and not inbound.outbound
        assert not outbound.ended.is_set() and not inbound.ended.is_set()


async def test_the_callee_learns_the_dialled_number_and_the_caller() -> None:
    async with pair("udp") as (a, b):
        await call(a, b)
        offered = await b.callee.next_offered()
        assert offered.dialled == NUMBER
        assert offered.caller == "fax"
        assert offered.remote_sdp == CALLER_SDP
        assert offered.request.from_addr.display_name == "Fax Gateway"


@TRANSPORTS
async def test_bye_from_the_caller_ends_both_sides(transport: Transport) -> None:
    async with pair(transport) as (a, b):
        outbound, inbound = await call(a, b)
        await outbound.bye()
        assert outbound.end_reason == "local bye"
        await asyncio.wait_for(inbound.ended.wait(), GUARD)
        assert inbound.end_reason == "remote bye"
        assert a.ua.calls == () and b.ua.calls == ()


@TRANSPORTS
async def test_bye_from_the_callee_ends_both_sides(transport: Transport) -> None:
    async with pair(transport) as (a, b):
        outbound, inbound = await call(a, b)
        await inbound.bye()
        await asyncio.wait_for(outbound.ended.wait(), GUARD)
        assert (inbound.end_reason, outbound.end_reason) == ("local bye", "remote bye")


async def test_a_second_bye_and_a_reinvite_after_the_end_do_nothing_or_raise() -> None:
    async with pair("udp") as (a, b):
        outbound, _ = await call(a, b)
        await outbound.bye()
        await outbound.bye()
        with pytest.raises(CallEnded):
            await outbound.reinvite(sdp(1, 2))


# --- re-INVITE ------------------------------------------------------------------------------


@TRANSPORTS
async def test_reinvite_from_the_caller_moves_both_sides_to_the_new_sdp(
    transport: Transport,
) -> None:
    async with pair(transport) as (a, b):
        outbound, inbound = await call(a, b)
        seen: list[bytes] = []
        inbound.on_reinvite = answering(sdp(2, 2, port=5000), seen)
        response = await outbound.reinvite(sdp(1, 2, port=6000))
        assert response.status == 200
        assert seen == [sdp(1, 2, port=6000)]
        assert outbound.remote_sdp == sdp(2, 2, port=5000)
        assert inbound.remote_sdp == sdp(1, 2, port=6000)
        assert inbound.local_sdp == sdp(2, 2, port=5000)


@TRANSPORTS
async def test_reinvite_from_the_callee_reaches_the_callers_handler(transport: Transport) -> None:
    async with pair(transport) as (a, b):
        outbound, inbound = await call(a, b)
        seen: list[bytes] = []
        outbound.on_reinvite = answering(sdp(1, 2), seen)
        inbound.on_reinvite = answering(sdp(2, 3), [])
        response = await inbound.reinvite(sdp(2, 2))
        assert response.status == 200
        assert seen == [sdp(2, 2)]
        assert inbound.remote_sdp == sdp(1, 2)
        # The dialog goes on: the caller's CSeq space was not disturbed by the callee's.
        assert (await outbound.reinvite(sdp(1, 3))).status == 200


async def test_a_refused_reinvite_leaves_the_session_as_it_was() -> None:
    async with pair("udp") as (a, b):
        outbound, inbound = await call(a, b)

        async def refuse(offer: bytes) -> int:
            return 488

        inbound.on_reinvite = refuse
        response = await outbound.reinvite(sdp(1, 2))
        assert response.status == 488
        assert outbound.remote_sdp == CALLEE_SDP and inbound.remote_sdp == CALLER_SDP
        assert not outbound.ended.is_set()
        # Without a handler the answer is 488 too; the call survives that as well.
        outbound.on_reinvite = None
        assert (await inbound.reinvite(sdp(2, 2))).status == 488
        assert (await outbound.reinvite(sdp(1, 3))).status == 488  # refuse() still there


async def test_reinvites_crossing_each_other_both_succeed_after_491() -> None:
    async with pair("udp") as (a, b):
        outbound, inbound = await call(a, b)
        answered = asyncio.Event()

        async def slow(offer: bytes) -> bytes:
            answered.set()
            await asyncio.sleep(0.05)  # the other offer is out while we answer
            return sdp(9, 9)

        outbound.on_reinvite = slow
        inbound.on_reinvite = slow
        first, second = await asyncio.wait_for(
            asyncio.gather(outbound.reinvite(sdp(1, 2)), inbound.reinvite(sdp(2, 2))), GUARD
        )
        assert (first.status, second.status) == (200, 200)
        assert answered.is_set()


async def test_a_refresh_with_an_unchanged_sdp_version_never_reaches_on_reinvite() -> None:
    # The FreeSWITCH trap: a session refresh that re-offers the same SDP must not move media.
    async with pair("udp") as (a, b):
        outbound, inbound = await call(a, b)
        seen: list[bytes] = []
        inbound.on_reinvite = answering(sdp(2, 5), seen)
        response = await outbound.reinvite(CALLER_SDP)
        assert response.status == 200
        assert response.body == CALLEE_SDP  # our current SDP, as it was
        assert seen == []
        assert inbound.refreshes == 1


async def test_the_caller_refreshes_the_session_without_reaching_on_reinvite() -> None:
    # Our INVITE asks for a 1 s session, the callee lets the caller refresh (refresher=uac):
    # refreshes come every half second as UPDATE (the callee allows it) with the same SDP.
    short = dataclasses.replace(OPTIONS, session_expires=1, min_se=1)
    async with pair("udp", options=short) as (a, b):
        outbound, inbound = await call(a, b)
        assert outbound.session_timer is not None and outbound.session_timer.we_refresh
        assert inbound.session_timer is not None and not inbound.session_timer.we_refresh
        seen: list[bytes] = []
        inbound.on_reinvite = answering(sdp(2, 5), seen)
        # The caller counts a refresh when its 200 arrives, just after the callee counted it.
        await until(lambda: inbound.refreshes >= 2 and outbound.refreshes >= 2)
        assert seen == []
        assert outbound.remote_sdp == CALLEE_SDP and inbound.remote_sdp == CALLER_SDP
        assert not outbound.ended.is_set() and not inbound.ended.is_set()


async def test_an_interval_below_our_minimum_is_refused_422_and_retried_with_it() -> None:
    short = dataclasses.replace(OPTIONS, session_expires=100, min_se=90)
    long = dataclasses.replace(OPTIONS, session_expires=100, min_se=300)
    async with pair("udp", options=short) as (a, b):
        b.ua.options = long
        outbound, _ = await call(a, b)
        assert outbound.session_timer is not None
        assert outbound.session_timer.interval == 300
        assert outbound.dialog.local_seq == 2  # the 422 took the first CSeq


async def test_a_bodiless_update_refreshes_the_session_and_is_answered_without_sdp() -> None:
    async with pair("udp") as (a, b):
        outbound, inbound = await call(a, b)
        seen: list[bytes] = []
        inbound.on_reinvite = answering(sdp(2, 5), seen)
        extra = (("Session-Expires", "120;refresher=uac"), ("Supported", "timer"))
        response = await ask(a, b, outbound.dialog.request("UPDATE", extra=extra))
        assert response.status == 200
        assert response.body == b""
        assert response.headers.get("Session-Expires") == "120;refresher=uac"
        assert response.headers.get("Require") == "timer"
        assert seen == [] and inbound.refreshes == 1
        assert inbound.session_timer is not None and not inbound.session_timer.we_refresh


# --- calls that do not get answered ---------------------------------------------------------


@TRANSPORTS
async def test_busy_raises_call_rejected_with_486(transport: Transport) -> None:
    async with pair(transport) as (a, b):

        async def busy(incoming: IncomingCall) -> None:
            await incoming.reject(486)

        b.callee.behaviour = busy
        with pytest.raises(CallRejected) as rejected:
            await a.ua.invite(f"sip:{NUMBER}@127.0.0.1", "fax", CALLER_SDP)
        assert (rejected.value.status, rejected.value.reason) == (486, "Busy Here")
        assert a.ua.calls == ()


async def test_a_handler_that_returns_without_answering_gets_the_call_refused_480() -> None:
    async with pair("udp") as (a, b):

        async def ignore(incoming: IncomingCall) -> None:
            return None

        b.callee.behaviour = ignore
        with pytest.raises(CallRejected) as rejected:
            await a.ua.invite(f"sip:{NUMBER}@127.0.0.1", "fax", CALLER_SDP)
        assert rejected.value.status == 480


async def test_a_handler_that_fails_gets_the_call_refused_500() -> None:
    async with pair("udp") as (a, b):

        async def fail(incoming: IncomingCall) -> None:
            raise RuntimeError("handler bug")

        b.callee.behaviour = fail
        with pytest.raises(CallRejected) as rejected:
            await a.ua.invite(f"sip:{NUMBER}@127.0.0.1", "fax", CALLER_SDP)
        assert rejected.value.status == 500


def ring_until_cancelled(outcome: list[str | None]) -> Behaviour:
    async def behaviour(incoming: IncomingCall) -> None:
        await incoming.ring()
        await asyncio.wait_for(incoming.ended.wait(), GUARD)
        outcome.append(incoming.end_reason)
        with pytest.raises(CallEnded):
            await incoming.answer(CALLEE_SDP)

    return behaviour


@TRANSPORTS
async def test_cancelling_the_invite_task_while_ringing_sends_cancel(transport: Transport) -> None:
    async with pair(transport) as (a, b):
        outcome: list[str | None] = []
        b.callee.behaviour = ring_until_cancelled(outcome)
        ringing = asyncio.Event()
        task = asyncio.create_task(
            a.ua.invite(
                f"sip:{NUMBER}@127.0.0.1",
                "fax",
                CALLER_SDP,
                on_provisional=ringing_sets(ringing),
            )
        )
        await asyncio.wait_for(ringing.wait(), GUARD)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await until(lambda: outcome == ["cancelled"])
        assert a.ua.calls == () and b.ua.calls == ()


async def test_nobody_answering_within_the_ring_timeout_cancels_with_487() -> None:
    async with pair("udp") as (a, b):
        outcome: list[str | None] = []
        b.callee.behaviour = ring_until_cancelled(outcome)
        with pytest.raises(RingTimeout) as timed_out:
            await a.ua.invite(f"sip:{NUMBER}@127.0.0.1", "fax", CALLER_SDP, ring_timeout=0.3)
        assert timed_out.value.status == 487
        await until(lambda: outcome == ["cancelled"])


# --- what the callee says to other requests -------------------------------------------------


async def test_options_is_answered_with_what_we_allow_accept_and_support() -> None:
    async with pair("udp") as (a, b):
        response = await ask(a, b, out_of_dialog("OPTIONS"))
        assert response.status == 200
        allow = {m.strip() for m in (response.headers.get("Allow") or "").split(",")}
        assert {"INVITE", "ACK", "CANCEL", "BYE", "OPTIONS", "UPDATE"} <= allow
        assert response.headers.get("Accept") == "application/sdp"
        assert "timer" in (response.headers.get("Supported") or "")
        assert response.to_addr.tag  # a response to an untagged request gets our tag


@pytest.mark.parametrize(
    ("method", "to_tag", "status"),
    [
        ("BYE", "nosuchdialog", 481),  # a dialog we do not have
        ("BYE", None, 481),
        ("UPDATE", "nosuchdialog", 481),
        ("INVITE", "nosuchdialog", 481),
        ("SUBSCRIBE", None, 405),  # a method we know of but do not take
        ("MESSAGE", None, 405),
        ("FROBNICATE", None, 501),  # one we do not know
    ],
)
async def test_requests_we_do_not_take_get_the_rfc_answer(
    method: str, to_tag: str | None, status: int
) -> None:
    async with pair("udp") as (a, b):
        response = await ask(a, b, out_of_dialog(method, to_tag=to_tag))
        assert response.status == status
        if status == 405:
            assert "INVITE" in (response.headers.get("Allow") or "")


async def test_an_extension_we_do_not_support_is_refused_420() -> None:
    async with pair("udp") as (a, b):
        request = out_of_dialog("OPTIONS")
        request = Request(request.method, request.uri, request.headers.add("Require", "100rel"))
        response = await ask(a, b, request)
        assert response.status == 420
        assert response.headers.get("Unsupported") == "100rel"


async def test_an_in_dialog_request_with_an_old_cseq_is_refused_500() -> None:
    async with pair("udp") as (a, b):
        outbound, inbound = await call(a, b)
        request = outbound.dialog.request("OPTIONS")
        # Below the INVITE's own number (1): out of order (RFC 3261 §12.2.2).
        stale = Request(request.method, request.uri, request.headers.set("CSeq", "0 OPTIONS"))
        assert (await ask(a, b, stale)).status == 500
        assert (await ask(a, b, outbound.dialog.request("OPTIONS"))).status == 200
        assert not inbound.ended.is_set()


@pytest.mark.parametrize(
    ("target", "to", "dialled"),
    [
        ("+14155550101", "+14155550101", "+14155550101"),
        ("+14155550101", "someone", "+14155550101"),  # the Request-URI wins when it is a number
        ("gwb", "+14155550101", "+14155550101"),  # a registrar put our username there
        ("gwb", "14155550101", "14155550101"),
        ("gwb", "fax", "gwb"),  # neither is a number: the Request-URI, as RFC 3261 routes
        (None, "+14155550101", "+14155550101"),
        (None, None, ""),
    ],
)
def test_the_dialled_number_is_the_request_uri_user_unless_a_registrar_put_ours_there(
    target: str | None, to: str | None, dialled: str
) -> None:
    from gateway.sip.incoming import dialled_user

    assert dialled_user(target, to) == dialled
