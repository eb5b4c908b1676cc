"""One call's fax media on the media clock: a UDP socket, a remote address, a mode, an endpoint.

A ``CallMedia`` is made on the event loop and handed to ``MediaClock.add``; from then on only the
media thread touches its socket and its endpoint (spandsp states are not thread safe, and the
event loop must never run DSP: even the endpoint is built on the media thread, at its first
tick). The event loop talks to it through three thread-safe methods, ``set_remote``,
``switch_to_t38`` and ``hangup``, which queue a command the next tick applies, and hears back
through ``done``, a future settled with ``loop.call_soon_threadsafe``.

Every 20 ms tick (``_step``):

- audio (PCMU/PCMA): drain the socket; RTP from the remote, sorted by sequence number within the
  tick, goes to ``receive_frame``; each sequence number skipped before it goes to
  ``missing_frame`` (``fax_rx_fillin``): no jitter buffer, no loss concealment, a late packet is
  dropped. Then ``transmit_frame(160)`` becomes one RTP packet (timestamp += 160, marker on the
  first).
- T.38: drain the socket; UDPTL → ``UdptlReceiver`` (redundancy/FEC recovery, in order) →
  ``receive_ifp``; ``tick(160)``; each IFP of ``take_outgoing()`` is built into one datagram by
  ``UdptlSender`` and sent ``count`` times, as spandsp asks (redundancy alone cannot cover the
  last packet of a burst).

A switch to T.38 replaces the endpoint by a fresh T.38 terminal with the same ``T30Config``:
spandsp cannot carry T.30 state from its audio modem to a T.38 terminal, and FreeSWITCH starts
over the same way (receivers re-INVITE after CED, before any page, so nothing is lost).

The call ends when T.30 reaches phase E, on ``hangup()``, or on media silence: in audio, no RTP
from the remote for ``silence_timeout_s``; in T.38, nothing sent by either side for that long —
T.38 has no keepalive, and a far end is legitimately quiet for a whole page (36 s for an ECM
block at 9600 bit/s) while we transmit, whereas T.30 itself never keeps both sides quiet for
more than a T4 retry (3 s); a far end vanishing mid-page is caught by T.30 at the end of the
page. Silence is counted in media time (ticks), so a stalled clock does not end calls.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Literal

from gateway.transports import udptl
from gateway.transports.media import BLOCK, AudioFaxEndpoint, FaxOutcome, T38Endpoint
from gateway.transports.rtp import (
    PAYLOAD_PCMA,
    PAYLOAD_PCMU,
    MediaPort,
    RtpError,
    RtpPacket,
    media_address,
    seq_distance,
)
from gateway.transports.spandsp import SAMPLE_RATE, G711Law, T30Config, T38Settings, Tone

RECV_SIZE = 4096  # above any RTP or UDPTL datagram we could make sense of
# Datagrams read per call per tick: a legitimate far end sends a few (T.38 repeats, or audio
# after a stall); beyond this a flood waits in (and overflows) the kernel's buffer instead of
# starving the other calls of the clock.
MAX_DATAGRAMS_PER_TICK = 64
# A sequence gap up to this many frames (1 s) is loss and fed to the modem as fill-in; a bigger
# jump is the far end renumbering (a new stream), after which we just carry on.
MAX_FILL_FRAMES = 50
# Sequence number, a two-octet length and an empty redundancy list around an IFP.
UDPTL_OVERHEAD = 6
MAX_REPEAT = 5  # spandsp asks for 1 or 3; a bound on what one IFP can cost us

Address = tuple[str, int]
MediaName = Literal["g711", "t38"]


class EndReason(StrEnum):
    FAX_DONE = "fax_done"  # T.30 reached phase E by itself (success or T.30's own failure)
    SILENCE = "media_silence"  # see the module docstring
    HANGUP = "hangup"  # hangup() (BYE, CANCEL, shutdown of the clock)


@dataclass(frozen=True)
class AudioMode:
    """G.711 fax passthrough, 20 ms frames. RTP with ``payload_type`` is decoded with ``law``;
    the static types 0 (PCMU) and 8 (PCMA) are always understood (some far ends switch laws
    mid-call), anything else (comfort noise, DTMF events) is ignored. ``listen_for``: tones to
    report through ``on_tone`` (CNG, CED, V.21 preamble), for deciding on a T.38 re-INVITE."""

    law: G711Law = G711Law.ULAW
    payload_type: int = PAYLOAD_PCMU
    listen_for: tuple[Tone, ...] = ()

    def __post_init__(self) -> None:
        if not 0 <= self.payload_type <= 0x7F:
            raise ValueError(f"payload type {self.payload_type} is not 7 bits")

    @staticmethod
    def pcmu(listen_for: tuple[Tone, ...] = ()) -> AudioMode:
        return AudioMode(G711Law.ULAW, PAYLOAD_PCMU, listen_for)

    @staticmethod
    def pcma(listen_for: tuple[Tone, ...] = ()) -> AudioMode:
        return AudioMode(G711Law.ALAW, PAYLOAD_PCMA, listen_for)


@dataclass(frozen=True)
class T38Mode:
    """T.38 over UDPTL as SDP negotiated it: ``settings`` for the terminal, the far end's
    T38FaxMaxDatagram (UDPTL datagram octets) and how many earlier IFPs each packet repeats."""

    settings: T38Settings = field(default_factory=T38Settings)
    far_max_datagram: int = 400
    redundancy: int = 3

    def __post_init__(self) -> None:
        if not 0 <= self.redundancy <= udptl.MAX_SECONDARIES:
            raise ValueError(f"redundancy {self.redundancy} not in 0..{udptl.MAX_SECONDARIES}")
        if self.far_max_datagram <= UDPTL_OVERHEAD:
            raise ValueError(f"T38FaxMaxDatagram {self.far_max_datagram} cannot carry an IFP")


@dataclass
class MediaStats:
    """Counters of one call (a copy is handed out; the media thread keeps the original)."""

    seconds: float = 0.0  # media time, all modes
    packets_in: int = 0  # well-formed packets from the remote
    packets_out: int = 0  # datagrams sent (T.38 repeats included)
    foreign: int = 0  # datagrams from another address than the remote's: dropped
    malformed: int = 0  # from the remote, but not RTP (audio) or not UDPTL (T.38)
    other_payload: int = 0  # RTP of a payload type we do not decode
    late: int = 0  # RTP behind the frame last fed (late, duplicate): dropped
    missing_frames: int = 0  # RTP sequence numbers never seen, fed as fill-in
    resyncs: int = 0  # SSRC changes and sequence jumps
    send_errors: int = 0  # sendto failed (buffer full, unreachable)
    oversize_ifps: int = 0  # IFPs that no datagram within far_max_datagram could carry
    switches: int = 0
    udptl: udptl.ReceiverStats | None = None


class CallMedia:
    """The media of one call; see the module docstring. Make it on the event loop."""

    def __init__(
        self,
        port: MediaPort,
        *,
        calling: bool,
        config: T30Config,
        mode: AudioMode | T38Mode,
        remote: Address | None = None,
        silence_timeout_s: float = 20.0,
        learn_remote: bool = False,
        on_tone: Callable[[float, Tone], None] | None = None,
    ) -> None:
        if silence_timeout_s <= 0:
            raise ValueError("silence_timeout_s must be positive")
        self._loop = asyncio.get_running_loop()
        self.done: asyncio.Future[FaxOutcome] = self._loop.create_future()
        self.end_reason: EndReason | None = None  # set before done settles
        self._port = port
        self._calling = calling
        self._config = config
        self._mode = mode
        self._remote = media_address(*remote) if remote else None
        self._silence_ticks = max(1, round(silence_timeout_s * SAMPLE_RATE / BLOCK))
        self._learn = learn_remote
        self._latched = False
        self._on_tone = on_tone
        self._commands: deque[Callable[[], None]] = deque()  # appended on the loop, run here
        self._attached = False
        self._finished = False
        self._endpoint: AudioFaxEndpoint | T38Endpoint | None = None
        self._pump: _AudioPump | _T38Pump | None = None
        self._ticks = 0
        self._active_at = 0  # tick of the last sign of life (see silence in the docstring)
        self._stats = MediaStats()
        self._receiver: udptl.UdptlReceiver | None = None  # T.38's, kept for its figures

    # The event loop's side. Each queues a command: the media thread owns the state.

    @property
    def port(self) -> int:
        return self._port.port

    @property
    def media(self) -> MediaName:
        """The mode the call is in (after a switch has been applied), for ``tx_result``."""
        return "t38" if isinstance(self._mode, T38Mode) else "g711"

    @property
    def stats(self) -> MediaStats:
        receiver = self._receiver
        return replace(self._stats, udptl=receiver.stats if receiver else None)

    def set_remote(self, host: str, port: int) -> None:
        """The far end's media address moved (a re-INVITE); validated here, applied next tick."""
        remote = media_address(host, port)
        self._commands.append(lambda: self._move(remote))

    def switch_to_t38(self, mode: T38Mode, remote: Address | None = None) -> None:
        """Carry on in T.38 with a fresh terminal (same T30Config), on the same local port. On
        a call already in T.38 only the remote address moves: the fax is never restarted."""
        address = media_address(*remote) if remote else None
        self._commands.append(lambda: self._switch(mode, address))

    def hangup(self) -> None:
        """End the call (BYE, CANCEL): ``done`` gets T.30's outcome of a dropped call. A call
        never added to a clock just gives its port back and cancels ``done``."""
        if not self._attached:
            self._port.close()
            self.done.cancel()
            return
        self._commands.append(lambda: self._end(EndReason.HANGUP))

    # The media thread's side (MediaClock).

    def _attach(self) -> None:
        if self._attached:
            raise RuntimeError("this call is already on a media clock")
        self._attached = True

    def _step(self) -> bool:
        """One tick; True once the call is over (``done`` is then being settled)."""
        if self._endpoint is None:
            self._start(self._mode)
        while self._commands and not self._finished:
            self._commands.popleft()()
        if self._finished:
            return True
        pump = self._pump
        assert pump is not None and self._endpoint is not None
        self._ticks += 1
        self._stats.seconds = self._ticks * BLOCK / SAMPLE_RATE
        self._drain(pump)
        sent = False
        for datagram, count in pump.run():
            sent = True
            for _ in range(count):
                self._send(datagram)
        if isinstance(pump, _T38Pump):
            if sent:
                self._active_at = self._ticks
        elif self._on_tone is not None:
            for heard in pump.new_tones():
                self._post(self._on_tone, *heard)
        if self._endpoint.done:
            self._end(EndReason.FAX_DONE)
        elif self._ticks - self._active_at >= self._silence_ticks:
            self._end(EndReason.SILENCE)
        return self._finished

    def _start(self, mode: AudioMode | T38Mode) -> None:
        if isinstance(mode, AudioMode):
            audio = AudioFaxEndpoint(
                calling=self._calling, config=self._config, law=mode.law, listen_for=mode.listen_for
            )
            self._endpoint, self._pump = audio, _AudioPump(audio, mode, self._stats)
        else:
            # Tell spandsp how large an IFP may be: one that fits a datagram on its own.
            largest = mode.far_max_datagram - UDPTL_OVERHEAD
            settings = replace(mode.settings, max_datagram=min(mode.settings.max_datagram, largest))
            t38 = T38Endpoint(calling=self._calling, config=self._config, settings=settings)
            pump = _T38Pump(t38, mode, self._stats)
            self._endpoint, self._pump, self._receiver = t38, pump, pump.receiver
        self._mode = mode
        self._active_at = self._ticks

    def _drain(self, pump: _AudioPump | _T38Pump) -> None:
        sock = self._port.socket
        for _ in range(MAX_DATAGRAMS_PER_TICK):
            try:
                data, source = sock.recvfrom(RECV_SIZE)
            except BlockingIOError:
                return
            except OSError:  # an ICMP error surfacing on the socket: nothing to read
                continue
            address = (source[0], source[1])
            learning = self._learn and not self._latched
            if address != self._remote and not learning:
                self._stats.foreign += 1
                continue
            if pump.take(data):
                self._stats.packets_in += 1
                self._active_at = self._ticks
                if learning:  # symmetric RTP: answer where the first good packet came from
                    self._remote, self._latched = address, True

    def _send(self, datagram: bytes) -> None:
        if self._remote is None:
            return  # not known yet (learning): the endpoint still runs its clock
        try:
            self._port.socket.sendto(datagram, self._remote)
        except OSError:  # BlockingIOError (buffer full) included: UDP may lose it anyway
            self._stats.send_errors += 1
        else:
            self._stats.packets_out += 1

    def _move(self, remote: Address) -> None:
        self._remote = remote
        self._latched = False

    def _switch(self, mode: T38Mode, remote: Address | None) -> None:
        if remote is not None:
            self._move(remote)
        if isinstance(self._mode, T38Mode):
            return
        old = self._endpoint
        assert old is not None
        old.hangup()
        old.close()
        self._endpoint = self._pump = None
        self._stats.switches += 1
        self._start(mode)

    def _end(self, reason: EndReason) -> None:
        if self._finished:
            return
        try:
            if self._endpoint is None:  # hung up before its first tick: still T.30's word
                self._start(self._mode)
            endpoint = self._endpoint
            assert endpoint is not None
            self._finished = True
            endpoint.hangup()
            # The line time of the call is all of it, audio before a switch included.
            outcome = replace(endpoint.outcome(), seconds=round(self._stats.seconds, 2))
        except Exception as exc:
            self._fail(exc)
            return
        self.end_reason = reason
        self._close()
        self._post(self._settle, outcome, None)

    def _fail(self, exc: BaseException) -> None:
        """Something broke in this call's media: end it, hand the exception to ``done``."""
        self._finished = True
        with contextlib.suppress(Exception):  # the first error is the one to report
            self._close()
        self._post(self._settle, None, exc)

    def _close(self) -> None:
        endpoint, self._endpoint, self._pump = self._endpoint, None, None
        try:
            if endpoint is not None:
                endpoint.close()
        finally:
            self._port.close()

    def _settle(self, outcome: FaxOutcome | None, exc: BaseException | None) -> None:
        if self.done.done():  # cancelled by its owner
            return
        if exc is not None:
            self.done.set_exception(exc)
        else:
            assert outcome is not None
            self.done.set_result(outcome)

    def _post(self, callback: Callable[..., None], *args: object) -> None:
        with contextlib.suppress(RuntimeError):  # a closed loop: nobody is left to tell
            self._loop.call_soon_threadsafe(callback, *args)


