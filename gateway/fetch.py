"""Fetching a fax document from a client's URL (``document.url``) without becoming an SSRF proxy.

The guard sits where a socket is opened, below httpx: every connection, including each redirect
hop, resolves the host itself, refuses it if any address is loopback, private, link-local,
multicast or otherwise not globally routable (unless it lies in ``[fetch] allow_networks``), and
then connects to the checked address, so a second DNS answer cannot swap in another one.
Proxies from the environment are ignored: a proxy would connect on our behalf, unchecked.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass
from email.message import Message
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import httpcore
import httpx

from gateway.config import FetchSettings
from gateway.documents.charsets import charset_of, decode_text
from gateway.documents.inspect import InspectLimits, inspect_binary, sniff, text_document
from gateway.errors import DocumentError
from gateway.models import SourceDocument

MAX_REDIRECTS = 3
USER_AGENT = "fax-gateway (document fetch)"
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class _Refused(Exception):
    """Raised inside httpx's stack; fetch_document turns it into a DocumentError."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def refusal(address: IPAddress, allow: Sequence[IPNetwork] = ()) -> str | None:
    """Why connecting to ``address`` is refused, or None if it is allowed."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped  # ::ffff:127.0.0.1 is 127.0.0.1
    if any(address.version == net.version and address in net for net in allow):
        return None
    for kind, hit in (
        ("loopback", address.is_loopback),
        ("link-local", address.is_link_local),
        ("multicast", address.is_multicast),
        ("unspecified", address.is_unspecified),
        ("private", address.is_private),
    ):
        if hit:
            return kind
    if not address.is_global:
        return "not globally routable"  # shared (CGNAT), reserved, documentation, 6to4 of those
    return None


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network backend with the address check in front of every connect."""

    def __init__(
        self, allow: Sequence[IPNetwork] = (), inner: httpcore.AsyncNetworkBackend | None = None
    ) -> None:
        self.allow = tuple(allow)
        self.inner = inner or httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        addresses = await _resolve(host.strip("[]"), port)
        for address in addresses:
            reason = refusal(address, self.allow)
            if reason is not None:
                shown = host if host.strip("[]") == str(address) else f"{host} ({address})"
                raise _Refused(f"address {shown} is not allowed: {reason}")
        error: Exception = _Refused(f"no address for {host}")
        for address in addresses:
            try:
                return await self.inner.connect_tcp(
                    str(address), port, timeout, local_address, socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                error = exc
        raise error

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise _Refused("unix sockets are not allowed")

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)


async def _resolve(host: str, port: int) -> list[IPAddress]:
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(
            host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
        )
    except (socket.gaierror, UnicodeError) as exc:
        raise _Refused(f"cannot resolve {host}") from exc
    addresses: list[IPAddress] = []
    for _family, _type, _proto, _canon, sockaddr in infos:
        address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        if address not in addresses:
            addresses.append(address)
    return addresses


class _GuardedTransport(httpx.AsyncBaseTransport):
    """httpx over an httpcore pool on the guarded backend, for http and https only."""

    def __init__(self, backend: httpcore.AsyncNetworkBackend) -> None:
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(trust_env=False),
            network_backend=backend,
            max_connections=4,
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.scheme not in ("http", "https"):
            raise _Refused(f"scheme {request.url.scheme!r} is not allowed (http and https only)")
        response = await self._pool.handle_async_request(
            httpcore.Request(
                method=request.method,
                url=httpcore.URL(
                    scheme=request.url.raw_scheme,
                    host=request.url.raw_host,
                    port=request.url.port,
                    target=request.url.raw_path,
                ),
                headers=request.headers.raw,
                content=request.stream,
                extensions=request.extensions,
            )
        )
        return httpx.Response(
            status_code=response.status,
            headers=response.headers,
            stream=_ResponseStream(response),
            extensions=response.extensions,
        )

    async def aclose(self) -> None:
        await self._pool.aclose()


class _ResponseStream(httpx.AsyncByteStream):
    def __init__(self, response: httpcore.Response) -> None:
        self._response = response

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._response.aiter_stream():
            yield chunk

    async def aclose(self) -> None:
        await self._response.aclose()


@dataclass(frozen=True)
class _Request:
    url: str
    method: str
    headers: dict[str, str]
    content: bytes | None

    @property
    def part(self) -> str:
        """The URL as errors name it: without query or credentials, which may be secrets."""
        parts = urlsplit(self.url)
        host = parts.netloc.rpartition("@")[2]
        return f"{parts.scheme}://{host}{parts.path}"


