"""Benchmark: gateway-to-gateway fax calls over SIP on loopback (issue 12, §7).

    .venv/bin/python bench/sip.py [--quick] [--only concurrency|loss]

Two gateways, each a real ``SipTransport`` (SIP over UDP, RTP/UDPTL media, spandsp T.30 on
both ends): this process is the *sender*, and for each step a second process is the
*receiver* (a ``SipTransport`` whose inbound line admits every number and counts what it is
handed), so that the measured process carries one side of each call, as a deployment would.
Each call is a real 2-page fax (``tests/transports/conftest.py``'s ``g4_tiff``).

1. Concurrent calls, media clocks at the real 20 ms: N calls started over 2 s, T.38 (t38 =
   "accept" on both sides: the calls start in G.711 and the receiver switches them after CNG,
   redundancy 3) and G.711 (t38 = "off" on both). Per step: successes (the sender's
   ``TxResult.success``; the receiver's count of successful receptions beside it), the peak
   number of calls up at once, CPU seconds of this process per call-second (all threads:
   event loop, SIP, media thread; call-seconds = the sum of the results' line seconds),
   media-clock ticks skipped, the event loop's worst and p99 stall (a task sleeping 10 ms
   records its lateness), and the edges: a real aiosmtpd server (connect, 220 banner, NOOP,
   250, QUIT) and the gateway's own embedded uvicorn (``gateway.api.server.serve_http``
   serving a one-route ASGI app, GET on a fresh connection) in this process, asked every
   100 ms by a small client in a third process while the calls run.
2. Packet loss: a UDP relay in the receiver's process sits in the SIP and media path. The
   receiver advertises 127.0.0.3 (``public_address``), the sender 127.0.0.4, the sender's
   proxy is 127.0.0.3: the relay holds a socket on 127.0.0.3 for each of the receiver's ports
   (SIP and every even RTP port) and one on 127.0.0.4 for each of the sender's, and forwards a
   datagram from 127.0.0.1:x arriving on plane P port y to 127.0.0.1:y from the socket of the
   other plane at port x, so each side sees the other at its advertised address. A seeded
   share of the *media* datagrams (not SIP) is dropped, both directions. Both clocks run at
   5 ms a tick (4x; media time only moves by ticks, so the T.30 timing is that of a real
   call); SIP timers are wall time.

``--quick`` runs fewer and smaller steps (about 3 minutes instead of about 15).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import random
import socket
import statistics
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gateway.config import HttpSettings, SipSettings
from gateway.transports.base import ArrivingCall, OutboundCall, ReceivedFax, Reception, TxResult
from gateway.transports.sip import SipTransport

HOST = "127.0.0.1"
RECEIVER_PLANE = "127.0.0.3"  # the receiver as the sender sees it through the relay
SENDER_PLANE = "127.0.0.4"  # the sender as the receiver sees it through the relay
SPREAD_S = 2.0  # the calls of a step start over this long
PAGES = 2
CALLEE = "+15550001000"
CALLER = "+15557770000"
SENDER_RTP = 30000  # sender's RTP range starts here, the receiver's at RECEIVER_RTP
RECEIVER_RTP = 34000
LOSS_PERIOD_S = 0.005
GUARD_S = 600.0


def settings(**keys: Any) -> SipSettings:
    values: dict[str, Any] = {
        "listen_host": HOST,
        "listen_port": 0,
        "proxy_host": HOST,
        "allow_from": ("127.0.0.0/8",),
        "t1_ms": 500,
        "ring_timeout_s": 60,
    }
    values.update(keys)
    return SipSettings(**values)


def rtp_range(base: int, calls: int) -> tuple[int, int]:
    return base, base + 4 * calls + 20


# -- the receiving gateway (a process of its own) ----------------------------------------------


class CountingLine:
    """An ``InboundLine`` that admits every number and counts the faxes it is handed."""

    def __init__(self) -> None:
        self.arrived = self.handed = self.ok = self.pages = 0
        self.failures: Counter[str] = Counter()

    async def arriving(self, call: ArrivingCall) -> Reception | None:
        self.arrived += 1
        return Reception(f"rx-{self.arrived}", "faxbox", "+1 555 000 1000")

    async def received(self, reception: Reception, fax: ReceivedFax) -> None:
        self.handed += 1
        if fax.success and fax.pages == PAGES:
            self.ok += 1
        else:
            self.failures[fax.result_text] += 1
        self.pages += fax.pages


class Relay(asyncio.DatagramProtocol):
    """The lossy relay of part 2 (see the module docstring): one socket per (plane, port)."""

    def __init__(self, loss: float, seed: int, sip_ports: set[int]) -> None:
        self.loss = loss
        self.rng = random.Random(seed)
        self.sip_ports = sip_ports
        self.sockets: dict[tuple[str, int], asyncio.DatagramTransport] = {}
        self.forwarded = self.dropped = self.unroutable = 0

    async def open(self, plane: str, ports: list[int]) -> None:
        loop = asyncio.get_running_loop()
        for port in ports:
            transport, _ = await loop.create_datagram_endpoint(
                lambda port=port, plane=plane: _RelaySocket(self, plane, port),
                local_addr=(plane, port),
            )
            self.sockets[(plane, port)] = transport

    def forward(self, plane: str, port: int, data: bytes, source: tuple[str, int]) -> None:
        other = SENDER_PLANE if plane == RECEIVER_PLANE else RECEIVER_PLANE
        out = self.sockets.get((other, source[1]))
        if out is None:
            self.unroutable += 1
            return
        if port not in self.sip_ports and self.loss and self.rng.random() < self.loss:
            self.dropped += 1
            return
        self.forwarded += 1
        out.sendto(data, (HOST, port))

    def close(self) -> None:
        for transport in self.sockets.values():
            transport.close()


class _RelaySocket(asyncio.DatagramProtocol):
    def __init__(self, relay: Relay, plane: str, port: int) -> None:
        self.relay, self.plane, self.port = relay, plane, port

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:  # type: ignore[override]
        self.relay.forward(self.plane, self.port, data, addr)


async def read_json(reader: Callable[[], Awaitable[bytes | str]]) -> Any:
    line = await reader()
    return json.loads(line) if line else None


async def receiver(spec: dict[str, Any]) -> None:
    logging.basicConfig(level=logging.ERROR)
    loop = asyncio.get_running_loop()

    async def stdin_line() -> str:
        return await loop.run_in_executor(None, sys.stdin.readline)

    def say(message: dict[str, Any]) -> None:
        print(json.dumps(message), flush=True)

    relayed = spec["loss"] is not None
    low, high = spec["rtp"]
    keys: dict[str, Any] = {
        "proxy_port": 9,  # never calls out
        "t38": spec["t38"],
        "t38_redundancy": spec["redundancy"],
        "rtp_port_min": low,
        "rtp_port_max": high,
        "max_calls": spec["calls"] + 10,
    }
    if relayed:
        keys["public_address"] = RECEIVER_PLANE
    line = CountingLine()
    gateway = SipTransport(settings(**keys), line, clock_period_s=spec["period"])
    await gateway.start()
    relay: Relay | None = None
    if relayed:
        relay = Relay(spec["loss"], spec["seed"], {gateway.port})
        await relay.open(RECEIVER_PLANE, [gateway.port, *range(low, high, 2)])
    say({"port": gateway.port})
    if relay is not None:
        message = await read_json(stdin_line)
        s_low, s_high = spec["sender_rtp"]
        relay.sip_ports.add(message["sender_sip"])
        await relay.open(SENDER_PLANE, [message["sender_sip"], *range(s_low, s_high, 2)])
        say({"ready": True})
    cpu = time.process_time()
    await stdin_line()  # EOF or a line: the sender is done
    await gateway.close()  # waits for every reception to be handed over
    report = {
        "arrived": line.arrived,
        "received": line.handed,
        "ok": line.ok,
        "failures": dict(line.failures.most_common(5)),
        "cpu_s": time.process_time() - cpu,
    }
    if relay is not None:
        report.update(forwarded=relay.forwarded, dropped=relay.dropped, unroutable=relay.unroutable)
        relay.close()
    say(report)


class FarEnd:
    """The receiver process, driven over its stdin and stdout (one JSON line each way)."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        assert process.stdin is not None and process.stdout is not None
        self.stdin, self.stdout = process.stdin, process.stdout

    @classmethod
    async def start(cls, spec: dict[str, Any]) -> FarEnd:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            __file__,
            "--receiver",
            json.dumps(spec),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        return cls(process)

    async def read(self) -> Any:
        return await read_json(self.stdout.readline)

    async def write(self, message: dict[str, Any]) -> None:
        self.stdin.write((json.dumps(message) + "\n").encode())
        await self.stdin.drain()

    async def finish(self) -> dict[str, Any]:
        self.stdin.close()
        report = await asyncio.wait_for(self.read(), 120)
        await self.process.wait()
        return dict(report)


