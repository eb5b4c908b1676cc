"""The sender task: deliver due notifications, retry with backoff up to a maximum age, then
give up and mark them dead with the error (which the API shows on the fax).

Notifications are rows written with the outcome that causes them (see
``gateway.store.notifications``), so nothing is lost while the smarthost or the webhook is
down: the rows wait. A failed attempt waits ``retry_initial_s``, doubling up to
``retry_max_s``; the last attempt happens at ``max_age_s`` after the event.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket

from gateway.config import NotificationSettings
from gateway.errors import DeliveryError, NotFoundError, StorageError
from gateway.events import wait_any
from gateway.models import Direction, Fax, Faxbox, Notification
from gateway.notify.compose import (
    Attachment,
    compose_email,
    notification_message_id,
    valid_address,
)
from gateway.notify.mail import SmtpMailer
from gateway.notify.sms import SmsWebhook, check_body
from gateway.notify.templates import Templates, fax_variables, load_templates
from gateway.store import NotificationQueue

log = logging.getLogger(__name__)

# Rows written by another process (a second node, the CLI) are noticed within this time.
IDLE_POLL_S = 5.0


def check_settings(settings: NotificationSettings) -> None:
    """What the Notifier checks when it starts (templates, SMS body, CA file), for
    ``check-config``: a ConfigError names the problem."""
    load_templates(settings.templates_dir)
    check_body(settings.sms.body)
    if settings.smarthost_host:
        SmtpMailer(settings)


class Notifier:
    def __init__(
        self,
        store: NotificationQueue,
        settings: NotificationSettings,
        *,
        templates: Templates | None = None,
        mailer: SmtpMailer | None = None,
        sms: SmsWebhook | None = None,
        owner: str | None = None,
        batch: int = 10,
    ) -> None:
        self.store = store
        self.settings = settings
        # Loaded and checked here, so a broken template stops the daemon at start.
        self.templates = templates or load_templates(settings.templates_dir)
        self.mailer = mailer or (SmtpMailer(settings) if settings.smarthost_host else None)
        self.sms = sms or (SmsWebhook(settings.sms) if settings.sms.url else None)
        self.owner = owner or f"notify-{socket.gethostname()}:{os.getpid()}:{id(self):x}"
        self.batch = batch
        # An attempt makes several SMTP round trips, each bounded by timeout_s.
        self.attempt_timeout_s = settings.timeout_s * 3
        self.lease_s = self.attempt_timeout_s + 60
        self.wake = asyncio.Event()

    # -- the loop ------------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver until ``stop``; deliveries under way are finished, not cut short."""
        try:
            while not stop.is_set():
                self.wake.clear()  # before claiming: a wake-up during the claim is not lost
                if await self.run_once():
                    continue
                await wait_any(stop, self.wake, within=await self._idle_time())
        finally:
            await self.close()

    async def run_once(self) -> int:
        """Claim a batch of due notifications and deliver them; the number claimed."""
        try:
            batch = await self.store.claim_notifications(self.owner, self.lease_s, self.batch)
        except StorageError:
            log.exception("notify: cannot claim notifications")
            return 0
        if batch:
            await asyncio.gather(*(self.deliver(n) for n in batch))
        return len(batch)

    async def run_until_idle(self) -> None:
        """Deliver everything due now, then return (tests and tools)."""
        while await self.run_once():
            pass

    async def close(self) -> None:
        if self.sms is not None:
            await self.sms.close()

    async def _idle_time(self) -> float:
        try:
            due = await self.store.next_notification_due()
        except StorageError:
            return IDLE_POLL_S
        if due is None:
            return IDLE_POLL_S
        return min(IDLE_POLL_S, max(0.0, due - self.store.clock()))

    def retry_at(self, notification: Notification, now: float) -> float | None:
        """When to try again after a failed attempt; None once the maximum age is reached."""
        s = self.settings
        deadline = notification.created + s.max_age_s
        if now >= deadline:
            return None
        exponent = min(max(notification.attempts - 1, 0), 30)
        delay = min(s.retry_max_s, s.retry_initial_s * 2.0**exponent)
        return min(now + delay, deadline)

    # -- one notification ----------------------------------------------------------------------

    async def deliver(self, n: Notification) -> None:
        what = f"notify id={n.id} fax={n.fax_id} {n.event.value} {n.channel} to={n.recipient}"
        try:
            async with asyncio.timeout(self.attempt_timeout_s):
                await self._send(n)
        except NotFoundError:
            return  # the fax was deleted, and its notifications with it
        except StorageError:
            log.exception("%s: storage error; retried when the lease expires", what)
            return
        except DeliveryError as exc:
            await self._failed(n, what, str(exc), exc.permanent)
            return
        except TimeoutError:
            await self._failed(n, what, f"no answer within {self.attempt_timeout_s:g} s", False)
            return
        except Exception as exc:  # a bug in one notification must not stop the others
            log.exception("%s: unexpected error", what)
            await self._failed(n, what, f"internal error: {type(exc).__name__}: {exc}", False)
            return
        try:
            recorded = await self.store.notification_sent(n.id, self.owner)
        except StorageError:
            log.exception("%s: sent, but could not record it", what)
            return
        log.info("%s: sent (attempt %d)%s", what, n.attempts, "" if recorded else ", lease lost")

    async def _failed(self, n: Notification, what: str, error: str, permanent: bool) -> None:
        retry_at = None if permanent else self.retry_at(n, self.store.clock())
        try:
            await self.store.notification_failed(n.id, self.owner, error, retry_at)
        except StorageError:
            log.exception("%s: could not record the failure", what)
            return
        if retry_at is None:
            log.warning("%s: dead after %d attempt(s): %s", what, n.attempts, error)
        else:
            wait = retry_at - self.store.clock()
            log.warning("%s: attempt %d failed (%s); next in %.0f s", what, n.attempts, error, wait)

    async def _send(self, n: Notification) -> None:
        fax = await self.store.get_fax(n.fax_id)
        faxbox = await self._faxbox(fax.faxbox_id)
        if n.channel == "email":
            await self._email(n, fax, faxbox)
        elif n.channel == "sms":
            await self._sms(n, fax, faxbox)
        else:
            raise DeliveryError(f"unknown channel {n.channel!r}", permanent=True)

    async def _faxbox(self, faxbox_id: str | None) -> Faxbox | None:
        if faxbox_id is None:
            return None
        try:
            return await self.store.get_faxbox(faxbox_id)
        except NotFoundError:
            return None  # deleted since: the notification still goes out

    async def _email(self, n: Notification, fax: Fax, faxbox: Faxbox | None) -> None:
        if self.mailer is None:
            raise DeliveryError("email is off: notifications.smarthost_host is not set", True)
        if not valid_address(n.recipient):
            raise DeliveryError(f"not an email address: {n.recipient!r}", permanent=True)
        attachment = await self._attachment(fax, faxbox)
        variables = fax_variables(fax, faxbox, n, attachment.filename if attachment else None)
        subject, body = self.templates.render_email(n.event, variables)
        message = compose_email(
            sender=self.settings.from_address,
            recipient=n.recipient,
            subject=subject,
            body=body,
            message_id=notification_message_id(n, self.settings.from_address),
            date=n.created,
            fax_id=fax.id,
            in_reply_to=fax.message_id if fax.direction is Direction.OUTBOUND else None,
            attachment=attachment,
        )
        await self.mailer.send(message, n.recipient)

    async def _attachment(self, fax: Fax, faxbox: Faxbox | None) -> Attachment | None:
        """The fax as PDF: always for a received fax (that is the point of fax-to-email); for
        a sent one when the fax's ``attach_pdf`` (set from the faxbox at intake) or else the
        faxbox's says so, on by default."""
        if fax.direction is Direction.OUTBOUND:
            wanted = fax.render_options.get("attach_pdf")
            if not isinstance(wanted, bool):
                wanted = faxbox.attach_pdf if faxbox is not None else True
            if not wanted:
                return None
        documents = await self.store.fax_documents(fax.id, "pdf")
        if not documents:
            return None  # failed before rendering, or nothing arrived
        return Attachment(f"fax-{fax.id}.pdf", documents[0].data)

    async def _sms(self, n: Notification, fax: Fax, faxbox: Faxbox | None) -> None:
        if self.sms is None:
            raise DeliveryError("SMS is off: notifications.sms.url is not set", permanent=True)
        variables = fax_variables(fax, faxbox, n, None)
        text = self.templates.render_sms(n.event, variables)
        await self.sms.send({**variables, "text": text})
