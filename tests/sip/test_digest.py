"""Digest authentication: the RFCs' published vectors, SIP vectors computed independently, and
both ends talking to each other."""

from __future__ import annotations

import contextlib
import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.sip.digest import (
    Algorithm,
    Challenge,
    Credentials,
    DigestClient,
    DigestError,
    DigestServer,
    Verdict,
    compute_response,
    parse_challenge,
    pick_challenge,
    verify,
)
from gateway.sip.message import Headers, Request, Response, parse_message


def challenged(*challenges: str, proxy: bool = False) -> Response:
    name = "Proxy-Authenticate" if proxy else "WWW-Authenticate"
    return Response(407 if proxy else 401, "", Headers(tuple((name, c) for c in challenges)))


def fixed_cnonce(value: str) -> DigestClient:
    return DigestClient("Mufasa", "unused", new_cnonce=lambda: value)


# --- RFC 2617 §3.5 ------------------------------------------------------------------------

# The example's challenge, folded over lines as printed in the RFC, inside a SIP 401.
RFC2617_401 = (
    b"SIP/2.0 401 Unauthorized\r\n"
    b"Via: SIP/2.0/UDP host.com;branch=z9hG4bK1\r\n"
    b"From: <sip:Mufasa@host.com>;tag=1\r\n"
    b"To: <sip:Mufasa@host.com>;tag=2\r\n"
    b"Call-ID: 1@host.com\r\n"
    b"CSeq: 1 REGISTER\r\n"
    b"WWW-Authenticate: Digest\r\n"
    b'                 realm="testrealm@host.com",\r\n'
    b'                 qop="auth,auth-int",\r\n'
    b'                 nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093",\r\n'
    b'                 opaque="5ccc069c403ebaf9f0171e9517f40e41"\r\n'
    b"Content-Length: 0\r\n\r\n"
)
RFC2617_AUTHORIZATION = (
    'Digest username="Mufasa", realm="testrealm@host.com", '
    'nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", uri="/dir/index.html", qop=auth, '
    'nc=00000001, cnonce="0a4f113b", response="6629fae49393a05397450978507c4ef1", '
    'opaque="5ccc069c403ebaf9f0171e9517f40e41"'
)


def test_rfc2617_example_challenge_is_read() -> None:
    message = parse_message(RFC2617_401)
    assert isinstance(message, Response)
    challenge = pick_challenge(message)
    assert challenge == Challenge(
        realm="testrealm@host.com",
        nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093",
        algorithm=Algorithm.MD5,  # absent means MD5
        qop=("auth", "auth-int"),
        opaque="5ccc069c403ebaf9f0171e9517f40e41",
    )


def test_rfc2617_example_response() -> None:
    message = parse_message(RFC2617_401)
    assert isinstance(message, Response)
    challenge = pick_challenge(message)
    assert challenge is not None
    client = DigestClient("Mufasa", "Circle Of Life", new_cnonce=lambda: "0a4f113b")
    credentials = client.authorize(challenge, "GET", "/dir/index.html")
    assert credentials.response == "6629fae49393a05397450978507c4ef1"
    assert (credentials.qop, credentials.nc, credentials.cnonce) == ("auth", 1, "0a4f113b")
    assert credentials.header() == (
        "Authorization",
        'Digest username="Mufasa", realm="testrealm@host.com", '
        'nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", uri="/dir/index.html", '
        'response="6629fae49393a05397450978507c4ef1", algorithm=MD5, cnonce="0a4f113b", '
        'opaque="5ccc069c403ebaf9f0171e9517f40e41", qop=auth, nc=00000001',
    )


def test_rfc2617_example_authorization_verifies_on_the_server_side() -> None:
    credentials = Credentials.parse(RFC2617_AUTHORIZATION)
    assert credentials.nc == 1 and credentials.algorithm is Algorithm.MD5
    assert verify(credentials, password="Circle Of Life", method="GET")
    assert not verify(credentials, password="Circle of Life", method="GET")
    assert not verify(credentials, password="Circle Of Life", method="POST")


# --- RFC 7616 §3.9.1 ----------------------------------------------------------------------

RFC7616_CHALLENGES = (
    'Digest realm="http-auth@example.org", qop="auth, auth-int", algorithm=SHA-256, '
    'nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", '
    'opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"',
    'Digest realm="http-auth@example.org", qop="auth, auth-int", algorithm=MD5, '
    'nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", '
    'opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"',
)
RFC7616_CNONCE = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ"


