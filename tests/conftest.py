from __future__ import annotations

import asyncio
import contextlib
import re
import smtplib
import socket
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from gateway.config import Settings, parse_settings
from gateway.models import Faxbox, SmtpLogEntry
from gateway.smtp.handler import IntakeHandler
from gateway.smtp.server import SmtpServer
from gateway.store import SqliteStore, Store
from gateway.store.database import Database
from gateway.store.rows import smtplog_from_row
from tests.stores import BACKENDS, raw

if TYPE_CHECKING:
    from tests.daemon_process import Served


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
def sqlite_only(request: pytest.FixtureRequest) -> None:
    """A test about SQLite's own file that also takes ``store`` runs on that backend alone."""
    callspec = getattr(request.node, "callspec", None)
    backend = callspec.params.get("store") if callspec is not None else None
    if backend not in (None, "sqlite"):
        pytest.skip("about SQLite's own file")


@pytest.fixture
def database(sqlite_only: None, settings: Settings) -> Database:
    """The SQLite database of ``settings``, not yet opened: for tests of SQLite's plumbing."""
    return Database(settings.storage.path, settings.storage.synchronous)


@pytest.fixture
async def sqlite_store(database: Database, clock: Clock) -> AsyncIterator[SqliteStore]:
    """A SqliteStore on ``database``, opened. A module about SQLite alone overrides ``store``
    with a fixture that returns this one."""
    s = SqliteStore(database, clock)
    await s.open()
    yield s
    await s.close()


@pytest.fixture(params=list(BACKENDS))
async def store(
    request: pytest.FixtureRequest, settings: Settings, clock: Clock
) -> AsyncIterator[Store]:
    """An opened store of each backend in ``tests.stores.BACKENDS``, on the test's clock."""
    async with BACKENDS[request.param](settings, clock) as s:
        yield s


@dataclass
class Tenant:
    account_id: str
    auth_token: str
    faxbox: Faxbox

    @property
    def domain(self) -> str:
        return self.faxbox.custom_smtp_email_address or self.faxbox.smtp_email_address


async def make_tenant(
    store: Store,
    name: str = "acme",
    domain: str | None = "fax.test",
    permit: tuple[str, ...] = ("*@example.com",),
    realm: str | None = None,
    **faxbox_fields: Any,
) -> Tenant:
    account, token, _ = await store.create_account(name, realm)
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


Reply = tuple[int, str]


@dataclass
class Outcome:
    """Every reply of one SMTP transaction, as the client saw them."""

    mail: Reply
    rcpts: list[Reply] = field(default_factory=list)
    data: Reply | None = None

    @property
    def final(self) -> Reply:
        return self.data or (self.rcpts[-1] if self.rcpts else self.mail)

    @property
    def fax_ids(self) -> list[str]:
        """The fax ids of a ``250 2.0.0 queued as <id> <id>...`` reply."""
        assert self.data is not None and self.data[0] == 250, self
        text = self.data[1]
        assert text.startswith("2.0.0 queued as "), text
        return text.removeprefix("2.0.0 queued as ").split()


def transact(
    client: smtplib.SMTP,
    sender: str = "alice@example.com",
    rcpts: list[str] | None = None,
    data: bytes | str | EmailMessage | None = None,
    mail_options: tuple[str, ...] = (),
    fix_eols: bool = True,
) -> Outcome:
    """MAIL, each RCPT, then DATA if a recipient was accepted; no exception on refusals."""
    client.ehlo_or_helo_if_needed()
    code, text = client.mail(sender, list(mail_options))
    outcome = Outcome(mail=(code, text.decode()))
    if code != 250:
        return outcome
    for rcpt in rcpts or ["+14155550100@fax.test"]:
        code, text = client.rcpt(rcpt)
        outcome.rcpts.append((code, text.decode()))
    if data is None or not any(code == 250 for code, _ in outcome.rcpts):
        return outcome
    if isinstance(data, EmailMessage):
        data = data.as_bytes()
    if isinstance(data, bytes) and fix_eols:
        # smtplib sends bytes as they are; SMTP lines end with CRLF (aiosmtpd insists).
        data = re.sub(rb"\r?\n", b"\r\n", data)
    try:
        code, text = client.data(data)
    except smtplib.SMTPDataError as exc:
        code, text = exc.smtp_code, exc.smtp_error
    outcome.data = (code, text.decode())
    return outcome


