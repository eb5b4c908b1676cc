"""Sending requests as a user agent client (RFC 3261 §8.1, §9, §13.2, §22): a Via on each,
digest challenges answered, and the INVITE client that cancels.

``authenticated`` answers 401/407 for any request: once per fresh challenge, again only when
the server says the nonce was stale, so a wrong password costs one round trip and no loop.
``send_invite`` adds what only an INVITE needs: a deadline (ring timeout, or a re-INVITE left
hanging) and cancellation of the awaiting task both send CANCEL — only after a provisional
response (§9.1) — and wait for the INVITE's final response, so that a 2xx crossing the CANCEL
is not lost (it goes to ``on_late_2xx`` to be ACKed).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from gateway.errors import SipError
from gateway.sip.digest import Challenge, DigestClient, DigestError, pick_challenge
from gateway.sip.message import Headers, Request, Response, response_for
from gateway.sip.sockets import Peer, SipSockets, Transport
from gateway.sip.transaction import TransactionLayer, cancel_for

MAX_AUTH_ROUNDS = 5  # a server answering stale=true forever cannot keep us busy

Challenges = dict[tuple[bool, str], Challenge]  # by (proxy?, realm)
Transact = Callable[[Request, Peer], Awaitable[Response]]
Late2xx = Callable[[Request, Response], Awaitable[None]]


class InviteProgress:
    """What an INVITE transaction has heard so far, and whether we cancelled it."""

    def __init__(self, hook: Callable[[Response], object] | None = None) -> None:
        self.provisional = asyncio.Event()
        self.cancelled = False
        self._hook = hook

    def seen(self, response: Response) -> None:
        self.provisional.set()
        if self._hook is not None:
            self._hook(response)


class Client:
    def __init__(
        self,
        layer: TransactionLayer,
        sockets: SipSockets,
        digest: DigestClient,
        *,
        user_agent: str,
        reinvite_timeout: float,
    ) -> None:
        self.layer = layer
        self.sockets = sockets
        self.digest = digest
        self.user_agent = user_agent
        self.reinvite_timeout = reinvite_timeout
        self._tasks: set[asyncio.Task[Any]] = set()

    def common_headers(self) -> tuple[tuple[str, str], ...]:
        return (("User-Agent", self.user_agent),)

    def with_via(self, request: Request, transport: Transport) -> Request:
        via = ("Via", str(self.sockets.via_for(transport)))
        return Request(request.method, request.uri, Headers((via, *request.headers)), request.body)

    async def authenticated(
        self,
        build: Callable[[], Request],
        peer: Peer,
        *,
        transact: Transact | None = None,
        challenges: Challenges | None = None,
    ) -> tuple[Request, Response]:
        """Send ``build()`` (a fresh request each round, for its new CSeq: §22.2) with a Via and
        credentials for every challenge known; the request sent last and its final response.
        ``challenges`` kept by the caller are answered pre-emptively next time (a REGISTER
        refresh then needs no extra round trip)."""
        send = transact or self.layer.request
        answered: Challenges = {} if challenges is None else challenges
        tried: set[tuple[bool, str]] = set()
        for _ in range(MAX_AUTH_ROUNDS):
            request = build()
            try:
                credentials = tuple(
                    self.digest.authorize(c, request.method, request.uri, request.body).header()
                    for c in answered.values()
                )
            except DigestError:
                credentials = ()
            headers = Headers((*request.headers, *credentials))
            draft = Request(request.method, request.uri, headers, request.body)
            sent = self.with_via(draft, peer.transport)
            response = await send(sent, peer)
            if response.status not in (401, 407):
                return sent, response
            challenge = pick_challenge(response)
            if challenge is None:
                return sent, response
            key = (challenge.proxy, challenge.realm)
            if key in tried and not challenge.stale:
                return sent, response  # our answer to this realm was refused: wrong password
            tried.add(key)
            answered[key] = challenge
        return sent, response

    async def send_invite(
        self,
        build: Callable[[], Request],
        peer: Peer,
        *,
        progress: InviteProgress | None = None,
        deadline: float | None = None,
        challenges: Challenges | None = None,
        on_late_2xx: Late2xx | None = None,
    ) -> tuple[Request, Response]:
        """An INVITE (first or re-) with digest retry, cancelled at ``deadline`` (loop time;
        default ``reinvite_timeout`` from now): then the final response after our CANCEL is
        returned with ``progress.cancelled`` set — a 487, or a synthetic 408 when none came."""
        watch = progress or InviteProgress()
        until = deadline
        if until is None:
            until = asyncio.get_running_loop().time() + self.reinvite_timeout

        async def transact(request: Request, to: Peer) -> Response:
            return await self._invite_transaction(request, to, watch, until, on_late_2xx)

        return await self.authenticated(build, peer, transact=transact, challenges=challenges)

    async def _invite_transaction(
        self,
        request: Request,
        peer: Peer,
        progress: InviteProgress,
        deadline: float,
        on_late_2xx: Late2xx | None,
    ) -> Response:
        loop = asyncio.get_running_loop()
        task = asyncio.ensure_future(
            self.layer.request(request, peer, on_provisional=progress.seen)
        )
        try:
            return await asyncio.wait_for(asyncio.shield(task), max(0.0, deadline - loop.time()))
        except TimeoutError:
            progress.cancelled = True
            final = await self._cancel(request, peer, task, progress)
            return final or response_for(request, 408, "No Final Response After CANCEL")
        except asyncio.CancelledError:
            progress.cancelled = True
            final = await self._cancel(request, peer, task, progress)
            if final is not None and final.status < 300 and on_late_2xx is not None:
                await on_late_2xx(request, final)
            raise

    async def _cancel(
        self,
        invite: Request,
        peer: Peer,
        task: asyncio.Future[Response],
        progress: InviteProgress,
    ) -> Response | None:
        """CANCEL ``invite`` once a provisional response came, and wait for its final response;
        None when none came within 64*T1 (§9.1: then the transaction is given up)."""
        limit = 64 * self.layer.timers.t1
        loop = asyncio.get_running_loop()
        until = loop.time() + limit
        provisional: asyncio.Future[Any] = asyncio.ensure_future(progress.provisional.wait())
        either: set[asyncio.Future[Any]] = {task, provisional}
        await asyncio.wait(either, timeout=limit, return_when=asyncio.FIRST_COMPLETED)
        provisional.cancel()
        if not task.done() and progress.provisional.is_set():
            self.spawn(self._send_cancel(invite, peer))
        await asyncio.wait({task}, timeout=max(0.0, until - loop.time()))
        if not task.done():
            task.cancel()
            return None
        if task.cancelled() or task.exception() is not None:
            return None
        return task.result()

    async def _send_cancel(self, invite: Request, peer: Peer) -> None:
        cancel = cancel_for(invite)  # the INVITE's own top Via: its branch names the INVITE
        cancel = Request(
            cancel.method, cancel.uri, Headers((*cancel.headers, *self.common_headers()))
        )
        with contextlib.suppress(SipError):
            await self.layer.request(cancel, peer)

    def spawn(self, coroutine: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def close(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