def test_rfc7616_sha256_example() -> None:
    challenge = pick_challenge(challenged(*RFC7616_CHALLENGES))
    assert challenge is not None and challenge.algorithm is Algorithm.SHA256
    client = DigestClient("Mufasa", "Circle of Life", new_cnonce=lambda: RFC7616_CNONCE)
    credentials = client.authorize(challenge, "GET", "/dir/index.html")
    assert credentials.response == (
        "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"
    )
    assert "algorithm=SHA-256" in credentials.header()[1]
    assert 'opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"' in credentials.header()[1]


def test_rfc7616_md5_example() -> None:
    challenge = parse_challenge(RFC7616_CHALLENGES[1])
    client = DigestClient("Mufasa", "Circle of Life", new_cnonce=lambda: RFC7616_CNONCE)
    credentials = client.authorize(challenge, "GET", "/dir/index.html")
    assert credentials.response == "8ca523f5e9506fed4657c9700eebdbec"


# --- SIP vectors computed here from the RFC formulas --------------------------------------


def by_hand(hash_name: str, text: str | bytes) -> str:
    data = text.encode() if isinstance(text, str) else text
    return hashlib.new(hash_name, data).hexdigest()


SDP = b"v=0\r\no=- 1 1 IN IP4 192.0.2.20\r\ns=-\r\nc=IN IP4 192.0.2.20\r\nt=0 0\r\n"
INVITE_URI = "sip:+14155550199@sip.example.net"


def test_sip_invite_sha256_auth() -> None:
    ha1 = by_hand("sha256", "fax:sip.example.net:s3cret pass")
    ha2 = by_hand("sha256", f"INVITE:{INVITE_URI}")
    expected = by_hand("sha256", f"{ha1}:abc123:00000001:c0ffee:auth:{ha2}")
    challenge = Challenge("sip.example.net", "abc123", Algorithm.SHA256, ("auth",), proxy=True)
    client = DigestClient("fax", "s3cret pass", new_cnonce=lambda: "c0ffee")
    credentials = client.authorize(challenge, "INVITE", INVITE_URI, SDP)
    assert credentials.response == expected
    assert credentials.header()[0] == "Proxy-Authorization"


def test_sip_invite_sha256_sess_auth_int() -> None:
    ha1 = by_hand("sha256", by_hand("sha256", "fax:sip.example.net:pw") + ":n0nce:cn")
    ha2 = by_hand("sha256", f"INVITE:{INVITE_URI}:{by_hand('sha256', SDP)}")
    expected = by_hand("sha256", f"{ha1}:n0nce:00000001:cn:auth-int:{ha2}")
    challenge = Challenge("sip.example.net", "n0nce", Algorithm.SHA256_SESS, ("auth-int",))
    client = DigestClient("fax", "pw", new_cnonce=lambda: "cn")
    credentials = client.authorize(challenge, "INVITE", INVITE_URI, SDP)
    assert credentials.qop == "auth-int"  # the only one offered
    assert credentials.response == expected


def test_sip_register_md5_sess() -> None:
    ha1 = by_hand("md5", by_hand("md5", "fax:asterisk:pw") + ":n:cn")
    ha2 = by_hand("md5", "REGISTER:sip:pbx.example.com")
    expected = by_hand("md5", f"{ha1}:n:00000001:cn:auth:{ha2}")
    challenge = parse_challenge('Digest realm="asterisk", nonce="n", algorithm=md5-sess, qop=auth')
    client = DigestClient("fax", "pw", new_cnonce=lambda: "cn")
    assert client.authorize(challenge, "REGISTER", "sip:pbx.example.com").response == expected


def test_sip_sha512_256() -> None:
    ha1 = by_hand("sha512_256", "fax:r:pw")
    ha2 = by_hand("sha512_256", "BYE:sip:a@b")
    expected = by_hand("sha512_256", f"{ha1}:n:00000001:cn:auth:{ha2}")
    challenge = Challenge("r", "n", Algorithm.SHA512_256, ("auth",))
    client = DigestClient("fax", "pw", new_cnonce=lambda: "cn")
    assert client.authorize(challenge, "BYE", "sip:a@b").response == expected


def test_without_qop_the_rfc2069_form_is_used() -> None:
    ha1 = by_hand("md5", "fax:sip.example.net:pw")
    ha2 = by_hand("md5", f"INVITE:{INVITE_URI}")
    challenge = parse_challenge('Digest realm="sip.example.net", nonce="ZQ2b0WUN"')
    credentials = DigestClient("fax", "pw").authorize(challenge, "INVITE", INVITE_URI)
    assert credentials.response == by_hand("md5", f"{ha1}:ZQ2b0WUN:{ha2}")
    assert "cnonce" not in credentials.header()[1] and "nc=" not in credentials.header()[1]


