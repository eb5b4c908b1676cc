"""Two media endpoints back to back on a simulated 20 ms clock (no sleeping, no sockets).

Used by the T.38 and G.711 endpoint tests and by bench/media.py. Each tick is 20 ms of media
time: both sides run their clock, then what each sent is handed to the other (one tick of
delay, as a network would add). When one side reaches phase E it "sends BYE": the other is
hung up ``bye_seconds`` later. Every run is bounded by ``max_seconds`` of media time, after
which both are hung up (a dropped call), so no run can hang.
"""

from __future__ import annotations

import random
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from gateway.transports import udptl
from gateway.transports.base import OutboundCall
from gateway.transports.media import BLOCK, AudioFaxEndpoint, OutgoingIfp, T38Endpoint
from gateway.transports.session import sending_config
from gateway.transports.spandsp import SAMPLE_RATE, G711Law, T30Config, T38Settings, Tone

TICKS_PER_SECOND = SAMPLE_RATE // BLOCK
CALLER = "+15557770000"
CALLEE = "+15550001000"

# A link turns what one side sent during a tick into what the other side receives, in order:
# (seq, ifp) pairs for T.38.
IfpLink = Callable[[list[OutgoingIfp]], list[tuple[int, bytes]]]


def direct_link() -> IfpLink:
    """A perfect network: every IFP once, numbered as a UDPTL sender would number it."""
    seq = 0

    def carry(sent: list[OutgoingIfp]) -> list[tuple[int, bytes]]:
        nonlocal seq
        out = []
        for packet in sent:
            out.append((seq, packet.ifp))
            seq = (seq + 1) & 0xFFFF
        return out

    return carry


class UdptlLink:
    """IFPs through real UDPTL datagrams (``udptl.UdptlSender`` with ``redundancy`` secondaries,
    ``decode_packet``, ``UdptlReceiver``) over a network that drops a seeded share ``loss`` of
    the datagrams.

    With ``repeat`` each datagram goes out as many times as spandsp asked (``count``, the same
    datagram each time, as FreeSWITCH does); without it, once. Redundancy alone cannot cover
    the last packets of a burst: their copies ride only on the next packet, which may be
    seconds away, when the far end has already timed out.
    """

    def __init__(
        self,
        *,
        redundancy: int,
        loss: float,
        seed: int,
        repeat: bool = True,
        max_datagram: int = 400,
    ) -> None:
        self.sender = udptl.UdptlSender(max_datagram, redundancy=redundancy)
        self.receiver = udptl.UdptlReceiver()
        self.loss = loss
        self.repeat = repeat
        self.sent = self.dropped = 0
        self._rng = random.Random(seed)

    def __call__(self, sent: list[OutgoingIfp]) -> list[tuple[int, bytes]]:
        out: list[tuple[int, bytes]] = []
        for packet in sent:
            datagram = self.sender.build(packet.ifp)
            for _ in range(packet.count if self.repeat else 1):
                self.sent += 1
                if self.loss and self._rng.random() < self.loss:
                    self.dropped += 1
                    continue
                for got in self.receiver.receive(udptl.decode_packet(datagram)):
                    out.append((got.seq, got.ifp))
        return out


@dataclass
class Files:
    tx: Path
    rx: Path


@contextmanager
def fax_files(tiff: bytes) -> Iterator[Files]:
    with tempfile.TemporaryDirectory(prefix="fax-media-") as tmp:
        files = Files(Path(tmp) / "tx.tif", Path(tmp) / "rx.tif")
        files.tx.write_bytes(tiff)
        yield files


def outbound(tiff: bytes, pages: int) -> OutboundCall:
    return OutboundCall(
        fax_id="fax-1",
        to_number=CALLEE,
        from_number=CALLER,
        tsi=CALLER,
        header="ACME Corp",
        timezone="Europe/Paris",
        tiff=tiff,
        pages=pages,
    )


def sender_config(files: Files, pages: int, *, ecm: bool = True) -> T30Config:
    return sending_config(outbound(files.tx.read_bytes(), pages), str(files.tx), ecm=ecm)


