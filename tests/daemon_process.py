"""A real ``fax-gateway serve`` subprocess: its config, its log, waiting on it and stopping it.

Used by the signal, readiness and admin tests (tests/ops) and the crash tests. Register each
``Served`` with the ``daemons`` fixture (tests/conftest.py) so that none outlives its test.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from signal import SIGKILL, SIGTERM
from typing import Any

import pytest

from tests.conftest import free_port

ROOT = Path(__file__).resolve().parents[1]


def write_config(folder: Path, smtp_port: int, **sections: dict[str, Any]) -> Path:
    """A config for a test daemon; ``sections`` add or override keys ("smtp": {...})."""
    data: dict[str, dict[str, Any]] = {
        "storage": {"path": str(folder / "gateway.sqlite3"), "synchronous": "normal"},
        "smtp": {"host": "127.0.0.1", "port": smtp_port, "default_smtp_domain": "fax.test"},
        "http": {"host": "127.0.0.1", "port": free_port()},
        "worker": {"poll_s": 0.1, "drain_timeout_s": 2},
        "render": {"workers": 1},
        "logging": {"level": "INFO"},
    }
    for name, values in sections.items():
        data.setdefault(name, {}).update(values)
    lines = []
    for name, values in data.items():
        lines.append(f"[{name}]")
        lines += [f"{key} = {_toml(value)}" for key, value in values.items()]
    config = folder / "gateway.toml"
    config.write_text("\n".join(lines) + "\n")
    return config


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return str(value)


class NotifySocket:
    """What systemd does for ``Type=notify``: a datagram socket named in ``NOTIFY_SOCKET``."""

    def __init__(self) -> None:
        self.name = f"@fax-gateway-test-{os.getpid()}-{time.monotonic_ns()}"
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(b"\0" + self.name[1:].encode())

    def expect(self, field: str, timeout: float = 30) -> list[str]:
        """Read messages until one carries ``field`` (e.g. ``READY=1``); that message."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            self.sock.settimeout(left)
            try:
                fields = self.sock.recv(4096).decode().split("\n")
            except TimeoutError:
                break
            if field in fields:
                return fields
        pytest.fail(f"no {field} from the daemon within {timeout}s")

    def close(self) -> None:
        self.sock.close()


class Served:
    """One ``python -m gateway serve``; stdout and stderr go to a file for the post-mortem.

    The constructor returns once the daemon is ready: READY=1 on ``notify`` if given, else
    ``ready()`` holds if given, else its log says "fax-gateway ready" (within ``timeout``).
    ``own_group`` starts it in its own process group, so that ``kill`` takes its render
    workers down with it.
    """

    def __init__(
        self,
        config: Path,
        folder: Path,
        notify: NotifySocket | None = None,
        *,
        ready: Callable[[], Any] | None = None,
        own_group: bool = False,
        timeout: float = 30,
    ) -> None:
        self.config = config
        self.own_group = own_group
        self.log = folder / f"daemon-{time.monotonic_ns()}.log"
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        env.pop("NOTIFY_SOCKET", None)
        if notify is not None:
            env["NOTIFY_SOCKET"] = notify.name
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "gateway", "--config", str(config), "serve"],
                cwd=ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=own_group,
            )
        if notify is not None:
            notify.expect("READY=1", timeout)
        else:
            self.wait_for(ready or self._logged_ready, "the daemon to start", timeout)

    def _logged_ready(self) -> bool:
        return "fax-gateway ready" in self.output()

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for(self, condition: Callable[[], Any], what: str, timeout: float = 30) -> Any:
        """Poll ``condition`` until it is truthy (its value); fail if the daemon exits first."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = condition()
            if value:
                return value
            if self.process.poll() is not None:
                pytest.fail(f"daemon exited ({self.process.returncode}):\n{self.output()}")
            time.sleep(0.02)
        pytest.fail(f"timed out waiting for {what}:\n{self.output()}")

    def signal(self, sig: int) -> None:
        self.process.send_signal(sig)

    def stop(self, sig: int = SIGTERM, timeout: float = 30) -> int:
        """Send ``sig`` (if it still runs) and wait: its exit status (-N for signal N)."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
        return self.process.wait(timeout)

    def kill(self) -> None:
        """SIGKILL it (and its process group, if it has its own) and reap it."""
        if self.own_group:
            with contextlib.suppress(ProcessLookupError):  # the whole group is gone already
                os.killpg(self.process.pid, SIGKILL)
        elif self.process.poll() is None:
            self.process.kill()
        self.process.wait(10)


def cli(config: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run ``fax-gateway --config CONFIG ARGS`` as its own process (beside a running daemon)."""
    return subprocess.run(
        [sys.executable, "-m", "gateway", "--config", str(config), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
