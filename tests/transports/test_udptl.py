"""UDPTL: the wire format byte for byte, the sender's redundancy within the far end's datagram
limit, and a receiver that gives back every IFP once, in order, through loss and reordering."""

from __future__ import annotations

import contextlib
import random

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from gateway.transports.udptl import (
    MAX_SECONDARIES,
    DatagramTooLargeError,
    Fec,
    FecScheme,
    ReceivedIfp,
    Redundancy,
    Source,
    UdptlError,
    UdptlPacket,
    UdptlReceiver,
    UdptlSender,
    decode_packet,
    encode_packet,
)

# -- the wire format, built by hand from the PER rules -------------------------------------------

KNOWN = [
    pytest.param(
        UdptlPacket(1, b"\x06"),
        "0001  01 06  00 00",
        id="one-octet IFP, no secondaries",
    ),
    pytest.param(
        UdptlPacket(0x1234, b"\x01\x02", Redundancy((b"\xaa", b"\xbb\xcc"))),
        "1234  02 0102  00 02  01 aa  02 bbcc",
        id="two secondaries, newest first",
    ),
    pytest.param(
        UdptlPacket(0xFFFF, bytes(200)),
        "ffff  80c8" + "00" * 200 + "  00 00",
        id="two-octet length from 0x80",
    ),
    pytest.param(
        UdptlPacket(0, bytes(0x3FFF)),
        "0000  bfff" + "00" * 0x3FFF + "  00 00",
        id="largest unfragmented length",
    ),
    pytest.param(
        UdptlPacket(7, b"\x10", Fec(3, (b"\x01\x02", b""))),
        "0007  01 10  80  01 03  02  02 0102  00",
        id="FEC: span as a one-octet INTEGER, then the entries",
    ),
    pytest.param(
        UdptlPacket(8, b"\x10", Fec(200, ())),
        "0008  01 10  80  02 00c8  00",
        id="FEC span needing two octets (two's complement)",
    ),
]


@pytest.mark.parametrize(("packet", "hex_bytes"), KNOWN)
def test_known_packets_encode_and_decode(packet: UdptlPacket, hex_bytes: str) -> None:
    wire = bytes.fromhex(hex_bytes)
    assert encode_packet(packet.seq, packet.primary, packet.recovery) == wire
    assert decode_packet(wire) == packet


def test_an_ifp_of_16k_is_one_fragment_and_an_empty_final_length() -> None:
    ifp = bytes(range(256)) * 64  # 16384 octets
    wire = encode_packet(5, ifp)
    assert wire == b"\x00\x05" + b"\xc1" + ifp + b"\x00" + b"\x00\x00"
    assert decode_packet(wire).primary == ifp


def test_a_longer_ifp_is_a_fragment_then_the_remainder() -> None:
    ifp = bytes(random.Random(1).randbytes(20000))
    wire = encode_packet(5, ifp)
    assert wire[2] == 0xC1
    assert wire[3 + 16384 : 3 + 16384 + 2] == bytes.fromhex("8e20")  # 3616 octets follow
    assert decode_packet(wire).primary == ifp


def test_four_fragments_of_16k_at_most_before_the_next_determinant() -> None:
    ifp = bytes(5 * 16384)
    wire = encode_packet(0, ifp)
    assert wire[2] == 0xC4
    assert wire[3 + 4 * 16384] == 0xC1
    assert decode_packet(wire).primary == ifp


def test_non_canonical_two_octet_lengths_are_accepted() -> None:
    # Aligned PER wants one octet below 0x80; accepting the long form costs nothing.
    assert decode_packet(bytes.fromhex("0001 8001 06 00 00")).primary == b"\x06"


def test_padding_bits_of_the_recovery_choice_are_ignored() -> None:
    assert decode_packet(bytes.fromhex("0001 01 06 7f 00")).recovery == Redundancy()