def receiver_config(files: Files, *, ecm: bool = True) -> T30Config:
    return T30Config(ident=CALLEE, rx_file=str(files.rx), ecm=ecm)


@contextmanager
def t38_pair(
    tiff: bytes, pages: int, *, ecm: bool = True, settings: T38Settings | None = None
) -> Iterator[tuple[Files, T38Endpoint, T38Endpoint]]:
    """A sending and an answering T.38 endpoint; the TIFF received is in ``files.rx``."""
    with (
        fax_files(tiff) as files,
        T38Endpoint(
            calling=True, config=sender_config(files, pages, ecm=ecm), settings=settings
        ) as a,
        T38Endpoint(calling=False, config=receiver_config(files, ecm=ecm)) as b,
    ):
        yield files, a, b


@contextmanager
def audio_pair(
    tiff: bytes,
    pages: int,
    *,
    laws: tuple[G711Law, G711Law] = (G711Law.ULAW, G711Law.ULAW),
    listen: tuple[Iterable[Tone], Iterable[Tone]] = ((), ()),
) -> Iterator[tuple[Files, AudioFaxEndpoint, AudioFaxEndpoint]]:
    """A sending and an answering G.711 endpoint, each with its own law and tone detectors."""
    with (
        fax_files(tiff) as files,
        AudioFaxEndpoint(
            calling=True, config=sender_config(files, pages), law=laws[0], listen_for=listen[0]
        ) as a,
        AudioFaxEndpoint(
            calling=False, config=receiver_config(files), law=laws[1], listen_for=listen[1]
        ) as b,
    ):
        yield files, a, b


def run_t38(
    a: T38Endpoint,
    b: T38Endpoint,
    a_to_b: IfpLink,
    b_to_a: IfpLink,
    *,
    max_seconds: float = 600,
    bye_seconds: float = 0.5,
) -> int:
    """Run until both sides are done; return the number of 20 ms ticks."""
    ticks, bye_at = 0, None
    limit = int(max_seconds * TICKS_PER_SECOND)
    while not (a.done and b.done) and ticks < limit:
        a.tick()
        b.tick()
        for seq, ifp in a_to_b(a.take_outgoing()):
            b.receive_ifp(seq, ifp)
        for seq, ifp in b_to_a(b.take_outgoing()):
            a.receive_ifp(seq, ifp)
        ticks += 1
        bye_at = _bye(a, b, ticks, bye_at, bye_seconds)
    a.hangup()
    b.hangup()
    return ticks


def run_audio(
    a: AudioFaxEndpoint,
    b: AudioFaxEndpoint,
    *,
    loss: float = 0.0,
    seed: int = 0,
    max_seconds: float = 600,
    bye_seconds: float = 0.5,
) -> tuple[int, int]:
    """Run G.711 both ways; a lost frame (share ``loss``) is fed as fill-in.

    Returns (ticks, frames lost)."""
    rng = random.Random(seed)
    ticks, lost, bye_at = 0, 0, None
    limit = int(max_seconds * TICKS_PER_SECOND)
    while not (a.done and b.done) and ticks < limit:
        to_b, to_a = a.transmit_frame(), b.transmit_frame()
        for side, payload in ((b, to_b), (a, to_a)):
            if loss and rng.random() < loss:
                side.missing_frame(len(payload))
                lost += 1
            else:
                side.receive_frame(payload)
        ticks += 1
        bye_at = _bye(a, b, ticks, bye_at, bye_seconds)
    a.hangup()
    b.hangup()
    return ticks, lost


def _bye(
    a: T38Endpoint | AudioFaxEndpoint,
    b: T38Endpoint | AudioFaxEndpoint,
    ticks: int,
    bye_at: int | None,
    bye_seconds: float,
) -> int | None:
    if bye_at is None and (a.done or b.done):
        return ticks + int(bye_seconds * TICKS_PER_SECOND)
    if bye_at is not None and ticks >= bye_at:
        a.hangup()
        b.hangup()
    return bye_at