# -- the edges and the probes ------------------------------------------------------------------


EDGE_CLIENT = r"""
import json, socket, sys, threading, time
smtp, http = int(sys.argv[1]), int(sys.argv[2])
stop = threading.Event()
threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
def recv_until(sock, end):
    data = b""
    while not data.endswith(end):
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return data
def ask_smtp():
    with socket.create_connection(("127.0.0.1", smtp), timeout=10) as s:
        assert recv_until(s, b"\r\n").startswith(b"220")
        s.sendall(b"NOOP\r\n")
        assert recv_until(s, b"\r\n").startswith(b"250")
        s.sendall(b"QUIT\r\n")
def ask_http():
    with socket.create_connection(("127.0.0.1", http), timeout=10) as s:
        s.sendall(b"GET /ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := s.recv(4096):
            data += chunk
        assert data.startswith(b"HTTP/1.1 200"), data[:40]
samples = []
while not stop.is_set():
    for name, ask in (("smtp", ask_smtp), ("http", ask_http)):
        t = time.monotonic()
        try:
            ask()
            samples.append((name, t, time.monotonic() - t))
        except Exception as exc:
            samples.append((name, t, None))
    stop.wait(0.1)
print(json.dumps(samples), flush=True)
"""


class Edges:
    """A real aiosmtpd server and the gateway's embedded uvicorn, in this process."""

    async def start(self) -> None:
        from aiosmtpd.smtp import SMTP

        from gateway.api.server import serve_http

        class Sink:
            async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
                return "250 OK"

        loop = asyncio.get_running_loop()
        self.smtp_server = await loop.create_server(lambda: SMTP(Sink(), hostname="bench"), HOST, 0)
        self.smtp_port = self.smtp_server.sockets[0].getsockname()[1]

        async def app(scope: Any, receive: Any, send: Any) -> None:
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"pong"})

        self.stop = asyncio.Event()
        ready: asyncio.Future[int] = loop.create_future()
        self.http = asyncio.create_task(
            serve_http(app, HttpSettings(port=0), self.stop, on_ready=ready.set_result)
        )
        self.http_port = await ready

    async def close(self) -> None:
        self.stop.set()
        await self.http
        self.smtp_server.close()
        await self.smtp_server.wait_closed()


