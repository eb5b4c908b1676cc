"""Dev-config bootstrap: a demo account and a faxbox that accepts any sender on the default
domain, so that `make run` and the README's test email work on a fresh clone."""

from __future__ import annotations

from dataclasses import dataclass

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
