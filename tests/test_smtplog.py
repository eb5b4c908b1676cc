"""Exactly one smtplog row per SMTP transaction, however it ends, with what happened in it."""

from __future__ import annotations

import asyncio
import re
import smtplib
import threading
from typing import Any

import pytest

from gateway.models import SmtpLogEntry
from gateway.store import SqliteStore, Store
from gateway.store.database import Database
from tests.builders import encrypted_pdf_bytes, image_bytes, make_email, pdf_bytes
from tests.conftest import (
    RawClient,
    SmtpHarness,
    StartServer,
    Tenant,
    TlsFiles,
    make_tenant,
    transact,
)


def crlf(data: bytes) -> bytes:
    return re.sub(rb"\r?\n", b"\r\n", data)


async def one_row(smtp: SmtpHarness) -> SmtpLogEntry:
    rows = await smtp.smtplog()
    assert len(rows) == 1, rows
    return rows[0]


async def test_accepted_message(smtp: SmtpHarness, tenant: Tenant) -> None:
    pdf, png = pdf_bytes(2), image_bytes("PNG")
    message = make_email(
        subject="Invoice 7",
        message_id="<inv-7@example.com>",
        attachments=[
            (pdf, "application/pdf", "C:\\Users\\alice\\Documents\\invoice.pdf"),
            (png, "image/png", "../../../etc/scan.png"),
        ],
    )
    data = crlf(message.as_bytes())
    rcpts = ["+1-415-555-0100@fax.test", "+14155550101@fax.test"]
    out = await smtp.transact(data, sender="Alice@Example.com", rcpts=rcpts)
    row = await one_row(smtp)
    assert row.peer_ip == "127.0.0.1"
    assert row.helo == "client.test"
    assert row.tls is False
    assert row.auth_user is None
    assert row.mail_from == "Alice@Example.com"
    assert [(r.address, r.reply, r.accepted) for r in row.recipients] == [
        (rcpts[0], "250 2.1.5 Recipient ok, fax to +14155550100", True),
        (rcpts[1], "250 2.1.5 Recipient ok, fax to +14155550101", True),
    ]
    first = row.recipients[0]
    assert first.original_number == "+1-415-555-0100"
    assert first.translated_number == "+14155550100"
    assert first.faxbox_domain == "fax.test"
    assert first.account_id == tenant.account_id
    assert first.faxbox_id == tenant.faxbox.id
    assert row.account_id == tenant.account_id
    assert row.faxbox_id == tenant.faxbox.id
    assert row.message_id == "<inv-7@example.com>"
    assert row.subject == "Invoice 7"
    assert row.size == len(data)
    assert row.documents == [
        {
            "content_type": "application/pdf",
            "filename": "invoice.pdf",
            "outcome": "document",
            "pages": "2",
        },
        {"content_type": "image/png", "filename": "scan.png", "outcome": "document", "pages": "1"},
    ]
    assert row.reply_code == 250
    assert row.reply_text == "250 " + out.data[1]  # type: ignore[index]
    assert row.errors == []
    assert row.fax_ids == out.fax_ids
    # The client's file names, without their folders, are what the job keeps too.
    names = [d.filename for d in await smtp.store.fax_documents(out.fax_ids[0])]
    assert names == ["invoice.pdf", "scan.png"]


async def test_rejected_at_mail(start_server: StartServer, tenant: Tenant) -> None:
    smtp = await start_server(max_message_bytes=10_000)

    def conversation(client: smtplib.SMTP) -> object:
        return transact(client, mail_options=("SIZE=20000",))

    out = await smtp.run(conversation)
    assert out.mail[0] == 552  # type: ignore[attr-defined]
    row = await one_row(smtp)
    assert row.mail_from == "alice@example.com"
    assert row.recipients == []
    assert row.reply_code == 552
    assert row.reply_text is not None and row.reply_text.startswith("552 5.3.4 ")
    assert row.errors and row.fax_ids == []


