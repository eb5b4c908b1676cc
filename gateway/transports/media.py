"""Fax media engines for a telephony call: T.38 (IFP packets) and G.711 audio (RTP payloads).

The SIP layer owns sockets, RTP and UDPTL framing and the one 20 ms clock; these classes own
the fax machine behind a call. Both run the same T.30 engine, configured by one ``T30Config``
(``session.sending_config`` for an outbound fax), and report the same figures:

- ``T38Endpoint``: a spandsp T.38 terminal. ``receive_ifp(seq, ifp)`` takes an IFP recovered
  from UDPTL; ``tick(160)`` moves its clock by 20 ms; the IFPs it wants sent pile up in
  ``outgoing`` with the repeat count spandsp asked for. Redundancy covers most losses, but not
  the last packet of a burst (its copies ride on the next packet, which may come only after the
  far end timed out): send each UDPTL datagram ``count`` times, as FreeSWITCH does. V.21
  control frames go out one octet per IFP (0.0.6 paces 30 ms chunks), so without redundancy a
  few percent of loss breaks nearly every call.
- ``AudioFaxEndpoint``: an analogue fax modem behind G.711. ``receive_frame(payload, law)``
  decodes in C and feeds ``fax_rx``; ``missing_frame(160)`` is a lost packet (``fax_rx_fillin``,
  no packet loss concealment); ``transmit_frame(160)`` is the next payload to send. It can
  listen for CNG, CED or V.21 preamble on the received audio (``tones_heard``), which is what
  a switch to T.38 is decided on.

Everything is synchronous and cheap (microseconds per call); nothing here sleeps. Not thread
safe: one endpoint belongs to one thread at a time.
"""

from __future__ import annotations

import ctypes
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, replace

from gateway.transports.base import FailureClass, TxResult
from gateway.transports.classify import classify
from gateway.transports.g711 import G711, ToneDetector
from gateway.transports.session import tx_result
from gateway.transports.spandsp import (
    SAMPLE_RATE,
    SUPPORT_V27TER,
    SUPPORT_V29,
    FaxEndpoint,
    G711Law,
    Stats,
    T30Config,
    T30Engine,
    T38Settings,
    T38Terminal,
    Tone,
    completion_text,
)

BLOCK = 160  # 20 ms at 8 kHz


@dataclass(frozen=True)
class OutgoingIfp:
    ifp: bytes
    # How often spandsp wants it sent: 3 for indicators and ends of data, else 1. Send the
    # same datagram (same sequence number) that many times; the far end drops the copies.
    count: int


@dataclass(frozen=True)
class FaxOutcome:
    """What T.30 made of the call, from either side's point of view."""

    success: bool
    failure_class: FailureClass | None
    completion: int  # T.30 completion code, 0 = OK
    result_text: str
    pages_sent: int
    pages_received: int
    bit_rate: int  # of the image transfer; 0 when no page was reached
    ecm: bool
    remote_ident: str | None  # the far end's CSI (when sending) or TSI (when receiving)
    bad_rows: int
    seconds: float  # media time the call took
    stats: Stats

    def tx_result(self) -> TxResult:
        """The sending side's ``TxResult``, mapped exactly as the loopback line maps it."""
        return tx_result(self.completion, self.stats, self.remote_ident, self.seconds)


class _Endpoint:
    """What both media share: the T.30 engine, the media clock and the outcome."""

    _engine: T30Engine

    def __init__(self) -> None:
        self.samples = 0  # media clock, in 8 kHz samples
        self._last_rx = 0

    @property
    def done(self) -> bool:
        """T.30 reached phase E (the outcome is final)."""
        return self._engine.finished

    @property
    def seconds(self) -> float:
        return self.samples / SAMPLE_RATE

    @property
    def silent_seconds(self) -> float:
        """Media time since the far end last sent us anything (for a media idle timeout)."""
        return (self.samples - self._last_rx) / SAMPLE_RATE

    @property
    def pages_confirmed(self) -> int:
        return self._engine.pages_confirmed

    def hangup(self) -> None:
        """The call is gone: T.30 closes its files and reports phase E (call dropped)."""
        if not self._engine.finished:
            self._engine.terminate()

    def outcome(self) -> FaxOutcome:
        """The final figures; only once ``done`` (``hangup()`` first to cut a call short)."""
        engine = self._engine
        if engine.completion is None:
            raise RuntimeError("T.30 is still running: hang up before asking for the outcome")
        st = engine.stats()
        code = engine.completion
        reached = st.pages_tx > 0 or st.pages_rx > 0  # before phase C the stats are defaults
        return FaxOutcome(
            success=code == 0,
            failure_class=classify(code),
            completion=code,
            result_text=completion_text(code),
            pages_sent=st.pages_tx,
            pages_received=st.pages_rx,
            bit_rate=st.bit_rate if reached else 0,
            ecm=st.ecm and reached,
            remote_ident=engine.remote_ident(),
            bad_rows=st.bad_rows,
            seconds=round(self.seconds, 2),
            stats=st,
        )


