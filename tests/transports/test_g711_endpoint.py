"""G.711 fax endpoints back to back: spandsp's modems through PCMU/PCMA octets, in-process."""

from __future__ import annotations

import ctypes

import pytest

from gateway.transports.base import FailureClass
from gateway.transports.g711 import G711
from gateway.transports.spandsp import G711Law, Tone
from tests.transports.backtoback import CALLEE, CALLER, audio_pair, run_audio
from tests.transports.conftest import g4_tiff

PAGES = 2


@pytest.fixture(scope="module")
def tiff() -> bytes:
    return g4_tiff(PAGES)


@pytest.mark.parametrize("law", [G711Law.ULAW, G711Law.ALAW], ids=["PCMU", "PCMA"])
def test_multi_page_fax_over_g711(tiff: bytes, law: G711Law) -> None:
    listen = ([Tone.FAX_CED_OR_PREAMBLE], [Tone.FAX_CNG])
    with audio_pair(tiff, PAGES, laws=(law, law), listen=listen) as (_files, a, b):
        assert len(a.transmit_frame()) == 160  # one 20 ms payload, one octet per sample
        run_audio(a, b)
        sent, got = a.outcome(), b.outcome()
        heard_by_caller = {tone for _, tone in a.tones_heard}
        heard_by_callee = [tone for _, tone in b.tones_heard]

    assert sent.success and got.success, (sent, got)
    assert sent.pages_sent == got.pages_received == PAGES
    assert sent.bit_rate == 14400 and sent.ecm
    assert (sent.remote_ident, got.remote_ident) == (CALLEE, CALLER)
    assert sent.tx_result().fax_speed == 14400
    # What a switch to T.38 is decided on: the callee's CED and V.21 preamble, the caller's CNG.
    assert heard_by_caller == {Tone.FAX_CED, Tone.FAX_PREAMBLE}
    assert heard_by_callee[:1] == [Tone.FAX_CNG]


def test_each_frame_decodes_in_the_law_it_came_in(tiff: bytes) -> None:
    """The far end sends PCMU to a PCMA endpoint: receive_frame honours the payload's law."""
    laws = (G711Law.ULAW, G711Law.ALAW)
    with audio_pair(tiff, PAGES, laws=laws) as (_files, a, b):
        for _ in range(60 * 50):
            if a.done and b.done:
                break
            b.receive_frame(a.transmit_frame(), G711Law.ULAW)
            a.receive_frame(b.transmit_frame(), G711Law.ALAW)
        a.hangup()
        b.hangup()
        assert a.outcome().success
        assert b.outcome().pages_received == PAGES


def test_lost_frames_are_filled_in_and_reported_truthfully(tiff: bytes) -> None:
    """G.711 has no redundancy: with frames lost, T.30 either copes or says why it failed.

    On this simulated link (fill-in for every lost frame), 0.1 % loss still gets through and
    0.5-1 % fails about half the time (training, DCS/TCF or a dropped call), as users of fax
    over G.711 report. Whatever the outcome, the figures must be consistent and the call must
    end on its own (T.30 timers, then BYE), well before the backstop."""
    outcomes = []
    for seed, loss in [(1, 0.001), (2, 0.01), (3, 0.01), (4, 0.05)]:
        with audio_pair(tiff, PAGES) as (_files, a, b):
            ticks, lost = run_audio(a, b, loss=loss, seed=seed, max_seconds=300)
            sent, got = a.outcome(), b.outcome()
        assert ticks < 300 * 50
        assert lost > 0
        outcomes.append((loss, sent.success))
        if sent.success:
            assert sent.failure_class is None
            assert sent.pages_sent == got.pages_received == PAGES
        else:
            assert sent.failure_class in (FailureClass.LINE, FailureClass.NO_ANSWER)
            assert sent.tx_result().error_message == sent.result_text
            assert got.pages_received <= PAGES
    assert outcomes[0] == (0.001, True)
    assert outcomes[-1] == (0.05, False)


@pytest.mark.parametrize(("law", "silence"), [(G711Law.ULAW, 0xFF), (G711Law.ALAW, 0xD5)])
def test_codec_runs_in_c_over_whole_frames(law: G711Law, silence: int) -> None:
    codec = G711(law)
    try:
        amp = (ctypes.c_int16 * 160)()
        out = ctypes.create_string_buffer(160)
        assert codec.encode(amp, 160, out) == 160
        assert out.raw == bytes([silence]) * 160
        amp[0], amp[1] = 1000, -1000
        codec.encode(amp, 160, out)
        back = (ctypes.c_int16 * 160)()
        assert codec.decode(out.raw, back) == 160
        assert abs(back[0] - 1000) < 40 and abs(back[1] + 1000) < 40  # G.711's own step size
    finally:
        codec.close()
    with pytest.raises(RuntimeError):
        codec.decode(b"\xff" * 160, amp)


def test_a_closed_endpoint_raises_instead_of_touching_freed_memory(tiff: bytes) -> None:
    with audio_pair(tiff, PAGES) as (_files, a, _b):
        a.receive_frame(a.transmit_frame())
    with pytest.raises(RuntimeError):
        a.transmit_frame()
    with pytest.raises(RuntimeError):
        a.receive_frame(b"\xff" * 160)
    with pytest.raises(RuntimeError):
        a.outcome()
