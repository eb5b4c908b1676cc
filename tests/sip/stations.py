"""User agents for the SIP tests: each one a real SipSockets + TransactionLayer + UserAgent on
127.0.0.1 (port 0), with small RFC 3261 timers and a callee whose behaviour a test sets."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

from gateway.sip.calls import Call, OutboundCall, ReinviteHandler
from gateway.sip.incoming import IncomingCall
from gateway.sip.message import Headers, Request, Response, new_call_id, new_tag
from gateway.sip.sockets import Peer, SipSockets, Transport
from gateway.sip.transaction import Timers, TransactionLayer
from gateway.sip.useragent import SipAccount, UaOptions, UserAgent

GUARD = 5.0  # generous bound on waiting for something that must happen
TIMERS = Timers(t1=0.05, t2=0.2, t4=0.2, d=0.5, trying=0.05)
OPTIONS = UaOptions(
    ring_timeout=GUARD,
    glare_owner=(0.02, 0.04),
    glare_other=(0.0, 0.02),
    reinvite_timeout=GUARD,
)


def sdp(session: int, version: int = 1, port: int = 4000) -> bytes:
    return (
        f"v=0\r\no=- {session} {version} IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\n"
        f"t=0 0\r\nm=audio {port} RTP/AVP 0\r\n"
    ).encode()


CALLER_SDP, CALLEE_SDP = sdp(1), sdp(2)
NUMBER = "+15551230000"
Behaviour = Callable[[IncomingCall], Awaitable[None]]


@dataclass
class Callee:
    """A CallHandler whose ``behaviour`` a test sets; it records what it was offered and the
    calls it answered."""

    behaviour: Behaviour | None = None
    offered: asyncio.Queue[IncomingCall] = field(default_factory=asyncio.Queue)
    answered: asyncio.Queue[Call] = field(default_factory=asyncio.Queue)

    async def on_invite(self, call: IncomingCall) -> None:
        self.offered.put_nowait(call)
        if self.behaviour is not None:
            await self.behaviour(call)

    def answers(self, body: bytes, *, ring: bool = True) -> None:
        async def behaviour(call: IncomingCall) -> None:
            if ring:
                await call.ring()
            self.answered.put_nowait(await call.answer(body))

        self.behaviour = behaviour

    async def next_answered(self) -> Call:
        return await asyncio.wait_for(self.answered.get(), GUARD)

    async def next_offered(self) -> IncomingCall:
        return await asyncio.wait_for(self.offered.get(), GUARD)


@dataclass
class Station:
    sockets: SipSockets
    layer: TransactionLayer
    ua: UserAgent
    callee: Callee

    @property
    def port(self) -> int:
        return self.sockets.port

    def peer(self, transport: Transport) -> Peer:
        return Peer(transport, "127.0.0.1", self.sockets.port)


@contextlib.asynccontextmanager
async def sockets_on_loopback() -> AsyncIterator[SipSockets]:
    sockets = SipSockets("127.0.0.1", 0, accept_from=lambda host: host == "127.0.0.1")
    await sockets.start()
    try:
        yield sockets
    finally:
        await sockets.close()


@contextlib.asynccontextmanager
async def station(
    proxy: Peer | Callable[[SipSockets], Peer],
    *,
    username: str = "fax",
    password: str = "secret",
    options: UaOptions = OPTIONS,
    timers: Timers = TIMERS,
) -> AsyncIterator[Station]:
    """A user agent whose account sends to ``proxy`` (or to what it computes from our own
    sockets, for two stations that point at each other)."""
    async with sockets_on_loopback() as sockets:
        layer = TransactionLayer(sockets, timers)
        to = proxy(sockets) if callable(proxy) else proxy
        account = SipAccount(username, password, "127.0.0.1", to, display="Fax Gateway")
        callee = Callee()
        ua = UserAgent(layer, sockets, account, callee, options=options)
        try:
            yield Station(sockets, layer, ua, callee)
        finally:
            await ua.close()
            await layer.close()


@contextlib.asynccontextmanager
async def pair(
    transport: Transport, *, options: UaOptions = OPTIONS
) -> AsyncIterator[tuple[Station, Station]]:
    """Caller and callee, each the other's proxy."""
    async with sockets_on_loopback() as callee_sockets:
        callee_layer = TransactionLayer(callee_sockets, TIMERS)
        async with station(Peer(transport, "127.0.0.1", callee_sockets.port), options=options) as a:
            account = SipAccount("gw", "x", "127.0.0.1", a.peer(transport))
            callee = Callee()
            ua = UserAgent(callee_layer, callee_sockets, account, callee, options=options)
            b = Station(callee_sockets, callee_layer, ua, callee)
            try:
                yield a, b
            finally:
                await ua.close()
                await callee_layer.close()


async def until(condition: Callable[[], bool]) -> None:
    """Wait (polling, bounded by GUARD) until ``condition()`` holds."""
    async with asyncio.timeout(GUARD):
        while not condition():
            await asyncio.sleep(0.01)


async def call(
    a: Station, b: Station, on_provisional: Callable[[Response], object] | None = None
) -> tuple[OutboundCall, Call]:
    """A calls B (B rings and answers): both sides' calls."""
    b.callee.answers(CALLEE_SDP)
    outbound = await a.ua.invite(
        f"sip:{NUMBER}@127.0.0.1", "fax", CALLER_SDP, on_provisional=on_provisional
    )
    inbound = await b.callee.next_answered()
    return outbound, inbound


def answering(body: bytes, seen: list[bytes]) -> ReinviteHandler:
    """An on_reinvite that answers ``body`` and records the offers."""

    async def on_reinvite(offer: bytes) -> bytes:
        seen.append(offer)
        return body

    return on_reinvite


def ringing_sets(event: asyncio.Event) -> Callable[[Response], None]:
    def seen(response: Response) -> None:
        if response.status == 180:
            event.set()

    return seen


def out_of_dialog(method: str, *, to_tag: str | None = None) -> Request:
    """A request from a probe that is in no dialog of ours (unless ``to_tag`` says so)."""
    to = f"<sip:{NUMBER}@127.0.0.1>" + (f";tag={to_tag}" if to_tag else "")
    headers = Headers.of(
        ("Max-Forwards", "70"),
        ("From", f"<sip:probe@127.0.0.1>;tag={new_tag()}"),
        ("To", to),
        ("Call-ID", new_call_id()),
        ("CSeq", f"1 {method}"),
    )
    return Request(method, f"sip:{NUMBER}@127.0.0.1", headers)


async def ask(a: Station, b: Station, request: Request) -> Response:
    """Send ``request`` from A's user agent client to B over UDP; B's final response."""
    _, response = await a.ua.client.authenticated(lambda: request, b.peer("udp"))
    return response
