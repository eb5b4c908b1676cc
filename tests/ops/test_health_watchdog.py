"""systemd's watchdog and a real ``fax-gateway serve``: pinged while healthy; when a part breaks,
told what is wrong instead of pinged; pinged again once it works."""

from __future__ import annotations

import os
import signal
import smtplib
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway import sdnotify
from tests.builders import make_email, pdf_bytes
from tests.conftest import free_port
from tests.daemon_process import NotifySocket, Served, write_config


@pytest.fixture
def notify() -> Iterator[NotifySocket]:
    sock = NotifySocket()
    yield sock
    sock.close()


def children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue  # gone meanwhile
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def render_workers(daemon_pid: int) -> list[int]:
    """The render pool's workers: children of the daemon's fork server."""
    workers = []
    for child in children(daemon_pid):
        if b"forkserver" in Path(f"/proc/{child}/cmdline").read_bytes():
            workers += children(child)
    return workers


def next_message(notify: NotifySocket) -> list[str]:
    notify.sock.settimeout(30)
    return notify.sock.recv(4096).decode().split("\n")


def test_watchdog_pings_stop_while_a_part_is_broken(
    tmp_path: Path, notify: NotifySocket, daemons: list[Served], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WATCHDOG_USEC", "1000000")  # WatchdogSec=1: a ping every 0.5 s
    port = free_port()
    config = write_config(tmp_path, port, bootstrap={"enabled": True})
    daemon = Served(config, tmp_path, notify)
    daemons.append(daemon)
    notify.expect("WATCHDOG=1")

    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        client.send_message(
            make_email(attachments=[(pdf_bytes(1), "application/pdf", "a.pdf")]),
            "alice@example.com",
            ["+14155550100@fax.test"],
        )
    daemon.wait_for(lambda: "outcome=completed" in daemon.output(), "the fax to be sent")
    workers = render_workers(daemon.process.pid)  # idle now
    assert workers
    for worker in workers:
        os.kill(worker, signal.SIGKILL)  # the OOM killer, say

    for _ in range(100):  # pings come every 0.5 s, the health checks run as often
        message = next_message(notify)
        if any(field.startswith("STATUS=unhealthy: render_pool") for field in message):
            break
    else:
        pytest.fail(f"no unhealthy status:\n{daemon.output()}")
    assert "WATCHDOG=1" not in message
    # The pool was restarted: the next round is healthy, and the pings resume.
    notify.expect("WATCHDOG=1")
    assert daemon.stop() == 0


def test_the_watchdog_interval_is_half_of_watchdog_sec_for_this_process() -> None:
    assert sdnotify.watchdog_interval({"WATCHDOG_USEC": "30000000"}) == 15.0
    mine = {"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid())}
    assert sdnotify.watchdog_interval(mine) == 15.0
    assert sdnotify.watchdog_interval({**mine, "WATCHDOG_PID": str(os.getpid() + 1)}) is None
    assert sdnotify.watchdog_interval({}) is None
    assert sdnotify.watchdog_interval({"WATCHDOG_USEC": "soon"}) is None
