"""The SIP transport layer over real sockets on 127.0.0.1: what it hands up, what it answers by
itself, and what it refuses to spend effort on."""

from __future__ import annotations

import asyncio
import random
import socket

import pytest

from gateway.errors import SipTransportError
from gateway.sip.headers import Via
from gateway.sip.message import Limits, Request, Response, response_for
from gateway.sip.sockets import Peer, SipSockets, with_received
from tests.sip.net import GUARD, RawUdp, make_request, read_message, sockets


async def no_tasks_left() -> None:
    """Nothing but the test itself still runs (every task of the layer ended at close)."""
    await asyncio.sleep(0)
    others = asyncio.all_tasks() - {asyncio.current_task()}
    assert not others, others


async def test_udp_request_and_response_round_trip() -> None:
    async with sockets() as (a, a_in), sockets() as (b, b_in):
        via = a.via_for("udp")
        options = make_request("OPTIONS", via=f"UDP 127.0.0.1:{a.port};rport")
        options = Request(options.method, options.uri, options.headers.set("Via", str(via)))
        await a.send(options, Peer("udp", "127.0.0.1", b.port))

        request, source = await b_in.next()
        assert isinstance(request, Request) and request.method == "OPTIONS"
        assert source == Peer("udp", "127.0.0.1", a.port)
        top = request.vias[0]
        assert top.branch == via.branch and top.rport == a.port and top.received == "127.0.0.1"

        await b.reply(response_for(request, 200), source)
        response, came_from = await a_in.next()
        assert isinstance(response, Response) and response.status == 200
        assert came_from == Peer("udp", "127.0.0.1", b.port)
    await no_tasks_left()


async def test_tcp_request_and_response_share_the_connection() -> None:
    async with sockets() as (a, a_in), sockets() as (b, b_in):
        b_peer = Peer("tcp", "127.0.0.1", b.port)
        invite = make_request("INVITE", via=f"TCP 127.0.0.1:{a.port};rport", body=b"v=0\r\n")
        await a.send(invite, b_peer)

        request, source = await b_in.next()
        assert isinstance(request, Request) and request.body == b"v=0\r\n"
        assert source.transport == "tcp" and source.port != a.port  # A's ephemeral port
        await b.reply(response_for(request, 180), source)
        await b.reply(response_for(request, 200), source)

        ringing, on = await a_in.next()
        ok, _ = await a_in.next()
        assert isinstance(ringing, Response) and isinstance(ok, Response)
        assert (ringing.status, ok.status) == (180, 200)
        assert on == b_peer  # the connection A opened, named as A asked for it
    await no_tasks_left()


async def test_a_tcp_reply_after_the_connection_closed_goes_to_the_via_sent_by() -> None:
    async with sockets() as (a, a_in), sockets() as (b, b_in):
        _, writer = await asyncio.open_connection("127.0.0.1", b.port)
        writer.write(make_request("OPTIONS", via=f"TCP 127.0.0.1:{a.port}").to_bytes())
        await writer.drain()
        request, source = await b_in.next()
        writer.close()
        await writer.wait_closed()
        while source in b._connections:  # the server notices the EOF
            await asyncio.sleep(0.01)

        assert isinstance(request, Request)
        await b.reply(response_for(request, 200), source)
        response, _ = await a_in.next()  # on A's listening port, over a new connection
        assert isinstance(response, Response) and response.status == 200


async def test_rport_and_received_are_filled_as_rfc_3581_says() -> None:
    source = Peer("udp", "192.0.2.7", 40123)
    asked = make_request("BYE", via="UDP 10.0.0.5:5060;rport")
    top = with_received(asked, source).vias[0]
    assert (top.received, top.rport, top.port) == ("192.0.2.7", 40123, 5060)

    same_host = make_request("BYE", via="UDP 192.0.2.7:5060")
    assert with_received(same_host, source) == same_host  # nothing to say

    no_rport = with_received(make_request("BYE", via="UDP 10.0.0.5"), source)
    assert no_rport.vias[0].received == "192.0.2.7" and not no_rport.vias[0].has_param("rport")

    # Responses go where the Via now says: the source with rport, else received + sent-by port.
    assert SipSockets.reply_peer(response_for(with_received(asked, source), 200), source) == source
    assert SipSockets.reply_peer(response_for(no_rport, 200), source) == Peer(
        "udp", "192.0.2.7", 5060
    )


