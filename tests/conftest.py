from __future__ import annotations

import asyncio
import smtplib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from gateway.config import Settings, parse_settings
from gateway.models import Faxbox
from gateway.smtp.handler import IntakeHandler
from gateway.smtp.server import SmtpServer
from gateway.store import Store


class Clock:
    """An injectable clock that tests move by hand."""

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def make_settings(tmp_path: Path, **sections: dict[str, Any]) -> Settings:
    data: dict[str, Any] = {
        "storage": {"path": str(tmp_path / "gateway.sqlite3"), "synchronous": "normal"},
        "smtp": {"port": 0, "default_smtp_domain": "fax.test", "hostname": "gw.test"},
    }
    for name, values in sections.items():
        data.setdefault(name, {}).update(values)
    return parse_settings(data)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path)


@pytest.fixture
async def store(settings: Settings, clock: Clock) -> AsyncIterator[Store]:
    s = Store(settings.storage.path, settings.storage.synchronous, clock=clock)
    await s.open()
    yield s
    await s.close()


@dataclass
class Tenant:
    account_id: str
    auth_token: str
    faxbox: Faxbox


async def make_tenant(
    store: Store,
    name: str = "acme",
    domain: str = "fax.test",
    permit: tuple[str, ...] = ("*@example.com",),
    **faxbox_fields: Any,
) -> Tenant:
    account, token, _ = await store.create_account(name)
    password = faxbox_fields.pop("smtp_password", None)
    fields: dict[str, Any] = {
        "custom_smtp_email_address": domain,
        "caller_id": "+14155550199",
        "caller_name": "ACME",
        "fax_header": "ACME Corp",
        "fax_identity": "+1 415 555 0199",
        "smtp_permission_list": permit,
        "outbound_notify": ("ops@acme.test",),
        "owner_email": "owner@acme.test",
    }
    fields.update(faxbox_fields)
    faxbox = await store.create_faxbox(
        Faxbox(id="", account_id=account.id, name=name, smtp_email_address="", **fields),
        "fax.test",
        smtp_password=password,
    )
    return Tenant(account.id, token, faxbox)


@pytest.fixture
async def tenant(store: Store) -> Tenant:
    return await make_tenant(store)


@dataclass
class SmtpHarness:
    port: int
    server: SmtpServer
    store: Store

    def client(self, **kwargs: Any) -> smtplib.SMTP:
        client = smtplib.SMTP("127.0.0.1", self.port, local_hostname="client.test", **kwargs)
        return client

    async def run(self, fn: Callable[[smtplib.SMTP], Any]) -> Any:
        """Run a blocking smtplib conversation in a thread, so the server's loop keeps going."""

        def conversation() -> Any:
            with self.client() as client:
                return fn(client)

        result = await asyncio.to_thread(conversation)
        await self.server.handler.drain()
        return result

    async def send(self, message: Any, sender: str | None = None, to: Any = None) -> Any:
        def send(client: smtplib.SMTP) -> Any:
            return client.send_message(message, from_addr=sender, to_addrs=to)

        return await self.run(send)


async def start_smtp(store: Store, settings: Settings, clock: Clock) -> SmtpHarness:
    server = SmtpServer(IntakeHandler(store, settings.smtp, clock=clock), settings.smtp)
    port = await server.start()
    return SmtpHarness(port, server, store)


@pytest.fixture
async def smtp(store: Store, settings: Settings, clock: Clock) -> AsyncIterator[SmtpHarness]:
    harness = await start_smtp(store, settings, clock)
    yield harness
    await harness.server.close()
