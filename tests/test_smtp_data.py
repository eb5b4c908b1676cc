"""The bulk DATA reader answers as aiosmtpd's own line-by-line reader does.

aiosmtpd 1.4.6 ends DATA lines at CRLF only; the gateway ends them at LF too (bare LF mail is
common) and writes them as CRLF. So the bulk reader is compared with aiosmtpd's own reader
where the two rules agree (content modulo that LF → CRLF), and everywhere with ``LineByLine``:
aiosmtpd's own DATA loop reading lines up to LF, ending only at CRLF "." CRLF.
"""

from __future__ import annotations

import asyncio
import re
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiosmtpd.smtp import MISSING, SMTP, Envelope, Session, syntax
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


class LineByLine(SMTP):
    """aiosmtpd 1.4.6's DATA loop, with lines read up to LF (as aiosmtpd reads commands) and
    the data ended only by a "." line after a CRLF; bare LF line ends written as CRLF."""

    line_length_limit = LINE_LIMIT

    @syntax("DATA")
    async def smtp_DATA(self, arg: str) -> None:
        assert self.envelope is not None
        if not self.envelope.rcpt_tos:
            await self.push("503 Error: need RCPT command")
            return
        await self.push("354 End data with <CR><LF>.<CR><LF>")
        lines: list[bytes] = []
        fragments: list[bytes] = []
        size, state, after_crlf = 0, "nominal", True
        while True:
            try:
                line = await self._reader.readuntil(b"\n")
            except asyncio.LimitOverrunError as exc:
                state = "too long" if state == "nominal" else state
                line = await self._reader.read(exc.consumed)
            if not fragments and after_crlf and line == b".\r\n":
                break
            size += len(line)
            if state == "nominal" and size > SIZE_LIMIT:
                state = "too much"
            fragments.append(line)
            if line.endswith(b"\n"):
                whole = b"".join(fragments)
                fragments.clear()
                after_crlf = whole.endswith(b"\r\n")
                if state == "nominal" and len(whole) > self.line_length_limit:
                    state = "too long"
                lines.append(whole[1:] if whole.startswith(b".") else whole)
        if state != "nominal":
            too_long = state == "too long"
            await self.push(
                "500 Line too long (see RFC5321 4.5.3.1.6)"
                if too_long
                else "552 Error: Too much mail data"
            )
            self._set_post_data_state()  # type: ignore[no-untyped-call]
            return
        content = b"".join(
            line if line.endswith(b"\r\n") else line[:-1] + b"\r\n" for line in lines
        )
        self.envelope.content = self.envelope.original_content = content
        status = await self._call_handler_hook("DATA")
        self._set_post_data_state()  # type: ignore[no-untyped-call]
        await self.push("250 OK" if status is MISSING else status)


@dataclass
class Server:
    port: int
    recorder: Recorder = field(default_factory=Recorder)


@pytest.fixture
async def servers() -> AsyncIterator[tuple[Server, Server, Server]]:
    loop = asyncio.get_running_loop()
    started: list[asyncio.Server] = []
    pair = []
    for cls in (Stock, Bulk, LineByLine):
        recorder = Recorder()

        def factory(cls: type[SMTP] = cls, recorder: Recorder = recorder) -> SMTP:
            return cls(recorder, hostname="t", data_size_limit=SIZE_LIMIT)

        server = await loop.create_server(factory, "127.0.0.1", 0)
        started.append(server)
        pair.append(Server(server.sockets[0].getsockname()[1], recorder))
    yield pair[0], pair[1], pair[2]
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
            b"Subject: hi\n",
            b"\r\r\n",
            b"\n.\n",  # LF "." LF, CR "." CR, LF "." CRLF: never an end of data
            b"\r.\r",
            b"\n.\r\n",
            b"\n..\n",
            b"\n\n",
        ]
    ),
    st.integers(0, 2 * LINE_LIMIT).map(lambda n: b"y" * n),
    st.tuples(st.integers(0, LINE_LIMIT + 2), st.sampled_from([b"\n", b"\r\n", b"\r"])).map(
        lambda t: b"z" * t[0] + t[1]
    ),
    st.binary(max_size=40),
)
DATA = st.lists(FRAGMENTS, max_size=60).map(b"".join)


def same_answer(one: bytes, other: bytes) -> bool:
    if one == other:
        return True
    # A message both too large and with a too-long line may get either refusal.
    refusals = (b"500 Line too long (see RFC5321 4.5.3.1.6)", b"552 Error: Too much mail data")
    return one.replace(*refusals) == other.replace(*refusals)


