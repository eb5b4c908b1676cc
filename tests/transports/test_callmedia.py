"""Calls' media on one media clock, over real UDP sockets on 127.0.0.1.

Two ``CallMedia`` face each other the way two gateways' calls would: each has its own port
from the allocator and the other's port as its remote, both driven by the same ``MediaClock``.
The clock runs faster than 20 ms (media time only moves by ticks), so a 30 s fax takes a few
seconds; timeouts here are guards, never assertions.
"""

from __future__ import annotations

import asyncio
import functools
import io
import random
import socket
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, replace
from typing import Any

import pytest
from PIL import Image

from gateway.transports import udptl
from gateway.transports.base import FailureClass
from gateway.transports.callmedia import AudioMode, CallMedia, EndReason, T38Mode
from gateway.transports.media import FaxOutcome
from gateway.transports.mediaclock import MediaClock
from gateway.transports.rtp import PortAllocator, RtpPacket
from gateway.transports.spandsp import Tone
from tests.transports.backtoback import (
    CALLEE,
    CALLER,
    Files,
    fax_files,
    receiver_config,
    sender_config,
)
from tests.transports.conftest import g4_tiff

HOST = "127.0.0.1"
PAGES = 2
TEST_PERIOD_S = 0.002  # 10x faster than a gateway's clock
GUARD_S = 120.0  # wall time after which a test gives up on a call


@pytest.fixture(scope="module")
def tiff() -> bytes:
    return g4_tiff(PAGES)


@pytest.fixture
def clock() -> Iterator[MediaClock]:
    with MediaClock(period_s=TEST_PERIOD_S) as clock:
        yield clock


@pytest.fixture
def ports() -> PortAllocator:
    return PortAllocator(HOST, 41000, 41999)


def address(media: CallMedia) -> tuple[str, int]:
    return (HOST, media.port)


def pages_in(files: Files) -> int:
    return getattr(Image.open(io.BytesIO(files.rx.read_bytes())), "n_frames", 1)


@dataclass
class Call:
    """The two ends of one fax call: ``sender`` transmits the document, ``receiver`` takes it."""

    files: Files
    sender: CallMedia
    receiver: CallMedia

    async def outcomes(self, bye_s: float = 5.0) -> tuple[FaxOutcome, FaxOutcome]:
        """Both outcomes. Whoever finishes first "sends BYE": the other is hung up if it has
        not finished by itself within ``bye_s``."""
        both = {self.sender.done, self.receiver.done}
        _, pending = await asyncio.wait(both, timeout=GUARD_S, return_when="FIRST_COMPLETED")
        if pending == both:
            raise AssertionError("no side finished within the guard time")
        if pending:
            _, pending = await asyncio.wait(pending, timeout=bye_s)
        for late in (self.sender, self.receiver):
            if late.done in pending:
                late.hangup()
        return await self.sender.done, await self.receiver.done


class Relay:
    """A UDP relay between the two calls, on the test's event loop: each call sends to its own
    leg, and what arrives on one leg leaves by the other (so each call sees packets from the
    address it sends to). A seeded share ``loss`` of the datagrams is dropped; after ``cut()``
    or ``cut_after`` forwarded datagrams, all of them are."""

    def __init__(self, *, loss: float = 0.0, seed: int = 0, cut_after: int | None = None) -> None:
        self.loss = loss
        self.cut_after = cut_after
        self.forwarded = self.dropped = 0
        self._rng = random.Random(seed)
        self._legs: list[asyncio.DatagramTransport] = []
        self._targets: list[tuple[str, int]] = []

    async def open(
        self, sender: tuple[str, int], receiver: tuple[str, int]
    ) -> tuple[tuple[str, int], tuple[str, int]]:
        """Listen for both calls; the addresses the sender and the receiver should send to."""
        loop = asyncio.get_running_loop()
        self._targets = [receiver, sender]  # leg 0 faces the sender, leg 1 the receiver
        for leg in (0, 1):
            transport, _ = await loop.create_datagram_endpoint(
                functools.partial(_Leg, self, leg), local_addr=(HOST, 0)
            )
            self._legs.append(transport)
        return self._legs[0].get_extra_info("sockname"), self._legs[1].get_extra_info("sockname")

    def cut(self) -> None:
        self.cut_after = self.forwarded

    def forward(self, leg: int, data: bytes) -> None:
        cut = self.cut_after is not None and self.forwarded >= self.cut_after
        if cut or (self.loss and self._rng.random() < self.loss):
            self.dropped += 1
            return
        self.forwarded += 1
        self._legs[1 - leg].sendto(data, self._targets[leg])

    def close(self) -> None:
        for transport in self._legs:
            transport.close()