@dataclass
class SmtpHarness:
    port: int
    server: SmtpServer
    store: Store
    host: str = "127.0.0.1"

    def client(self, host: str | None = None, **kwargs: Any) -> smtplib.SMTP:
        return smtplib.SMTP(
            host or self.host, self.port, local_hostname="client.test", timeout=30, **kwargs
        )

    async def settle(self) -> None:
        """Wait until every connection has ended and its smtplog row is written."""
        await asyncio.wait_for(self.server.wait_idle(), 30)
        await self.server.handler.drain()

    async def run(self, fn: Callable[[smtplib.SMTP], Any], host: str | None = None) -> Any:
        """Run a blocking smtplib conversation in a thread, so the server's loop keeps going."""

        def conversation() -> Any:
            with self.client(host) as client:
                return fn(client)

        result = await asyncio.to_thread(conversation)
        await self.settle()
        return result

    async def thread(self, fn: Callable[[], Any]) -> Any:
        """Run any blocking client code (raw sockets, several connections) in a thread."""
        result = await asyncio.to_thread(fn)
        await self.settle()
        return result

    async def send(self, message: Any, sender: str | None = None, to: Any = None) -> Any:
        def send(client: smtplib.SMTP) -> Any:
            return client.send_message(message, from_addr=sender, to_addrs=to)

        return await self.run(send)

    async def transact(
        self,
        data: bytes | str | EmailMessage | None = None,
        sender: str = "alice@example.com",
        rcpts: list[str] | None = None,
        host: str | None = None,
    ) -> Outcome:
        result: Outcome = await self.run(lambda c: transact(c, sender, rcpts, data), host)
        return result

    async def smtplog(self) -> list[SmtpLogEntry]:
        """All smtplog rows in the order they were written (the test clock stands still)."""
        rows = await raw(self.store).fetchall(
            f"SELECT * FROM smtplog ORDER BY {raw(self.store).write_order}"
        )
        return [smtplog_from_row(row) for row in rows]


async def start_smtp(store: Store, settings: Settings, clock: Clock) -> SmtpHarness:
    server = SmtpServer(IntakeHandler(store, settings.smtp, clock=clock), settings.smtp)
    port = await server.start()
    host = settings.smtp.host if settings.smtp.host not in ("0.0.0.0", "::") else "127.0.0.1"
    return SmtpHarness(port, server, store, host)


@pytest.fixture
async def smtp(store: Store, settings: Settings, clock: Clock) -> AsyncIterator[SmtpHarness]:
    harness = await start_smtp(store, settings, clock)
    yield harness
    await harness.server.close()


StartServer = Callable[..., Awaitable[SmtpHarness]]


@pytest.fixture
async def start_server(store: Store, tmp_path: Path, clock: Clock) -> AsyncIterator[StartServer]:
    """Start another SMTP server on the same store with other [smtp] settings."""
    started: list[SmtpHarness] = []

    async def start(intake_store: Store | None = None, **smtp: Any) -> SmtpHarness:
        harness = await start_smtp(intake_store or store, make_settings(tmp_path, smtp=smtp), clock)
        harness.store = store
        started.append(harness)
        return harness

    yield start
    for harness in started:
        await harness.server.close()


@dataclass
class TlsFiles:
    cert: Path
    key: Path
    client_context: ssl.SSLContext


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost", "gw.test")
    folder = tmp_path_factory.mktemp("tls")
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert.private_key_pem.write_to_path(str(key_path))
    cert.cert_chain_pems[0].write_to_path(str(cert_path))
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return TlsFiles(cert_path, key_path, context)


def non_loopback_ip() -> str | None:
    """An address of this host that is not loopback (clients from it are 'remote'), or None."""
    with contextlib.suppress(OSError), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect(("192.0.2.1", 9))  # no packet is sent; this only picks the outgoing address
        ip = str(s.getsockname()[0])
        if not ip.startswith("127."):
            with socket.socket() as probe:
                probe.bind((ip, 0))
            return ip
    return None


@pytest.fixture
def remote_ip() -> Iterator[str]:
    ip = non_loopback_ip()
    if ip is None:
        pytest.skip("this host has no non-loopback IPv4 address")
    yield ip


def free_port() -> int:
    """A port nothing listens on (yet): bound and released at once."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def daemons() -> Iterator[list[Served]]:
    """The ``serve`` processes a test starts (it appends them): whatever the test did, none is
    left running after it."""
    started: list[Served] = []
    yield started
    for daemon in started:
        daemon.kill()


class RawClient:
    """A bare socket SMTP client, for what smtplib will not do (vanish mid-DATA, PROXY)."""

    def __init__(self, host: str, port: int, preamble: bytes = b"") -> None:
        self.sock = socket.create_connection((host, port), timeout=30)
        if preamble:
            self.sock.sendall(preamble)
        self.buffer = b""
        self.banner = self.reply()

    def reply(self) -> str:
        """Read one (possibly multi-line) reply; '' if the server closed the connection."""
        lines = []
        while True:
            while b"\r\n" not in self.buffer:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return "\n".join(lines)
                self.buffer += chunk
            line, self.buffer = self.buffer.split(b"\r\n", 1)
            lines.append(line.decode())
            if line[3:4] != b"-":
                return "\n".join(lines)

    def cmd(self, line: str) -> str:
        self.sock.sendall(line.encode() + b"\r\n")
        return self.reply()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def closed_by_server(self) -> bool:
        """Block until the server closes the connection; True if it sent nothing more."""
        return self.reply() == ""

    def close(self) -> None:
        self.sock.close()