HOSTILE = [
    pytest.param("", id="empty"),
    pytest.param("00", id="half a sequence number"),
    pytest.param("0001", id="no primary"),
    pytest.param("0001 05 0102", id="primary longer than the datagram"),
    pytest.param("0001 80", id="two-octet length cut short"),
    pytest.param("0001 00 00 00", id="empty primary"),
    pytest.param("0001 01 06", id="no error recovery"),
    pytest.param("0001 01 06 00", id="no secondary count"),
    pytest.param("0001 01 06 00 02 01 aa", id="fewer secondaries than counted"),
    pytest.param("0001 01 06 00 01 00", id="empty secondary"),
    pytest.param("0001 01 06 00 11" + "01aa" * 17, id="17 secondaries"),
    pytest.param("0001 01 06 00 c1", id="fragmented secondary count"),
    pytest.param("0001 c0 06 00 00", id="fragment of zero 16K blocks"),
    pytest.param("0001 c5 06 00 00", id="fragment of five 16K blocks"),
    pytest.param("0001 01 06 00 00 ff", id="trailing octet"),
    pytest.param("0001 01 06 80", id="FEC without span"),
    pytest.param("0001 01 06 80 00 00", id="FEC span of zero octets"),
    pytest.param("0001 01 06 80 03 000001 00", id="FEC span of three octets"),
    pytest.param("0001 01 06 80 01 ff 00", id="negative FEC span"),
    pytest.param("0001 01 06 80 01 03", id="FEC without entry count"),
    pytest.param("0001 01 06 80 01 03 11" + "00" * 17, id="17 FEC entries"),
    pytest.param("0001 01 06 80 01 03 01 05 01", id="FEC entry cut short"),
]


@pytest.mark.parametrize("hex_bytes", HOSTILE)
def test_malformed_datagrams_raise_udptl_error(hex_bytes: str) -> None:
    with pytest.raises(UdptlError):
        decode_packet(bytes.fromhex(hex_bytes))


@pytest.mark.parametrize(
    ("seq", "primary", "recovery"),
    [
        (-1, b"\x06", Redundancy()),
        (0x10000, b"\x06", Redundancy()),
        (0, b"", Redundancy()),
        (0, b"\x06", Redundancy((b"",))),
        (0, b"\x06", Redundancy((b"\x01",) * (MAX_SECONDARIES + 1))),
        (0, b"\x06", Fec(-1, ())),
        (0, b"\x06", Fec(0x8000, ())),
        (0, b"\x06", Fec(3, (b"",) * 17)),
    ],
)
def test_what_cannot_be_encoded_is_refused(
    seq: int, primary: bytes, recovery: Redundancy | Fec
) -> None:
    with pytest.raises(UdptlError):
        encode_packet(seq, primary, recovery)


ifps = st.binary(min_size=1, max_size=600)
packets = st.builds(
    UdptlPacket,
    st.integers(0, 0xFFFF),
    st.one_of(ifps, st.binary(min_size=16380, max_size=16390)),
    st.one_of(
        st.builds(Redundancy, st.lists(ifps, max_size=MAX_SECONDARIES).map(tuple)),
        st.builds(
            Fec,
            st.integers(0, 0x7FFF),
            st.lists(st.binary(max_size=600), max_size=16).map(tuple),
        ),
    ),
)


@given(packets)
@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
def test_every_packet_survives_encode_then_decode(packet: UdptlPacket) -> None:
    assert decode_packet(encode_packet(packet.seq, packet.primary, packet.recovery)) == packet


@given(st.binary(max_size=300))
@settings(max_examples=2000)
@example(b"\x00\x01\xc1")
@example(b"\x00\x01\x01\x06\x80\x02\x80\x00\x00")
def test_decoding_arbitrary_bytes_raises_nothing_but_udptl_error(data: bytes) -> None:
    try:
        packet = decode_packet(data)
    except UdptlError:
        return
    # Whatever decodes is a packet that encodes back to something decoding the same.
    again = encode_packet(packet.seq, packet.primary, packet.recovery)
    assert decode_packet(again) == packet


@given(packets, st.data())
@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
def test_damaged_packets_raise_nothing_but_udptl_error(
    packet: UdptlPacket, data: st.DataObject
) -> None:
    wire = bytearray(encode_packet(packet.seq, packet.primary, packet.recovery))
    for _ in range(data.draw(st.integers(1, 4))):
        wire[data.draw(st.integers(0, len(wire) - 1))] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(wire)))
    with contextlib.suppress(UdptlError):
        decode_packet(bytes(wire[:cut]))


# -- the sender ----------------------------------------------------------------------------------


def sent(sender: UdptlSender, stream: list[bytes]) -> list[UdptlPacket]:
    return [decode_packet(sender.build(ifp)) for ifp in stream]


