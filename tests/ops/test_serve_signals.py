"""A real ``fax-gateway serve``: readiness to systemd, SIGHUP reload, graceful SIGTERM mid-DATA,
JSON logs, and backup and purge from the command line while it runs."""

from __future__ import annotations

import asyncio
import json
import signal
import smtplib
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway import credentials
from gateway.models import NewFax, SmtpLogEntry
from gateway.store import SqliteStore
from gateway.store.database import Database
from tests.builders import make_email, pdf_bytes
from tests.conftest import free_port
from tests.daemon_process import NotifySocket, Served, cli, write_config
from tests.stores import raw


@pytest.fixture
def notify() -> Iterator[NotifySocket]:
    sock = NotifySocket()
    yield sock
    sock.close()


def rcpt_replies(port: int, numbers: list[str]) -> list[int]:
    with smtplib.SMTP("127.0.0.1", port, local_hostname="c.test", timeout=30) as client:
        assert client.ehlo()[0] == 250
        assert client.mail("alice@example.com")[0] == 250
        return [client.rcpt(f"{n}@fax.test")[0] for n in numbers]


def test_ready_reload_stop_and_json_logs(
    tmp_path: Path, notify: NotifySocket, daemons: list[Served]
):
    port = free_port()
    sections = {"smtp": {"max_recipients": 5}, "bootstrap": {"enabled": True}}
    config = write_config(tmp_path, port, logging={"format": "json"}, **sections)
    daemon = Served(config, tmp_path, notify)  # returns once READY=1 arrived
    daemons.append(daemon)
    assert rcpt_replies(port, ["+14155550100", "+14155550111"]) == [250, 250]

    sections["smtp"]["max_recipients"] = 1
    sections["transport"] = {"kind": "loopback"}
    write_config(tmp_path, free_port(), logging={"format": "json"}, **sections)  # new port too
    daemon.signal(signal.SIGHUP)
    notify.expect("RELOADING=1")
    notify.expect("READY=1")
    assert rcpt_replies(port, ["+14155550100", "+14155550111"]) == [250, 452]

    message = make_email(attachments=[(pdf_bytes(1), "application/pdf", "a.pdf")])
    with smtplib.SMTP("127.0.0.1", port, local_hostname="c.test", timeout=30) as client:
        client.send_message(message, "alice@example.com", ["+14155550100@fax.test"])
    daemon.wait_for(lambda: '"event": "attempt"' in daemon.output(), "the attempt's log line")

    daemon.signal(signal.SIGTERM)
    notify.expect("STOPPING=1")
    assert daemon.process.wait(30) == 0
    records = [json.loads(line) for line in daemon.output().splitlines() if line.startswith("{")]
    assert any("smtp.port" in r["message"] and "restart" in r["message"] for r in records)
    [accepted] = [r for r in records if r.get("event") == "smtp" and r["reply_code"] == 250]
    assert accepted["message_id"] == message["Message-ID"] and len(accepted["fax_ids"]) == 1
    attempts = [r for r in records if r.get("event") == "attempt"]
    assert attempts and attempts[0]["fax_id"] == accepted["fax_ids"][0]
    assert attempts[0]["message_id"] == message["Message-ID"]


def test_sigterm_lets_a_message_in_data_finish(tmp_path: Path, daemons: list[Served]):
    port = free_port()
    config = write_config(tmp_path, port, smtp={"drain_timeout_s": 20}, bootstrap={"enabled": True})
    daemon = Served(config, tmp_path)
    daemons.append(daemon)
    raw = make_email(attachments=[(pdf_bytes(1), "application/pdf", "a.pdf")]).as_bytes()
    raw = raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    half = len(raw) // 2

    idle = smtplib.SMTP("127.0.0.1", port, local_hostname="idle.test", timeout=30)
    idle.ehlo()
    client = smtplib.SMTP("127.0.0.1", port, local_hostname="c.test", timeout=30)
    client.ehlo()
    assert client.mail("alice@example.com")[0] == 250
    assert client.rcpt("+14155550100@fax.test")[0] == 250
    client.putcmd("data")
    assert client.getreply()[0] == 354
    client.send(raw[:half])

    daemon.signal(signal.SIGTERM)

    def listener_closed() -> bool:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
        except OSError:
            return True
        return False

    daemon.wait_for(listener_closed, "the listener to close")
    time.sleep(0.3)  # the session stays open, mid-DATA
    assert daemon.process.poll() is None
    client.send(raw[half:] + b"\r\n.\r\n")
    code, text = client.getreply()
    assert code == 250, text
    fax_id = text.decode().removeprefix("2.0.0 queued as ").strip()
    assert daemon.process.wait(30) == 0
    with pytest.raises(smtplib.SMTPServerDisconnected):
        idle.noop()  # the idle session got 421 and was closed (or is closed by now)
        idle.noop()
    with sqlite3.connect(tmp_path / "gateway.sqlite3") as db:
        row = db.execute("SELECT status FROM faxes WHERE id = ?", (fax_id,)).fetchone()
        assert row is not None, f"fax {fax_id} missing"
        log = db.execute("SELECT reply_code FROM smtplog WHERE fax_ids LIKE ?", (f"%{fax_id}%",))
        assert log.fetchone() == (250,)
    client.close()
    idle.close()