def _modems_for(max_bit_rate: int, modems: int) -> int:
    """spandsp 0.0.6 stores T38MaxBitRate but its T.30 never reads it: limit the modems."""
    if max_bit_rate >= 14400:
        return modems
    if max_bit_rate >= 9600:
        return modems & (SUPPORT_V29 | SUPPORT_V27TER)
    return modems & SUPPORT_V27TER


class T38Endpoint(_Endpoint):
    """A fax machine speaking T.38 IFPs, for the calling or the answering side."""

    def __init__(
        self, *, calling: bool, config: T30Config, settings: T38Settings | None = None
    ) -> None:
        super().__init__()
        settings = settings or T38Settings()
        self.outgoing: deque[OutgoingIfp] = deque()
        self.received_ifps = 0
        self.rejected_ifps = 0  # IFPs the T.38 core could not parse
        self._terminal = T38Terminal(calling=calling, on_packet=self._queue)
        self._engine = self._terminal
        try:
            modems = _modems_for(settings.max_bit_rate, config.modems)
            self._terminal.configure(replace(config, modems=modems))
            self._terminal.apply(settings)
        except BaseException:
            self._terminal.close()
            raise

    def _queue(self, ifp: bytes, count: int) -> None:
        self.outgoing.append(OutgoingIfp(ifp, count))

    def take_outgoing(self) -> list[OutgoingIfp]:
        """The IFPs queued since the last call, oldest first."""
        out = list(self.outgoing)
        self.outgoing.clear()
        return out

    def receive_ifp(self, seq: int, ifp: bytes) -> None:
        """One IFP from the far end, with its UDPTL sequence number (in order, gaps allowed)."""
        self._last_rx = self.samples
        self.received_ifps += 1
        if not self._terminal.rx_ifp(seq, ifp):
            self.rejected_ifps += 1

    def tick(self, samples: int = BLOCK) -> bool:
        """Advance the clock by ``samples``; spandsp sends what is due. True once done."""
        self.samples += samples
        self._terminal.send_timeout(samples)
        return self.done

    def close(self) -> None:
        self._terminal.close()

    def __enter__(self) -> T38Endpoint:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


class AudioFaxEndpoint(_Endpoint):
    """A fax modem behind a G.711 channel (PCMU or PCMA), 8 kHz, any frame length."""

    def __init__(
        self,
        *,
        calling: bool,
        config: T30Config,
        law: G711Law = G711Law.ULAW,
        listen_for: Iterable[Tone] = (),
    ) -> None:
        super().__init__()
        self.law = law
        self.tones_heard: list[tuple[float, Tone]] = []  # (media seconds, tone), in order
        self._fax = FaxEndpoint(calling=calling)
        self._engine = self._fax
        self._codecs: dict[G711Law, G711] = {}
        self._detectors: list[ToneDetector] = []
        self._amp = (ctypes.c_int16 * BLOCK)()
        self._octets = ctypes.create_string_buffer(BLOCK)
        try:
            self._fax.configure(config)
            self._codec(law)
            self._detectors = [ToneDetector(tone) for tone in listen_for]
        except BaseException:
            self.close()
            raise

    def _codec(self, law: G711Law) -> G711:
        codec = self._codecs.get(law)
        if codec is None:
            codec = self._codecs[law] = G711(law)
        return codec

    def _room(self, samples: int) -> None:
        if samples > len(self._amp):
            self._amp = (ctypes.c_int16 * samples)()
            self._octets = ctypes.create_string_buffer(samples)

    def receive_frame(self, payload: bytes, law: G711Law | None = None) -> None:
        """One received RTP payload (one octet per sample) in ``law`` (default: ours)."""
        samples = len(payload)
        if not samples:
            return
        self._room(samples)
        self._codec(self.law if law is None else law).decode(payload, self._amp)
        for detector in self._detectors:
            tone = detector.feed(self._amp, samples)
            if tone is not Tone.NONE:
                self.tones_heard.append((self.seconds, tone))
        self._fax.rx(self._amp, samples)
        self._last_rx = self.samples

    def missing_frame(self, samples: int = BLOCK) -> None:
        """A frame that never came: the receive modem coasts (``fax_rx_fillin``)."""
        self._fax.rx_fillin(samples)

    def transmit_frame(self, samples: int = BLOCK) -> bytes:
        """The next ``samples`` of our side, encoded; this is what moves the media clock."""
        self._room(samples)
        produced = self._fax.tx(self._amp, samples)
        if produced < samples:  # transmit-on-idle makes this rare; pad with silence
            ctypes.memset(ctypes.byref(self._amp, 2 * produced), 0, 2 * (samples - produced))
        n = self._codec(self.law).encode(self._amp, samples, self._octets)
        self.samples += samples
        return self._octets.raw[:n]

    def close(self) -> None:
        for detector in self._detectors:
            detector.close()
        for codec in self._codecs.values():
            codec.close()
        self._fax.close()

    def __enter__(self) -> AudioFaxEndpoint:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