class _Leg(asyncio.DatagramProtocol):
    def __init__(self, relay: Relay, leg: int) -> None:
        self._relay, self._leg = relay, leg

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        self._relay.forward(self._leg, data)


@asynccontextmanager
async def fax_call(
    tiff: bytes,
    clock: MediaClock,
    ports: PortAllocator,
    *,
    mode: AudioMode | T38Mode,
    sender_calls: bool = True,
    relay: Relay | None = None,
    **options: Any,
) -> AsyncIterator[Call]:
    """A sender and a receiver on ``clock``, facing each other directly or through ``relay``."""
    with fax_files(tiff) as files:
        sender = CallMedia(
            ports.open(),
            calling=sender_calls,
            config=sender_config(files, PAGES),
            mode=mode,
            **options,
        )
        receiver = CallMedia(
            ports.open(),
            calling=not sender_calls,
            config=receiver_config(files),
            mode=mode,
            **options,
        )
        if relay is None:
            to_receiver, to_sender = address(receiver), address(sender)
        else:
            to_receiver, to_sender = await relay.open(address(sender), address(receiver))
        sender.set_remote(*to_receiver)
        receiver.set_remote(*to_sender)
        clock.add(sender)
        clock.add(receiver)
        try:
            yield Call(files, sender, receiver)
        finally:
            if relay is not None:
                relay.close()


def assert_fax_went_through(call: Call, sent: FaxOutcome, got: FaxOutcome) -> None:
    assert sent.success and got.success, (sent, got)
    assert sent.pages_sent == got.pages_received == PAGES
    assert pages_in(call.files) == PAGES
    assert sent.remote_ident == CALLEE and got.remote_ident == CALLER
    assert call.sender.end_reason is EndReason.FAX_DONE


# Transfers that work


@pytest.mark.parametrize("sender_calls", [True, False], ids=["caller-sends", "answerer-sends"])
async def test_fax_over_t38(
    tiff: bytes, clock: MediaClock, ports: PortAllocator, sender_calls: bool
) -> None:
    async with fax_call(tiff, clock, ports, mode=T38Mode(), sender_calls=sender_calls) as call:
        sent, got = await call.outcomes()
        assert_fax_went_through(call, sent, got)
    assert sent.bit_rate == 14400 and sent.ecm
    for media, far in ((call.sender, call.receiver), (call.receiver, call.sender)):
        assert media.media == "t38"
        stats = media.stats
        # Lossless loopback: what one sent, the other took in, up to the last tick's packets.
        assert far.stats.packets_out - 10 <= stats.packets_in <= far.stats.packets_out
        assert stats.foreign == stats.malformed == stats.send_errors == 0
        assert stats.udptl is not None and stats.udptl.lost == 0
        assert stats.udptl.duplicates > 0  # spandsp's repeats (count 3), dropped by UDPTL
    assert ports.in_use == 0  # both ports went back when the calls ended