def test_utf8_usernames_and_passwords() -> None:
    ha1 = by_hand("sha256", "Jäsøn Doe:r:Secret, or not?")
    ha2 = by_hand("sha256", "OPTIONS:sip:a@b")
    expected = by_hand("sha256", f"{ha1}:n:{ha2}")
    challenge = Challenge("r", "n", Algorithm.SHA256)
    assert (
        DigestClient("Jäsøn Doe", "Secret, or not?")
        .authorize(challenge, "OPTIONS", "sip:a@b")
        .response
        == expected
    )


# --- choosing and reading challenges ------------------------------------------------------


def test_the_strongest_algorithm_wins_even_when_listed_last() -> None:
    picked = pick_challenge(
        challenged(
            'Digest realm="r", nonce="1", algorithm=MD5, qop="auth"',
            'Digest realm="r", nonce="2", algorithm=SHA-256, qop="auth"',
            'Digest realm="r", nonce="3", algorithm=SHA-256-sess, qop="auth"',
        )
    )
    assert picked is not None and picked.nonce == "2"  # the topmost among the strongest


def test_unusable_challenges_are_skipped() -> None:
    response = challenged(
        'Basic realm="r"',
        'Digest realm="r", nonce="1", algorithm=AKAv1-MD5',
        'Digest realm="r", nonce="2", qop="auth-conf"',
        'Digest realm="unterminated',
        'Digest realm="r", nonce="4", algorithm=MD5',
    )
    picked = pick_challenge(response)
    assert picked is not None and picked.nonce == "4"
    assert pick_challenge(challenged('Basic realm="r"')) is None
    assert pick_challenge(Response(401)) is None


def test_proxy_challenges_are_answered_with_proxy_authorization() -> None:
    picked = pick_challenge(challenged('Digest realm="k", nonce="n", qop="auth"', proxy=True))
    assert picked is not None and picked.proxy
    assert picked.header_name == "Proxy-Authenticate"
    credentials = DigestClient("u", "p").authorize(picked, "INVITE", INVITE_URI)
    assert credentials.header_name == "Proxy-Authorization"


def test_challenge_details() -> None:
    challenge = parse_challenge(
        'digest REALM="r", Nonce="n", algorithm="sha-256", qop="auth-int, auth", stale=TRUE'
    )
    assert challenge.algorithm is Algorithm.SHA256
    assert challenge.qop == ("auth-int", "auth")
    assert challenge.stale
    assert not parse_challenge('Digest realm="r", nonce="n", stale=false').stale


@pytest.mark.parametrize(
    "text",
    [
        'Digest realm="r"',
        'Digest nonce="n"',
        'Basic realm="r"',
        'Digest realm="r", nonce="n", algorithm=SHA-1',
        'Digest realm="r", nonce="n", algorithm=MD5-sess',  # a session key needs qop
        'Digest realm="r", nonce="n", qop="auth-conf"',
        'Digest realm="r", realm="s", nonce="n"',
        "",
    ],
)
def test_bad_challenges_are_refused(text: str) -> None:
    with pytest.raises(DigestError):
        parse_challenge(text)


def test_the_client_answers_auth_when_both_are_offered_and_refuses_what_is_not() -> None:
    challenge = Challenge("r", "n", Algorithm.SHA256, ("auth-int", "auth"))
    assert DigestClient("u", "p").authorize(challenge, "BYE", "sip:a@b").qop == "auth"
    forced = DigestClient("u", "p").authorize(challenge, "BYE", "sip:a@b", qop="auth-int")
    assert forced.qop == "auth-int"
    with pytest.raises(DigestError):
        DigestClient("u", "p").authorize(
            Challenge("r", "n", qop=("auth",)), "BYE", "x", qop="auth-int"
        )


def test_nc_counts_requests_per_nonce() -> None:
    client = DigestClient("u", "p")
    first = Challenge("r", "nonce-1", Algorithm.SHA256, ("auth",))
    second = Challenge("r", "nonce-2", Algorithm.SHA256, ("auth",))
    counts = [
        client.authorize(first, "REGISTER", "sip:r").nc,
        client.authorize(first, "REGISTER", "sip:r").nc,
        client.authorize(second, "REGISTER", "sip:r").nc,
        client.authorize(first, "REGISTER", "sip:r").nc,
    ]
    assert counts == [1, 2, 1, 3]
    assert client.authorize(second, "REGISTER", "sip:r").header()[1].endswith("nc=00000002")