def test_each_packet_carries_the_previous_ifps_newest_first() -> None:
    out = sent(UdptlSender(400, redundancy=3), [b"a", b"b", b"c", b"d", b"e"])
    assert [p.seq for p in out] == [0, 1, 2, 3, 4]
    assert [p.recovery for p in out] == [
        Redundancy(()),  # nothing before the first IFP: no invented secondaries
        Redundancy((b"a",)),
        Redundancy((b"b", b"a")),
        Redundancy((b"c", b"b", b"a")),
        Redundancy((b"d", b"c", b"b")),
    ]


def test_redundancy_zero_sends_primaries_only() -> None:
    out = sent(UdptlSender(400, redundancy=0), [b"a", b"b", b"c"])
    assert {p.recovery for p in out} == {Redundancy(())}


def test_the_oldest_secondaries_are_dropped_to_fit_the_far_ends_datagram() -> None:
    sender = UdptlSender(60, redundancy=3)
    for ifp in (bytes(20), bytes(20), bytes(20)):
        sender.build(ifp)
    packet = decode_packet(sender.build(bytes(10)))
    # 2 seq + 11 primary + 2 + 21 + 21 = 57; the third secondary would make 78.
    assert packet.recovery == Redundancy((bytes(20), bytes(20)))


def test_an_ifp_too_large_alone_is_refused_and_uses_no_sequence_number() -> None:
    sender = UdptlSender(72, redundancy=3)
    sender.build(b"\x01")
    with pytest.raises(DatagramTooLargeError, match="at most 72"):
        sender.build(bytes(68))  # 2 + 69 + 2 = 73
    assert sender.next_seq == 1
    assert decode_packet(sender.build(bytes(67))).seq == 1  # 72 octets exactly


@given(
    max_datagram=st.integers(20, 1400),
    depth=st.integers(0, MAX_SECONDARIES),
    sizes=st.lists(st.integers(1, 600), min_size=1, max_size=40),
)
@settings(max_examples=300)
def test_no_datagram_exceeds_the_far_ends_maximum(
    max_datagram: int, depth: int, sizes: list[int]
) -> None:
    sender = UdptlSender(max_datagram, redundancy=depth)
    history: list[bytes] = []
    for n, size in enumerate(sizes):
        ifp = bytes([n % 256]) * size
        try:
            wire = sender.build(ifp)
        except DatagramTooLargeError:
            assert size + 3 + 2 + (size >= 0x80) > max_datagram
            continue
        assert len(wire) <= max_datagram
        packet = decode_packet(wire)
        assert packet.primary == ifp
        secondaries = packet.recovery.secondaries  # type: ignore[union-attr]
        assert len(secondaries) <= depth
        assert list(secondaries) == history[::-1][: len(secondaries)]
        history.append(ifp)


def test_sequence_numbers_wrap_after_65535() -> None:
    out = sent(UdptlSender(400, first_seq=65534), [b"a", b"b", b"c"])
    assert [p.seq for p in out] == [65534, 65535, 0]
    assert out[2].recovery == Redundancy((b"b", b"a"))


def test_fec_parity_is_the_xor_of_interleaved_ifps_padded_to_the_longest() -> None:
    sender = UdptlSender(400, fec=FecScheme(span=2, entries=2))
    stream = [b"\x01", b"\x02\x20", b"\x04", b"\x08\x80\x01"]
    out = sent(sender, [*stream, b"\x10"])
    assert [p.recovery for p in out[:2]] == [Fec(0, ()), Fec(0, ())]  # winding up
    # With two IFPs behind it, one group of span 2 (stride 1): seqs 0 and 1.
    assert out[2].recovery == Fec(2, (b"\x03\x20",))
    # Then two groups of stride 2: entry 0 is seqs 0 and 2, entry 1 seqs 1 and 3.
    assert out[4].recovery == Fec(2, (b"\x05", b"\x0a\xa0\x01"))


def test_fec_entries_are_dropped_to_fit_the_far_ends_datagram() -> None:
    sender = UdptlSender(40, fec=FecScheme(span=1, entries=3))
    for _ in range(3):
        sender.build(bytes(10))
    wire = sender.build(bytes(10))
    assert len(wire) <= 40
    packet = decode_packet(wire)
    assert isinstance(packet.recovery, Fec) and len(packet.recovery.entries) == 2


@pytest.mark.parametrize(("span", "entries"), [(0, 3), (3, 0), (4, 4)])
def test_fec_schemes_the_receivers_ring_cannot_hold_are_refused(span: int, entries: int) -> None:
    with pytest.raises(UdptlError):
        FecScheme(span, entries)


