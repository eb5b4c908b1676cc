"""Every reply the SMTP edge gives: specific, truthful, and never a false 250."""

from __future__ import annotations

import smtplib
import sqlite3

import pytest

from gateway.store import SqliteStore, Store
from gateway.store.database import Database
from tests.builders import (
    DOCX,
    corrupt_pdf_bytes,
    docx_bytes,
    encrypted_pdf_bytes,
    html_with_images,
    image_bytes,
    make_email,
    pdf_bytes,
)
from tests.conftest import SmtpHarness, StartServer, Tenant, TlsFiles, make_tenant
from tests.malformed import (
    encrypted_pdf,
    jpeg_claiming,
    pdf_with_unknown_crypt_filter,
    pdf_with_unknown_security_handler,
    png,
    tiff_claiming,
    tiff_with_ifd_loop,
    tiff_with_strip_offset_past_end,
    truncated_jpeg,
)

PDF = (pdf_bytes(1), "application/pdf", "doc.pdf")


def fax_mail(*attachments: tuple[bytes, str, str | None], body: str | None = "Hi") -> bytes:
    return make_email(body=body, attachments=list(attachments or [PDF])).as_bytes()


async def only_row(smtp: SmtpHarness, code: int | None) -> None:
    rows = await smtp.smtplog()
    assert len(rows) == 1, rows
    assert rows[0].reply_code == code


async def no_faxes(store: Store) -> None:
    assert await store.recent_faxes(None, 10) == []


# -- RCPT: domain, number, sender ------------------------------------------------------------


async def test_unknown_domain_is_relaying_denied(smtp: SmtpHarness, tenant: Tenant) -> None:
    out = await smtp.transact(fax_mail(), rcpts=["+14155550100@elsewhere.example"])
    assert out.rcpts == [
        (550, "5.7.1 relaying denied: elsewhere.example is not a fax domain of this gateway")
    ]
    assert out.data is None
    await only_row(smtp, 550)
    await no_faxes(smtp.store)


@pytest.mark.parametrize(
    "local",
    [
        "12",  # too short to be a number
        "fax2-4155551212",  # letters are refused, never stripped to 24155551212
        "4155550100x",
        "+1 415 555 0100",
        "1--415",
        "+",
        "999999999999999999",
    ],
)
async def test_invalid_number(smtp: SmtpHarness, tenant: Tenant, local: str) -> None:
    address = f'"{local}"@fax.test' if " " in local else f"{local}@fax.test"
    out = await smtp.transact(fax_mail(), rcpts=[address])
    assert out.rcpts[0][0] == 550
    assert out.rcpts[0][1].startswith("5.1.1 ")
    await only_row(smtp, 550)
    await no_faxes(smtp.store)


@pytest.mark.parametrize(
    ("local", "e164"),
    [
        ("+14155550100", "+14155550100"),
        ("+1-415-555-0100", "+14155550100"),
        ("415.555.0100", "+14155550100"),
        ("14155550100", "+14155550100"),
        ("+442071838750", "+442071838750"),
    ],
)
async def test_number_separators_are_allowed(
    smtp: SmtpHarness, tenant: Tenant, local: str, e164: str
) -> None:
    out = await smtp.transact(fax_mail(), rcpts=[f"{local}@fax.test"])
    assert out.rcpts == [(250, f"2.1.5 Recipient ok, fax to {e164}")]
    assert out.data is not None and out.data[0] == 250
    fax = await smtp.store.get_fax(out.fax_ids[0])
    assert fax.to_number == e164
    assert fax.original_number == local


