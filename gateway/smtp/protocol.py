"""aiosmtpd's SMTP protocol, adapted: a session cap, transaction boundaries, enhanced codes.

aiosmtpd ends some transactions itself (oversized DATA, RSET, a vanished client) without
calling a handler hook; the wrappers here tell the handler so that every transaction gets
exactly one smtplog row.
"""

from __future__ import annotations

import asyncio
import collections
import ipaddress
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from aiosmtpd.smtp import Session, syntax

from gateway.models import RecipientOutcome, SmtpLogEntry
from gateway.routing import Accepted
from gateway.smtp import replies
from gateway.smtp.data import BulkDataSMTP

# aiosmtpd's refusals of a command line before any command method or hook runs (it does not
# say which command it was), with what an smtplog row says of each.
_UNDISPATCHED = {
    "500 Command line too long": "command line too long",
    "500 Error: strict ASCII mode": "command line not ASCII (SMTPUTF8 is not offered)",
}


@dataclass
class Transaction:
    """MAIL FROM … end of DATA (or RSET, or disconnect): becomes one smtplog row."""

    entry: SmtpLogEntry
    accepted: list[Accepted] = field(default_factory=list)
    data_started: bool = False
    logged: bool = False  # the row was committed together with the accepted jobs

    @property
    def recipients(self) -> list[RecipientOutcome]:
        return self.entry.recipients


class Intake(Protocol):
    """What the protocol tells the handler (gateway.smtp.handler) of transaction boundaries
    that aiosmtpd's hooks do not report. Also an aiosmtpd handler: its hooks are looked up
    by name (handle_MAIL, handle_RCPT, handle_DATA, handle_AUTH, ...)."""

    def open(self, session: GatewaySession, arg: str) -> None: ...

    async def close(self, session: GatewaySession, status: str | None, error: str = "") -> None: ...

    def abandon(self, session: GatewaySession, reason: str) -> None: ...


class GatewaySession(Session):
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(loop)
        self.transaction: Transaction | None = None
        self.auth_faxbox_id: str | None = None
        self.auth_user: str | None = None
        self.is_tls = False

    @property
    def peer_ip(self) -> str | None:
        proxy = getattr(self, "proxy_data", None)
        src = getattr(proxy, "src_addr", None) if proxy is not None else None
        if src is not None:
            return str(src)
        if isinstance(self.peer, tuple) and self.peer:
            return str(self.peer[0])
        return None


def parse_ip(address: str | None) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The peer's address; an IPv4 client of a dual-stack socket (::ffff:a.b.c.d) as IPv4."""
    try:
        ip = ipaddress.ip_address(address or "")
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def is_loopback(address: str | None) -> bool:
    ip = parse_ip(address)
    return ip is not None and ip.is_loopback


class CommandLines(asyncio.StreamReader):
    """aiosmtpd's stream reader, noting how the last line read began. aiosmtpd refuses some
    command lines itself (too long, not ASCII) before any command method or hook runs, and
    does not say which command it was; a refused MAIL must still leave its smtplog row."""

    head_size = 1024  # enough for the longest address an smtplog row keeps (320)
    line_head = b""
    at_line_start = True

    async def readuntil(self, separator: Any = b"\n") -> bytes:  # Any: as asyncio's takes
        return self._note(await super().readuntil(separator))

    async def read(self, n: int = -1) -> bytes:
        return self._note(await super().read(n))

    def _note(self, data: bytes) -> bytes:
        if data:
            if self.at_line_start:
                self.line_head = data[: self.head_size]
            self.at_line_start = data.endswith(b"\n")
        return data


