"""STARTTLS and SMTP AUTH: who may send, and what they must do first."""

from __future__ import annotations

import base64
import smtplib
import sqlite3
import ssl
from typing import Any

import pytest

from gateway.smtp.protocol import is_loopback
from gateway.store import Store
from gateway.store.database import Database
from tests.builders import make_email, pdf_bytes
from tests.conftest import (
    Clock,
    SmtpHarness,
    StartServer,
    Tenant,
    TlsFiles,
    make_tenant,
    transact,
)

PASSWORD = "correct horse battery staple"


def fax_mail() -> bytes:
    return make_email(attachments=[(pdf_bytes(), "application/pdf", "a.pdf")]).as_bytes()


@pytest.fixture
async def boxed(store: Store) -> Tenant:
    """A faxbox that admits no sender by rule: only its owner or an authenticated session."""
    return await make_tenant(store, permit=(), owner_email=None, smtp_password=PASSWORD)


def no_verify() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


async def test_starttls(start_server: StartServer, tenant: Tenant, tls_files: TlsFiles) -> None:
    smtp = await start_server(tls_cert=str(tls_files.cert), tls_key=str(tls_files.key))

    def conversation(client: smtplib.SMTP) -> tuple[bool, str, object]:
        client.ehlo()
        offered = client.has_extn("starttls")
        client.starttls(context=tls_files.client_context)
        cipher = client.sock.version()  # type: ignore[union-attr]
        return offered, cipher, transact(client, data=fax_mail())

    offered, version, out = await smtp.run(conversation)
    assert offered
    assert version in ("TLSv1.2", "TLSv1.3")
    assert out.data[0] == 250  # type: ignore[attr-defined]
    [row] = await smtp.smtplog()
    assert row.tls is True
    assert row.helo == "client.test"


async def test_no_starttls_without_certificate(start_server: StartServer, tenant: Tenant) -> None:
    smtp = await start_server()

    def conversation(client: smtplib.SMTP) -> tuple[bool, int]:
        client.ehlo()
        return client.has_extn("starttls"), client.docmd("STARTTLS")[0]

    offered, code = await smtp.run(conversation)
    assert not offered
    assert code in (454, 500, 502)


@pytest.mark.parametrize("user_is", ["id", "address"])
async def test_auth_plain(start_server: StartServer, boxed: Tenant, user_is: str) -> None:
    smtp = await start_server()
    user = boxed.faxbox.id if user_is == "id" else boxed.faxbox.smtp_email_address

    def conversation(client: smtplib.SMTP) -> tuple[tuple[int, bytes], object]:
        client.ehlo()
        client.user, client.password = user, PASSWORD
        reply = client.auth("PLAIN", client.auth_plain)
        return reply, transact(client, sender="stranger@elsewhere.example", data=fax_mail())

    reply, out = await smtp.run(conversation)
    assert reply == (235, b"2.7.0 Authentication successful")
    assert out.data[0] == 250  # type: ignore[attr-defined]
    [row] = await smtp.smtplog()
    assert row.auth_user == user


@pytest.mark.parametrize("initial_response", [True, False])
async def test_auth_login(start_server: StartServer, boxed: Tenant, initial_response: bool) -> None:
    smtp = await start_server()
    user = boxed.faxbox.smtp_email_address.upper()  # addresses are case-insensitive

    def conversation(client: smtplib.SMTP) -> tuple[tuple[int, bytes], object]:
        client.ehlo()
        client.user, client.password = user, PASSWORD
        reply = client.auth("LOGIN", client.auth_login, initial_response_ok=initial_response)
        return reply, transact(client, sender="stranger@elsewhere.example", data=fax_mail())

    reply, out = await smtp.run(conversation)
    assert reply[0] == 235
    assert out.data[0] == 250  # type: ignore[attr-defined]


async def test_unauthenticated_stranger_is_refused(
    start_server: StartServer, boxed: Tenant
) -> None:
    smtp = await start_server()
    out = await smtp.transact(fax_mail(), sender="stranger@elsewhere.example")
    assert out.rcpts[0][0] == 550


@pytest.mark.parametrize(
    "credentials",
    [
        ("{id}", "wrong password"),
        ("{id}", ""),
        ("nobody@fax.test", PASSWORD),
        ("{other}", PASSWORD),  # another faxbox's password does not open this one
    ],
)
async def test_wrong_credentials(
    start_server: StartServer, store: Store, boxed: Tenant, credentials: tuple[str, str]
) -> None:
    other = await make_tenant(store, "other", domain="other.test", smtp_password="other-secret")
    smtp = await start_server()
    user = credentials[0].format(id=boxed.faxbox.id, other=other.faxbox.id)

    def conversation(client: smtplib.SMTP) -> tuple[int, bytes, object]:
        client.ehlo()
        client.user, client.password = user, credentials[1]
        with pytest.raises(smtplib.SMTPAuthenticationError) as refused:
            client.auth("PLAIN", client.auth_plain)
        out = transact(client, sender="stranger@elsewhere.example", data=fax_mail())
        return refused.value.smtp_code, refused.value.smtp_error, out

    code, text, out = await smtp.run(conversation)
    assert (code, text) == (535, b"5.7.8 Authentication credentials invalid")
    assert out.rcpts[0][0] == 550  # type: ignore[attr-defined]


