"""Office documents: what format a part is by its content, and the converter that makes it a PDF.

``office_format`` sniffs the container, never the file name or the declared type: OOXML and
ODF are ZIP files told apart by their parts, the old binary formats are OLE2 compound files
told apart by their stream names, RTF by its first bytes. ``OfficeConverter`` is what the
message layer calls (in a thread: conversion blocks for seconds); the real one is
``gateway.documents.office_process.LibreOfficeConverter``.
"""

from __future__ import annotations

import io
import zipfile
from typing import Final, Protocol

OFFICE_FORMATS: Final = ("docx", "xlsx", "pptx", "odt", "ods", "odp", "rtf", "doc", "xls", "ppt")

_ZIP_MAGIC: Final = b"PK\x03\x04"
_OLE2_MAGIC: Final = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
# The main part of each OOXML document (ECMA-376 part 1, the conventional part names that
# every producer uses; [Content_Types].xml is what makes the ZIP an OPC package at all).
_OOXML_MAIN_PARTS: Final = (
    ("word/document.xml", "docx"),
    ("xl/workbook.xml", "xlsx"),
    ("ppt/presentation.xml", "pptx"),
)
_ODF_MIMETYPES: Final = {
    b"application/vnd.oasis.opendocument.text": "odt",
    b"application/vnd.oasis.opendocument.spreadsheet": "ods",
    b"application/vnd.oasis.opendocument.presentation": "odp",
}
# The stream that holds each binary format's content ([MS-DOC], [MS-XLS] "Workbook" or the
# BIFF5 "Book", [MS-PPT]); directory entries store names in UTF-16LE, NUL-terminated.
_OLE2_STREAMS: Final = (
    ("WordDocument", "doc"),
    ("Workbook", "xls"),
    ("Book", "xls"),
    ("PowerPoint Document", "ppt"),
)
# A hostile ZIP may fail in many ways inside zipfile; none of them makes it an office file.
_ZIP_FAILURES: Final = (
    zipfile.BadZipFile,
    zipfile.LargeZipFile,
    ValueError,
    OSError,
    EOFError,
    NotImplementedError,
    KeyError,
    IndexError,
    RuntimeError,
)
_MAX_MIMETYPE_BYTES: Final = 200


class OfficeConverter(Protocol):
    """Turns one office document into a PDF.

    Blocking (callers run it in a thread). Raises ``ConversionError`` (554 5.6.5) when the
    document cannot be converted and ``BusyError`` (451 4.3.2) when no conversion slot came
    free in time."""

    def to_pdf(self, data: bytes, fmt: str, filename: str) -> bytes: ...


def office_format(data: bytes) -> str | None:
    """The office format of ``data`` (one of ``OFFICE_FORMATS``) by its content, else None."""
    if data.startswith(b"{\\rtf"):
        return "rtf"
    if data.startswith(_ZIP_MAGIC):
        return _zip_format(data)
    if data.startswith(_OLE2_MAGIC):
        return _ole2_format(data)
    return None


def _zip_format(data: bytes) -> str | None:
    odf = _odf_format(data)
    if odf is not None:
        return odf
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            names = set(archive.namelist())
    except _ZIP_FAILURES:
        return None
    if "[Content_Types].xml" not in names:
        return None
    for part, fmt in _OOXML_MAIN_PARTS:
        if part in names:
            return fmt
    return None


def _odf_format(data: bytes) -> str | None:
    # ODF 1.2 part 3, 3.3: "mimetype" is the first entry of the ZIP, stored uncompressed, so
    # its local header names it at offset 30 and its content follows the extra field.
    if len(data) < 38 or data[26:28] != b"\x08\x00" or data[30:38] != b"mimetype":
        return None
    extra = int.from_bytes(data[28:30], "little")
    size = int.from_bytes(data[18:22], "little")
    if data[8:10] != b"\x00\x00" or size > _MAX_MIMETYPE_BYTES:
        return None
    start = 38 + extra
    return _ODF_MIMETYPES.get(data[start : start + size].strip())


def _ole2_format(data: bytes) -> str | None:
    for stream, fmt in _OLE2_STREAMS:
        if (stream + "\0").encode("utf-16-le") in data:
            return fmt
    return None
