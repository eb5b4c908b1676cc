"""The attachments inside Outlook's Rich Text wrapper (TNEF, ``winmail.dat``), per MS-OXTNEF.

Only what a fax needs is read: each attachment's title (``attAttachTitle``) and bytes
(``attAttachData``); ``attAttachRendData`` starts a new attachment. The message's own
properties (its rich-text body, MAPI property lists) are skipped by their declared sizes.
Every length is checked against what is left of the input, and the attributes and attachments
are counted, so hostile input costs at most one pass over its own bytes. Attribute checksums
are not verified: a sender's Outlook is trusted to frame its own data, and a bad sum over an
attachment that decodes is no reason to refuse it (the attachment is checked like any other).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Final

from gateway.errors import DocumentError

SIGNATURE: Final = b"\x78\x9f\x3e\x22"  # 0x223E9F78, little-endian
_LEVEL_MESSAGE: Final = 0x01
_LEVEL_ATTACHMENT: Final = 0x02
# Attribute identifiers (the low 16 bits of AttrID; the high 16 bits are the type).
_ATT_ATTACH_DATA: Final = 0x800F
_ATT_ATTACH_TITLE: Final = 0x8010
_ATT_ATTACH_REND_DATA: Final = 0x9002
# header: level (1), id (4), size (4); trailer: checksum (2)
_HEADER: Final = struct.Struct("<BII")
_CHECKSUM_BYTES: Final = 2
_TITLE_BYTES: Final = 255


@dataclass(frozen=True)
class TnefLimits:
    max_attachments: int = 100
    max_attributes: int = 10_000


@dataclass(frozen=True)
class TnefAttachment:
    title: str | None  # the sender's file name as Outlook recorded it (8.3 or long)
    data: bytes | None  # None: an attachment without bytes (an embedded message, an OLE object)


@dataclass
class _Draft:
    title: str | None = None
    data: bytes | None = None


def is_tnef(data: bytes) -> bool:
    return data.startswith(SIGNATURE)


def read_attachments(data: bytes, name: str, limits: TnefLimits) -> list[TnefAttachment]:
    """The attachments in order; raise DocumentError naming ``name`` if the stream is broken."""
    if not is_tnef(data):
        raise DocumentError(name, "not a TNEF stream (no signature)")
    offset = len(SIGNATURE) + 2  # the legacy key, unused
    if len(data) < offset:
        raise DocumentError(name, "TNEF stream ends in its header")
    attachments: list[_Draft] = []
    attributes = 0
    while offset < len(data):
        attributes += 1
        if attributes > limits.max_attributes:
            raise DocumentError(
                name, f"TNEF stream has more than {limits.max_attributes} attributes"
            )
        if len(data) - offset < _HEADER.size:
            raise DocumentError(name, "TNEF stream ends inside an attribute header")
        level, attr_id, size = _HEADER.unpack_from(data, offset)
        start = offset + _HEADER.size
        end = start + size
        if level not in (_LEVEL_MESSAGE, _LEVEL_ATTACHMENT):
            raise DocumentError(name, f"TNEF attribute of unknown level {level}")
        if end + _CHECKSUM_BYTES > len(data):
            raise DocumentError(name, "TNEF attribute runs past the end of the stream")
        offset = end + _CHECKSUM_BYTES
        if level != _LEVEL_ATTACHMENT:
            continue
        ident = attr_id & 0xFFFF
        if ident == _ATT_ATTACH_REND_DATA:
            if len(attachments) >= limits.max_attachments:
                raise DocumentError(
                    name, f"TNEF stream has more than {limits.max_attachments} attachments"
                )
            attachments.append(_Draft())
        elif not attachments:
            continue  # attachment attributes before any attachment: nothing to attach them to
        elif ident == _ATT_ATTACH_DATA:
            attachments[-1].data = data[start:end]
        elif ident == _ATT_ATTACH_TITLE:
            attachments[-1].title = _title(data[start:end])
    return [TnefAttachment(a.title, a.data) for a in attachments]


def _title(raw: bytes) -> str | None:
    # A NUL-terminated string in the message's ANSI code page; cp1252 is Outlook's usual one
    # and decodes every byte, which is enough for a file name shown in a log.
    text = raw.split(b"\0", 1)[0][:_TITLE_BYTES].decode("cp1252", "replace").strip()
    return text or None
