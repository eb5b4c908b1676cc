"""A client that hangs up while the database is busy costs nothing but its own session.

The writer is busy for a moment now and then (another message being committed, an admin CLI
command, a backup, another process holding the write lock). A client refused at that moment
hears its refusal and disconnects while the gateway is still waiting to write the session's
smtplog row. The row is still written, and the gateway goes on accepting mail.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from gateway.models import SmtpLogEntry
from gateway.store import SqliteStore, Store
from gateway.store.database import Database
from tests.builders import make_email
from tests.conftest import RawClient, StartServer, Tenant
from tests.test_store_transactions import another_writer


class WatchedStore(SqliteStore):
    """Tells the test when the gateway starts writing an smtplog row of its own."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.logging = threading.Event()

    async def write_smtplog(self, entry: SmtpLogEntry) -> None:
        self.logging.set()
        await super().write_smtplog(entry)


def line_too_long(client: RawClient) -> str:
    client.cmd("MAIL FROM:<alice@example.com>")
    client.cmd("RCPT TO:<+14155550100@fax.test>")
    client.cmd("DATA")
    client.send(b"Subject: long\r\n\r\n" + b"x" * 70_000 + b"\r\n.\r\n")
    return client.reply()


def size_too_large_at_mail(client: RawClient) -> str:
    return client.cmd("MAIL FROM:<alice@example.com> SIZE=20000")


def too_much_data(client: RawClient) -> str:
    client.cmd("MAIL FROM:<alice@example.com>")
    client.cmd("RCPT TO:<+14155550100@fax.test>")
    client.cmd("DATA")
    client.send(b"Subject: big\r\n\r\n" + (b"y" * 98 + b"\r\n") * 200 + b".\r\n")
    return client.reply()


def quit_without_waiting(client: RawClient) -> str:
    client.cmd("MAIL FROM:<alice@example.com>")
    client.cmd("RCPT TO:<+14155550100@fax.test>")
    client.send(b"QUIT\r\n")  # the 221 comes after the row, and the client does not wait
    return ""


@dataclass
class HangUp:
    provoke: Callable[[RawClient], str]
    reply: str  # what the client hears before it hangs up ("" for nothing)
    reply_code: int | None  # the row's
    smtp: dict[str, Any] = field(default_factory=dict)


HANG_UPS = {
    "after 500 line too long": HangUp(line_too_long, "500 5.5.2 Line too long", 500),
    "after 552 at MAIL SIZE": HangUp(
        size_too_large_at_mail, "552 5.3.4 ", 552, {"max_message_bytes": 10_000}
    ),
    "after 552 too much data": HangUp(
        too_much_data, "552 5.3.4 ", 552, {"max_message_bytes": 10_000}
    ),
    "after QUIT, before its reply": HangUp(quit_without_waiting, "", None),
}


@pytest.mark.parametrize("hang_up", HANG_UPS.values(), ids=HANG_UPS.keys())
async def test_hang_up_while_the_database_is_busy(
    start_server: StartServer, store: Store, tenant: Tenant, hang_up: HangUp, database: Database
) -> None:
    watched = WatchedStore(Database(database.path, "normal"), clock=store.clock)
    await watched.open()
    smtp = await start_server(intake_store=watched, **hang_up.smtp)

    def conversation() -> None:
        client = RawClient(smtp.host, smtp.port)
        client.cmd("EHLO raw.test")
        assert hang_up.provoke(client).startswith(hang_up.reply)
        assert watched.logging.wait(30)  # the gateway is waiting to write the row ...
        client.close()  # ... when the client goes

    with another_writer(database.path):  # a backup, a CLI command, another process
        await asyncio.to_thread(conversation)
        await asyncio.wait_for(smtp.server.wait_idle(), 30)  # the gateway saw the hang-up
    await smtp.settle()
    after = await smtp.transact(make_email())
    assert after.data is not None and after.data[0] == 250, after
    rows = await smtp.smtplog()
    assert [(r.helo, r.reply_code) for r in rows] == [
        ("raw.test", hang_up.reply_code),
        ("client.test", 250),
    ]
    await watched.close()