# -- the receiver --------------------------------------------------------------------------------


def stream_of(n: int, seed: int = 0) -> list[bytes]:
    rng = random.Random(seed)
    return [bytes([i % 256]) + rng.randbytes(rng.randint(0, 30)) for i in range(n)]


def receive_all(receiver: UdptlReceiver, wires: list[bytes]) -> list[ReceivedIfp]:
    out: list[ReceivedIfp] = []
    for wire in wires:
        out += receiver.receive(decode_packet(wire))
    return out


def test_a_clean_stream_is_delivered_as_primaries() -> None:
    stream = stream_of(10)
    receiver = UdptlReceiver()
    sender = UdptlSender(400)
    out = receive_all(receiver, [sender.build(ifp) for ifp in stream])
    assert [(r.seq, r.ifp, r.source) for r in out] == [
        (n, ifp, Source.PRIMARY) for n, ifp in enumerate(stream)
    ]
    assert receiver.stats.delivered == 10
    assert receiver.stats.lost == 0


def test_lost_packets_come_back_from_the_next_packets_secondaries() -> None:
    stream = stream_of(8)
    sender = UdptlSender(400, redundancy=3)
    wires = [sender.build(ifp) for ifp in stream]
    receiver = UdptlReceiver()
    out = receive_all(receiver, [w for n, w in enumerate(wires) if n not in (2, 3, 4)])
    assert [r.ifp for r in out] == stream
    assert [r.source for r in out][2:5] == [Source.REDUNDANCY] * 3
    assert receiver.stats.recovered == 3
    assert receiver.stats.lost == 0


def test_a_gap_longer_than_the_redundancy_is_skipped_and_counted() -> None:
    stream = stream_of(10)
    sender = UdptlSender(400, redundancy=2)
    wires = [sender.build(ifp) for ifp in stream]
    receiver = UdptlReceiver()
    out = receive_all(receiver, [w for n, w in enumerate(wires) if n not in (3, 4, 5, 6)])
    assert [r.seq for r in out] == [0, 1, 2, 5, 6, 7, 8, 9]
    assert receiver.stats.lost == 2


@given(
    depth=st.integers(1, 5),
    n=st.integers(1, 80),
    seed=st.integers(0, 2**32),
    loss=st.floats(0.0, 0.9),
    first_seq=st.sampled_from([0, 1000, 65500, 65535]),
)
@settings(max_examples=300)
def test_every_ifp_is_recovered_when_no_more_than_depth_consecutive_packets_are_lost(
    depth: int, n: int, seed: int, loss: float, first_seq: int
) -> None:
    rng = random.Random(seed)
    stream = stream_of(n, seed)
    sender = UdptlSender(1400, redundancy=depth, first_seq=first_seq)
    wires = [sender.build(ifp) for ifp in stream]
    arriving, run = [], 0
    for n_, wire in enumerate(wires):
        if n_ < len(wires) - 1 and run < depth and rng.random() < loss:
            run += 1  # lost
        else:
            run = 0
            arriving.append(wire)
    receiver = UdptlReceiver()
    out = receive_all(receiver, arriving)
    assert [r.ifp for r in out] == stream
    assert [r.seq for r in out] == [(first_seq + k) & 0xFFFF for k in range(n)]
    assert receiver.stats.lost == 0


@given(st.integers(0, 2**32))
@settings(max_examples=100)
def test_every_ifp_is_delivered_once_in_order_through_duplicates_and_reordering(seed: int) -> None:
    rng = random.Random(seed)
    stream = stream_of(60, seed)
    sender = UdptlSender(1400, redundancy=3)
    wires = [sender.build(ifp) for ifp in stream]
    arriving = []
    for wire in wires:
        arriving.append(wire)
        if rng.random() < 0.3:
            arriving.append(wire)  # FreeSWITCH sends some packets several times
    for i in range(0, len(arriving) - 1):
        if rng.random() < 0.3:  # a neighbour overtakes
            arriving[i], arriving[i + 1] = arriving[i + 1], arriving[i]
    arriving.append(wires[-1])  # nothing is lost for good: the last packet arrives
    receiver = UdptlReceiver()
    out = receive_all(receiver, arriving)
    seqs = [r.seq for r in out]
    assert seqs == sorted(set(seqs))
    assert [r.ifp for r in out] == stream


