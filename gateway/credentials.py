"""Secrets: generated tokens are stored only as hashes; SMTP passwords with a slow salted hash."""

from __future__ import annotations

import hashlib
import hmac
import secrets

# Tokens are 256 random bits, so a fast hash cannot be brute-forced; a lookup by hash stays O(1).
TOKEN_BYTES = 32
_SCRYPT = {"n": 2**14, "r": 8, "p": 1}


def new_token() -> str:
    return secrets.token_urlsafe(TOKEN_BYTES)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode("utf-8"), salt=salt, **_SCRYPT)
    return f"scrypt${salt.hex()}${digest.hex()}"


def verify_password(password: str, stored: str) -> bool:
    """Constant-time check; CPU-heavy (~50 ms), so callers run it off the event loop."""
    try:
        scheme, salt_hex, digest_hex = stored.split("$")
    except ValueError:
        return False
    if scheme != "scrypt":
        return False
    digest = hashlib.scrypt(password.encode("utf-8"), salt=bytes.fromhex(salt_hex), **_SCRYPT)
    return hmac.compare_digest(digest.hex(), digest_hex)


def new_id() -> str:
    return secrets.token_hex(16)
