"""From an RFC 5322 message to the ordered list of documents to fax (pure: bytes in, records out).

Parts are taken in message order; nested multiparts and attached messages are walked; a
part's real type is found from its bytes, not its label or file name.
"""

from __future__ import annotations

import email
import email.errors
import email.policy
import functools
import html
import re
from dataclasses import dataclass, field
from email.headerregistry import BaseHeader, HeaderRegistry
from email.message import EmailMessage, Message

from gateway.documents.charsets import decode_text
from gateway.documents.inspect import (
    InspectLimits,
    image_size,
    inspect_binary,
    sniff,
    text_document,
)
from gateway.errors import (
    DocumentError,
    MessageError,
    NoDocumentError,
    TooManyPagesError,
    UnsupportedDocumentError,
)
from gateway.models import DocumentKind, SourceDocument

FAX_TYPES = frozenset(
    {"application/pdf", "image/tiff", "image/png", "image/jpeg", "image/gif", "image/jpg"}
)
# Parts that travel with ordinary mail and are never meant to be faxed: not "unsupported".
IGNORED_TYPES = frozenset(
    {
        "application/pkcs7-signature",
        "application/x-pkcs7-signature",
        "application/pgp-signature",
        "application/pgp-keys",
        "text/calendar",
        "text/x-vcard",
        "text/vcard",
        "message/delivery-status",
    }
)
_IMAGE_KINDS = frozenset({DocumentKind.PNG, DocumentKind.JPEG, DocumentKind.GIF, DocumentKind.TIFF})
_EXTENSIONS = {
    DocumentKind.PDF: "pdf",
    DocumentKind.TIFF: "tif",
    DocumentKind.PNG: "png",
    DocumentKind.JPEG: "jpg",
    DocumentKind.GIF: "gif",
    DocumentKind.TEXT: "txt",
}
MAX_NESTING = 20


@dataclass(frozen=True)
class IntakeOptions:
    include_body: bool = False
    min_inline_image_px: int = 300
    limits: InspectLimits = field(default_factory=InspectLimits)


@dataclass(frozen=True)
class PartInfo:
    """One leaf part as the sender labelled it, and what intake made of it (for the smtplog)."""

    content_type: str
    filename: str | None  # the client's file name, never a path of ours
    outcome: str  # document, body, skipped (an inline logo), unsupported, ignored, rejected
    pages: int | None = None

    def view(self) -> dict[str, str]:
        data = {"content_type": self.content_type, "outcome": self.outcome}
        if self.filename:
            data["filename"] = self.filename
        if self.pages is not None:
            data["pages"] = str(self.pages)
        return data


@dataclass
class ParsedMessage:
    message_id: str | None = None
    subject: str | None = None
    from_header: str | None = None
    body: str | None = None
    documents: list[SourceDocument] = field(default_factory=list)
    unsupported: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    parts: list[PartInfo] = field(default_factory=list)

    @property
    def pages(self) -> int:
        return sum(doc.pages for doc in self.documents)


_REGISTRY = HeaderRegistry()


@functools.lru_cache(maxsize=4096)
def _shared_header(name: str, value: str) -> BaseHeader:
    return _REGISTRY(name, value)


def _header_factory(name: str, value: str) -> BaseHeader:
    """``policy.default`` parses a header again on every access, and the parser itself asks
    for each part's Content-Type several times: share the parsed headers (immutable objects;
    the message keeps only the raw text). Long, one-off values are not kept."""
    if len(value) <= 256:
        return _shared_header(name, value)
    return _REGISTRY(name, value)


# policy.default, with the same header classes and results, only parsed once per value.
POLICY = email.policy.default.clone(header_factory=_header_factory)


def parse_headers(raw: bytes) -> EmailMessage:
    message = email.message_from_bytes(raw, policy=POLICY)
    assert isinstance(message, EmailMessage)
    return message


# What the stdlib parser raises on input it cannot make sense of (it is lenient; these are rare).
_MALFORMED = (
    ValueError,
    LookupError,
    TypeError,
    AttributeError,
    IndexError,
    UnicodeError,
    AssertionError,
    RecursionError,
    email.errors.MessageError,
)


def read_message(raw: bytes, options: IntakeOptions) -> ParsedMessage:
    """Parse and validate; raise a MessageError subclass if nothing can be faxed.

    A raised MessageError carries ``parts``: the parts seen so far, for the smtplog.
    """
    parsed = ParsedMessage()
    try:
        _read_into(parsed, raw, options)
    except MessageError as exc:
        exc.parts = tuple(p.view() for p in parsed.parts)
        raise
    return parsed


def _read_into(parsed: ParsedMessage, raw: bytes, options: IntakeOptions) -> None:
    try:
        message = parse_headers(raw)
        parsed.message_id = _header(message, "Message-ID")
        parsed.subject = _header(message, "Subject")
        parsed.from_header = _header(message, "From")
        walker = _Walker(parsed, options)
        walker.walk(message, depth=0, top=True)
    except MessageError:
        raise
    except _MALFORMED as exc:
        raise DocumentError("message", f"malformed MIME ({type(exc).__name__})") from exc
    if parsed.unsupported and not parsed.documents:
        # The sender attached something to fax; the body text must not stand in for it.
        raise UnsupportedDocumentError(
            "unsupported document type: " + ", ".join(dict.fromkeys(parsed.unsupported))
        )
    if parsed.body and (options.include_body or not parsed.documents):
        body_doc = text_document(parsed.body, "body.txt")
        parsed.documents.insert(0, body_doc)
        parsed.parts.insert(0, PartInfo("text/plain", None, "body", body_doc.pages))
    if not parsed.documents:
        raise NoDocumentError("no fax document in message")
    if parsed.pages > options.limits.max_pages:
        raise TooManyPagesError(
            f"{parsed.pages} pages exceed the limit of {options.limits.max_pages}"
        )


