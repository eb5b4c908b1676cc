"""config/gateway.toml documents every setting with its default.

The rule, checked here for every field of ``Settings``, section by section:

1. Every field appears in its table: as ``key = value``; a field whose default is unset (None)
   may instead appear commented out, ``# key = <example>  # default: unset ...``. A nested
   section or a map (``transport.loopback.remotes``) appears as its own ``[table]``.
2. An active value equals the default, unless the dev config deliberately differs. Such a
   value is annotated where it stands: its trailing comment, or the comment block right above
   it (for a table: the comments under its header), says ``dev:`` why and names the
   ``default``.
3. The file loads (no unknown keys, valid values).
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from gateway.config import Settings, load_settings, parse_settings
from gateway.errors import ConfigError

CONFIG = Path(__file__).resolve().parents[1] / "config" / "gateway.toml"


@dataclass
class Entry:
    line: int
    active: bool
    comment: str  # the trailing comment
    above: list[str] = field(default_factory=list)  # the comment block right above

    @property
    def notes(self) -> str:
        return " ".join([*self.above, self.comment])


@dataclass
class Table:
    comment: str = ""
    notes: list[str] = field(default_factory=list)  # comment lines under the header
    entries: dict[str, Entry] = field(default_factory=dict)


_HEADER = re.compile(r"\[\s*([^\]]+?)\s*\]\s*(?:#(.*))?$")
_KEY = re.compile(r'("(?:[^"\\]|\\.)*"|[A-Za-z0-9_\-]+)\s*=\s*(.*)$')


def _split_comment(value_and_comment: str) -> tuple[str, str]:
    """Split ``value  # comment`` where the value itself may hold '#' inside a string."""
    for match in re.finditer("#", value_and_comment):
        value = value_and_comment[: match.start()]
        try:
            tomllib.loads("v = " + value)
        except tomllib.TOMLDecodeError:
            continue
        return value.strip(), value_and_comment[match.end() :].strip()
    return value_and_comment.strip(), ""


def scan(text: str) -> dict[str, Table]:
    tables: dict[str, Table] = {"": Table()}
    current = tables[""]
    block: list[str] = []
    seen_key = False
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line:
            block = []
            continue
        if header := _HEADER.fullmatch(line):
            current = tables.setdefault(header.group(1), Table(comment=header.group(2) or ""))
            block, seen_key = [], False
            continue
        if line.startswith("#"):
            inner = line.lstrip("#").strip()
            if key := _KEY.fullmatch(inner):
                _, comment = _split_comment(key.group(2))
                name = key.group(1).strip('"')
                current.entries.setdefault(name, Entry(number, False, comment, list(block)))
            block.append(inner)
            if not seen_key:
                current.notes.append(inner)
            continue
        key = _KEY.fullmatch(line)
        assert key, f"gateway.toml line {number}: cannot read {raw!r}"
        _, comment = _split_comment(key.group(2))
        current.entries[key.group(1).strip('"')] = Entry(number, True, comment, list(block))
        block, seen_key = [], True
    return tables


def annotated(notes: str) -> bool:
    return "dev:" in notes and "default" in notes.lower()


@dataclass
class Finding:
    where: str
    problem: str


def check(
    model: BaseModel, data: dict[str, Any], tables: dict[str, Table], path: str
) -> list[Finding]:
    findings: list[Finding] = []
    table = tables.get(path)
    if table is None:
        return [Finding(path, "section missing")]
    for attribute, info in type(model).model_fields.items():
        name = info.alias or attribute  # the key in the file (transport.sip.register)
        default = getattr(model, attribute)
        where = f"{path}.{name}" if path else name
        if isinstance(default, BaseModel):
            findings += check(default, data.get(name, {}), tables, where)
            continue
        if isinstance(default, dict):
            sub = tables.get(where)
            if sub is None:
                findings.append(Finding(where, "table missing"))
                continue
            value = getattr(type(model).model_validate({name: data.get(name, {})}), attribute)
            if value != default and not annotated(" ".join([sub.comment, *sub.notes])):
                findings.append(Finding(where, f"{value!r} differs from default {default!r}"))
            continue
        entry = table.entries.get(name)
        if entry is None:
            findings.append(Finding(where, "missing"))
        elif not entry.active:
            if default is not None:
                findings.append(Finding(where, "commented out, but it has a default value"))
            elif "default: unset" not in entry.comment:
                findings.append(Finding(where, "commented out without '# default: unset'"))
        else:
            value = getattr(type(model).model_validate({name: data[name]}), attribute)
            if value != default and not annotated(entry.notes):
                findings.append(
                    Finding(where, f"{value!r} differs from default {default!r} unannotated")
                )
    return findings