async def test_malformed_mail_from(smtp: SmtpHarness, tenant: Tenant) -> None:
    def conversation(client: smtplib.SMTP) -> tuple[int, bytes]:
        client.ehlo()
        return client.docmd("MAIL", "FROM:")

    code, _ = await smtp.run(conversation)
    assert code in (501, 553)
    row = await one_row(smtp)
    assert row.reply_code == code


@pytest.mark.parametrize("greeting", ["EHLO", "HELO"])
@pytest.mark.parametrize(
    "length",
    [
        pytest.param(1_000, id="over the command limit"),
        pytest.param(70_000, id="over the line limit"),  # longer than the stream's buffer
    ],
)
async def test_mail_command_too_long(
    smtp: SmtpHarness, tenant: Tenant, greeting: str, length: int
) -> None:
    sender = "a" * length + "@example.com"

    def conversation() -> tuple[str, str, str]:
        client = RawClient(smtp.host, smtp.port)
        client.cmd(f"{greeting} raw.test")
        refused = client.cmd(f"MAIL FROM:<{sender}>")
        then = client.cmd("MAIL FROM:<alice@example.com>")  # the session goes on
        quit_ = client.cmd("QUIT")
        client.close()
        return refused, then, quit_

    refused, then, _ = await smtp.thread(conversation)
    assert refused.startswith("500 ")
    assert then.startswith("250 ")
    rows = await smtp.smtplog()
    assert len(rows) == 2, rows
    assert rows[0].reply_code == 500
    assert rows[0].reply_text == refused
    assert rows[0].errors == ["MAIL command line too long"]
    assert rows[0].mail_from == sender[:320]
    assert rows[0].helo == "raw.test"
    assert rows[1].mail_from == "alice@example.com"


async def test_mail_command_not_ascii(smtp: SmtpHarness, tenant: Tenant) -> None:
    """SMTPUTF8 is not offered: aiosmtpd refuses a non-ASCII MAIL before any hook runs."""

    def conversation() -> str:
        client = RawClient(smtp.host, smtp.port)
        client.cmd("EHLO raw.test")
        client.send("MAIL FROM:<jörg@example.com>\r\n".encode())
        refused = client.reply()
        client.cmd("QUIT")
        client.close()
        return refused

    refused = await smtp.thread(conversation)
    assert refused.startswith("500 ")
    row = await one_row(smtp)
    assert (row.reply_code, row.reply_text) == (500, refused)
    assert row.errors == ["MAIL command line not ASCII (SMTPUTF8 is not offered)"]
    assert row.mail_from == "jörg@example.com"


async def test_other_commands_too_long_open_no_transaction(
    smtp: SmtpHarness, tenant: Tenant
) -> None:
    """Only MAIL begins a transaction; a RCPT too long is one more refusal in the open one."""

    def conversation() -> list[str]:
        client = RawClient(smtp.host, smtp.port)
        replies = [client.cmd("EHLO " + "h" * 1_000), client.cmd("NOOP " + "n" * 70_000)]
        client.cmd("EHLO raw.test")
        client.cmd("MAIL FROM:<alice@example.com>")
        replies.append(client.cmd("RCPT TO:<" + "1" * 1_000 + "@fax.test>"))
        client.cmd("QUIT")
        client.close()
        return replies

    replies = await smtp.thread(conversation)
    assert [r[:4] for r in replies] == ["500 "] * 3
    row = await one_row(smtp)
    assert row.mail_from == "alice@example.com"
    assert row.errors == ["RCPT command line too long", "client quit before DATA"]


