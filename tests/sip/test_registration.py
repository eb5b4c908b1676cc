"""REGISTER to a small registrar built here (our transaction layer and DigestServer): the
binding is made with digest, refreshed at half the granted expiry, retried with back-off when
refused, and removed at close."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import pytest

from gateway.sip.digest import Algorithm, DigestServer, Verdict
from gateway.sip.message import Request, response_for
from gateway.sip.registration import Registration
from gateway.sip.sockets import Peer, Transport
from gateway.sip.transaction import ServerTransaction, TransactionLayer
from tests.sip.stations import TIMERS, Station, sockets_on_loopback, station, until

NOW = 1_800_000_000.0  # the registrar's clock: its nonces stay fresh for the whole test


class Registrar:
    """Accepts REGISTER from user "fax" with password "secret", granting at most ``grant``
    seconds and refusing less than ``min_expires`` (423)."""

    def __init__(
        self, algorithm: Algorithm = Algorithm.MD5, *, grant: int = 3600, min_expires: int = 0
    ) -> None:
        self.server = DigestServer("127.0.0.1", b"r" * 32, algorithms=(algorithm,))
        self.grant = grant
        self.min_expires = min_expires
        self.bindings: dict[str, int] = {}
        self.registers: list[Request] = []
        self.challenged = 0

    async def on_request(self, tx: ServerTransaction) -> None:
        request = tx.request
        if request.method != "REGISTER":
            await tx.respond(response_for(request, 405))
            return
        self.registers.append(request)
        verdict = self.server.check(request, {"fax": "secret"}.get, NOW)
        if verdict is not Verdict.OK:
            self.challenged += 1
            challenges = self.server.challenges(NOW, stale=verdict is Verdict.STALE)
            headers = [c.header() for c in challenges]
            await tx.respond(response_for(request, 401, to_tag="reg", headers=headers))
            return
        expires = int(request.headers.get("Expires") or "3600")
        contact = request.headers.get("Contact") or ""
        if 0 < expires < self.min_expires:
            headers = [("Min-Expires", str(self.min_expires))]
            await tx.respond(response_for(request, 423, to_tag="reg", headers=headers))
            return
        if expires == 0:
            self.bindings.pop(contact, None)
            await tx.respond(response_for(request, 200, to_tag="reg"))
            return
        granted = min(expires, self.grant)
        self.bindings[contact] = granted
        headers = [("Contact", f"{contact};expires={granted}")]
        await tx.respond(response_for(request, 200, to_tag="reg", headers=headers))


@contextlib.asynccontextmanager
async def registering(
    registrar: Registrar,
    transport: Transport = "udp",
    *,
    password: str = "secret",
    expires: int = 600,
) -> AsyncIterator[tuple[Station, Registration]]:
    async with sockets_on_loopback() as sockets:
        layer = TransactionLayer(sockets, TIMERS, registrar.on_request)
        try:
            proxy = Peer(transport, "127.0.0.1", sockets.port)
            async with station(proxy, password=password) as ours:
                registration = Registration(ours.ua, expires, retry_min=0.05, retry_max=0.2)
                await registration.start()
                try:
                    yield ours, registration
                finally:
                    await registration.close()
        finally:
            await layer.close()


@pytest.mark.parametrize("transport", ["udp", "tcp"])
@pytest.mark.parametrize("algorithm", [Algorithm.MD5, Algorithm.SHA256])
async def test_registers_with_digest(transport: Transport, algorithm: Algorithm) -> None:
    registrar = Registrar(algorithm)
    async with registering(registrar, transport) as (ours, registration):
        await until(registration.registered.is_set)
        assert registration.granted == 600
        assert registrar.challenged == 1
        (contact,) = registrar.bindings
        assert f"127.0.0.1:{ours.port}" in contact
        assert ("transport=tcp" in contact) == (transport == "tcp")
        first, second = registrar.registers
        assert first.uri == "sip:127.0.0.1"
        assert first.to_addr.uri == "sip:fax@127.0.0.1"
        assert second.cseq.number == first.cseq.number + 1


async def test_refreshes_at_half_the_granted_expiry_reusing_the_credentials() -> None:
    registrar = Registrar(grant=1)  # we ask for 600, the registrar grants 1 s
    async with registering(registrar) as (_, registration):
        await until(lambda: registration.refreshes >= 3)
        assert registration.granted == 1
        assert registrar.challenged == 1  # the refreshes answered the remembered challenge
        assert len({r.call_id for r in registrar.registers}) == 1  # one Call-ID (§10.2.4)
        numbers = [r.cseq.number for r in registrar.registers]
        assert numbers == sorted(set(numbers))


async def test_close_removes_the_binding() -> None:
    registrar = Registrar()
    async with registering(registrar) as (_, registration):
        await until(registration.registered.is_set)
        assert registrar.bindings
    assert registrar.bindings == {}
    assert registrar.registers[-1].headers.get("Expires") == "0"
    assert not registration.registered.is_set()


async def test_a_refused_registration_is_retried_with_backoff_and_never_loops() -> None:
    registrar = Registrar()
    async with registering(registrar, password="wrong") as (_, registration):
        await until(lambda: registration.failures >= 3)
        assert not registration.registered.is_set()
        assert registration.last_status == 401
        # Each attempt: one REGISTER, one answered challenge, no more (wrong password).
        assert len(registrar.registers) <= 2 * registration.failures + 2
    assert registrar.bindings == {}


async def test_interval_too_brief_is_retried_with_the_registrars_minimum() -> None:
    registrar = Registrar(min_expires=1200)
    async with registering(registrar) as (_, registration):
        await until(registration.registered.is_set)
        assert registration.granted == 1200
        assert registration.expires == 1200
