"""The document.url fetcher and its SSRF guard.

No test sends a packet off this machine: blocked addresses must be refused before any connect,
and ``Recorder`` (the socket layer under the guard) fails the test if asked to connect anywhere
but loopback. Allowed fetches go to a local server, admitted with ``allow_networks``.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from typing import Any

import httpcore
import pytest

from gateway.config import FetchSettings
from gateway.errors import DocumentError
from gateway.fetch import fetch_document, refusal
from gateway.models import DocumentKind
from tests.api.docserver import LOCAL, PDF


class Recorder(httpcore.AsyncNetworkBackend):
    """The real socket layer, refusing (and recording) any connect that leaves the host."""

    def __init__(self) -> None:
        self.inner = httpcore.AnyIOBackend()
        self.connects: list[str] = []

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        self.connects.append(host)
        assert ipaddress.ip_address(host).is_loopback, f"test tried to connect to {host}"
        return await self.inner.connect_tcp(host, port, timeout, local_address, socket_options)

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)


async def fetch(url: str, settings: FetchSettings = LOCAL, **request: Any) -> tuple[Any, Recorder]:
    recorder = Recorder()
    result = await fetch_document({"url": url, **request}, settings, network=recorder)
    return result, recorder


async def refused(
    url: str, settings: FetchSettings = LOCAL, **request: Any
) -> tuple[str, Recorder]:
    recorder = Recorder()
    with pytest.raises(DocumentError) as caught:
        await fetch_document({"url": url, **request}, settings, network=recorder)
    return caught.value.reason, recorder


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", "loopback"),
        ("127.8.9.10", "loopback"),
        ("::1", "loopback"),
        ("::ffff:127.0.0.1", "loopback"),
        ("10.0.0.1", "private"),
        ("172.16.5.4", "private"),
        ("192.168.1.1", "private"),
        ("fc00::1", "private"),
        ("169.254.169.254", "link-local"),
        ("fe80::1", "link-local"),
        ("224.0.0.1", "multicast"),
        ("ff02::1", "multicast"),
        ("0.0.0.0", "unspecified"),
        ("100.64.0.1", "not globally routable"),
        ("192.0.2.1", "private"),
        ("93.184.216.34", None),
        ("2606:4700::1111", None),
    ],
)
def test_refusal(address: str, reason: str | None) -> None:
    assert refusal(ipaddress.ip_address(address)) == reason


def test_allow_networks_exempt_exactly_their_addresses() -> None:
    allow = (ipaddress.ip_network("10.1.0.0/16"),)
    assert refusal(ipaddress.ip_address("10.1.2.3"), allow) is None
    assert refusal(ipaddress.ip_address("10.2.0.1"), allow) == "private"


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/doc.pdf",
        "http://10.0.0.1/doc.pdf",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]/doc.pdf",
        "https://[::ffff:127.0.0.1]/doc.pdf",
        "http://localhost/doc.pdf",
        "http://0x7f.1/doc.pdf",
        "http://2130706433/doc.pdf",
        "http://[fe80::1]:8080/",
    ],
)
async def test_blocked_before_connecting(url: str) -> None:
    reason, recorder = await refused(url, FetchSettings())
    assert "not allowed" in reason
    assert recorder.connects == []


@pytest.mark.parametrize(
    "url", ["ftp://127.0.0.1/x.pdf", "file:///etc/passwd", "gopher://x/", "http:///nohost"]
)
async def test_only_http_and_https(url: str) -> None:
    with pytest.raises(DocumentError, match="http or https"):
        await fetch_document({"url": url}, FetchSettings())


async def test_allowed_fetch(docs: str) -> None:
    document, recorder = await fetch(f"{docs}/doc.pdf?token=s3cret")
    assert document.kind is DocumentKind.PDF and document.pages == 2
    assert document.data == PDF and document.filename == "letter.pdf"
    assert recorder.connects == ["127.0.0.1"]


async def test_the_guard_applies_without_allow_networks(docs: str) -> None:
    reason, recorder = await refused(f"{docs}/doc.pdf", FetchSettings())
    assert "loopback" in reason and recorder.connects == []


@pytest.mark.parametrize(
    "target",
    [
        "http://10.0.0.1/doc.pdf",
        "http://169.254.169.254/latest/meta-data/iam/",
        "http://[::1]:{port}/doc.pdf",
        "http://127.0.0.2:{port}/doc.pdf",
        "ftp://127.0.0.1/doc.pdf",
    ],
)
async def test_every_redirect_is_checked_again(docs: str, target: str) -> None:
    port = docs.rsplit(":", 1)[1]
    reason, recorder = await refused(f"{docs}/redirect?to={target.format(port=port)}")
    assert "not allowed" in reason or "'ftp'" in reason, reason
    assert recorder.connects == ["127.0.0.1"]  # the first hop only


async def test_redirects_are_followed_up_to_three(docs: str) -> None:
    document, _ = await fetch(f"{docs}/chain/3")
    assert document.pages == 2
    reason, _ = await refused(f"{docs}/chain/4")
    assert reason == "more than 3 redirects"


async def test_size_cap(docs: str) -> None:
    small = FetchSettings(allow_networks=("127.0.0.1/32",), max_bytes=4000)
    for path in ("/big", "/streamed"):
        reason, _ = await refused(docs + path, small)
        assert reason == "document is larger than 4000 bytes"


async def test_timeout(docs: str) -> None:
    quick = FetchSettings(allow_networks=("127.0.0.1/32",), timeout_s=0.3)
    reason, _ = await refused(f"{docs}/slow", quick)
    assert reason == "timed out after 0.3 s"


async def test_http_errors_and_unfaxable_content(docs: str) -> None:
    reason, _ = await refused(f"{docs}/status/404")
    assert reason.startswith("the server answered HTTP 404")
    reason, _ = await refused(f"{docs}/status/500")
    assert "HTTP 500" in reason
    reason, _ = await refused(f"{docs}/page.html")
    assert "not a PDF" in reason
    note, _ = await fetch(f"{docs}/note")
    assert note.kind is DocumentKind.TEXT and note.data == b"Please fax this note.\n"


async def test_text_in_the_charset_the_server_names(docs: str) -> None:
    note, _ = await fetch(f"{docs}/note-cp1251")
    assert note.data.decode("utf-8") == "Пожалуйста, отправьте факс.\n"


async def test_post_with_kazoo_document_fields(docs: str) -> None:
    document, _ = await fetch(
        f"{docs}/echo",
        method="post",
        content="id=7&kind=invoice",
        content_type="application/x-www-form-urlencoded",
        host="docs.example.com",
        referer="https://portal.example/",
    )
    assert document.kind is DocumentKind.PDF


async def test_error_names_the_url_without_its_query(docs: str) -> None:
    with pytest.raises(DocumentError) as caught:
        await fetch_document({"url": f"{docs}/status/403?sig=s3cret"}, LOCAL, network=Recorder())
    assert caught.value.part == f"{docs}/status/403"
    assert "s3cret" not in str(caught.value)


async def test_environment_proxies_are_ignored(docs: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # A proxy would connect on our behalf, past the guard; the fetcher never uses one.
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "all_proxy"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")
    document, recorder = await fetch(f"{docs}/doc.pdf")
    assert document.pages == 2 and recorder.connects == ["127.0.0.1"]


async def test_connection_refused_is_a_document_error() -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    reason, recorder = await refused(f"http://127.0.0.1:{port}/doc.pdf")
    assert reason.startswith("cannot fetch") and recorder.connects == ["127.0.0.1"]
