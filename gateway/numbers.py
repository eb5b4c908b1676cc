"""Fax numbers: what an SMTP local part or an API field may hold, normalized to E.164."""

from __future__ import annotations

import functools
import re

import phonenumbers

from gateway.errors import InvalidNumberError

# Digits with an optional leading "+" and single "-" or "." separators between digit groups.
# Letters are refused rather than stripped: "fax2-4155551212" must not become 24155551212.
_LOCAL_PART = re.compile(r"\+?[0-9]+(?:[-.][0-9]+)*")


@functools.lru_cache(maxsize=4096)
def normalize_number(text: str, region: str) -> str:
    """Return ``text`` as an E.164 number or raise InvalidNumberError saying why.

    Pure, and asked again and again for the same few numbers: the results are cached."""
    candidate = text.strip()
    if not _LOCAL_PART.fullmatch(candidate):
        raise InvalidNumberError(f"{text!r} is not a phone number (digits, '+', '-' and '.' only)")
    digits = candidate.replace("-", "").replace(".", "")
    try:
        parsed = phonenumbers.parse(digits, region.upper())
    except phonenumbers.NumberParseException as exc:
        raise InvalidNumberError(f"{text!r} is not a phone number: {exc}") from exc
    if not phonenumbers.is_valid_number(parsed):
        raise InvalidNumberError(f"{text!r} is not a valid number in region {region.upper()}")
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def normalize_api_number(text: str, region: str) -> str:
    """Like normalize_number but lenient with the punctuation people type in forms."""
    cleaned = re.sub(r"[\s()]", "", text)
    return normalize_number(cleaned, region)
