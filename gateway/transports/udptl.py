"""UDPTL, the datagram layer of T.38 over UDP (T.38 clause 9.1, ASN.1 ``UDPTLPacket``).

UDP loses and reorders packets and T.38 never retransmits, so every UDPTL packet carries, besides
its own IFP, either copies of the IFPs before it ("secondary" IFPs, redundancy) or XOR parity
over them (FEC). This module is pure: ``encode_packet`` / ``decode_packet`` for the wire format,
``UdptlSender`` to build each outgoing datagram, ``UdptlReceiver`` to turn arriving packets back
into the IFP stream in sequence order for spandsp's ``t38_core_rx_ifp_packet``.

Wire format (aligned PER, every field octet aligned)::

    seq-number    2 octets, big-endian
    primary IFP   open type: length determinant, then the octets
    error-recovery  0x00, count, that many open types (newest first: seq-1, seq-2, ...)
                  | 0x80, fec-npackets (an unconstrained INTEGER), count, that many OCTET STRINGs

A length determinant is one octet below 0x80, two octets ``0x80|len`` below 0x4000, else
fragments: ``0xC0|m`` followed by m x 16K octets (m = 1..4) and then another determinant.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from enum import StrEnum

MAX_SECONDARIES = 16  # no sane sender repeats more; bounds what one datagram can make us do
MAX_FEC_ENTRIES = 16
RING = 16  # sequence numbers the receiver remembers, as in FreeSWITCH and Asterisk
# Beyond this distance a sequence number is taken as a restart of the far end's numbering rather
# than as loss or lateness: the same threshold as spandsp's t38_core, which sees the same numbers.
MAX_SEQ_JUMP = 2000

_FRAGMENT = 16384


class UdptlError(ValueError):
    """A datagram that is not a UDPTL packet, or a packet that cannot be encoded."""


class DatagramTooLargeError(UdptlError):
    """An IFP that does not fit the far end's T38FaxMaxDatagram even without any redundancy."""


@dataclass(frozen=True)
class Redundancy:
    """Secondary IFPs, newest first: ``secondaries[i]`` is the IFP of ``seq - 1 - i``."""

    secondaries: tuple[bytes, ...] = ()


@dataclass(frozen=True)
class Fec:
    """Parity: entry m XORs the IFPs of ``seq + m - span*E + i*E`` for i < span (E = entries)."""

    span: int
    entries: tuple[bytes, ...]


@dataclass(frozen=True)
class UdptlPacket:
    seq: int
    primary: bytes
    recovery: Redundancy | Fec = Redundancy()


def encode_packet(seq: int, primary_ifp: bytes, recovery: Redundancy | Fec = Redundancy()) -> bytes:
    if not 0 <= seq <= 0xFFFF:
        raise UdptlError(f"sequence number {seq} is not 16 bits")
    out = bytearray(seq.to_bytes(2, "big"))
    _put_ifp(out, primary_ifp)
    if isinstance(recovery, Redundancy):
        if len(recovery.secondaries) > MAX_SECONDARIES:
            raise UdptlError(f"more than {MAX_SECONDARIES} secondary IFPs")
        out += bytes((0x00, len(recovery.secondaries)))
        for ifp in recovery.secondaries:
            _put_ifp(out, ifp)
    else:
        if len(recovery.entries) > MAX_FEC_ENTRIES:
            raise UdptlError(f"more than {MAX_FEC_ENTRIES} FEC entries")
        if not 0 <= recovery.span <= 0x7FFF:
            raise UdptlError(f"FEC span {recovery.span} out of range")
        out.append(0x80)
        span_octets = 1 if recovery.span < 0x80 else 2
        out.append(span_octets)
        out += recovery.span.to_bytes(span_octets, "big")
        out.append(len(recovery.entries))
        for parity in recovery.entries:
            _put_octets(out, parity)
    return bytes(out)


