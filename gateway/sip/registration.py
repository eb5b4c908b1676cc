"""REGISTER (RFC 3261 §10) to the account's registrar, so that inbound calls find us, kept
fresh for as long as the daemon runs.

One Call-ID and a growing CSeq for the life of the binding (§10.2.4). The binding is refreshed
at half the expiry the registrar granted (read from our own Contact in the 200, else its
Expires), failures are retried with a doubling back-off (a registrar that is down is not
hammered; a Retry-After is honoured), and ``close`` removes the binding (Expires: 0). The
digest challenge is remembered, so a refresh usually goes through without a new 401.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import random

from gateway.errors import SipError
from gateway.sip.headers import NameAddr, SipUri
from gateway.sip.message import Headers, Request, Response, SipParseError, new_call_id, new_tag
from gateway.sip.uac import Challenges
from gateway.sip.useragent import UserAgent

log = logging.getLogger(__name__)


class Registration:
    """Keeps ``ua.account`` registered. ``registered`` is set while the binding is known to
    hold; ``granted`` is the expiry the registrar gave; ``last_status`` / ``last_error`` say
    what happened last; ``refreshes`` counts successful REGISTERs."""

    def __init__(
        self,
        ua: UserAgent,
        expires: int = 600,
        *,
        retry_min: float = 30.0,
        retry_max: float = 600.0,
    ) -> None:
        self.ua = ua
        self.expires = expires
        self.retry_min = retry_min
        self.retry_max = retry_max
        self.registered = asyncio.Event()
        self.granted: int | None = None
        self.last_status: int | None = None
        self.last_error: str | None = None
        self.refreshes = 0
        self.failures = 0  # in a row
        account = ua.account
        self._aor = str(SipUri(account.domain, account.username))
        self._from = str(NameAddr(self._aor, account.display, (("tag", new_tag()),)))
        self._call_id = new_call_id()
        self._cseq = 0
        self._challenges: Challenges = {}
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()

    async def start(self) -> None:
        """Start registering in the background (the first REGISTER goes out at once)."""
        if self._task is None:
            self._task = asyncio.create_task(self._run())

    async def close(self) -> None:
        """Stop refreshing and remove the binding (best effort, bounded by Timer F)."""
        self._stopping.set()
        if self._task is not None:
            self._task.cancel()  # a REGISTER in flight is abandoned: the one below replaces it
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self.registered.is_set():
            self.registered.clear()
            try:
                response = await self.register_once(0)
                log.info("unregistered %s: %d", self._aor, response.status)
            except SipError as exc:
                log.info("unregistering %s: %s", self._aor, exc)

    async def register_once(self, expires: int) -> Response:
        """One REGISTER asking for ``expires`` seconds (0 removes our binding), with digest
        and one retry when the registrar finds the interval too brief (423)."""
        response: Response | None = None
        for _ in range(2):
            _, response = await self.ua.client.authenticated(
                functools.partial(self._request, expires),
                self.ua.account.proxy,
                challenges=self._challenges,
            )
            minimum = _seconds(response.headers.get("Min-Expires"))
            if response.status != 423 or minimum is None or not expires:
                break
            self.expires = expires = max(expires, minimum)
        assert response is not None
        return response

    def _contact(self) -> str:
        # Read when sending, not at construction: the sockets know their port once started.
        account = self.ua.account
        return self.ua.contact(account.username, account.proxy.transport)

    def _request(self, expires: int) -> Request:
        self._cseq += 1
        headers = (
            ("Max-Forwards", "70"),
            ("From", self._from),
            ("To", f"<{self._aor}>"),
            ("Call-ID", self._call_id),
            ("CSeq", f"{self._cseq} REGISTER"),
            ("Contact", self._contact()),
            ("Expires", str(expires)),
            *self.ua.client.common_headers(),
        )
        return Request("REGISTER", str(SipUri(self.ua.account.domain)), Headers(headers))

    async def _run(self) -> None:
        while not self._stopping.is_set():
            delay = await self._attempt()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), delay)

    async def _attempt(self) -> float:
        """One registration; the seconds until the next."""
        retry_after: float | None = None
        try:
            response = await self.register_once(self.expires)
        except SipError as exc:
            self.last_status, self.last_error = None, str(exc)
        else:
            self.last_status = response.status
            granted = self._granted(response) if 200 <= response.status < 300 else None
            if granted:
                self.granted, self.last_error = granted, None
                self.refreshes += 1
                self.failures = 0
                self.registered.set()
                return granted / 2
            self.last_error = f"{response.status} {response.reason}"
            retry_after = _seconds(response.headers.get("Retry-After"))
        self.registered.clear()
        self.failures += 1
        delay = min(self.retry_min * 2.0 ** (self.failures - 1), self.retry_max)
        delay *= random.uniform(0.8, 1.0)  # registrars restarted at once are not hit at once
        log.warning("REGISTER %s failed (%s); again in %.0f s", self._aor, self.last_error, delay)
        return max(delay, retry_after or 0.0)

    def _granted(self, response: Response) -> int | None:
        """The expiry of our binding: our Contact's expires, else the Expires header, else what
        we asked for (RFC 3261 §10.2.4). A registrar may list other bindings of the AOR."""
        ours = _uri(self._contact())
        contacts: list[NameAddr] = []
        with contextlib.suppress(SipParseError):
            contacts = [NameAddr.parse(value) for value in response.headers.values("Contact")]
        mine = [c for c in contacts if ours is not None and _same_binding(_uri(str(c)), ours)]
        if not mine and len(contacts) == 1:
            mine = contacts  # rewritten by a NAT-aware registrar, but the only one
        for contact in mine:
            value = _seconds(contact.param("expires"))
            if value is not None:
                return value
        header = _seconds(response.headers.get("Expires"))
        return header if header is not None else self.expires


def _seconds(value: str | None) -> int | None:
    text = (value or "").split(";")[0].strip()
    return int(text) if text.isdigit() else None


def _uri(contact: str) -> SipUri | None:
    try:
        return NameAddr.parse(contact).sip_uri
    except SipParseError:
        return None


def _same_binding(uri: SipUri | None, ours: SipUri) -> bool:
    return uri is not None and (uri.user, uri.host, uri.port or 5060) == (
        ours.user,
        ours.host,
        ours.port or 5060,
    )
