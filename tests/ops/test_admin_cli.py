"""``fax-gateway faxes show|retry|cancel ID``, ``purge`` and ``backup`` beside the listing, whose
forms (``faxes [--account] [--limit] [--json]``) keep working as before."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from gateway.cli import main
from gateway.store import SqliteStore
from gateway.store.database import Database
from tests.conftest import make_tenant
from tests.daemon_process import write_config
from tests.engine import pending_job
from tests.stores import raw


@pytest.fixture
def config(tmp_path: Path) -> Path:
    return write_config(tmp_path, 0)


def make_jobs(config: Path) -> tuple[str, list[str]]:
    """An account with three pending jobs (rendered, due); returns the account and job ids."""

    async def build() -> tuple[str, list[str]]:
        store = SqliteStore(Database(config.parent / "gateway.sqlite3", "normal"))
        await store.open()
        try:
            tenant = await make_tenant(store)
            jobs = [await pending_job(store, tenant, f"+1415555012{n}") for n in range(3)]
            await raw(store).execute(
                "UPDATE faxes SET status = 'failed', attempts = 3, error = 'busy' WHERE id = ?",
                (jobs[0],),
            )
            return tenant.account_id, jobs
        finally:
            await store.close()

    return asyncio.run(build())


def run(capsys: pytest.CaptureFixture[str], config: Path, *args: str) -> tuple[int, str, str]:
    code = main(["--config", str(config), *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_listing_forms_still_work(config: Path, capsys: pytest.CaptureFixture[str]):
    account, jobs = make_jobs(config)
    code, out, _ = run(capsys, config, "faxes", "--json")
    assert code == 0 and {row["id"] for row in json.loads(out)} == set(jobs)
    code, out, _ = run(capsys, config, "faxes", "--account", account, "--limit", "2", "--json")
    assert code == 0 and len(json.loads(out)) == 2
    code, out, _ = run(capsys, config, "faxes", "--limit", "1")
    assert code == 0 and len(out.strip().splitlines()) == 1
    with pytest.raises(SystemExit):
        main(["--config", str(config), "faxes", "explode", jobs[0]])
    capsys.readouterr()
    code, _, err = run(capsys, config, "faxes", "show")
    assert code == 2 and "needs a fax ID" in err


def test_show_retry_cancel(config: Path, capsys: pytest.CaptureFixture[str]):
    _, (failed, waiting, _) = make_jobs(config)
    code, out, _ = run(capsys, config, "faxes", "show", failed, "--json")
    shown = json.loads(out)
    assert code == 0 and shown["id"] == failed and shown["status"] == "failed"
    assert shown["error"] == "busy" and "attempts_log" in shown
    code, out, _ = run(capsys, config, "faxes", "show", waiting)
    assert (
        code == 0 and f"id:               {waiting}" in out and "status:           pending" in out
    )

    code, out, _ = run(capsys, config, "faxes", "retry", failed)
    retried = json.loads(out)
    assert code == 0 and retried["status"] == "pending"
    assert retried["retries"] == 3 + 3  # the faxbox's retries (3) beyond the 3 made
    code, _, err = run(capsys, config, "faxes", "retry", failed)
    assert code == 1 and "only failed outbound faxes" in err
    code, _, err = run(capsys, config, "faxes", "retry", failed, "--attempts", "0")
    assert code == 2 and "between 1 and 20" in err

    code, out, _ = run(capsys, config, "faxes", "cancel", waiting)
    cancelled = json.loads(out)
    assert code == 0 and cancelled == {
        "id": waiting, "status": "failed", "attempts": 0, "retries": 3,
        "error": "cancelled by admin",
    }  # fmt: skip
    code, _, err = run(capsys, config, "faxes", "cancel", "0" * 32)
    assert code == 1 and "not found" in err


def test_purge_and_backup_commands(config: Path, tmp_path: Path, capsys):
    make_jobs(config)
    code, out, _ = run(capsys, config, "purge")
    assert code == 0
    assert json.loads(out) == {
        "purged": {"documents": 0, "document_bytes": 0, "faxes_stripped": 0, "faxes": 0,
                   "smtplog": 0},
        "retention_days": {"documents": 0, "faxes": 0, "smtplog": 0},
    }  # fmt: skip
    code, _, err = run(capsys, config, "purge", "--faxes-days", "-1")
    assert code == 2

    target = tmp_path / "b.sqlite3"
    code, out, _ = run(capsys, config, "backup", str(target))
    assert code == 0 and json.loads(out)["rows"]["faxes"] == 3
    code, _, err = run(capsys, config, "backup", str(target))
    assert code == 2 and "exists" in err
    code, out, _ = run(capsys, config, "backup", str(target), "--force")
    assert code == 0
    for bad, why in (
        (tmp_path, "is a directory"),
        (tmp_path / "nowhere" / "b.sqlite3", "no directory"),
        (tmp_path / "gateway.sqlite3", "live database"),
    ):
        code, _, err = run(capsys, config, "backup", str(bad))
        assert code == 2 and why in err, err


def test_backup_without_a_database(config: Path, tmp_path: Path, capsys):
    code, _, err = run(capsys, config, "backup", str(tmp_path / "b.sqlite3"))
    assert code == 2 and "no database" in err
