"""Console sessions: a random id in the cookie, only its SHA-256 kept here.

Sessions live in memory: a restart signs everyone out, which is acceptable for an operator's
console and keeps no session secret on disk. Each session has its own CSRF token, an idle
expiry, and a bound on how many are kept (the least recently used go first).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

COOKIE = "fgw_console"
IDLE_S = 30 * 60
MAX_SESSIONS = 10_000


def _digest(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


@dataclass
class Session:
    account_id: str | None  # None: the admin, who sees every account
    csrf: str
    last_seen: float

    @property
    def is_admin(self) -> bool:
        return self.account_id is None

    def csrf_ok(self, given: str | None) -> bool:
        return bool(given) and hmac.compare_digest(self.csrf.encode(), str(given).encode())


class Sessions:
    def __init__(
        self,
        clock: Callable[[], float] = time.monotonic,
        idle_s: float = IDLE_S,
        max_sessions: int = MAX_SESSIONS,
    ) -> None:
        self.clock = clock
        self.idle_s = idle_s
        self.max_sessions = max_sessions
        self._by_digest: OrderedDict[str, Session] = OrderedDict()

    def start(self, account_id: str | None) -> str:
        """A new session; the id to put in the cookie (never stored)."""
        session_id = secrets.token_urlsafe(32)
        digest = _digest(session_id)
        self._by_digest[digest] = Session(account_id, secrets.token_urlsafe(32), self.clock())
        while len(self._by_digest) > self.max_sessions:
            self._by_digest.popitem(last=False)
        return session_id

    def get(self, session_id: str | None) -> Session | None:
        if not session_id or len(session_id) > 128:
            return None
        digest = _digest(session_id)
        session = self._by_digest.get(digest)
        if session is None:
            return None
        now = self.clock()
        if now - session.last_seen > self.idle_s:
            del self._by_digest[digest]
            return None
        session.last_seen = now
        self._by_digest.move_to_end(digest)
        return session

    def end(self, session_id: str | None) -> None:
        if session_id:
            self._by_digest.pop(_digest(session_id), None)

    def __len__(self) -> int:
        return len(self._by_digest)