async def test_mail_limit_is_per_session(smtp: SmtpHarness, tenant: Tenant) -> None:
    """A MAIL line that fits this session's limit (512 + 26 for SIZE after EHLO) still fits
    when another client connects meanwhile."""
    sender = "a" * 480 + "@example.com"

    def conversation() -> str:
        client = RawClient(smtp.host, smtp.port)
        client.cmd("EHLO raw.test")
        other = RawClient(smtp.host, smtp.port)
        reply = client.cmd(f"MAIL FROM:<{sender}> SIZE=1000")
        for c in (client, other):
            c.cmd("QUIT")
            c.close()
        return reply

    assert len(f"MAIL FROM:<{sender}> SIZE=1000") > 512
    assert (await smtp.thread(conversation)).startswith("250 ")


async def test_every_recipient_refused_then_quit(smtp: SmtpHarness, tenant: Tenant) -> None:
    rcpts = ["+14155550100@nowhere.example", "letters@fax.test"]
    out = await smtp.transact(make_email(), sender="eve@example.com", rcpts=rcpts)
    assert [c for c, _ in out.rcpts] == [550, 550]
    row = await one_row(smtp)
    assert [(r.address, r.reply[:9], r.accepted) for r in row.recipients] == [
        (rcpts[0], "550 5.7.1", False),
        (rcpts[1], "550 5.1.1", False),
    ]
    assert row.recipients[0].faxbox_domain == "nowhere.example"
    assert row.recipients[0].account_id is None
    assert row.recipients[1].faxbox_id == tenant.faxbox.id
    assert row.recipients[1].original_number == "letters"
    assert row.recipients[1].translated_number is None
    assert row.reply_code == 550
    assert row.reply_text == row.recipients[-1].reply
    assert row.errors[-1] == "client quit before DATA"
    assert row.fax_ids == []


async def test_rset(smtp: SmtpHarness, tenant: Tenant) -> None:
    def conversation(client: smtplib.SMTP) -> None:
        client.ehlo()
        client.mail("alice@example.com")
        client.rcpt("+14155550100@fax.test")
        client.rset()
        client.mail("bob@example.com")
        client.rset()
        client.rset()  # nothing open: no row

    await smtp.run(conversation)
    rows = await smtp.smtplog()
    assert [(r.mail_from, len(r.recipients), r.reply_code) for r in rows] == [
        ("alice@example.com", 1, None),
        ("bob@example.com", 0, None),
    ]
    assert rows[0].errors == ["transaction reset by client (RSET)"]
    assert await smtp.store.recent_faxes(None, 5) == []


async def test_ehlo_ends_an_open_transaction(smtp: SmtpHarness, tenant: Tenant) -> None:
    def conversation(client: smtplib.SMTP) -> object:
        client.ehlo()
        client.mail("alice@example.com")
        client.rcpt("+14155550100@fax.test")
        client.ehlo("again.test")
        return transact(client, data=make_email())

    out = await smtp.run(conversation)
    rows = await smtp.smtplog()
    assert [r.reply_code for r in rows] == [None, 250]
    assert rows[0].errors == ["transaction reset by client (HELO/EHLO)"]
    assert rows[1].helo == "again.test"
    assert rows[1].fax_ids == out.fax_ids  # type: ignore[attr-defined]


async def test_client_vanishes_mid_data(smtp: SmtpHarness, tenant: Tenant) -> None:
    def conversation() -> None:
        client = RawClient(smtp.host, smtp.port)
        assert client.cmd("EHLO raw.test").startswith("250")
        assert client.cmd("MAIL FROM:<alice@example.com>").startswith("250")
        assert client.cmd("RCPT TO:<+14155550100@fax.test>").startswith("250")
        assert client.cmd("DATA").startswith("354")
        client.send(crlf(make_email().as_bytes())[:300])  # and no end of data
        client.close()

    await smtp.thread(conversation)
    row = await one_row(smtp)
    assert row.helo == "raw.test"
    assert row.recipients[0].accepted
    assert row.reply_code is None
    assert row.errors == ["client disconnected during DATA"]
    assert await smtp.store.recent_faxes(None, 5) == []


