"""SIGKILL a real `fax-gateway serve` while mail streams in: nothing acknowledged is lost."""

from __future__ import annotations

import smtplib
import socket
import sqlite3
import threading
from dataclasses import dataclass, field
from email.utils import make_msgid
from pathlib import Path

from tests.builders import make_email, pdf_bytes
from tests.conftest import free_port, transact
from tests.daemon_process import Served, write_config

DOMAIN = "fax.crash.test"
CONNECTIONS = 3
KILL_AFTER = 24  # acknowledged messages before the kill


@dataclass
class Stream:
    """Clients sending one PDF per message, over several connections, until the server dies."""

    port: int
    acked: dict[str, bytes] = field(default_factory=dict)  # fax id -> the PDF it was sent with
    lock: threading.Lock = field(default_factory=threading.Lock)
    enough: threading.Event = field(default_factory=threading.Event)

    def client(self, number: int) -> None:
        sent = 0
        try:
            with smtplib.SMTP("127.0.0.1", self.port, timeout=30) as smtp:
                while True:
                    pdf = pdf_bytes(1, label=f"connection {number} message {sent}")
                    message = make_email(
                        to=f"+1415555{number:02d}{sent % 100:02d}@{DOMAIN}",
                        message_id=make_msgid(domain="crash.test"),
                        attachments=[(pdf, "application/pdf", f"c{number}-m{sent}.pdf")],
                    )
                    out = transact(smtp, rcpts=[str(message["To"])], data=message)
                    sent += 1
                    if out.data is None or out.data[0] != 250:
                        continue  # not acknowledged: the client would retry it
                    [fax_id] = out.fax_ids
                    with self.lock:
                        self.acked[fax_id] = pdf
                        if len(self.acked) >= KILL_AFTER:
                            self.enough.set()
        except (OSError, smtplib.SMTPException):
            return  # the server went away mid-stream

    def run(self) -> list[threading.Thread]:
        threads = [threading.Thread(target=self.client, args=(n,)) for n in range(CONNECTIONS)]
        for thread in threads:
            thread.start()
        return threads


def start(config: Path, port: int) -> Served:
    """A daemon in its own process group (render workers die with it), up once it greets."""

    def greets() -> bool:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                return s.recv(100).startswith(b"220")
        except OSError:
            return False

    return Served(config, config.parent, ready=greets, own_group=True, timeout=60)


def test_sigkill_while_streaming_loses_no_acknowledged_message(
    tmp_path: Path, daemons: list[Served]
) -> None:
    port = free_port()
    config = write_config(
        tmp_path,
        port,
        storage={"synchronous": "full"},
        smtp={"default_smtp_domain": DOMAIN},
        worker={"drain_timeout_s": 0},
        bootstrap={"enabled": True},
        logging={"level": "WARNING"},
    )
    first = start(config, port)
    daemons.append(first)
    stream = Stream(port)
    threads = stream.run()
    try:
        assert stream.enough.wait(120), first.output()
    finally:
        first.kill()
        for thread in threads:
            thread.join(60)
    acked = dict(stream.acked)
    assert len(acked) >= KILL_AFTER

    second = start(config, port)  # the same database, after a crash
    daemons.append(second)
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as smtp:
        pdf = pdf_bytes(1, label="after the restart")
        message = make_email(attachments=[(pdf, "application/pdf", "after.pdf")])
        [fax_id] = transact(smtp, rcpts=[f"+14155550100@{DOMAIN}"], data=message).fax_ids
        acked[fax_id] = pdf
    assert second.stop(timeout=60) == 0, second.output()

    with sqlite3.connect(tmp_path / "gateway.sqlite3") as db:
        assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert db.execute("PRAGMA foreign_key_check").fetchall() == []
        for fax_id, pdf in acked.items():
            row = db.execute(
                "SELECT status, smtplog_id FROM faxes WHERE id = ?", (fax_id,)
            ).fetchone()
            assert row is not None, f"acknowledged fax {fax_id} is missing"
            originals = db.execute(
                "SELECT d.data, fd.kind FROM fax_documents fd JOIN documents d"
                " ON d.id = fd.document_id WHERE fd.fax_id = ? AND fd.role = 'original'"
                " ORDER BY fd.seq",
                (fax_id,),
            ).fetchall()
            assert originals == [(pdf, "pdf")], fax_id
            log = db.execute(
                "SELECT reply_code, fax_ids FROM smtplog WHERE id = ?", (row[1],)
            ).fetchone()
            assert log is not None and log[0] == 250 and fax_id in log[1]
