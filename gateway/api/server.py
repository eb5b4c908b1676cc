"""Serving the ASGI app with uvicorn inside the daemon's own event loop.

Four things differ from ``uvicorn.run``: the socket is bound here, so a busy port is an error
the daemon sees (uvicorn would ``sys.exit``) and port 0 reports the port it got; uvicorn does
not touch signal handlers (the daemon owns SIGTERM/SIGINT and the order of shutdown); logging
is left to the daemon's configuration; and a request head has a time limit (see
``HeadTimeoutProtocol``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Callable, Iterator

import h11
import uvicorn
from starlette.types import ASGIApp
from uvicorn.protocols.http.h11_impl import H11Protocol

from gateway.config import HttpSettings
from gateway.errors import ConfigError

log = logging.getLogger(__name__)


class _EmbeddedServer(uvicorn.Server):
    def __init__(
        self, config: uvicorn.Config, port: int, on_ready: Callable[[int], None] | None
    ) -> None:
        super().__init__(config)
        self._port = port
        self._on_ready = on_ready

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield  # the daemon's handlers stay in place; it stops us through ``stop``

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            log.info("http listening on port %d", self._port)
            if self._on_ready is not None:
                self._on_ready(self._port)


class HeadTimeoutProtocol(H11Protocol):
    """uvicorn's h11 protocol, closing a connection whose request head takes too long.

    uvicorn has no such limit: ``timeout_keep_alive`` runs only between requests and stops at
    the first byte of the next one, so a client that sends part of a request line or headers
    (or connects and sends nothing) holds the connection and its file descriptor for ever. A
    size limit (h11's ``max_incomplete_event_size``) does not help against one that trickles.
    The timer starts when the connection opens and again when an answer is complete; a
    request whose head is in is the application's to answer, however long it takes.
    """

    header_timeout_s: float = 10.0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._head_timer: asyncio.TimerHandle | None = None
        super().connection_made(transport)
        self._start_head_timer()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._start_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_head_timer()
        super().connection_lost(exc)

    def _start_head_timer(self) -> None:
        self._stop_head_timer()
        self._head_timer = self.loop.call_later(self.header_timeout_s, self._head_timed_out)

    def _stop_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        # h11 leaves IDLE only once a whole request head is parsed.
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            log.debug("http: request head from %s not complete in time; closing", self.client)
            self.transport.close()


def _protocol_class(header_timeout_s: float) -> type[HeadTimeoutProtocol]:
    # uvicorn builds the protocol itself, from a class: the setting travels as a class attribute.
    return type(
        "HeadTimeoutProtocol", (HeadTimeoutProtocol,), {"header_timeout_s": header_timeout_s}
    )


async def _bind(host: str, port: int) -> socket.socket:
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        family, kind, proto, _, address = infos[0]
        sock = socket.socket(family, kind, proto)
    except (OSError, IndexError) as exc:
        raise ConfigError(f"http: cannot listen on {host}:{port}: {exc}") from exc
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        raise ConfigError(f"http: cannot listen on {host}:{port}: {exc.strerror}") from exc
    return sock


async def serve_http(
    app: ASGIApp,
    settings: HttpSettings,
    stop: asyncio.Event,
    on_ready: Callable[[int], None] | None = None,
) -> None:
    """Serve ``app`` until ``stop`` is set, then finish requests in flight (up to
    ``settings.shutdown_timeout_s``) and return. ``on_ready(port)`` is called once listening.
    """
    sock = await _bind(settings.host, settings.port)
    config = uvicorn.Config(
        app,
        lifespan="off",
        http=_protocol_class(settings.header_timeout_s),
        ws="none",
        # uvicorn counts the connection asking among the open ones: + 1 lets exactly
        # max_connections be served at once.
        limit_concurrency=settings.max_connections + 1,
        log_config=None,
        server_header=False,
        proxy_headers=False,
        timeout_graceful_shutdown=int(settings.shutdown_timeout_s),
    )
    server = _EmbeddedServer(config, sock.getsockname()[1], on_ready)
    serving = asyncio.create_task(server.serve(sockets=[sock]), name="http")
    stopping = asyncio.create_task(stop.wait(), name="http-stop")
    try:
        await asyncio.wait({serving, stopping}, return_when=asyncio.FIRST_COMPLETED)
        server.should_exit = True
        await serving
    except asyncio.CancelledError:
        server.should_exit = server.force_exit = True
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await serving
        raise
    finally:
        stopping.cancel()
        sock.close()
