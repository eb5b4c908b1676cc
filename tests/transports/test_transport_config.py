from __future__ import annotations

import pytest

from gateway.errors import ConfigError
from gateway.transports.base import FailureClass, OutboundCall
from gateway.transports.classify import (
    CAUSE_NO_ANSWER,
    CAUSE_UNALLOCATED,
    CAUSE_USER_BUSY,
    classify,
)
from gateway.transports.posix_tz import posix_tz
from gateway.transports.remotes import (
    DEFAULT_NOISY_SNR_DB,
    Remote,
    RemoteDirectory,
    RemoteKind,
    parse_remote,
)
from gateway.transports.session import header_text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("answer", Remote()),
        (" Busy ", Remote(RemoteKind.BUSY)),
        ("no_answer", Remote(RemoteKind.NO_ANSWER)),
        ("hangup_after:2", Remote(RemoteKind.HANGUP_AFTER, hangup_after=2)),
        ("noisy", Remote(RemoteKind.NOISY, snr_db=DEFAULT_NOISY_SNR_DB)),
        ("noisy:15.5", Remote(RemoteKind.NOISY, snr_db=15.5)),
        ("refuse", Remote(RemoteKind.REFUSE)),
        ("invalid_number", Remote(RemoteKind.INVALID_NUMBER)),
    ],
)
def test_parse_behaviours(text: str, expected: Remote) -> None:
    assert parse_remote(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "ring",
        "hangup_after",
        "hangup_after:0",
        "hangup_after:x",
        "noisy:loud",
        "noisy:-3",
        "noisy:31",
        "noisy:6",
        "busy:1",
    ],
)
def test_bad_behaviours_are_config_errors(text: str) -> None:
    with pytest.raises(ConfigError):
        parse_remote(text)


def test_directory_rejects_bad_config_up_front() -> None:
    with pytest.raises(ConfigError, match="ring"):
        RemoteDirectory({"+1555*": "ring"})


def test_first_matching_pattern_wins_and_default_is_answer() -> None:
    directory = RemoteDirectory(
        {"+15550100": "busy", "+1555*": "no_answer", "+1555????": "refuse", "+44*": "noisy"}
    )
    assert directory.lookup("+15550100").kind is RemoteKind.BUSY
    assert directory.lookup("+15550101").kind is RemoteKind.NO_ANSWER  # glob before "????"
    assert directory.lookup("+447700900123").kind is RemoteKind.NOISY
    assert directory.lookup("+33123456789").kind is RemoteKind.ANSWER


def test_exact_key_with_glob_characters_matches_literally() -> None:
    assert RemoteDirectory({"[1]": "busy"}).lookup("[1]").kind is RemoteKind.BUSY


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        (0, None),
        (CAUSE_USER_BUSY, FailureClass.BUSY),
        (CAUSE_NO_ANSWER, FailureClass.NO_ANSWER),
        (CAUSE_UNALLOCATED, FailureClass.PERMANENT),  # the number does not exist
        (3, FailureClass.NO_ANSWER),  # T1 expired: nobody spoke T.30
        (9, FailureClass.PERMANENT),  # far end not able to receive
        (11, FailureClass.PERMANENT),  # resolution not supported
        (43, FailureClass.PERMANENT),  # our TIFF is bad
        (56, FailureClass.PERMANENT),  # password not accepted
        (6, FailureClass.LINE),  # cannot train
        (20, FailureClass.LINE),  # no response to DCS
        (49, FailureClass.LINE),  # call dropped
    ],
)
def test_completion_code_classes(code: int, expected: FailureClass | None) -> None:
    assert classify(code) is expected


@pytest.mark.parametrize(
    ("zone", "rule"),
    [
        ("Europe/Paris", "CET-1CEST,M3.5.0,M10.5.0/3"),
        ("Asia/Kolkata", "IST-5:30"),
        ("UTC", "UTC0"),
        ("No/Such_Zone", "UTC0"),
        ("../../etc/passwd", "UTC0"),
    ],
)
def test_iana_zone_to_posix_rule(zone: str, rule: str) -> None:
    assert posix_tz(zone) == rule


@pytest.mark.parametrize(
    ("header", "pages", "expected"),
    [
        ("ACME Corp", 3, "ACME Corp, 3 pages"),
        ("ACME Corp", 1, "ACME Corp, 1 page"),
        (None, 2, "2 pages"),
    ],
)
def test_the_header_line_carries_the_total_page_count(
    header: str | None, pages: int, expected: str
) -> None:
    """spandsp stamps "p.N"; the total in the text makes it "page N of M" on paper."""
    call = OutboundCall(
        fax_id="f",
        to_number="+14155550123",
        from_number=None,
        tsi="+1 415 555 0100",
        header=header,
        timezone="UTC",
        tiff=b"",
        pages=pages,
    )
    assert header_text(call) == expected
