"""The media clock: when ticks are due (``Schedule``, on made-up times) and the thread's life."""

from __future__ import annotations

import asyncio

import pytest

from gateway.transports.callmedia import AudioMode, CallMedia, EndReason
from gateway.transports.mediaclock import PERIOD_S, MediaClock, Schedule
from gateway.transports.rtp import PortAllocator
from gateway.transports.spandsp import T30Config

P = 0.020
START = 1000.0


def schedule(max_catch_up: int = 3) -> Schedule:
    return Schedule(START, P, max_catch_up=max_catch_up, late_after=P / 2)


def test_the_period_is_twenty_milliseconds() -> None:
    assert PERIOD_S == 0.020


def test_deadlines_stay_on_the_grid_whatever_the_work_took() -> None:
    """Drift free: tick n is due at start + n * period, not period after the last one ended."""
    s = schedule()
    for n in range(1000):
        assert s.wait(START + n * P - 0.001) == pytest.approx(0.001)
        s.begin(START + n * P + 0.004)  # each tick starts 4 ms after its deadline
    assert s.deadline == pytest.approx(START + 1000 * P)
    assert s.late == s.skipped == 0
    assert s.worst == pytest.approx(0.004)


def test_a_tick_half_a_period_behind_is_late() -> None:
    s = schedule()
    s.begin(START + 0.011)
    assert (s.late, s.skipped) == (1, 0)
    assert s.wait(START + 0.011) == pytest.approx(P - 0.011)


def test_after_a_stall_a_few_ticks_catch_up_and_the_rest_are_given_up() -> None:
    s = schedule(max_catch_up=3)
    stalled_until = START + 10.5 * P  # ticks 0..10 are all due
    s.begin(stalled_until)
    assert s.skipped == 7  # 10 overdue besides this one, 3 of which may still run
    for _ in range(3):  # back to back
        assert s.wait(stalled_until) == 0
        s.begin(stalled_until)
    assert s.wait(stalled_until) == pytest.approx(0.5 * P)  # back on the grid
    assert s.late == 4 and s.skipped == 7
    s.begin(START + 11 * P)
    assert s.late == 4


def test_no_catching_up_at_all() -> None:
    s = schedule(max_catch_up=0)
    s.begin(START + 5.2 * P)
    assert s.skipped == 5
    assert s.wait(START + 5.2 * P) == pytest.approx(0.8 * P)


def test_a_clock_starts_once_and_refuses_calls_when_not_running() -> None:
    clock = MediaClock(period_s=0.002)
    with pytest.raises(RuntimeError):
        clock.add(object())  # type: ignore[arg-type]
    clock.start()
    with pytest.raises(RuntimeError):
        clock.start()
    clock.stop()
    clock.stop()
    assert not clock.running
    with pytest.raises(RuntimeError):
        clock.start()


async def test_the_clock_counts_ticks_call_time_and_its_own_cpu() -> None:
    ports = PortAllocator("127.0.0.1", 41900, 41949)
    with MediaClock(period_s=0.002) as clock:
        media = CallMedia(
            ports.open(), calling=True, config=T30Config(ident="1"), mode=AudioMode.pcmu()
        )
        clock.add(media)
        with pytest.raises(RuntimeError):
            clock.add(media)  # a call is on one clock, once
        while media.stats.seconds < 1.0:
            await asyncio.sleep(0.01)
        media.hangup()
        await asyncio.wait_for(media.done, 30)
        # The clock lets the call go at its next tick, just after it settled ``done``.
        for _ in range(3000):
            if clock.stats.calls == 0:
                break
            await asyncio.sleep(0.01)
        stats = clock.stats
    assert media.end_reason is EndReason.HANGUP
    assert stats.ticks >= stats.call_ticks >= 50
    assert stats.calls == 0
    assert stats.cpu_s > 0
    assert stats.cpu_per_call_second(0.002) > 0


async def test_a_call_never_added_gives_its_port_back_on_hangup() -> None:
    ports = PortAllocator("127.0.0.1", 41950, 41953)
    media = CallMedia(ports.open(), calling=True, config=T30Config(), mode=AudioMode.pcmu())
    assert ports.in_use == 1
    media.hangup()
    assert ports.in_use == 0
    assert media.done.cancelled()