class EdgeClient:
    async def start(self, edges: Edges) -> None:
        self.process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            EDGE_CLIENT,
            str(edges.smtp_port),
            str(edges.http_port),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )

    async def samples(self) -> list[tuple[str, float, float | None]]:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.close()
        line = await self.process.stdout.readline()
        await self.process.wait()
        return [tuple(s) for s in json.loads(line)]  # type: ignore[misc]


class StallProbe:
    """A task sleeping 10 ms at a time, recording how late it wakes; samples lines in use."""

    def __init__(self, gateway: SipTransport) -> None:
        self.gateway = gateway
        self.lateness: list[float] = []
        self.peak = 0
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            started = time.monotonic()
            await asyncio.sleep(0.010)
            self.lateness.append(time.monotonic() - started - 0.010)
            self.peak = max(self.peak, self.gateway.lines.in_use)

    async def stop(self) -> None:
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * (len(ordered) - 1)))] if ordered else 0.0


# -- one step: N calls from a sender in this process to a fresh receiver -------------------------


def outbound(tiff: bytes, n: int) -> OutboundCall:
    return OutboundCall(
        fax_id=f"fax-{n}",
        to_number=CALLEE,
        from_number=CALLER,
        tsi=CALLER,
        header="ACME Corp",
        timezone="Europe/Paris",
        tiff=tiff,
        pages=PAGES,
    )