async def test_faxbox_without_password_cannot_be_logged_into(
    start_server: StartServer, tenant: Tenant
) -> None:
    smtp = await start_server()

    def conversation(client: smtplib.SMTP) -> int:
        client.ehlo()
        blob = base64.b64encode(f"\0{tenant.faxbox.id}\0".encode()).decode()
        return client.docmd("AUTH", f"PLAIN {blob}")[0]

    assert await smtp.run(conversation) == 535


async def test_authenticated_for_one_faxbox_only(
    start_server: StartServer, store: Store, boxed: Tenant
) -> None:
    other = await make_tenant(store, "other", domain="other.test", permit=(), owner_email=None)
    smtp = await start_server()

    def conversation(client: smtplib.SMTP) -> object:
        client.ehlo()
        client.login(boxed.faxbox.id, PASSWORD)
        return transact(
            client,
            sender="stranger@elsewhere.example",
            rcpts=[f"+14155550100@{other.domain}", f"+14155550100@{boxed.domain}"],
            data=fax_mail(),
        )

    out = await smtp.run(conversation)
    assert [code for code, _ in out.rcpts] == [550, 250]  # type: ignore[attr-defined]


async def test_auth_lets_a_client_outside_trusted_networks_send(
    start_server: StartServer, boxed: Tenant
) -> None:
    smtp = await start_server(trusted_networks=["10.0.0.0/8"])

    def conversation(client: smtplib.SMTP) -> tuple[object, object]:
        before = transact(client, sender="stranger@elsewhere.example", data=fax_mail())
        client.login(boxed.faxbox.smtp_email_address, PASSWORD)
        after = transact(client, sender="stranger@elsewhere.example", data=fax_mail())
        return before, after

    before, after = await smtp.run(conversation)
    assert before.mail == (530, "5.7.0 Authentication required")  # type: ignore[attr-defined]
    assert after.data[0] == 250  # type: ignore[attr-defined]


def test_loopback_rule() -> None:
    assert is_loopback("127.0.0.1")
    assert is_loopback("127.8.9.10")
    assert is_loopback("::1")
    assert is_loopback("::ffff:127.0.0.1")  # IPv4 client on a dual-stack socket
    assert not is_loopback("192.0.2.1")
    assert not is_loopback("::ffff:192.0.2.1")
    assert not is_loopback("2001:db8::1")
    assert not is_loopback(None)
    assert not is_loopback("not an address")


async def test_auth_offered_on_loopback_without_tls(
    start_server: StartServer, tenant: Tenant, tls_files: TlsFiles
) -> None:
    smtp = await start_server(tls_cert=str(tls_files.cert), tls_key=str(tls_files.key))

    def conversation(client: smtplib.SMTP) -> tuple[str, str]:
        client.ehlo()
        plain = client.esmtp_features.get("auth", "")
        client.starttls(context=tls_files.client_context)
        client.ehlo()
        return plain, client.esmtp_features.get("auth", "")

    plain, secured = await smtp.run(conversation)
    assert set(plain.split()) == {"LOGIN", "PLAIN"}
    assert set(secured.split()) == {"LOGIN", "PLAIN"}


async def test_auth_needs_tls_from_a_remote_peer(
    start_server: StartServer, boxed: Tenant, tls_files: TlsFiles, remote_ip: str
) -> None:
    smtp = await start_server(
        host="0.0.0.0", tls_cert=str(tls_files.cert), tls_key=str(tls_files.key)
    )

    def conversation(client: smtplib.SMTP) -> tuple[bool, bool, int, bool, tuple[int, bytes]]:
        client.ehlo()
        starttls_offered = client.has_extn("starttls")
        auth_offered = client.has_extn("auth")
        blob = base64.b64encode(f"\0{boxed.faxbox.id}\0{PASSWORD}".encode()).decode()
        code = client.docmd("AUTH", f"PLAIN {blob}")[0]
        client.starttls(context=no_verify())
        client.ehlo()
        return (
            starttls_offered,
            auth_offered,
            code,
            client.has_extn("auth"),
            client.login(boxed.faxbox.id, PASSWORD),
        )

    starttls_offered, auth_before, code, auth_after, login = await smtp.run(
        conversation, host=remote_ip
    )
    assert starttls_offered
    assert not auth_before
    assert code == 538
    assert auth_after
    assert login[0] == 235


