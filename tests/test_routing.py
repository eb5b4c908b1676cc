"""Sender rules and recipient addresses (pure functions)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from gateway.errors import (
    InvalidFieldError,
    InvalidNumberError,
    RelayDeniedError,
    SenderDeniedError,
)
from gateway.models import Account, Faxbox, RecipientOutcome
from gateway.routing import (
    Sender,
    SenderPolicy,
    dedupe_addresses,
    faxbox_for_sender,
    resolve_recipient,
    rule_admits,
    sender_admitted,
    split_address,
    validate_rule,
)

STRICT = SenderPolicy(allow_all_when_empty=False)
LENIENT = SenderPolicy(allow_all_when_empty=True)


def box(*rules: str, owner: str | None = None, name: str = "box") -> Faxbox:
    return Faxbox(
        id=name,
        account_id="acct",
        name=name,
        smtp_email_address=f"{name}.fax.test",
        owner_email=owner,
        smtp_permission_list=rules,
    )


@pytest.mark.parametrize(
    ("address", "parts"),
    [
        ("+14155550100@fax.test", ("+14155550100", "fax.test")),
        ("+14155550100@FAX.Test.", ("+14155550100", "fax.test")),
        ('"a@b"@fax.test', ('"a@b"', "fax.test")),
    ],
)
def test_split_address(address: str, parts: tuple[str, str]) -> None:
    assert split_address(address) == parts


@pytest.mark.parametrize("address", ["postmaster", "@fax.test", "number@", ""])
def test_split_address_refuses(address: str) -> None:
    with pytest.raises(ValueError):
        split_address(address)


@pytest.mark.parametrize(
    ("rule", "normalized"),
    [
        ("Bob@Corp.com", "bob@corp.com"),
        ("*@Corp.com", "@corp.com"),
        ("@corp.com", "@corp.com"),
        (" re:.*@corp\\.com ", "re:.*@corp\\.com"),
        ("re:(?i)Bob@corp\\.com", "re:(?i)Bob@corp\\.com"),
    ],
)
def test_validate_rule(rule: str, normalized: str) -> None:
    assert validate_rule(rule) == normalized


@pytest.mark.parametrize("rule", ["re:([", "re:*", "bob", "@", "*@", "@a@b", "bob@", ""])
def test_validate_rule_refuses(rule: str) -> None:
    with pytest.raises(InvalidFieldError) as refused:
        validate_rule(rule)
    assert refused.value.field == "smtp_permission_list"


@pytest.mark.parametrize(
    "rule",
    [
        "re:(a)\\1@corp\\.com",  # a backreference
        "re:(?=bob)[a-z]+@corp\\.com",  # lookahead
        "re:(?<!x)bob@corp\\.com",  # lookbehind
        "re:(a{1000}){1000}",  # more states than a rule may hold
    ],
)
def test_rules_that_cannot_run_in_linear_time_are_refused_saying_why(rule: str) -> None:
    with pytest.raises(InvalidFieldError) as refused:
        validate_rule(rule)
    assert refused.value.rule == "pattern"
    assert "linear time" in refused.value.message


def test_a_backtracking_pattern_is_matched_in_linear_time() -> None:
    # Catastrophic in a backtracking engine (2^40 paths); one pass in RE2.
    assert rule_admits(validate_rule("re:(a+)+$"), "a" * 40 + "!@example.com") is False
    assert rule_admits("re:(a+)+@x", "a" * 40 + "@x") is True


def test_a_stored_rule_that_cannot_run_in_linear_time_admits_nobody() -> None:
    # Written before rules were checked: refused at match time, never run by another engine.
    assert rule_admits("re:(bob)\\1@corp\\.com", "bobbob@corp.com") is False


@pytest.mark.parametrize(
    ("rule", "sender", "admitted"),
    [
        ("bob@corp.com", "bob@corp.com", True),
        ("bob@corp.com", "Bob@CORP.com", True),
        ("Bob@Corp.com", "bob@corp.com", True),
        ("bob@corp.com", "evilbob@corp.com.attacker.net", False),
        ("bob@corp.com", "bob@corp.com.attacker.net", False),
        ("bob@corp.com", "xbob@corp.com", False),
        ("*@corp.com", "a@corp.com", True),
        ("*@corp.com", "a@xcorp.com", False),
        ("*@corp.com", "a@corp.com.evil", False),
        ("@corp.com", "a@corp.com", True),
        ("@corp.com", "a@sub.corp.com", False),
        ("@corp.com", "a@evilcorp.com", False),
        ("re:bob@corp\\.com", "bob@corp.com", True),
        ("re:bob@corp\\.com", "evilbob@corp.com.attacker.net", False),  # anchored both ends
        ("re:bob@corp\\.com", "BOB@corp.com", True),  # case-insensitive
        ("re:[a-z]+@corp\\.com", "bob@corp.com", True),
        ("re:[a-z]+@corp\\.com", "bob1@corp.com", False),
        ("re:.*", "anyone@anywhere.example", True),
    ],
)
def test_rule_admits(rule: str, sender: str, admitted: bool) -> None:
    assert rule_admits(rule, sender) is admitted
    assert rule_admits(validate_rule(rule), sender) is admitted


def test_owner_is_always_admitted() -> None:
    faxbox = box("*@corp.com", owner="Boss@Home.example")
    assert sender_admitted(faxbox, "boss@home.example", STRICT)
    assert sender_admitted(faxbox, "a@corp.com", STRICT)
    assert not sender_admitted(faxbox, "eve@home.example", STRICT)


def test_empty_list() -> None:
    assert not sender_admitted(box(), "a@b.example", STRICT)
    assert sender_admitted(box(), "a@b.example", LENIENT)
    # With an owner, the owner is the list: nobody else, whatever the policy.
    owned = box(owner="boss@home.example")
    assert sender_admitted(owned, "boss@home.example", LENIENT)
    assert not sender_admitted(owned, "a@b.example", LENIENT)


def test_faxbox_for_sender_prefers_the_owned_one() -> None:
    open_box = box("re:.*", name="open")
    owned = box(owner="ann@corp.com", name="owned")
    assert faxbox_for_sender([open_box, owned], "Ann@corp.com", STRICT) is owned
    assert faxbox_for_sender([open_box, owned], "bob@corp.com", STRICT) is open_box
    assert faxbox_for_sender([owned], "bob@corp.com", STRICT) is None
    # A faxbox with no rules does not take strangers' mail through its realm.
    assert faxbox_for_sender([box(name="empty")], "bob@corp.com", LENIENT) is None


def test_faxbox_for_sender_takes_the_first_matching_rule() -> None:
    first = box("@corp.com", name="first")
    second = replace(first, id="second", name="second")
    assert faxbox_for_sender([first, second], "a@corp.com", STRICT) is first


def test_dedupe_addresses_keeps_order_and_first_spelling() -> None:
    assert dedupe_addresses(["Alice@Example.com", None, "ops@x.test", "alice@example.com", ""]) == [
        "Alice@Example.com",
        "ops@x.test",
    ]


class Directory:
    """The store's faxbox lookups, over a list (recipient resolution takes any such)."""

    def __init__(self, *faxboxes: Faxbox, realm: str | None = None) -> None:
        self.faxboxes = list(faxboxes)
        self.realm = realm

    async def faxbox_by_domain(self, domain: str) -> Faxbox | None:
        return next((b for b in self.faxboxes if b.smtp_email_address == domain), None)

    async def account_by_realm(self, realm: str) -> Account | None:
        return Account("acct", "acme", realm, 0.0) if realm == self.realm else None

    async def faxboxes_of_account(self, account_id: str) -> list[Faxbox]:
        return [b for b in self.faxboxes if b.account_id == account_id]