@pytest.mark.parametrize("mode", [AudioMode.pcmu(), AudioMode.pcma()], ids=["PCMU", "PCMA"])
async def test_fax_over_g711(
    tiff: bytes, clock: MediaClock, ports: PortAllocator, mode: AudioMode
) -> None:
    async with fax_call(tiff, clock, ports, mode=mode) as call:
        sent, got = await call.outcomes()
        assert_fax_went_through(call, sent, got)
    for media in (call.sender, call.receiver):
        stats = media.stats
        assert media.media == "g711"
        assert stats.missing_frames == stats.late == stats.foreign == 0
        # One RTP packet a tick, the far end's all received: a lossless loopback.
        assert stats.packets_out == round(stats.seconds * 50)
    assert call.sender.stats.packets_in >= call.receiver.stats.packets_out - 2


async def test_both_sides_switch_from_audio_to_t38_mid_call(
    tiff: bytes, clock: MediaClock, ports: PortAllocator
) -> None:
    """The answering side hears CNG and "re-INVITEs": both switch, the fax goes over T.38."""
    heard: list[tuple[float, Tone]] = []
    switched = asyncio.Event()

    def on_tone(at: float, tone: Tone) -> None:
        heard.append((at, tone))
        if not switched.is_set():
            switched.set()
            call.receiver.switch_to_t38(T38Mode())
            call.sender.switch_to_t38(T38Mode())

    with fax_files(tiff) as files:
        sender = CallMedia(
            ports.open(), calling=True, config=sender_config(files, PAGES), mode=AudioMode.pcmu()
        )
        receiver = CallMedia(
            ports.open(),
            calling=False,
            config=receiver_config(files),
            mode=AudioMode.pcmu(listen_for=(Tone.FAX_CNG,)),
            on_tone=on_tone,
        )
        sender.set_remote(*address(receiver))
        receiver.set_remote(*address(sender))
        call = Call(files, sender, receiver)
        clock.add(sender)
        clock.add(receiver)
        sent, got = await call.outcomes()
        assert_fax_went_through(call, sent, got)

    assert heard and heard[0][1] is Tone.FAX_CNG
    for media in (sender, receiver):
        assert media.media == "t38"
        assert media.stats.switches == 1
        assert media.stats.udptl is not None and media.stats.udptl.delivered > 0
    # The line time covers the audio before the switch too.
    assert sent.seconds > heard[0][0]


async def test_twenty_concurrent_t38_calls_on_one_clock(
    tiff: bytes, clock: MediaClock, ports: PortAllocator
) -> None:
    async with AsyncExitStack() as stack:
        calls = [
            await stack.enter_async_context(fax_call(tiff, clock, ports, mode=T38Mode()))
            for _ in range(20)
        ]
        results = await asyncio.gather(*(call.outcomes() for call in calls))
        for call, (sent, got) in zip(calls, results, strict=True):
            assert_fax_went_through(call, sent, got)
    assert clock.stats.calls == 0
    assert ports.in_use == 0


async def test_t38_with_redundancy_3_completes_at_5_percent_loss(
    tiff: bytes, clock: MediaClock, ports: PortAllocator
) -> None:
    relay = Relay(loss=0.05, seed=5)
    async with fax_call(tiff, clock, ports, mode=T38Mode(redundancy=3), relay=relay) as call:
        sent, got = await call.outcomes()
        assert_fax_went_through(call, sent, got)
    assert relay.dropped > 0.03 * (relay.forwarded + relay.dropped)
    udptl = call.receiver.stats.udptl
    assert udptl is not None and udptl.recovered > 0  # losses filled from the redundancy


async def test_g711_at_5_percent_loss_reports_what_really_happened(
    tiff: bytes, clock: MediaClock, ports: PortAllocator
) -> None:
    """G.711 fax rarely survives 5 % loss (each lost packet is fill-in, never concealed): the
    outcomes must agree with what arrived, and the call must end by T.30's own decision."""
    relay = Relay(loss=0.05, seed=7)
    async with fax_call(tiff, clock, ports, mode=AudioMode.pcmu(), relay=relay) as call:
        sent, got = await call.outcomes()
        arrived = pages_in(call.files) if call.files.rx.exists() else 0
    assert call.receiver.stats.missing_frames > 0
    assert call.sender.stats.missing_frames > 0
    assert call.sender.end_reason is EndReason.FAX_DONE or call.receiver.end_reason is (
        EndReason.FAX_DONE
    )
    assert got.pages_received == arrived
    if sent.success:
        assert sent.pages_sent == arrived == PAGES
    else:
        assert sent.failure_class is not None and sent.completion != 0
        assert sent.result_text and sent.result_text != "OK"