def test_every_setting_is_documented_with_its_default() -> None:
    text = CONFIG.read_text()
    findings = check(Settings(), tomllib.loads(text), scan(text), "")
    assert findings == []


def test_the_file_loads() -> None:
    settings = load_settings(CONFIG)
    assert settings.bootstrap.enabled  # the dev config makes `make run` useful at once


# -- the rule itself -------------------------------------------------------------------------


def findings_for(text: str) -> list[str]:
    return [
        f"{f.where}: {f.problem}" for f in check(Settings(), tomllib.loads(text), scan(text), "")
    ]


def everything() -> str:
    return CONFIG.read_text()


def test_rule_catches_a_missing_key() -> None:
    text = everything().replace("max_recipients = 50", "# (removed)")
    assert "smtp.max_recipients: missing" in findings_for(text)


def test_rule_catches_an_unannotated_difference() -> None:
    text = everything().replace("max_pages = 100 ", "max_pages = 101 ")
    assert any(f.startswith("smtp.max_pages: 101 differs") for f in findings_for(text))


@pytest.mark.parametrize(
    "annotation",
    ["  # dev: tests want short runs (default 100)", "  # default 100; dev: short runs"],
)
def test_rule_accepts_an_annotated_difference(annotation: str) -> None:
    text = re.sub(r"max_pages = 100 .*", "max_pages = 7" + annotation, everything())
    assert findings_for(text) == []


def test_rule_wants_the_default_named() -> None:
    text = re.sub(r"max_pages = 100 .*", "max_pages = 7  # dev: short runs", everything())
    assert findings_for(text) != []


def test_rule_catches_an_undocumented_unset_key() -> None:
    text = re.sub(r"# tls_key = .*", "", everything())
    assert "smtp.tls_key: missing" in findings_for(text)


@pytest.mark.parametrize(
    ("section", "key"),
    [
        ("smtp", "auth_failure_limit"),
        ("smtp", "auth_failure_window_s"),
        ("http", "auth_failure_limit"),
        ("http", "auth_failure_window_s"),
        ("http", "header_timeout_s"),
        ("http", "max_connections"),
        ("http", "token_ttl_s"),
        ("http", "max_tokens_per_account"),
    ],
)
def test_abuse_limits_cannot_be_switched_off_by_zero(section: str, key: str) -> None:
    # 0 would read as "no limit" to some and "refuse all" to others: neither is allowed.
    with pytest.raises(ConfigError, match=f"{section}.{key}"):
        parse_settings({section: {key: 0}})


# -- [transport.sip] ---------------------------------------------------------------------------


def sip(**keys: object) -> dict[str, object]:
    return {"transport": {"kind": "sip", "sip": {"proxy_host": "pbx.example", **keys}}}


def test_the_dev_config_stays_on_the_loopback_line() -> None:
    settings = load_settings(CONFIG)
    assert settings.transport.kind == "loopback"
    assert settings.transport.sip == type(settings.transport.sip)()  # documented, all defaults


def test_a_sip_transport_needs_only_its_proxy_and_takes_the_issues_defaults() -> None:
    settings = parse_settings(sip()).transport.sip
    assert (settings.listen_port, settings.proxy_port, settings.transport) == (5060, 5060, "udp")
    assert (settings.rtp_port_min, settings.rtp_port_max) == (20000, 20999)
    assert (settings.t38, settings.t38_redundancy, settings.ecm) == ("accept", 3, True)
    assert settings.codecs == ("PCMU", "PCMA")
    assert settings.allow_from == ()  # the proxy's own addresses, resolved at start
    assert not settings.register_ and settings.register_expires_s == 600
    assert (settings.ring_timeout_s, settings.media_silence_s, settings.t1_ms) == (60, 20, 500)
    assert settings.number_format == "e164" and settings.dial_prefix == ""