def test_fresh_cnonces_by_default() -> None:
    client = DigestClient("u", "p")
    challenge = Challenge("r", "n", Algorithm.SHA256, ("auth",))
    cnonces = {client.authorize(challenge, "BYE", "sip:a@b").cnonce for _ in range(20)}
    assert len(cnonces) == 20


def test_compute_response_refuses_a_session_algorithm_without_cnonce() -> None:
    with pytest.raises(DigestError):
        compute_response(
            algorithm=Algorithm.MD5_SESS, username="u", password="p", realm="r", nonce="n",
            method="BYE", uri="sip:a@b",
        )  # fmt: skip


# --- credentials ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        'Digest realm="r", nonce="n", uri="u", response="x"',
        'Digest username="a", realm="r", nonce="n", uri="u", response="x", qop=auth',
        'Digest username="a", realm="r", nonce="n", uri="u", response="x", qop=auth, cnonce="c",'
        " nc=1",
        'Digest username="a", realm="r", nonce="n", uri="u", response="x", qop=auth-conf',
        'Digest username="a", realm="r", nonce="n", uri="u", response="x", algorithm=MD5-sess',
        'Digest username="a", realm="r", nonce="n", uri="u", response="x", algorithm=HMAC',
        'Bearer username="a"',
        'Digest username="a", username="b", realm="r", nonce="n", uri="u", response="x"',
    ],
)
def test_bad_credentials_are_refused(text: str) -> None:
    with pytest.raises(DigestError):
        Credentials.parse(text)


STRINGS = st.text(st.characters(exclude_categories=("Cc", "Cs")), max_size=16)


@given(
    st.builds(
        Credentials,
        username=STRINGS,
        realm=STRINGS,
        nonce=STRINGS,
        uri=STRINGS,
        response=st.text("0123456789abcdef", min_size=32, max_size=64),
        algorithm=st.sampled_from(Algorithm),
        qop=st.sampled_from(["auth", "auth-int"]),
        cnonce=STRINGS,
        nc=st.integers(0, 2**32 - 1),
        opaque=st.none() | STRINGS,
        proxy=st.booleans(),
    )
)
def test_credentials_round_trip(credentials: Credentials) -> None:
    name, value = credentials.header()
    assert Credentials.parse(value, proxy=name == "Proxy-Authorization") == credentials


@given(
    st.builds(
        Challenge,
        realm=STRINGS,
        nonce=STRINGS,
        algorithm=st.sampled_from(Algorithm),
        qop=st.sampled_from([("auth",), ("auth-int",), ("auth", "auth-int")]),
        opaque=st.none() | STRINGS,
        stale=st.booleans(),
        proxy=st.booleans(),
    )
)
def test_challenges_round_trip(challenge: Challenge) -> None:
    name, value = challenge.header()
    assert parse_challenge(value, proxy=name == "Proxy-Authenticate") == challenge


@given(st.text(max_size=300))
def test_arbitrary_text_raises_nothing_but_digest_error(text: str) -> None:
    for parse in (parse_challenge, Credentials.parse):
        with contextlib.suppress(DigestError):
            parse(text)


# --- the server side, against our own client ----------------------------------------------

NOW = 1_800_000_000.0
PASSWORDS = {"fax": "s3cret"}


def invite(*headers: tuple[str, str], body: bytes = SDP) -> Request:
    return Request("INVITE", INVITE_URI, Headers(headers), body)


def answered(server: DigestServer, client: DigestClient, now: float = NOW, **kw: bytes) -> Request:
    challenge = pick_challenge(
        Response(401, "", Headers(tuple(c.header() for c in server.challenges(now))))
    )
    assert challenge is not None
    body = kw.get("body", SDP)
    return invite(client.authorize(challenge, "INVITE", INVITE_URI, body).header(), body=body)


def test_the_server_accepts_the_right_password() -> None:
    server = DigestServer("gw.example.com", b"k" * 32)
    request = answered(server, DigestClient("fax", "s3cret"))
    assert "algorithm=SHA-256" in (request.headers.get("Authorization") or "")
    assert server.check(request, PASSWORDS.get, NOW + 10) is Verdict.OK


