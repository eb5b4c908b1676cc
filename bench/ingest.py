"""Ingest benchmark (issue 2): the gateway's SMTP intake against a bare aiosmtpd sink.

Both servers get the same message (a one-page PDF attachment): by default 2,000 messages over
20 concurrent connections, several messages per connection, sent by Postfix's ``smtp-source``
when it is installed, else by a small asyncio SMTP client in a separate process. The gateway
is a real ``IntakeHandler`` + ``SmtpServer`` on a temporary SQLite file with
``synchronous=full``: each 250 follows a durable commit of the job, its document and its
smtplog row.

    .venv/bin/python bench/ingest.py [--messages 2000] [--connections 20]
                                     [--client auto|smtp-source|python] [--profile FILE]

Prints messages/s for both and their ratio (goal: gateway >= 0.5 x sink). Results and the
exact command are recorded in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiosmtpd.smtp import SMTP, Envelope, Session
from PIL import Image, ImageDraw

from gateway.config import SmtpSettings
from gateway.models import Faxbox
from gateway.smtp.handler import IntakeHandler
from gateway.smtp.server import SmtpServer
from gateway.store import SqliteStore
from gateway.store.database import Database

DOMAIN = "fax.bench"
SENDER = "bench@example.com"
RECIPIENT = f"+14155550100@{DOMAIN}"
SMTP_SOURCE = shutil.which("smtp-source") or (
    "/usr/sbin/smtp-source" if os.access("/usr/sbin/smtp-source", os.X_OK) else None
)


def one_page_pdf() -> bytes:
    """A letter page of text at 150 dpi, bilevel as a fax scan (about 18 KB)."""
    page = Image.new("L", (1275, 1650), 255)
    draw = ImageDraw.Draw(page)
    for row in range(60):
        draw.text(
            (120, 120 + row * 24), f"Line {row:02d}: invoice 4711, 3 pallets, net 30 days.", fill=0
        )
    buf = io.BytesIO()
    page.convert("1").save(buf, "PDF", resolution=150)  # bilevel, like a fax scan
    return buf.getvalue()


def message_bytes(pdf: bytes) -> bytes:
    # No Message-ID: smtp-source sends this very file every time, and the gateway would
    # (rightly) answer repeats of one Message-ID from its idempotency check without a new job.
    msg = EmailMessage()
    msg["From"] = SENDER
    msg["To"] = RECIPIENT
    msg["Subject"] = "Invoice 4711"
    msg.set_content("Please fax the attached invoice.\n")
    msg.add_attachment(pdf, maintype="application", subtype="pdf", filename="invoice.pdf")
    return msg.as_bytes().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


# -- servers -----------------------------------------------------------------------------------


class Sink:
    """The bare aiosmtpd baseline: every message gets 250 and is dropped."""

    def __init__(self) -> None:
        self.count = 0

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.count += 1
        return "250 OK"


@dataclass
class Running:
    port: int
    accepted: Callable[[], Any]
    close: Callable[[], Any]


async def start_sink() -> Running:
    sink = Sink()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(sink, hostname="sink.bench", data_size_limit=25 * 1024 * 1024),
        "127.0.0.1",
        0,
    )

    async def close() -> None:
        server.close()
        await server.wait_closed()

    async def accepted() -> int:
        return sink.count

    return Running(server.sockets[0].getsockname()[1], accepted, close)


async def start_gateway(folder: Path, connections: int, synchronous: str = "full") -> Running:
    store = SqliteStore(Database(folder / "bench.sqlite3", synchronous))
    await store.open()
    account, _, _ = await store.create_account("bench")
    await store.create_faxbox(
        Faxbox(
            id="",
            account_id=account.id,
            name="bench",
            smtp_email_address="",
            custom_smtp_email_address=DOMAIN,
            caller_id="+14155550199",
            smtp_permission_list=("re:.*",),
        ),
        DOMAIN,
    )
    settings = SmtpSettings(
        host="127.0.0.1", port=0, hostname="gateway.bench", max_sessions=connections * 2
    )
    server = SmtpServer(IntakeHandler(store, settings), settings)
    port = await server.start()

    async def close() -> None:
        await server.close()
        await store.close()

    async def accepted() -> int:
        row = await store.database.fetchone("SELECT count(*) FROM faxes")
        count = int(row[0]) if row else 0
        commits = store._intake_commits.commits
        print(f"         {commits} group commits ({count / max(1, commits):.1f} messages each)")
        return count

    return Running(port, accepted, close)


# -- clients -----------------------------------------------------------------------------------


async def run_smtp_source(port: int, messages: int, connections: int, file: Path) -> None:
    assert SMTP_SOURCE is not None
    process = await asyncio.create_subprocess_exec(
        SMTP_SOURCE,
        "-d",  # several messages per connection
        "-s", str(connections),
        "-m", str(messages),
        "-f", SENDER,
        "-t", RECIPIENT,
        "-F", str(file),
        "-M", "client.bench",
        f"127.0.0.1:{port}",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await process.communicate()
    if process.returncode != 0:
        raise SystemExit(f"smtp-source failed ({process.returncode}): {err.decode()}{out.decode()}")


async def run_python_client(port: int, messages: int, connections: int, file: Path) -> None:
    """The same client load from a separate process (so it does not share our GIL)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--client-process",
        str(port), str(messages), str(connections), str(file),
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, err = await process.communicate()
    if process.returncode != 0:
        raise SystemExit(f"python client failed: {err.decode()}")


