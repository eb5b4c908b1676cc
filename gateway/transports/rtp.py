"""RTP packets (RFC 3550 §5.1) and the UDP ports a call's media lives on.

``RtpPacket.parse`` is total: any datagram is either a packet or one ``RtpError``; CSRC lists,
header extensions and padding are skipped by their declared lengths, so what is left is exactly
the payload. We never send any of them (one source, no extensions, G.711 needs no padding).

``PortAllocator`` hands out one non-blocking UDP socket per call on an even port of
``[rtp_port_min, rtp_port_max]`` (the odd port above it is RTCP's by RFC 3550 §11, which we
neither send nor read, but keep free so an RTCP-sending far end hits nothing of ours). The same
socket carries UDPTL when the call switches to T.38, as FreeSWITCH does: the re-INVITE offers
the port the audio used, and NATs that already opened a path for it keep it open.
"""

from __future__ import annotations

import errno
import ipaddress
import socket
import struct
import threading
from dataclasses import dataclass

from gateway.errors import TransmitError
from gateway.transports.base import FailureClass

RTP_VERSION = 2
HEADER = struct.Struct("!BBHII")  # V/P/X/CC, M/PT, sequence number, timestamp, SSRC
PAYLOAD_PCMU = 0  # RFC 3551 static payload types
PAYLOAD_PCMA = 8


class RtpError(ValueError):
    """A datagram that is not an RTP packet, or a packet that cannot be encoded."""


@dataclass(frozen=True)
class RtpPacket:
    payload_type: int
    seq: int
    timestamp: int
    ssrc: int
    payload: bytes
    marker: bool = False

    def encode(self) -> bytes:
        if not 0 <= self.payload_type <= 0x7F:
            raise RtpError(f"payload type {self.payload_type} is not 7 bits")
        if not 0 <= self.seq <= 0xFFFF:
            raise RtpError(f"sequence number {self.seq} is not 16 bits")
        if not 0 <= self.timestamp <= 0xFFFFFFFF or not 0 <= self.ssrc <= 0xFFFFFFFF:
            raise RtpError("timestamp and SSRC are 32 bits")
        first = RTP_VERSION << 6  # no padding, no extension, no CSRC
        second = (0x80 if self.marker else 0) | self.payload_type
        return HEADER.pack(first, second, self.seq, self.timestamp, self.ssrc) + self.payload

    @classmethod
    def parse(cls, data: bytes) -> RtpPacket:
        """One datagram; anything that is not a well-formed RTP packet raises ``RtpError``."""
        if len(data) < HEADER.size:
            raise RtpError(f"{len(data)} octets is shorter than an RTP header")
        first, second, seq, timestamp, ssrc = HEADER.unpack_from(data)
        if first >> 6 != RTP_VERSION:
            raise RtpError(f"RTP version {first >> 6}")
        start = HEADER.size + 4 * (first & 0x0F)  # the CSRC list
        end = len(data)
        if first & 0x10:  # a header extension: 16-bit profile, 16-bit length in 32-bit words
            if start + 4 > end:
                raise RtpError("truncated header extension")
            (words,) = struct.unpack_from("!H", data, start + 2)
            start += 4 + 4 * words
        if first & 0x20:  # padding: the last octet counts the padding octets, itself included
            pad = data[-1]
            if pad == 0:
                raise RtpError("padding of zero octets")
            end -= pad
        if start > end:
            raise RtpError("header, extension and padding overrun the packet")
        return cls(
            payload_type=second & 0x7F,
            seq=seq,
            timestamp=timestamp,
            ssrc=ssrc,
            payload=bytes(data[start:end]),
            marker=bool(second & 0x80),
        )


def seq_distance(seq: int, reference: int) -> int:
    """How far ``seq`` is past ``reference`` in 16-bit serial arithmetic (-32768..32767)."""
    return ((seq - reference + 0x8000) & 0xFFFF) - 0x8000


def media_address(host: str, port: int) -> tuple[str, int]:
    """A remote media address as ``recvfrom`` reports it: an IP literal (SDP's ``c=`` carries
    one; resolving a name here would block the media thread) in canonical form, and a port."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"media address {host!r} is not an IP address") from None
    if not 0 < port <= 0xFFFF:
        raise ValueError(f"media port {port} out of range")
    return address.compressed, port


class PortsExhaustedError(TransmitError):
    """Every even port of [rtp_port_min, rtp_port_max] is in use: refuse the call (a line
    failure for an outbound fax, retried later; a 503 or 486 for an inbound one)."""

    def __init__(self, message: str) -> None:
        super().__init__(FailureClass.LINE, message)

    def __reduce__(self) -> tuple[type[PortsExhaustedError], tuple[str]]:  # type: ignore[override]
        return (type(self), (str(self),))


class MediaPort:
    """One bound, non-blocking UDP socket for one call's media; ``close()`` gives the port back
    (idempotent, from any thread)."""

    def __init__(self, sock: socket.socket, host: str, port: int, pool: PortAllocator) -> None:
        self.socket = sock
        self.host = host
        self.port = port
        self.family = sock.family
        self._pool: PortAllocator | None = pool

    @property
    def closed(self) -> bool:
        return self._pool is None

    def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            self.socket.close()
            pool._release(self.port)

    def __enter__(self) -> MediaPort:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


class PortAllocator:
    """Even ports of ``[port_min, port_max]`` bound on ``host``, at most one call each.

    Ports are handed out round robin rather than lowest first, so that a port just released is
    the last to be reused: packets still in flight from the previous call's far end would
    otherwise land in the next call. A port another program holds is skipped; when no port can
    be bound, ``open`` raises ``PortsExhaustedError``. Thread safe: calls end on the media
    thread and release their port there.
    """

    def __init__(self, host: str, port_min: int, port_max: int) -> None:
        if not 0 < port_min <= port_max <= 0xFFFF:
            raise ValueError(f"RTP port range {port_min}-{port_max} is not within 1-65535")
        first = port_min + (port_min & 1)
        # An RTP port p takes p+1 for RTCP, so the last pair must end within the range.
        self._ports = list(range(first, port_max, 2))
        if not self._ports:
            raise ValueError(f"RTP port range {port_min}-{port_max} holds no even/odd port pair")
        self.host = host
        self._family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._in_use: set[int] = set()
        self._next = 0
        self._lock = threading.Lock()

    @property
    def capacity(self) -> int:
        return len(self._ports)

    @property
    def in_use(self) -> int:
        with self._lock:
            return len(self._in_use)

    def open(self) -> MediaPort:
        with self._lock:
            for _ in range(len(self._ports)):
                port = self._ports[self._next]
                self._next = (self._next + 1) % len(self._ports)
                if port in self._in_use:
                    continue
                sock = self._bind(port)
                if sock is not None:
                    self._in_use.add(port)
                    return MediaPort(sock, self.host, port, self)
        raise PortsExhaustedError(
            f"no free RTP port in {self._ports[0]}-{self._ports[-1] + 1} "
            f"({len(self._in_use)} of {len(self._ports)} in use by calls)"
        )

    def _bind(self, port: int) -> socket.socket | None:
        sock = socket.socket(self._family, socket.SOCK_DGRAM)
        try:
            sock.setblocking(False)
            sock.bind((self.host, port))
        except OSError as exc:
            sock.close()
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                return None  # somebody else's: try the next port
            raise
        return sock

    def _release(self, port: int) -> None:
        with self._lock:
            self._in_use.discard(port)
