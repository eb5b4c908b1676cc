"""The SIP fax transport: faxes to and from one SIP trunk or PBX, over T.38 or G.711.

``SipTransport`` is the composition of the stack in gateway/sip/ (sockets, transactions, the
user agent, registration) and the fax media in this package (one ``MediaClock`` for every
call, an RTP port per call): ``start`` builds it, ``send`` places one outbound fax
(``sip_call``), inbound INVITEs are taken by ``sip_inbound`` and handed to the inbound line,
``close`` takes it all down. What each call did is kept in ``recent`` (the SIP final, the media,
every T.38 offer either way and what came of it) and logged.

Who may call us: ``allow_from`` CIDRs, by default the addresses the proxy's name resolves to
at start (a trunk or PBX is the only legitimate source); every other INVITE is answered 403 by
the sockets before it is parsed, at a bounded rate.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
import urllib.parse
from collections import deque
from collections.abc import Callable, Coroutine
from typing import Any

import phonenumbers

from gateway.config import SipSettings
from gateway.errors import ConfigError
from gateway.sip.headers import SipUri
from gateway.sip.registration import Registration
from gateway.sip.sockets import Peer, SipSockets
from gateway.sip.transaction import Timers, TransactionLayer
from gateway.sip.useragent import SipAccount, UaOptions, UserAgent
from gateway.transports import sip_outcome
from gateway.transports.base import FailureClass, InboundLine, OutboundCall, TxResult
from gateway.transports.mediaclock import PERIOD_S, MediaClock
from gateway.transports.rtp import PortAllocator
from gateway.transports.sip_call import Dialled, place_call
from gateway.transports.sip_inbound import InboundCalls, Lines
from gateway.transports.sip_session import CallRecord, MediaContext
from gateway.transports.spandsp import library

log = logging.getLogger(__name__)

RECENT_CALLS = 200  # records kept for diagnosis
CLOSE_TIMEOUT_S = 30.0  # how long close() waits for calls (and their inbox hand-over) to end
DEFAULT_USER = "fax-gateway"  # From and Contact user when neither a number nor a username is set


class SipTransport:
    """``FaxTransport`` over SIP; see the module docstring.

    ``clock_period_s`` is the media clock's tick (20 ms; tests run it faster: media time only
    moves by ticks, and every media delay of the call flow is counted in media time)."""

    def __init__(
        self, settings: SipSettings, inbound: InboundLine, *, clock_period_s: float = PERIOD_S
    ) -> None:
        self.settings = settings
        self.inbound = inbound
        self.clock_period_s = clock_period_s
        self.lines = Lines(settings.max_calls)
        self.recent: deque[CallRecord] = deque(maxlen=RECENT_CALLS)
        self.registration: Registration | None = None
        self._sockets: SipSockets | None = None
        self._layer: TransactionLayer | None = None
        self._ua: UserAgent | None = None
        self._clock: MediaClock | None = None
        self._ctx: MediaContext | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closing = False

    @property
    def port(self) -> int:
        """The bound SIP port (UDP and TCP), once started."""
        if self._sockets is None:
            raise RuntimeError("the SIP transport is not started")
        return self._sockets.port

    async def start(self) -> None:
        settings = self.settings
        if not settings.proxy_host:
            raise ConfigError('transport.sip.proxy_host is required when transport.kind = "sip"')
        library()  # no spandsp: fail at start (TransmitError), not at the first call
        accept = await _accept_from(settings)
        sockets = SipSockets(
            settings.listen_host,
            settings.listen_port,
            public_host=settings.public_address,
            accept_from=accept,
        )
        await sockets.start()
        self._sockets = sockets
        t1 = settings.t1_ms / 1000
        self._layer = TransactionLayer(sockets, Timers(t1=t1, t2=max(4.0, t1)))
        self._clock = MediaClock(period_s=self.clock_period_s)
        self._clock.start()
        ports = PortAllocator(settings.listen_host, settings.rtp_port_min, settings.rtp_port_max)
        address = settings.public_address or sockets.advertised_host
        self._ctx = MediaContext(settings, self._clock, ports, address)
        handler = InboundCalls(
            self._ctx, self.inbound, self.lines, spawn=self._spawn, keep=self.recent.append
        )
        account = SipAccount(
            settings.username or DEFAULT_USER,
            settings.password or "",
            settings.domain or settings.proxy_host,
            Peer(settings.transport, settings.proxy_host, settings.proxy_port),
        )
        options = UaOptions(ring_timeout=settings.ring_timeout_s)
        self._ua = UserAgent(self._layer, sockets, account, handler, options=options)
        if settings.register_:
            self.registration = Registration(self._ua, settings.register_expires_s)
            await self.registration.start()
        log.info(
            "SIP transport on %s:%d (udp, tcp) via %s:%d (%s), t38 %s, %d lines",
            settings.listen_host,
            sockets.port,
            settings.proxy_host,
            settings.proxy_port,
            settings.transport,
            settings.t38,
            settings.max_calls,
        )

    async def send(self, call: OutboundCall) -> TxResult:
        ua, ctx = self._ua, self._ctx
        if ua is None or ctx is None:
            raise RuntimeError("the SIP transport is not started")
        if self._closing:
            text = "the SIP transport is closing"
            return sip_outcome.no_call(FailureClass.LINE, sip_outcome.CAUSE_TEMPORARY, text)
        if not self.lines.take():
            text = f"all lines busy (max_calls = {self.lines.size})"
            return sip_outcome.no_call(FailureClass.LINE, sip_outcome.CAUSE_NO_CIRCUIT, text)
        dialled = self.dialled(call)
        record = CallRecord("outbound", dialled.uri)
        try:
            return await place_call(ctx, ua, call, dialled, record)
        finally:
            self.lines.release()
            self.recent.append(record)

    def dialled(self, call: OutboundCall) -> Dialled:
        """The Request-URI for ``call.to_number`` and our From user (the caller id)."""
        settings = self.settings
        number = self.settings.dial_prefix + format_number(
            call.to_number, settings.number_format, settings.region
        )
        host = settings.domain or settings.proxy_host or ""
        uri = str(SipUri(host, _escape_user(number)))
        caller = call.from_number
        if caller:
            from_user = format_number(caller, settings.number_format, settings.region)
        else:
            from_user = settings.username or DEFAULT_USER
        return Dialled(uri, _escape_user(from_user))

    async def close(self) -> None:
        """Unregister, hang up every call, stop the media clock, close the sockets."""
        self._closing = True
        if self.registration is not None:
            await self.registration.close()
        if self._ua is not None:
            await self._ua.close()  # BYE to every call: their media ends, their results come
        if self._clock is not None:
            await asyncio.to_thread(self._clock.stop)  # hangs up what is left
        if self._tasks:
            _, late = await asyncio.wait(self._tasks, timeout=CLOSE_TIMEOUT_S)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
        if self._layer is not None:
            await self._layer.close()
        if self._sockets is not None:
            await self._sockets.close()

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task


def format_number(number: str, number_format: str, region: str | None) -> str:
    """An E.164 number as the trunk wants it dialled (config ``number_format``)."""
    if number_format == "e164":
        return number
    digits = "".join(ch for ch in number if ch.isdigit())
    if number_format == "digits":
        return digits
    try:
        parsed = phonenumbers.parse(number, None)
    except phonenumbers.NumberParseException:
        return digits  # not E.164 after all: the digits are the best guess
    # Same country code: the national form (the NANP shares +1 between its regions).
    if region is None or phonenumbers.country_code_for_region(region) == parsed.country_code:
        text = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.NATIONAL)
    else:  # how a phone in `region` dials abroad: 011 44 ... from the US, 00 1 ... from the UK
        text = phonenumbers.format_out_of_country_calling_number(parsed, region)
    return "".join(ch for ch in text if ch.isdigit()) or digits


def _escape_user(user: str) -> str:
    # RFC 3261 §25.1: '#' (a route code's) must be escaped in a SIP URI's user part.
    return urllib.parse.quote(user, safe="+*-.!~()'&=$,;?/_")


async def _accept_from(settings: SipSettings) -> Callable[[str], bool]:
    """Who may send us requests: allow_from, else the proxy's addresses."""
    if settings.allow_from:
        networks = [ipaddress.ip_network(net, strict=False) for net in settings.allow_from]
    else:
        assert settings.proxy_host is not None
        loop = asyncio.get_running_loop()
        try:
            infos = await loop.getaddrinfo(
                settings.proxy_host, settings.proxy_port, type=socket.SOCK_DGRAM
            )
        except OSError as exc:
            raise ConfigError(
                f"transport.sip.proxy_host {settings.proxy_host!r} does not resolve ({exc}); "
                "set transport.sip.allow_from to start without it"
            ) from exc
        networks = [ipaddress.ip_network(str(info[4][0]).partition("%")[0]) for info in infos]

    def accept(host: str) -> bool:
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False
        return any(address in network for network in networks)

    return accept