async def resolve(directory: Directory, sender: Sender, address: str) -> tuple[str, str]:
    outcome = RecipientOutcome(address=address, reply="")
    accepted = await resolve_recipient(directory, STRICT, sender, address, outcome)
    assert (outcome.faxbox_id, outcome.translated_number) == (accepted.faxbox.id, accepted.number)
    return accepted.faxbox.id, accepted.number


async def test_a_faxbox_address_resolves_to_its_faxbox_and_the_number() -> None:
    directory = Directory(box("@example.com"))
    found = await resolve(directory, Sender("a@example.com"), "1-415-555-0100@box.fax.test")
    assert found == ("box", "+14155550100")


async def test_a_realm_address_goes_to_the_faxbox_that_admits_the_sender() -> None:
    directory = Directory(
        box("@other.test", name="one"), box("@example.com", name="two"), realm="acme.test"
    )
    assert await resolve(directory, Sender("a@example.com"), "+14155550100@acme.test") == (
        "two",
        "+14155550100",
    )


async def test_the_faxbox_logged_in_as_is_used_whoever_the_sender() -> None:
    directory = Directory(box(name="one"), box(name="two"), realm="acme.test")
    for address in ("+14155550100@acme.test", "+14155550100@two.fax.test"):
        found = await resolve(directory, Sender("", auth_faxbox_id="two"), address)
        assert found == ("two", "+14155550100")


@pytest.mark.parametrize(
    ("sender", "address", "error", "says"),
    [
        (Sender("a@example.com"), "+14155550100@elsewhere.test", RelayDeniedError, "not a fax"),
        (Sender("a@evil.test"), "+14155550100@box.fax.test", SenderDeniedError, "not allowed"),
        (Sender(""), "+14155550100@box.fax.test", SenderDeniedError, "null sender"),
        (Sender("a@evil.test"), "+14155550100@acme.test", SenderDeniedError, "no faxbox"),
        (Sender("a@example.com"), "fax-me@box.fax.test", InvalidNumberError, "fax-me is not"),
    ],
)
async def test_refusals_say_why(
    sender: Sender, address: str, error: type[Exception], says: str
) -> None:
    directory = Directory(box("@example.com"), realm="acme.test")
    with pytest.raises(error, match=says):
        await resolve(directory, sender, address)