@pytest.mark.parametrize(
    ("rule", "sender", "admitted"),
    [
        ("bob@corp.com", "bob@corp.com", True),
        ("bob@corp.com", "BOB@Corp.COM", True),
        ("bob@corp.com", "evilbob@corp.com.attacker.net", False),
        ("bob@corp.com", "bob@corp.com.attacker.net", False),
        ("bob@corp.com", "evilbob@corp.com", False),
        ("bob@corp.com", "alice@corp.com", False),
        ("*@corp.com", "anyone@corp.com", True),
        ("*@corp.com", "anyone@CORP.com", True),
        ("*@corp.com", "anyone@evilcorp.com", False),
        ("*@corp.com", "anyone@corp.com.attacker.net", False),
        ("*@corp.com", "anyone@sub.corp.com", False),
        ("@corp.com", "anyone@corp.com", True),
        ("@corp.com", "anyone@evilcorp.com", False),
        ("@corp.com", "anyone@corp.com.attacker.net", False),
        (r"re:[a-z]+@(sales|ops)\.corp\.com", "ann@sales.corp.com", True),
        (r"re:[a-z]+@(sales|ops)\.corp\.com", "ANN@OPS.CORP.COM", True),
        (r"re:[a-z]+@(sales|ops)\.corp\.com", "ann@sales.corp.com.attacker.net", False),
        (r"re:[a-z]+@(sales|ops)\.corp\.com", "x.ann@sales.corp.com", False),
        (r"re:bob@corp.com", "bob@corpxcom", True),  # "." is a regex dot, as written
        (r"re:bob@corp\.com", "bob@corpxcom", False),
    ],
)
async def test_sender_rules(
    smtp: SmtpHarness, store: Store, rule: str, sender: str, admitted: bool
) -> None:
    await make_tenant(store, permit=(rule,))
    out = await smtp.transact(fax_mail(), sender=sender)
    if admitted:
        assert out.rcpts[0][0] == 250
        assert out.data is not None and out.data[0] == 250
    else:
        assert out.rcpts[0][0] == 550
        assert out.rcpts[0][1].startswith("5.7.1 ")
        assert "not allowed" in out.rcpts[0][1]
        await no_faxes(store)
    await only_row(smtp, 250 if admitted else 550)


async def test_a_backtracking_sender_rule_cannot_stall_the_gateway(
    smtp: SmtpHarness, store: Store
) -> None:
    # (a+)+$ backtracks for ever on 40 a's and a "!" in a backtracking engine; the server
    # runs on this test's event loop, so before the fix this RCPT never got an answer.
    await make_tenant(store, permit=("re:(a+)+$", "*@example.com"), owner_email=None)
    hostile = await smtp.transact(fax_mail(), sender="a" * 40 + "!@example.org")
    assert hostile.rcpts[0][0] == 550 and hostile.rcpts[0][1].startswith("5.7.1 ")
    assert (await smtp.transact(fax_mail(), sender="ann@example.com")).fax_ids


async def test_owner_is_always_allowed(smtp: SmtpHarness, store: Store) -> None:
    await make_tenant(store, permit=("*@corp.com",), owner_email="Boss@Home.example")
    out = await smtp.transact(fax_mail(), sender="boss@home.example")
    assert out.data is not None and out.data[0] == 250


async def test_empty_permission_list_denies(smtp: SmtpHarness, store: Store) -> None:
    await make_tenant(store, permit=(), owner_email=None)
    out = await smtp.transact(fax_mail(), sender="anyone@example.com")
    assert out.rcpts[0][0] == 550
    assert out.rcpts[0][1].startswith("5.7.1 ")
    await no_faxes(store)


async def test_empty_permission_list_admits_all_when_configured(
    start_server: StartServer, store: Store
) -> None:
    await make_tenant(store, permit=(), owner_email=None)
    smtp = await start_server(allow_all_addresses_when_empty=True)
    out = await smtp.transact(fax_mail(), sender="anyone@example.com")
    assert out.data is not None and out.data[0] == 250


async def test_null_sender_is_refused(smtp: SmtpHarness, tenant: Tenant) -> None:
    out = await smtp.transact(fax_mail(), sender="<>")
    assert out.mail[0] == 250
    assert out.rcpts[0][0] == 550
    assert out.rcpts[0][1].startswith("5.7.1 ")


