"""Start the SMTP listener inside the daemon's own event loop."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import weakref

from gateway.config import SmtpSettings
from gateway.errors import ConfigError
from gateway.smtp.handler import IntakeHandler
from gateway.smtp.protocol import GatewaySMTP, SessionCounter


def tls_context(settings: SmtpSettings) -> ssl.SSLContext | None:
    if settings.tls_cert is None or settings.tls_key is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(settings.tls_cert, settings.tls_key)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"cannot load smtp.tls_cert/tls_key: {exc}") from exc
    return context


def call_limits(settings: SmtpSettings) -> dict[str, int]:
    """Per-connection command budgets (421 past them). An MTA with a cached connection sends
    message after message over it, so the transaction commands get room for thousands; the
    rest (EHLO, NOOP, VRFY, ...) only loop in a broken or hostile client; AUTH is guessing."""
    transactions = 10_000
    return {
        "*": 100,
        "MAIL": transactions,
        "RCPT": transactions * max(2, settings.max_recipients),
        "DATA": transactions,
        "RSET": transactions,
        "NOOP": 1_000,
        "AUTH": 10,
    }


class SmtpServer:
    """The listening socket plus what the protocol instances share (session count, TLS)."""

    def __init__(self, handler: IntakeHandler, settings: SmtpSettings) -> None:
        self.handler = handler
        self.settings = settings
        self.counter = SessionCounter(settings.max_sessions)
        self.tls = tls_context(settings)
        self.server: asyncio.Server | None = None
        # Live protocol instances, for a graceful stop (asyncio.Server does not track them).
        self.sessions: weakref.WeakSet[GatewaySMTP] = weakref.WeakSet()

    def _protocol(self) -> GatewaySMTP:
        protocol = self._new_protocol()
        self.sessions.add(protocol)
        return protocol

    def _new_protocol(self) -> GatewaySMTP:
        s = self.settings
        return GatewaySMTP(
            self.handler,
            self.counter,
            s.max_message_bytes,
            s.proxy_protocol,
            s.bare_lf,
            hostname=s.hostname,
            ident="fax-gateway ESMTP",
            tls_context=self.tls,
            timeout=s.timeout_s,
            auth_require_tls=True,
            proxy_protocol_timeout=5.0 if s.proxy_protocol else None,
            command_call_limit=call_limits(s),
        )

    async def start(self, port: int | None = None) -> int:
        loop = asyncio.get_running_loop()
        self.server = await loop.create_server(
            self._protocol, self.settings.host, self.settings.port if port is None else port
        )
        return int(self.server.sockets[0].getsockname()[1])

    def apply(self, settings: SmtpSettings) -> None:
        """SIGHUP: new limits, ``bare_lf`` and certificates (read again from disk: a renewal
        keeps the paths) for new connections; open sessions keep theirs. A certificate that
        does not load raises ConfigError and changes nothing."""
        tls = tls_context(settings)
        self.settings = settings
        self.tls = tls
        self.counter.limit = settings.max_sessions
        self.handler.apply(settings)

    async def wait_idle(self) -> None:
        """Return once no session is open (their smtplog rows may still be being written)."""
        await self.counter.wait_idle()

    async def stop_listening(self) -> None:
        if self.server is not None:
            self.server.close()

    async def shutdown(self, grace_s: float) -> None:
        """SIGTERM: stop accepting; let messages being received (in DATA) finish, up to
        ``grace_s``, so that each still gets its 250 after its commit; then answer every other
        session 421 (its client retries later) and close it; wait for the smtplog rows."""
        await self.stop_listening()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace_s
        while (busy := [p for p in self.sessions if p.in_data]) and loop.time() < deadline:
            waits = [asyncio.ensure_future(p.data_done.wait()) for p in busy]
            await asyncio.wait(
                waits, timeout=deadline - loop.time(), return_when=asyncio.FIRST_COMPLETED
            )
            for wait in waits:
                wait.cancel()
        # No await between the check above and this: no session can enter DATA in between.
        for protocol in list(self.sessions):
            protocol.shut_down()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.wait_idle(), 5)
        await self.close()

    async def close(self) -> None:
        """Stop accepting, then wait for the transaction logs still being written."""
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()
        await self.handler.drain()