async def test_only_the_top_via_is_touched() -> None:
    request = make_request("INVITE", via="UDP 10.0.0.5:5062;rport")
    headers = request.headers.set("Via", request.headers.get("Via") + ", SIP/2.0/UDP proxy;lr")
    headers = headers.add("Via", "SIP/2.0/TCP edge:5070;branch=z9hG4bKedge")
    changed = with_received(Request("INVITE", request.uri, headers), Peer("udp", "1.2.3.4", 9))
    vias = changed.vias
    assert vias[0].received == "1.2.3.4" and vias[0].rport == 9
    assert [str(v) for v in vias[1:]] == [
        "SIP/2.0/UDP proxy;lr",
        "SIP/2.0/TCP edge:5070;branch=z9hG4bKedge",
    ]


async def test_a_disallowed_source_is_dropped_and_its_invites_get_a_bounded_403() -> None:
    async with sockets(accept_from=lambda host: False, forbidden_per_second=3) as (b, b_in):
        raw = await RawUdp.open()
        raw.send(make_request("OPTIONS", via=raw.via), b)
        assert await raw.silent()

        for _ in range(200):  # a flood: answered at the bucket's rate, never handed up
            raw.send(make_request("INVITE", via=raw.via), b)
        refusal = await raw.receive()
        assert isinstance(refusal, Response) and refusal.status == 403
        await asyncio.sleep(0.2)
        answered = 1 + raw.queue.qsize()
        assert answered < 50
        assert b_in.queue.empty()
        raw.close()


async def test_a_disallowed_tcp_peer_gets_403_for_an_invite_and_is_hung_up_on() -> None:
    async with sockets(accept_from=lambda host: False) as (b, b_in):
        reader, writer = await asyncio.open_connection("127.0.0.1", b.port)
        writer.write(make_request("INVITE", via="TCP 127.0.0.1:5999").to_bytes())
        refusal = await read_message(reader)
        assert isinstance(refusal, Response) and refusal.status == 403
        assert await hung_up(reader)
        writer.close()

        reader, writer = await asyncio.open_connection("127.0.0.1", b.port)
        writer.write(make_request("OPTIONS", via="TCP 127.0.0.1:5999").to_bytes())
        assert await hung_up(reader)  # no answer, just closed
        writer.close()
        assert b_in.queue.empty()


async def test_a_peer_we_sent_to_may_answer_even_when_not_in_accept_from() -> None:
    async with sockets(accept_from=lambda host: False) as (a, a_in):
        raw = await RawUdp.open()
        request = make_request("OPTIONS", via=f"UDP 127.0.0.1:{a.port};rport")
        await a.send(request, Peer("udp", "127.0.0.1", raw.port))
        received = await raw.receive()
        assert isinstance(received, Request)
        raw.send(response_for(received, 200), a)
        response, _ = await a_in.next()
        assert isinstance(response, Response) and response.status == 200
        raw.close()


async def test_an_unreadable_request_that_can_be_answered_gets_400_with_the_reason() -> None:
    async with sockets() as (b, b_in):
        raw = await RawUdp.open()
        good = make_request("INVITE", via=raw.via).to_bytes()
        broken = good.replace(b"Max-Forwards: 70\r\n", b"this line has no colon\r\n")
        raw.send(broken, b)
        answer = await raw.receive()
        assert isinstance(answer, Response) and answer.status == 400
        assert "malformed header line" in (answer.headers.get("Warning") or "")
        assert answer.vias[0].rport == raw.port  # routed back like any response
        assert b_in.queue.empty()
        raw.close()


async def test_garbage_huge_and_keepalive_datagrams_are_ignored_and_the_socket_lives_on() -> None:
    async with sockets(limits=Limits(max_message=4000)) as (b, b_in):
        raw = await RawUdp.open()
        rng = random.Random(12)
        for size in (1, 7, 100, 1400, 3999):
            raw.send(bytes(rng.randrange(256) for _ in range(size)), b)
        raw.send(b"\r\n\r\n", b)
        raw.send(b"SIP/2.0 200 OK\r\nVia: nonsense\r\n\r\n", b)  # a response: never answered
        raw.send(make_request("OPTIONS", via=raw.via).to_bytes() + b"X" * 5000, b)  # too large
        raw.send(b"A" * 60_000, b)
        raw.send(make_request("ACK", via="garbage").to_bytes(), b)
        assert await raw.silent()
        assert b_in.queue.empty()

        raw.send(make_request("OPTIONS", via=raw.via), b)
        request, _ = await b_in.next()
        assert isinstance(request, Request) and request.method == "OPTIONS"
        raw.close()