def test_register_is_read_under_its_own_name() -> None:
    settings = parse_settings(sip(register=True, username="gw", password="pw")).transport.sip
    assert settings.register_


def test_kind_sip_without_a_proxy_is_refused_by_name() -> None:
    with pytest.raises(ConfigError, match=r'proxy_host is required when transport.kind = "sip"'):
        parse_settings({"transport": {"kind": "sip"}})
    parse_settings({"transport": {"kind": "loopback"}})  # the loopback line needs none


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        ({"listen_port": 65536}, r"transport.sip.listen_port: Input should be less than"),
        ({"proxy_port": 0}, r"transport.sip.proxy_port: Input should be greater than"),
        ({"rtp_port_min": 80}, r"transport.sip.rtp_port_min: Input should be greater than"),
        ({"rtp_port_min": 20001}, r"rtp_port_min must be even .* not 20001"),
        (
            {"rtp_port_min": 30000, "rtp_port_max": 30000},
            r"rtp_port_min \(30000\) must be below transport.sip.rtp_port_max \(30000\)",
        ),
        ({"allow_from": ["10.0.0.0/8", "10.1.2.300/32"]}, r"'10.1.2.300/32' is not a CIDR"),
        ({"t38": "sometimes"}, r"transport.sip.t38: Input should be 'off', 'accept' or 'request'"),
        ({"t38_redundancy": 17}, r"transport.sip.t38_redundancy: Input should be less than"),
        ({"codecs": ["PCMU", "G729"]}, r"transport.sip.codecs.1: Input should be 'PCMU' or 'PCMA'"),
        ({"codecs": []}, r"transport.sip.codecs: .*at least 1 item"),
        ({"codecs": ["PCMA", "PCMA"]}, r"names a codec twice"),
        ({"number_format": "local"}, r"transport.sip.number_format: Input should be"),
        ({"dial_prefix": "9,"}, r"'9,' may hold only digits"),
        ({"region": "USA"}, r"'USA' is not a two-letter region code"),
        ({"public_address": "gw.example"}, r"'gw.example' is not an IP address"),
        ({"password": "x"}, r"password needs transport.sip.username"),
        ({"register": True, "username": "gw"}, r"register = true needs .*username and password"),
        ({"max_calls": 0}, r"transport.sip.max_calls: Input should be greater than 0"),
        ({"media_silence_s": 0}, r"transport.sip.media_silence_s: Input should be greater"),
        ({"ring_timeout_s": -1}, r"transport.sip.ring_timeout_s: Input should be greater"),
        ({"transport": "tls"}, r"transport.sip.transport: Input should be 'udp' or 'tcp'"),
        ({"proxy": "x"}, r"transport.sip.proxy: Extra inputs are not permitted"),
    ],
)
def test_bad_sip_settings_are_refused_with_a_clear_message(
    keys: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_settings(sip(**keys))


def test_sip_settings_are_checked_while_the_kind_is_still_loopback() -> None:
    """Switching a checked configuration to kind = "sip" must not uncover errors in it."""
    with pytest.raises(ConfigError, match="rtp_port_min must be even"):
        parse_settings({"transport": {"sip": {"rtp_port_min": 20001}}})


def test_good_sip_values_are_kept_as_written() -> None:
    settings = parse_settings(
        sip(
            allow_from=["192.0.2.0/24", "2001:db8::/32", "198.51.100.7"],
            region="de",
            dial_prefix="*31#",
            codecs=["PCMA"],
            public_address="203.0.113.10",
            listen_port=0,
        )
    ).transport.sip
    assert settings.allow_from == ("192.0.2.0/24", "2001:db8::/32", "198.51.100.7")
    assert settings.region == "DE"
    assert settings.codecs == ("PCMA",)
    assert settings.listen_port == 0


def test_rule_sees_the_sip_section() -> None:
    text = everything().replace("t1_ms = 500", "# (removed)")
    assert "transport.sip.t1_ms: missing" in findings_for(text)
    text = everything().replace("register = false", "register = true")
    assert any(f.startswith("transport.sip.register: True differs") for f in findings_for(text))
