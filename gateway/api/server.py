"""Serving the ASGI app with uvicorn inside the daemon's own event loop.

Three things differ from ``uvicorn.run``: the socket is bound here, so a busy port is an error
the daemon sees (uvicorn would ``sys.exit``) and port 0 reports the port it got; uvicorn does
not touch signal handlers (the daemon owns SIGTERM/SIGINT and the order of shutdown); and
logging is left to the daemon's configuration.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Callable, Iterator

import uvicorn
from starlette.types import ASGIApp

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
        http="h11",
        ws="none",
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
