"""The one error tree of the gateway.

Adapters translate foreign exceptions into these (``raise X from exc``); each edge maps them
to its own protocol exactly once (SMTP replies in ``gateway.smtp.replies``, HTTP answers in
``gateway.api.errors``, exit codes in ``gateway.cli``).

    GatewayError
    ├── ConfigError                 bad configuration: the CLI exits 2, the daemon refuses to start
    ├── StorageError                the store failed; temporary from the caller's point of view
    ├── NotFoundError               no such object (or not visible to this account)
    ├── ConflictError               the object is in a state that forbids the operation
    ├── InvalidFieldError           a client-supplied field is wrong (field, rule, message)
    ├── AddressError                an SMTP recipient or sender that cannot be served
    │   ├── RelayDeniedError          the domain is not ours
    │   ├── InvalidNumberError        the local part is not a dialable number
    │   └── SenderDeniedError         the sender may not use this faxbox
    ├── MessageError                a message whose content cannot become a fax
    │   ├── NoDocumentError           nothing fax-able in it
    │   ├── UnsupportedDocumentError  only document types we cannot fax
    │   ├── DocumentError             one document is corrupt, encrypted or hostile (part, reason)
    │   │   ├── ConversionError             an Office document LibreOffice could not convert
    │   │   └── UndrawableTextError         text with characters no installed font can draw
    │   └── TooManyPagesError         more pages than allowed
    ├── BusyError                   no capacity for this work now (every conversion slot taken)
    ├── TransmitError               a fax attempt failed (carries its failure class)
    ├── DeliveryError               a notification could not be delivered (permanent or not)
    └── SipError                    SIP signalling failed (gateway.sip)
        ├── SipParseError             a message or header value cannot be read (gateway.sip.headers)
        ├── SipTransportError         a message could not be sent: refused, reset, unreachable
        ├── SipTimeout                no final response in time (RFC 3261 Timer B or F)
        ├── CallRejected              our INVITE got a final >= 300 (status, reason)
        │   └── RingTimeout             nobody answered in time; we cancelled
        └── CallEnded                 the call is over; the operation cannot be done
"""

from __future__ import annotations


class GatewayError(Exception):
    """Base of every error the gateway raises on purpose."""


class ConfigError(GatewayError):
    pass


class StorageError(GatewayError):
    pass


class NotFoundError(GatewayError):
    pass


class ConflictError(GatewayError):
    pass


class InvalidFieldError(GatewayError):
    """A client-supplied field failed a rule (reported as Kazoo's ``data.<field>.<rule>``)."""

    def __init__(self, field: str, rule: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.rule = rule
        self.message = message


class AddressError(GatewayError):
    pass


class RelayDeniedError(AddressError):
    pass


class InvalidNumberError(AddressError):
    pass


class SenderDeniedError(AddressError):
    pass


class MessageError(GatewayError):
    """``parts`` describes the message's parts (content type, client file name) when known."""

    parts: tuple[dict[str, str], ...] = ()


class NoDocumentError(MessageError):
    pass


class UnsupportedDocumentError(MessageError):
    pass


class DocumentError(MessageError):
    """One document cannot be faxed; ``part`` names it as the sender knows it."""

    def __init__(self, part: str, reason: str) -> None:
        super().__init__(f"{part}: {reason}")
        self.part = part
        self.reason = reason

    def __reduce__(self) -> tuple[type[DocumentError], tuple[str, str]]:
        # Raised inside render processes: it must unpickle with both arguments, or the pool's
        # result thread fails on it and the whole pool is reported broken.
        return (type(self), (self.part, self.reason))


class ConversionError(DocumentError):
    """LibreOffice failed on the document: it crashed, ran out of time or memory, or made
    nothing; the same document would fail again, so the refusal is final."""


class UndrawableTextError(DocumentError):
    """Text whose characters no font on this gateway can draw: a fax of empty boxes is worse
    than a refusal."""


class TooManyPagesError(MessageError):
    pass


class BusyError(GatewayError):
    """The work cannot be taken now for lack of capacity; the same request later may succeed."""


class TransmitError(GatewayError):
    """A transmission attempt failed; ``failure_class`` decides whether and when to retry."""

    def __init__(self, failure_class: str, message: str) -> None:
        super().__init__(message)
        self.failure_class = failure_class

    def __reduce__(self) -> tuple[type[TransmitError], tuple[str, str]]:
        # Raised inside a transport's process pool (loopback with a ProcessPoolExecutor).
        return (type(self), (self.failure_class, str(self)))


class DeliveryError(GatewayError):
    """A notification (email, SMS) was not delivered; ``permanent`` means retrying cannot help
    (the smarthost called the address bad, the webhook answered 4xx)."""

    def __init__(self, message: str, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


class SipError(GatewayError):
    """Base of the SIP stack's errors (gateway.sip)."""


class SipTransportError(SipError):
    """A SIP message could not be sent (connection refused or reset, no route, unresolvable
    host, too large for a datagram) or the stack is closed."""


class SipTimeout(SipError):
    """A client transaction got no final response in time (RFC 3261 Timer B or F): for the
    caller, the same as a 408 from the far end."""


class CallRejected(SipError):
    """Our INVITE got a final response >= 300 (or a 2xx we could not use): ``status`` and
    ``reason`` are the far end's, for the transport to map to a failure class."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"{status} {reason}")
        self.status = status
        self.reason = reason

    def __reduce__(self) -> tuple[type[CallRejected], tuple[int, str]]:
        return (type(self), (self.status, self.reason))


class RingTimeout(CallRejected):
    """Nobody answered within the ring timeout: we cancelled, and ``status`` is the final
    response the cancelled INVITE got (487 normally)."""


class CallEnded(SipError):
    """The call is over (cancelled, hung up, expired): the operation cannot be done on it."""