def _header(message: Message, name: str) -> str | None:
    value = message.get(name)
    if value is None:
        return None
    text = " ".join(str(value).split())
    return text[:998] or None


class _Walker:
    def __init__(self, parsed: ParsedMessage, options: IntakeOptions) -> None:
        self.parsed = parsed
        self.options = options
        self.count = 0
        self.html_body: str | None = None

    def walk(self, part: Message, depth: int, top: bool) -> None:
        if depth > MAX_NESTING:
            raise DocumentError("message", f"MIME nesting deeper than {MAX_NESTING}")
        ctype = part.get_content_type()
        if part.is_multipart():
            payload = part.get_payload()
            children = (
                [c for c in payload if isinstance(c, Message)] if isinstance(payload, list) else []
            )
            if ctype == "multipart/alternative":
                children = [_preferred_alternative(children)] if children else []
            for child in children:
                self.walk(child, depth + 1, top and ctype != "message/rfc822")
            if top and depth == 0 and self.parsed.body is None and self.html_body:
                self.parsed.body = self.html_body
            return
        self.count += 1
        self.leaf(part, ctype, top)
        if top and depth == 0 and self.parsed.body is None and self.html_body:
            self.parsed.body = self.html_body

    def leaf(self, part: Message, ctype: str, top: bool) -> None:
        attached = part.get_content_disposition() == "attachment"
        filename = _safe_filename(part.get_filename())
        parts = self.parsed.parts
        if ctype == "text/plain" and not attached and not filename:
            if top and self.parsed.body is None:
                self.parsed.body = _clean_text(_text_of(part))
            return
        if ctype == "text/html" and not attached:
            if top and self.html_body is None:
                self.html_body = _clean_text(_html_to_text(_text_of(part)))
            return
        if ctype == "text/plain" and sniff(_raw_payload(part)) is None:
            name = filename or self._name(DocumentKind.TEXT)
            text = _clean_text(_text_of(part))
            if text:
                doc = text_document(text, name)
                self.parsed.documents.append(doc)
                parts.append(PartInfo(ctype, filename, "document", doc.pages))
            else:
                parts.append(PartInfo(ctype, filename, "ignored"))
            self._check_pages(name)
            return
        data = part.get_payload(decode=True)
        if not isinstance(data, bytes) or not data:
            if ctype in FAX_TYPES:
                raise DocumentError(filename or ctype, "empty document")
            parts.append(PartInfo(ctype, filename, "ignored"))
            return
        kind = sniff(data)
        if kind is None:
            if ctype in FAX_TYPES:
                raise DocumentError(filename or ctype, f"labelled {ctype} but is not one")
            if ctype in IGNORED_TYPES or ctype.startswith(("text/", "multipart/")):
                parts.append(PartInfo(ctype, filename, "ignored"))
            else:
                self.parsed.unsupported.append(f"{filename} ({ctype})" if filename else ctype)
                parts.append(PartInfo(ctype, filename, "unsupported"))
            return
        name = filename or self._name(kind)
        if kind in _IMAGE_KINDS and not attached and self._is_decoration(data):
            self.parsed.skipped.append(name)
            parts.append(PartInfo(ctype, filename, "skipped"))
            return
        parts.append(PartInfo(ctype, filename, "rejected"))  # until it passes inspection
        doc = inspect_binary(data, name, self.options.limits)
        parts[-1] = PartInfo(ctype, filename, "document", doc.pages)
        self.parsed.documents.append(doc)
        self._check_pages(name)

    def _check_pages(self, name: str) -> None:
        if self.parsed.pages > self.options.limits.max_pages:
            raise TooManyPagesError(f"more than {self.options.limits.max_pages} pages (at {name})")

    def _is_decoration(self, data: bytes) -> bool:
        size = image_size(data)
        return size is not None and min(size) < self.options.min_inline_image_px

    def _name(self, kind: DocumentKind) -> str:
        return f"part-{self.count}.{_EXTENSIONS[kind]}"


def _preferred_alternative(children: list[Message]) -> Message:
    for child in children:
        if child.get_content_type() == "text/plain":
            return child
    return children[-1]


def _raw_payload(part: Message) -> bytes:
    payload = part.get_payload(decode=True)
    return payload if isinstance(payload, bytes) else b""


def _text_of(part: Message) -> str:
    """The part's text by its declared charset, with a fallback chain that never raises."""
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        return ""
    return decode_text(payload, part.get_content_charset())


_CONTROL = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\x7f]")


def _clean_text(text: str) -> str | None:
    """Text with normalized line ends and no control characters (tab and form feed stay);
    None if nothing printable is left."""
    text = _CONTROL.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))
    return text if text.strip() else None


_TAGS = re.compile(r"<(script|style)\b.*?</\1\s*>|<[^>]+>", re.IGNORECASE | re.DOTALL)
_BREAKS = re.compile(r"<\s*(br|/p|/div|/tr|/li|/h[1-6])\b[^>]*>", re.IGNORECASE)


def _html_to_text(markup: str) -> str:
    text = _BREAKS.sub("\n", markup)
    text = _TAGS.sub("", text)
    lines = (" ".join(line.split()) for line in html.unescape(text).split("\n"))
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def _safe_filename(name: str | None) -> str | None:
    """The client's file name, without any directory part, for logs and downloads."""
    if not name:
        return None
    base = re.split(r"[\\/]", str(name))[-1].strip()
    base = "".join(ch for ch in base if ch.isprintable())
    return base[:200] or None