async def test_realm_routes_by_sender(smtp: SmtpHarness, store: Store) -> None:
    realm = await make_tenant(
        store, "corp", domain=None, realm="corp.example", permit=("*@corp.example",)
    )
    ok = await smtp.transact(
        fax_mail(), sender="ann@corp.example", rcpts=["+14155550100@corp.example"]
    )
    assert ok.data is not None and ok.data[0] == 250
    fax = await store.get_fax(ok.fax_ids[0])
    assert fax.faxbox_id == realm.faxbox.id
    denied = await smtp.transact(
        fax_mail(), sender="eve@example.net", rcpts=["+14155550100@corp.example"]
    )
    assert denied.rcpts[0][0] == 550
    assert denied.rcpts[0][1].startswith("5.7.1 ")


async def test_too_many_recipients(start_server: StartServer, tenant: Tenant) -> None:
    smtp = await start_server(max_recipients=2)
    rcpts = [f"+1415555010{n}@fax.test" for n in range(3)]
    out = await smtp.transact(fax_mail(), rcpts=rcpts)
    assert [code for code, _ in out.rcpts] == [250, 250, 452]
    assert out.rcpts[2][1].startswith("4.5.3 ")
    assert len(out.fax_ids) == 2
    await only_row(smtp, 250)


# -- DATA: the documents ---------------------------------------------------------------------


async def test_encrypted_pdf_names_the_part(smtp: SmtpHarness, tenant: Tenant) -> None:
    data = fax_mail((encrypted_pdf_bytes(), "application/pdf", "locked.pdf"))
    out = await smtp.transact(data)
    assert out.data is not None
    assert out.data[0] == 554
    assert out.data[1].startswith("5.6.0 locked.pdf: ")
    assert "encrypted" in out.data[1]
    await only_row(smtp, 554)
    await no_faxes(smtp.store)


@pytest.mark.parametrize("algorithm", ["AES-256", "AES-128", "RC4-128"])
async def test_permissions_only_encrypted_pdf_is_queued(
    smtp: SmtpHarness, tenant: Tenant, algorithm: str
) -> None:
    out = await smtp.transact(fax_mail((encrypted_pdf(algorithm), "application/pdf", "p.pdf")))
    assert out.data is not None and out.data[0] == 250, out.data
    [*_text, document] = await smtp.store.fax_documents(out.fax_ids[0])
    assert (document.filename, document.pages) == ("p.pdf", 2)


@pytest.mark.parametrize("algorithm", ["AES-256", "AES-128", "RC4-128"])
async def test_pdf_that_needs_a_password_is_refused_for_good(
    smtp: SmtpHarness, tenant: Tenant, algorithm: str
) -> None:
    locked = encrypted_pdf(algorithm, user_password="secret")
    out = await smtp.transact(fax_mail((locked, "application/pdf", "locked.pdf")))
    assert out.data == (554, "5.6.0 locked.pdf: encrypted PDF needs a password")
    await only_row(smtp, 554)
    await no_faxes(smtp.store)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (
            pdf_with_unknown_security_handler(),
            "PDF encryption not supported (only Standard PDF encryption handler is available)",
        ),
        (
            pdf_with_unknown_crypt_filter(),
            "PDF encryption not supported (StmF Method /AESV9 NOT supported)",
        ),
    ],
    ids=["handler", "crypt-filter"],
)
async def test_unreadable_encryption_is_refused_not_retried(
    smtp: SmtpHarness, tenant: Tenant, data: bytes, reason: str
) -> None:
    out = await smtp.transact(fax_mail((data, "application/pdf", "odd.pdf")))
    assert out.data == (554, f"5.6.0 odd.pdf: {reason}")
    await only_row(smtp, 554)
    await no_faxes(smtp.store)