async def _old_history(path: Path, days_ago: float) -> tuple[str, str]:
    """A finished fax and its smtplog row, received ``days_ago`` days ago."""
    when = time.time() - days_ago * 86400
    store = SqliteStore(Database(path, "normal"), lambda: when)
    await store.open()
    try:
        account, _, _ = await store.create_account("old")
        entry = SmtpLogEntry(
            id=credentials.new_id(),
            created=when,
            peer_ip="127.0.0.1",
            helo="c",
            tls=False,
            auth_user=None,
            mail_from="a@example.com",
        )
        fax_id = credentials.new_id()
        entry.fax_ids = [fax_id]
        await store.accept_message(
            entry, [(fax_id, NewFax(account_id=account.id, to_number="+14155550199"))], []
        )
        await raw(store).execute("UPDATE faxes SET status = 'completed' WHERE id = ?", (fax_id,))
    finally:
        await store.close()
    return fax_id, entry.id


def test_backup_and_purge_while_serving(tmp_path: Path, daemons: list[Served]):
    database = tmp_path / "gateway.sqlite3"
    old_fax, old_log = asyncio.run(_old_history(database, days_ago=40))
    port = free_port()
    config = write_config(tmp_path, port, bootstrap={"enabled": True})
    daemon = Served(config, tmp_path)
    daemons.append(daemon)
    message = make_email(attachments=[(pdf_bytes(2), "application/pdf", "a.pdf")])
    with smtplib.SMTP("127.0.0.1", port, local_hostname="c.test", timeout=30) as client:
        client.send_message(message, "alice@example.com", ["+14155550100@fax.test"])
    daemon.wait_for(lambda: "outcome=completed" in daemon.output(), "the fax to be sent")

    backup = tmp_path / "copy.sqlite3"
    done = cli(config, "backup", str(backup))
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["integrity"] == "ok" and report["path"] == str(backup)
    with sqlite3.connect(backup) as copy, sqlite3.connect(database) as live:
        assert copy.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        for table in ("faxes", "smtplog", "documents", "attempts"):
            query = f"SELECT count(*) FROM {table}"
            assert copy.execute(query).fetchone() == live.execute(query).fetchone(), table
        assert copy.execute(query).fetchone()[0] >= 1
    again = cli(config, "backup", str(backup))
    assert again.returncode == 2 and "--force" in again.stderr

    purged = cli(config, "purge", "--faxes-days", "30", "--smtplog-days", "30")
    assert purged.returncode == 0, purged.stderr
    assert json.loads(purged.stdout)["purged"]["faxes"] == 1
    assert json.loads(purged.stdout)["purged"]["smtplog"] == 1
    with sqlite3.connect(database) as live:
        assert live.execute("SELECT 1 FROM faxes WHERE id = ?", (old_fax,)).fetchone() is None
        assert live.execute("SELECT 1 FROM smtplog WHERE id = ?", (old_log,)).fetchone() is None
        assert live.execute("SELECT count(*) FROM faxes").fetchone() == (1,)  # today's stays

    with smtplib.SMTP("127.0.0.1", port, local_hostname="c.test", timeout=30) as client:
        client.send_message(message, "alice@example.com", ["+14155550111@fax.test"])
    assert daemon.stop() == 0


def test_a_start_that_fails_half_way_exits_with_the_error(tmp_path: Path) -> None:
    # The SIP port is taken: the transport starts after the store and the render pool, which
    # must be closed again so that the process ends instead of hanging on them.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        sip = {"listen_host": "127.0.0.1", "listen_port": taken.getsockname()[1]}
        config = write_config(
            tmp_path,
            free_port(),
            transport={"kind": "sip"},
            **{"transport.sip": {**sip, "proxy_host": "127.0.0.1"}},
        )
        done = subprocess.run(
            [sys.executable, "-m", "gateway", "--config", str(config), "serve"],
            capture_output=True,
            text=True,
            timeout=120,  # a guard: before the fix the process never ended
        )
    assert done.returncode != 0
    assert "Address already in use" in done.stderr