def test_the_server_offers_sha256_first_then_md5() -> None:
    server = DigestServer("gw.example.com", b"k" * 32)
    headers = [c.header() for c in server.challenges(NOW)]
    assert [h[0] for h in headers] == ["WWW-Authenticate", "WWW-Authenticate"]
    assert "algorithm=SHA-256" in headers[0][1] and "algorithm=MD5" in headers[1][1]
    assert 'qop="auth"' in headers[0][1]


def test_the_server_refuses_wrong_or_unknown_users() -> None:
    server = DigestServer("gw.example.com", b"k" * 32)
    assert server.check(answered(server, DigestClient("fax", "nope")), PASSWORDS.get, NOW) is (
        Verdict.BAD
    )
    assert server.check(answered(server, DigestClient("eve", "s3cret")), PASSWORDS.get, NOW) is (
        Verdict.BAD
    )


def test_an_expired_nonce_with_the_right_password_is_stale() -> None:
    server = DigestServer("gw.example.com", b"k" * 32, nonce_lifetime_s=300)
    request = answered(server, DigestClient("fax", "s3cret"))
    assert server.check(request, PASSWORDS.get, NOW + 301) is Verdict.STALE
    assert server.challenges(NOW, stale=True)[0].stale


def test_nonces_from_elsewhere_are_refused() -> None:
    ours = DigestServer("gw.example.com", b"k" * 32)
    theirs = DigestServer("gw.example.com", b"x" * 32)
    request = answered(theirs, DigestClient("fax", "s3cret"))
    assert ours.check(request, PASSWORDS.get, NOW) is Verdict.BAD
    from_the_future = answered(ours, DigestClient("fax", "s3cret"), now=NOW + 3600)
    assert ours.check(from_the_future, PASSWORDS.get, NOW) is Verdict.BAD


def test_credentials_replayed_on_another_request_are_refused() -> None:
    server = DigestServer("gw.example.com", b"k" * 32)
    request = answered(server, DigestClient("fax", "s3cret"))
    elsewhere = Request("INVITE", "sip:+1900@gw.example.com", request.headers, request.body)
    assert server.check(elsewhere, PASSWORDS.get, NOW) is Verdict.BAD
    as_bye = Request("BYE", INVITE_URI, request.headers.set("CSeq", "2 BYE"))
    assert server.check(as_bye, PASSWORDS.get, NOW) is Verdict.BAD


def test_auth_int_protects_the_body() -> None:
    server = DigestServer("gw.example.com", b"k" * 32)
    challenge = Challenge("gw.example.com", server.challenges(NOW)[0].nonce, Algorithm.SHA256,
                          ("auth-int",))  # fmt: skip
    header = DigestClient("fax", "s3cret").authorize(challenge, "INVITE", INVITE_URI, SDP).header()
    assert server.check(invite(header), PASSWORDS.get, NOW) is Verdict.OK
    assert server.check(invite(header, body=SDP + b"m=x"), PASSWORDS.get, NOW) is Verdict.BAD


def test_a_server_that_allows_only_sha256_refuses_md5() -> None:
    server = DigestServer("gw.example.com", b"k" * 32, algorithms=(Algorithm.SHA256,))
    nonce = server.challenges(NOW)[0].nonce
    md5 = Challenge("gw.example.com", nonce, Algorithm.MD5, ("auth",))
    header = DigestClient("fax", "s3cret").authorize(md5, "INVITE", INVITE_URI).header()
    assert server.check(invite(header), PASSWORDS.get, NOW) is Verdict.BAD


def test_requests_without_credentials_for_our_realm_are_missing() -> None:
    server = DigestServer("gw.example.com", b"k" * 32)
    assert server.check(invite(), PASSWORDS.get, NOW) is Verdict.MISSING
    other = Challenge("elsewhere", "n", Algorithm.SHA256, ("auth",))
    header = DigestClient("fax", "s3cret").authorize(other, "INVITE", INVITE_URI).header()
    assert server.check(invite(header, ("Authorization", "garbage")), PASSWORDS.get, NOW) is (
        Verdict.MISSING
    )


def test_a_proxy_server_reads_proxy_authorization() -> None:
    server = DigestServer("edge", b"k" * 32, proxy=True)
    (challenge, _) = server.challenges(NOW)
    assert challenge.header()[0] == "Proxy-Authenticate"
    header = DigestClient("fax", "s3cret").authorize(challenge, "INVITE", INVITE_URI).header()
    assert header[0] == "Proxy-Authorization"
    assert server.check(invite(header), PASSWORDS.get, NOW) is Verdict.OK
    as_www = ("Authorization", header[1])
    assert server.check(invite(as_www), PASSWORDS.get, NOW) is Verdict.MISSING
