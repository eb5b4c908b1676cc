"""The notification tests' counterparts: a real SMTP smarthost (aiosmtpd, in the test's loop), a
real HTTP webhook (http.server in a thread), and faxes brought to a final state by real store
calls."""

from __future__ import annotations

import asyncio
import email
import email.policy
import json
import ssl
import threading
from dataclasses import dataclass, field
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from aiosmtpd.smtp import SMTP, Envelope, Session

from gateway.config import Settings
from gateway.models import DocumentKind, NewFax, SourceDocument
from gateway.store import Store
from gateway.store.records import AttemptOutcome, TxResultRecord
from tests.builders import pdf_bytes
from tests.conftest import Tenant, make_settings

TEMPLATES = Path(__file__).resolve().parents[2] / "config" / "templates"


# -- the smarthost ---------------------------------------------------------------------------


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage
    tls: bool
    auth_user: str | None


@dataclass
class Collector:
    """An aiosmtpd server on 127.0.0.1 that keeps what it receives; stoppable and restartable
    on the same port (the smarthost going down and coming back)."""

    port: int = 0
    refuse: set[str] = field(default_factory=set)  # recipients answered refuse_reply
    refuse_reply: str = "550 5.1.1 no such user here"
    received: list[Received] = field(default_factory=list)
    server: asyncio.Server | None = None
    smtp_kwargs: dict[str, Any] = field(default_factory=dict)
    ssl_context: ssl.SSLContext | None = None

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if address in self.refuse:
            return self.refuse_reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        message = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        user = session.auth_data.login.decode() if session.authenticated else None
        # STARTTLS sets session.ssl; implicit TLS shows only on the transport.
        implicit = server.transport is not None and server.transport.get_extra_info("ssl_object")
        tls = session.ssl is not None or bool(implicit)
        self.received.append(
            Received(str(envelope.mail_from), list(envelope.rcpt_tos), message, tls, user)
        )
        return "250 2.0.0 OK"

    async def start(self) -> int:
        loop = asyncio.get_running_loop()
        self.server = await loop.create_server(
            lambda: SMTP(self, hostname="smarthost.test", **self.smtp_kwargs),
            "127.0.0.1",
            self.port,
            ssl=self.ssl_context,
        )
        self.port = self.server.sockets[0].getsockname()[1]
        return self.port

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()
            self.server = None

    def to(self, address: str) -> list[EmailMessage]:
        return [r.message for r in self.received if address in r.rcpt_tos]


# -- the webhook -----------------------------------------------------------------------------


@dataclass
class HookRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: Any


class Webhook:
    """A tiny HTTP server in a thread that records requests and answers ``status``."""

    def __init__(self) -> None:
        self.requests: list[HookRequest] = []
        self.status = 200
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def _record(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                hook.requests.append(
                    HookRequest(
                        self.command,
                        self.path,
                        {k.lower(): v for k, v in self.headers.items()},
                        json.loads(raw) if raw else None,
                    )
                )
                payload = b'{"ok": true}' if hook.status < 300 else b'{"error": "nope"}'
                self.send_response(hook.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_POST = do_PUT = do_PATCH = _record

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/sms/send"


# -- settings and the notifier ---------------------------------------------------------------


def notify_settings(tmp_path: Path, port: int | None, **notifications: Any) -> Settings:
    values: dict[str, Any] = {"templates_dir": str(TEMPLATES), "timeout_s": 5}
    if port is not None:
        values.update(smarthost_host="127.0.0.1", smarthost_port=port)
    values.update(notifications)
    return make_settings(tmp_path, notifications=values)


# -- faxes in a final state, through the real store calls ------------------------------------

TX_OK = {
    "success": True,
    "error_message": None,
    "result_code": 0,
    "result_text": "OK",
    "pages_sent": 0,  # set per fax
    "total_pages": 0,
    "fax_speed": 14400,
    "fax_error_correction": True,
    "fax_receiver_id": "+1 212 555 0188",
    "fax_bad_rows": 0,
    "time_elapsed": 42,
}


async def finished_fax(
    store: Store,
    tenant: Tenant,
    *,
    outcome: str = "completed",
    pages: int = 2,
    email_to: list[str] | None = None,
    sms_to: list[str] | None = None,
    message_id: str | None = "<order-17@example.com>",
    subject: str | None = "Quarterly report",
    render_options: dict[str, Any] | None = None,
    to_number: str = "+12125550188",
) -> str:
    """An outbound fax rendered (a real PDF of ``pages`` pages), sent once, and finished."""
    notifications: dict[str, Any] = {"email": {"send_to": email_to or ["alice@example.com"]}}
    if sms_to:
        notifications["sms"] = {"send_to": sms_to}
    box = tenant.faxbox
    pdf = pdf_bytes(pages)
    fax_id = await store.create_fax(
        NewFax(
            account_id=tenant.account_id,
            faxbox_id=box.id,
            to_number=to_number,
            to_name="Bob's Bakery",
            from_number=box.caller_id,
            from_name=box.caller_name,
            fax_timezone="Europe/Paris",
            retries=3,
            message_id=message_id,
            subject=subject,
            notifications=notifications,
            render_options=render_options or {},
        ),
        [SourceDocument(DocumentKind.PDF, pdf, "report.pdf", pages)],
    )
    assert [f.id for f in await store.claim_attaching("render", 60, 1)] == [fax_id]
    assert await store.finish_render(fax_id, "render", b"II*\x00tiff", pdf, pages)
    [claim] = await store.claim_due("worker", 60, 10, 1)
    tx = dict(TX_OK, pages_sent=pages, total_pages=pages)
    failure = None
    if outcome == "failed":
        failure = "busy"
        tx.update(success=False, error_message="the line was busy", result_text="busy")
        tx.update(pages_sent=0, fax_speed=0, fax_receiver_id=None)
    attempt = AttemptOutcome(outcome, failure, TxResultRecord(**tx, failure_class=failure))
    assert await store.finish_attempt(claim, "worker", attempt, None)
    return fax_id


def pdf_attachments(message: EmailMessage) -> list[bytes]:
    found = []
    for part in message.iter_attachments():
        if part.get_content_type() == "application/pdf":
            payload = part.get_payload(decode=True)
            assert isinstance(payload, bytes)
            found.append(payload)
    return found