@pytest.mark.parametrize(
    ("data", "ctype", "reason"),
    [
        (png(400, 400, rows=120), "image/png", "image data ends early: 120 of 400 rows"),
        (
            tiff_with_strip_offset_past_end(),
            "image/tiff",
            "TIFF page 1: strip offset beyond end of file",
        ),
        (tiff_with_ifd_loop(), "image/tiff", "TIFF IFD chain loops back to page 1"),
        (truncated_jpeg(), "image/jpeg", "image data ends early (file truncated)"),
        (
            png(30000, 30000, rows=1),
            "image/png",
            "image too large: 30000x30000 pixels (exceeds 50000000 pixels)",
        ),
        (
            jpeg_claiming(30000, 30000),
            "image/jpeg",
            "image too large: 30000x30000 pixels (exceeds 50000000 pixels)",
        ),
        (
            tiff_claiming(30000, 30000),
            "image/tiff",
            "TIFF page 1: image too large: 30000x30000 pixels (exceeds 50000000 pixels)",
        ),
    ],
    ids=[
        "png-short",
        "tiff-strip-offset",
        "tiff-ifd-loop",
        "jpeg-truncated",
        "png-too-large",
        "jpeg-too-large",
        "tiff-too-large",
    ],
)
async def test_malformed_image_is_refused_saying_what_is_wrong(
    smtp: SmtpHarness, tenant: Tenant, data: bytes, ctype: str, reason: str
) -> None:
    out = await smtp.transact(fax_mail(PDF, (data, ctype, "scan")))
    assert out.data == (554, f"5.6.0 scan: {reason}")
    await only_row(smtp, 554)
    await no_faxes(smtp.store)


async def test_corrupt_pdf_names_the_part(smtp: SmtpHarness, tenant: Tenant) -> None:
    data = fax_mail(PDF, (corrupt_pdf_bytes(), "application/pdf", "broken.pdf"))
    out = await smtp.transact(data)
    assert out.data is not None
    assert out.data[0] == 554
    assert out.data[1].startswith("5.6.0 broken.pdf: ")
    assert "corrupt" in out.data[1].lower()
    await no_faxes(smtp.store)


async def test_part_labelled_pdf_that_is_not_one(smtp: SmtpHarness, tenant: Tenant) -> None:
    out = await smtp.transact(fax_mail((b"hello, world\n" * 10, "application/pdf", "fake.pdf")))
    assert out.data is not None
    assert out.data[0] == 554
    assert out.data[1].startswith("5.6.0 fake.pdf: ")


async def test_corrupt_image_names_the_part(smtp: SmtpHarness, tenant: Tenant) -> None:
    png = image_bytes("PNG")
    out = await smtp.transact(fax_mail((png[:60], "image/png", "scan.png")))
    assert out.data is not None
    assert out.data[0] == 554
    assert out.data[1].startswith("5.6.0 scan.png: ")


async def test_no_fax_document(smtp: SmtpHarness, tenant: Tenant) -> None:
    message = make_email(body=None)
    message.set_content("   \n")  # only blank text: nothing to fax
    out = await smtp.transact(message)
    assert out.data == (554, "5.6.0 no fax document in message")
    await only_row(smtp, 554)


async def test_only_a_logo_is_no_fax_document(smtp: SmtpHarness, tenant: Tenant) -> None:
    # The HTML shows the image (cid:) and has no text: nothing to fax.
    html = '<img src="cid:logo@x">'
    message = html_with_images(html, [(image_bytes("PNG", (120, 40)), "<logo@x>", None)])
    out = await smtp.transact(message)
    assert out.data == (554, "5.6.0 no fax document in message")


@pytest.mark.parametrize(
    ("ctype", "filename"),
    [
        (DOCX, "letter.docx"),
        ("application/msword", "letter.doc"),
        ("application/octet-stream", "letter.docx"),
    ],
)
async def test_only_unsupported_documents(
    smtp: SmtpHarness, tenant: Tenant, ctype: str, filename: str
) -> None:
    # The body text must not stand in for the attachment the sender meant to fax.
    out = await smtp.transact(fax_mail((docx_bytes(), ctype, filename), body="Please fax this."))
    assert out.data is not None
    assert out.data[0] == 554
    assert out.data[1].startswith("5.6.1 ")
    assert filename in out.data[1]
    await only_row(smtp, 554)
    await no_faxes(smtp.store)


