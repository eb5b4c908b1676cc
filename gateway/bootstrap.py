"""Dev-config bootstrap: a demo account and a faxbox that accepts any sender on the default
domain, so that `make run` and the README's test email work on a fresh clone."""

from __future__ import annotations

import asyncio
import smtplib
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import make_msgid

from gateway.config import Settings
from gateway.models import Faxbox
from gateway.store import Store

DEMO_ACCOUNT = "demo"


@dataclass(frozen=True)
class DemoCredentials:
    account_id: str
    faxbox_id: str
    smtp_domain: str
    auth_token: str
    created: bool


async def ensure_demo(store: Store, settings: Settings) -> DemoCredentials | None:
    if not settings.bootstrap.enabled:
        return None
    domain = settings.smtp.default_smtp_domain.lower()
    faxbox = await store.faxbox_by_domain(domain)
    if faxbox is not None:
        # Tokens are stored hashed, so a restart cannot show the old one: issue a fresh one.
        # Each start prints a new one: issued like /v2/api_auth's, so restarts cannot pile up
        # permanent tokens.
        token = await store.issue_auth_token(
            faxbox.account_id,
            ttl_s=settings.http.token_ttl_s,
            keep=settings.http.max_tokens_per_account,
        )
        return DemoCredentials(faxbox.account_id, faxbox.id, domain, token, created=False)
    account, token, _ = await store.create_account(DEMO_ACCOUNT)
    faxbox = await store.create_faxbox(
        Faxbox(
            id="",
            account_id=account.id,
            name="demo",
            smtp_email_address="",
            custom_smtp_email_address=domain,
            caller_id="+14155550100",
            caller_name="fax-gateway demo",
            fax_header="fax-gateway demo",
            fax_identity="+1 415 555 0100",
            fax_number="+14155550101",
            smtp_permission_list=("re:.*",),
            # Faxes received at fax_number go here (the dev smarthost is a local sink).
            inbound_notify=("fax-inbox@localhost",),
        ),
        settings.smtp.default_smtp_domain,
    )
    return DemoCredentials(account.id, faxbox.id, domain, token, created=True)


DEMO_NUMBER = "+14155550123"  # answers on the loopback line (the dev config's default)


def demo_message(domain: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = "fax-gateway <demo@localhost>"
    message["To"] = f"{DEMO_NUMBER}@{domain}"
    message["Subject"] = "fax-gateway test fax"
    message["Message-ID"] = make_msgid(domain="fax-gateway.demo")
    message.set_content(
        "This is the fax-gateway test fax.\n\n"
        "It was mailed to the demo faxbox through the gateway's own SMTP listener when the\n"
        "gateway first started. Open http://127.0.0.1:8000/console/ to see its pages,\n"
        "its attempts and its smtplog row.\n"
    )
    return message


async def send_demo_fax(host: str, port: int, domain: str) -> None:
    """Mail the test fax through the SMTP listener, as any client would (so it also leaves
    its smtplog row); smtplib blocks, so it runs in a thread."""
    # A listener on every interface is reached on loopback (a comparison, not a bind).
    host = "127.0.0.1" if host in ("", "0.0.0.0", "::") else host  # noqa: S104
    message = demo_message(domain)

    def send() -> None:
        with smtplib.SMTP(host, port, local_hostname="localhost", timeout=60) as client:
            client.send_message(message)

    await asyncio.to_thread(send)