async def test_password_is_stored_hashed(store: Store, boxed: Tenant, database: Database) -> None:
    await store.close()  # flush the WAL into the main file
    raw = database.path.read_bytes()
    assert PASSWORD.encode() not in raw
    with sqlite3.connect(database.path) as db:
        [(stored,)] = db.execute(
            "SELECT smtp_password_hash FROM faxboxes WHERE id = ?", (boxed.faxbox.id,)
        ).fetchall()
    assert stored.startswith("scrypt$")
    assert PASSWORD not in stored
    await store.open()


# -- credential guessing -------------------------------------------------------------------

GUESS_LIMIT = 3
GUESS_WINDOW_S = 60
ANOTHER_HOST = "127.0.0.2"  # also this machine, but another client address


def plain(user: str, password: str) -> str:
    return "PLAIN " + base64.b64encode(f"\0{user}\0{password}".encode()).decode()


def connect(smtp: SmtpHarness, source: str = "127.0.0.1") -> smtplib.SMTP:
    client = smtplib.SMTP(
        smtp.host, smtp.port, local_hostname="client.test", timeout=30, source_address=(source, 0)
    )
    client.ehlo()
    return client


def guesses(smtp: SmtpHarness, user: str, count: int) -> list[int]:
    """Wrong passwords, one connection each: the count is kept across connections."""
    codes = []
    for n in range(count):
        with connect(smtp) as client:
            codes.append(client.docmd("AUTH", plain(user, f"guess {n}"))[0])
    return codes


def auth_then_probe(smtp: SmtpHarness, user: str, source: str = "127.0.0.1") -> tuple[Any, bool]:
    """One AUTH with the right password; whether the server hung up after it."""
    client = connect(smtp, source)
    reply = client.docmd("AUTH", plain(user, PASSWORD))
    try:
        client.noop()
    except smtplib.SMTPServerDisconnected:
        return reply, True
    client.quit()
    return reply, False


async def guarded_server(start_server: StartServer) -> SmtpHarness:
    return await start_server(auth_failure_limit=GUESS_LIMIT, auth_failure_window_s=GUESS_WINDOW_S)


async def test_auth_guessing_past_the_limit_is_454_and_hang_up(
    start_server: StartServer, boxed: Tenant
) -> None:
    smtp = await guarded_server(start_server)
    user = boxed.faxbox.id
    assert await smtp.thread(lambda: guesses(smtp, user, GUESS_LIMIT)) == [535] * GUESS_LIMIT
    # Even the right password: the answer must not tell a right guess from a wrong one.
    reply, hung_up = await smtp.thread(lambda: auth_then_probe(smtp, user))
    assert reply == (454, b"4.7.0 Too many failed authentication attempts")
    assert hung_up


async def test_auth_guessing_does_not_lock_out_the_faxbox_user_elsewhere(
    start_server: StartServer, boxed: Tenant
) -> None:
    smtp = await guarded_server(start_server)
    user = boxed.faxbox.id
    await smtp.thread(lambda: guesses(smtp, user, GUESS_LIMIT + 2))
    reply, hung_up = await smtp.thread(lambda: auth_then_probe(smtp, user, ANOTHER_HOST))
    assert reply[0] == 235
    assert not hung_up
    # That success cleared nothing of the guesser's count.
    reply, _ = await smtp.thread(lambda: auth_then_probe(smtp, user))
    assert reply[0] == 454


async def test_auth_guessing_address_may_try_again_after_the_window(
    start_server: StartServer, boxed: Tenant, clock: Clock
) -> None:
    smtp = await guarded_server(start_server)
    user = boxed.faxbox.id
    await smtp.thread(lambda: guesses(smtp, user, GUESS_LIMIT))
    clock.advance(GUESS_WINDOW_S - 1)
    assert (await smtp.thread(lambda: auth_then_probe(smtp, user)))[0][0] == 454
    clock.advance(1)
    reply, hung_up = await smtp.thread(lambda: auth_then_probe(smtp, user))
    assert reply[0] == 235
    assert not hung_up


async def test_auth_guesses_within_one_connection_count_too(
    start_server: StartServer, boxed: Tenant
) -> None:
    smtp = await guarded_server(start_server)

    def conversation(client: smtplib.SMTP) -> list[int]:
        client.ehlo()
        codes = [client.docmd("AUTH", plain(boxed.faxbox.id, "x"))[0] for _ in range(GUESS_LIMIT)]
        codes.append(client.docmd("AUTH", plain(boxed.faxbox.id, PASSWORD))[0])
        return codes

    assert await smtp.run(conversation) == [535] * GUESS_LIMIT + [454]
