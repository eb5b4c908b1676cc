"""The bulk DATA reader answers exactly as aiosmtpd's own line-by-line reader does."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiosmtpd.smtp import SMTP, Envelope, Session
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from gateway.smtp.data import BulkDataSMTP

LINE_LIMIT = 300  # small, so that long lines and chunked reads are common
SIZE_LIMIT = 3000


class Recorder:
    def __init__(self) -> None:
        self.contents: list[bytes] = []

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.contents.append(envelope.original_content or b"")
        return "250 OK"


class Stock(SMTP):
    line_length_limit = LINE_LIMIT


class Bulk(BulkDataSMTP):
    line_length_limit = LINE_LIMIT


@dataclass
class Server:
    port: int
    recorder: Recorder = field(default_factory=Recorder)


@pytest.fixture
async def servers() -> AsyncIterator[tuple[Server, Server]]:
    loop = asyncio.get_running_loop()
    started: list[asyncio.Server] = []
    pair = []
    for cls in (Stock, Bulk):
        recorder = Recorder()

        def factory(cls: type[SMTP] = cls, recorder: Recorder = recorder) -> SMTP:
            return cls(recorder, hostname="t", data_size_limit=SIZE_LIMIT)

        server = await loop.create_server(factory, "127.0.0.1", 0)
        started.append(server)
        pair.append(Server(server.sockets[0].getsockname()[1], recorder))
    yield pair[0], pair[1]
    for server in started:
        server.close()
        await server.wait_closed()


def conversation(port: int, data: bytes) -> bytes:
    """Everything pipelined: the envelope, the data, its end, and commands after it."""
    stream = (
        b"EHLO t\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\nDATA\r\n"
        + data
        + b"\r\n.\r\nNOOP\r\nMAIL FROM:<x@y.example>\r\nQUIT\r\n"
    )
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(stream)
        replies = b""
        while chunk := sock.recv(65536):
            replies += chunk
    return replies


FRAGMENTS = st.one_of(
    st.sampled_from(
        [
            b"\r\n",
            b".",
            b"..",
            b"\r",
            b"\n",
            b".\r\n",
            b"\r\n.",
            b"x",
            b"Subject: hi\r\n",
            b"\r\r\n",
        ]
    ),
    st.integers(0, 2 * LINE_LIMIT).map(lambda n: b"y" * n),
    st.binary(max_size=40),
)
DATA = st.lists(FRAGMENTS, max_size=60).map(b"".join)


def same_answer(stock: bytes, bulk: bytes) -> bool:
    if stock == bulk:
        return True
    # A message both too large and with a too-long line may get either refusal.
    refusals = (b"500 Line too long (see RFC5321 4.5.3.1.6)", b"552 Error: Too much mail data")
    return stock.replace(*refusals) == bulk.replace(*refusals)


async def test_bulk_reader_matches_aiosmtpd(servers: tuple[Server, Server]) -> None:
    stock, bulk = servers

    @settings(
        max_examples=150,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(data=DATA)
    @example(data=b"")
    @example(data=b".")
    @example(data=b"..\r\n.x\r\n.")
    @example(data=b"\r\n.\r\nMAIL FROM:<smuggled@x>")  # ends early; the rest are commands
    @example(data=b"a\n.\nb\r.\rc")  # bare LF/CR never end the data (no smuggling)
    @example(data=b"z" * (LINE_LIMIT - 2))  # the longest line allowed ...
    @example(data=b"z" * (LINE_LIMIT - 1))  # ... and one byte more
    @example(data=(b"w" * 70 + b"\r\n") * 60)  # over the size limit
    def compare(data: bytes) -> None:
        before = (len(stock.recorder.contents), len(bulk.recorder.contents))
        replies = conversation(stock.port, data), conversation(bulk.port, data)
        assert same_answer(*replies), replies
        assert stock.recorder.contents[before[0] :] == bulk.recorder.contents[before[1] :]

    await asyncio.to_thread(compare)


@pytest.mark.parametrize("size", [10, 65_000, 70_000, 300_000])
async def test_large_messages_in_chunks(size: int) -> None:
    """Lines and the end-of-data line falling anywhere across the stream's buffer limit."""
    recorder = Recorder()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: BulkDataSMTP(recorder, hostname="t", data_size_limit=10_000_000), "127.0.0.1", 0
    )
    port = server.sockets[0].getsockname()[1]
    lines = [
        (b"." if n % 7 == 0 else b"") + b"%d " % n + b"q" * (n % 97) for n in range(size // 50)
    ]
    body = b"\r\n".join(lines)
    stuffed = b"\r\n".join(b"." + line if line.startswith(b".") else line for line in lines)
    try:
        replies: Any = await asyncio.to_thread(conversation, port, stuffed)
    finally:
        server.close()
        await server.wait_closed()
    assert b"250 OK\r\n250 OK\r\n" in replies  # the message, then the NOOP after it
    assert recorder.contents == [body + b"\r\n"]


class _Reading:
    """Just what BulkDataSMTP._read_data uses, around a stream we feed by hand."""

    def __init__(self, reader: asyncio.StreamReader) -> None:
        self._reader = reader
        self.data_size_limit = 10_000
        self.line_length_limit = 1000


@pytest.mark.parametrize(
    ("first", "rest", "content"),
    [
        # The stream's limit (300) cuts the data between the CR and LF of the CRLF that
        # precedes the end-of-data line: the CR must not be taken for the end of a line.
        (b"a" * 400 + b"\r\n.", b"\r\n", b"a" * 400 + b"\r\n"),
        (b"a" * 400 + b"\r\n.", b".\r\n.\r\n", b"a" * 400 + b"\r\n.\r\n"),
        (b"a" * 400 + b"\r", b"\n.\r\n", b"a" * 400 + b"\r\n"),
        (b"a" * 400 + b"\r\r", b"\n.\r\n", b"a" * 400 + b"\r\r\n"),
        (b"b" * 401 + b".\r", b"\n.\r\n", b"b" * 401 + b".\r\n"),
    ],
)
async def test_end_of_data_across_chunks(first: bytes, rest: bytes, content: bytes) -> None:
    reader = asyncio.StreamReader(limit=300)
    reader.feed_data(first)
    reading = asyncio.ensure_future(BulkDataSMTP._read_data(_Reading(reader)))  # type: ignore[arg-type]
    for _ in range(5):
        await asyncio.sleep(0)  # let it read what is there and wait for more
    assert not reading.done()
    reader.feed_data(rest + b"NOOP\r\n")
    state, data = await asyncio.wait_for(reading, 5)
    assert state.name == "NOMINAL"
    assert data == content
    assert await reader.readuntil(b"\r\n") == b"NOOP\r\n"  # left for the command loop