# Calls that end without the fax


async def test_media_silence_mid_call_ends_both_sides_truthfully(
    tiff: bytes, clock: MediaClock, ports: PortAllocator
) -> None:
    """The network goes away in the middle of a G.711 call (about 8 s of media): no RTP comes
    in any more, each side ends after silence_timeout_s, with T.30's word for it."""
    relay = Relay(cut_after=800)
    async with fax_call(
        tiff, clock, ports, mode=AudioMode.pcmu(), relay=relay, silence_timeout_s=2.0
    ) as call:
        sent, got = await call.outcomes(bye_s=GUARD_S)
    for outcome, media in ((sent, call.sender), (got, call.receiver)):
        assert media.end_reason is EndReason.SILENCE
        assert not outcome.success
        assert outcome.failure_class is FailureClass.LINE
        assert outcome.result_text == "The call dropped prematurely"
        assert 8 < outcome.seconds < 20
    assert got.pages_received < PAGES
    assert ports.in_use == 0


async def test_t38_far_end_that_never_sends_ends_on_silence(
    tiff: bytes, clock: MediaClock, ports: PortAllocator
) -> None:
    """A far end that takes the re-INVITE but never sends UDPTL (a black hole)."""
    with fax_files(tiff) as files, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as hole:
        hole.bind((HOST, 0))
        media = CallMedia(
            ports.open(),
            calling=True,
            config=sender_config(files, PAGES),
            mode=T38Mode(),
            remote=hole.getsockname(),
            silence_timeout_s=3.0,
        )
        clock.add(media)
        outcome = await asyncio.wait_for(media.done, GUARD_S)
    assert media.end_reason is EndReason.SILENCE
    assert not outcome.success and outcome.pages_sent == 0
    assert outcome.failure_class is FailureClass.LINE
    assert media.stats.packets_in == 0 and media.stats.packets_out > 0
    assert 3 <= outcome.seconds < 10


async def test_hangup_mid_call_gives_the_outcome_of_a_dropped_call(
    tiff: bytes, clock: MediaClock, ports: PortAllocator
) -> None:
    async with fax_call(tiff, clock, ports, mode=T38Mode()) as call:
        while call.receiver.stats.packets_in < 100:  # well into the call
            await asyncio.sleep(0.01)
        call.sender.hangup()
        call.receiver.hangup()
        sent, got = await asyncio.wait_for(call.outcomes(), GUARD_S)
    for outcome, media in ((sent, call.sender), (got, call.receiver)):
        assert media.end_reason is EndReason.HANGUP
        assert not outcome.success
        assert outcome.result_text == "The call dropped prematurely"
    assert ports.in_use == 0


async def test_stopping_the_clock_hangs_up_every_call(tiff: bytes, ports: PortAllocator) -> None:
    clock = MediaClock(period_s=TEST_PERIOD_S)
    clock.start()
    async with fax_call(tiff, clock, ports, mode=AudioMode.pcma()) as call:
        while call.receiver.stats.packets_in < 20:
            await asyncio.sleep(0.01)
        clock.stop()
        sent, got = await asyncio.wait_for(call.outcomes(), GUARD_S)
    assert not sent.success and not got.success
    assert call.sender.end_reason is call.receiver.end_reason is EndReason.HANGUP
    assert not clock.running and ports.in_use == 0
    with pytest.raises(RuntimeError):
        clock.add(call.sender)