async def step(
    tiff: bytes,
    calls: int,
    *,
    t38: str,
    redundancy: int = 3,
    loss: float | None = None,
    seed: int = 0,
    period: float = 0.020,
    edges: Edges | None = None,
) -> dict[str, Any]:
    sender_rtp = rtp_range(SENDER_RTP, calls)
    far = await FarEnd.start(
        {
            "calls": calls,
            "t38": t38,
            "redundancy": redundancy,
            "loss": loss,
            "seed": seed,
            "period": period,
            "rtp": rtp_range(RECEIVER_RTP, calls),
            "sender_rtp": sender_rtp,
        }
    )
    far_port = (await far.read())["port"]
    keys: dict[str, Any] = {
        "proxy_port": far_port,
        "t38": t38,
        "t38_redundancy": redundancy,
        "rtp_port_min": sender_rtp[0],
        "rtp_port_max": sender_rtp[1],
        "max_calls": calls + 10,
    }
    if loss is not None:
        keys.update(proxy_host=RECEIVER_PLANE, public_address=SENDER_PLANE)
    gateway = SipTransport(settings(**keys), CountingLine(), clock_period_s=period)
    await gateway.start()
    if loss is not None:
        await far.write({"sender_sip": gateway.port})
        await far.read()
    client = EdgeClient()
    if edges is not None:
        await client.start(edges)
    probe = StallProbe(gateway)
    load = os.getloadavg()[0]
    wall, cpu = time.monotonic(), time.process_time()

    async def one(n: int) -> TxResult:
        await asyncio.sleep(SPREAD_S * n / calls)
        return await asyncio.wait_for(gateway.send(outbound(tiff, n)), GUARD_S)

    results = await asyncio.gather(*(one(n) for n in range(calls)), return_exceptions=True)
    cpu, wall_end = time.process_time() - cpu, time.monotonic()
    wall = wall_end - wall
    await probe.stop()
    clock = gateway._clock  # the bench reads the media clock's figures
    clock_stats = clock.stats if clock is not None else None
    samples = await client.samples() if edges is not None else []
    await gateway.close()
    report = await far.finish()
    done = [r for r in results if isinstance(r, TxResult)]
    ok = sum(r.success for r in done)
    failures: Counter[str] = Counter()
    for r in results:
        if isinstance(r, TxResult):
            if not r.success:
                failures[r.result_text] += 1
        else:
            failures[f"{type(r).__name__}: {r}"] += 1
    call_seconds = sum(r.line_seconds for r in done)
    media = Counter(r.media for r in done)
    out: dict[str, Any] = {
        "calls": calls,
        "ok": ok,
        "received_ok": report["ok"],
        "peak": probe.peak,
        "wall_s": wall,
        "call_s": call_seconds,
        "mean_call_s": call_seconds / len(done) if done else 0.0,
        "cpu_s": cpu,
        "cpu_per_call_s": cpu / call_seconds if call_seconds else 0.0,
        "core_share": cpu / wall,
        "stall_max_ms": 1000 * max(probe.lateness, default=0.0),
        "stall_p99_ms": 1000 * pct(probe.lateness, 0.99),
        "thread_cpu_per_call_s": (
            clock_stats.cpu_s / call_seconds if clock_stats and call_seconds else 0.0
        ),
        "skipped_ticks": clock_stats.skipped_ticks if clock_stats else 0,
        "late_ticks": clock_stats.late_ticks if clock_stats else 0,
        "media": dict(media),
        "failures": dict(failures.most_common(3)),
        "far_failures": report["failures"],
        "far_cpu_s": report["cpu_s"],
        "load": load,
    }
    if loss is not None:
        total = report["forwarded"] + report["dropped"]
        out["dropped_share"] = report["dropped"] / total if total else 0.0
        out["unroutable"] = report["unroutable"]
    if samples:
        # Only what was asked while the calls were up (from the first INVITE to the last result).
        for name in ("smtp", "http"):
            times = [s[2] for s in samples if s[0] == name and wall_end - wall <= s[1] <= wall_end]
            answered = [t for t in times if t is not None]
            out[f"{name}_n"] = len(times)
            out[f"{name}_failed"] = len(times) - len(answered)
            out[f"{name}_max_ms"] = 1000 * max(answered, default=0.0)
            out[f"{name}_p50_ms"] = 1000 * (statistics.median(answered) if answered else 0.0)
    return out


