"""Simulated far ends of the loopback line, as configured per number or number pattern.

Config syntax (``[transport.loopback.remotes]``), first matching key in file order wins::

    "+15550100"  = "busy"
    "+1555*"     = "hangup_after:2"
    "*"          = "answer"          # the default when nothing matches

Behaviours: ``answer``, ``busy``, ``no_answer``, ``hangup_after:N`` (N >= 1), ``noisy`` or
``noisy:SNR`` (9-30 dB, default 9: fails; about 17-21: mostly succeeds at a lower speed),
``refuse``, ``invalid_number`` (the network rejects the number: Q.850 cause 1). Measured
outcomes per SNR are in docs/transports.md.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from gateway.errors import ConfigError

DEFAULT_NOISY_SNR_DB = 9.0
MIN_SNR_DB = 9.0
MAX_SNR_DB = 30.0


class RemoteKind(StrEnum):
    ANSWER = "answer"
    BUSY = "busy"
    NO_ANSWER = "no_answer"
    HANGUP_AFTER = "hangup_after"
    NOISY = "noisy"
    REFUSE = "refuse"
    INVALID_NUMBER = "invalid_number"


@dataclass(frozen=True)
class Remote:
    kind: RemoteKind = RemoteKind.ANSWER
    hangup_after: int = 0  # pages the remote confirms before it hangs up (HANGUP_AFTER only)
    snr_db: float = DEFAULT_NOISY_SNR_DB  # NOISY only


ANSWER = Remote()


def parse_remote(text: str) -> Remote:
    """Parse one behaviour string; ``ConfigError`` names what is wrong with it."""
    name, sep, arg = text.strip().partition(":")
    try:
        kind = RemoteKind(name.strip().lower())
    except ValueError:
        choices = ", ".join(k.value for k in RemoteKind)
        raise ConfigError(
            f"unknown loopback remote behaviour {text!r} (one of {choices})"
        ) from None
    if kind is RemoteKind.HANGUP_AFTER:
        if not arg.strip().isdigit() or int(arg) < 1:
            raise ConfigError(
                f"{text!r}: hangup_after needs a page count >= 1, e.g. hangup_after:2"
            )
        return Remote(kind, hangup_after=int(arg))
    if kind is RemoteKind.NOISY and sep:
        try:
            snr = float(arg)
        except ValueError:
            raise ConfigError(f"{text!r}: noisy takes an SNR in dB, e.g. noisy:15") from None
        # Outside 9-30 dB the simple line model stops modelling noise: below, the noise itself
        # reads as carrier and T.30 stalls until the backstop; above, the 26 dB loss alone
        # makes 0.0.6's modems fail training at some levels. Refuse what we cannot vouch for.
        if not MIN_SNR_DB <= snr <= MAX_SNR_DB:
            raise ConfigError(f"{text!r}: SNR must be between {MIN_SNR_DB:g} and {MAX_SNR_DB:g} dB")
        return Remote(kind, snr_db=snr)
    if sep:
        raise ConfigError(f"{text!r}: {kind.value} takes no argument")
    return Remote(kind)


class RemoteDirectory:
    """Number -> simulated remote, by exact number or ``fnmatch`` glob, first match wins."""

    def __init__(self, remotes: Mapping[str, str]) -> None:
        # Parse everything up front so that a typo fails at start-up, not at the first call.
        self._rules = [(pattern, parse_remote(text)) for pattern, text in remotes.items()]

    def lookup(self, number: str) -> Remote:
        for pattern, remote in self._rules:
            # fnmatchcase: numbers have no case, and plain fnmatch would follow the OS rules.
            if pattern == number or fnmatch.fnmatchcase(number, pattern):
                return remote
        return ANSWER