async def client_process(port: int, messages: int, connections: int, data: bytes) -> None:
    """``connections`` sessions share ``messages``; each sends until the pool is empty."""
    remaining = [messages]
    body = data.replace(b"\r\n.", b"\r\n..") + b".\r\n"

    async def session() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)

        async def reply() -> bytes:
            while True:
                line = await reader.readline()
                if line[3:4] != b"-":
                    return line

        async def command(line: bytes, expect: bytes) -> None:
            writer.write(line)
            answer = await reply()
            if not answer.startswith(expect):
                raise SystemExit(f"{line!r} -> {answer!r}")

        await reply()
        await command(b"EHLO client.bench\r\n", b"250")
        while remaining[0] > 0:
            remaining[0] -= 1
            await command(f"MAIL FROM:<{SENDER}>\r\n".encode(), b"250")
            await command(f"RCPT TO:<{RECIPIENT}>\r\n".encode(), b"250")
            await command(b"DATA\r\n", b"354")
            await command(body, b"250")
        await command(b"QUIT\r\n", b"221")
        writer.close()
        await writer.wait_closed()

    await asyncio.gather(*(session() for _ in range(connections)))


# -- the benchmark -------------------------------------------------------------------------------


async def measure(
    name: str, running: Running, client: str, messages: int, connections: int, file: Path
) -> float:
    run = run_smtp_source if client == "smtp-source" else run_python_client
    cpu = time.process_time()
    started = time.perf_counter()
    await run(running.port, messages, connections, file)
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu  # the server's CPU (all its threads), not the client's
    accepted = await running.accepted()
    await running.close()
    if accepted != messages:
        raise SystemExit(f"{name}: {accepted} of {messages} messages accepted")
    rate = messages / elapsed
    print(
        f"{name:8} {messages} messages in {elapsed:6.2f} s: {rate:8.1f} messages/s"
        f" (server CPU {cpu:.2f} s, {1000 * cpu / messages:.2f} ms a message)"
    )
    return rate


async def bench(args: argparse.Namespace) -> None:
    client = args.client
    if client == "auto":
        client = "smtp-source" if SMTP_SOURCE else "python"
    pdf = one_page_pdf()
    data = message_bytes(pdf)
    with tempfile.TemporaryDirectory(prefix="ingest-bench-") as tmp:
        folder = Path(tmp)
        file = folder / "message.eml"
        file.write_bytes(data)
        print(
            f"client {client}; {args.messages} messages over {args.connections} connections;"
            f" message {len(data)} bytes (PDF {len(pdf)} bytes); {os.cpu_count()} CPUs"
        )
        sink = gateway = 0.0
        if args.only in (None, "sink"):
            sink = await measure(
                "sink", await start_sink(), client, args.messages, args.connections, file
            )
        if args.only == "sink":
            return
        profiler = cProfile.Profile() if args.profile else None
        gateway_server = await start_gateway(folder, args.connections, args.synchronous)
        if profiler:
            profiler.enable()
        gateway = await measure(
            "gateway", gateway_server, client, args.messages, args.connections, file
        )
        if profiler:
            profiler.disable()
            profiler.dump_stats(args.profile)
    if sink:
        print(f"ratio    gateway / sink = {gateway / sink:.2f} (goal >= 0.5)")


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--client-process":
        port, messages, connections, file = sys.argv[2:6]
        asyncio.run(
            client_process(int(port), int(messages), int(connections), Path(file).read_bytes())
        )
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--connections", type=int, default=20)
    parser.add_argument("--client", choices=["auto", "smtp-source", "python"], default="auto")
    parser.add_argument("--profile", help="write a cProfile of the gateway run to this file")
    parser.add_argument("--only", choices=["sink", "gateway"], help="run one side only")
    parser.add_argument(
        "--synchronous", choices=["full", "normal"], default="full",
        help="the store's SQLite synchronous setting (full: every commit is fsynced)",
    )  # fmt: skip
    asyncio.run(bench(parser.parse_args()))


if __name__ == "__main__":
    main()