async def test_too_many_pages(start_server: StartServer, tenant: Tenant) -> None:
    smtp = await start_server(max_pages=3)
    out = await smtp.transact(
        fax_mail(
            (pdf_bytes(2), "application/pdf", "a.pdf"), (pdf_bytes(2), "application/pdf", "b.pdf")
        )
    )
    assert out.data is not None
    assert out.data[0] == 554
    assert out.data[1].startswith("5.3.4 ")
    await only_row(smtp, 554)
    await no_faxes(smtp.store)


async def test_exactly_max_pages_is_accepted(start_server: StartServer, tenant: Tenant) -> None:
    smtp = await start_server(max_pages=3)
    out = await smtp.transact(fax_mail((pdf_bytes(3), "application/pdf", "a.pdf")))
    assert out.data is not None and out.data[0] == 250


async def test_size_announced_and_checked_at_mail(
    start_server: StartServer, tenant: Tenant
) -> None:
    smtp = await start_server(max_message_bytes=50_000)

    def conversation(client: smtplib.SMTP) -> tuple[str, tuple[int, bytes]]:
        client.ehlo()
        return client.esmtp_features.get("size", ""), client.mail(
            "alice@example.com", ["SIZE=50001"]
        )

    size, (code, text) = await smtp.run(conversation)
    assert size == "50000"
    assert code == 552
    assert text.decode().startswith("5.3.4 ")
    await only_row(smtp, 552)


async def test_size_checked_at_end_of_data(start_server: StartServer, tenant: Tenant) -> None:
    smtp = await start_server(max_message_bytes=50_000)
    big = fax_mail(
        (pdf_bytes(1), "application/pdf", "a.pdf"),
        (bytes(range(256)) * 200, "application/octet-stream", "blob.bin"),
    )
    assert len(big) > 50_000
    out = await smtp.transact(big)
    assert out.data == (552, "5.3.4 Message exceeds the maximum size of 50000 bytes")
    await only_row(smtp, 552)
    await no_faxes(smtp.store)


# -- temporary failures ------------------------------------------------------------------------


async def test_storage_error_at_commit_is_temporary(
    smtp: SmtpHarness, tenant: Tenant, database: Database
) -> None:
    # A real SQLite failure inside the accepting transaction (as a full disk would cause).
    with sqlite3.connect(database.path) as db:
        db.execute(
            "CREATE TRIGGER fail_faxes BEFORE INSERT ON faxes"
            " BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END"
        )
    out = await smtp.transact(fax_mail())
    assert out.data is not None
    assert out.data[0] == 451
    assert out.data[1].startswith("4.3.0 ")
    rows = await smtp.smtplog()
    assert len(rows) == 1
    assert rows[0].reply_code == 451
    assert rows[0].fax_ids == []
    assert any("disk is full" in e for e in rows[0].errors)
    await no_faxes(smtp.store)
    with sqlite3.connect(database.path) as db:
        assert db.execute("SELECT count(*) FROM documents").fetchone()[0] == 0


async def test_database_gone_at_rcpt_is_temporary(
    start_server: StartServer, store: Store, tenant: Tenant, tmp_path
) -> None:
    broken = SqliteStore(Database(tmp_path / "other.sqlite3"))
    await broken.open()
    await broken.close()  # every query now fails with StorageError
    smtp = await start_server(intake_store=broken)
    out = await smtp.transact(fax_mail())
    assert out.rcpts[0][0] == 451
    assert out.rcpts[0][1].startswith("4.3.0 ")


class ExplodingStore(SqliteStore):
    """A collaborator with a bug: the duplicate check raises something unforeseen."""

    async def find_recent_fax(self, *args: object, **kwargs: object) -> str | None:
        raise RuntimeError("bug in a collaborator")


