"""From an RFC 5322 message to the ordered list of documents to fax (pure: bytes in, records out).

Parts are taken in message order; nested multiparts and attached messages are walked; a
part's real type is found from its bytes, not its label or file name. Every faxable leaf is a
page except an image the message's own HTML shows (by ``cid:`` or Content-Location): whether a
picture is decoration is the HTML's word, not its size or its Content-Disposition, which Apple
Mail sets to ``inline`` on attached pictures. Signatures are never faxed.
"""

from __future__ import annotations

import email
import email.errors
import email.policy
import functools
import html
import re
import urllib.parse
from dataclasses import dataclass, field
from email.headerregistry import BaseHeader, HeaderRegistry
from email.message import EmailMessage, Message

from gateway.documents.charsets import decode_text
from gateway.documents.inspect import (
    InspectLimits,
    inspect_binary,
    sniff,
    text_document,
)
from gateway.documents.office import OfficeConverter, office_format
from gateway.documents.tnef import TnefLimits, is_tnef, read_attachments
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
# Never faxed, whatever their bytes look like: a signature is proof, not content.
SIGNATURE_TYPES = frozenset(
    {
        "application/pkcs7-signature",
        "application/x-pkcs7-signature",
        "application/pgp-signature",
    }
)
# Parts that travel with ordinary mail and are never meant to be faxed: not "unsupported".
IGNORED_TYPES = frozenset(
    {
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
# Outlook's "Rich Text" wrapper (MS-OXTNEF): gateway.documents.tnef unpacks its attachments.
TNEF_TYPES = frozenset({"application/ms-tnef", "application/vnd.ms-tnef"})
_NO_RTF = "send it again with Outlook's Rich Text format turned off (HTML or plain text)"
REFERENCED = "referenced by the HTML"


@dataclass(frozen=True)
class IntakeOptions:
    include_body: bool = False
    limits: InspectLimits = field(default_factory=InspectLimits)
    fonts: tuple[str, ...] = ()  # [render] fonts, tried after the bundled one for text
    office: OfficeConverter | None = None  # None: office documents are refused by name


@dataclass(frozen=True)
class PartInfo:
    """One leaf part as the sender labelled it, and what intake made of it (for the smtplog)."""

    content_type: str
    filename: str | None  # the client's file name, never a path of ours
    # document (a page or more), body (the message text, faxed), skipped (part of the HTML),
    # ignored (never meant to be faxed: a signature, a calendar), unsupported (a type we cannot
    # fax), rejected (refused: the message is refused with it)
    outcome: str
    pages: int | None = None
    reason: str | None = None  # why skipped or ignored, in a few words

    def view(self) -> dict[str, str]:
        data = {"content_type": self.content_type, "outcome": self.outcome}
        if self.filename:
            data["filename"] = self.filename
        if self.pages is not None:
            data["pages"] = str(self.pages)
        if self.reason:
            data["reason"] = self.reason
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
        walker = _Walker(parsed, options, _html_references(message))
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
        body_doc = text_document(parsed.body, "body.txt", options.fonts)
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
    def __init__(self, parsed: ParsedMessage, options: IntakeOptions, shown: _References) -> None:
        self.parsed = parsed
        self.options = options
        self.shown = shown
        self.count = 0
        self.html_body: str | None = None

    def walk(self, part: Message, depth: int, top: bool) -> None:
        if depth > MAX_NESTING:
            raise DocumentError("message", f"MIME nesting deeper than {MAX_NESTING}")
        ctype = part.get_content_type()
        if part.is_multipart():
            children = _children(part)
            # The body comes from the preferred alternative alone, but every alternative is
            # walked for documents: Apple Mail's rich mail puts the attachments in the HTML one.
            preferred = _preferred_alternative(children) if children else None
            signatures: list[Message] = []
            if ctype == "multipart/signed":
                # RFC 1847: the first part is the content, the rest its signature, whatever
                # the signature part is labelled.
                children, signatures = children[:1], children[1:]
            for child in children:
                body = ctype != "message/rfc822" and (
                    ctype != "multipart/alternative" or child is preferred
                )
                self.walk(child, depth + 1, top and body)
            for signature in signatures:
                self.count += 1
                self.ignore(signature, "signature")
        else:
            self.count += 1
            self.leaf(part, ctype, top)
        if top and depth == 0 and self.parsed.body is None and self.html_body:
            self.parsed.body = self.html_body

    def ignore(self, part: Message, reason: str) -> None:
        filename = _safe_filename(part.get_filename())
        self.parsed.parts.append(
            PartInfo(part.get_content_type(), filename, "ignored", None, reason)
        )

    def leaf(self, part: Message, ctype: str, top: bool) -> None:
        attached = part.get_content_disposition() == "attachment"
        filename = _safe_filename(part.get_filename())
        parts = self.parsed.parts
        if ctype in SIGNATURE_TYPES:
            self.ignore(part, "signature")
            return
        if ctype == "text/plain" and not attached and not filename:
            if top:
                self._add_body(_clean_text(_text_of(part)))
            return
        if ctype == "text/html" and not attached:
            if top and self.html_body is None:
                self.html_body = _clean_text(_html_to_text(_text_of(part)))
            return
        if ctype == "text/plain" and sniff(_raw_payload(part)) is None:
            name = filename or self._name(DocumentKind.TEXT)
            text = _clean_text(_text_of(part))
            if text:
                doc = text_document(text, name, self.options.fonts)
                self.parsed.documents.append(doc)
                parts.append(PartInfo(ctype, filename, "document", doc.pages))
            else:
                parts.append(PartInfo(ctype, filename, "ignored", None, "no text"))
            self._check_pages(name)
            return
        data = part.get_payload(decode=True)
        if not isinstance(data, bytes) or not data:
            if ctype in FAX_TYPES:
                raise DocumentError(filename or ctype, "empty document")
            parts.append(PartInfo(ctype, filename, "ignored", None, "empty"))
            return
        if ctype in TNEF_TYPES or is_tnef(data) or _is_winmail(filename):
            self._tnef(data, ctype, filename)
            return
        self._binary(data, ctype, filename, self.shown.includes(part))

    def _binary(self, data: bytes, ctype: str, filename: str | None, shown: bool) -> None:
        parts = self.parsed.parts
        kind = sniff(data)
        if kind is None:
            fmt = office_format(data)
            if fmt is not None:
                self._office(data, fmt, ctype, filename)
            else:
                self._not_a_fax_type(ctype, filename)
            return
        name = filename or self._name(kind)
        if kind in _IMAGE_KINDS and shown:
            self.parsed.skipped.append(name)
            parts.append(PartInfo(ctype, filename, "skipped", None, REFERENCED))
            return
        parts.append(PartInfo(ctype, filename, "rejected"))  # until it passes inspection
        doc = inspect_binary(data, name, self.options.limits)
        parts[-1] = PartInfo(ctype, filename, "document", doc.pages)
        self.parsed.documents.append(doc)
        self._check_pages(name)

    def _tnef(self, data: bytes, ctype: str, filename: str | None) -> None:
        """Outlook's Rich Text wrapper: its attachments are parts like any other (a TNEF
        inside one is not unpacked again)."""
        name = filename or "winmail.dat"
        self.parsed.parts.append(PartInfo(ctype, filename, "rejected"))
        if not is_tnef(data):
            raise UnsupportedDocumentError(f"{name}: labelled TNEF but is not one; {_NO_RTF}")
        try:
            attachments = read_attachments(data, name, TnefLimits())
        except DocumentError as exc:
            raise DocumentError(name, f"{exc.reason}; {_NO_RTF}") from exc
        self.parsed.parts[-1] = PartInfo(
            ctype, filename, "ignored", None, f"Outlook Rich Text, {len(attachments)} attached"
        )
        for attachment in attachments:
            self.count += 1
            title = _safe_filename(attachment.title)
            if not attachment.data:  # an embedded message or OLE object: no file to fax
                self._not_a_fax_type("application/ms-tnef-attachment", title)
            elif is_tnef(attachment.data):
                self._not_a_fax_type("application/ms-tnef", title)
            else:
                self._binary(attachment.data, "application/octet-stream", title, shown=False)

    def _office(self, data: bytes, fmt: str, ctype: str, filename: str | None) -> None:
        parts = self.parsed.parts
        name = filename or f"part-{self.count}.{fmt}"
        parts.append(PartInfo(ctype, filename, "rejected"))  # until it is converted
        if self.options.office is None:
            raise UnsupportedDocumentError(
                f"{name}: office documents need LibreOffice on this gateway"
            )
        pdf = self.options.office.to_pdf(data, fmt, name)
        # The PDF is what is stored and faxed; the sender's name stays, for the smtplog.
        doc = inspect_binary(pdf, name, self.options.limits)
        parts[-1] = PartInfo(ctype, filename, "document", doc.pages)
        self.parsed.documents.append(doc)
        self._check_pages(name)

    def _not_a_fax_type(self, ctype: str, filename: str | None) -> None:
        parts = self.parsed.parts
        if ctype in FAX_TYPES:
            raise DocumentError(filename or ctype, f"labelled {ctype} but is not one")
        if ctype in IGNORED_TYPES or ctype.startswith(("text/", "multipart/")):
            parts.append(PartInfo(ctype, filename, "ignored", None, "not a document"))
        else:
            self.parsed.unsupported.append(f"{filename} ({ctype})" if filename else ctype)
            parts.append(PartInfo(ctype, filename, "unsupported"))

    def _add_body(self, text: str | None) -> None:
        # Apple Mail splits the text around inline pictures into several text/plain parts.
        if text is None:
            return
        if self.parsed.body is None:
            self.parsed.body = text
        else:
            self.parsed.body = self.parsed.body.rstrip("\n") + "\n\n" + text

    def _check_pages(self, name: str) -> None:
        if self.parsed.pages > self.options.limits.max_pages:
            raise TooManyPagesError(f"more than {self.options.limits.max_pages} pages (at {name})")

    def _name(self, kind: DocumentKind) -> str:
        return f"part-{self.count}.{_EXTENSIONS[kind]}"


def _children(part: Message) -> list[Message]:
    payload = part.get_payload()
    return [c for c in payload if isinstance(c, Message)] if isinstance(payload, list) else []


def _is_winmail(filename: str | None) -> bool:
    return filename is not None and filename.lower() == "winmail.dat"


# What an HTML part shows: cid: URLs anywhere (img src, background, CSS url()), and the
# src/background attribute values, which RFC 2557 resolves against a part's Content-Location.
# Links (href) do not count: a linked attachment is still something the sender attached.
_CID_URL = re.compile(r"""cid:\s*(<[^\s"'<>]+>|[^\s"'()<>]+)""", re.IGNORECASE)
_EMBED_ATTR = re.compile(
    r"""\b(?:src|background)\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s>]+))""", re.IGNORECASE
)
_LINK_ATTR = re.compile(r"""\bhref\s*=\s*(?:"[^"]*"|'[^']*'|[^\s>]+)""", re.IGNORECASE)


def _content_id(value: str) -> str:
    return urllib.parse.unquote(value).strip().strip("<>").strip().lower()


@dataclass
class _References:
    content_ids: set[str] = field(default_factory=set)
    locations: set[str] = field(default_factory=set)

    def add_html(self, markup: str) -> None:
        for match in _CID_URL.finditer(_LINK_ATTR.sub("", markup)):
            self.content_ids.add(_content_id(match.group(1)))
        for match in _EMBED_ATTR.finditer(markup):
            value = next(g for g in match.groups() if g is not None).strip()
            if value and not value.lower().startswith("cid:"):
                self.locations.add(html.unescape(value))

    def includes(self, part: Message) -> bool:
        content_id = part.get("Content-ID")
        if content_id is not None and _content_id(str(content_id)) in self.content_ids:
            return True
        location = part.get("Content-Location")
        return location is not None and " ".join(str(location).split()) in self.locations


def _html_references(message: Message) -> _References:
    """What every HTML part of the message shows, including alternatives not faxed: the
    picture in an HTML signature is part of that HTML even when the text/plain is faxed."""
    references = _References()
    for part in message.walk():
        if part.get_content_type() == "text/html" and not part.is_multipart():
            references.add_html(_text_of(part))
    return references


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
