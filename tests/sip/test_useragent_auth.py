"""Digest authentication of our INVITEs (RFC 3261 §22, RFC 8760): a callee that challenges
with DigestServer, 401 and 407, MD5 and SHA-256, a wrong password, a stale nonce."""

from __future__ import annotations

import pytest

from gateway.errors import CallRejected
from gateway.sip.digest import Algorithm, Credentials, DigestServer, Verdict
from gateway.sip.incoming import IncomingCall
from tests.conftest import Clock
from tests.sip.stations import (
    CALLEE_SDP,
    CALLER_SDP,
    NUMBER,
    Behaviour,
    Station,
    pair,
)


def challenging(b: Station, server: DigestServer, clock: Clock, *, age_first: float = 0.0) -> None:
    """The callee answers only requests whose credentials its DigestServer accepts; the
    first challenge it issues is made to look ``age_first`` seconds old when answered."""
    b.callee.answers(CALLEE_SDP)
    answer_call = b.callee.behaviour
    assert answer_call is not None
    status = 407 if server.proxy else 401

    async def behaviour(incoming: IncomingCall) -> None:
        verdict = server.check(incoming.request, {"fax": "secret"}.get, clock())
        if verdict is Verdict.OK:
            await answer_call(incoming)
            return
        challenges = server.challenges(clock(), stale=verdict is Verdict.STALE)
        if verdict is Verdict.MISSING:
            clock.now += age_first
        await incoming.reject(status, headers=[c.header() for c in challenges])

    b.callee.behaviour = behaviour


def offered_so_far(b: Station) -> list[IncomingCall]:
    found = []
    while not b.callee.offered.empty():
        found.append(b.callee.offered.get_nowait())
    return found


@pytest.mark.parametrize("algorithm", [Algorithm.MD5, Algorithm.SHA256])
@pytest.mark.parametrize("proxy", [False, True], ids=["401", "407"])
async def test_a_digest_challenge_is_answered_once_and_the_call_goes_through(
    algorithm: Algorithm, proxy: bool
) -> None:
    async with pair("udp") as (a, b):
        server = DigestServer("127.0.0.1", b"k" * 32, algorithms=(algorithm,), proxy=proxy)
        challenging(b, server, Clock())
        outbound = await a.ua.invite(f"sip:{NUMBER}@127.0.0.1", "fax", CALLER_SDP)
        assert outbound.remote_sdp == CALLEE_SDP
        first, second = offered_so_far(b)
        header = "Proxy-Authorization" if proxy else "Authorization"
        assert header not in first.request.headers
        credentials = Credentials.parse(second.request.headers.get(header) or "", proxy=proxy)
        assert (credentials.algorithm, credentials.nc, credentials.uri) == (
            algorithm,
            1,
            second.request.uri,
        )
        assert second.request.cseq.number == first.request.cseq.number + 1
        assert second.request.call_id == first.request.call_id
        assert outbound.dialog.local_seq == second.request.cseq.number


async def test_digest_over_tcp() -> None:
    async with pair("tcp") as (a, b):
        challenging(b, DigestServer("127.0.0.1", b"k" * 32), Clock())
        outbound = await a.ua.invite(f"sip:{NUMBER}@127.0.0.1", "fax", CALLER_SDP)
        assert outbound.remote_sdp == CALLEE_SDP


async def test_a_wrong_password_is_tried_once_then_the_call_is_rejected() -> None:
    async with pair("udp") as (a, b):
        challenging(b, DigestServer("127.0.0.1", b"k" * 32), Clock())
        b.callee.behaviour = wrapped_password(b, "wrong")
        with pytest.raises(CallRejected) as rejected:
            await a.ua.invite(f"sip:{NUMBER}@127.0.0.1", "fax", CALLER_SDP)
        assert rejected.value.status == 401
        assert len(offered_so_far(b)) == 2


def wrapped_password(b: Station, password: str) -> Behaviour:
    server = DigestServer("127.0.0.1", b"k" * 32)

    async def behaviour(incoming: IncomingCall) -> None:
        verdict = server.check(incoming.request, {"fax": password}.get, 1_800_000_000.0)
        assert verdict is not Verdict.OK
        challenges = server.challenges(1_800_000_000.0)
        await incoming.reject(401, headers=[c.header() for c in challenges])

    return behaviour


async def test_a_stale_nonce_is_answered_again_with_the_fresh_one() -> None:
    async with pair("udp") as (a, b):
        server = DigestServer("127.0.0.1", b"k" * 32, nonce_lifetime_s=30)
        challenging(b, server, Clock(), age_first=60)
        outbound = await a.ua.invite(f"sip:{NUMBER}@127.0.0.1", "fax", CALLER_SDP)
        assert outbound.remote_sdp == CALLEE_SDP
        assert len(offered_so_far(b)) == 3  # none, stale, fresh