def test_a_packet_for_an_ifp_already_delivered_is_a_duplicate() -> None:
    sender = UdptlSender(400)
    wires = [sender.build(ifp) for ifp in (b"a", b"b", b"c")]
    receiver = UdptlReceiver()
    receive_all(receiver, wires)
    assert receiver.receive(decode_packet(wires[1])) == []
    assert receiver.stats.duplicates == 1
    assert receiver.stats.late == 0


def test_a_packet_arriving_after_its_number_was_given_up_is_late() -> None:
    sender = UdptlSender(400, redundancy=0)
    wires = [sender.build(ifp) for ifp in (b"a", b"b", b"c")]
    receiver = UdptlReceiver()
    receive_all(receiver, [wires[0], wires[2]])
    assert receiver.receive(decode_packet(wires[1])) == []
    assert receiver.stats.late == 1
    assert receiver.stats.lost == 1


def test_hold_waits_for_a_reordered_packet_without_redundancy() -> None:
    sender = UdptlSender(400, redundancy=0)
    wires = [sender.build(ifp) for ifp in (b"a", b"b", b"c", b"d")]
    receiver = UdptlReceiver(hold=1)
    assert [r.ifp for r in receiver.receive(decode_packet(wires[0]))] == [b"a"]
    assert receiver.receive(decode_packet(wires[2])) == []  # b may still come
    assert [r.ifp for r in receiver.receive(decode_packet(wires[1]))] == [b"b", b"c"]
    assert [r.ifp for r in receiver.receive(decode_packet(wires[3]))] == [b"d"]
    assert receiver.stats.lost == 0


def test_hold_gives_up_on_a_gap_after_that_many_packets_and_flush_empties_it() -> None:
    sender = UdptlSender(400, redundancy=0)
    wires = [sender.build(ifp) for ifp in (b"a", b"b", b"c", b"d", b"e")]
    receiver = UdptlReceiver(hold=2)
    out = receive_all(receiver, [wires[0], wires[2], wires[3]])
    assert [r.ifp for r in out] == [b"a"]
    assert [r.ifp for r in receiver.receive(decode_packet(wires[4]))] == [b"c", b"d", b"e"]
    assert receiver.stats.lost == 1
    receiver = UdptlReceiver(hold=2)
    receive_all(receiver, [wires[0], wires[2]])
    assert [r.ifp for r in receiver.flush()] == [b"c"]


def test_the_first_packets_secondaries_are_delivered_before_it() -> None:
    sender = UdptlSender(400, redundancy=3)
    wires = [sender.build(ifp) for ifp in (b"a", b"b", b"c", b"d")]
    receiver = UdptlReceiver()
    out = receiver.receive(decode_packet(wires[3]))  # the first three were lost
    assert [(r.seq, r.ifp) for r in out] == [(0, b"a"), (1, b"b"), (2, b"c"), (3, b"d")]


def test_numbering_wraps_from_65535_to_0_in_order() -> None:
    stream = stream_of(20)
    sender = UdptlSender(400, redundancy=1, first_seq=65530)
    wires = [sender.build(ifp) for ifp in stream]
    receiver = UdptlReceiver()
    out = receive_all(receiver, [w for n, w in enumerate(wires) if n != 6])  # seq 0 lost
    assert [r.seq for r in out] == [*range(65530, 65536), *range(14)]
    assert out[6].source is Source.REDUNDANCY
    assert [r.ifp for r in out] == stream


def test_a_packet_just_before_the_wrap_is_late_not_new() -> None:
    receiver = UdptlReceiver()
    receiver.receive(UdptlPacket(2, b"a"))
    assert receiver.receive(UdptlPacket(65535, b"z")) == []
    assert receiver.stats.late == 1


def test_a_jump_beyond_2000_is_a_new_numbering_not_a_loss() -> None:
    receiver = UdptlReceiver()
    receiver.receive(UdptlPacket(10, b"a"))
    out = receiver.receive(UdptlPacket(40000, b"b"))
    assert [(r.seq, r.ifp) for r in out] == [(40000, b"b")]
    assert receiver.stats.resyncs == 1
    assert receiver.stats.lost == 0
    assert [r.seq for r in receiver.receive(UdptlPacket(3, b"c"))] == [3]  # a restart at 0
    assert receiver.stats.resyncs == 2


def test_a_jump_within_2000_counts_the_numbers_skipped_as_lost() -> None:
    receiver = UdptlReceiver()
    receiver.receive(UdptlPacket(10, b"a"))
    assert [r.seq for r in receiver.receive(UdptlPacket(1010, b"b"))] == [1010]
    assert receiver.stats.lost == 999


