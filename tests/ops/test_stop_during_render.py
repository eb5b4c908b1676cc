"""A real ``fax-gateway serve`` is stopped (SIGTERM) while documents are being rendered.

A stop is not the document's fault: renders cut short by it are handed back (the render lease
released) and done at the next start, whether the signal reached the daemon alone (systemd's
``KillMode=mixed``) or its whole process group, render workers and fork server included (a
terminal's Ctrl-C, ``kill -- -PGID``, ``KillMode=control-group``). Every acknowledged fax must
end ``completed``: none ``failed`` with "rendering crashed the renderer".
"""

from __future__ import annotations

import os
import signal
import smtplib
import sqlite3
from email.utils import make_msgid
from pathlib import Path
from typing import Any

import pytest

from tests.builders import make_email, pdf_bytes
from tests.conftest import free_port, transact
from tests.daemon_process import Served, write_config

ROUNDS = 3
MESSAGES = 8  # per round
PAGES = 60  # about a second of rendering each: long enough to be caught in flight


def query(db: Path, sql: str, *params: Any) -> list[sqlite3.Row]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    conn.row_factory = sqlite3.Row
    try:
        return list(conn.execute(sql, params))
    finally:
        conn.close()


def renders_in_flight(db: Path) -> list[str]:
    rows = query(
        db, "SELECT id FROM faxes WHERE status = 'attaching_files' AND lease_owner IS NOT NULL"
    )
    return [r["id"] for r in rows]


def status_of(db: Path, fax_ids: list[str]) -> list[str]:
    marks = ", ".join("?" * len(fax_ids))
    return [
        r["status"] for r in query(db, f"SELECT status FROM faxes WHERE id IN ({marks})", *fax_ids)
    ]


def failed(db: Path) -> list[tuple[str, str]]:
    rows = query(db, "SELECT id, error FROM faxes WHERE status = 'failed'")
    return [(r["id"], r["error"]) for r in rows]


def send_slow_faxes(port: int, round_no: int) -> list[str]:
    """``MESSAGES`` acknowledged messages, each one long PDF; their fax ids."""
    fax_ids: list[str] = []
    with smtplib.SMTP("127.0.0.1", port, timeout=60) as client:
        for n in range(MESSAGES):
            pdf = pdf_bytes(PAGES, label=f"round {round_no} message {n} page")
            message = make_email(
                to=f"+1415555{round_no:02d}{n:02d}@fax.test",
                message_id=make_msgid(domain="render-stop.test"),
                attachments=[(pdf, "application/pdf", f"r{round_no}-m{n}.pdf")],
            )
            fax_ids += transact(client, rcpts=[str(message["To"])], data=message).fax_ids
    return fax_ids


@pytest.mark.parametrize("whole_group", [False, True], ids=["daemon", "process-group"])
def test_sigterm_during_rendering_hands_renders_back_and_every_fax_completes(
    tmp_path: Path, daemons: list[Served], whole_group: bool
) -> None:
    port = free_port()
    config = write_config(
        tmp_path,
        port,
        render={"workers": 2},
        worker={"drain_timeout_s": 0},  # cut renders at once: the stop is what is tested
        bootstrap={"enabled": True},
    )
    db = tmp_path / "gateway.sqlite3"
    acknowledged: list[str] = []
    handed_back = 0
    for round_no in range(ROUNDS):
        daemon = Served(config, tmp_path, own_group=True)
        daemons.append(daemon)
        acknowledged += send_slow_faxes(port, round_no)
        in_flight = daemon.wait_for(lambda: renders_in_flight(db), "renders in flight")
        if whole_group:
            os.killpg(daemon.process.pid, signal.SIGTERM)
        else:
            daemon.signal(signal.SIGTERM)
        assert daemon.process.wait(60) == 0, daemon.output()
        assert failed(db) == [], daemon.output()
        # Handed back, not waited for (the drain timeout is 0), and no lease left behind. A
        # render may just have finished as the signal came (a busy machine): it is then
        # rendered for good, never failed.
        statuses = status_of(db, in_flight)
        assert set(statuses) <= {"attaching_files", "pending", "completed"}, daemon.output()
        handed_back += statuses.count("attaching_files")
        assert query(db, "SELECT id FROM faxes WHERE lease_owner IS NOT NULL") == []
    assert handed_back > 0, "no round caught a render in flight: nothing was tested"

    last = Served(config, tmp_path, own_group=True)
    daemons.append(last)

    def all_final() -> bool:
        rows = query(db, "SELECT id FROM faxes WHERE status IN ('completed', 'failed')")
        return set(acknowledged) <= {r["id"] for r in rows}

    last.wait_for(all_final, "every fax to be sent", timeout=300)
    assert last.stop(timeout=60) == 0, last.output()
    assert failed(db) == []
    statuses = {r["id"]: r["status"] for r in query(db, "SELECT id, status FROM faxes")}
    assert {fax_id: statuses.get(fax_id) for fax_id in acknowledged} == dict.fromkeys(
        acknowledged, "completed"
    )
