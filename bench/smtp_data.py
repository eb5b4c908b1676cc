"""DATA reading benchmark (issue 11): the bulk reader against aiosmtpd's own line reader.

One 25 MB message (base64-like 76-byte lines) is sent over a real socket, its lines ending in
CRLF, then in bare LF, to three servers in this process: aiosmtpd's own SMTP (the baseline),
``BulkDataSMTP`` with ``bare_lf = "accept"`` (bare LF lines become CRLF), and with
``bare_lf = "reject"``. Prints the time from the DATA command to its reply for each (best of
``--repeat``) and the ratio to the baseline. aiosmtpd 1.4.6 ends lines at CRLF only, so it refuses
the bare LF message (500, line too long, after draining it unread); the baseline is
aiosmtpd reading the CRLF message.

    .venv/bin/python bench/smtp_data.py [--megabytes 25] [--repeat 3]
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import time
from collections.abc import Callable

from aiosmtpd.smtp import SMTP, Envelope, Session

from gateway.smtp.data import BulkDataSMTP

LINE = b"QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWZnaGlqa2xtbm9wcXJzdHV2d3h5ejAxMjM0NTY3"[:76]
LIMIT = 65536  # the gateway's line limit, also the stream's buffer limit


class Sink:
    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        return "250 OK"


class Stock(SMTP):
    line_length_limit = LIMIT


class Accepting(BulkDataSMTP):
    line_length_limit = LIMIT


class Rejecting(BulkDataSMTP):
    line_length_limit = LIMIT
    bare_lf = "reject"


def send(port: int, data: bytes) -> tuple[float, bytes]:
    """Seconds from DATA's 354 to the reply after the data, and that reply."""
    with socket.create_connection(("127.0.0.1", port), timeout=120) as sock:
        file = sock.makefile("rb")
        file.readline()
        sock.sendall(b"HELO b\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\nDATA\r\n")
        for _ in range(4):
            file.readline()
        start = time.perf_counter()
        sock.sendall(data + b"\r\n.\r\n")  # CRLF "." CRLF even after a bare LF line
        reply = file.readline()
        seconds = time.perf_counter() - start
        sock.sendall(b"QUIT\r\n")
        return seconds, reply.strip()


async def measure(cls: type[SMTP], data: bytes, repeat: int) -> tuple[float, bytes]:
    loop = asyncio.get_running_loop()
    factory: Callable[[], SMTP] = lambda: cls(Sink(), data_size_limit=len(data) + 1024)  # noqa: E731
    server = await loop.create_server(factory, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        runs = [await asyncio.to_thread(send, port, data) for _ in range(repeat)]
    finally:
        server.close()
        await server.wait_closed()
    return min(runs)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--megabytes", type=float, default=25)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    count = int(args.megabytes * 1_000_000) // (len(LINE) + 2)
    # The baseline: aiosmtpd reading the message with CRLF lines, as it accepts it.
    base, _ = await measure(Stock, (LINE + b"\r\n") * count, args.repeat)
    servers = (("aiosmtpd", Stock), ("bulk accept", Accepting), ("bulk reject", Rejecting))
    for name, eol in (("CRLF", b"\r\n"), ("bare LF", b"\n")):
        data = (LINE + eol) * count
        print(f"{name} lines, {len(data) / 1e6:.1f} MB:")
        for label, cls in servers:
            seconds, reply = await measure(cls, data, args.repeat)
            if cls is Stock and eol == b"\r\n":
                seconds = base = min(base, seconds)
            print(
                f"  {label:12} {seconds * 1000:8.1f} ms  {base / seconds:5.1f}x aiosmtpd on CRLF"
                f"  {reply.decode()[:70]}"
            )


if __name__ == "__main__":
    asyncio.run(main())
