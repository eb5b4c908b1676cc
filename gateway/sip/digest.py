"""HTTP Digest authentication as SIP uses it (RFC 2617, RFC 7616, RFC 8760), both ends. Pure.

The client side answers a 401/407: ``pick_challenge`` chooses among the offered challenges,
``DigestClient.authorize`` computes the credentials (cnonce, nc counted per nonce). The server
side, for tests and inbound checks, issues stateless nonces and checks credentials in constant
time. Passwords and usernames are hashed as UTF-8 (RFC 7616 §4; RFC 2617 left it open).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from gateway.errors import GatewayError
from gateway.sip.headers import AuthParams, SipParseError
from gateway.sip.message import Request, Response


class DigestError(GatewayError):
    """A challenge or credentials that cannot be read or used, with the reason."""


class Algorithm(StrEnum):
    MD5 = "MD5"
    MD5_SESS = "MD5-sess"
    SHA256 = "SHA-256"
    SHA256_SESS = "SHA-256-sess"
    SHA512_256 = "SHA-512-256"
    SHA512_256_SESS = "SHA-512-256-sess"

    @property
    def session(self) -> bool:
        return self.endswith("-sess")

    @property
    def strength(self) -> int:
        """Our preference among offered challenges: stronger hashes first."""
        return {"MD5": 0, "SHA-256": 1, "SHA-512-256": 2}[self.removesuffix("-sess")]

    def hash(self, data: bytes) -> str:
        name = {"MD5": "md5", "SHA-256": "sha256", "SHA-512-256": "sha512_256"}
        return hashlib.new(name[self.removesuffix("-sess")], data).hexdigest()

    @classmethod
    def named(cls, text: str | None) -> Algorithm:
        """The algorithm a challenge names; an absent one means MD5 (RFC 2617 §3.2.1)."""
        if text is None:
            return cls.MD5
        for algorithm in cls:
            if algorithm.lower() == text.lower():
                return algorithm
        raise DigestError(f"unsupported digest algorithm {text[:30]!r}")


_QOPS = ("auth", "auth-int")


@dataclass(frozen=True)
class Challenge:
    """One Digest challenge from WWW-Authenticate (401) or Proxy-Authenticate (407)."""

    realm: str
    nonce: str
    algorithm: Algorithm = Algorithm.MD5
    qop: tuple[str, ...] = ()  # offered, lower case; () is RFC 2069 compatibility mode
    opaque: str | None = None
    stale: bool = False
    proxy: bool = False

    @property
    def header_name(self) -> str:
        return "Proxy-Authenticate" if self.proxy else "WWW-Authenticate"

    def header(self) -> tuple[str, str]:
        params = [("realm", self.realm), ("nonce", self.nonce)]
        if self.opaque is not None:
            params.append(("opaque", self.opaque))
        params.append(("algorithm", self.algorithm.value))
        if self.qop:
            params.append(("qop", ",".join(self.qop)))
        if self.stale:
            params.append(("stale", "TRUE"))
        value = AuthParams("Digest", tuple(params)).to_string(bare=("algorithm", "stale"))
        return self.header_name, value


def parse_challenge(value: str, *, proxy: bool = False) -> Challenge:
    params = _auth_params(value)
    realm, nonce = params.get("realm"), params.get("nonce")
    if realm is None or nonce is None:
        raise DigestError("challenge without realm or nonce")
    algorithm = Algorithm.named(params.get("algorithm"))
    qop_text = params.get("qop")
    offered = tuple(q.strip().lower() for q in (qop_text or "").split(",") if q.strip())
    qop = tuple(q for q in offered if q in _QOPS)
    if offered and not qop:
        raise DigestError(f"no supported qop in {qop_text!r}")
    if algorithm.session and not qop:  # the session key needs a cnonce, sent only with qop
        raise DigestError(f"{algorithm} challenge without qop")
    stale = (params.get("stale") or "").lower() == "true"
    return Challenge(realm, nonce, algorithm, qop, params.get("opaque"), stale, proxy)


def pick_challenge(response: Response) -> Challenge | None:
    """The challenge to answer: the strongest algorithm, the topmost among equals.

    RFC 8760 §2.4 says topmost "unless a local policy dictates otherwise"; ours refuses a
    downgrade to MD5 when the server also offers SHA-256. Challenges we cannot use are
    skipped; None when none is left."""
    usable: list[Challenge] = []
    for name, proxy in (("WWW-Authenticate", False), ("Proxy-Authenticate", True)):
        for value in response.headers.get_all(name):
            try:
                usable.append(parse_challenge(value, proxy=proxy))
            except DigestError:
                continue
    return max(usable, key=lambda challenge: challenge.algorithm.strength, default=None)


@dataclass(frozen=True)
class Credentials:
    """What an Authorization or Proxy-Authorization header carries."""

    username: str
    realm: str
    nonce: str
    uri: str
    response: str
    algorithm: Algorithm = Algorithm.MD5
    qop: str | None = None
    cnonce: str | None = None
    nc: int | None = None
    opaque: str | None = None
    proxy: bool = False

    @property
    def header_name(self) -> str:
        return "Proxy-Authorization" if self.proxy else "Authorization"

    def header(self) -> tuple[str, str]:
        params = [
            ("username", self.username),
            ("realm", self.realm),
            ("nonce", self.nonce),
            ("uri", self.uri),
            ("response", self.response),
            ("algorithm", self.algorithm.value),
        ]
        optional = [("cnonce", self.cnonce), ("opaque", self.opaque), ("qop", self.qop)]
        params += [(name, value) for name, value in optional if value is not None]
        if self.nc is not None:
            params.append(("nc", f"{self.nc:08x}"))
        # RFC 7616 §3.4: algorithm, qop and nc are tokens; quoting them breaks some servers.
        bare = ("algorithm", "qop", "nc")
        return self.header_name, AuthParams("Digest", tuple(params)).to_string(bare=bare)

    @classmethod
    def parse(cls, value: str, *, proxy: bool = False) -> Credentials:
        params = _auth_params(value)
        required = [params.get(name) for name in ("username", "realm", "nonce", "uri", "response")]
        username, realm, nonce, uri, response = required
        if username is None or realm is None or nonce is None or uri is None or response is None:
            raise DigestError("credentials without username, realm, nonce, uri or response")
        qop, cnonce, nc_text = params.get("qop"), params.get("cnonce"), params.get("nc")
        algorithm = Algorithm.named(params.get("algorithm"))
        if qop is not None and qop.lower() not in _QOPS:
            raise DigestError(f"unsupported qop {qop[:20]!r}")
        if qop is not None and (cnonce is None or nc_text is None):
            raise DigestError("qop without cnonce or nc")
        if nc_text is not None and not re.fullmatch(r"[0-9A-Fa-f]{8}", nc_text):
            raise DigestError("bad nc")
        if algorithm.session and cnonce is None:
            raise DigestError(f"{algorithm} without cnonce")
        nc = None if nc_text is None else int(nc_text, 16)
        qop = None if qop is None else qop.lower()
        opaque = params.get("opaque")
        return cls(username, realm, nonce, uri, response, algorithm, qop, cnonce, nc, opaque, proxy)


def _auth_params(value: str) -> AuthParams:
    try:
        params = AuthParams.parse(value)
    except SipParseError as exc:
        raise DigestError(exc.reason) from None
    if params.scheme.lower() != "digest":
        raise DigestError(f"not a Digest header: {params.scheme[:20]!r}")
    return params


def compute_response(
    *,
    algorithm: Algorithm,
    username: str,
    password: str,
    realm: str,
    nonce: str,
    method: str,
    uri: str,
    qop: str | None = None,
    cnonce: str | None = None,
    nc: int | None = None,
    body: bytes = b"",
) -> str:
    """The request-digest of RFC 7616 §3.4.1 (RFC 2617 §3.2.2.1 when qop is None)."""

    if algorithm.session and cnonce is None:
        raise DigestError(f"{algorithm} needs a cnonce")

    def h(text: str) -> str:
        return algorithm.hash(text.encode())

    ha1 = h(f"{username}:{realm}:{password}")
    if algorithm.session:
        ha1 = h(f"{ha1}:{nonce}:{cnonce}")
    a2 = f"{method}:{uri}:{algorithm.hash(body)}" if qop == "auth-int" else f"{method}:{uri}"
    if qop is None:
        return h(f"{ha1}:{nonce}:{h(a2)}")
    return h(f"{ha1}:{nonce}:{nc or 0:08x}:{cnonce}:{qop}:{h(a2)}")


def _new_cnonce() -> str:
    return secrets.token_hex(16)


class DigestClient:
    """Answers challenges for one account; nc counts the requests made under each nonce."""

    _REMEMBERED_NONCES = 64

    def __init__(
        self, username: str, password: str, *, new_cnonce: Callable[[], str] = _new_cnonce
    ) -> None:
        self.username = username
        self._password = password
        self._new_cnonce = new_cnonce
        self._counts: OrderedDict[str, int] = OrderedDict()

    def authorize(
        self,
        challenge: Challenge,
        method: str,
        uri: str,
        body: bytes = b"",
        *,
        qop: str | None = None,
    ) -> Credentials:
        """Credentials for ``method uri`` (``body`` matters for auth-int only).

        ``qop`` is chosen from the offered ones: auth if offered (every server does it),
        else auth-int."""
        if qop is None and challenge.qop:
            qop = "auth" if "auth" in challenge.qop else challenge.qop[0]
        elif qop is not None and qop not in challenge.qop:
            raise DigestError(f"qop {qop!r} not offered")
        cnonce = nc = None
        if qop is not None:
            cnonce = self._new_cnonce()
            nc = self._counts.pop(challenge.nonce, 0) + 1
            self._counts[challenge.nonce] = nc
            while len(self._counts) > self._REMEMBERED_NONCES:
                self._counts.popitem(last=False)
        response = compute_response(
            algorithm=challenge.algorithm,
            username=self.username,
            password=self._password,
            realm=challenge.realm,
            nonce=challenge.nonce,
            method=method,
            uri=uri,
            qop=qop,
            cnonce=cnonce,
            nc=nc,
            body=body,
        )
        return Credentials(
            self.username, challenge.realm, challenge.nonce, uri, response,
            challenge.algorithm, qop, cnonce, nc, challenge.opaque, challenge.proxy,
        )  # fmt: skip


def verify(credentials: Credentials, *, password: str, method: str, body: bytes = b"") -> bool:
    """Whether the credentials' response is right for this password and request, compared in
    constant time. Realm, nonce freshness and uri are the caller's checks (see DigestServer)."""
    expected = compute_response(
        algorithm=credentials.algorithm,
        username=credentials.username,
        password=password,
        realm=credentials.realm,
        nonce=credentials.nonce,
        method=method,
        uri=credentials.uri,
        qop=credentials.qop,
        cnonce=credentials.cnonce,
        nc=credentials.nc,
        body=body,
    )
    return hmac.compare_digest(expected.encode(), credentials.response.lower().encode())


