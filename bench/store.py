"""Store throughput, SQLite against PostgreSQL: durable SMTP intake commits and claims per
second, one store against three (three pools on one database, as three nodes would hold), and
the API folder list's p99 at 100k faxes against 1k on PostgreSQL.

    .venv/bin/python -m bench.store [--messages 600] [--big 100000]

PostgreSQL runs in a private cluster (tests/pgcluster.py, fsync on); SQLite with
synchronous = full. Everything runs in this one process, so "three nodes" share its CPU.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
import uuid
from pathlib import Path

from gateway import credentials
from gateway.models import Direction, DocumentKind, NewFax, SmtpLogEntry, SourceDocument
from gateway.store import SqliteStore, Store
from gateway.store.database import Database
from gateway.store.postgres import PgDatabase, PostgresStore
from gateway.store.records import Window
from tests.conftest import make_tenant
from tests.pgcluster import Cluster, running_cluster

DOC = SourceDocument(DocumentKind.TEXT, b"x" * 20_000, "a.txt", 1)


async def intake(stores: list[Store], account: str, faxbox: str, n: int) -> float:
    """Messages per second, ``n`` accepted concurrently (50 at a time) over ``stores``."""
    gate = asyncio.Semaphore(50)

    async def one(i: int) -> None:
        async with gate:
            fax_id = credentials.new_id()
            entry = SmtpLogEntry(id=credentials.new_id(), created=time.time())
            entry.fax_ids.append(fax_id)
            fax = NewFax(account_id=account, faxbox_id=faxbox, to_number=f"+1415555{i % 50:04d}")
            await stores[i % len(stores)].accept_message(entry, [(fax_id, fax)], [DOC])

    start = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(n)))
    return n / (time.perf_counter() - start)


async def claims(stores: list[Store], n: int) -> float:
    """Due jobs claimed and finished per second, every store claiming at once."""
    first = stores[0]
    while batch := await first.claim_attaching("r", 60, 200):
        for fax in batch:
            await first.finish_render(fax.id, "r", b"II*\0", b"%PDF", 1)
    from gateway.store.records import AttemptOutcome
    from tests.stores import tx_result

    done = 0
    start = time.perf_counter()

    async def node(store: Store, owner: str) -> None:
        nonlocal done
        while done < n:
            got = await store.claim_due(owner, 60, 1000, 20)
            if not got:
                await asyncio.sleep(0.001)
                if done >= n or not await store.next_due_at():
                    return
                continue
            for claim in got:
                await store.finish_attempt(
                    claim, owner, AttemptOutcome("completed", None, tx_result(True)), None
                )
                done += 1

    await asyncio.gather(*(node(s, f"node{i}") for i, s in enumerate(stores)))
    return done / (time.perf_counter() - start)


async def open_pg(url: str, count: int) -> list[Store]:
    await PostgresStore(PgDatabase(url)).migrate()
    stores: list[Store] = []
    for _ in range(count):
        store = PostgresStore(PgDatabase(url, max_size=20))
        await store.open()
        stores.append(store)
    return stores


async def run_backend(name: str, stores: list[Store], messages: int) -> None:
    tenant = await make_tenant(stores[0], "bench-" + uuid.uuid4().hex[:6], domain=None)
    rate = await intake(stores, tenant.account_id, tenant.faxbox.id, messages)
    claim_rate = await claims(stores, messages)
    print(f"{name:24} intake {rate:8.0f} msg/s   claims {claim_rate:8.0f} /s")
    for store in stores:
        await store.close()


async def list_p99(cluster: Cluster, rows: int, requests: int = 200) -> float:
    url = cluster.create_database("list_" + uuid.uuid4().hex[:8])
    [store] = await open_pg(url, 1)
    tenant = await make_tenant(store, "lister", domain=None)
    pg = store.pg  # type: ignore[attr-defined]
    async with pg.pool.acquire() as conn:  # seeding only: one COPY, not the intake path
        now = time.time()
        await conn.copy_records_to_table(
            "faxes",
            columns=[
                "id", "account_id", "direction", "status", "to_number", "retries", "source",
                "notifications", "render_options", "created", "modified",
            ],
            records=[
                (uuid.uuid4().hex, tenant.account_id, "outbound", "completed", "+14155550100",
                 1, "api", "{}", "{}", now - i, now - i)
                for i in range(rows)
            ],
        )  # fmt: skip
        await conn.execute("ANALYZE faxes")
    times = []
    for _ in range(requests):
        start = time.perf_counter()
        await store.list_faxes(
            tenant.account_id, Direction.OUTBOUND, True, Window(0, now + 1, limit=50)
        )
        times.append(time.perf_counter() - start)
    await store.close()
    return statistics.quantiles(times, n=100)[98]


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=600)
    parser.add_argument("--big", type=int, default=100_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder, running_cluster() as cluster:
        sqlite = SqliteStore(Database(Path(folder) / "bench.sqlite3", "full"))
        await sqlite.open()
        await run_backend("sqlite (1 node)", [sqlite], args.messages)
        for count in (1, 3):
            url = cluster.create_database("bench_" + uuid.uuid4().hex[:8])
            await run_backend(f"postgres ({count} nodes)", await open_pg(url, count), args.messages)
        small = await list_p99(cluster, 1000)
        big = await list_p99(cluster, args.big)
        print(
            f"postgres list p99: {small * 1000:.2f} ms at 1k, {big * 1000:.2f} ms at"
            f" {args.big // 1000}k: ratio {big / small:.2f} (goal <= 1.5)"
        )


if __name__ == "__main__":
    asyncio.run(main())
