"""SMS through a real HTTP webhook: the configured method, headers and JSON body template."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.config import parse_settings
from gateway.errors import ConfigError
from gateway.models import NotificationState
from gateway.notify import Notifier
from gateway.store import Store
from tests.conftest import Clock, Tenant
from tests.notify.conftest import MakeNotifier
from tests.notify.support import TEMPLATES, Webhook, finished_fax


def sms_config(webhook: Webhook, **extra: object) -> dict[str, object]:
    return {
        "url": webhook.url,
        "headers": {"Authorization": "Bearer s3cret", "X-Tenant": "acme"},
        "body": {
            "to": "$recipient",
            "from": "$from_number",
            "text": "$text",
            "meta": {"fax": "$fax_id", "tags": ["fax", "$event"], "priority": 1},
        },
        **extra,
    }


async def test_webhook_receives_the_text_with_the_configured_headers(
    store: Store, tenant: Tenant, webhook: Webhook, make_notifier: MakeNotifier
) -> None:
    fax_id = await finished_fax(
        store, tenant, email_to=["nobody@example.com"], sms_to=["+15551230000", "+15551230001"]
    )
    notifier = make_notifier(None, sms=sms_config(webhook, method="PUT"))
    await notifier.run_until_idle()

    assert sorted(r.body["to"] for r in webhook.requests) == ["+15551230000", "+15551230001"]
    request = webhook.requests[0]
    assert (request.method, request.path) == ("PUT", "/sms/send")
    assert request.headers["authorization"] == "Bearer s3cret"
    assert request.headers["x-tenant"] == "acme"
    assert request.headers["content-type"] == "application/json"
    assert request.body["from"] == tenant.faxbox.caller_id
    assert request.body["meta"] == {
        "fax": fax_id,
        "tags": ["fax", "outbound_completed"],
        "priority": 1,
    }
    assert request.body["text"] == (
        f"Fax to Bob's Bakery (+12125550188) sent: 2 page(s), 2027-01-15 09:00:00 CET."
        f" Fax id {fax_id}."
    )
    states = {n.channel: n.state for n in await store.notifications_of_fax(fax_id)}
    assert states == {"email": NotificationState.DEAD, "sms": NotificationState.SENT}


async def test_a_quote_in_a_subject_cannot_break_the_json(
    store: Store, tenant: Tenant, webhook: Webhook, make_notifier: MakeNotifier
) -> None:
    await finished_fax(store, tenant, sms_to=["+15551230000"], subject='say "hi"}, {')
    config = sms_config(webhook, body={"text": "$subject"})
    await make_notifier(None, sms=config).run_until_idle()
    assert webhook.requests[0].body == {"text": 'say "hi"}, {'}


@pytest.mark.parametrize(
    ("status", "state"),
    [(400, NotificationState.DEAD), (429, NotificationState.PENDING), (503, "pending")],
)
async def test_webhook_errors_retry_or_give_up(
    store: Store,
    tenant: Tenant,
    webhook: Webhook,
    make_notifier: MakeNotifier,
    clock: Clock,
    status: int,
    state: str,
) -> None:
    webhook.status = status
    fax_id = await finished_fax(store, tenant, email_to=["x@example.com"], sms_to=["+15551230000"])
    await make_notifier(None, sms=sms_config(webhook)).run_until_idle()
    sms = [n for n in await store.notifications_of_fax(fax_id) if n.channel == "sms"]
    assert sms[0].state == state
    assert sms[0].error is not None and f"SMS webhook answered {status}" in sms[0].error
    if state == "pending":
        assert sms[0].next_attempt_at == clock.now + 60


def test_webhook_body_with_an_unknown_variable_is_refused_at_start(
    store: Store, tmp_path: Path
) -> None:
    settings = parse_settings(
        {
            "notifications": {
                "templates_dir": str(TEMPLATES),
                "sms": {"url": "http://127.0.0.1:9/", "body": {"text": "$txet"}},
            }
        }
    )
    with pytest.raises(ConfigError, match=r"notifications\.sms\.body\.text.*txet"):
        Notifier(store, settings.notifications)


def test_webhook_url_must_be_http() -> None:
    with pytest.raises(ConfigError, match=r"notifications\.sms\.url"):
        parse_settings({"notifications": {"sms": {"url": "ftp://example.com/"}}})
