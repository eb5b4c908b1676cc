"""What makes an SMTP message a resend of an earlier one, besides its Message-ID.

An MTA that lost our 250 resends the message, and its Message-ID check must answer it with the
fax already made; but different messages do share Message-IDs in the wild (broken clients,
templates, forwarders), and one of them must never be answered with another's fax.
"""

from __future__ import annotations

import hashlib

from gateway.message import ParsedMessage


def message_digest(sender: str, parsed: ParsedMessage) -> str:
    """sha256 of what a resend of a message repeats: its envelope sender, lower-cased (another
    hop may spell it in other case), and its content as parsed (a relay that re-encodes or
    re-wraps the MIME still yields the same documents)."""
    digest = hashlib.sha256()
    fields: list[bytes] = [
        sender.lower().encode("utf-8", "surrogateescape"),
        (parsed.subject or "").encode("utf-8", "surrogateescape"),
        (parsed.body or "").encode("utf-8", "surrogateescape"),
    ]
    for doc in parsed.documents:
        fields += [doc.kind.value.encode(), doc.filename.encode("utf-8", "surrogateescape")]
        fields.append(doc.data)
    for value in fields:  # length-prefixed: no two different field lists hash alike
        digest.update(len(value).to_bytes(8, "big"))
        digest.update(value)
    return digest.hexdigest()
