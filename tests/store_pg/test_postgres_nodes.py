"""PostgreSQL as several nodes see it: two stores on one database (each its own pool, as two
``serve`` processes would have), the schema check at start, migrate and check-config."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from gateway import credentials
from gateway.cli import main
from gateway.errors import ConfigError, StorageError
from gateway.models import NewFax, SmtpLogEntry
from gateway.store.postgres import PgDatabase, PostgresStore
from gateway.store.records import AttemptOutcome
from tests.conftest import Clock, make_settings, make_tenant
from tests.pgcluster import Cluster, session_cluster
from tests.stores import tx_result


@pytest.fixture
def cluster() -> Cluster:
    return session_cluster()


@pytest.fixture
def url(cluster: Cluster) -> Iterator[str]:
    name = "n_" + uuid.uuid4().hex[:16]
    yield cluster.create_database(name)
    cluster.drop_database(name)


@pytest.fixture
async def nodes(url: str, clock: Clock) -> AsyncIterator[list[PostgresStore]]:
    await PostgresStore(PgDatabase(url)).migrate()
    stores = [PostgresStore(PgDatabase(url), clock) for _ in range(2)]
    for store in stores:
        await store.open()
    yield stores
    for store in stores:
        await store.close()


async def test_an_smtp_retry_reaching_another_node_finds_the_first_job(
    nodes: list[PostgresStore],
) -> None:
    a, b = nodes
    tenant = await make_tenant(a)
    fax = NewFax(
        account_id=tenant.account_id,
        faxbox_id=tenant.faxbox.id,
        to_number="+14155550100",
        message_id="<once@example.com>",
    )
    entries = [SmtpLogEntry(id=credentials.new_id(), created=0.0) for _ in range(2)]
    ids = [credentials.new_id(), credentials.new_id()]
    for e, fax_id in zip(entries, ids, strict=True):
        e.fax_ids.append(fax_id)
    # Both nodes accept the same message (same Message-ID, number, digest) at the same time.
    await asyncio.gather(
        a.accept_message(entries[0], [(ids[0], fax)], [], "digest-1"),
        b.accept_message(entries[1], [(ids[1], fax)], [], "digest-1"),
    )
    jobs = await a.recent_faxes(tenant.account_id, 10)
    assert len(jobs) == 1
    logs = [await a.get_smtplog(e.id) for e in entries]
    assert [log.fax_ids for log in logs] == [[jobs[0].id], [jobs[0].id]]
    # Other content under the same Message-ID is another message: a job of its own.
    await b.accept_message(
        SmtpLogEntry(id=credentials.new_id(), created=0.0),
        [(credentials.new_id(), fax)],
        [],
        "digest-2",
    )
    assert len(await a.recent_faxes(tenant.account_id, 10)) == 2


async def test_the_same_message_after_the_window_is_a_new_job_on_any_node(
    nodes: list[PostgresStore], clock: Clock
) -> None:
    """Within the window a retry reaching the other node finds the first job; after it (the
    caller's ``duplicate_since`` is later than the first job) the same message is sent again."""
    a, b = nodes
    tenant = await make_tenant(a)
    fax = NewFax(
        account_id=tenant.account_id,
        faxbox_id=tenant.faxbox.id,
        to_number="+14155550100",
        message_id="<again@example.com>",
    )
    first = credentials.new_id()
    await a.accept_message(_entry(first), [(first, fax)], [], "digest-1", clock.now - 60)
    clock.advance(30)
    retry = credentials.new_id()
    await b.accept_message(_entry(retry), [(retry, fax)], [], "digest-1", clock.now - 60)
    clock.advance(60)
    late = credentials.new_id()
    await b.accept_message(_entry(late), [(late, fax)], [], "digest-1", clock.now - 60)
    jobs = {job.id for job in await a.recent_faxes(tenant.account_id, 10)}
    assert jobs == {first, late}


def _entry(fax_id: str) -> SmtpLogEntry:
    return SmtpLogEntry(id=credentials.new_id(), created=0.0, fax_ids=[fax_id])


async def test_two_nodes_claiming_at_once_never_call_one_number_twice(
    nodes: list[PostgresStore], clock: Clock
) -> None:
    a, b = nodes
    tenant = await make_tenant(a)
    numbers = ["+14155550100", "+14155550101", "+14155550102"]
    for i in range(30):
        fax_id = await a.create_fax(
            NewFax(account_id=tenant.account_id, to_number=numbers[i % 3], retries=1)
        )
        claimed = await a.claim_attaching("render", 60, 1)
        assert await a.finish_render(claimed[0].id, "render", b"II*\0", b"%PDF", 1)
        assert claimed[0].id == fax_id
    for _ in range(10):  # rounds: both nodes claim at once, then every call ends
        got = await asyncio.gather(
            a.claim_due("node-a", 60, 10, 10), b.claim_due("node-b", 60, 10, 10)
        )
        claims = got[0] + got[1]
        called = [c.fax.to_number for c in claims]
        assert len(called) == len(set(called)), called
        assert len(called) == 3  # each free number is taken by one node or the other
        for node, owner, mine in ((a, "node-a", got[0]), (b, "node-b", got[1])):
            for claim in mine:
                outcome = _completed()
                assert await node.finish_attempt(claim, owner, outcome, None)
        clock.advance(1)
    assert await a.count_by_status() == {"completed": 30}


def _completed() -> AttemptOutcome:
    return AttemptOutcome("completed", None, tx_result(success=True))


async def test_a_database_without_the_schema_is_refused_until_migrated(url: str) -> None:
    store = PostgresStore(PgDatabase(url))
    with pytest.raises(StorageError, match="run fax-gateway migrate"):
        await store.open()
    assert await PostgresStore(PgDatabase(url)).migrate() >= 1
    await store.open()
    await store.close()


async def test_a_newer_schema_is_refused(url: str, cluster: Cluster) -> None:
    await PostgresStore(PgDatabase(url)).migrate()
    cluster.psql("INSERT INTO schema_version VALUES (999, 0)", url.rsplit("/", 1)[1])
    with pytest.raises(StorageError, match="newer than this gateway knows"):
        await PostgresStore(PgDatabase(url)).open()


def pg_config(tmp_path: Path, url: str) -> Path:
    config = tmp_path / "gateway.toml"
    config.write_text(f'[storage]\nurl = "{url}"\n[smtp]\nport = 0\n')
    return config


def test_migrate_then_check_config_names_the_backend_without_the_password(
    tmp_path: Path, url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with_password = url.replace("postgresql://postgres@", "postgresql://postgres:s3cret@")
    config = pg_config(tmp_path, with_password)
    assert main(["--config", str(config), "check-config"]) == 2  # not migrated yet
    out, err = capsys.readouterr()
    assert "run fax-gateway migrate" in err
    assert main(["--config", str(config), "migrate"]) == 0
    assert '"backend": "postgresql"' in capsys.readouterr().out
    assert main(["--config", str(config), "check-config"]) == 0
    out, err = capsys.readouterr()
    assert "storage: PostgreSQL postgresql://postgres:***@127.0.0.1" in out
    assert "connects" in out
    assert "s3cret" not in out + err


def test_check_config_says_when_the_database_does_not_connect(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.conftest import free_port

    config = pg_config(tmp_path, f"postgresql://gw:s3cret@127.0.0.1:{free_port()}/fax")
    assert main(["--config", str(config), "check-config"]) == 2
    out, err = capsys.readouterr()
    assert "storage: PostgreSQL postgresql://gw:***@127.0.0.1" in err
    assert "cannot open database" in err
    assert "s3cret" not in out + err


def test_path_and_url_together_are_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"path \(SQLite\) or url \(PostgreSQL\), not both"):
        make_settings(tmp_path, storage={"url": "postgresql://h/db"})
    with pytest.raises(ConfigError, match="postgresql://"):
        make_settings(tmp_path, storage={"url": "mysql://h/db"})


def test_migrate_on_sqlite_reports_its_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "gateway.toml"
    config.write_text(f'[storage]\npath = "{tmp_path / "g.sqlite3"}"\n')
    assert main(["--config", str(config), "migrate"]) == 0
    assert '"backend": "sqlite"' in capsys.readouterr().out
    assert (tmp_path / "g.sqlite3").exists()


async def test_new_work_on_one_node_wakes_the_others(nodes: list[PostgresStore]) -> None:
    a, b = nodes
    woken = asyncio.Event()
    await b.listen(woken.set)
    tenant = await make_tenant(a)
    await a.create_fax(NewFax(account_id=tenant.account_id, to_number="+14155550100"))
    await woken.wait()  # delivered at a's COMMIT
    woken.clear()
    [fax] = await a.claim_attaching("render", 60, 1)
    assert await a.finish_render(fax.id, "render", b"II*\0", b"%PDF", 1)  # now due: wakes too
    await woken.wait()


async def test_admin_reading_retention_and_backup_work_on_postgres(
    nodes: list[PostgresStore], clock: Clock, tmp_path: Path
) -> None:
    store = nodes[0]
    tenant = await make_tenant(store)
    fax_id = await store.create_fax(NewFax(account_id=tenant.account_id, to_number="+14155550100"))
    assert await store.count_by_status() == {"attaching_files": 1}
    stats = await store.queue_stats()
    assert stats.faxes == {("outbound", "attaching_files"): 1}
    assert [f.id for f in await store.recent_faxes(None, 10)] == [fax_id]
    cancelled = await store.cancel_fax(fax_id)
    assert cancelled.status.value == "failed"
    clock.advance(10)
    purged = await store.purge(None, clock(), None)
    assert purged.faxes == 1
    assert await store.recent_faxes(None, 10) == []
    copy = await store.backup(tmp_path / "gateway.dump")
    assert copy["format"] == "pg_dump"
    assert (tmp_path / "gateway.dump").read_bytes().startswith(b"PGDMP")
