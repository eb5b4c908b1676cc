"""The SIP transport layer (RFC 3261 §18, RFC 3581): UDP and TCP on one address.

``SipSockets`` owns the sockets and nothing above them: it turns datagrams and TCP streams into
``Request``/``Response`` records for ``on_message`` (the transaction layer) and sends records
to a ``Peer``. What it decides on its own, because it must be decided before any state exists:

- The source address is checked with ``accept_from`` before a byte is parsed, so a flood from
  a disallowed address costs a dictionary look-up per packet. Everything from such an address
  is dropped, except that an INVITE gets a stateless 403 (the issue asks that refused callers
  hear 403) at most ``forbidden_per_second`` times a second overall: a spoofed flood cannot
  make us a reflector, and a 403 is no larger than the INVITE it answers. Addresses we have
  sent to lately are let through too: their responses and in-dialog requests are expected.
- A request that cannot be read but can be answered (``SipParseError.can_answer``) gets 400.
- Inbound requests get ``received``/``rport`` on their top Via (RFC 3261 §18.2.1, RFC 3581),
  so that ``reply`` routes the response back through the sender's NAT.
- TCP connections are bounded (``max_connections``, ``max_connections_per_host``), close when
  idle for ``idle_timeout`` and on a fatal framing error; CRLF keep-alives are ignored.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
from collections import Counter
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, replace
from typing import Any, Literal

from gateway.errors import SipTransportError
from gateway.sip.headers import SipUri, Via, format_hostport, quote, split_header_values
from gateway.sip.message import (
    DEFAULT_LIMITS,
    Headers,
    Limits,
    Request,
    Response,
    SipParseError,
    StreamFramer,
    is_keepalive,
    new_branch,
    new_tag,
    parse_message,
    response_for,
)

log = logging.getLogger(__name__)

Transport = Literal["udp", "tcp"]
Message = Request | Response
DEFAULT_PORT = 5060  # RFC 3261 §19.1.2, for a Via without a port


@dataclass(frozen=True)
class Peer:
    """Where a message came from or goes to. For TCP it also names the connection: an inbound
    connection is keyed by the far end's (ephemeral) address."""

    transport: Transport
    host: str  # an IP address for inbound peers; IPv6 without brackets
    port: int

    def __str__(self) -> str:
        return f"{self.transport}:{format_hostport(self.host, self.port)}"


def _plain_address(host: str) -> str:
    """IPv4-mapped IPv6 (from a dual-stack socket) as plain IPv4, so that accept_from and
    peers see one spelling of an address."""
    with contextlib.suppress(ValueError):
        address = ipaddress.ip_address(host)
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
    return host


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def with_received(request: Request, source: Peer) -> Request:
    """``request`` with received= and rport= filled on its top Via (RFC 3261 §18.2.1: received
    when sent-by is not the source address; RFC 3581: rport when the sender asked for it)."""
    lines = request.headers.get_all("Via")
    if not lines:
        return request
    elements = split_header_values(lines[0])
    top = Via.parse(elements[0])
    changed = top
    if top.host != source.host or top.has_param("rport"):
        changed = changed.with_param("received", source.host)
    if top.has_param("rport"):
        changed = changed.with_param("rport", str(source.port))
    if changed is top:
        return request
    first = ", ".join([str(changed), *elements[1:]])
    items = list(request.headers)
    at = next(i for i, (name, _) in enumerate(items) if name == "Via")
    items[at] = ("Via", first)  # only the first Via line: the others are proxies', untouched
    return replace(request, headers=Headers(tuple(items)))


class _Bucket:
    """A token bucket: ``take`` succeeds at most ``rate`` times a second (burst ``rate``)."""

    def __init__(self, rate: float) -> None:
        self._rate = rate
        self._tokens = rate
        self._stamp = 0.0

    def take(self, now: float) -> bool:
        self._tokens = min(self._rate, self._tokens + (now - self._stamp) * self._rate)
        self._stamp = now
        if self._tokens < 1:
            return False
        self._tokens -= 1
        return True


@dataclass(eq=False)
class _Connection:
    peer: Peer
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    inbound: bool


class _Datagrams(asyncio.DatagramProtocol):
    def __init__(self, received: Callable[[bytes, tuple[Any, ...]], None]) -> None:
        self._received = received

    def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
        self._received(data, addr)

    def error_received(self, exc: Exception) -> None:
        # ICMP errors for earlier datagrams: the transaction's timers deal with lost peers.
        log.debug("SIP UDP error: %s", exc)


