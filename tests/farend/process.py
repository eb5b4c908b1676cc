"""Private far-end daemons: free loopback ports, a child process with its own log, readiness.

Every far end (kamailio, rtpengine, sipp) runs as a child of the test with its files under the
test's tmp_path and its sockets on 127.0.0.1 only; nothing here talks to the system's services.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Literal

LOOPBACK = "127.0.0.1"
Proto = Literal["udp", "tcp"]

# Ports handed to daemons are drawn below the kernel's ephemeral range (32768-60999 here), so
# that the client sockets every other test opens cannot take them between our probe and the
# daemon's bind.
_BLOCK_LOW, _BLOCK_HIGH = 20000, 32000


class FarEndError(RuntimeError):
    """A far end did not start, did not answer, or exited badly; the message carries its log."""


def _bindable(port: int, proto: Proto) -> bool:
    kind = socket.SOCK_DGRAM if proto == "udp" else socket.SOCK_STREAM
    with socket.socket(socket.AF_INET, kind) as s:
        try:
            s.bind((LOOPBACK, port))
        except OSError:
            return False
    return True


def free_port(protos: Sequence[Proto] = ("udp", "tcp")) -> int:
    """One port free on 127.0.0.1 for every protocol in ``protos`` (a SIP listener wants UDP and
    TCP on the same number)."""
    return free_port_block(1, protos=protos)


def free_port_block(count: int, *, protos: Sequence[Proto] = ("udp",), even: bool = False) -> int:
    """The first of ``count`` consecutive ports all free (rtpengine's port range, SIPp's media
    ports). Random placement keeps parallel test runs on this machine apart."""
    rng = random.SystemRandom()
    for _ in range(200):
        base = rng.randrange(_BLOCK_LOW, _BLOCK_HIGH - count)
        if even:
            base &= ~1
        if all(_bindable(p, proto) for p in range(base, base + count) for proto in protos):
            return base
    raise FarEndError(f"no {count} consecutive free ports on {LOOPBACK}")


def port_bound(port: int, proto: Proto, host: str = LOOPBACK) -> bool:
    """Whether something has bound (UDP) or listens on (TCP) ``host``:``port`` or the wildcard
    address. Read from /proc rather than probed with bind(), which could steal the port from
    the daemon we are waiting for."""
    table = Path(f"/proc/net/{proto}")
    # /proc shows an IPv4 address as the hex of its bytes in host (little-endian) order.
    address = socket.inet_aton(host)[::-1].hex().upper()
    wanted = {f"{address}:{port:04X}", f"00000000:{port:04X}"}
    for line in table.read_text().splitlines()[1:]:
        fields = line.split()
        # TCP state 0A is LISTEN; a UDP socket shows 07 (it has no connection state).
        if fields[1] in wanted and (proto == "udp" or fields[3] == "0A"):
            return True
    return False


def _group_pids(leader: int) -> list[int]:
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # gone meanwhile
        if int(fields[2]) == leader:  # pgrp: state, ppid, pgrp after the command name
            pids.append(int(stat.parent.name))
    return pids


def _decode_address(text: str) -> tuple[str, int]:
    host, port = text.split(":")
    raw = bytes.fromhex(host)
    if len(raw) == 4:
        return socket.inet_ntop(socket.AF_INET, raw[::-1]), int(port, 16)
    # IPv6: four little-endian 32-bit words
    words = b"".join(raw[i : i + 4][::-1] for i in range(0, 16, 4))
    return socket.inet_ntop(socket.AF_INET6, words), int(port, 16)


def socket_addresses(leader: int) -> set[tuple[str, str, int]]:
    """(protocol, local address, port) of every IP socket held by the process group ``leader``
    (a daemon and its workers): the evidence that a far end binds to loopback only."""
    inodes: set[str] = set()
    for pid in _group_pids(leader):
        with contextlib.suppress(OSError):
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                with contextlib.suppress(OSError):
                    target = os.readlink(fd)
                    if target.startswith("socket:["):
                        inodes.add(target[8:-1])
    found = set()
    for proto in ("udp", "tcp", "udp6", "tcp6"):
        for line in Path(f"/proc/net/{proto}").read_text().splitlines()[1:]:
            fields = line.split()
            if fields[9] in inodes:
                host, port = _decode_address(fields[1])
                found.add((proto, host, port))
    return found


def wait_until(
    predicate: Callable[[], bool], *, timeout: float, what: str, daemon: Daemon | None = None
) -> None:
    """Poll ``predicate`` until it holds; fail with ``what`` (and the daemon's log) if it does
    not within ``timeout`` or the daemon dies first. The timeout is only a guard."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        if daemon is not None and not daemon.alive:
            raise FarEndError(f"{daemon.name} exited before {what}\n{daemon.log_tail()}")
        time.sleep(0.02)
    if daemon is not None:
        raise FarEndError(f"{daemon.name}: no {what} within {timeout}s\n{daemon.log_tail()}")
    raise FarEndError(f"no {what} within {timeout}s")


class Daemon:
    """One child process in its own session (so that a stop reaches its workers too), stdout and
    stderr into one log file."""

    def __init__(self, name: str, argv: Sequence[str], log_path: Path, cwd: Path) -> None:
        self.name = name
        self.argv = list(argv)
        self.log_path = log_path
        self.cwd = cwd
        self._popen: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            self._popen = subprocess.Popen(
                self.argv,
                cwd=self.cwd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    @property
    def pid(self) -> int:
        assert self._popen is not None, f"{self.name} was not started"
        return self._popen.pid

    @property
    def alive(self) -> bool:
        return self._popen is not None and not self._exited()

    @property
    def returncode(self) -> int | None:
        """The exit status, once it has exited (and been reaped by ``wait`` or ``stop``)."""
        return None if self._popen is None else self._popen.returncode

    def _exited(self) -> bool:
        """Whether the leader has exited, WITHOUT reaping it: while it is a zombie its pid, and
        so our process group id, cannot be reused by anyone else, which makes the final killpg
        safe."""
        assert self._popen is not None
        if self._popen.returncode is not None:
            return True
        flags = os.WEXITED | os.WNOWAIT | os.WNOHANG
        return os.waitid(os.P_PID, self._popen.pid, flags) is not None

    def _await_exit(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while not self._exited():
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.01)
        return True

    def _reap(self) -> int:
        assert self._popen is not None
        if self._popen.returncode is None:
            # Leftover workers of the group go first, while the zombie leader holds the pgid.
            self._signal(signal.SIGKILL)
        return self._popen.wait()

    def wait(self, timeout: float) -> int:
        """The exit status once it ends by itself (SIPp); kills it if it overruns the guard."""
        assert self._popen is not None, f"{self.name} was not started"
        if not self._await_exit(timeout):
            self.stop()
            raise FarEndError(f"{self.name} still running after {timeout}s\n{self.log_tail()}")
        return self._reap()

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM to the process group, SIGKILL if it lingers; idempotent."""
        if self._popen is None:
            return None
        if self._popen.returncode is None:
            if not self._exited():
                self._signal(signal.SIGTERM)
                if not self._await_exit(timeout):
                    self._signal(signal.SIGKILL)
                    self._await_exit(timeout)
            self._reap()
        return self._popen.returncode

    def _signal(self, sig: signal.Signals) -> None:
        assert self._popen is not None
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self._popen.pid, sig)

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])