async def test_a_call_whose_media_cannot_start_fails_alone(
    tiff: bytes, clock: MediaClock, ports: PortAllocator
) -> None:
    """The endpoint is built on the media thread: its error reaches ``done``, and the other
    calls on the clock carry on."""
    with fax_files(tiff) as files:
        bad = CallMedia(
            ports.open(),
            calling=True,
            config=replace(sender_config(files, PAGES), header_tz="Europe/Zürich"),
            mode=T38Mode(),
            remote=(HOST, 9),
        )
        async with fax_call(tiff, clock, ports, mode=T38Mode()) as call:
            clock.add(bad)
            with pytest.raises(UnicodeEncodeError):
                await asyncio.wait_for(bad.done, GUARD_S)
            assert bad.end_reason is None
            sent, got = await call.outcomes()
            assert_fax_went_through(call, sent, got)
    assert ports.in_use == 0


# Addresses


async def test_packets_from_other_addresses_are_dropped_and_counted(
    tiff: bytes, clock: MediaClock, ports: PortAllocator
) -> None:
    """Somebody else sprays well-formed RTP and UDPTL at the call's port all along."""
    async with fax_call(tiff, clock, ports, mode=T38Mode()) as call:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as stranger:
            stranger.bind((HOST, 0))
            junk = [
                RtpPacket(0, 1, 160, 1234, b"\xff" * 160).encode(),
                udptl.encode_packet(0, b"\x00"),  # a T.30 indicator (CNG) at sequence 0
            ]
            while not call.sender.done.done():
                for datagram in junk:
                    stranger.sendto(datagram, address(call.sender))
                await asyncio.sleep(0.005)
        sent, got = await call.outcomes()
        assert_fax_went_through(call, sent, got)
    assert call.sender.stats.foreign > 100
    udptl_stats = call.sender.stats.udptl
    assert udptl_stats is not None and udptl_stats.resyncs == 0


async def test_learning_the_remote_from_its_first_packet(
    tiff: bytes, clock: MediaClock, ports: PortAllocator
) -> None:
    """Off by default; when on, a call with no remote (a far end behind NAT whose SDP says
    nothing useful) answers wherever the first good packet came from."""
    with fax_files(tiff) as files:
        receiver = CallMedia(
            ports.open(),
            calling=False,
            config=receiver_config(files),
            mode=T38Mode(),
            learn_remote=True,
        )
        sender = CallMedia(
            ports.open(),
            calling=True,
            config=sender_config(files, PAGES),
            mode=T38Mode(),
            remote=address(receiver),
        )
        call = Call(files, sender, receiver)
        clock.add(receiver)
        clock.add(sender)
        sent, got = await call.outcomes()
        assert_fax_went_through(call, sent, got)
    assert receiver.stats.foreign == 0


async def test_a_remote_that_moves_mid_call(
    tiff: bytes, clock: MediaClock, ports: PortAllocator
) -> None:
    """The sender starts towards a dead address; a re-INVITE (set_remote) puts it right, and a
    later T.38 re-INVITE of a call already in T.38 only moves the address (no restart)."""
    with fax_files(tiff) as files, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as hole:
        hole.bind((HOST, 0))
        sender = CallMedia(
            ports.open(),
            calling=True,
            config=sender_config(files, PAGES),
            mode=T38Mode(),
            remote=hole.getsockname(),
        )
        receiver = CallMedia(
            ports.open(), calling=False, config=receiver_config(files), mode=T38Mode()
        )
        receiver.set_remote(*address(sender))
        call = Call(files, sender, receiver)
        clock.add(sender)
        clock.add(receiver)
        while sender.stats.foreign == 0:  # the receiver's packets, not from where we send
            await asyncio.sleep(0.01)
        sender.set_remote(*address(receiver))
        while receiver.stats.packets_in < 100:
            await asyncio.sleep(0.01)
        sender.switch_to_t38(T38Mode(), address(receiver))
        sent, got = await call.outcomes()
        assert_fax_went_through(call, sent, got)
    assert sender.stats.switches == 0
