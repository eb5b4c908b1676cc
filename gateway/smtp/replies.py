"""Every SMTP reply the gateway gives, and the one place errors become replies."""

from __future__ import annotations

from gateway.errors import (
    BusyError,
    ConversionError,
    DocumentError,
    GatewayError,
    InvalidNumberError,
    NoDocumentError,
    RelayDeniedError,
    SenderDeniedError,
    TooManyPagesError,
    UndrawableTextError,
    UnsupportedDocumentError,
)

TOO_BUSY = "421 4.3.2 Too many connections, try again later"
SHUTTING_DOWN = "421 4.3.2 Service shutting down, try again later"
TLS_REQUIRED = "530 5.7.0 Must issue a STARTTLS command first"
AUTH_REQUIRED = "530 5.7.0 Authentication required"
AUTH_OK = "235 2.7.0 Authentication successful"
AUTH_INVALID = "535 5.7.8 Authentication credentials invalid"
AUTH_UNSUPPORTED = "504 5.5.4 Unrecognized authentication type"
AUTH_ABORTED = "501 5.7.0 Auth aborted"
AUTH_GUESSING = "454 4.7.0 Too many failed authentication attempts"
SENDER_OK = "250 2.1.0 Sender ok"
TOO_MANY_RECIPIENTS = "452 4.5.3 Too many recipients"
BAD_RECIPIENT = "501 5.1.3 Bad recipient address syntax"
TEMPORARY_FAILURE = "451 4.3.0 Temporary failure, please try again later"
RSET_REASON = "transaction reset by client (RSET)"
QUIT_REASON = "client quit before DATA"
HELO_REASON = "transaction reset by client (HELO/EHLO)"
STARTTLS_REASON = "transaction reset by client (STARTTLS)"
DISCONNECT_REASON = "client disconnected"
DISCONNECT_IN_DATA_REASON = "client disconnected during DATA"
TIMEOUT_REASON = "session timed out"


def recipient_ok(number: str) -> str:
    return f"250 2.1.5 Recipient ok, fax to {number}"


def queued(fax_ids: list[str]) -> str:
    return "250 2.0.0 queued as " + " ".join(fax_ids)


def too_large(limit: int) -> str:
    return f"552 5.3.4 Message exceeds the maximum size of {limit} bytes"


def reply_for(error: GatewayError) -> str:
    """Map a rejection to its reply; anything unforeseen is temporary so no mail is lost."""
    text = _one_line(str(error))
    match error:
        case RelayDeniedError():
            return f"550 5.7.1 relaying denied: {text}"
        case SenderDeniedError():
            return f"550 5.7.1 {text}"
        case InvalidNumberError():
            return f"550 5.1.1 {text}"
        case BusyError():
            return f"451 4.3.2 {text}; try again later"
        case ConversionError():
            return f"554 5.6.5 {_one_line(error.part)}: {_one_line(error.reason)}"
        case UndrawableTextError():
            return f"554 5.6.3 {_one_line(error.part)}: {_one_line(error.reason)}"
        case DocumentError():
            return f"554 5.6.0 {_one_line(error.part)}: {_one_line(error.reason)}"
        case NoDocumentError():
            return f"554 5.6.0 {text}"
        case UnsupportedDocumentError():
            return f"554 5.6.1 {text}"
        case TooManyPagesError():
            return f"554 5.3.4 {text}"
    return TEMPORARY_FAILURE


# aiosmtpd's own replies carry no enhanced status code; give them one on the way out.
_REWRITES = {
    "552 Error: message size exceeds fixed maximum message size": (
        "552 5.3.4 Message size exceeds fixed maximum message size"
    ),
    "503 Error: need RCPT command": "503 5.5.1 Error: need RCPT command",
    "503 Error: need MAIL command": "503 5.5.1 Error: need MAIL command",
    "503 Error: nested MAIL command": "503 5.5.1 Error: nested MAIL command",
    "500 Line too long (see RFC5321 4.5.3.1.6)": "500 5.5.2 Line too long",
}


def rewrite(status: str, max_message_bytes: int) -> str:
    """The reply as sent: enhanced codes on aiosmtpd's own replies; always one ASCII line."""
    if status == "552 Error: Too much mail data":
        return too_large(max_message_bytes)
    status = _REWRITES.get(status, status)
    if not status.isascii() or "\r" in status or "\n" in status:
        status = _one_line(status)
    return status


def reply_code(status: str) -> int | None:
    head = status[:3]
    return int(head) if head.isdigit() else None


def _one_line(text: str) -> str:
    """One line of printable ASCII (file names and addresses come from the client)."""
    text = text.encode("ascii", "backslashreplace").decode("ascii")
    return " ".join("".join(ch if ch.isprintable() else " " for ch in text).split())[:400]