# -- the two parts ----------------------------------------------------------------------------


def print_concurrency(label: str, r: dict[str, Any]) -> None:
    rate = 100 * r["ok"] / r["calls"]
    print(
        f"{label:5} {r['calls']:4d} calls: {r['ok']:4d} ok ({rate:5.1f} %; receiver "
        f"{r['received_ok']}), peak {r['peak']} up, media {r['media']}, "
        f"{r['mean_call_s']:.1f} s a call, wall {r['wall_s']:.0f} s | "
        f"CPU {1000 * r['cpu_per_call_s']:.1f} ms per call-second "
        f"(media thread {1000 * r['thread_cpu_per_call_s']:.1f}; {100 * r['core_share']:.0f} % "
        f"of a core; far end {r['far_cpu_s']:.0f} s) | "
        f"ticks late {r['late_ticks']}, skipped {r['skipped_ticks']} | "
        f"loop stall max {r['stall_max_ms']:.1f} ms, p99 {r['stall_p99_ms']:.1f} ms | "
        f"SMTP max {r['smtp_max_ms']:.1f} ms (p50 {r['smtp_p50_ms']:.1f}, "
        f"{r['smtp_failed']}/{r['smtp_n']} failed), HTTP max {r['http_max_ms']:.1f} ms "
        f"(p50 {r['http_p50_ms']:.1f}, {r['http_failed']}/{r['http_n']} failed) | "
        f"load {r['load']:.2f}",
        flush=True,
    )
    if r["failures"] or r["far_failures"]:
        print(f"      failures: {r['failures']}; receiver: {r['far_failures']}", flush=True)


async def concurrency(tiff: bytes, quick: bool) -> dict[str, list[dict[str, Any]]]:
    t38_steps = [30, 100] if quick else [10, 30, 60, 100]
    g711_steps = [30] if quick else [10, 30, 60]
    edges = Edges()
    await edges.start()
    out: dict[str, list[dict[str, Any]]] = {"T.38": [], "G.711": []}
    print("\n1. Concurrent calls, 20 ms media clocks, no loss", flush=True)
    try:
        # What answering the edge client costs this process with no call up (in every step's
        # CPU figure too): 10 SMTP sessions and 10 HTTP requests a second.
        client = EdgeClient()
        await client.start(edges)
        await asyncio.sleep(1.0)
        wall, cpu = time.monotonic(), time.process_time()
        await asyncio.sleep(5.0)
        idle = (time.process_time() - cpu) / (time.monotonic() - wall)
        samples = await client.samples()
        answered = [s[2] for s in samples if s[2] is not None]
        print(
            f"edges alone, no call: {100 * idle:.1f} % of a core; SMTP and HTTP answered in "
            f"p50 {1000 * statistics.median(answered):.1f} ms, max {1000 * max(answered):.1f} ms",
            flush=True,
        )
        for label, t38, steps in (("T.38", "accept", t38_steps), ("G.711", "off", g711_steps)):
            for calls in steps:
                r = await step(tiff, calls, t38=t38, edges=edges)
                out[label].append(r)
                print_concurrency(label, r)
    finally:
        await edges.close()
    for label, rows in out.items():
        passed = [r["calls"] for r in rows if r["ok"] >= 0.99 * r["calls"]]
        print(f"{label}: most calls at once with >= 99 % success: {max(passed, default=0)}")
    return out


