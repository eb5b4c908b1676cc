"""Opaque, tamper-proof page cursors (``start_key`` / ``next_start_key``).

A cursor is the key of the first row of a page plus the query it belongs to (list, range,
order), signed with HMAC-SHA256. Kazoo decoded client-supplied Erlang terms
(``binary_to_term`` without ``safe``); here a forged or altered cursor is only ever a 400.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass

from gateway.api.errors import field_error

_VERSION = 1
_MAC_BYTES = 16


@dataclass(frozen=True)
class Cursor:
    scope: str  # which list: "<account>:<folder>" or "admin:smtplog"
    created_from: float
    created_to: float
    ascending: bool
    created: float  # the first row's key
    id: str


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class CursorSigner:
    def __init__(self, secret: str | None = None) -> None:
        # Without a configured secret, a random one per start: cursors then die with restarts,
        # which costs a client one re-query, never wrong rows.
        self._key = hashlib.sha256(
            (secret or secrets.token_hex(32)).encode("utf-8") + b"fax-gateway cursor"
        ).digest()

    def _mac(self, payload: bytes) -> bytes:
        return hmac.new(self._key, payload, hashlib.sha256).digest()[:_MAC_BYTES]

    def encode(self, cursor: Cursor) -> str:
        payload = json.dumps(
            [
                _VERSION,
                cursor.scope,
                cursor.created_from,
                cursor.created_to,
                cursor.ascending,
                cursor.created,
                cursor.id,
            ],
            separators=(",", ":"),
        ).encode()
        return f"{_b64(payload)}.{_b64(self._mac(payload))}"

    def decode(self, text: str, scope: str) -> Cursor:
        """The cursor in ``text`` if we signed it for ``scope``; else a 400 on start_key."""
        try:
            payload_b64, mac_b64 = text.split(".")
            payload, mac = _unb64(payload_b64), _unb64(mac_b64)
        except (ValueError, binascii.Error) as exc:
            raise _invalid() from exc
        if not hmac.compare_digest(mac, self._mac(payload)):
            raise _invalid()
        try:
            version, got_scope, c_from, c_to, ascending, created, row_id = json.loads(payload)
        except (ValueError, TypeError) as exc:
            raise _invalid() from exc
        if version != _VERSION or got_scope != scope:
            raise _invalid("start_key belongs to another list")
        return Cursor(
            got_scope, float(c_from), float(c_to), bool(ascending), float(created), str(row_id)
        )


def _invalid(message: str = "start_key is not valid") -> Exception:
    return field_error("start_key", "invalid", message)
