"""Benchmark: the media thread carrying N concurrent fax calls on the real 20 ms clock.

    .venv/bin/python bench/mediaclock.py --calls 30 --mode t38 [--pages 3] [--redundancy 3]
    .venv/bin/python bench/mediaclock.py --calls 30 --mode pcmu

This process is "the gateway": one ``MediaClock`` (20 ms) drives ``--calls`` sending calls
(``CallMedia``, calling side). Their far ends run in a second process with a clock of their own,
as another gateway would, over UDP on 127.0.0.1, so that the measured thread carries exactly
N calls. Each call sends one real ``--pages`` fax; the calls start spread over two seconds and
the run ends when all are done. Figures, for this process only:

- media thread CPU per call-second (``time.thread_time`` around each tick, summed; divided by
  the call time it drove), and the share of one core it took;
- ticks late (started 10 ms or more after their deadline), ticks given up after stalls, and
  the worst lateness;
- the event loop's worst and 99th-percentile lag (a task asking for 1 ms sleeps), which is
  what the SMTP and HTTP edges would feel while the calls run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gateway.transports.callmedia import AudioMode, CallMedia, T38Mode
from gateway.transports.media import FaxOutcome
from gateway.transports.mediaclock import MediaClock
from gateway.transports.rtp import PortAllocator
from gateway.transports.spandsp import T30Config
from tests.transports.backtoback import CALLEE, outbound
from tests.transports.conftest import g4_tiff

HOST = "127.0.0.1"
SPREAD_S = 2.0


def mode_for(args: argparse.Namespace) -> AudioMode | T38Mode:
    if args.mode == "t38":
        return T38Mode(redundancy=args.redundancy)
    return AudioMode.pcmu() if args.mode == "pcmu" else AudioMode.pcma()


async def lag_probe(lags: list[float], stop: asyncio.Event) -> None:
    while not stop.is_set():
        started = time.monotonic()
        await asyncio.sleep(0.001)
        lags.append(time.monotonic() - started - 0.001)


async def run_calls(
    clock: MediaClock,
    configs: list[T30Config],
    *,
    calling: bool,
    mode: AudioMode | T38Mode,
    ports: PortAllocator,
    exchange: Any,
) -> list[FaxOutcome | BaseException]:
    opened = [ports.open() for _ in configs]
    remotes = await exchange([port.port for port in opened])
    calls = [
        CallMedia(port, calling=calling, config=config, mode=mode, remote=(HOST, remote))
        for port, config, remote in zip(opened, configs, remotes, strict=True)
    ]
    for call in calls:
        clock.add(call)
        await asyncio.sleep(SPREAD_S / len(calls))
    return await asyncio.gather(*(call.done for call in calls), return_exceptions=True)


async def line_exchange(mine: list[int]) -> list[int]:
    """Ports to the other process on stdout, its ports from stdin (one JSON line each)."""
    print(json.dumps(mine), flush=True)
    line = await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    return list(json.loads(line))


async def far_end(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-far-") as tmp, MediaClock() as clock:
        configs = [
            T30Config(ident=CALLEE, rx_file=str(Path(tmp) / f"rx{n}.tif"))
            for n in range(args.calls)
        ]
        low = args.port_base + 2 * args.calls + 10
        ports = PortAllocator(HOST, low, low + 2 * args.calls + 8)
        await run_calls(
            clock, configs, calling=False, mode=mode_for(args), ports=ports, exchange=line_exchange
        )


async def gateway(args: argparse.Namespace) -> dict[str, float]:
    from gateway.transports.session import sending_config

    tiff = g4_tiff(args.pages)
    far = await asyncio.create_subprocess_exec(
        sys.executable,
        __file__,
        "--far-end",
        f"--calls={args.calls}",
        f"--mode={args.mode}",
        f"--redundancy={args.redundancy}",
        f"--port-base={args.port_base}",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    assert far.stdin is not None and far.stdout is not None
    stdin, stdout = far.stdin, far.stdout

    async def exchange(mine: list[int]) -> list[int]:
        stdin.write((json.dumps(mine) + "\n").encode())
        await stdin.drain()
        return list(json.loads(await stdout.readline()))

    lags: list[float] = []
    stop = asyncio.Event()
    with tempfile.TemporaryDirectory(prefix="bench-gw-") as tmp:
        tx = Path(tmp) / "tx.tif"
        tx.write_bytes(tiff)
        config = sending_config(outbound(tiff, args.pages), str(tx))
        ports = PortAllocator(HOST, args.port_base, args.port_base + 2 * args.calls + 8)
        probe = asyncio.create_task(lag_probe(lags, stop))
        cpu_before = time.process_time()
        with MediaClock() as clock:
            results = await run_calls(
                clock,
                [config] * args.calls,
                calling=True,
                mode=mode_for(args),
                ports=ports,
                exchange=exchange,
            )
            stats = clock.stats
        process_cpu = time.process_time() - cpu_before
        stop.set()
        await probe
    await far.wait()
    ok = sum(isinstance(r, FaxOutcome) and r.success for r in results)
    call_seconds = stats.call_ticks * clock.period_s
    wall = stats.ticks * clock.period_s + stats.skipped_ticks * clock.period_s
    lags.sort()
    return {
        "calls": args.calls,
        "succeeded": ok,
        "call_seconds": call_seconds,
        "wall_s": wall,
        "thread_cpu_s": stats.cpu_s,
        "cpu_ms_per_call_second": 1000 * stats.cpu_per_call_second(),
        "thread_core_share": stats.cpu_s / wall,
        "process_cpu_s": process_cpu,
        "ticks": stats.ticks,
        "late_ticks": stats.late_ticks,
        "skipped_ticks": stats.skipped_ticks,
        "worst_lateness_ms": 1000 * stats.worst_lateness_s,
        "loop_lag_p99_ms": 1000 * lags[int(0.99 * (len(lags) - 1))],
        "loop_lag_max_ms": 1000 * lags[-1],
        "loop_lag_median_ms": 1000 * statistics.median(lags),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=30)
    parser.add_argument("--mode", choices=("t38", "pcmu", "pcma"), default="t38")
    parser.add_argument("--pages", type=int, default=3)
    parser.add_argument("--redundancy", type=int, default=3)
    parser.add_argument("--port-base", type=int, default=30000)
    parser.add_argument("--far-end", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.far_end:
        asyncio.run(far_end(args))
        return
    r = asyncio.run(gateway(args))
    print(
        f"{args.mode} x {r['calls']:.0f} calls ({r['succeeded']:.0f} ok), "
        f"{r['call_seconds']:.0f} call-s in {r['wall_s']:.0f} s: "
        f"media thread {r['cpu_ms_per_call_second']:.3f} ms CPU per call-second "
        f"({100 * r['thread_core_share']:.1f} % of a core; "
        f"process {r['process_cpu_s']:.1f} s CPU); "
        f"ticks {r['ticks']:.0f}, late {r['late_ticks']:.0f}, skipped {r['skipped_ticks']:.0f}, "
        f"worst {r['worst_lateness_ms']:.1f} ms; event loop lag p99 "
        f"{r['loop_lag_p99_ms']:.2f} ms, max {r['loop_lag_max_ms']:.2f} ms"
    )


if __name__ == "__main__":
    main()