def _parse_request(request: dict[str, Any]) -> _Request:
    url = request.get("url")
    if not isinstance(url, str) or not url:
        raise DocumentError("document", "document.url is missing")
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise DocumentError("document", "document.url must be an http or https URL with a host")
    method = str(request.get("method") or "get").upper()
    if method not in ("GET", "POST"):
        raise DocumentError(url, f"method {method} is not allowed (get or post)")
    headers = {"User-Agent": USER_AGENT}
    for key, header in (("host", "Host"), ("referer", "Referer")):
        if isinstance(request.get(key), str) and request[key]:
            headers[header] = request[key]
    content = None
    if method == "POST":
        content = str(request.get("content") or "").encode("utf-8")
        if isinstance(request.get("content_type"), str) and request["content_type"]:
            headers["Content-Type"] = request["content_type"]
    return _Request(url, method, headers, content)


def parse_allow_networks(networks: Iterable[str]) -> tuple[IPNetwork, ...]:
    return tuple(ipaddress.ip_network(net, strict=False) for net in networks)


async def fetch_document(
    request: dict[str, Any],
    settings: FetchSettings,
    *,
    network: httpcore.AsyncNetworkBackend | None = None,
) -> SourceDocument:
    """Fetch ``request`` (a job's ``document``: url, method, host, referer, content_type,
    content) and return it as a checked document; DocumentError says why not.

    ``network`` replaces the socket layer under the guard (tests record connects with it).
    """
    spec = _parse_request(request)
    backend = GuardedBackend(parse_allow_networks(settings.allow_networks), network)
    try:
        async with asyncio.timeout(settings.timeout_s):
            data, filename, content_type = await _download(spec, settings, backend)
    except TimeoutError as exc:
        raise DocumentError(spec.part, f"timed out after {settings.timeout_s:g} s") from exc
    # Counting PDF pages parses the file: CPU work, kept off the event loop.
    return await asyncio.to_thread(_inspect, data, filename, content_type, spec.part)


async def _download(
    spec: _Request, settings: FetchSettings, backend: GuardedBackend
) -> tuple[bytes, str, str]:
    async with httpx.AsyncClient(
        transport=_GuardedTransport(backend),
        follow_redirects=True,
        max_redirects=MAX_REDIRECTS,
        timeout=settings.timeout_s,
        trust_env=False,
    ) as client:
        try:
            outgoing = client.build_request(
                spec.method, spec.url, headers=spec.headers, content=spec.content
            )
            response = await client.send(outgoing, stream=True)
            try:
                return await _read_body(response, spec, settings.max_bytes)
            finally:
                await response.aclose()
        except _Refused as exc:
            raise DocumentError(spec.part, exc.reason) from exc
        except httpx.TooManyRedirects as exc:
            raise DocumentError(spec.part, f"more than {MAX_REDIRECTS} redirects") from exc
        except (httpx.TimeoutException, httpcore.TimeoutException) as exc:
            raise DocumentError(spec.part, f"timed out after {settings.timeout_s:g} s") from exc
        except (httpx.HTTPError, httpcore.NetworkError, httpcore.ProtocolError) as exc:
            raise DocumentError(spec.part, f"cannot fetch: {exc or type(exc).__name__}") from exc
        except httpcore.UnsupportedProtocol as exc:
            raise DocumentError(spec.part, f"unsupported URL: {exc}") from exc


async def _read_body(
    response: httpx.Response, spec: _Request, max_bytes: int
) -> tuple[bytes, str, str]:
    if response.status_code >= 300:
        raise DocumentError(
            spec.part, f"the server answered HTTP {response.status_code} {response.reason_phrase}"
        )
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise DocumentError(spec.part, f"document is larger than {max_bytes} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():  # decoded: a gzip bomb is cut off here too
        size += len(chunk)
        if size > max_bytes:
            raise DocumentError(spec.part, f"document is larger than {max_bytes} bytes")
        chunks.append(chunk)
    content_type = response.headers.get("content-type", "")
    return b"".join(chunks), _filename(response), content_type


def _filename(response: httpx.Response) -> str:
    disposition = response.headers.get("content-disposition")
    name: str | None = None
    if disposition:
        message = Message()
        message["content-disposition"] = disposition
        name = message.get_filename()
    if not name:
        name = PurePosixPath(response.url.path).name
    name = PurePosixPath(name.replace("\\", "/")).name.strip()
    return name[:120] or "document"


def _inspect(data: bytes, filename: str, content_type: str, part: str) -> SourceDocument:
    try:
        if sniff(data) is None and content_type.lower().startswith("text/plain"):
            return text_document(decode_text(data, charset_of(content_type)), filename)
        return inspect_binary(data, filename, InspectLimits())
    except DocumentError as exc:
        raise DocumentError(part, exc.reason) from exc