class SipSockets:
    def __init__(
        self,
        host: str,
        port: int,
        *,
        public_host: str | None = None,
        public_port: int | None = None,
        accept_from: Callable[[str], bool],
        limits: Limits = DEFAULT_LIMITS,
        on_message: Callable[[Message, Peer], None] | None = None,
        max_connections: int = 256,
        max_connections_per_host: int = 16,
        idle_timeout: float = 300.0,
        connect_timeout: float = 5.0,
        write_timeout: float = 10.0,
        forbidden_per_second: float = 10.0,
        trust_ttl: float = 3600.0,
    ) -> None:
        self.host = host
        self.port = port  # the bound port once started
        self.public_host = public_host
        self.public_port = public_port
        self.accept_from = accept_from
        self.limits = limits
        # Set by whoever consumes messages (TransactionLayer installs itself here).
        self.on_message = on_message
        self.max_connections = max_connections
        self.max_connections_per_host = max_connections_per_host
        self.idle_timeout = idle_timeout
        self.connect_timeout = connect_timeout
        self.write_timeout = write_timeout
        self.trust_ttl = trust_ttl
        self._forbidden = _Bucket(forbidden_per_second)
        self._udp: asyncio.DatagramTransport | None = None
        self._udp_family = socket.AF_INET
        self._server: asyncio.Server | None = None
        self._connections: dict[Peer, _Connection] = {}
        self._inbound_per_host: Counter[str] = Counter()
        self._connecting: dict[Peer, asyncio.Task[_Connection]] = {}
        self._trusted: dict[str, float] = {}  # host we sent to -> until (loop time)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._local_host = host
        self._closed = False

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        infos = await loop.getaddrinfo(self.host, None, type=socket.SOCK_DGRAM)
        family = infos[0][0]
        for _ in range(20):  # port 0: find a port free for both UDP and TCP
            udp = _bind(family, socket.SOCK_DGRAM, self.host, self.port)
            port = udp.getsockname()[1]
            try:
                tcp = _bind(family, socket.SOCK_STREAM, self.host, port)
            except OSError:
                udp.close()
                if self.port:
                    raise
                continue
            break
        else:
            raise OSError(f"no port free for both UDP and TCP on {self.host}")
        self.port = port
        self._udp_family = family
        transport, _ = await loop.create_datagram_endpoint(
            lambda: _Datagrams(self._datagram), sock=udp
        )
        self._udp = transport
        self._server = await asyncio.start_server(self._accepted, sock=tcp, limit=2**16)
        self._local_host = _local_address(self.host, family)

    async def close(self) -> None:
        self._closed = True
        if self._udp is not None:
            self._udp.close()
        if self._server is not None:
            self._server.close()
        for connection in list(self._connections.values()):
            connection.writer.close()
        tasks = [*self._tasks, *self._connecting.values()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    # -- addresses -------------------------------------------------------------------------

    @property
    def advertised_host(self) -> str:
        """The host others reach us at: public_host, else the bound (or guessed) address."""
        return self.public_host or self._local_host

    @property
    def advertised_port(self) -> int:
        return self.public_port or self.port

    def via_for(self, transport: Transport) -> Via:
        """A top Via for a request of ours: fresh branch, rport asked for (RFC 3581)."""
        params = (("branch", new_branch()), ("rport", None))
        return Via(transport.upper(), self.advertised_host, self.advertised_port, params)

    def contact_uri(self, user: str | None, transport: Transport = "udp") -> SipUri:
        params = (("transport", "tcp"),) if transport == "tcp" else ()
        return SipUri(self.advertised_host, user, self.advertised_port, params=params)

    @staticmethod
    def reply_peer(response: Response, source: Peer) -> Peer:
        """Where a response to a request from ``source`` goes (RFC 3261 §18.2.2, RFC 3581):
        back over the request's connection, or to the top Via's received/rport address."""
        via = response.vias[0]
        host = via.received or via.host
        if source.transport == "tcp":
            return Peer("tcp", host, via.port or DEFAULT_PORT)
        return Peer("udp", host, via.rport or via.port or DEFAULT_PORT)

    # -- sending ---------------------------------------------------------------------------

    async def send(self, message: Message, peer: Peer) -> None:
        """Send one message; SipTransportError when it cannot go (refused, reset, unresolvable,
        too large for a datagram, closed)."""
        if self._closed or self._udp is None:
            raise SipTransportError("SIP sockets are closed")
        data = message.to_bytes()
        if peer.transport == "udp":
            await self._send_datagram(data, peer, trust=isinstance(message, Request))
        else:
            await self._send_stream(data, peer)

    async def reply(self, response: Response, source: Peer) -> None:
        """Send a response to a request that came from ``source``. Over TCP the request's own
        connection is used while it is open (else a new one to the Via's sent-by)."""
        if source.transport == "tcp" and source in self._connections:
            await self.send(response, source)
        else:
            await self.send(response, self.reply_peer(response, source))

    async def _send_datagram(self, data: bytes, peer: Peer, *, trust: bool) -> None:
        assert self._udp is not None
        if len(data) > 65_507:
            raise SipTransportError(f"{len(data)} bytes do not fit a UDP datagram")
        host = await self._resolve(peer)
        if self._udp_family == socket.AF_INET6 and ":" not in host:
            target = "::ffff:" + host  # an IPv4 peer through a dual-stack socket
        elif self._udp_family == socket.AF_INET and ":" in host:
            raise SipTransportError(f"cannot reach IPv6 {peer} from an IPv4 socket")
        else:
            target = host
        if trust:  # answers to our requests (and the far end's in-dialog requests) may come
            self._trust(host)
        self._udp.sendto(data, (target, peer.port))

    async def _resolve(self, peer: Peer) -> str:
        if _is_ip(peer.host):
            return peer.host
        loop = asyncio.get_running_loop()
        try:
            infos = await loop.getaddrinfo(peer.host, peer.port, type=socket.SOCK_DGRAM)
        except OSError as exc:
            raise SipTransportError(f"cannot resolve {peer.host}: {exc}") from exc
        wanted = [info for info in infos if info[0] == self._udp_family] or infos
        return str(wanted[0][4][0])

    def _trust(self, host: str) -> None:
        self._trusted.pop(host, None)
        self._trusted[host] = asyncio.get_running_loop().time() + self.trust_ttl
        if len(self._trusted) > 4096:  # oldest first: dict order is insertion order
            del self._trusted[next(iter(self._trusted))]

    async def _send_stream(self, data: bytes, peer: Peer) -> None:
        connection = self._connections.get(peer)
        if connection is None or connection.writer.is_closing():
            connection = await self._connect(peer)
        connection.writer.write(data)
        try:
            await asyncio.wait_for(connection.writer.drain(), self.write_timeout)
        except (OSError, TimeoutError) as exc:
            connection.writer.close()
            raise SipTransportError(f"sending to {peer} failed: {exc!r}") from exc

    async def _connect(self, peer: Peer) -> _Connection:
        # Concurrent sends to one peer share one connection attempt.
        pending = self._connecting.get(peer)
        if pending is None:
            pending = asyncio.create_task(self._open(peer))
            self._connecting[peer] = pending
            pending.add_done_callback(lambda _: self._connecting.pop(peer, None))
        return await asyncio.shield(pending)

    async def _open(self, peer: Peer) -> _Connection:
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(peer.host, peer.port, limit=2**16), self.connect_timeout
            )
        except (OSError, TimeoutError) as exc:
            raise SipTransportError(f"cannot connect to {peer}: {exc!r}") from exc
        connection = _Connection(peer, reader, writer, inbound=False)
        self._trust(_plain_address(writer.get_extra_info("peername")[0]))
        self._register(connection)
        self._spawn(self._serve(connection))
        return connection

    # -- receiving -------------------------------------------------------------------------

    def _allowed(self, host: str) -> bool:
        if self.accept_from(host):
            return True
        until = self._trusted.get(host)
        return until is not None and until > asyncio.get_running_loop().time()

    def _datagram(self, data: bytes, addr: tuple[Any, ...]) -> None:
        if self._closed or is_keepalive(data):
            return
        peer = Peer("udp", _plain_address(addr[0]), addr[1])
        if not self._allowed(peer.host):
            if data.startswith(b"INVITE ") and self._forbidden.take(_now()):
                self._forbid(data, peer)
            return
        try:
            message = parse_message(data, self.limits)
        except SipParseError as exc:
            if (answer := self._bad_request(exc, peer)) is not None:
                self._spawn(self._reply_quietly(answer, peer))
            return
        self._deliver(message, peer)

    def _forbid(self, data: bytes, peer: Peer) -> None:
        with contextlib.suppress(SipParseError):
            request = parse_message(data, self.limits)
            if isinstance(request, Request) and request.method == "INVITE":
                forbidden = response_for(with_received(request, peer), 403, to_tag=new_tag())
                self._spawn(self._reply_quietly(forbidden, peer))

    def _bad_request(self, exc: SipParseError, peer: Peer) -> Response | None:
        """The stateless 400 for an unreadable request, if one can be routed back."""
        log.info("unreadable SIP message from %s: %s", peer, exc.reason)
        if not exc.can_answer or exc.request is None:
            return None
        warning = ("Warning", f"399 {self.advertised_host} {quote(exc.reason)}")
        request = with_received(exc.request, peer)
        return response_for(request, 400, to_tag=new_tag(), headers=[warning])

    async def _reply_quietly(self, response: Response, peer: Peer) -> None:
        try:
            await self.reply(response, peer)
        except SipTransportError as exc:
            log.info("could not answer %s: %s", peer, exc)

    def _deliver(self, message: Message, peer: Peer) -> None:
        if isinstance(message, Request):
            message = with_received(message, peer)
        if self.on_message is None:
            return
        try:
            self.on_message(message, peer)
        except Exception:  # one message must not stop the socket
            log.exception("SIP message from %s not handled", peer)

    def _accepted(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # A plain callback spawning our own task: asyncio's wrapper task for a coroutine
        # callback cannot be cancelled cleanly at close (Python 3.11 logs an error for it).
        self._spawn(self._inbound(reader, writer))

    async def _inbound(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        name = writer.get_extra_info("peername")
        peer = Peer("tcp", _plain_address(name[0]), name[1])
        try:
            if self._closed:
                return
            if not self._allowed(peer.host):
                if self._forbidden.take(_now()):
                    await self._forbid_stream(reader, peer, writer)
                return
            inbound = self._inbound_per_host
            if (
                sum(inbound.values()) >= self.max_connections
                or inbound[peer.host] >= self.max_connections_per_host
            ):
                log.debug("SIP TCP connection from %s refused: too many connections", peer)
                return
            connection = _Connection(peer, reader, writer, inbound=True)
            self._register(connection)
            await self._serve(connection)
        finally:
            writer.close()

    async def _forbid_stream(
        self, reader: asyncio.StreamReader, peer: Peer, writer: asyncio.StreamWriter
    ) -> None:
        """Read one message from a disallowed TCP peer (briefly) and 403 it if an INVITE."""
        framer = StreamFramer(self.limits)
        with contextlib.suppress(OSError, TimeoutError, SipParseError):
            async with asyncio.timeout(2.0):
                while data := await reader.read(2**16):
                    items = framer.feed(data)
                    if items:
                        first = items[0]
                        if isinstance(first, Request) and first.method == "INVITE":
                            forbid = with_received(first, peer)
                            response = response_for(forbid, 403, to_tag=new_tag())
                            writer.write(response.to_bytes())
                            await writer.drain()
                        return

    def _register(self, connection: _Connection) -> None:
        self._connections[connection.peer] = connection
        if connection.inbound:
            self._inbound_per_host[connection.peer.host] += 1

    def _forget(self, connection: _Connection) -> None:
        if self._connections.get(connection.peer) is connection:
            del self._connections[connection.peer]
        if connection.inbound:
            self._inbound_per_host[connection.peer.host] -= 1
            if not self._inbound_per_host[connection.peer.host]:
                del self._inbound_per_host[connection.peer.host]

    async def _serve(self, connection: _Connection) -> None:
        """Read messages from one connection until EOF, idleness or lost framing."""
        framer = StreamFramer(self.limits)
        try:
            while True:
                data = await asyncio.wait_for(connection.reader.read(2**16), self.idle_timeout)
                if not data:
                    return
                for item in framer.feed(data):
                    if isinstance(item, SipParseError):
                        # Answered before a fatal error closes the connection it must use.
                        if (answer := self._bad_request(item, connection.peer)) is not None:
                            await self._reply_quietly(answer, connection.peer)
                        if item.fatal:
                            return
                    else:
                        self._deliver(item, connection.peer)
        except (OSError, TimeoutError):
            return
        finally:
            self._forget(connection)
            connection.writer.close()

    def _spawn(self, coroutine: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task


def _now() -> float:
    return asyncio.get_running_loop().time()


def _bind(family: int, kind: int, host: str, port: int) -> socket.socket:
    sock = socket.socket(family, kind)
    try:
        if kind == socket.SOCK_STREAM:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:  # "::" takes IPv4 too, on UDP and TCP alike
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        sock.bind((host, port))
        if kind == socket.SOCK_STREAM:
            sock.listen(128)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


def _local_address(host: str, family: int) -> str:
    """The address to advertise when bound to a wildcard: the one the default route leaves
    from (a connected UDP socket sends nothing), else loopback."""
    if host not in ("0.0.0.0", "::", ""):  # noqa: S104 (recognising, not binding)
        return host
    six = family == socket.AF_INET6
    probe, fallback = ("2001:db8::1", "::1") if six else ("192.0.2.1", "127.0.0.1")
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        try:
            sock.connect((probe, 9))
            return _plain_address(str(sock.getsockname()[0]))
        except OSError:
            return fallback