@pytest.mark.parametrize("seed", range(8))
async def test_a_tcp_stream_cut_into_random_pieces_gives_every_message_in_order(seed: int) -> None:
    rng = random.Random(seed)
    requests = [
        make_request("MESSAGE", via="TCP 127.0.0.1:5999", cseq=n, body=b"x" * rng.randrange(300))
        for n in range(1, 21)
    ]
    stream = b"".join(r.to_bytes() + b"\r\n\r\n" * rng.randrange(2) for r in requests)
    async with sockets() as (b, b_in):
        _, writer = await asyncio.open_connection("127.0.0.1", b.port)
        position = 0
        while position < len(stream):
            step = rng.randrange(1, 200)
            writer.write(stream[position : position + step])
            await writer.drain()
            position += step
            if rng.random() < 0.3:
                await asyncio.sleep(0)
        got = [await b_in.next() for _ in requests]
        assert [m for m, _ in got] == requests
        writer.close()


async def test_lost_tcp_framing_gets_400_when_possible_then_the_connection_is_closed() -> None:
    async with sockets() as (b, b_in):
        reader, writer = await asyncio.open_connection("127.0.0.1", b.port)
        without_length = make_request("INVITE", via="TCP 127.0.0.1:5999").to_bytes()
        without_length = without_length.replace(b"Content-Length: 0\r\n", b"")
        writer.write(b"\r\n\r\n" + without_length)  # keep-alive first: ignored
        answer = await read_message(reader)
        assert isinstance(answer, Response) and answer.status == 400
        assert await hung_up(reader)
        writer.close()
        assert b_in.queue.empty()


async def hung_up(reader: asyncio.StreamReader) -> bool:
    """The server closed the connection (a reset, when it left our bytes unread, counts)."""
    try:
        return await asyncio.wait_for(reader.read(), GUARD) == b""
    except ConnectionResetError:
        return True


async def connect_from(source: str, port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))


async def test_tcp_connections_per_host_and_in_total_are_bounded() -> None:
    loopback = {"accept_from": lambda host: host.startswith("127."), "max_connections": 6}
    async with sockets(max_connections_per_host=4, **loopback) as (b, b_in):
        first = [await connect_from("127.0.0.1", b.port) for _ in range(30)]
        second = [await connect_from("127.0.0.2", b.port) for _ in range(30)]
        for n, (_, writer) in enumerate(first + second):
            writer.write(make_request("OPTIONS", via="TCP 127.0.0.1:5999", cseq=n + 1).to_bytes())
        # Four from the first host (its share), two from the second (the total is six).
        served = sorted([(await b_in.next())[0].cseq.number for _ in range(6)])
        assert served == [1, 2, 3, 4, 31, 32]
        for reader, _ in first[4:] + second[2:]:
            assert await hung_up(reader)
        assert b_in.queue.empty()

        for _, writer in first[:4]:
            writer.close()
        while len(b._connections) > 2:  # the server notices the EOFs
            await asyncio.sleep(0.01)
        _, writer = await connect_from("127.0.0.2", b.port)
        writer.write(make_request("OPTIONS", via="TCP 127.0.0.1:5999").to_bytes())
        assert isinstance((await b_in.next())[0], Request)  # room again
        for _, each in first[4:] + second:
            each.close()
        writer.close()


async def test_an_idle_tcp_connection_is_closed() -> None:
    async with sockets(idle_timeout=0.05) as (b, _):
        reader, writer = await asyncio.open_connection("127.0.0.1", b.port)
        writer.write(b"\r\n\r\n")
        assert await hung_up(reader)
        writer.close()


async def test_sending_to_a_closed_tcp_port_raises_a_transport_error() -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    async with sockets() as (a, _):
        with pytest.raises(SipTransportError):
            await a.send(make_request("OPTIONS", via="TCP x"), Peer("tcp", "127.0.0.1", port))
    await no_tasks_left()