def decode_packet(data: bytes) -> UdptlPacket:
    """Decode one datagram; anything that is not exactly one packet raises ``UdptlError``."""
    reader = _Reader(data)
    seq = int.from_bytes(reader.take(2), "big")
    primary = reader.ifp()
    recovery: Redundancy | Fec
    if reader.byte() & 0x80 == 0:  # the CHOICE index is the top bit; the rest is padding
        count = reader.count(MAX_SECONDARIES, "secondary IFPs")
        recovery = Redundancy(tuple(reader.ifp() for _ in range(count)))
    else:
        span_octets = reader.byte()
        if span_octets not in (1, 2):
            raise UdptlError(f"fec-npackets of {span_octets} octets")
        span = int.from_bytes(reader.take(span_octets), "big", signed=True)
        if span < 0:
            raise UdptlError("negative fec-npackets")
        count = reader.count(MAX_FEC_ENTRIES, "FEC entries")
        recovery = Fec(span, tuple(reader.octets() for _ in range(count)))
    reader.end()
    return UdptlPacket(seq, primary, recovery)


def _put_ifp(out: bytearray, ifp: bytes) -> None:
    # PER would encode an empty open type as one zero octet, which decodes as a different IFP;
    # an IFP always has at least its type octet, so an empty one is our caller's mistake.
    if not ifp:
        raise UdptlError("an IFP has at least one octet")
    _put_octets(out, ifp)