class Verdict(StrEnum):
    OK = "ok"
    MISSING = "missing"  # no credentials for our realm: challenge
    STALE = "stale"  # right password, expired nonce: challenge again with stale=TRUE
    BAD = "bad"


class DigestServer:
    """Challenges requests for one realm and checks the answers.

    Nonces are stateless (issue time and an HMAC of it under ``secret``), so any node sharing
    the secret can check them. Not done: nc replay tracking, which needs per-nonce state."""

    def __init__(
        self,
        realm: str,
        secret: bytes,
        *,
        algorithms: tuple[Algorithm, ...] = (Algorithm.SHA256, Algorithm.MD5),
        nonce_lifetime_s: float = 300.0,
        proxy: bool = False,
    ) -> None:
        self.realm = realm
        self._secret = secret
        self.algorithms = algorithms
        self._lifetime = nonce_lifetime_s
        self.proxy = proxy

    def challenges(self, now: float, *, stale: bool = False) -> list[Challenge]:
        """One challenge per algorithm, most preferred first (RFC 8760 §2.4), one nonce."""
        nonce = self._issue(now)
        return [
            Challenge(self.realm, nonce, algorithm, ("auth",), stale=stale, proxy=self.proxy)
            for algorithm in self.algorithms
        ]

    def check(
        self, request: Request, password_for: Callable[[str], str | None], now: float
    ) -> Verdict:
        """Check the request's credentials for our realm; ``password_for(username)``."""
        header = "Proxy-Authorization" if self.proxy else "Authorization"
        for value in request.headers.get_all(header):
            try:
                credentials = Credentials.parse(value, proxy=self.proxy)
            except DigestError:
                continue
            if credentials.realm == self.realm:
                return self._check(credentials, request, password_for, now)
        return Verdict.MISSING

    def _check(
        self,
        credentials: Credentials,
        request: Request,
        password_for: Callable[[str], str | None],
        now: float,
    ) -> Verdict:
        password = password_for(credentials.username)
        nonce_age = self._age(credentials.nonce, now)
        if (
            password is None
            or nonce_age is None
            or credentials.algorithm not in self.algorithms
            or credentials.uri != request.uri  # RFC 2617 §3.2.2.5
            or not verify(credentials, password=password, method=request.method, body=request.body)
        ):
            return Verdict.BAD
        return Verdict.STALE if nonce_age > self._lifetime else Verdict.OK

    def _issue(self, now: float) -> str:
        stamp = f"{int(now):x}.{secrets.token_hex(8)}"
        return f"{stamp}.{self._mac(stamp)}"

    def _mac(self, stamp: str) -> str:
        return hmac.new(self._secret, stamp.encode(), hashlib.sha256).hexdigest()[:32]

    def _age(self, nonce: str, now: float) -> float | None:
        """Seconds since we issued ``nonce``; None if we did not issue it."""
        stamp, _, mac = nonce.rpartition(".")
        issued = stamp.partition(".")[0]
        if not re.fullmatch(r"[0-9a-f]{1,12}", issued) or not hmac.compare_digest(
            mac.encode(), self._mac(stamp).encode()
        ):
            return None
        age = now - int(issued, 16)
        return None if age < -5 else age  # a nonce from the future was not ours