async def test_client_vanishes_before_data(smtp: SmtpHarness, tenant: Tenant) -> None:
    def conversation() -> None:
        client = RawClient(smtp.host, smtp.port)
        client.cmd("HELO raw.test")
        client.cmd("MAIL FROM:<alice@example.com>")
        client.cmd("RCPT TO:<+14155550100@fax.test>")
        client.close()

    await smtp.thread(conversation)
    row = await one_row(smtp)
    assert row.errors == ["client disconnected"]


class GatedStore(SqliteStore):
    """A collaborator that holds the accepting commit until the test lets it go."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.entered = threading.Event()
        self.gate = asyncio.Event()

    async def accept_message(self, *args: Any, **kwargs: Any) -> None:
        self.entered.set()
        await self.gate.wait()
        await super().accept_message(*args, **kwargs)


async def test_client_vanishes_while_its_message_is_committed(
    start_server: StartServer, store: Store, tenant: Tenant, database: Database
) -> None:
    """The message is complete: it is committed and logged once even though no one hears
    the 250, and the MTA's retry gets the same fax id."""
    gated = GatedStore(Database(database.path, "normal"), clock=store.clock)
    await gated.open()
    smtp = await start_server(intake_store=gated)
    message = make_email(message_id="<lost-250@example.com>")

    def conversation() -> None:
        client = RawClient(smtp.host, smtp.port)
        client.cmd("EHLO raw.test")
        client.cmd("MAIL FROM:<alice@example.com>")
        client.cmd("RCPT TO:<+14155550100@fax.test>")
        client.cmd("DATA")
        client.send(crlf(message.as_bytes()) + b".\r\n")
        assert gated.entered.wait(30)
        client.close()  # gone before the reply

    client = asyncio.ensure_future(asyncio.to_thread(conversation))
    await asyncio.wait_for(smtp.server.wait_idle(), 30)  # the client has hung up ...
    await client
    gated.gate.set()  # ... and only now does the commit go ahead
    await smtp.settle()
    row = await one_row(smtp)
    assert row.reply_code == 250
    assert len(row.fax_ids) == 1
    [fax] = await smtp.store.recent_faxes(None, 5)
    assert fax.id == row.fax_ids[0]
    retry = await smtp.transact(message)
    assert retry.fax_ids == row.fax_ids
    await gated.close()


async def test_session_timeout_mid_transaction(start_server: StartServer, tenant: Tenant) -> None:
    smtp = await start_server(timeout_s=0.3)

    def conversation() -> bool:
        client = RawClient(smtp.host, smtp.port)
        client.cmd("EHLO raw.test")
        client.cmd("MAIL FROM:<alice@example.com>")
        client.cmd("RCPT TO:<+14155550100@fax.test>")
        closed = client.closed_by_server()  # waits for the server to give up on us
        client.close()
        return closed

    assert await smtp.thread(conversation)
    row = await one_row(smtp)
    assert row.errors == ["session timed out"]


async def test_oversized_data(start_server: StartServer, tenant: Tenant) -> None:
    smtp = await start_server(max_message_bytes=20_000)
    message = make_email(attachments=[(pdf_bytes(1) * 3, "application/octet-stream", "b.bin")])
    out = await smtp.transact(message)
    assert out.data is not None and out.data[0] == 552
    row = await one_row(smtp)
    assert row.reply_code == 552
    assert row.reply_text == "552 5.3.4 Message exceeds the maximum size of 20000 bytes"
    assert row.recipients[0].accepted
    assert row.fax_ids == []


