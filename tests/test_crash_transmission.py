"""A real ``fax-gateway serve`` is killed during a transmission and started again.

The loopback line is paced (``[transport.loopback] pace``) so that a call takes real time and
the test can catch it in progress: it waits until the attempt row says ``running``, then sends
SIGKILL (a crash) or SIGTERM (a stop whose drain timeout is shorter than the call). After the
restart the job must complete exactly once: one completed attempt, and the cut-short one
recorded and counted (crash) or recorded and not counted (graceful stop).
"""

from __future__ import annotations

import json
import signal
import smtplib
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest

from tests.builders import make_email, pdf_bytes
from tests.conftest import free_port
from tests.daemon_process import Served, write_config

LEASE_S = 2.0
PACE = 0.1  # a one-page call (~20 s of line time) takes ~2 s


def gateway_config(folder: Path, smtp_port: int) -> Path:
    return write_config(
        folder,
        smtp_port,
        worker={"lease_s": LEASE_S, "drain_timeout_s": 0.3},
        bootstrap={"enabled": True},
        **{"transport.loopback": {"pace": PACE}},
    )


def query(db: Path, sql: str, *params: Any) -> list[sqlite3.Row]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    conn.row_factory = sqlite3.Row
    try:
        return list(conn.execute(sql, params))
    finally:
        conn.close()


def attempts(db: Path, fax_id: str) -> list[tuple[int, str]]:
    rows = query(db, "SELECT number, outcome FROM attempts WHERE fax_id = ? ORDER BY id", fax_id)
    return [(r["number"], r["outcome"]) for r in rows]


@pytest.mark.parametrize(
    ("sig", "cut_short", "attempts_counted"),
    [
        (signal.SIGKILL, (1, "interrupted"), 2),  # a crash: the attempt counts, once
        (signal.SIGTERM, (1, "released"), 1),  # a stop: handed back, not counted
    ],
    ids=["sigkill", "sigterm"],
)
def test_a_transmission_cut_short_completes_exactly_once_after_restart(
    tmp_path: Path,
    daemons: list[Served],
    sig: int,
    cut_short: tuple[int, str],
    attempts_counted: int,
) -> None:
    smtp_port = free_port()
    config = gateway_config(tmp_path, smtp_port)
    db = tmp_path / "gateway.sqlite3"
    first = Served(config, tmp_path)
    daemons.append(first)

    msg = make_email(
        to="+14155550123@fax.test", attachments=[(pdf_bytes(1), "application/pdf", "a.pdf")]
    )
    with smtplib.SMTP("127.0.0.1", smtp_port, timeout=30) as client:
        client.send_message(msg)
    [row] = query(db, "SELECT id FROM faxes WHERE direction = 'outbound'")
    fax_id = row["id"]

    first.wait_for(lambda: attempts(db, fax_id) == [(1, "running")], "the call to start")
    assert first.stop(sig) == (-signal.SIGKILL if sig == signal.SIGKILL else 0)
    [job] = query(db, "SELECT status, attempts FROM faxes WHERE id = ?", fax_id)
    if sig == signal.SIGKILL:  # killed mid-call: still leased, the attempt still "running"
        assert (job["status"], job["attempts"]) == ("processing", 1)
        assert attempts(db, fax_id) == [(1, "running")]
    else:  # drained for 0.3 s, then handed back
        assert (job["status"], job["attempts"]) == ("pending", 0)
        assert attempts(db, fax_id) == [(1, "released")]

    second = Served(config, tmp_path)
    daemons.append(second)
    second.wait_for(
        lambda: query(db, "SELECT 1 FROM faxes WHERE id = ? AND status = 'completed'", fax_id),
        "the job to complete",
    )
    # Give the reaper every chance to do wrong: several lease periods pass.
    time.sleep(LEASE_S * 1.5)
    assert second.stop() == 0

    [job] = query(db, "SELECT status, attempts, tx_result FROM faxes WHERE id = ?", fax_id)
    assert (job["status"], job["attempts"]) == ("completed", attempts_counted)
    log = attempts(db, fax_id)
    assert log[0] == cut_short
    assert [outcome for _, outcome in log].count("completed") == 1
    assert log[-1] == (attempts_counted, "completed")
    assert len(log) == 2
    tx = json.loads(job["tx_result"])
    assert tx["success"] is True
    assert tx["pages_sent"] == 1
    assert tx["fax_speed"] > 0
    # Nothing else was left behind: no lease held, no reception stuck in "incoming".
    assert query(db, "SELECT id FROM faxes WHERE status = 'processing'") == []
