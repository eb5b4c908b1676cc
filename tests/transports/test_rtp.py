"""RTP packets (RFC 3550) and the media port allocator."""

from __future__ import annotations

import socket
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.errors import TransmitError
from gateway.transports.base import FailureClass
from gateway.transports.rtp import (
    PortAllocator,
    PortsExhaustedError,
    RtpError,
    RtpPacket,
    media_address,
    seq_distance,
)

HOST = "127.0.0.1"


def header(
    *, padding: bool = False, extension: bool = False, csrcs: int = 0, marker: bool = False
) -> bytes:
    first = 0x80 | (0x20 if padding else 0) | (0x10 if extension else 0) | csrcs
    return struct.pack("!BBHII", first, (0x80 if marker else 0) | 8, 513, 0xDEADBEEF, 42)


# Packets


def test_a_packet_survives_encoding_and_parsing() -> None:
    packet = RtpPacket(
        payload_type=0, seq=65535, timestamp=4_294_967_295, ssrc=7, payload=b"\xff" * 160
    )
    marked = RtpPacket(8, 0, 0, 0xFFFFFFFF, b"\xd5" * 160, marker=True)
    for original in (packet, marked):
        wire = original.encode()
        assert len(wire) == 12 + 160
        assert RtpPacket.parse(wire) == original


def test_what_we_send_is_a_plain_header() -> None:
    wire = RtpPacket(0, 1, 2, 3, b"x", marker=True).encode()
    assert wire[:2] == b"\x80\x80"  # version 2, no padding/extension/CSRC; marker, PT 0


def test_csrc_list_extension_and_padding_are_skipped() -> None:
    csrcs = struct.pack("!III", 1, 2, 3)
    extension = struct.pack("!HH", 0xBEDE, 2) + b"\x01" * 8  # profile, 2 words
    padding = b"\x00\x00\x03"  # three octets, the last one counting them
    wire = header(padding=True, extension=True, csrcs=3, marker=True)
    wire += csrcs + extension + b"payload" + padding
    packet = RtpPacket.parse(wire)
    assert packet.payload == b"payload"
    assert (packet.payload_type, packet.seq, packet.timestamp, packet.ssrc, packet.marker) == (
        8,
        513,
        0xDEADBEEF,
        42,
        True,
    )


def test_an_empty_payload_is_a_packet() -> None:
    assert RtpPacket.parse(header()).payload == b""


@pytest.mark.parametrize(
    "wire",
    [
        pytest.param(b"", id="empty"),
        pytest.param(header()[:11], id="short-header"),
        pytest.param(b"\x40" + header()[1:], id="version-1"),
        pytest.param(header(csrcs=2) + b"\x00" * 4, id="csrc-list-overruns"),
        pytest.param(header(extension=True) + b"\xbe\xde", id="extension-header-truncated"),
        pytest.param(
            header(extension=True) + b"\xbe\xde\x00\x04" + b"\x00" * 8, id="extension-overruns"
        ),
        pytest.param(header(padding=True) + b"ab\x00", id="padding-of-zero"),
        pytest.param(header(padding=True) + b"ab\x40", id="padding-overruns"),
    ],
)
def test_what_is_not_rtp_is_one_error(wire: bytes) -> None:
    with pytest.raises(RtpError):
        RtpPacket.parse(wire)


@given(st.binary(max_size=120))
def test_parsing_is_total(wire: bytes) -> None:
    try:
        packet = RtpPacket.parse(wire)
    except RtpError:
        return
    assert len(packet.payload) <= len(wire) - 12


@pytest.mark.parametrize(
    "packet",
    [
        RtpPacket(128, 0, 0, 0, b""),
        RtpPacket(0, 65536, 0, 0, b""),
        RtpPacket(0, 0, 1 << 32, 0, b""),
        RtpPacket(0, 0, 0, -1, b""),
    ],
)
def test_fields_out_of_range_are_refused(packet: RtpPacket) -> None:
    with pytest.raises(RtpError):
        packet.encode()


def test_sequence_numbers_compare_across_the_wrap() -> None:
    assert seq_distance(2, 65534) == 4
    assert seq_distance(65534, 2) == -4
    assert seq_distance(100, 100) == 0


def test_media_addresses_are_ip_literals_in_canonical_form() -> None:
    assert media_address("127.0.0.1", 4000) == ("127.0.0.1", 4000)
    assert media_address("2001:DB8:0:0::1", 4000) == ("2001:db8::1", 4000)
    for host, port in (("pbx.example.com", 4000), ("127.0.0.1", 0), ("127.0.0.1", 70000)):
        with pytest.raises(ValueError):
            media_address(host, port)


# Ports


def test_ports_are_even_within_the_range_and_bound_non_blocking() -> None:
    pool = PortAllocator(HOST, 41001, 41010)  # pairs 41002/3 .. 41008/9: 41010 has no RTCP
    assert pool.capacity == 4
    opened = [pool.open() for _ in range(4)]
    try:
        assert sorted(port.port for port in opened) == [41002, 41004, 41006, 41008]
        for port in opened:
            assert port.socket.getsockname() == (HOST, port.port)
            assert port.socket.getblocking() is False
            assert port.socket.type == socket.SOCK_DGRAM
        assert pool.in_use == 4
    finally:
        for port in opened:
            port.close()
    assert pool.in_use == 0


def test_an_exhausted_range_refuses_with_a_line_failure() -> None:
    pool = PortAllocator(HOST, 41020, 41023)
    with pool.open(), pool.open(), pytest.raises(PortsExhaustedError) as refused:
        pool.open()
    assert isinstance(refused.value, TransmitError)
    assert refused.value.failure_class is FailureClass.LINE
    assert "41020-41023" in str(refused.value)


def test_a_released_port_is_the_last_to_be_reused() -> None:
    """Round robin: packets still in flight to an ended call do not land in the next one."""
    pool = PortAllocator(HOST, 41030, 41035)
    first = pool.open()
    first.close()
    first.close()  # idempotent
    assert first.closed and pool.in_use == 0
    with pool.open() as second, pool.open() as third:
        assert {second.port, third.port} == {41032, 41034}
    with pool.open() as fourth:
        assert fourth.port == 41030


def test_ports_held_by_other_programs_are_skipped() -> None:
    pool = PortAllocator(HOST, 41040, 41043)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as squatter:
        squatter.bind((HOST, 41040))
        with pool.open() as port:
            assert port.port == 41042
            with pytest.raises(PortsExhaustedError):
                pool.open()


@pytest.mark.parametrize("low, high", [(0, 100), (41000, 40000), (41001, 41002), (41000, 41000)])
def test_a_range_without_a_port_pair_is_a_configuration_error(low: int, high: int) -> None:
    with pytest.raises(ValueError):
        PortAllocator(HOST, low, high)