async def test_rejected_document_is_described(smtp: SmtpHarness, tenant: Tenant) -> None:
    message = make_email(
        attachments=[
            (pdf_bytes(), "application/pdf", "fine.pdf"),
            (encrypted_pdf_bytes(), "application/pdf", "/home/alice/locked.pdf"),
        ]
    )
    out = await smtp.transact(message)
    assert out.data is not None and out.data[0] == 554
    row = await one_row(smtp)
    assert row.documents == [
        {
            "content_type": "application/pdf",
            "filename": "fine.pdf",
            "outcome": "document",
            "pages": "1",
        },
        {"content_type": "application/pdf", "filename": "locked.pdf", "outcome": "rejected"},
    ]
    assert row.errors == ["locked.pdf: encrypted PDF needs a password"]
    assert "/home" not in (row.reply_text or "")


async def test_mixed_recipients_each_keep_their_reply(
    smtp: SmtpHarness, store: Store, tenant: Tenant
) -> None:
    await make_tenant(store, "strict", domain="strict.test", permit=("boss@example.com",))
    rcpts = ["+14155550100@fax.test", "+14155550101@strict.test", "+14155550102@fax.test"]
    out = await smtp.transact(make_email(), rcpts=rcpts)
    row = await one_row(smtp)
    assert [r.reply for r in row.recipients] == [f"{c} {t}" for c, t in out.rcpts]
    assert [r.accepted for r in row.recipients] == [True, False, True]
    assert row.reply_code == 250
    assert len(row.fax_ids) == 2
    assert row.errors == [f"{rcpts[1]}: {row.recipients[1].reply}"]


async def test_proxy_protocol_address_is_logged(start_server: StartServer, tenant: Tenant) -> None:
    smtp = await start_server(proxy_protocol=True)
    proxy = b"PROXY TCP4 203.0.113.7 192.0.2.25 40000 25\r\n"

    def conversation() -> None:
        client = RawClient(smtp.host, smtp.port, preamble=proxy)
        assert client.banner.startswith("220")
        client.cmd("EHLO proxied.test")
        client.cmd("MAIL FROM:<alice@example.com>")
        client.cmd("RCPT TO:<+14155550100@fax.test>")
        assert client.cmd("DATA").startswith("354")
        assert client.cmd(crlf(make_email().as_bytes()).decode() + ".").startswith("250")
        client.cmd("QUIT")
        client.close()

    await smtp.thread(conversation)
    row = await one_row(smtp)
    assert row.peer_ip == "203.0.113.7"
    assert row.reply_code == 250


async def test_several_transactions_several_rows(smtp: SmtpHarness, tenant: Tenant) -> None:
    def conversation(client: smtplib.SMTP) -> None:
        transact(client, data=make_email())  # accepted
        transact(client, rcpts=["+14155550100@nowhere.example"], data=make_email())  # refused
        client.rset()  # as smtplib.sendmail does after refusals
        transact(client, data=make_email(body=None))  # refused at DATA (no document)
        client.rset()  # nothing open: no row

    await smtp.run(conversation)
    rows = await smtp.smtplog()
    assert [r.reply_code for r in rows] == [250, 550, 554]
    assert len({r.id for r in rows}) == 3


async def test_proxy_address_survives_starttls(
    start_server: StartServer, tenant: Tenant, tls_files: TlsFiles
) -> None:
    smtp = await start_server(
        proxy_protocol=True, tls_cert=str(tls_files.cert), tls_key=str(tls_files.key)
    )
    proxy = b"PROXY TCP4 203.0.113.9 192.0.2.25 40000 25\r\n"

    class Proxied(smtplib.SMTP):
        def _get_socket(self, host: str, port: int, timeout: float) -> Any:
            sock = super()._get_socket(host, port, timeout)  # type: ignore[misc]
            sock.sendall(proxy)
            return sock

    def conversation() -> object:
        with Proxied(smtp.host, smtp.port, local_hostname="client.test", timeout=30) as client:
            client.starttls(context=tls_files.client_context)
            return transact(client, data=make_email())

    out = await smtp.thread(conversation)
    assert out.data[0] == 250  # type: ignore[attr-defined]
    row = await one_row(smtp)
    assert row.peer_ip == "203.0.113.9"
    assert row.tls is True
