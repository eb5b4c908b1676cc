"""Text part bytes → str with a fallback chain that never raises.

Mail clients label text with the name of a charset whose superset they really wrote (Outlook's
"gb2312" holds GBK characters, "ks_c_5601-1987" is Windows code page 949, "iso-8859-1" often
carries Windows-1252 quotes), so a declared name is first mapped to the superset; a charset that
is unknown or does not decode is followed by UTF-8, then Windows-1252, then Latin-1, which maps
every byte and so cannot fail.
"""

from __future__ import annotations

import codecs
import re
from email.message import Message

# Declared name (lower case) → the codec that decodes what clients really send under it.
_SUPERSETS = {
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "x-gbk": "gb18030",
    "cp936": "gb18030",
    "euc-cn": "gb18030",
    "csgb2312": "gb18030",
    "ks_c_5601-1987": "cp949",
    "ks_c_5601": "cp949",
    "ksc5601": "cp949",
    "euc-kr": "cp949",
    "shift_jis": "cp932",
    "shift-jis": "cp932",
    "sjis": "cp932",
    "x-sjis": "cp932",
    "windows-31j": "cp932",
    "iso-2022-jp": "iso2022_jp_2",
    "big5": "big5hkscs",
    "iso-8859-1": "cp1252",
    "latin1": "cp1252",
    "us-ascii": "utf-8",
    "ascii": "utf-8",
    "iso-8859-8-i": "iso-8859-8",
    "iso-8859-8-e": "iso-8859-8",
    "iso-8859-6-i": "iso-8859-6",
    "iso-8859-6-e": "iso-8859-6",
    "iso-8859-9": "cp1254",
    "tis-620": "cp874",
    "unicode-1-1-utf-7": "utf-7",
}
_FALLBACKS = ("utf-8", "cp1252")


def codec_for(declared: str | None) -> str | None:
    """The text codec to try first for a declared charset, or None if there is none usable."""
    if not declared:
        return None
    name = declared.strip().strip('"').lower()
    name = _SUPERSETS.get(name, name)
    try:
        info = codecs.lookup(name)
    except LookupError:
        return None
    # A charset parameter could name a bytes-to-bytes codec (base64, zlib): not text.
    if not getattr(info, "_is_text_encoding", True):
        return None
    return info.name


def charset_of(content_type: str) -> str | None:
    """The charset parameter of a Content-Type value (an upload's, a download's), if any."""
    message = Message()
    message["content-type"] = content_type
    return message.get_content_charset()


def decode_text(data: bytes, declared: str | None) -> str:
    """Decode ``data``: declared charset (as its superset) → UTF-8 → Windows-1252 → Latin-1."""
    first = codec_for(declared)
    for codec in (first, *_FALLBACKS) if first else _FALLBACKS:
        try:
            text = data.decode(codec)
        except (UnicodeError, LookupError, ValueError):  # some codecs raise a bare UnicodeError
            continue
        if codec == "iso8859-8" and _is_visual_hebrew(text, declared or ""):
            return _logical_hebrew(text)
        return text
    return data.decode("latin-1")


# RFC 1556: plain "iso-8859-8" is Hebrew in visual order (the line as displayed, left to
# right); "-i" is logical. Most clients that send it now mean logical, so the text decides:
# final letter forms end words in logical order and start them in visual order.
_FINALS = "\u05da\u05dd\u05df\u05e3\u05e5"  # final kaf, mem, nun, pe, tsadi
_HEBREW_WORD = re.compile(r"[\u05d0-\u05ea]{2,}")
_NOT_RTL = re.compile(r"[^\u05d0-\u05ea\s.,;:!?'\"()\-]+")
_MIRRORED = str.maketrans("()[]{}<>", ")(][}{><")


def _is_visual_hebrew(text: str, declared: str) -> bool:
    if declared.strip().strip('"').lower() != "iso-8859-8":
        return False
    words = _HEBREW_WORD.findall(text)
    at_start = sum(word[0] in _FINALS for word in words)
    at_end = sum(word[-1] in _FINALS for word in words)
    return at_start > at_end


def _logical_hebrew(text: str) -> str:
    """Visual lines back to logical order: reversed, with runs of digits and Latin (which
    were displayed left to right) turned back and mirrored brackets swapped."""

    def line(visual: str) -> str:
        reversed_line = visual[::-1].translate(_MIRRORED)
        return _NOT_RTL.sub(lambda run: run.group()[::-1], reversed_line)

    return "\n".join(line(row) for row in text.split("\n"))
