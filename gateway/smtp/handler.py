"""The intake handler: decides each SMTP command truthfully and commits before saying 250."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import time
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from aiosmtpd.smtp import SMTP, Envelope

from gateway import credentials
from gateway.config import SmtpSettings
from gateway.documents.inspect import InspectLimits
from gateway.documents.office import OfficeConverter
from gateway.errors import AddressError, BusyError, GatewayError, MessageError
from gateway.events import KeyedLock
from gateway.guard import AuthGuard
from gateway.message import IntakeOptions, ParsedMessage, read_message
from gateway.models import NewFax, RecipientOutcome, SmtpLogEntry
from gateway.routing import Accepted, Sender, SenderPolicy, dedupe_addresses, resolve_recipient
from gateway.smtp import replies
from gateway.smtp.auth import SmtpAuth
from gateway.smtp.duplicates import message_digest
from gateway.smtp.protocol import GatewaySession, Transaction, parse_ip
from gateway.store import IntakeStore

log = logging.getLogger(__name__)
T = TypeVar("T")


class IntakeHandler:
    def __init__(
        self,
        store: IntakeStore,
        settings: SmtpSettings,
        clock: Callable[[], float] = time.time,
        on_accepted: Callable[[], None] = lambda: None,
        on_transaction: Callable[[SmtpLogEntry], None] = lambda entry: None,
        office: OfficeConverter | None = None,
        fonts: tuple[str, ...] = (),
    ) -> None:
        self.store = store
        self.fonts = fonts  # [render] fonts: the SMTP-time check sees what the renderer draws with
        self.office = office  # None: office documents are refused (no LibreOffice here)
        self.on_accepted = on_accepted
        self.on_transaction = on_transaction  # once per smtplog row (metrics)
        self.settings = settings
        self.clock = clock
        self.policy = SenderPolicy(allow_all_when_empty=settings.allow_all_addresses_when_empty)
        self.trusted = [ipaddress.ip_network(n, strict=False) for n in settings.trusted_networks]
        self.pending: set[asyncio.Task[Any]] = set()
        self.same_message = KeyedLock()
        # Parsing has threads of its own, one per possible session: an Office conversion
        # waiting for a LibreOffice slot holds its thread, and in the shared default pool a
        # burst of them would stall everything else that runs in a thread (password checks,
        # API uploads, other messages' parsing).
        self.parsing = ThreadPoolExecutor(settings.max_sessions, thread_name_prefix="smtp-intake")
        # Not "auth_...": aiosmtpd takes handler attributes so named for AUTH mechanisms.
        self.logins = SmtpAuth(
            store,
            AuthGuard(settings.auth_failure_limit, settings.auth_failure_window_s, clock=clock),
        )

    def apply(self, settings: SmtpSettings) -> None:
        """SIGHUP: the reloadable limits (gateway.reload) for transactions from now on."""
        if settings.max_sessions != self.settings.max_sessions:
            old, self.parsing = (
                self.parsing,
                ThreadPoolExecutor(settings.max_sessions, thread_name_prefix="smtp-intake"),
            )
            old.shutdown(wait=False)  # what it is parsing still finishes
        self.settings = settings

    # -- transaction boundaries (called by GatewaySMTP) ----------------------------------------

    def open(self, session: GatewaySession, arg: str) -> None:
        mail_from = arg[5:].strip() if arg[:5].upper() == "FROM:" else arg
        session.transaction = Transaction(
            SmtpLogEntry(
                id=credentials.new_id(),
                created=self.clock(),
                peer_ip=session.peer_ip,
                helo=session.host_name,
                tls=session.is_tls,
                auth_user=session.auth_user,
                mail_from=mail_from.split(" ")[0].strip("<>")[:320] or None,
            )
        )

    async def close(self, session: GatewaySession, status: str | None, error: str = "") -> None:
        """End the open transaction and log it: refused with ``status`` (at MAIL, or DATA
        refused by aiosmtpd itself), or ended before DATA (RSET, QUIT, HELO) with ``error``."""
        transaction = session.transaction
        if transaction is None:
            return
        session.transaction = None
        self._end(transaction, status, error)
        # In a task of its own: a client that hangs up now cancels its session, and must not
        # take the row with it (the write may be waiting for the database's write lock).
        await asyncio.shield(self._track(self._write_log(transaction.entry)))

    def abandon(self, session: GatewaySession, reason: str) -> None:
        """The client vanished (possibly mid-DATA): log in the background, nothing to answer."""
        transaction = session.transaction
        if transaction is None:
            return
        session.transaction = None
        self._end(transaction, None, reason)
        self._track(self._write_log(transaction.entry))

    @staticmethod
    def _end(transaction: Transaction, status: str | None, error: str) -> None:
        entry = transaction.entry
        if not status and not transaction.accepted:
            # Nothing was ever accepted: the transaction's answer is its last refusal.
            refusals = [r.reply for r in transaction.recipients if not r.accepted]
            status = refusals[-1] if refusals else None
        if status:
            entry.reply_code = replies.reply_code(status)
            entry.reply_text = status
        if error:
            entry.errors.append(error)
        elif status and status[:1] in "45":
            entry.errors.append(status[4:])

    def _track(self, work: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
        """Run ``work`` to the end even if the session that started it goes away."""
        task = asyncio.get_running_loop().create_task(work)
        self.pending.add(task)
        task.add_done_callback(self.pending.discard)
        return task

    async def drain(self) -> None:
        """Wait for transactions still being finished (accepted or logged) after their client
        left; the daemon calls this before closing the store."""
        while self.pending:
            await asyncio.gather(*self.pending, return_exceptions=True)

    async def _write_log(self, entry: SmtpLogEntry) -> None:
        try:
            await self.store.write_smtplog(entry)
        except GatewayError:
            log.exception("smtplog %s could not be written", entry.id)
        self._log_line(entry)

    def _log_line(self, entry: SmtpLogEntry) -> None:
        log.info(
            "smtp id=%s peer=%s from=<%s> rcpts=%d reply=%s message_id=%s faxes=%s",
            entry.id,
            entry.peer_ip,
            entry.mail_from or "",
            len(entry.recipients),
            entry.reply_code,
            entry.message_id,
            ",".join(entry.fax_ids) or "-",
            extra={  # fields of the JSON log format (gateway.logs)
                "event": "smtp",
                "smtplog_id": entry.id,
                "peer_ip": entry.peer_ip,
                "mail_from": entry.mail_from,
                "recipients": [r.address for r in entry.recipients],
                "reply_code": entry.reply_code,
                "message_id": entry.message_id,
                "fax_ids": list(entry.fax_ids),
            },
        )
        self.on_transaction(entry)

    # -- aiosmtpd hooks ------------------------------------------------------------------------

    async def handle_PROXY(
        self, server: SMTP, session: GatewaySession, envelope: Envelope, proxy_data: Any
    ) -> bool:
        return bool(proxy_data)

    async def handle_MAIL(
        self,
        server: SMTP,
        session: GatewaySession,
        envelope: Envelope,
        address: str,
        mail_options: list[str],
    ) -> str:
        if session.transaction is not None:
            session.transaction.entry.mail_from = address
        if self.settings.require_tls and not session.is_tls:
            return replies.TLS_REQUIRED
        if self.trusted and not session.auth_faxbox_id and not self._is_trusted(session):
            return replies.AUTH_REQUIRED
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return replies.SENDER_OK

    def _is_trusted(self, session: GatewaySession) -> bool:
        ip = parse_ip(session.peer_ip)
        return ip is not None and any(ip in net for net in self.trusted)

    async def handle_RCPT(
        self,
        server: SMTP,
        session: GatewaySession,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        transaction = session.transaction
        assert transaction is not None
        outcome = RecipientOutcome(address=address, reply="")
        transaction.recipients.append(outcome)
        if len(transaction.accepted) >= self.settings.max_recipients:
            outcome.reply = replies.TOO_MANY_RECIPIENTS
            return outcome.reply
        try:
            sender = Sender(envelope.mail_from or "", session.auth_faxbox_id)
            accepted = await resolve_recipient(self.store, self.policy, sender, address, outcome)
        except GatewayError as exc:
            if not isinstance(exc, AddressError):
                log.error("smtp id=%s rcpt %s: %s", transaction.entry.id, address[:320], exc)
            outcome.reply = replies.reply_for(exc)
        except ValueError:
            outcome.reply = replies.BAD_RECIPIENT
        except Exception:  # a bug must cost a retry, not a recipient
            log.exception("smtp id=%s rcpt: unexpected error", transaction.entry.id)
            outcome.reply = replies.TEMPORARY_FAILURE
        else:
            outcome.accepted = True
            outcome.reply = replies.recipient_ok(accepted.number)
            envelope.rcpt_tos.append(address)
            envelope.rcpt_options.extend(rcpt_options)
            if not any(
                a.faxbox.id == accepted.faxbox.id and a.number == accepted.number
                for a in transaction.accepted
            ):  # the same number twice (another spelling) still gets one fax
                transaction.accepted.append(accepted)
        if not outcome.accepted:
            transaction.entry.errors.append(f"{address[:320]}: {outcome.reply}")
        return outcome.reply

    async def handle_RSET(self, server: SMTP, session: GatewaySession, envelope: Envelope) -> str:
        return "250 2.0.0 OK"

    async def handle_DATA(self, server: SMTP, session: GatewaySession, envelope: Envelope) -> str:
        transaction = session.transaction
        assert transaction is not None
        session.transaction = None  # from here on, _finish writes the row
        raw: bytes = envelope.original_content or b""
        # The message is complete: finish it even if the client hangs up or times out while we
        # commit (an MTA that lost our 250 resends, and the Message-ID check answers it).
        work = self._track(self._finish(transaction, envelope.mail_from or "", raw))
        return await asyncio.shield(work)

    async def _finish(self, transaction: Transaction, sender: str, raw: bytes) -> str:
        """Accept or refuse the message; either way write its one smtplog row."""
        entry = transaction.entry
        entry.size = len(raw)
        try:
            status = await self._accept(transaction, sender, raw)
        except MessageError as exc:
            status = replies.reply_for(exc)
            entry.errors.append(str(exc))
            entry.documents = list(exc.parts)
        except BusyError as exc:  # no conversion slot free in time: the client retries later
            status = replies.reply_for(exc)
            entry.errors.append(str(exc))
        except GatewayError as exc:
            log.error("smtp id=%s temporary failure: %s", entry.id, exc)
            status = replies.TEMPORARY_FAILURE
            entry.errors.append(str(exc))
        except Exception as exc:  # an unforeseen bug must cost a retry, never a message
            log.exception("smtp id=%s unexpected error", entry.id)
            status = replies.TEMPORARY_FAILURE
            entry.errors.append(f"internal error ({type(exc).__name__})")
        entry.reply_code = replies.reply_code(status)
        entry.reply_text = status
        if transaction.logged:
            self._log_line(entry)  # the row went in with the jobs
        else:
            await self._write_log(entry)
        return status

    async def _accept(self, transaction: Transaction, sender: str, raw: bytes) -> str:
        entry = transaction.entry
        options = self._intake_options(transaction)
        loop = asyncio.get_running_loop()
        parsed = await loop.run_in_executor(self.parsing, read_message, raw, options)
        entry.message_id, entry.subject = parsed.message_id, parsed.subject
        entry.documents = [part.view() for part in parsed.parts]
        # Check and insert under one lock per Message-ID, so that two sessions delivering the
        # same message at the same moment (an MTA retrying on a second connection) make one job.
        async with self.same_message.hold(parsed.message_id):
            return await self._commit(transaction, sender, parsed)

    async def _commit(self, transaction: Transaction, sender: str, parsed: ParsedMessage) -> str:
        entry = transaction.entry
        digest = message_digest(sender, parsed)
        since = self.clock() - self.settings.idempotency_window_s
        existing, new = await self._split_duplicates(transaction.accepted, parsed, digest, since)
        entry.fax_ids = existing
        if not new:
            entry.errors.append(
                "duplicate of an earlier message (same Message-ID, sender and content)"
            )
            return replies.queued(existing)
        faxes = [(credentials.new_id(), self._new_fax(rcpt, sender, parsed)) for rcpt in new]
        fax_ids = [*existing, *(fax_id for fax_id, _ in faxes)]
        status = replies.queued(fax_ids)
        # The row is committed with the jobs, so it must already carry the reply it records.
        entry.fax_ids, entry.reply_code, entry.reply_text = fax_ids, 250, status
        try:
            await self.store.accept_message(entry, faxes, parsed.documents, digest, since)
        except BaseException:
            entry.fax_ids, entry.reply_code, entry.reply_text = existing, None, None
            raise
        transaction.logged = True
        self.on_accepted()
        return status

    def _intake_options(self, transaction: Transaction) -> IntakeOptions:
        include_body = any(a.faxbox.include_body for a in transaction.accepted)
        return IntakeOptions(
            include_body=include_body,
            limits=InspectLimits(
                max_image_pixels=self.settings.max_image_pixels,
                max_pages=self.settings.max_pages,
            ),
            office=self.office,
            fonts=self.fonts,
        )

    async def _split_duplicates(
        self, accepted: list[Accepted], parsed: ParsedMessage, digest: str, since: float
    ) -> tuple[list[str], list[Accepted]]:
        """An MTA retrying after a lost 250 resends the same message: answer, don't refax.
        The same message is the same Message-ID with the same ``digest`` (sender and content):
        different messages do share Message-IDs in the wild."""
        if not parsed.message_id:
            return [], list(accepted)
        existing: list[str] = []
        new: list[Accepted] = []
        for rcpt in accepted:
            found = await self.store.find_recent_fax(
                parsed.message_id, rcpt.faxbox.id, rcpt.number, digest, since
            )
            if found:
                existing.append(found)
            else:
                new.append(rcpt)
        return existing, new

    @staticmethod
    def _new_fax(rcpt: Accepted, sender: str, parsed: ParsedMessage) -> NewFax:
        box = rcpt.faxbox
        return box.new_fax(
            to_number=rcpt.number,
            original_number=rcpt.original,
            message_id=parsed.message_id,
            subject=parsed.subject,
            source="smtp",
            notifications={
                "email": {
                    "send_to": dedupe_addresses([sender, box.owner_email, *box.outbound_notify])
                }
            },
            render_options={
                **box.render_defaults(),
                "body": parsed.body if box.cover_page else None,
            },
        )

    # -- AUTH (gateway.smtp.auth) --------------------------------------------------------------

    async def handle_AUTH(
        self, server: SMTP, session: GatewaySession, envelope: Envelope, args: list[str]
    ) -> str | None:
        return await self.logins.authenticate(server, session, args)

    async def handle_exception(self, error: Exception) -> str:
        log.exception("smtp session error", exc_info=error)
        return replies.TEMPORARY_FAILURE
