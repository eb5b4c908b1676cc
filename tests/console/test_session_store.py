"""Console sessions kept hashed in memory: idle expiry, ending, the bound on how many."""

from __future__ import annotations

from gateway.console.sessions import Sessions
from tests.conftest import Clock


def test_a_session_ends_after_its_idle_time_and_lives_while_used() -> None:
    clock = Clock(0)
    sessions = Sessions(clock, idle_s=60)
    cookie = sessions.start("acct")
    clock.advance(50)
    assert sessions.get(cookie) is not None  # used: the idle time starts again
    clock.advance(50)
    assert sessions.get(cookie) is not None
    clock.advance(61)
    assert sessions.get(cookie) is None


def test_only_a_hash_of_the_cookie_is_kept() -> None:
    sessions = Sessions(Clock(0))
    cookie = sessions.start(None)
    assert cookie not in repr(sessions._by_digest)
    assert sessions.get(cookie) is not None and sessions.get(cookie + "x") is None


def test_ending_a_session_and_the_bound_on_sessions() -> None:
    sessions = Sessions(Clock(0), max_sessions=2)
    first, second, third = (sessions.start("a") for _ in range(3))
    assert sessions.get(first) is None and len(sessions) == 2
    sessions.end(second)
    assert sessions.get(second) is None and sessions.get(third) is not None