def crlf(data: bytes) -> bytes:
    return re.sub(rb"(?<!\r)\n", b"\r\n", data)


def accepted(replies: bytes) -> bool:
    """The message itself (the reply after 354) was answered 250."""
    return replies.split(b"354 End data with <CR><LF>.<CR><LF>\r\n", 1)[-1].startswith(b"250")


async def test_bulk_reader_matches_aiosmtpd(servers: tuple[Server, Server, Server]) -> None:
    stock, bulk, by_line = servers

    @settings(
        max_examples=250,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(data=DATA)
    @example(data=b"")
    @example(data=b".")
    @example(data=b"..\r\n.x\r\n.")
    @example(data=b"\r\n.\r\nMAIL FROM:<smuggled@x>")  # ends early; the rest are commands
    @example(data=b"a\n.\nb\r.\rc\n.\r\nd")  # bare LF/CR never end the data (no smuggling)
    @example(data=b"a\n.\r\nMAIL FROM:<smuggled@x>\r\n")
    @example(data=b"z" * (LINE_LIMIT - 2))  # the longest line allowed ...
    @example(data=b"z" * (LINE_LIMIT - 1))  # ... and one byte more
    @example(data=(b"z" * (LINE_LIMIT - 1) + b"\n") * 3)  # the longest bare LF lines allowed
    @example(data=(b"z" * LINE_LIMIT + b"\n") * 3)  # ... and one byte more
    @example(data=(b"w" * 70 + b"\r\n") * 60)  # over the size limit
    @example(data=(b"w" * 70 + b"\n") * 60)  # over the size limit, bare LF
    @example(data=(b"v" * 70 + b"\n") * 30)  # many bare LF lines, longer than a line together
    def compare(data: bytes) -> None:
        def run(server: Server) -> tuple[bytes, list[bytes]]:
            before = len(server.recorder.contents)
            replies = conversation(server.port, data)
            return replies, server.recorder.contents[before:]

        (stock_replies, stock_content), (replies, content), by_line_answer = map(
            run, (stock, bulk, by_line)
        )
        # Everywhere: as aiosmtpd's own loop reading lines up to LF.
        assert same_answer(replies, by_line_answer[0]), (replies, by_line_answer[0])
        assert content == by_line_answer[1]
        # Where aiosmtpd 1.4.6's CRLF-only lines give the same lines (no bare LF, or only
        # bare LFs that neither make its line too long nor begin a stuffed line): the same.
        if b"\n" not in data.replace(b"\r\n", b""):  # no bare LF at all
            assert same_answer(stock_replies, replies), (stock_replies, replies)
            assert stock_content == content
        elif accepted(stock_replies) and not re.search(rb"(?<!\r)\n\.", data):
            assert stock_replies == replies
            assert [crlf(c) for c in stock_content] == content

    await asyncio.to_thread(compare)


@pytest.mark.parametrize("eol", [b"\r\n", b"\n", b"mixed"])
@pytest.mark.parametrize("size", [10, 65_000, 70_000, 300_000])
async def test_large_messages_in_chunks(size: int, eol: bytes) -> None:
    """Lines and the end-of-data line falling anywhere across the stream's buffer limit (64
    KiB, the gateway's line limit too); bare LF lines arrive as CRLF lines."""
    recorder = Recorder()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: BulkDataSMTP(recorder, hostname="t", data_size_limit=10_000_000), "127.0.0.1", 0
    )
    port = server.sockets[0].getsockname()[1]
    lines = [
        (b"." if n % 7 == 0 else b"") + b"%d " % n + b"q" * (n % 97) for n in range(size // 50)
    ]
    ends = [eol if eol != b"mixed" else (b"\n", b"\r\n")[n % 2] for n in range(len(lines))]
    body = b"\r\n".join(lines)
    stuffed = b"".join(
        (b"." + line if line.startswith(b".") else line) + end
        for line, end in zip(lines, ends, strict=True)
    )
    stuffed = stuffed.removesuffix(ends[-1]) if ends else stuffed  # conversation() ends it
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
        # LF "." CRLF cut anywhere is data (its "." unstuffed), not the end.
        (b"c" * 400 + b"\n.", b"\r\nd\r\n.\r\n", b"c" * 400 + b"\n\r\nd\r\n"),
        (b"c" * 400 + b"\n", b".\r\nd\r\n.\r\n", b"c" * 400 + b"\n\r\nd\r\n"),
        (b"c" * 400 + b"\r", b".\r\n.\r\n", b"c" * 400 + b"\r.\r\n"),
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
