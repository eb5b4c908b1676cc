"""SIGHUP: re-read the config file and apply what is safe to change in a running daemon.

Reloadable: ``[logging] level``; the SMTP limits (``max_sessions``, ``max_recipients``,
``max_pages``, ``max_message_bytes``, ``max_image_pixels``, ``timeout_s``,
``drain_timeout_s``) and ``bare_lf``; the TLS certificate and key (re-read from disk even
when the paths are unchanged, which is what a certificate renewal needs); and all of
``[retention]``. New SMTP connections get the new limits; sessions already open keep theirs.

Everything else (addresses, ports, the database, the transport, trusted networks, ...) needs
a restart: a reload that changes such a key applies the rest and logs which keys were left
as they were. A config that does not load, or a certificate that does not load, changes
nothing: the daemon keeps running as it was and logs why.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Protocol

from gateway import sdnotify
from gateway.config import Settings, load_settings, parse_settings
from gateway.errors import ConfigError
from gateway.smtp.server import tls_context

log = logging.getLogger(__name__)


class Reloadable(Protocol):
    """What SIGHUP reloads (the daemon): its settings, where they come from, and the method
    that applies new ones to every part."""

    @property
    def settings(self) -> Settings: ...

    @property
    def config_path(self) -> Path | None: ...

    def reload(self, settings: Settings) -> None: ...


RELOADABLE: dict[str, frozenset[str] | None] = {  # None: the whole section
    "logging": frozenset({"level"}),
    "smtp": frozenset(
        {
            "max_sessions",
            "max_recipients",
            "max_pages",
            "max_message_bytes",
            "max_image_pixels",
            "timeout_s",
            "drain_timeout_s",
            "bare_lf",
            "tls_cert",
            "tls_key",
        }
    ),
    "retention": None,
}


def merge(old: Settings, new: Settings) -> tuple[Settings, list[str]]:
    """``old`` with the reloadable keys of ``new``, and the keys that changed but need a
    restart (dotted names)."""
    merged: dict[str, Any] = old.model_dump()
    wanted = new.model_dump()
    ignored: list[str] = []
    for section, values in wanted.items():
        keys = RELOADABLE.get(section, frozenset())
        for key, value in values.items():
            if keys is None or key in keys:
                merged[section][key] = value
            elif merged[section][key] != value:
                ignored.append(f"{section}.{key}")
    return parse_settings(merged), ignored


async def reload(daemon: Reloadable) -> bool:
    """Apply the config file to ``daemon``; False if it was left unchanged."""
    sdnotify.reloading()
    try:
        return _apply(daemon)
    finally:
        sdnotify.ready("reloaded")


def _apply(daemon: Reloadable) -> bool:
    if daemon.config_path is None:
        log.warning("reload: no config file to reload (the daemon was given settings)")
        return False
    try:
        settings, ignored = merge(daemon.settings, load_settings(daemon.config_path))
        tls_context(settings.smtp)  # before changing anything: a bad cert changes nothing
    except ConfigError as exc:
        log.error("reload: keeping the running configuration: %s", exc)
        return False
    try:
        daemon.reload(settings)
    except ConfigError as exc:  # a certificate replaced by a broken one since the check above
        log.error("reload: keeping the running configuration: %s", exc)
        return False
    if ignored:
        log.warning("reload: these changes need a restart: %s", ", ".join(ignored))
    log.info("reload: configuration applied from %s", daemon.config_path)
    return True