async def test_unexpected_exception_is_temporary(
    start_server: StartServer, store: Store, tenant: Tenant, database: Database
) -> None:
    exploding = ExplodingStore(Database(database.path, "normal"))
    await exploding.open()
    try:
        smtp = await start_server(intake_store=exploding)
        out = await smtp.transact(fax_mail())
    finally:
        await exploding.close()
    assert out.data is not None
    assert out.data[0] == 451
    assert out.data[1].startswith("4.3.0 ")
    rows = await smtp.smtplog()
    assert len(rows) == 1 and rows[0].reply_code == 451
    assert rows[0].errors == ["internal error (RuntimeError)"]


# -- session-level rules ------------------------------------------------------------------------


async def test_require_tls(start_server: StartServer, tenant: Tenant, tls_files: TlsFiles) -> None:
    smtp = await start_server(
        tls_cert=str(tls_files.cert), tls_key=str(tls_files.key), require_tls=True
    )
    out = await smtp.transact(fax_mail())
    assert out.mail == (530, "5.7.0 Must issue a STARTTLS command first")
    await only_row(smtp, 530)

    def over_tls(client: smtplib.SMTP) -> object:
        client.starttls(context=tls_files.client_context)
        from tests.conftest import transact

        return transact(client, data=fax_mail())

    secured = await smtp.run(over_tls)
    assert secured.data[0] == 250


async def test_authentication_required_outside_trusted_networks(
    start_server: StartServer, tenant: Tenant
) -> None:
    outside = await start_server(trusted_networks=["10.0.0.0/8"])
    out = await outside.transact(fax_mail())
    assert out.mail == (530, "5.7.0 Authentication required")
    await only_row(outside, 530)
    inside = await start_server(trusted_networks=["127.0.0.0/8"])
    out = await inside.transact(fax_mail())
    assert out.data is not None and out.data[0] == 250


async def test_too_many_sessions(start_server: StartServer, tenant: Tenant) -> None:
    smtp = await start_server(max_sessions=1)

    def conversation() -> tuple[int, bytes, int, int]:
        with smtp.client() as first:
            first.ehlo()
            with pytest.raises(smtplib.SMTPConnectError) as refused:
                smtp.client()
            from tests.conftest import transact

            out = transact(first, data=fax_mail())
            assert out.data is not None
            return refused.value.smtp_code, refused.value.smtp_error, out.data[0], first.noop()[0]

    code, text, first_reply, noop = await smtp.thread(conversation)
    assert noop == 250
    assert code == 421
    assert text.decode().startswith("4.3.2 ")
    assert first_reply == 250
    # The slot is free again once the first session ended.
    out = await smtp.transact(fax_mail())
    assert out.data is not None and out.data[0] == 250


async def test_help_lists_every_command(
    start_server: StartServer, tenant: Tenant, tls_files: TlsFiles
) -> None:
    smtp = await start_server(tls_cert=str(tls_files.cert), tls_key=str(tls_files.key))

    def conversation(client: smtplib.SMTP) -> tuple[bytes, tuple[int, bytes]]:
        client.ehlo()
        return client.help(), client.docmd("HELP", "DATA")

    listing, data = await smtp.run(conversation)
    commands = set(listing.decode().split(": ", 1)[1].split())
    assert {"HELO", "EHLO", "MAIL", "RCPT", "DATA", "RSET", "QUIT", "STARTTLS", "AUTH"} <= commands
    assert data == (250, b"Syntax: DATA")


async def test_reply_naming_a_non_ascii_file(smtp: SmtpHarness, tenant: Tenant) -> None:
    """The part's name comes from the client: the reply stays one line of ASCII (aiosmtpd
    cannot send anything else) and is the very reply that the smtplog records."""
    name = "Rechnung_für_März\r\n250 ok.pdf"
    out = await smtp.transact(fax_mail((encrypted_pdf_bytes(), "application/pdf", name)))
    assert out.data is not None
    code, text = out.data
    assert code == 554
    assert text.startswith("5.6.0 Rechnung_f\\xfcr_M\\xe4rz")
    assert text.isascii() and "\n" not in text
    [row] = await smtp.smtplog()
    assert row.reply_text == f"554 {text}"