def _put_octets(out: bytearray, data: bytes) -> None:
    pos = 0
    while len(data) - pos >= _FRAGMENT:
        m = min(4, (len(data) - pos) // _FRAGMENT)
        out.append(0xC0 | m)
        out += data[pos : pos + m * _FRAGMENT]
        pos += m * _FRAGMENT
    rest = len(data) - pos  # a fragmented string always ends with a determinant, maybe 0
    if rest < 0x80:
        out.append(rest)
    else:
        out += (0x8000 | rest).to_bytes(2, "big")
    out += data[pos:]


def _octets_size(n: int) -> int:
    """Encoded size of an n-octet string below 16K (all a datagram can hold)."""
    return n + (1 if n < 0x80 else 2)


class _Reader:
    def __init__(self, data: bytes) -> None:
        self._data = data
        self._pos = 0

    def take(self, n: int) -> bytes:
        if self._pos + n > len(self._data):
            raise UdptlError("truncated packet")
        chunk = self._data[self._pos : self._pos + n]
        self._pos += n
        return chunk

    def byte(self) -> int:
        return self.take(1)[0]

    def length(self) -> tuple[int, bool]:
        """A length determinant: (value, whether a fragment follows)."""
        first = self.byte()
        if first & 0x80 == 0:
            return first, False
        if first & 0x40 == 0:
            return (first & 0x3F) << 8 | self.byte(), False
        m = first & 0x3F
        if not 1 <= m <= 4:
            raise UdptlError(f"bad fragment size {m}")
        return m * _FRAGMENT, True

    def octets(self) -> bytes:
        parts = []
        while True:
            n, more = self.length()
            parts.append(self.take(n))
            if not more:
                return b"".join(parts)

    def ifp(self) -> bytes:
        ifp = self.octets()
        if not ifp:
            raise UdptlError("empty IFP")
        return ifp

    def count(self, limit: int, what: str) -> int:
        n, more = self.length()
        if more or n > limit:
            raise UdptlError(f"more than {limit} {what}")
        return n

    def end(self) -> None:
        if self._pos != len(self._data):
            raise UdptlError(f"{len(self._data) - self._pos} octets after the packet")


@dataclass(frozen=True)
class FecScheme:
    """FEC parameters: each entry covers ``span`` IFPs, ``entries`` interleaved groups."""

    span: int = 3
    entries: int = 3

    def __post_init__(self) -> None:
        # The receiver must still hold every IFP a parity entry covers when the entry arrives.
        if self.span < 1 or self.entries < 1 or self.span * self.entries > RING - 1:
            raise UdptlError(f"FEC span {self.span} x entries {self.entries} exceeds {RING - 1}")


class UdptlSender:
    """Numbers outgoing IFPs and builds each datagram with as much recovery as the far end's
    T38FaxMaxDatagram allows: ``redundancy`` secondaries (the oldest dropped first when they do
    not fit), or, with ``fec``, parity entries (fewer entries when they do not fit)."""

    def __init__(
        self,
        far_max_datagram: int,
        *,
        redundancy: int = 3,
        fec: FecScheme | None = None,
        first_seq: int = 0,
    ) -> None:
        if not 0 <= redundancy <= MAX_SECONDARIES:
            raise UdptlError(f"redundancy depth {redundancy} not in 0..{MAX_SECONDARIES}")
        if not 0 <= first_seq <= 0xFFFF:
            raise UdptlError(f"sequence number {first_seq} is not 16 bits")
        self._max = far_max_datagram
        self._depth = redundancy
        self._fec = fec
        self._seq = first_seq
        kept = fec.span * fec.entries if fec else redundancy
        self._history: deque[bytes] = deque(maxlen=kept)  # oldest first

    @property
    def next_seq(self) -> int:
        return self._seq

    def build(self, ifp: bytes) -> bytes:
        """The datagram carrying ``ifp``; the sequence number advances only when one is built."""
        if self._fec is None:
            datagram = self._with_redundancy(ifp)
        else:
            datagram = self._with_fec(ifp, self._fec)
        self._history.append(ifp)
        self._seq = (self._seq + 1) & 0xFFFF
        return datagram

    def _with_redundancy(self, ifp: bytes) -> bytes:
        size = 2 + _octets_size(len(ifp)) + 2  # seq, primary, choice, count
        self._check_fits(ifp, size)
        newest_first = list(reversed(self._history))[: self._depth]
        chosen: list[bytes] = []
        for secondary in newest_first:
            size += _octets_size(len(secondary))
            if size > self._max:
                break
            chosen.append(secondary)
        return encode_packet(self._seq, ifp, Redundancy(tuple(chosen)))

    def _with_fec(self, ifp: bytes, scheme: FecScheme) -> bytes:
        self._check_fits(ifp, 2 + _octets_size(len(ifp)) + 4)  # seq, primary, choice, span, count
        # While the history is short, fewer groups (FreeSWITCH winds up the same way).
        entries = min(scheme.entries, len(self._history) // scheme.span)
        while True:
            recovery = self._parity(scheme.span, entries) if entries else Fec(0, ())
            datagram = encode_packet(self._seq, ifp, recovery)
            if len(datagram) <= self._max:
                return datagram
            entries -= 1

    def _parity(self, span: int, entries: int) -> Fec:
        history = list(self._history)
        groups = []
        for m in range(entries):
            # Entry m covers seq + m - span*entries + i*entries, that is history[-offset] below.
            members = [history[-(entries * (span - i) - m)] for i in range(span)]
            groups.append(_xor(members, max(len(member) for member in members)))
        return Fec(span, tuple(groups))

    def _check_fits(self, ifp: bytes, size: int) -> None:
        if not ifp:
            raise UdptlError("an IFP has at least one octet")
        if size > self._max:
            raise DatagramTooLargeError(
                f"an IFP of {len(ifp)} octets makes a {size}-octet datagram; "
                f"the far end takes at most {self._max}"
            )


def _xor(chunks: list[bytes], length: int) -> bytes:
    result = bytearray(length)
    for chunk in chunks:
        for i, octet in enumerate(chunk[:length]):
            result[i] ^= octet
    return bytes(result)


class Source(StrEnum):
    """How the receiver came by an IFP."""

    PRIMARY = "primary"
    REDUNDANCY = "redundancy"  # a secondary copy in a later packet
    FEC = "fec"  # rebuilt from parity; may carry trailing zero octets (parity has no lengths)


@dataclass(frozen=True)
class ReceivedIfp:
    seq: int  # the far end's 16-bit number, for t38_core_rx_ifp_packet
    ifp: bytes
    source: Source


@dataclass(frozen=True)
class ReceiverStats:
    packets: int = 0
    delivered: int = 0
    recovered: int = 0  # delivered from redundancy
    repaired: int = 0  # delivered from FEC parity
    duplicates: int = 0  # packets whose own IFP we already had
    late: int = 0  # packets for a number already given up as lost
    lost: int = 0  # sequence numbers skipped: nothing could fill them
    resyncs: int = 0  # jumps beyond MAX_SEQ_JUMP, taken as a new numbering


class UdptlReceiver:
    """Takes decoded packets in arrival order, hands back IFPs in sequence order, each once.

    A gap is filled from the redundancy or parity of later packets; one still open when a later
    number is delivered is skipped and counted in ``stats.lost`` (spandsp's T.38 core tolerates
    gaps, given the numbers). ``hold`` is how many packets beyond a gap to wait for a late or
    reordered packet before skipping it. 0 delivers at once and still loses nothing redundancy
    can give back, nor a single loss once FEC is wound up: both come with the very next packet.
    """

    def __init__(self, *, hold: int = 0) -> None:
        if not 0 <= hold < RING:
            raise UdptlError(f"hold {hold} not in 0..{RING - 1}")
        self._hold = hold
        self._next: int | None = None  # unwrapped number of the next IFP to deliver
        self._highest = 0  # unwrapped number of the newest packet
        self._ifps: dict[int, tuple[bytes, Source]] = {}  # the ring, by unwrapped number
        self._parity: dict[int, Fec] = {}
        self._stats: dict[str, int] = dict.fromkeys(ReceiverStats.__dataclass_fields__, 0)

    @property
    def stats(self) -> ReceiverStats:
        return ReceiverStats(**self._stats)

    def receive(self, packet: UdptlPacket) -> list[ReceivedIfp]:
        self._stats["packets"] += 1
        if self._next is None:
            seq = self._start(packet)
        else:
            seq = self._highest + ((packet.seq - self._highest + 0x8000) & 0xFFFF) - 0x8000
            if abs(seq - self._highest) > MAX_SEQ_JUMP:
                self._stats["resyncs"] += 1
                seq = self._start(packet)
            elif seq < self._next:
                self._stats["duplicates" if seq in self._ifps else "late"] += 1
                return []
        self._highest = max(self._highest, seq)
        self._store(seq, packet.primary, Source.PRIMARY, count_duplicate=True)
        if isinstance(packet.recovery, Redundancy):
            for i, secondary in enumerate(packet.recovery.secondaries):
                self._store(seq - 1 - i, secondary, Source.REDUNDANCY)
        elif packet.recovery.entries:
            self._parity[seq] = packet.recovery
        if self._parity and self._has_gap():
            self._repair()
        delivered = self._deliver(self._hold)
        self._forget_before(self._highest - RING + 1)
        return delivered

    def flush(self) -> list[ReceivedIfp]:
        """Deliver all that is left, skipping open gaps: the stream has ended or gone idle."""
        return self._deliver(0) if self._next is not None else []

    def _start(self, packet: UdptlPacket) -> int:
        self._ifps.clear()
        self._parity.clear()
        # The secondaries of the first packet we see are IFPs we would otherwise never get.
        behind = len(packet.recovery.secondaries) if isinstance(packet.recovery, Redundancy) else 0
        self._highest = packet.seq
        self._next = packet.seq - behind
        return packet.seq

    def _store(self, seq: int, ifp: bytes, source: Source, count_duplicate: bool = False) -> None:
        assert self._next is not None
        if seq in self._ifps:
            if count_duplicate:
                self._stats["duplicates"] += 1
        elif seq >= self._next:
            self._ifps[seq] = (ifp, source)

    def _has_gap(self) -> bool:
        assert self._next is not None
        return any(seq not in self._ifps for seq in range(self._next, self._highest))

    def _repair(self) -> None:
        """Rebuild every IFP that is the only one missing from some parity group, until none is:
        one rebuilt IFP can complete another group."""
        assert self._next is not None
        repaired = True
        while repaired:
            repaired = False
            for seq, fec in self._parity.items():
                entries = len(fec.entries)
                if not 1 <= fec.span < RING:
                    continue
                for m, parity in enumerate(fec.entries):
                    first = seq + m - fec.span * entries
                    members = [first + i * entries for i in range(fec.span)]
                    missing = [member for member in members if member not in self._ifps]
                    if len(missing) != 1 or missing[0] < self._next or not parity:
                        continue
                    others = [self._ifps[member][0] for member in members if member != missing[0]]
                    self._ifps[missing[0]] = (_xor([parity, *others], len(parity)), Source.FEC)
                    repaired = True

    def _deliver(self, hold: int) -> list[ReceivedIfp]:
        assert self._next is not None
        out = []
        while self._next <= self._highest:
            known = self._ifps.get(self._next)
            if known is not None:
                ifp, source = known
                out.append(ReceivedIfp(self._next & 0xFFFF, ifp, source))
                self._stats["delivered"] += 1
                if source is Source.REDUNDANCY:
                    self._stats["recovered"] += 1
                elif source is Source.FEC:
                    self._stats["repaired"] += 1
            elif self._highest - self._next > hold:
                self._stats["lost"] += 1
            else:
                break
            self._next += 1
        return out

    def _forget_before(self, oldest: int) -> None:
        for table in (self._ifps, self._parity):
            for seq in [seq for seq in table if seq < oldest]:
                del table[seq]
