"""The shared store SQL (written for SQLite, with ``?`` placeholders) as PostgreSQL reads it.

The statements of the store's groups of operations are written once; this rewrites the few
SQLite spellings they use into PostgreSQL's, statement by statement (cached), so that the two
backends cannot drift apart in what they select or change.
"""

from __future__ import annotations

import functools
import re

_IS_PARAM = re.compile(r"\bIS\s+(NOT\s+)?\?")
_JSON_APPEND = re.compile(r"json_insert\((\w+),\s*'\$\[#\]',\s*\?\)")
# claim_rows: "UPDATE t SET ... WHERE id IN ( SELECT id FROM t WHERE ... LIMIT ?) RETURNING *"
# Without a row lock the inner SELECT of two nodes may choose the same rows (the UPDATE then
# re-checks only its own WHERE): SKIP LOCKED makes each node take rows no other is taking.
_CLAIM = re.compile(r"(WHERE id IN \(\s*SELECT id FROM \w+ WHERE .* LIMIT \?)\)( RETURNING)")
_INSERT_SERIAL = re.compile(r"^\s*INSERT INTO (documents|attempts|notifications)\b", re.I)


@functools.lru_cache(maxsize=1024)
def to_postgres(sql: str) -> str:
    if sql.lstrip().upper().startswith("PRAGMA"):
        return "SELECT 1"  # SQLite's housekeeping (secure_delete, checkpoints): none needed
    sql = _IS_PARAM.sub(
        lambda m: "IS DISTINCT FROM ?" if m.group(1) else "IS NOT DISTINCT FROM ?", sql
    )
    sql = _JSON_APPEND.sub(r"(\1::jsonb || jsonb_build_array(?::text))::text", sql)
    sql = sql.replace("LIMIT -1", "LIMIT ALL")
    sql = _CLAIM.sub(r"\1 FOR UPDATE SKIP LOCKED)\2", sql)
    if _INSERT_SERIAL.match(sql) and "RETURNING" not in sql.upper():
        sql += " RETURNING id"  # what sqlite3's lastrowid gives
    return _number_placeholders(sql)


def _number_placeholders(sql: str) -> str:
    """``?`` → ``$1``, ``$2``, ... outside string literals."""
    out: list[str] = []
    count = 0
    quoted = False
    for char in sql:
        if char == "'":
            quoted = not quoted
        if char == "?" and not quoted:
            count += 1
            out.append(f"${count}")
        else:
            out.append(char)
    return "".join(out)
