"""T.38 endpoints (spandsp's T.38 terminal) back to back, exchanging IFPs in-process."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from gateway.transports.base import FailureClass
from gateway.transports.media import OutgoingIfp, T38Endpoint
from gateway.transports.spandsp import T38Settings, T38Terminal
from tests.transports.backtoback import (
    CALLEE,
    CALLER,
    TICKS_PER_SECOND,
    IfpLink,
    UdptlLink,
    direct_link,
    fax_files,
    receiver_config,
    run_t38,
    sender_config,
    t38_pair,
)
from tests.transports.conftest import g4_tiff

PAGES = 3


@pytest.fixture(scope="module")
def tiff() -> bytes:
    return g4_tiff(PAGES)


def counting(link: IfpLink, counts: list[int]) -> IfpLink:
    def carry(sent: list[OutgoingIfp]) -> list[tuple[int, bytes]]:
        counts.extend(packet.count for packet in sent)
        return link(sent)

    return carry


def test_multi_page_fax_over_t38(tiff: bytes) -> None:
    counts: list[int] = []
    with fax_files(tiff) as files:
        with (
            T38Endpoint(calling=True, config=sender_config(files, PAGES)) as sender,
            T38Endpoint(calling=False, config=receiver_config(files)) as receiver,
        ):
            ticks = run_t38(sender, receiver, counting(direct_link(), counts), direct_link())
            sent, got = sender.outcome(), receiver.outcome()
        image = Image.open(io.BytesIO(files.rx.read_bytes()))
        assert getattr(image, "n_frames", 1) == PAGES

    assert sent.success and got.success, (sent, got)
    assert sent.completion == got.completion == 0
    assert sent.pages_sent == got.pages_received == PAGES
    assert sent.bit_rate == got.bit_rate == 14400  # V.17 over a perfect network
    assert sent.ecm and got.ecm
    assert sent.bad_rows == got.bad_rows == 0
    assert sent.remote_ident == CALLEE  # their CSI
    assert got.remote_ident == CALLER  # our TSI
    assert 10 < sent.seconds < 30 * PAGES
    assert ticks < 30 * PAGES * TICKS_PER_SECOND

    result = sent.tx_result()
    assert result.success and result.failure_class is None and result.error_message is None
    assert (result.pages_sent, result.fax_speed, result.fax_error_correction) == (
        PAGES,
        14400,
        True,
    )
    assert result.fax_receiver_id == CALLEE
    assert result.line_seconds == sent.seconds

    # spandsp asks for indicators and ends of data three times, image data once.
    assert set(counts) == {1, 3}
    assert counts.count(1) > counts.count(3)


def test_far_end_max_bit_rate_limits_the_modems(tiff: bytes) -> None:
    """0.0.6 stores T38MaxBitRate without acting on it; the endpoint drops V.17 itself."""
    settings = T38Settings(max_bit_rate=9600)
    with t38_pair(tiff, PAGES, settings=settings) as (_files, a, b):
        run_t38(a, b, direct_link(), direct_link())
        sent = a.outcome()
    assert sent.success, sent
    assert sent.bit_rate == 9600


def test_without_ecm(tiff: bytes) -> None:
    with t38_pair(tiff, PAGES, ecm=False) as (_files, a, b):
        run_t38(a, b, direct_link(), direct_link())
        sent, got = a.outcome(), b.outcome()
    assert sent.success and got.success, (sent, got)
    assert sent.ecm is False and got.ecm is False
    assert got.pages_received == PAGES


def test_far_end_hangs_up_after_the_first_page(tiff: bytes) -> None:
    with t38_pair(tiff, PAGES) as (_files, a, b):
        link_ab, link_ba = direct_link(), direct_link()
        for _ in range(300 * TICKS_PER_SECOND):
            a.tick()
            b.tick()
            for seq, ifp in link_ab(a.take_outgoing()):
                b.receive_ifp(seq, ifp)
            for seq, ifp in link_ba(b.take_outgoing()):
                a.receive_ifp(seq, ifp)
            if b.pages_confirmed >= 1:
                break
        b.hangup()  # BYE: the far end is gone
        a.hangup()  # and we hear of it
        sent = a.outcome()
    assert not sent.success
    assert sent.completion == 49  # T30_ERR_CALLDROPPED
    assert sent.failure_class is FailureClass.LINE
    result = sent.tx_result()
    assert result.result_text == "The call dropped prematurely"
    assert 0 <= result.pages_sent <= 1


def test_silence_from_the_far_end_fails_truthfully_and_ends(tiff: bytes) -> None:
    """No answering T.38 machine at all: T.30's own timers end the call, no hang."""
    with (
        fax_files(tiff) as files,
        T38Endpoint(calling=True, config=sender_config(files, PAGES)) as a,
    ):
        ticks = 0
        while not a.done and ticks < 600 * TICKS_PER_SECOND:
            a.tick()
            a.take_outgoing()
            ticks += 1
        assert a.done
        sent = a.outcome()
    assert not sent.success
    assert sent.failure_class is FailureClass.NO_ANSWER  # T1 expired: nobody spoke T.30
    assert (sent.pages_sent, sent.bit_rate, sent.ecm) == (0, 0, False)
    assert a.silent_seconds == pytest.approx(ticks / TICKS_PER_SECOND)


