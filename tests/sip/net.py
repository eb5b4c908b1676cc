"""Test peers for the SIP socket and transaction tests: raw UDP and TCP endpoints on 127.0.0.1
that send exactly the bytes a test writes and record what arrives, and a message builder."""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator
from typing import Any

from gateway.sip.message import (
    Headers,
    Request,
    Response,
    new_branch,
    new_call_id,
    new_tag,
    parse_message,
)
from gateway.sip.sockets import Peer, SipSockets

GUARD = 5.0  # generous bound on waiting for an event that must happen


def make_request(
    method: str,
    *,
    via: str,
    branch: str | None = None,
    cseq: int = 1,
    call_id: str | None = None,
    to_tag: str | None = None,
    uri: str = "sip:fax@127.0.0.1",
    body: bytes = b"",
) -> Request:
    """A request as a simple UA sends it; ``via`` is the sent-by and transport, e.g.
    ``"UDP 127.0.0.1:5060;rport"``."""
    headers = Headers.of(
        ("Via", f"SIP/2.0/{via};branch={branch or new_branch()}"),
        ("Max-Forwards", "70"),
        ("From", f"<sip:caller@127.0.0.1>;tag={new_tag()}"),
        ("To", "<sip:fax@127.0.0.1>" + (f";tag={to_tag}" if to_tag else "")),
        ("Call-ID", call_id or new_call_id()),
        ("CSeq", f"{cseq} {method}"),
    )
    return Request(method, uri, headers, body)


class Collector:
    """Messages handed up by a SipSockets, in arrival order."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[tuple[Request | Response, Peer]] = asyncio.Queue()

    def __call__(self, message: Request | Response, peer: Peer) -> None:
        self.queue.put_nowait((message, peer))

    async def next(self) -> tuple[Request | Response, Peer]:
        return await asyncio.wait_for(self.queue.get(), GUARD)


@contextlib.asynccontextmanager
async def sockets(**kwargs: Any) -> AsyncIterator[tuple[SipSockets, Collector]]:
    collector = Collector()
    kwargs.setdefault("accept_from", lambda host: host == "127.0.0.1")
    layer = SipSockets(kwargs.pop("host", "127.0.0.1"), 0, on_message=collector, **kwargs)
    await layer.start()
    try:
        yield layer, collector
    finally:
        await layer.close()


class _Datagrams(asyncio.DatagramProtocol):
    def __init__(self, queue: asyncio.Queue[bytes]) -> None:
        self.queue = queue

    def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
        self.queue.put_nowait(data)


class RawUdp:
    """A UDP socket that sends raw bytes and records every datagram it receives."""

    def __init__(self, transport: asyncio.DatagramTransport, queue: asyncio.Queue[bytes]) -> None:
        self.transport = transport
        self.queue = queue

    @classmethod
    async def open(cls, host: str = "127.0.0.1") -> RawUdp:
        queue: asyncio.Queue[bytes] = asyncio.Queue()
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            lambda: _Datagrams(queue), local_addr=(host, 0)
        )
        return cls(transport, queue)

    @property
    def port(self) -> int:
        return int(self.transport.get_extra_info("sockname")[1])

    @property
    def via(self) -> str:
        return f"UDP 127.0.0.1:{self.port};rport"

    def send(self, data: bytes | Request | Response, to: SipSockets) -> None:
        raw = data if isinstance(data, bytes) else data.to_bytes()
        host = "127.0.0.1" if to.host in ("::", "0.0.0.0") else to.host
        self.transport.sendto(raw, (host, to.port))

    async def receive(self, timeout: float = GUARD) -> Request | Response:
        return parse_message(await asyncio.wait_for(self.queue.get(), timeout))

    async def silent(self, wait: float = 0.2) -> bool:
        """Nothing arrives within ``wait`` (used only to show an absence, never a duration)."""
        try:
            await asyncio.wait_for(self.queue.get(), wait)
        except TimeoutError:
            return True
        return False

    def close(self) -> None:
        self.transport.close()


async def read_message(reader: asyncio.StreamReader) -> Response | Request:
    """One message off a stream written by our TCP code (always with Content-Length)."""
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), GUARD)
    found = re.search(rb"\r\nContent-Length: *([0-9]+)", head, re.IGNORECASE)
    length = int(found.group(1)) if found else 0
    body = await asyncio.wait_for(reader.readexactly(length), GUARD)
    return parse_message(head + body)
