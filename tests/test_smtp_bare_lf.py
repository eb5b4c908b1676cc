"""Mail whose lines end in LF alone, as scripts and scan-to-email devices send it."""

from __future__ import annotations

import smtplib

import pytest

from gateway.models import DocumentKind
from tests.builders import make_email, pdf_bytes
from tests.conftest import RawClient, SmtpHarness, StartServer, Tenant

RCPT = "+14155550100@fax.test"


def big_pdf() -> bytes:
    """A PDF of some 100 KB: its base64 runs well past the 64 KiB line limit."""
    data = pdf_bytes(1)
    return data + b"%" + b"p" * (100_000 - len(data)) + b"\n"


def send_as_bytes(raw: bytes) -> object:
    def send(client: smtplib.SMTP) -> object:
        try:
            return client.sendmail("alice@example.com", [RCPT], raw)
        except smtplib.SMTPDataError as exc:
            return (exc.smtp_code, exc.smtp_error.decode())

    return send


async def test_message_with_bare_lf_line_ends_is_faxed(smtp: SmtpHarness, tenant: Tenant) -> None:
    pdf = big_pdf()
    raw = make_email(attachments=[(pdf, "application/pdf", "scan.pdf")]).as_bytes()
    assert b"\r\n" not in raw and len(raw) > 130_000  # LF line ends only, past 64 KiB
    refused = await smtp.run(send_as_bytes(raw))
    assert refused == {}  # every recipient accepted and the data answered 250
    [row] = await smtp.smtplog()
    assert row.reply_code == 250, row.reply_text
    [fax_id] = row.fax_ids
    [document] = await smtp.store.fax_documents(fax_id)
    assert (document.kind, document.data, document.filename) == (DocumentKind.PDF, pdf, "scan.pdf")


async def test_bare_lf_refused_when_the_operator_says_so(
    start_server: StartServer, tenant: Tenant
) -> None:
    harness = await start_server(bare_lf="reject")
    raw = make_email(attachments=[(pdf_bytes(1), "application/pdf", "a.pdf")]).as_bytes()
    answer = await harness.run(send_as_bytes(raw))
    assert isinstance(answer, tuple)
    code, text = answer
    assert code == 550 and text.startswith("5.6.2 ") and "bare LF" in text
    [row] = await harness.smtplog()
    assert row.reply_code == 550 and row.fax_ids == []
    assert any("bare LF" in error for error in row.errors)


async def test_crlf_mail_accepted_when_bare_lf_is_refused(
    start_server: StartServer, tenant: Tenant
) -> None:
    harness = await start_server(bare_lf="reject")
    out = await harness.transact(
        make_email(attachments=[(pdf_bytes(1), "application/pdf", "a.pdf")])
    )
    assert out.data is not None and out.data[0] == 250


@pytest.mark.parametrize("false_end", [b"\n.\n", b"\r.\r", b"\n.\r\n", b"\r\n.\n"])
async def test_no_command_is_smuggled_behind_a_false_end_of_data(
    smtp: SmtpHarness, tenant: Tenant, false_end: bytes
) -> None:
    """Only CRLF "." CRLF ends the data: what follows a bare LF or CR "." line is message
    text, however much it looks like a second transaction."""
    smuggled = (
        b"MAIL FROM:<mallory@example.com>\r\nRCPT TO:<+14155550666@fax.test>\r\n"
        b"DATA\r\nSubject: smuggled\r\n\r\nsmuggled fax"
    )
    message = b"From: alice@example.com\r\nSubject: real\r\n\r\nreal fax" + false_end + smuggled

    def conversation() -> list[str]:
        client = RawClient(smtp.host, smtp.port)
        try:
            replies = [client.cmd("EHLO client.test"), client.cmd("MAIL FROM:<alice@example.com>")]
            replies += [client.cmd(f"RCPT TO:<{RCPT}>"), client.cmd("DATA")]
            client.send(message + b"\r\n.\r\n")
            replies += [client.reply(), client.cmd("QUIT")]
            return replies
        finally:
            client.close()

    replies = await smtp.thread(conversation)
    assert replies[-2].startswith("250 2.0.0 queued as "), replies
    [row] = await smtp.smtplog()  # one transaction: the smuggled one was never a command
    [fax_id] = row.fax_ids
    fax = await smtp.store.get_fax(fax_id)
    assert (fax.to_number, fax.subject) == ("+14155550100", "real")
    [document] = await smtp.store.fax_documents(fax_id)
    assert b"smuggled fax" in document.data and b"mallory@example.com" in document.data