async def loss_sweep(tiff: bytes, quick: bool) -> None:
    losses = [0.0, 0.05] if quick else [0.0, 0.01, 0.02, 0.05, 0.10]
    calls = 6 if quick else 20
    configs = [("T.38 r0", "accept", 0), ("T.38 r1", "accept", 1), ("T.38 r3", "accept", 3)]
    configs.append(("G.711", "off", 3))
    print(
        f"\n2. Packet loss through the relay, {calls} calls per cell at once, "
        f"media clocks at {1000 * LOSS_PERIOD_S:.0f} ms a tick; success % (ok/calls)",
        flush=True,
    )
    print("        " + "".join(f"{100 * loss:>14.0f} %" for loss in losses), flush=True)
    for label, t38, redundancy in configs:
        cells = []
        for n, loss in enumerate(losses):
            r = await step(
                tiff,
                calls,
                t38=t38,
                redundancy=redundancy,
                loss=loss,
                seed=1000 * redundancy + n,
                period=LOSS_PERIOD_S,
            )
            cells.append(r)
            if r["failures"] or r["far_failures"] or r["unroutable"]:
                print(
                    f"      {label} at {100 * loss:.0f} %: failures {r['failures']}; receiver "
                    f"{r['far_failures']}; dropped {100 * r['dropped_share']:.1f} %, "
                    f"unroutable {r['unroutable']}, media {r['media']}",
                    flush=True,
                )
        row = "".join(
            f"{100 * r['ok'] / r['calls']:>8.0f} ({r['ok']:2d}/{r['calls']:2d})" for r in cells
        )
        drops = ", ".join(f"{100 * r['dropped_share']:.1f}" for r in cells)
        print(f"{label:8}{row}   (dropped %: {drops}; load {cells[-1]['load']:.2f})", flush=True)


async def confirm_loss(tiff: bytes, total: int, batch: int = 50) -> None:
    """T.38 with redundancy 3 at 5 % loss over ``total`` calls (in batches, new seeds each):
    enough calls to tell a 99 % success rate from luck."""
    ok = calls = 0
    print(f"\n3. T.38 r3 at 5 % loss, {total} calls in batches of {batch}", flush=True)
    for n in range(0, total, batch):
        size = min(batch, total - n)
        r = await step(
            tiff, size, t38="accept", redundancy=3, loss=0.05, seed=7000 + n, period=LOSS_PERIOD_S
        )
        ok, calls = ok + r["ok"], calls + r["calls"]
        line = (
            f"   batch {n // batch + 1}: {r['ok']}/{r['calls']}, media {r['media']}, dropped"
            f" {100 * r['dropped_share']:.1f} % (load {r['load']:.2f})"
        )
        print(line, flush=True)
    failures = calls - ok
    # With no failure in n calls, the success rate is above 0.05^(1/n) at 95 % confidence.
    bound = f"; 95 % lower bound {0.05 ** (1 / calls):.4f}" if failures == 0 else ""
    print(f"   total {ok}/{calls} = {100 * ok / calls:.2f} %{bound}", flush=True)


async def main_async(args: argparse.Namespace) -> None:
    from tests.transports.conftest import g4_tiff

    logging.basicConfig(level=logging.ERROR)
    tiff = g4_tiff(PAGES)
    started = time.monotonic()
    print(
        f"bench/sip.py{' --quick' if args.quick else ''}: {PAGES}-page faxes, sender here "
        f"(pid {os.getpid()}), receiver in a second process; {os.cpu_count()} CPUs, "
        f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}",
        flush=True,
    )
    if args.only in (None, "concurrency"):
        await concurrency(tiff, args.quick)
    if args.only in (None, "loss"):
        await loss_sweep(tiff, args.quick)
    if args.confirm:
        await confirm_loss(tiff, args.confirm)
    print(
        f"\ndone in {time.monotonic() - started:.0f} s; load average "
        f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer, smaller steps")
    parser.add_argument("--only", choices=("concurrency", "loss", "none"))
    parser.add_argument(
        "--confirm", type=int, default=0, metavar="N", help="N calls of T.38 r3 at 5 %% loss"
    )
    parser.add_argument("--receiver", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.receiver:
        asyncio.run(receiver(json.loads(args.receiver)))
        return
    socket.setdefaulttimeout(None)
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
