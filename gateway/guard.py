"""Slowing credential guessing: failed logins counted per client address in a sliding window.

Counting by address and not by account is what keeps one attacker from locking a legitimate
user out of the account under attack: the attacker's address waits, everyone else's does not.
A success clears nothing (an attacker holding a valid token of their own could otherwise reset
their count between guesses). Pure and clock-injected, so both edges (HTTP, SMTP AUTH) share it
and tests move time by hand.
"""

from __future__ import annotations

import ipaddress
import math
import time
from collections import OrderedDict, deque
from collections.abc import Callable

# Enough for every client a busy gateway sees in one window; an attacker who rotates through
# more addresses than this is not slowed by per-address counting anyway.
MAX_CLIENTS = 10_000
_UNKNOWN = "unknown"


def client_key(address: str | None) -> str:
    """What counts as one client: an IPv4 address, or an IPv6 /64 (one host's usual share)."""
    if not address:
        return _UNKNOWN
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return _UNKNOWN
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


class AuthGuard:
    """At most ``limit`` failed authentications per client within any ``window_s`` seconds."""

    def __init__(
        self,
        limit: int,
        window_s: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_clients: int = MAX_CLIENTS,
    ) -> None:
        self.limit = limit
        self.window_s = window_s
        self.clock = clock
        self.max_clients = max_clients
        # Least recently failed first, so the stale entries are at the front to drop.
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()

    def retry_after(self, address: str | None) -> int | None:
        """Whole seconds this client must wait before trying again, or None if it may now."""
        times = self._failures.get(client_key(address))
        if times is None or len(times) < self.limit:
            return None
        wait = times[0] + self.window_s - self.clock()
        return math.ceil(wait) if wait > 0 else None

    def failed(self, address: str | None) -> bool:
        """Count a failure; True when it is the one that makes the client wait."""
        now = self.clock()
        self._forget_expired(now)
        key = client_key(address)
        times = self._failures.get(key)
        if times is None:
            # Only the newest ``limit`` failures can decide a wait: older ones need no memory.
            times = self._failures[key] = deque(maxlen=self.limit)
        times.append(now)
        self._failures.move_to_end(key)
        while len(self._failures) > self.max_clients:
            self._failures.popitem(last=False)
        return self.retry_after(address) is not None

    def tracked(self) -> int:
        return len(self._failures)

    def _forget_expired(self, now: float) -> None:
        while self._failures:
            key, times = next(iter(self._failures.items()))
            if times[-1] + self.window_s > now:
                return
            del self._failures[key]
