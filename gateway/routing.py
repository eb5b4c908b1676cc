"""Who may send to which faxbox: sender rules and recipient-domain resolution (pure)."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Protocol

import re2

from gateway.errors import InvalidFieldError
from gateway.models import Faxbox

log = logging.getLogger(__name__)

# Sender rules are written by tenants and run on the event loop at every RCPT, so they go
# through RE2: matching takes time linear in the address whatever the pattern, and a pattern
# RE2 cannot run that way (backreferences, lookaround) is refused when it is written. The
# memory cap bounds what one compiled rule may hold (a{1000}{1000} and the like).
_RULE_MEMORY = 1 << 20


class _Pattern(Protocol):
    def fullmatch(self, text: str) -> object | None: ...


def _options() -> re2.Options:
    options = re2.Options()
    options.case_sensitive = False
    options.max_mem = _RULE_MEMORY
    options.log_errors = False
    return options


@lru_cache(maxsize=4096)
def _compiled(pattern: str) -> _Pattern:
    compiled: _Pattern = re2.compile(pattern, _options())
    return compiled


def _why_refused(pattern: str) -> str | None:
    try:
        _compiled(pattern)
    except re2.error as exc:
        reason = exc.args[0].decode() if exc.args and isinstance(exc.args[0], bytes) else exc
        return (
            f"{reason}; sender rules use RE2 syntax, which runs in linear time"
            " (no backreferences or lookaround)"
        )
    return None


def split_address(address: str) -> tuple[str, str]:
    """Split at the last "@" (a quoted local part may hold one); the domain is lower-cased."""
    local, sep, domain = address.rpartition("@")
    if not sep or not local or not domain:
        raise ValueError(f"{address!r} is not an address")
    return local, domain.lower().rstrip(".")


def validate_rule(rule: str) -> str:
    """Check one permission entry and return it normalized; raise InvalidFieldError if bad.

    Entries are an exact address, ``*@domain`` or ``@domain``, or ``re:<regex>`` which must
    match the whole (lower-cased) sender address.
    """
    rule = rule.strip()
    if rule.startswith("re:"):
        why = _why_refused(rule[3:])
        if why is not None:
            raise InvalidFieldError("smtp_permission_list", "pattern", f"bad regex {rule!r}: {why}")
        return rule
    if rule.startswith("*@"):
        rule = rule[1:]
    if rule.startswith("@"):
        if len(rule) < 2 or "@" in rule[1:]:
            raise InvalidFieldError("smtp_permission_list", "pattern", f"bad domain rule {rule!r}")
        return rule.lower()
    if rule.count("@") < 1 or rule.startswith("@") or rule.endswith("@"):
        raise InvalidFieldError("smtp_permission_list", "pattern", f"bad address rule {rule!r}")
    return rule.lower()


def rule_admits(rule: str, sender: str) -> bool:
    sender = sender.lower()
    if rule.startswith("re:"):
        try:
            return _compiled(rule[3:]).fullmatch(sender) is not None
        except re2.error:
            # Stored before rules were checked for RE2: it admits nobody rather than run
            # an unbounded engine on the event loop.
            log.warning("sender rule %r cannot run in linear time; it admits nobody", rule)
            return False
    if rule.startswith("*@"):
        rule = rule[1:]
    if rule.startswith("@"):
        return sender.endswith(rule.lower())
    return sender == rule.lower()


@dataclass(frozen=True)
class SenderPolicy:
    allow_all_when_empty: bool


def sender_admitted(faxbox: Faxbox, sender: str, policy: SenderPolicy) -> bool:
    """The owner is always admitted; an empty rule list admits all only if policy says so."""
    if faxbox.owner_email and sender.lower() == faxbox.owner_email.lower():
        return True
    if not faxbox.smtp_permission_list:
        return policy.allow_all_when_empty and not faxbox.owner_email
    return any(rule_admits(rule, sender) for rule in faxbox.smtp_permission_list)


def faxbox_for_sender(
    faxboxes: Sequence[Faxbox], sender: str, policy: SenderPolicy
) -> Faxbox | None:
    """For a realm address: the faxbox the sender owns, else the first whose rules admit them."""
    lowered = sender.lower()
    for faxbox in faxboxes:
        if faxbox.owner_email and faxbox.owner_email.lower() == lowered:
            return faxbox
    for faxbox in faxboxes:
        if faxbox.smtp_permission_list and sender_admitted(faxbox, sender, policy):
            return faxbox
    return None


def dedupe_addresses(addresses: Iterable[str | None]) -> list[str]:
    seen: dict[str, str] = {}
    for address in addresses:
        if address and address.lower() not in seen:
            seen[address.lower()] = address
    return list(seen.values())
