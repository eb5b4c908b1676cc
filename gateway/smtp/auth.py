"""SMTP AUTH (PLAIN and LOGIN): a faxbox's login and password, with a guard on guessing."""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
from typing import Protocol

from aiosmtpd.smtp import SMTP

from gateway import credentials
from gateway.guard import AuthGuard
from gateway.models import Faxbox
from gateway.smtp import replies
from gateway.smtp.protocol import GatewaySession

log = logging.getLogger(__name__)


class FaxboxLogins(Protocol):
    """The lookups AUTH needs (the store provides them)."""

    async def faxbox_by_login(self, login: str) -> Faxbox | None: ...

    async def faxbox_password_hash(self, faxbox_id: str) -> str | None: ...


class SmtpAuth:
    def __init__(self, logins: FaxboxLogins, guard: AuthGuard) -> None:
        self.logins = logins
        self.guard = guard

    async def authenticate(
        self, server: SMTP, session: GatewaySession, args: list[str]
    ) -> str | None:
        """aiosmtpd's AUTH hook: the reply, or None when it was already given."""
        if self.guard.retry_after(session.peer_ip) is not None:
            # Before the credentials are read: a right guess gets the same answer as a wrong one.
            await server.push(replies.AUTH_GUESSING)
            if server.transport is not None:
                server.transport.close()
            return None
        mechanism = args[0].upper()
        if mechanism == "PLAIN":
            given = await _plain(server, args)
        elif mechanism == "LOGIN":
            given = await _login(server, args)
        else:
            return replies.AUTH_UNSUPPORTED
        if given is None:
            return None  # the client aborted or sent bad base64; already answered
        user, password = given
        faxbox = await self.logins.faxbox_by_login(user)
        stored = await self.logins.faxbox_password_hash(faxbox.id) if faxbox else None
        ok = bool(stored) and await asyncio.to_thread(
            credentials.verify_password, password, stored or ""
        )
        if not ok or faxbox is None:
            log.info("smtp auth failed for user=%s peer=%s", user[:100], session.peer_ip)
            if self.guard.failed(session.peer_ip):
                log.warning(
                    "smtp: too many failed AUTHs from %s; refusing it for now", session.peer_ip
                )
            return replies.AUTH_INVALID
        session.authenticated = True
        session.auth_faxbox_id = faxbox.id
        session.auth_user = user
        return replies.AUTH_OK


async def _plain(server: SMTP, args: list[str]) -> tuple[str, str] | None:
    if len(args) > 1:
        blob = _b64(args[1])
        if blob is None:
            await server.push("501 5.5.2 Can't decode base64")
            return None
    else:
        response = await server.challenge_auth("", encode_to_b64=False)
        if not isinstance(response, bytes):
            return None
        blob = response
    parts = blob.split(b"\x00")
    if len(parts) != 3:
        return ("", "")
    return parts[1].decode("utf-8", "replace"), parts[2].decode("utf-8", "replace")


async def _login(server: SMTP, args: list[str]) -> tuple[str, str] | None:
    if len(args) > 1:
        user_blob = _b64(args[1])
        if user_blob is None:
            await server.push("501 5.5.2 Can't decode base64")
            return None
    else:
        response = await server.challenge_auth("Username:")
        if not isinstance(response, bytes):
            return None
        user_blob = response
    password = await server.challenge_auth("Password:")
    if not isinstance(password, bytes):
        return None
    return user_blob.decode("utf-8", "replace"), password.decode("utf-8", "replace")


def _b64(text: str) -> bytes | None:
    if text == "=":
        return b""
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None
