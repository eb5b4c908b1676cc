"""Who may send to which faxbox: sender rules, and which faxbox and number a recipient
address means (pure: the store is reached through the narrow ``FaxboxDirectory``)."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Protocol

import re2

from gateway.errors import (
    InvalidFieldError,
    InvalidNumberError,
    RelayDeniedError,
    SenderDeniedError,
)
from gateway.models import Account, Faxbox, RecipientOutcome
from gateway.numbers import normalize_number

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


class FaxboxDirectory(Protocol):
    """The lookups that recipient resolution needs (the store provides them)."""

    async def faxbox_by_domain(self, domain: str) -> Faxbox | None: ...

    async def account_by_realm(self, realm: str) -> Account | None: ...

    async def faxboxes_of_account(self, account_id: str) -> list[Faxbox]: ...


@dataclass(frozen=True)
class Accepted:
    """A recipient that passed RCPT: where its fax goes and from which faxbox."""

    address: str
    faxbox: Faxbox
    number: str
    original: str


@dataclass(frozen=True)
class Sender:
    """Who is sending: the envelope sender, and the faxbox the session logged in as."""

    address: str
    auth_faxbox_id: str | None = None


async def resolve_recipient(
    directory: FaxboxDirectory,
    policy: SenderPolicy,
    sender: Sender,
    address: str,
    outcome: RecipientOutcome,
) -> Accepted:
    """The faxbox and number of ``address`` for ``sender``, noting on ``outcome`` what was
    found on the way (its smtplog fields); raise a GatewayError (or ValueError for an address
    without a domain) saying why not."""
    local, domain = split_address(address)
    outcome.faxbox_domain = domain
    outcome.original_number = local
    faxbox = await directory.faxbox_by_domain(domain)
    if faxbox is not None:
        outcome.account_id, outcome.faxbox_id = faxbox.account_id, faxbox.id
        check_sender(faxbox, sender, policy)
    else:
        account = await directory.account_by_realm(domain)
        if account is None:
            raise RelayDeniedError(f"{domain} is not a fax domain of this gateway")
        outcome.account_id = account.id
        faxboxes = await directory.faxboxes_of_account(account.id)
        faxbox = faxbox_in_realm(faxboxes, sender, policy)
        outcome.faxbox_id = faxbox.id
    try:
        number = normalize_number(local, faxbox.default_region)
    except InvalidNumberError as exc:
        raise InvalidNumberError(f"{local} is not a valid fax number: {exc}") from exc
    outcome.translated_number = number
    return Accepted(address=address, faxbox=faxbox, number=number, original=local)


def check_sender(faxbox: Faxbox, sender: Sender, policy: SenderPolicy) -> None:
    """A faxbox's own login may always send through it; anyone else by its rules."""
    if sender.auth_faxbox_id == faxbox.id:
        return
    if not sender.address:
        raise SenderDeniedError("a null sender (bounce) cannot send faxes")
    if not sender_admitted(faxbox, sender.address, policy):
        raise SenderDeniedError(f"sender {sender.address} is not allowed to use this faxbox")


def faxbox_in_realm(faxboxes: Sequence[Faxbox], sender: Sender, policy: SenderPolicy) -> Faxbox:
    """For an address in an account's realm: the faxbox logged in as, else the sender's."""
    for faxbox in faxboxes:
        if faxbox.id == sender.auth_faxbox_id:
            return faxbox
    if not sender.address:
        raise SenderDeniedError("a null sender (bounce) cannot send faxes")
    found = faxbox_for_sender(faxboxes, sender.address, policy)
    if found is None:
        raise SenderDeniedError(f"sender {sender.address} has no faxbox in this realm")
    return found
