"""A document server for the fetch tests: on 127.0.0.1, served by our own serve_http."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from gateway.config import FetchSettings
from tests.builders import pdf_bytes

PDF = pdf_bytes(2)
# Fetch settings that admit the local server (and only it) past the SSRF guard.
LOCAL = FetchSettings(allow_networks=("127.0.0.1/32",), timeout_s=5, max_bytes=1_000_000)


def doc_server_app() -> Starlette:
    async def doc(request: Request) -> Response:
        return Response(
            PDF,
            media_type="application/pdf",
            headers={"Content-Disposition": 'attachment; filename="letter.pdf"'},
        )

    async def redirect(request: Request) -> Response:
        return Response(status_code=302, headers={"Location": request.query_params["to"]})

    async def chain(request: Request) -> Response:
        n = int(request.path_params["n"])
        return (
            await doc(request)
            if n == 0
            else Response(status_code=301, headers={"Location": f"/chain/{n - 1}"})
        )

    async def big(request: Request) -> Response:
        return Response(b"%PDF-" + b"0" * 5000, media_type="application/pdf")

    async def streamed(request: Request) -> StreamingResponse:
        async def body() -> AsyncIterator[bytes]:
            for _ in range(10):
                yield b"0" * 1000

        return StreamingResponse(body(), media_type="application/pdf")

    async def slow(request: Request) -> Response:
        await asyncio.sleep(2)
        return await doc(request)

    async def status(request: Request) -> Response:
        return Response(b"nope", status_code=int(request.path_params["code"]))

    async def html(request: Request) -> Response:
        return Response(b"<html>hi</html>", media_type="text/html")

    async def text(request: Request) -> Response:
        return Response("Please fax this note.\n", media_type="text/plain")

    async def russian(request: Request) -> Response:
        body = "Пожалуйста, отправьте факс.\n".encode("cp1251")
        return Response(body, headers={"content-type": "text/plain; charset=windows-1251"})

    async def echo(request: Request) -> Response:
        ok = (
            request.method == "POST"
            and await request.body() == b"id=7&kind=invoice"
            and request.headers.get("content-type") == "application/x-www-form-urlencoded"
            and request.headers.get("host") == "docs.example.com"
            and request.headers.get("referer") == "https://portal.example/"
        )
        return await doc(request) if ok else Response(b"bad request", status_code=400)

    return Starlette(
        routes=[
            Route("/doc.pdf", doc),
            Route("/redirect", redirect),
            Route("/chain/{n}", chain),
            Route("/big", big),
            Route("/streamed", streamed),
            Route("/slow", slow),
            Route("/status/{code}", status),
            Route("/page.html", html),
            Route("/note", text),
            Route("/note-cp1251", russian),
            Route("/echo", echo, methods=["POST"]),
        ]
    )