def test_outcome_waits_for_phase_e(tiff: bytes) -> None:
    with (
        fax_files(tiff) as files,
        T38Endpoint(calling=True, config=sender_config(files, PAGES)) as a,
    ):
        a.tick()
        with pytest.raises(RuntimeError):
            a.outcome()
        a.hangup()
        assert a.done
        assert a.outcome().completion == 49
    with pytest.raises(RuntimeError):  # closed: no use of freed memory
        a.tick()
    with pytest.raises(RuntimeError):
        a.receive_ifp(1, b"\x00")


def test_garbage_ifps_are_counted_not_fatal(tiff: bytes) -> None:
    with fax_files(tiff) as files, T38Endpoint(calling=False, config=receiver_config(files)) as b:
        for seq, junk in enumerate([b"", b"\xff" * 7, b"\x00\x00\x00\x00\x00\x00"]):
            b.receive_ifp(seq, junk)
            b.tick()
        assert b.received_ifps == 3
        assert b.rejected_ifps >= 2
        assert not b.done


def test_an_error_in_the_packet_callback_surfaces_in_python() -> None:
    def broken(_ifp: bytes, _count: int) -> None:
        raise OSError("socket gone")

    with T38Terminal(calling=True, on_packet=broken) as terminal:
        with pytest.raises(OSError, match="socket gone"):
            for _ in range(10 * TICKS_PER_SECOND):
                terminal.send_timeout(160)
        # spandsp saw -1 from the handler and gave the call up instead of carrying on.
        for _ in range(TICKS_PER_SECOND):
            terminal.send_timeout(160)
        assert terminal.finished


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_udptl_redundancy_rides_over_five_percent_loss(tiff: bytes, seed: int) -> None:
    """5 % of the datagrams lost each way: redundancy 3 gives lost IFPs back, and spandsp's
    repeat count (3 for indicators and ends of data) covers the last packet of a burst, whose
    copies would otherwise ride only on a packet that comes after the far end timed out."""
    ab = UdptlLink(redundancy=3, loss=0.05, seed=2 * seed)
    ba = UdptlLink(redundancy=3, loss=0.05, seed=2 * seed + 1)
    with t38_pair(tiff, PAGES) as (_files, a, b):
        ticks = run_t38(a, b, ab, ba)
        sent, got = a.outcome(), b.outcome()
    assert ab.dropped > 0 and ba.dropped > 0
    assert ab.receiver.stats.recovered > 0
    assert sent.success and got.success, (sent, got)
    assert sent.pages_sent == got.pages_received == PAGES
    assert sent.bit_rate == 14400 and sent.ecm
    assert ticks < 90 * TICKS_PER_SECOND


def test_without_redundancy_heavy_loss_fails_truthfully(tiff: bytes) -> None:
    """20 % loss and no redundancy: T.30's control frames (1 octet per IFP at V.21 pacing) do
    not get through; the call fails with T.30's own reason, on its own, long before the
    10-minute backstop."""
    ab = UdptlLink(redundancy=0, loss=0.2, seed=11)
    ba = UdptlLink(redundancy=0, loss=0.2, seed=12)
    with t38_pair(tiff, PAGES) as (_files, a, b):
        ticks = run_t38(a, b, ab, ba, max_seconds=600)
        sent, got = a.outcome(), b.outcome()
    assert ab.receiver.stats.recovered == 0
    assert ab.receiver.stats.lost > 0
    assert ticks < 120 * TICKS_PER_SECOND
    assert not sent.success
    assert sent.failure_class in (FailureClass.LINE, FailureClass.NO_ANSWER)
    assert sent.completion != 0 and sent.result_text != "OK"
    assert got.pages_received < PAGES
    result = sent.tx_result()
    assert not result.success and result.error_message == sent.result_text
    assert result.fax_speed == (sent.bit_rate if sent.pages_sent else 0)