def fec_wires(stream: list[bytes], scheme: FecScheme) -> list[bytes]:
    sender = UdptlSender(1400, fec=scheme)
    return [sender.build(ifp) for ifp in stream]


def test_a_single_loss_is_rebuilt_from_fec_parity() -> None:
    stream = [bytes([n]) * 12 for n in range(20)]
    wires = fec_wires(stream, FecScheme(3, 3))
    receiver = UdptlReceiver()
    out = receive_all(receiver, [w for n, w in enumerate(wires) if n != 12])
    assert [r.ifp for r in out] == stream
    assert out[12].source is Source.FEC
    assert receiver.stats.repaired == 1
    assert receiver.stats.lost == 0


@given(
    span=st.integers(1, 5),
    entries=st.integers(1, 3),
    lost=st.integers(15, 28),
    seed=st.integers(0, 2**32),
)
@settings(max_examples=200)
def test_any_single_loss_after_the_wind_up_is_rebuilt_padded_to_its_groups_longest(
    span: int, entries: int, lost: int, seed: int
) -> None:
    stream = stream_of(30, seed)
    wires = fec_wires(stream, FecScheme(span, entries))
    receiver = UdptlReceiver()
    out = receive_all(receiver, [w for n, w in enumerate(wires) if n != lost])
    assert [r.seq for r in out] == list(range(30))
    rebuilt = out[lost]
    assert rebuilt.source is Source.FEC
    # Parity carries no lengths: the IFP comes back with zeros up to its group's longest.
    assert rebuilt.ifp[: len(stream[lost])] == stream[lost]
    assert set(rebuilt.ifp[len(stream[lost]) :]) <= {0}
    assert all(r.ifp == stream[r.seq] for r in out if r.seq != lost)


def test_two_losses_in_one_parity_group_cannot_be_rebuilt() -> None:
    stream = [bytes([n]) * 4 for n in range(20)]
    wires = fec_wires(stream, FecScheme(3, 1))  # groups of three consecutive IFPs
    receiver = UdptlReceiver()
    out = receive_all(receiver, [w for n, w in enumerate(wires) if n not in (10, 11)])
    assert 10 not in [r.seq for r in out] and 11 not in [r.seq for r in out]
    assert receiver.stats.lost == 2


def test_consecutive_losses_in_different_groups_are_rebuilt() -> None:
    stream = [bytes([n]) * 4 for n in range(20)]
    wires = fec_wires(stream, FecScheme(3, 3))  # stride 3: neighbours in different groups
    receiver = UdptlReceiver()
    out = receive_all(receiver, [w for n, w in enumerate(wires) if n not in (10, 11, 12)])
    assert [r.ifp for r in out] == stream
    assert receiver.stats.repaired == 3


@pytest.mark.parametrize("hold", [-1, 16])
def test_hold_must_fit_the_ring(hold: int) -> None:
    with pytest.raises(UdptlError):
        UdptlReceiver(hold=hold)


def test_a_duplicate_waiting_in_the_hold_is_counted_and_delivered_once() -> None:
    receiver = UdptlReceiver(hold=2)
    receive_all(receiver, [encode_packet(0, b"a"), encode_packet(2, b"c"), encode_packet(2, b"c")])
    assert receiver.stats.duplicates == 1
    assert [(r.seq, r.ifp) for r in receiver.flush()] == [(2, b"c")]


def test_parity_that_cannot_describe_a_group_in_the_ring_is_ignored() -> None:
    receiver = UdptlReceiver()
    receiver.receive(UdptlPacket(0, b"a"))
    out = receiver.receive(UdptlPacket(2, b"c", Fec(100, (b"\x01",))))
    assert [r.seq for r in out] == [2]
    assert receiver.stats.lost == 1


@pytest.mark.parametrize(
    "settings_", [{"redundancy": -1}, {"redundancy": MAX_SECONDARIES + 1}, {"first_seq": 65536}]
)
def test_sender_settings_out_of_range_are_refused(settings_: dict[str, int]) -> None:
    with pytest.raises(UdptlError):
        UdptlSender(400, **settings_)  # type: ignore[arg-type]


def test_an_empty_ifp_is_refused_by_the_sender() -> None:
    with pytest.raises(UdptlError):
        UdptlSender(400).build(b"")
