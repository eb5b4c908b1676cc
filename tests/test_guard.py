"""The credential-guessing guard: failed logins counted per client address in a time window."""

from __future__ import annotations

from gateway.guard import AuthGuard, client_key
from tests.conftest import Clock


def guard(clock: Clock, limit: int = 3, window_s: float = 60, max_clients: int = 100) -> AuthGuard:
    return AuthGuard(limit, window_s, clock=clock, max_clients=max_clients)


def test_an_address_may_fail_up_to_the_limit_then_must_wait(clock: Clock) -> None:
    g = guard(clock)
    for _ in range(3):
        assert g.retry_after("192.0.2.1") is None
        g.failed("192.0.2.1")
    assert g.retry_after("192.0.2.1") == 60


def test_other_addresses_are_not_held_back(clock: Clock) -> None:
    g = guard(clock)
    for _ in range(3):
        g.failed("192.0.2.1")
    assert g.retry_after("192.0.2.2") is None
    assert g.retry_after(None) is None


def test_the_wait_counts_from_the_oldest_failure_in_the_window(clock: Clock) -> None:
    g = guard(clock)
    g.failed("192.0.2.1")
    clock.advance(20)
    g.failed("192.0.2.1")
    g.failed("192.0.2.1")
    assert g.retry_after("192.0.2.1") == 40
    clock.advance(39.5)
    assert g.retry_after("192.0.2.1") == 1  # rounded up: a client retrying at once is early
    clock.advance(0.5)
    assert g.retry_after("192.0.2.1") is None


def test_after_the_window_one_more_try_then_blocked_again(clock: Clock) -> None:
    g = guard(clock)
    for _ in range(3):
        g.failed("192.0.2.1")
        clock.advance(10)
    clock.advance(30)  # the first failure is 60 s old now; the others are not
    assert g.retry_after("192.0.2.1") is None
    g.failed("192.0.2.1")
    assert g.retry_after("192.0.2.1") == 10


def test_failed_tells_when_the_address_becomes_blocked(clock: Clock) -> None:
    g = guard(clock)
    assert [g.failed("192.0.2.1") for _ in range(3)] == [False, False, True]


def test_memory_is_bounded_by_evicting_the_stalest_address(clock: Clock) -> None:
    g = guard(clock, max_clients=2)
    for _ in range(3):
        g.failed("192.0.2.1")
    clock.advance(1)
    g.failed("192.0.2.2")
    g.failed("192.0.2.3")
    assert g.tracked() == 2
    assert g.retry_after("192.0.2.1") is None


def test_addresses_whose_failures_expired_are_forgotten(clock: Clock) -> None:
    g = guard(clock)
    g.failed("192.0.2.1")
    clock.advance(61)
    g.failed("192.0.2.2")
    assert g.tracked() == 1


def test_an_ipv6_client_is_one_slash_64() -> None:
    # One host commonly holds a whole /64: counting each address would not count it at all.
    assert client_key("2001:db8:1:2::1") == client_key("2001:db8:1:2:ffff::9")
    assert client_key("2001:db8:1:2::1") != client_key("2001:db8:1:3::1")
    assert client_key("::ffff:192.0.2.1") == client_key("192.0.2.1") == "192.0.2.1"
    assert client_key(None) == client_key("not an address") != client_key("192.0.2.1")


def test_a_slash_64_is_blocked_as_one(clock: Clock) -> None:
    g = guard(clock)
    for host in range(1, 4):
        g.failed(f"2001:db8::{host}")
    assert g.retry_after("2001:db8::77") == 60