class SessionCounter:
    """Open sessions, against ``max_sessions``; ``wait_idle`` returns when none is open."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.active = 0
        self._idle = asyncio.Event()
        self._idle.set()

    def acquire(self) -> bool:
        if self.active >= self.limit:
            return False
        self.active += 1
        self._idle.clear()
        return True

    def release(self) -> None:
        self.active -= 1
        if self.active == 0:
            self._idle.set()

    async def wait_idle(self) -> None:
        await self._idle.wait()


class GatewaySMTP(BulkDataSMTP):
    # Real mail sometimes has lines longer than RFC 5321's 1000 octets; refusing them bounces
    # legitimate faxes, so allow up to 64 KiB per line.
    line_length_limit = 65536

    def __init__(
        self,
        handler: Intake,
        counter: SessionCounter,
        max_message_bytes: int,
        proxied: bool,
        bare_lf: Literal["accept", "reject"] = "accept",
        **kwargs: Any,
    ) -> None:
        super().__init__(handler, data_size_limit=max_message_bytes, **kwargs)
        self.bare_lf = bare_lf
        self.intake = handler
        self.counter = counter
        self.max_message_bytes = max_message_bytes
        self.proxied = proxied
        self._counted = False
        self._refused = False
        self._timed_out = False
        self._last_status: str | None = None
        self.in_data = False  # from DATA until its reply: a graceful stop waits for these
        self.data_done = asyncio.Event()
        self.data_done.set()
        # aiosmtpd keeps these limits in one dict shared by every session (each EHLO adds to
        # it, each new connection clears it): one client's MAIL limit then depends on others.
        self.command_size_limits = collections.defaultdict(lambda: self.command_size_limit)

    def _create_session(self) -> GatewaySession:
        return GatewaySession(self.loop)

    # Plain methods, not properties: aiosmtpd's constructor inspects every attribute.
    def current(self) -> GatewaySession:
        assert isinstance(self.session, GatewaySession)
        return self.session

    def has_sender(self) -> bool:
        return self.envelope is not None and bool(self.envelope.mail_from)

    def _cb_client_connected(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        # aiosmtpd makes its reader in its constructor and hands it to asyncio there, so it
        # cannot be replaced; its class can (a subclass adding only the noting of line heads).
        reader.__class__ = CommandLines
        super()._cb_client_connected(reader, writer)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        starttls = self._original_transport is not None
        before = self.session  # STARTTLS: aiosmtpd starts a new session (RFC 3207 4.2)
        if not starttls:
            if not self.counter.acquire():
                self._refused = True
                assert isinstance(transport, asyncio.WriteTransport)
                transport.write(replies.TOO_BUSY.encode() + b"\r\n")
                transport.close()
                return
            self._counted = True
        super().connection_made(transport)
        session = self.current()
        if starttls:
            session.is_tls = True
            # What the PROXY header said still holds: the client did not change.
            session.proxy_data = getattr(before, "proxy_data", None)
        elif not self.proxied:
            # AUTH without TLS only from this host: a loopback peer cannot be sniffed.
            peer = transport.get_extra_info("peername")
            self._auth_require_tls = not is_loopback(peer[0] if peer else None)

    def connection_lost(self, error: Exception | None) -> None:
        if self._refused:
            return
        session = self.session
        if isinstance(session, GatewaySession) and session.transaction is not None:
            if self._timed_out:
                reason = replies.TIMEOUT_REASON
            elif session.transaction.data_started:
                reason = replies.DISCONNECT_IN_DATA_REASON
            else:
                reason = replies.DISCONNECT_REASON
            self.intake.abandon(session, reason)
        super().connection_lost(error)
        if self._counted:
            # Last: whoever waits for idle finds the abandoned transaction's log task queued.
            self._counted = False
            self.counter.release()

    async def push(self, status: Any) -> None:
        if isinstance(status, str):
            status = replies.rewrite(status, self.max_message_bytes)
            session = self.session
            if isinstance(session, GatewaySession) and session.transaction is not None:
                if status.startswith("354"):
                    session.transaction.data_started = True
                self._last_status = status
        await super().push(status)
        if status in _UNDISPATCHED:
            await self._undispatched(status, _UNDISPATCHED[status])

    async def _undispatched(self, status: str, why: str) -> None:
        """aiosmtpd refused a command line before our command methods saw it. A MAIL that
        would have opened a transaction opened and ended one (its row); a RCPT is one more
        refusal in the open transaction's errors."""
        session = self.current()
        reader = self._reader
        head = reader.line_head if isinstance(reader, CommandLines) else b""
        command, _, arg = head.partition(b" ")
        command = command.upper()
        transaction = session.transaction
        if transaction is not None:
            if command == b"RCPT":
                transaction.entry.errors.append(f"RCPT {why}")
            return
        if command != b"MAIL" or self.has_sender() or session.host_name is None:
            return  # no transaction: aiosmtpd would have refused it anyway (no HELO, nested)
        self.intake.open(session, arg.rstrip(b"\r\n").decode("utf-8", "replace").strip())
        await self.intake.close(session, status, f"MAIL {why}")

    @syntax("MAIL FROM: <address>", extended=" [SP <mail-parameters>]")
    async def smtp_MAIL(self, arg: str) -> None:
        session = self.current()
        if self.has_sender() or session.host_name is None:
            await super().smtp_MAIL(arg)  # nested MAIL or no HELO: no new transaction
            return
        self._last_status = None
        self.intake.open(session, arg)
        await super().smtp_MAIL(arg)
        if session.transaction is not None and not self.has_sender():
            # Refused, by our hook or by aiosmtpd itself (syntax, SIZE): log it now.
            await self.intake.close(session, self._last_status or "")

    def _timeout_cb(self) -> None:
        self._timed_out = True
        super()._timeout_cb()  # type: ignore[no-untyped-call]

    async def _end_transaction(self, reason: str) -> None:
        """A command that ends an open transaction before DATA: log it first."""
        session = self.current()
        if session.transaction is not None:
            await self.intake.close(session, None, reason)

    @syntax("RSET")
    async def smtp_RSET(self, arg: str) -> None:
        if not arg:
            await self._end_transaction(replies.RSET_REASON)
        await super().smtp_RSET(arg)

    @syntax("QUIT")
    async def smtp_QUIT(self, arg: str) -> None:
        if not arg:
            await self._end_transaction(replies.QUIT_REASON)
        await super().smtp_QUIT(arg)

    @syntax("HELO hostname")
    async def smtp_HELO(self, hostname: str) -> None:
        if hostname:
            await self._end_transaction(replies.HELO_REASON)
        await super().smtp_HELO(hostname)

    @syntax("EHLO hostname")
    async def smtp_EHLO(self, hostname: str) -> None:
        if hostname:
            await self._end_transaction(replies.HELO_REASON)
            self.command_size_limits.clear()  # aiosmtpd adds its extensions' room again
        await super().smtp_EHLO(hostname)

    @syntax("STARTTLS", when="tls_context")
    async def smtp_STARTTLS(self, arg: str) -> None:
        if not arg and self.tls_context:
            await self._end_transaction(replies.STARTTLS_REASON)
        await super().smtp_STARTTLS(arg)

    def shut_down(self) -> None:
        """Graceful stop: say 421 (the client retries later) and hang up."""
        transport = self.transport
        if isinstance(transport, asyncio.WriteTransport) and not transport.is_closing():
            transport.write(replies.SHUTTING_DOWN.encode() + b"\r\n")
            transport.close()

    @syntax("DATA")
    async def smtp_DATA(self, arg: str) -> None:
        self._last_status = None
        self.in_data = True
        self.data_done.clear()
        try:
            await super().smtp_DATA(arg)
        finally:
            self.in_data = False
            self.data_done.set()
        session = self.current()
        transaction = session.transaction
        if transaction is not None and transaction.data_started:
            # DATA ended without the hook (too large, line too long): log aiosmtpd's answer.
            await self.intake.close(session, self._last_status or "")
