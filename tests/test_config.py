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
    for name in type(model).model_fields:
        default = getattr(model, name)
        where = f"{path}.{name}" if path else name
        if isinstance(default, BaseModel):
            findings += check(default, data.get(name, {}), tables, where)
            continue
        if isinstance(default, dict):
            sub = tables.get(where)
            if sub is None:
                findings.append(Finding(where, "table missing"))
                continue
            value = getattr(type(model).model_validate({name: data.get(name, {})}), name)
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
            value = getattr(type(model).model_validate({name: data[name]}), name)
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
