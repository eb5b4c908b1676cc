"""The attachments inside Outlook's Rich Text wrapper (TNEF, ``winmail.dat``), per MS-OXTNEF.

Only what a fax needs is read: each attachment's title (``attAttachTitle``) and bytes
(``attAttachData``); ``attAttachRendData`` starts a new attachment. The title is often an 8.3
name (``REPORT~1.PDF``): the long one is taken from ``PR_ATTACH_LONG_FILENAME`` in the
attachment's MAPI properties (``attAttachment``) when the properties before it are of kinds
read here; otherwise the title stays (a file name is cosmetic, never worth a refusal). The
message's own properties (its rich-text body, MAPI property lists) are skipped by their sizes.
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
_ATT_ATTACHMENT: Final = 0x9005
_PR_ATTACH_LONG_FILENAME: Final = 0x3707
_PT_STRING8: Final = 0x001E
_PT_UNICODE: Final = 0x001F
# MS-OXTNEF 2.1.3.4: single values of fixed size, 2-byte ones padded to 4.
_FIXED_SIZES: Final = {
    0x0002: 4, 0x0003: 4, 0x0004: 4, 0x0005: 8, 0x0006: 8, 0x0007: 8, 0x000A: 4,
    0x000B: 4, 0x0014: 8, 0x0040: 8, 0x0048: 16,
}  # fmt: skip
# Counted values: each a size, then the bytes padded to 4 (strings, binary, object).
_COUNTED: Final = frozenset({_PT_STRING8, _PT_UNICODE, 0x0102, 0x000D})
_NAMED_FROM: Final = 0x8000  # property ids from here carry a name (GUID, kind, id or string)
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
    long_title: str | None = None
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
        elif ident == _ATT_ATTACH_TITLE and attachments[-1].long_title is None:
            attachments[-1].title = _title(data[start:end])
        elif ident == _ATT_ATTACHMENT:
            long_title = _long_filename(data[start:end], limits.max_attributes)
            if long_title is not None:
                attachments[-1].title = attachments[-1].long_title = long_title
    return [TnefAttachment(a.title, a.data) for a in attachments]


def _title(raw: bytes) -> str | None:
    # A NUL-terminated string in the message's ANSI code page; cp1252 is Outlook's usual one
    # and decodes every byte, which is enough for a file name shown in a log.
    text = raw.split(b"\0", 1)[0][:_TITLE_BYTES].decode("cp1252", "replace").strip()
    return text or None


class _Truncated(Exception):
    pass


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.offset = 0

    def take(self, size: int) -> bytes:
        if size < 0 or self.offset + size > len(self.data):
            raise _Truncated
        chunk = self.data[self.offset : self.offset + size]
        self.offset += size
        return chunk

    def u16(self) -> int:
        value: int = struct.unpack("<H", self.take(2))[0]
        return value

    def u32(self) -> int:
        value: int = struct.unpack("<I", self.take(4))[0]
        return value

    def counted(self) -> bytes:
        """A size, then that many bytes, padded to a multiple of 4."""
        size = self.u32()
        value = self.take(size)
        self.take(-size % 4)
        return value


def _long_filename(props: bytes, max_properties: int) -> str | None:
    """PR_ATTACH_LONG_FILENAME from a MsgPropertyList, or None if absent or not reachable."""
    reader = _Reader(props)
    try:
        count = reader.u32()
        for _ in range(min(count, max_properties)):
            kind, prop_id = reader.u16(), reader.u16()
            if prop_id >= _NAMED_FROM:
                reader.take(16)  # the property set GUID
                if reader.u32() == 0:  # MNID_ID
                    reader.take(4)
                else:  # MNID_STRING
                    reader.counted()
            if kind in _FIXED_SIZES:
                reader.take(_FIXED_SIZES[kind])
                continue
            if kind not in _COUNTED:
                return None  # multi-valued or unknown: where the next property starts is unsure
            values = reader.u32()
            if values > max_properties:
                return None
            found = [reader.counted() for _ in range(values)]
            if prop_id == _PR_ATTACH_LONG_FILENAME and kind in (_PT_STRING8, _PT_UNICODE):
                return _decode_name(found[0], kind) if found else None
    except _Truncated:
        return None
    return None


def _decode_name(raw: bytes, kind: int) -> str | None:
    text = (
        raw.decode("utf-16-le", "replace")
        if kind == _PT_UNICODE
        else raw.decode("cp1252", "replace")
    )
    text = text.split("\0", 1)[0].strip()[:_TITLE_BYTES]
    return text or None