def _random_bits(bits: int) -> int:
    # RFC 3550 §5.1: random initial sequence number, timestamp and SSRC (also makes blind
    # injection into the stream harder; SRTP is not in use).
    return secrets.randbits(bits)


class _AudioPump:
    """RTP in and out for an ``AudioFaxEndpoint``."""

    def __init__(self, endpoint: AudioFaxEndpoint, mode: AudioMode, stats: MediaStats) -> None:
        self._endpoint = endpoint
        self._stats = stats
        self._laws = {PAYLOAD_PCMU: G711Law.ULAW, PAYLOAD_PCMA: G711Law.ALAW}
        self._laws[mode.payload_type] = mode.law
        self._payload_type = mode.payload_type
        self._ssrc = _random_bits(32)
        self._seq = _random_bits(16)
        self._timestamp = _random_bits(32)
        self._marker = True  # the first packet starts a talkspurt (RFC 3551 §4.1)
        self._pending: list[tuple[RtpPacket, G711Law]] = []
        self._remote_ssrc: int | None = None
        self._expected = 0  # next sequence number of the remote's stream
        self._frame = BLOCK  # samples per frame of the remote, from its last payload
        self._tones_seen = 0

    def take(self, data: bytes) -> bool:
        try:
            packet = RtpPacket.parse(data)
        except RtpError:
            self._stats.malformed += 1
            return False
        law = self._laws.get(packet.payload_type)
        if law is None:
            self._stats.other_payload += 1  # still a sign of life
        elif packet.payload:
            self._pending.append((packet, law))
        return True

    def run(self) -> list[tuple[bytes, int]]:
        if self._pending:
            self._feed()
        payload = self._endpoint.transmit_frame(BLOCK)
        packet = RtpPacket(
            self._payload_type, self._seq, self._timestamp, self._ssrc, payload, self._marker
        )
        self._seq = (self._seq + 1) & 0xFFFF
        self._timestamp = (self._timestamp + BLOCK) & 0xFFFFFFFF
        self._marker = False
        return [(packet.encode(), 1)]

    def _feed(self) -> None:
        pending, self._pending = self._pending, []
        reference = self._expected if self._remote_ssrc is not None else pending[0][0].seq
        pending.sort(key=lambda item: seq_distance(item[0].seq, reference))
        for packet, law in pending:
            if packet.ssrc != self._remote_ssrc:
                if self._remote_ssrc is not None:
                    self._stats.resyncs += 1
                self._remote_ssrc, self._expected = packet.ssrc, packet.seq
            gap = seq_distance(packet.seq, self._expected)
            if gap < 0:
                self._stats.late += 1
                continue
            if gap > MAX_FILL_FRAMES:
                self._stats.resyncs += 1
            else:
                for _ in range(gap):
                    self._endpoint.missing_frame(self._frame)
                self._stats.missing_frames += gap
            self._endpoint.receive_frame(packet.payload, law)
            self._frame = len(packet.payload)
            self._expected = (packet.seq + 1) & 0xFFFF

    def new_tones(self) -> list[tuple[float, Tone]]:
        heard = self._endpoint.tones_heard
        new = heard[self._tones_seen :]
        self._tones_seen = len(heard)
        return new


class _T38Pump:
    """UDPTL in and out for a ``T38Endpoint``."""

    def __init__(self, endpoint: T38Endpoint, mode: T38Mode, stats: MediaStats) -> None:
        self._endpoint = endpoint
        self._stats = stats
        self.receiver = udptl.UdptlReceiver()
        self._sender = udptl.UdptlSender(mode.far_max_datagram, redundancy=mode.redundancy)

    def take(self, data: bytes) -> bool:
        try:
            packet = udptl.decode_packet(data)
        except udptl.UdptlError:
            self._stats.malformed += 1  # also RTP still in flight just after a switch
            return False
        for got in self.receiver.receive(packet):
            self._endpoint.receive_ifp(got.seq, got.ifp)
        return True

    def run(self) -> list[tuple[bytes, int]]:
        self._endpoint.tick(BLOCK)
        out = []
        for packet in self._endpoint.take_outgoing():
            if not packet.ifp:
                continue
            try:
                datagram = self._sender.build(packet.ifp)
            except udptl.DatagramTooLargeError:
                self._stats.oversize_ifps += 1
                continue
            out.append((datagram, min(max(packet.count, 1), MAX_REPEAT)))
        return out
