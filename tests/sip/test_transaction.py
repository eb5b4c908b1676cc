"""SIP transactions (RFC 3261 §17) between real sockets on 127.0.0.1: two TransactionLayers
talking to each other, or one layer and a raw peer that drops, repeats or never answers.

Timers are small (T1 = 10 ms, T2 = 4*T1); tests count messages, never measure time. A count
is read after a marker: a message sent after the transaction ended on the same socket, which
arrives after everything sent before it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import replace

import pytest

from gateway.errors import SipTimeout, SipTransportError
from gateway.sip.message import Request, Response, new_tag, response_for
from gateway.sip.sockets import Peer, SipSockets, Transport
from gateway.sip.transaction import (
    ServerTransaction,
    Timers,
    TransactionLayer,
    ack_for,
    cancel_for,
)
from tests.sip.net import GUARD, RawUdp, make_request

FAST = Timers(t1=0.01, t2=0.04, t4=0.04, d=0.1, trying=0.05)
TRANSPORTS = pytest.mark.parametrize("transport", ["udp", "tcp"])

Handler = Callable[[ServerTransaction], Awaitable[None]]


class Handled:
    """An on_request that records every transaction and runs ``behaviour`` on it."""

    def __init__(self, behaviour: Handler | None = None) -> None:
        self.behaviour = behaviour
        self.transactions: list[ServerTransaction] = []
        self.queue: asyncio.Queue[ServerTransaction] = asyncio.Queue()

    async def __call__(self, tx: ServerTransaction) -> None:
        self.transactions.append(tx)
        self.queue.put_nowait(tx)
        if self.behaviour is not None:
            await self.behaviour(tx)

    async def next(self) -> ServerTransaction:
        return await asyncio.wait_for(self.queue.get(), GUARD)

    @property
    def methods(self) -> list[str]:
        return [tx.request.method for tx in self.transactions]


def answer(status: int) -> Handler:
    async def behaviour(tx: ServerTransaction) -> None:
        if tx.request.method != "ACK":
            await tx.respond(response_for(tx.request, status, to_tag=new_tag()))

    return behaviour


@asynccontextmanager
async def stack(
    handled: Handled | None = None, timers: Timers = FAST
) -> AsyncIterator[TransactionLayer]:
    sockets = SipSockets("127.0.0.1", 0, accept_from=lambda host: True)
    await sockets.start()
    layer = TransactionLayer(sockets, timers, handled)
    try:
        yield layer
    finally:
        await layer.close()
        await sockets.close()


async def no_tasks_left() -> None:
    await asyncio.sleep(0)
    assert asyncio.all_tasks() == {asyncio.current_task()}


def outgoing(
    layer: TransactionLayer, method: str, transport: Transport = "udp", **kwargs: object
) -> Request:
    """A request from ``layer`` with its own top Via (fresh branch, rport)."""
    base = make_request(method, via="UDP x", **kwargs)  # type: ignore[arg-type]
    via = str(layer.sockets.via_for(transport))
    return Request(method, base.uri, base.headers.set("Via", via), base.body)


def to(target: SipSockets | RawUdp, transport: Transport = "udp") -> Peer:
    return Peer(transport, "127.0.0.1", target.port)


async def sent_until_marker(raw: RawUdp, layer: TransactionLayer) -> list[Request | Response]:
    """Everything ``layer`` sent to ``raw``, up to a marker datagram sent now."""
    marker = outgoing(layer, "OPTIONS", call_id="marker")
    await layer.sockets.send(marker, to(raw))
    seen: list[Request | Response] = []
    while (message := await raw.receive()).call_id != "marker":
        seen.append(message)
    return seen


# -- between two layers ---------------------------------------------------------------------


@TRANSPORTS
async def test_a_request_gets_its_final_response(transport: Transport) -> None:
    handled = Handled(answer(200))
    async with stack() as a, stack(handled) as b:
        response = await a.request(outgoing(a, "OPTIONS", transport), to(b.sockets, transport))
        assert response.status == 200
        assert handled.methods == ["OPTIONS"]
        assert handled.transactions[0].peer.transport == transport
    await no_tasks_left()


@TRANSPORTS
async def test_provisionals_go_to_on_provisional_and_a_non_2xx_invite_is_acked_inside(
    transport: Transport,
) -> None:
    async def ring_then_busy(tx: ServerTransaction) -> None:
        tag = new_tag()
        await tx.respond(response_for(tx.request, 180, to_tag=tag))
        await tx.respond(response_for(tx.request, 486, to_tag=tag))

    handled = Handled(ring_then_busy)
    seen: list[int] = []
    async with stack() as a, stack(handled) as b:
        invite = outgoing(a, "INVITE", transport)
        response = await a.request(
            invite, to(b.sockets, transport), on_provisional=lambda r: seen.append(r.status)
        )
        assert response.status == 486 and seen == [180]
        server = handled.transactions[0]
        await asyncio.wait_for(server.acked.wait(), GUARD)
        await asyncio.wait_for(server.terminated.wait(), GUARD)
        assert handled.methods == ["INVITE"]  # the ACK was the transaction's, absorbed
    await no_tasks_left()


@TRANSPORTS
async def test_cancel_of_a_pending_invite(transport: Transport) -> None:
    async def ring_until_cancelled(tx: ServerTransaction) -> None:
        tag = new_tag()
        await tx.respond(response_for(tx.request, 180, to_tag=tag))
        await tx.cancelled.wait()
        await tx.respond(response_for(tx.request, 487, to_tag=tag))

    handled = Handled(ring_until_cancelled)
    async with stack() as a, stack(handled) as b:
        ringing = asyncio.Event()
        invite = outgoing(a, "INVITE", transport)
        peer = to(b.sockets, transport)
        call = asyncio.create_task(a.request(invite, peer, on_provisional=lambda r: ringing.set()))
        await asyncio.wait_for(ringing.wait(), GUARD)

        cancelled = await a.request(cancel_for(invite), peer)
        assert cancelled.status == 200
        assert cancelled.to_addr.tag == (await call).to_addr.tag  # §9.2: the same To tag
        assert (await call).status == 487
        await asyncio.wait_for(handled.transactions[0].acked.wait(), GUARD)
        assert handled.methods == ["INVITE"]  # neither the CANCEL nor the ACK went up
    await no_tasks_left()


async def test_a_cancel_matching_no_invite_gets_481() -> None:
    async with stack() as a, stack(Handled()) as b:
        invite = outgoing(a, "INVITE")
        response = await a.request(cancel_for(invite), to(b.sockets))
        assert response.status == 481


async def test_a_cancel_after_the_final_response_gets_200_and_changes_nothing() -> None:
    handled = Handled(answer(603))
    async with stack() as a, stack(handled) as b:
        invite = outgoing(a, "INVITE")
        assert (await a.request(invite, to(b.sockets))).status == 603
        assert (await a.request(cancel_for(invite), to(b.sockets))).status == 200
        assert not handled.transactions[0].cancelled.is_set()


async def test_an_ack_for_a_2xx_goes_up_and_marks_the_invite_acked() -> None:
    handled = Handled(answer(200))
    async with stack() as a, stack(handled) as b:
        invite = outgoing(a, "INVITE")
        ok = await a.request(invite, to(b.sockets))
        assert ok.status == 200
        ack = outgoing(a, "ACK", cseq=invite.cseq.number, call_id=invite.call_id)
        ack = Request("ACK", ack.uri, ack.headers.set("To", ok.headers.get("To") or ""))
        await a.sockets.send(ack, to(b.sockets))  # the dialog's ACK: a transaction of its own
        assert (await handled.next()).request.method == "INVITE"
        acked = await handled.next()
        assert acked.request.method == "ACK"
        assert handled.transactions[0].acked.is_set()
        with pytest.raises(ValueError, match="never answered"):
            await acked.respond(response_for(ack, 200))


async def test_a_handler_that_fails_gets_its_request_answered_500() -> None:
    async def broken(tx: ServerTransaction) -> None:
        raise RuntimeError("bug")

    async with stack() as a, stack(Handled(broken)) as b:
        assert (await a.request(outgoing(a, "OPTIONS"), to(b.sockets))).status == 500


# -- against a raw peer ---------------------------------------------------------------------


async def test_an_unanswered_invite_is_retransmitted_at_doubling_intervals_until_timer_b() -> None:
    raw = await RawUdp.open()
    async with stack() as a:
        invite = outgoing(a, "INVITE")
        with pytest.raises(SipTimeout):
            await a.request(invite, to(raw))
        sent = await sent_until_marker(raw, a)
        # At 0, T1, 3T1, 7T1, 15T1, 31T1, 63T1; Timer B fires at 64T1 (no cap for INVITE).
        assert sent == [invite] * 7
        assert a.pending == 0
    raw.close()
    await no_tasks_left()


async def test_an_unanswered_non_invite_is_retransmitted_with_intervals_capped_at_t2() -> None:
    raw = await RawUdp.open()
    async with stack() as a:
        options = outgoing(a, "OPTIONS")
        with pytest.raises(SipTimeout):
            await a.request(options, to(raw))
        sent = await sent_until_marker(raw, a)
        # At 0, T1, 3T1, then every T2 = 4T1 (7T1, 11T1 ... 63T1); Timer F fires at 64T1.
        assert sent == [options] * 18
    raw.close()


async def test_a_provisional_stops_invite_retransmissions_but_not_non_invite_ones() -> None:
    raw = await RawUdp.open()
    async with stack() as a:
        invite = outgoing(a, "INVITE")
        ringing = asyncio.Event()
        call = asyncio.create_task(
            a.request(invite, to(raw), on_provisional=lambda r: ringing.set())
        )
        first = await raw.receive()
        assert isinstance(first, Request)
        raw.send(response_for(first, 180, to_tag="t"), a.sockets)
        await asyncio.wait_for(ringing.wait(), GUARD)
        await asyncio.sleep(40 * FAST.t1)  # without the 180: INVITEs at 1, 3, 7, 15, 31 T1
        raw.send(response_for(first, 486, to_tag="t"), a.sockets)
        assert (await call).status == 486
        sent = await sent_until_marker(raw, a)
        invites = [m for m in sent if isinstance(m, Request) and m.method == "INVITE"]
        assert len(invites) <= 2  # retransmissions that crossed the 180 (else 5)
        assert [m.method for m in sent if isinstance(m, Request)][-1] == "ACK"

        options = outgoing(a, "OPTIONS")
        trying = asyncio.create_task(a.request(options, to(raw)))
        first = await raw.receive()
        assert isinstance(first, Request)
        raw.send(response_for(first, 100), a.sockets)
        with pytest.raises(SipTimeout):  # Timer F runs in Proceeding too
            await trying
        assert len(await sent_until_marker(raw, a)) >= 10  # still retransmitted, every T2
    raw.close()


async def test_every_retransmitted_non_2xx_final_gets_the_same_ack() -> None:
    raw = await RawUdp.open()
    async with stack() as a:
        invite = outgoing(a, "INVITE")
        invite = Request("INVITE", invite.uri, invite.headers.add("Route", "<sip:p;lr>"))
        call = asyncio.create_task(a.request(invite, to(raw)))
        received = await raw.receive()
        assert isinstance(received, Request)
        busy = response_for(received, 486, to_tag="callee")
        acks = []
        for _ in range(3):  # the final, then two retransmissions of it
            raw.send(busy, a.sockets)
            message = await raw.receive()
            while not isinstance(message, Request) or message.method != "ACK":
                message = await raw.receive()  # an INVITE retransmission crossed the final
            acks.append(message)
        assert (await call).status == 486
        assert acks == [ack_for(invite, busy)] * 3
        ack = acks[0]
        assert ack.vias == invite.vias[:1] and ack.uri == invite.uri  # §17.1.1.3
        assert ack.to_addr.tag == "callee" and str(ack.cseq) == f"{invite.cseq.number} ACK"
        assert ack.headers.get_all("Route") == ("<sip:p;lr>",)
    raw.close()


async def test_a_2xx_retransmission_after_the_answer_is_handed_up_as_stray() -> None:
    raw = await RawUdp.open()
    strays: list[Response] = []
    async with stack() as a:
        a.on_stray_2xx = strays.append
        call = asyncio.create_task(a.request(outgoing(a, "INVITE"), to(raw)))
        received = await raw.receive()
        assert isinstance(received, Request)
        ok = response_for(received, 200, to_tag="callee")
        raw.send(ok, a.sockets)
        assert await call == ok
        raw.send(ok, a.sockets)  # the UAS did not see our ACK yet
        raw.send(response_for(received, 486), a.sockets)  # a stray non-2xx: dropped
        await sent_until_marker(raw, a)
        for _ in range(100):
            if strays:
                break
            await asyncio.sleep(0.01)
        assert strays == [ok]
    raw.close()


async def test_a_retransmitted_request_gets_the_same_response_and_goes_up_once() -> None:
    handled = Handled(answer(200))
    raw = await RawUdp.open()
    async with stack(handled) as b:
        options = make_request("OPTIONS", via=raw.via)
        raw.send(options, b.sockets)
        first = await raw.receive()
        raw.send(options, b.sockets)
        again = await raw.receive()
        assert isinstance(first, Response) and first.status == 200
        assert again == first
        assert handled.methods == ["OPTIONS"]

        legacy = make_request("OPTIONS", via=raw.via, branch="1")  # RFC 2543: no magic cookie
        raw.send(legacy, b.sockets)
        raw.send(legacy, b.sockets)
        assert await raw.receive() == await raw.receive()
        assert handled.methods == ["OPTIONS", "OPTIONS"]
    raw.close()


async def test_an_invite_left_unanswered_gets_100_trying_and_retransmissions_get_it_again() -> None:
    go_on = asyncio.Event()

    async def slow(tx: ServerTransaction) -> None:
        await go_on.wait()
        await tx.respond(response_for(tx.request, 480, to_tag=new_tag()))

    handled = Handled(slow)
    raw = await RawUdp.open()
    async with stack(handled) as b:
        invite = make_request("INVITE", via=raw.via)
        raw.send(invite, b.sockets)
        trying = await raw.receive()
        assert isinstance(trying, Response) and trying.status == 100
        assert trying.to_addr.tag is None
        raw.send(invite, b.sockets)
        assert await raw.receive() == trying
        go_on.set()
        final = await raw.receive()
        assert isinstance(final, Response) and final.status == 480
        assert handled.methods == ["INVITE"]
    raw.close()


async def test_an_invite_answered_at_once_gets_no_100_trying() -> None:
    raw = await RawUdp.open()
    patient = replace(FAST, trying=0.5)
    async with stack(Handled(answer(180)), patient) as b:
        raw.send(make_request("INVITE", via=raw.via), b.sockets)
        ringing = await raw.receive()
        assert isinstance(ringing, Response) and ringing.status == 180
        assert await raw.silent(2 * patient.trying)
    raw.close()


async def test_a_non_2xx_final_to_invite_is_retransmitted_capped_at_t2_until_timer_h() -> None:
    handled = Handled(answer(486))
    raw = await RawUdp.open()
    async with stack(handled) as b:
        raw.send(make_request("INVITE", via=raw.via), b.sockets)
        tx = await handled.next()
        await asyncio.wait_for(tx.terminated.wait(), GUARD)  # Timer H: no ACK came
        assert not tx.acked.is_set()
        raw.send(make_request("OPTIONS", via=raw.via, call_id="marker"), b.sockets)
        finals = []
        while (message := await raw.receive()).call_id != "marker":
            finals.append(message)
        # At 0, T1, 3T1, then every T2 (7T1 ... 63T1); Timer H at 64T1.
        assert len(finals) == 18 and all(isinstance(m, Response) for m in finals)
        assert {m.status for m in finals if isinstance(m, Response)} == {486}
    raw.close()


async def test_the_ack_stops_non_2xx_retransmissions_and_is_absorbed() -> None:
    handled = Handled(answer(486))
    raw = await RawUdp.open()
    async with stack(handled) as b:
        invite = make_request("INVITE", via=raw.via)
        raw.send(invite, b.sockets)
        busy = await raw.receive()
        assert isinstance(busy, Response)
        ack = ack_for(invite, busy)
        raw.send(ack, b.sockets)
        tx = handled.transactions[0]
        await asyncio.wait_for(tx.terminated.wait(), GUARD)  # Timer I after the ACK
        assert tx.acked.is_set()
        raw.send(make_request("OPTIONS", via=raw.via, call_id="marker"), b.sockets)
        finals = []
        while (message := await raw.receive()).call_id != "marker":
            finals.append(message)
        assert len(finals) < 5  # those that crossed the ACK; without it, 17 more
        assert handled.methods == ["INVITE", "OPTIONS"]
    raw.close()


async def test_invite_retransmissions_after_a_2xx_are_absorbed_and_get_the_2xx_again() -> None:
    handled = Handled(answer(200))
    raw = await RawUdp.open()
    async with stack(handled) as b:
        invite = make_request("INVITE", via=raw.via)
        raw.send(invite, b.sockets)
        ok = await raw.receive()
        raw.send(invite, b.sockets)
        assert await raw.receive() == ok
        assert handled.methods == ["INVITE"]
        tx = handled.transactions[0]
        await asyncio.wait_for(tx.terminated.wait(), GUARD)  # Timer L
        assert not tx.acked.is_set()  # the UA would hang up now (§13.3.1.4)
    raw.close()


# -- TCP, errors, lifecycle -----------------------------------------------------------------


async def test_over_tcp_nothing_is_retransmitted_and_timer_b_still_fires() -> None:
    received: asyncio.Queue[bytes] = asyncio.Queue()

    async def silent_server(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            received.put_nowait(data)
        writer.close()

    server = await asyncio.start_server(silent_server, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with stack() as a:
        invite = outgoing(a, "INVITE", "tcp")
        with pytest.raises(SipTimeout):
            await a.request(invite, Peer("tcp", "127.0.0.1", port))
        marker = outgoing(a, "OPTIONS", "tcp", call_id="marker")
        await a.sockets.send(marker, Peer("tcp", "127.0.0.1", port))
        stream = b""
        while b"marker" not in stream:
            stream += await asyncio.wait_for(received.get(), GUARD)
        assert stream.count(b"INVITE sip:") == 1
    server.close()
    await server.wait_closed()


async def test_a_refused_connection_raises_a_transport_error() -> None:
    async with stack() as gone:
        port = gone.sockets.port
    async with stack() as a:
        with pytest.raises(SipTransportError):
            await a.request(outgoing(a, "OPTIONS", "tcp"), Peer("tcp", "127.0.0.1", port))
        assert a.pending == 0


async def test_requests_the_layer_cannot_run_are_refused() -> None:
    async with stack() as a:
        peer = Peer("udp", "127.0.0.1", 9)
        with pytest.raises(ValueError, match="ACK"):
            await a.request(outgoing(a, "ACK"), peer)
        with pytest.raises(ValueError, match="branch"):
            await a.request(make_request("OPTIONS", via="UDP h", branch="x"), peer)
        with pytest.raises(ValueError, match="TCP"):
            await a.request(outgoing(a, "OPTIONS", "tcp"), peer)
        request = outgoing(a, "OPTIONS")
        pending = asyncio.create_task(a.request(request, peer))
        await asyncio.sleep(0)
        with pytest.raises(ValueError, match="in use"):
            await a.request(request, peer)
        pending.cancel()


async def test_cancelling_the_caller_ends_the_transaction() -> None:
    raw = await RawUdp.open()
    async with stack() as a:
        call = asyncio.create_task(a.request(outgoing(a, "INVITE"), to(raw)))
        await raw.receive()
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
        assert a.pending == 0
        assert await raw.silent(10 * FAST.t1)  # no more retransmissions
    raw.close()


async def test_closing_fails_pending_requests_and_leaves_no_tasks() -> None:
    raw = await RawUdp.open()
    never: asyncio.Event = asyncio.Event()

    async def hold(tx: ServerTransaction) -> None:
        await never.wait()

    async with stack() as a, stack(Handled(hold)) as b:
        calling = asyncio.create_task(a.request(outgoing(a, "INVITE"), to(raw)))
        answering = asyncio.create_task(a.request(outgoing(a, "INVITE"), to(b.sockets)))
        await raw.receive()
        await b.sockets.close()  # b's handler is still holding its INVITE
        await b.close()
        await a.close()
        for task in (calling, answering):
            with pytest.raises(SipTransportError):
                await task
    raw.close()
    await no_tasks_left()


async def test_without_a_handler_requests_get_501() -> None:
    async with stack() as a, stack() as b:
        assert (await a.request(outgoing(a, "OPTIONS"), to(b.sockets))).status == 501


async def test_a_second_final_response_is_ignored() -> None:
    async def twice(tx: ServerTransaction) -> None:
        await tx.respond(response_for(tx.request, 200))
        await tx.respond(response_for(tx.request, 500))  # a race the UA lost: nothing sent

    raw = await RawUdp.open()
    async with stack(Handled(twice)) as b:
        raw.send(make_request("OPTIONS", via=raw.via), b.sockets)
        first = await raw.receive()
        assert isinstance(first, Response) and first.status == 200
        assert await raw.silent()
    raw.close()


async def test_a_request_the_handler_never_answers_is_forgotten_after_64_t1() -> None:
    async def never(tx: ServerTransaction) -> None:
        await asyncio.Event().wait()

    handled = Handled(never)
    raw = await RawUdp.open()
    async with stack(handled) as b:
        raw.send(make_request("OPTIONS", via=raw.via), b.sockets)
        tx = await handled.next()
        await asyncio.wait_for(tx.terminated.wait(), GUARD)
        assert b.pending == 0
    raw.close()


async def test_beyond_max_transactions_new_requests_get_503() -> None:
    async def hold(tx: ServerTransaction) -> None:
        await asyncio.Event().wait()

    raw = await RawUdp.open()
    async with stack(Handled(hold)) as b:
        b.max_transactions = 2
        for _ in range(3):
            raw.send(make_request("OPTIONS", via=raw.via), b.sockets)
        busy = await raw.receive()
        assert isinstance(busy, Response) and busy.status == 503
        assert busy.headers.get("Retry-After") == "5"
    raw.close()
