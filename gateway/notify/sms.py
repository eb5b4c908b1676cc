"""Texts through an HTTP webhook with httpx: URL, method, headers and a JSON body template."""

from __future__ import annotations

from collections.abc import Mapping
from string import Template
from typing import Any

import httpx

from gateway.config import SmsWebhookSettings
from gateway.errors import ConfigError, DeliveryError
from gateway.notify.templates import SMS_BODY_VARIABLES, check_template

# 4xx answers that say "later", not "never".
_RETRYABLE_4XX = frozenset({408, 409, 425, 429})


def check_body(template: Any, where: str = "notifications.sms.body") -> None:
    """Every string in the body template uses known variables only; else ConfigError."""
    if isinstance(template, str):
        check_template(template, where, SMS_BODY_VARIABLES)
    elif isinstance(template, Mapping):
        for key, value in template.items():
            check_body(value, f"{where}.{key}")
    elif isinstance(template, list):
        for n, value in enumerate(template):
            check_body(value, f"{where}[{n}]")


def render_body(template: Any, variables: Mapping[str, str]) -> Any:
    """Substitute in string leaves only: values are JSON-encoded afterwards, so a quote or
    brace in a fax's subject cannot change the document's shape."""
    if isinstance(template, str):
        return Template(template).substitute(variables)
    if isinstance(template, Mapping):
        return {key: render_body(value, variables) for key, value in template.items()}
    if isinstance(template, list):
        return [render_body(value, variables) for value in template]
    return template


class SmsWebhook:
    def __init__(self, settings: SmsWebhookSettings, client: httpx.AsyncClient | None = None):
        if not settings.url:
            raise ConfigError("notifications.sms.url is not set")
        check_body(settings.body)
        self.settings = settings
        self.url = settings.url
        # No redirects: a webhook that moves should be reconfigured, not followed with the
        # credentials in its headers.
        self.client = client or httpx.AsyncClient(
            timeout=settings.timeout_s, follow_redirects=False
        )

    async def send(self, variables: Mapping[str, str]) -> None:
        body = render_body(self.settings.body, variables)
        try:
            response = await self.client.request(
                self.settings.method, self.url, headers=self.settings.headers, json=body
            )
        except httpx.HTTPError as exc:
            raise DeliveryError(f"SMS webhook: {type(exc).__name__}: {exc}") from exc
        if response.is_success:
            return
        status = response.status_code
        text = " ".join(response.text[:200].split())
        raise DeliveryError(
            f"SMS webhook answered {status} {response.reason_phrase}: {text}".rstrip(": "),
            permanent=400 <= status < 500 and status not in _RETRYABLE_4XX,
        )

    async def close(self) -> None:
        await self.client.aclose()
