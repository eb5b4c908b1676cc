"""sd_notify over a real datagram socket, and the JSON log format."""

from __future__ import annotations

import json
import logging
import os
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway import logs, sdnotify
from gateway.config import LoggingSettings


@pytest.fixture
def abstract_socket() -> Iterator[tuple[socket.socket, str]]:
    name = f"fax-gateway-test-{os.getpid()}-{id(object())}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(b"\0" + name.encode())
    sock.settimeout(5)
    yield sock, "@" + name
    sock.close()


def test_ready_reaches_an_abstract_socket(
    abstract_socket: tuple[socket.socket, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    sock, address = abstract_socket
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert sdnotify.ready("smtp 127.0.0.1:25") is False  # no NOTIFY_SOCKET: a no-op
    assert sdnotify.notify("READY=1", "STATUS=up", environ={"NOTIFY_SOCKET": address})
    assert sock.recv(4096) == b"READY=1\nSTATUS=up"


def test_stopping_and_reloading_reach_a_path_socket(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(path))
        sock.settimeout(5)
        monkeypatch.setenv("NOTIFY_SOCKET", str(path))
        assert sdnotify.stopping()
        assert sock.recv(4096) == b"STOPPING=1\nSTATUS=draining"
        assert sdnotify.reloading()
        fields = sock.recv(4096).decode().split("\n")
        assert fields[0] == "RELOADING=1"
        assert fields[1].startswith("MONOTONIC_USEC=") and int(fields[1].split("=")[1]) > 0


def test_a_missing_socket_is_logged_not_raised(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    env = {"NOTIFY_SOCKET": str(tmp_path / "gone.sock")}
    assert sdnotify.notify("READY=1", environ=env) is False
    assert "sd_notify" in caplog.text
    assert sdnotify.notify("READY=1", environ={"NOTIFY_SOCKET": "vsock:2:999"}) is False


def test_json_lines_carry_the_extra_fields() -> None:
    record = logging.LogRecord("gateway.smtp.handler", logging.INFO, "x.py", 1, "smtp id=%s",
                               ("abc",), None)  # fmt: skip
    record.fax_ids = ["f1", "f2"]
    record.message_id = "<m@example.com>"
    record.path = Path("/tmp/x")  # not JSON by itself: becomes a string, the line survives
    data = json.loads(logs.JsonFormatter().format(record))
    assert data["message"] == "smtp id=abc"
    assert data["level"] == "INFO" and data["logger"] == "gateway.smtp.handler"
    assert data["fax_ids"] == ["f1", "f2"] and data["message_id"] == "<m@example.com>"
    assert data["path"] == "/tmp/x" and data["time"].endswith("+00:00")
    assert "args" not in data and "msg" not in data


def test_json_lines_carry_exceptions() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.LogRecord("x", logging.ERROR, "x.py", 1, "failed", (), None)
        record.exc_info = sys.exc_info()
    data = json.loads(logs.JsonFormatter().format(record))
    assert "ValueError: boom" in data["exception"]


def test_configure_installs_one_handler_and_sets_levels() -> None:
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    root.handlers = []
    try:
        logs.configure(LoggingSettings(level="DEBUG", format="json"))
        logs.configure(LoggingSettings(level="WARNING", format="json"))
        ours = [h for h in root.handlers if isinstance(h.formatter, logs.JsonFormatter)]
        assert len(root.handlers) == 1 and len(ours) == 1
        assert root.level == logging.WARNING
        assert logging.getLogger("mail.log").level == logging.WARNING
    finally:
        root.handlers = saved_handlers
        root.setLevel(saved_level)
