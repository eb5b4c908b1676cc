"""Slow and idle HTTP clients cannot hold connections: the request head has a time limit, and
open connections are capped. Real uvicorn on a real socket, with a short configured timeout.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from starlette.types import Receive, Scope, Send

from gateway.api.server import serve_http
from gateway.config import HttpSettings

HEAD_TIMEOUT_S = 0.2
PARTIAL_HEAD = b"GET /ok HTTP/1.1\r\nHost: gw.test\r\nX-Slow: "  # never finished
# Generous: only there so that a broken server fails the test instead of hanging it.
PATIENCE_S = 30


class App:
    """``/ok`` answers at once; ``/slow`` answers once the test sets ``release``."""

    def __init__(self) -> None:
        self.release = asyncio.Event()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert scope["type"] == "http"
        if scope["path"] == "/slow":
            await self.release.wait()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})


@asynccontextmanager
async def serving(app: App, **http: Any) -> AsyncIterator[str]:
    stop = asyncio.Event()
    ready: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    settings = HttpSettings(port=0, shutdown_timeout_s=1, **http)
    task = asyncio.create_task(serve_http(app, settings, stop, ready.set_result))
    port = await asyncio.wait_for(ready, PATIENCE_S)
    try:
        yield f"127.0.0.1:{port}"
    finally:
        stop.set()
        await asyncio.wait_for(task, PATIENCE_S)


@pytest.fixture
def app() -> App:
    return App()


@pytest.fixture
async def server(app: App) -> AsyncIterator[str]:
    async with serving(app, header_timeout_s=HEAD_TIMEOUT_S) as address:
        yield address


async def connect(address: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    host, port = address.split(":")
    return await asyncio.open_connection(host, int(port))


async def closed_by_server(reader: asyncio.StreamReader) -> bytes:
    """Everything the server sent until it closed the connection."""
    return await asyncio.wait_for(reader.read(), PATIENCE_S)


async def get_ok(address: str) -> int:
    async with httpx.AsyncClient(base_url=f"http://{address}") as client:
        return (await client.get("/ok")).status_code


async def test_connections_with_an_unfinished_request_head_are_closed(server: str) -> None:
    connections = [await connect(server) for _ in range(5)]
    for _, writer in connections:
        writer.write(PARTIAL_HEAD)
        await writer.drain()
    assert await get_ok(server) == 200  # the server still answers others meanwhile
    for reader, writer in connections:
        assert await closed_by_server(reader) == b""
        writer.close()


async def test_a_connection_that_sends_nothing_is_closed(server: str) -> None:
    reader, writer = await connect(server)
    assert await closed_by_server(reader) == b""
    writer.close()


async def test_the_next_request_head_on_a_kept_alive_connection_has_the_limit_too(
    server: str,
) -> None:
    reader, writer = await connect(server)
    writer.write(b"GET /ok HTTP/1.1\r\nHost: gw.test\r\n\r\n")
    answer = await asyncio.wait_for(reader.readuntil(b"\r\n0\r\n\r\n"), PATIENCE_S)
    assert answer.startswith(b"HTTP/1.1 200 ")
    # Sent after the answer: uvicorn's keep-alive timer stops at the first byte of it.
    writer.write(PARTIAL_HEAD)
    await writer.drain()
    assert await closed_by_server(reader) == b""
    writer.close()


async def test_a_slow_answer_to_a_complete_request_is_not_cut(app: App, server: str) -> None:
    slow_reader, slow_writer = await connect(server)
    slow_writer.write(b"GET /slow HTTP/1.1\r\nHost: gw.test\r\nConnection: close\r\n\r\n")
    await slow_writer.drain()
    late_reader, late_writer = await connect(server)
    # Once a connection opened later is closed, the slow one's head timer has run too.
    assert await closed_by_server(late_reader) == b""
    app.release.set()
    answer = await closed_by_server(slow_reader)
    assert answer.startswith(b"HTTP/1.1 200 ")
    for writer in (slow_writer, late_writer):
        writer.close()


async def test_connections_beyond_the_cap_are_answered_503(app: App) -> None:
    async with serving(app, header_timeout_s=PATIENCE_S, max_connections=2) as address:
        held = [await connect(address)]
        assert await get_ok(address) == 200  # the cap is 2 open connections: this is the 2nd
        held.append(await connect(address))
        assert await get_ok(address) == 503
        for _, writer in held:
            writer.close()
            await writer.wait_closed()
