"""Fax numbers: what a local part may hold, and its E.164 form."""

from __future__ import annotations

import pytest

from gateway.errors import InvalidNumberError
from gateway.numbers import normalize_api_number, normalize_number


@pytest.mark.parametrize(
    ("text", "region", "e164"),
    [
        ("+14155550100", "US", "+14155550100"),
        ("14155550100", "US", "+14155550100"),
        ("4155550100", "US", "+14155550100"),
        ("415-555-0100", "US", "+14155550100"),
        ("415.555.0100", "us", "+14155550100"),
        ("+1-415-555-0100", "DE", "+14155550100"),
        ("030123456", "DE", "+4930123456"),
        ("+4930123456", "US", "+4930123456"),
        ("02071838750", "GB", "+442071838750"),
        ("011442071838750", "US", "+442071838750"),  # US international prefix
        (" +14155550100 ", "US", "+14155550100"),
    ],
)
def test_valid_numbers(text: str, region: str, e164: str) -> None:
    assert normalize_number(text, region) == e164


@pytest.mark.parametrize(
    "text",
    [
        "",
        "+",
        "12",
        "fax2-4155551212",  # letters are refused, not stripped (Kazoo made 24155551212)
        "4155550100x",
        "x4155550100",
        "415 555 0100",  # spaces are not in an address's local part
        "(415)5550100",
        "415--555-0100",
        "-4155550100",
        "4155550100-",
        "415/555/0100",
        "++14155550100",
        "1+4155550100",
        "+1415555010O",  # letter O, not zero
        "\uff14\uff11\uff15\uff15\uff15\uff15\uff10\uff11\uff10\uff10",  # full-width digits
        "999999999999999999999",
        "+10000000000",
    ],
)
def test_invalid_numbers(text: str) -> None:
    with pytest.raises(InvalidNumberError):
        normalize_number(text, "US")


def test_error_names_the_text() -> None:
    with pytest.raises(InvalidNumberError, match="fax2-4155551212"):
        normalize_number("fax2-4155551212", "US")


@pytest.mark.parametrize(
    ("text", "e164"),
    [
        ("(415) 555-0100", "+14155550100"),
        ("+1 (415) 555 0100", "+14155550100"),
        ("415 555 0100", "+14155550100"),
    ],
)
def test_api_numbers_allow_spaces_and_brackets(text: str, e164: str) -> None:
    assert normalize_api_number(text, "US") == e164


def test_api_numbers_still_refuse_letters() -> None:
    with pytest.raises(InvalidNumberError):
        normalize_api_number("1-800-FLOWERS", "US")
