"""SIP transactions (RFC 3261 §17, with RFC 6026's Accepted state) over ``SipSockets``.

The layer retransmits over UDP and absorbs retransmissions, so that the user agent above sees
each request once and gets one final response per request it sends:

- ``TransactionLayer.request`` runs a client transaction and returns its final response. For
  an INVITE answered 300-699 it sends the ACK itself (same branch, §17.1.1.3) and re-sends it
  for each retransmitted final; a 2xx ends the transaction at once, and 2xx retransmissions
  (or a forked 2xx) that arrive later go to ``on_stray_2xx`` for the dialog to ACK again.
- Each new request becomes a ``ServerTransaction`` handed to ``on_request``. The layer sends
  100 Trying for an INVITE left unanswered ``Timers.trying`` seconds, answers a matching
  CANCEL with 200 itself (setting ``cancelled``: the user agent then answers the INVITE 487),
  retransmits non-2xx finals to INVITE until their ACK (which it absorbs) and, after a 2xx,
  absorbs INVITE retransmissions for 64*T1 (RFC 6026 Accepted; each gets the 2xx again).
  Retransmitting the 2xx itself until its ACK is the user agent's (§13.3.1.4). An ACK for a
  2xx is a request of its own: it sets ``acked`` on the INVITE's transaction and goes up.

The state machines live in ``gateway.sip.transaction_states``; this module matches messages
to them (§17.1.3, §17.2.3) and owns their tasks.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from gateway.errors import SipError, SipTransportError
from gateway.sip.message import BRANCH_COOKIE, Request, Response, new_tag, response_for
from gateway.sip.sockets import Peer, SipSockets
from gateway.sip.transaction_states import (
    DEFAULT_TIMERS,
    ClientTransaction,
    ServerTransaction,
    Timers,
    ack_for,
    cancel_for,
    to_tag,
)

__all__ = ["ServerTransaction", "Timers", "TransactionLayer", "ack_for", "cancel_for"]

log = logging.getLogger(__name__)


def _server_key(request: Request) -> tuple[object, ...]:
    """What a retransmission, its ACK and its CANCEL share with a request (§17.2.3)."""
    via = request.vias[0]
    method = "INVITE" if request.method == "ACK" else request.method
    branch = via.branch or ""
    if branch.startswith(BRANCH_COOKIE):
        return (branch, via.host.lower(), via.port, method)
    # An RFC 2543 peer: its branch need not be unique, so the dialog and CSeq take part.
    tag = request.from_addr.tag
    return ("2543", request.call_id, tag, request.cseq.number, via.host, via.port, branch, method)


class TransactionLayer:
    def __init__(
        self,
        sockets: SipSockets,
        timers: Timers = DEFAULT_TIMERS,
        on_request: Callable[[ServerTransaction], Awaitable[None]] | None = None,
        *,
        on_stray_2xx: Callable[[Response], None] | None = None,
        max_transactions: int = 5000,
    ) -> None:
        self.sockets = sockets
        self.timers = timers
        self.on_request = on_request
        self.on_stray_2xx = on_stray_2xx
        self.max_transactions = max_transactions
        self._clients: dict[tuple[object, ...], ClientTransaction] = {}
        self._servers: dict[tuple[object, ...], ServerTransaction] = {}
        self.awaiting_ack: dict[tuple[str, int], ServerTransaction] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closed = False
        sockets.on_message = self._received

    @property
    def pending(self) -> int:
        """Live transactions, both sides (for tests and metrics)."""
        return len(self._clients) + len(self._servers)

    async def request(
        self,
        request: Request,
        peer: Peer,
        *,
        on_provisional: Callable[[Response], None] | None = None,
    ) -> Response:
        """Send ``request`` (its top Via, from ``sockets.via_for``, carries a fresh branch) and
        return the final response. Raises SipTimeout (Timer B/F) or SipTransportError.
        Cancelling the caller ends the transaction (an INVITE should be CANCELled first)."""
        if self._closed:
            raise SipTransportError("the transaction layer is closed")
        if request.method == "ACK":
            raise ValueError("an ACK has no transaction: send it with sockets.send")
        vias = request.vias
        if not vias or not (vias[0].branch or "").startswith(BRANCH_COOKIE):
            raise ValueError("a request needs a top Via with an RFC 3261 branch")
        if vias[0].transport.lower() != peer.transport:
            raise ValueError(f"top Via says {vias[0].transport}, sending over {peer.transport}")
        transaction = ClientTransaction(self, request, peer, on_provisional)
        if transaction.key in self._clients:
            raise ValueError(f"branch {vias[0].branch} is in use: each request needs a new one")
        self._clients[transaction.key] = transaction
        try:
            await transaction.start()
            return await transaction.future
        except BaseException:
            if transaction.state != "completed":
                transaction.terminate()
            raise

    async def close(self) -> None:
        """End every transaction and task; pending requests fail with SipTransportError."""
        self._closed = True
        if self.sockets.on_message == self._received:
            self.sockets.on_message = None
        for client in list(self._clients.values()):
            if not client.future.done():
                client.future.set_exception(SipTransportError("the transaction layer closed"))
            client.terminate()
        for server in list(self._servers.values()):
            server.terminate()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # -- used by the transactions ----------------------------------------------------------

    def forget_client(self, transaction: ClientTransaction) -> None:
        if self._clients.get(transaction.key) is transaction:
            del self._clients[transaction.key]

    def forget_server(self, transaction: ServerTransaction) -> None:
        if self._servers.get(transaction.key) is transaction:
            del self._servers[transaction.key]
        key = (transaction.request.call_id, transaction.request.cseq.number)
        if self.awaiting_ack.get(key) is transaction:
            del self.awaiting_ack[key]

    def spawn_send(
        self,
        message: Request,
        peer: Peer,
        on_error: Callable[[SipTransportError], None] | None = None,
    ) -> None:
        async def send() -> None:
            try:
                await self.sockets.send(message, peer)
            except SipTransportError as exc:
                log.info("retransmission to %s failed: %s", peer, exc)
                if on_error is not None:
                    on_error(exc)

        self._spawn(send())

    def spawn_reply(self, response: Response, peer: Peer) -> None:
        async def reply() -> None:
            try:
                await self.sockets.reply(response, peer)
            except SipTransportError as exc:
                log.info("response to %s failed: %s", peer, exc)

        self._spawn(reply())

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        if self._closed:
            coroutine.close()
            return
        task = asyncio.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- inbound ---------------------------------------------------------------------------

    def _received(self, message: Request | Response, peer: Peer) -> None:
        if self._closed:
            return
        if isinstance(message, Response):
            self._response(message, peer)
        else:
            self._request(message, peer)

    def _response(self, response: Response, peer: Peer) -> None:
        key = (response.vias[0].branch, response.cseq.method)
        client = self._clients.get(key)
        if client is not None:
            client.received(response)
        elif response.cseq.method == "INVITE" and 200 <= response.status < 300:
            if self.on_stray_2xx is not None:
                self.on_stray_2xx(response)
        else:
            log.debug("stray %s response from %s dropped", response.status, peer)

    def _request(self, request: Request, peer: Peer) -> None:
        key = _server_key(request)
        existing = self._servers.get(key)
        if request.method == "ACK":
            if existing is not None and existing.state in ("completed", "confirmed"):
                existing.retransmitted(request, peer)  # the ACK of our non-2xx: absorbed
                return
            waiting = self.awaiting_ack.get((request.call_id, request.cseq.number))
            if waiting is not None and to_tag(request) == to_tag(waiting.final):
                waiting.ack_received()
            self._hand_up(ServerTransaction(self, request, peer, key))
        elif existing is not None:
            existing.retransmitted(request, peer)
        elif len(self._servers) >= self.max_transactions:
            busy = response_for(request, 503, to_tag=new_tag(), headers=[("Retry-After", "5")])
            self.spawn_reply(busy, peer)
        elif request.method == "CANCEL":
            self._cancel(request, peer, key)
        else:
            transaction = ServerTransaction(self, request, peer, key)
            self._servers[key] = transaction
            self._hand_up(transaction)

    def _cancel(self, cancel: Request, peer: Peer, key: tuple[object, ...]) -> None:
        """Answer a CANCEL here (§9.2): 200 when it matches an INVITE, else 481."""
        transaction = ServerTransaction(self, cancel, peer, key)
        self._servers[key] = transaction
        invite = self._servers.get((*key[:-1], "INVITE"))
        if invite is None:
            answer = response_for(cancel, 481)
        else:
            answer = response_for(cancel, 200, to_tag=to_tag(invite.last))
            if invite.final is None:
                invite.cancelled.set()

        async def respond() -> None:
            try:
                await transaction.respond(answer)
            except SipTransportError as exc:
                log.info("answer to CANCEL from %s failed: %s", peer, exc)

        self._spawn(respond())

    def _hand_up(self, transaction: ServerTransaction) -> None:
        self._spawn(self._run_handler(transaction))

    async def _run_handler(self, transaction: ServerTransaction) -> None:
        handler = self.on_request
        try:
            if handler is not None:
                await handler(transaction)
            elif transaction.request.method != "ACK":
                await transaction.respond(response_for(transaction.request, 501))
        except SipError as exc:
            log.info("%s from %s: %s", transaction.request.method, transaction.peer, exc)
        except Exception:
            log.exception(
                "handling %s from %s failed", transaction.request.method, transaction.peer
            )
            if transaction.request.method != "ACK" and transaction.final is None:
                with contextlib.suppress(SipError):
                    await transaction.respond(response_for(transaction.request, 500))
