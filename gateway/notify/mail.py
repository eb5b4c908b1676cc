"""Sending notification email to the configured smarthost with aiosmtplib (its one user)."""

from __future__ import annotations

import re
import ssl
from email.message import EmailMessage

import aiosmtplib

from gateway.config import NotificationSettings
from gateway.errors import ConfigError, DeliveryError

# The 5xx replies that blame this one recipient or message (RFC 3463): a bad address (5.1.x),
# a message too big for the system (5.2.3, 5.3.4). Retrying cannot help those, so they die at
# once. Every other 5xx (relaying denied, a policy, a broken smarthost) usually blames the
# gateway's own setup: retried until max_age_s, so fixing the setup in time loses nothing.
_PERMANENT = re.compile(r"5\.(1\.\d{1,3}|2\.3|3\.4)\b")


def permanent_reply(code: int, message: str) -> bool:
    return code >= 500 and _PERMANENT.match(message.strip()) is not None


class SmtpMailer:
    """One connection per message: receipts are few, and a fresh connection never meets a
    smarthost that dropped an idle session."""

    def __init__(self, settings: NotificationSettings) -> None:
        if not settings.smarthost_host:
            raise ConfigError("notifications.smarthost_host is not set")
        self.settings = settings
        self.host = settings.smarthost_host
        self.tls_context: ssl.SSLContext | None = None
        if settings.smarthost_ca_file is not None:
            try:
                self.tls_context = ssl.create_default_context(
                    cafile=str(settings.smarthost_ca_file)
                )
            except (OSError, ssl.SSLError) as exc:
                raise ConfigError(
                    f"notifications.smarthost_ca_file {settings.smarthost_ca_file}: {exc}"
                ) from exc

    def describe(self) -> str:
        s = self.settings
        return f"{self.host}:{s.smarthost_port} ({s.smarthost_tls})"

    async def send(self, message: EmailMessage, recipient: str) -> None:
        """Deliver to one recipient, or raise DeliveryError (see ``permanent_reply``)."""
        s = self.settings
        try:
            await aiosmtplib.send(
                message,
                sender=s.from_address,
                recipients=[recipient],
                hostname=self.host,
                port=s.smarthost_port,
                username=s.smarthost_user,
                password=s.smarthost_password,
                use_tls=s.smarthost_tls == "tls",
                # "none" must not upgrade by surprise, "starttls" must not fall back to plain.
                start_tls=s.smarthost_tls == "starttls",
                tls_context=self.tls_context,
                timeout=s.timeout_s,
            )
        except aiosmtplib.SMTPRecipientsRefused as exc:
            text = "; ".join(f"{r.code} {r.message}" for r in exc.recipients)
            raise DeliveryError(
                f"smarthost refused the recipient: {text}",
                permanent=all(permanent_reply(r.code, r.message) for r in exc.recipients),
            ) from exc
        except (aiosmtplib.SMTPRecipientRefused, aiosmtplib.SMTPDataError) as exc:
            raise DeliveryError(
                f"smarthost refused the message: {exc.code} {exc.message}",
                permanent=permanent_reply(exc.code, exc.message),
            ) from exc
        except aiosmtplib.SMTPResponseException as exc:
            # HELO, AUTH, MAIL FROM: the gateway's own setup, which the operator can fix.
            raise DeliveryError(f"smarthost {self.describe()}: {exc.code} {exc.message}") from exc
        except (aiosmtplib.SMTPException, OSError, ssl.SSLError) as exc:
            reason = str(exc) or type(exc).__name__
            raise DeliveryError(f"smarthost {self.describe()}: {reason}") from exc