async def test_sending_after_close_raises_a_transport_error() -> None:
    async with sockets() as (a, _):
        pass
    with pytest.raises(SipTransportError):
        await a.send(make_request("OPTIONS", via="UDP x"), Peer("udp", "127.0.0.1", 9))


async def test_via_and_contact_advertise_the_public_address() -> None:
    async with sockets(public_host="203.0.113.9", public_port=5080) as (a, _):
        via = a.via_for("tcp")
        assert via.transport == "TCP" and (via.host, via.port) == ("203.0.113.9", 5080)
        assert via.has_param("rport") and via.rport is None
        assert (via.branch or "").startswith("z9hG4bK") and a.via_for("tcp").branch != via.branch
        assert str(a.contact_uri("fax", "tcp")) == "sip:fax@203.0.113.9:5080;transport=tcp"
    async with sockets() as (b, _):
        assert str(b.contact_uri("fax")) == f"sip:fax@127.0.0.1:{b.port}"


def ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.skipif(not ipv6_loopback(), reason="no IPv6 loopback")
@pytest.mark.parametrize("transport", ["udp", "tcp"])
async def test_ipv6_addresses_are_bracketed_and_answered(transport: str) -> None:
    allow = {"accept_from": lambda host: host == "::1", "host": "::1"}
    async with sockets(**allow) as (a, a_in), sockets(**allow) as (b, b_in):
        via = a.via_for("udp" if transport == "udp" else "tcp")
        assert str(via).startswith(f"SIP/2.0/{transport.upper()} [::1]:{a.port};")
        request = make_request("OPTIONS", via="UDP x")
        request = Request("OPTIONS", f"sip:[::1]:{b.port}", request.headers.set("Via", str(via)))
        await a.send(request, Peer(transport, "::1", b.port))  # type: ignore[arg-type]
        got, source = await b_in.next()
        assert isinstance(got, Request) and source.host == "::1"
        assert Via.parse(got.headers.get_all("Via")[0]).received == "::1"
        await b.reply(response_for(got, 200), source)
        response, _ = await a_in.next()
        assert isinstance(response, Response) and response.status == 200


async def test_a_dual_stack_socket_sees_ipv4_peers_as_plain_ipv4() -> None:
    if not ipv6_loopback():
        pytest.skip("no IPv6")
    seen: list[str] = []
    async with sockets(host="::", accept_from=lambda host: seen.append(host) or True) as (b, b_in):
        assert b.advertised_host not in ("::", "")  # a wildcard advertises a real address
        raw = await RawUdp.open()
        raw.send(make_request("OPTIONS", via=raw.via), b)
        request, source = await b_in.next()
        assert source == Peer("udp", "127.0.0.1", raw.port) and seen == ["127.0.0.1"]
        assert isinstance(request, Request)
        await b.reply(response_for(request, 200), source)  # back through the mapped address
        answer = await raw.receive()
        assert isinstance(answer, Response) and answer.status == 200
        raw.close()


async def test_a_host_name_is_resolved_before_sending() -> None:
    async with sockets() as (a, _):
        raw = await RawUdp.open()
        await a.send(make_request("OPTIONS", via="UDP x"), Peer("udp", "localhost", raw.port))
        assert isinstance(await raw.receive(), Request)
        with pytest.raises(SipTransportError, match="resolve"):
            await a.send(make_request("OPTIONS", via="UDP x"), Peer("udp", "no-such.invalid", 9))
        raw.close()


async def test_a_message_too_large_for_a_datagram_is_refused() -> None:
    async with sockets() as (a, _):
        huge = make_request("MESSAGE", via="UDP x", body=b"x" * 70_000)
        with pytest.raises(SipTransportError, match="datagram"):
            await a.send(huge, Peer("udp", "127.0.0.1", 9))


async def test_a_consumer_that_raises_does_not_stop_the_socket() -> None:
    async with sockets() as (b, b_in):

        def broken(message: Request | Response, peer: Peer) -> None:
            raise RuntimeError("bug")

        b.on_message = broken
        raw = await RawUdp.open()
        raw.send(make_request("OPTIONS", via=raw.via), b)
        await raw.silent(0.05)
        b.on_message = b_in
        raw.send(make_request("OPTIONS", via=raw.via), b)
        assert isinstance((await b_in.next())[0], Request)
        raw.close()
