"""systemd's readiness protocol (sd_notify) without libsystemd: one datagram to ``$NOTIFY_SOCKET``.

With ``Type=notify`` systemd waits for ``READY=1`` before it counts the service as started (and
before units ordered after it start), so the daemon sends it only once SMTP (and HTTP) listen.
``STOPPING=1`` and ``RELOADING=1`` keep ``systemctl status`` truthful during a drain or a
SIGHUP. Outside systemd (no ``NOTIFY_SOCKET``) every call is a no-op, so the daemon can call
these unconditionally.

With ``WatchdogSec=`` systemd expects ``WATCHDOG=1`` at least that often and restarts the
service when it stops coming. The daemon pings only while its health check passes
(gateway.health); when it fails, it sends ``STATUS=unhealthy: <parts>`` instead, so a daemon
that stays broken (or whose event loop hangs) is restarted, and ``systemctl status`` says why.
"""

from __future__ import annotations

import logging
import os
import socket
import time

log = logging.getLogger(__name__)


def socket_address(value: str) -> str | bytes | None:
    """The address ``$NOTIFY_SOCKET`` names: a path, or an abstract name written ``@name``."""
    if not value:
        return None
    if value.startswith("@"):
        return b"\0" + value[1:].encode()  # Linux abstract namespace: a leading NUL byte
    if value.startswith("/"):
        return value
    return None  # vsock addresses (vsock:CID:PORT) are for VMs; not needed here


def notify(*fields: str, environ: dict[str, str] | None = None) -> bool:
    """Send ``fields`` (``"READY=1"``, ``"STATUS=..."``) as one message; True if it was sent.

    Never raises: failing to tell systemd must not take the daemon down (systemd will then
    time the start out, which is the right visible symptom).
    """
    env = os.environ if environ is None else environ
    address = socket_address(env.get("NOTIFY_SOCKET", ""))
    if address is None or not fields:
        return False
    message = "\n".join(fields).encode()
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall(message)
    except OSError as exc:
        log.warning("sd_notify to %s failed: %s", env.get("NOTIFY_SOCKET"), exc)
        return False
    return True


def ready(status: str = "") -> bool:
    return notify("READY=1", *([f"STATUS={status}"] if status else []))


def stopping(status: str = "draining") -> bool:
    return notify("STOPPING=1", f"STATUS={status}")


def reloading() -> bool:
    # MONOTONIC_USEC lets systemd >= 253 (Type=notify-reload) match the reload to this signal.
    usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    return notify("RELOADING=1", f"MONOTONIC_USEC={usec}", "STATUS=reloading configuration")


def watchdog_interval(environ: dict[str, str] | None = None) -> float | None:
    """Seconds between watchdog pings (half of ``WatchdogSec=``, as sd_watchdog_enabled(3)
    advises), or None when systemd expects none (or expects them from another process)."""
    env = os.environ if environ is None else environ
    try:
        usec = int(env.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    pid = env.get("WATCHDOG_PID")
    if usec <= 0 or (pid and pid != str(os.getpid())):
        return None
    return usec / 1e6 / 2


def watchdog() -> bool:
    return notify("WATCHDOG=1")


def status(text: str) -> bool:
    return notify(f"STATUS={text}")
