"""Benchmark: does listing the outbox cost the same with a long history as with a short one?

    .venv/bin/python bench/api.py [--requests N] [--sizes 1000 100000] [--markdown]

For each size, a fresh store gets that many fax rows (one transaction of direct inserts: 80 %
the measured account's finished outbound faxes, 10 % its inbound faxes, 10 % another account's),
all within the default 31-day window. Then ``GET .../faxes/outbox?page_size=50`` is timed through
``httpx.ASGITransport`` (the whole app: auth, query parsing, store, JSON; no socket), for the first
page and for a deep page (a signed cursor 90 % of the way down), in interleaved rounds. Prints
p50 and p99 per case (medians over the rounds) and p99(largest) / p99(smallest); goal ≤ 1.5.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import secrets
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx

from gateway.api.app import create_app
from gateway.api.cursor import Cursor
from gateway.api.paging import MAX_RANGE_S
from gateway.config import parse_settings
from gateway.models import Faxbox
from gateway.store import SqliteStore
from gateway.store.database import Database
from gateway.views import gregorian

NOW = 1_800_000_000.0
WINDOW_S = 30 * 86400  # rows spread over the last 30 days: all inside the default range
TX_RESULT = json.dumps(
    {
        "success": True,
        "error_message": "",
        "pages_sent": 1,
        "fax_speed": 14400,
        "fax_error_correction": True,
        "fax_receiver_id": "+1 415 555 0100",
        "fax_bad_rows": 0,
        "time_elapsed": 42,
        "result_code": 0,
        "result_text": "OK",
        "total_pages": 1,
    }
)
COLUMNS = (
    "id, account_id, faxbox_id, direction, status, from_number, to_number, retries, attempts,"
    " pages, source, notifications, render_options, tx_result, created, modified, delivered"
)


@dataclass
class Case:
    size: int
    page: str
    p50_ms: float
    p99_ms: float
    cpu_p50_ms: float  # CPU time of this process (both threads) per request: what other
    cpu_p99_ms: float  # processes on a busy machine cannot inflate


async def build(path: Path, size: int) -> tuple[SqliteStore, str, str, str]:
    store = SqliteStore(Database(path, "normal"), lambda: NOW)
    await store.open()
    mine, token, _ = await store.create_account("bench")
    theirs, _, _ = await store.create_account("other")
    box = await store.create_faxbox(
        Faxbox(id="", account_id=mine.id, name="bench", smtp_email_address=""), "fax.bench"
    )
    rows: list[tuple[Any, ...]] = []
    for n in range(size):
        created = NOW - WINDOW_S * n / size
        kind = n % 10
        account = theirs.id if kind == 9 else mine.id
        direction = "inbound" if kind == 8 else "outbound"
        status = "failed" if kind == 7 else "completed"
        rows.append(
            (
                secrets.token_hex(16),
                account,
                box.id if account == mine.id else None,
                direction,
                status,
                "+14155550199",
                f"+1415555{n % 10000:04d}",
                3,
                1,
                1,
                "api",
                "{}",
                "{}",
                TX_RESULT if direction == "outbound" else None,
                created,
                created + 40,
                created + 40 if status == "completed" else None,
            )
        )
    marks = ", ".join("?" for _ in COLUMNS.split(","))
    async with store.database.transaction() as db:
        await db.executemany(f"INSERT INTO faxes ({COLUMNS}) VALUES ({marks})", rows)
    async with store.database.transaction() as db:
        await db.execute("ANALYZE")
    return store, mine.id, token, box.id


def quantiles(samples: list[float]) -> tuple[float, float]:
    cuts = statistics.quantiles(samples, n=100, method="inclusive")
    return cuts[49] * 1000, cuts[98] * 1000


@dataclass
class Target:
    """One store and the two requests measured against it."""

    size: int
    store: SqliteStore
    client: httpx.AsyncClient
    url: str
    headers: dict[str, str]
    cases: dict[str, dict[str, str]]


async def prepare(folder: Path, size: int) -> Target:
    started = time.perf_counter()
    path = folder / f"bench-{size}.sqlite3"
    store, account_id, token, _ = await build(path, size)
    print(f"# {size} faxes: store built in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    app = create_app(store, parse_settings({"storage": {"path": str(path)}}), clock=lambda: NOW)
    # The deep page starts at the row 90 % of the way down the measured folder.
    outbox = await store.database.fetchall(
        "SELECT created, id FROM faxes WHERE account_id = ? AND direction = 'outbound'"
        " AND status IN ('completed', 'failed') ORDER BY created DESC, id DESC",
        (account_id,),
    )
    created, row_id = outbox[int(len(outbox) * 0.9)]
    to_g = gregorian(NOW) or 0
    deep_key = app.state.api.cursors.encode(
        Cursor(f"{account_id}:outbox", to_g - MAX_RANGE_S, to_g, False, created, row_id)
    )
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bench")
    return Target(
        size,
        store,
        client,
        f"/v2/accounts/{account_id}/faxes/outbox",
        {"X-Auth-Token": token},
        {"first": {"page_size": "50"}, "deep": {"page_size": "50", "start_key": deep_key}},
    )


async def timed(
    target: Target, params: dict[str, str], requests: int
) -> tuple[list[float], list[float]]:
    wall, cpu = [], []
    for _ in range(requests):
        t0, c0 = time.perf_counter(), time.process_time()
        response = await target.client.get(target.url, params=params, headers=target.headers)
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
        assert response.status_code == 200 and len(response.json()["data"]) == 50
    return wall, cpu


async def measure(sizes: list[int], requests: int, rounds: int) -> list[Case]:
    """Rounds interleave every case, so a burst of load on the machine hits all of them alike;
    each figure is the median over the rounds."""
    with tempfile.TemporaryDirectory() as folder:
        targets = [await prepare(Path(folder), size) for size in sizes]
        per_case: dict[tuple[int, str], list[tuple[float, float, float, float]]] = {}
        for target in targets:
            for params in target.cases.values():
                await timed(target, params, max(20, requests // 10))  # warm up
        for _ in range(rounds):
            for target in targets:
                for page, params in target.cases.items():
                    gc.collect()  # start each run from the same heap, not mid-way to a collection
                    wall, cpu = await timed(target, params, requests)
                    figures = (*quantiles(wall), *quantiles(cpu))
                    per_case.setdefault((target.size, page), []).append(figures)
        for target in targets:
            await target.client.aclose()
            await target.store.close()
    return [
        Case(size, page, *(statistics.median(run[i] for run in runs) for i in range(4)))
        for (size, page), runs in per_case.items()
    ]


def report(results: list[Case], markdown: bool) -> None:
    sizes = sorted({c.size for c in results})
    if markdown:
        print("| faxes in store | page | p50 (ms) | p99 (ms) | CPU p50 (ms) | CPU p99 (ms) |")
        print("| ---: | --- | ---: | ---: | ---: | ---: |")
        for c in results:
            print(
                f"| {c.size:,} | {c.page} | {c.p50_ms:.2f} | {c.p99_ms:.2f}"
                f" | {c.cpu_p50_ms:.2f} | {c.cpu_p99_ms:.2f} |"
            )
    else:
        heads = ("p50 ms", "p99 ms", "cpu p50", "cpu p99")
        print(f"{'faxes':>8}  {'page':<6}  " + "  ".join(f"{h:>7}" for h in heads))
        for c in results:
            print(
                f"{c.size:>8}  {c.page:<6}  {c.p50_ms:>7.2f}  {c.p99_ms:>7.2f}"
                f"  {c.cpu_p50_ms:>7.2f}  {c.cpu_p99_ms:>7.2f}"
            )
    small, large = sizes[0], sizes[-1]
    for page in ("first", "deep"):
        [a] = [c for c in results if c.size == small and c.page == page]
        [b] = [c for c in results if c.size == large and c.page == page]
        ratio, cpu_ratio = b.p99_ms / a.p99_ms, b.cpu_p99_ms / a.cpu_p99_ms
        verdict = "ok" if ratio <= 1.5 else "OVER GOAL"
        print(
            f"{page} page: p99 at {large:,} / at {small:,} = {ratio:.2f}"
            f" (goal <= 1.5: {verdict}); CPU p99 ratio {cpu_ratio:.2f}"
        )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=500, help="timed requests per run")
    parser.add_argument("--rounds", type=int, default=9, help="runs of every case, interleaved")
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 100_000])
    parser.add_argument("--markdown", action="store_true", help="print a table for the docs")
    args = parser.parse_args()
    report(await measure(args.sizes, args.requests, args.rounds), args.markdown)


if __name__ == "__main__":
    asyncio.run(main())
