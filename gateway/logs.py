"""Log output: plain lines for people, or one JSON object per line for log shippers.

The lines that matter to operators (one per SMTP transaction, one per transmission attempt)
carry their facts as ``extra`` fields (``smtplog_id``, ``fax_ids``, ``fax_id``,
``message_id``, ...); the JSON format puts every such field in the object, so a log pipeline
can index by fax id or Message-ID without parsing the message text.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

from gateway.config import LoggingSettings

PLAIN_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"

# Attributes every LogRecord has; anything else on a record came from ``extra=``.
_STANDARD = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", None, None)).keys() | {"message", "asctime"}
)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                data[key] = value
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            data["stack"] = self.formatStack(record.stack_info)
        # default=str: a stray non-JSON value (a Path, an enum) must not lose the line.
        return json.dumps(data, default=str, ensure_ascii=False)


class _GatewayHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Marks the handler ``configure`` installed, so calling it again replaces, not stacks."""


def configure(settings: LoggingSettings) -> None:
    """Install the root handler in the configured format and set the level."""
    root = logging.getLogger()
    ours = [h for h in root.handlers if isinstance(h, _GatewayHandler)]
    if len(ours) == len(root.handlers):  # like basicConfig: leave a host's handlers alone
        for old in ours:
            root.removeHandler(old)
        root.addHandler(_handler(settings))
    set_level(settings.level)


def _handler(settings: LoggingSettings) -> logging.Handler:
    handler = _GatewayHandler()  # stderr: journald and container runtimes collect it
    handler.setFormatter(JsonFormatter() if settings.format == "json" else _plain())
    return handler


def set_level(level: str) -> None:
    """Set the level (also on SIGHUP); aiosmtpd's per-command INFO chatter stays at WARNING,
    since our handler logs one line per transaction."""
    logging.getLogger().setLevel(level)
    logging.getLogger("mail.log").setLevel(max(logging.WARNING, logging.getLogger().level))


def _plain() -> logging.Formatter:
    return logging.Formatter(PLAIN_FORMAT)
