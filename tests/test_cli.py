"""The command line contract: JSON on stdout for what it creates, exit codes, admin listings."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

import pytest

from gateway import credentials
from gateway.cli import main
from gateway.config import load_settings
from gateway.models import NewFax, RecipientOutcome, SmtpLogEntry
from gateway.store import store_for
from gateway.views import GREGORIAN_OFFSET

HEX32 = re.compile(r"[0-9a-f]{32}")


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "gateway.toml"
    path.write_text(
        f"""
[storage]
path = "{tmp_path / "var" / "gw.sqlite3"}"
synchronous = "normal"

[smtp]
default_smtp_domain = "fax.example"
default_region = "US"
"""
    )
    return path


def run(capsys: pytest.CaptureFixture[str], config: Path, *args: str) -> tuple[int, str, str]:
    code = main(["--config", str(config), *args])
    out, err = capsys.readouterr()
    return code, out, err


def run_json(capsys: pytest.CaptureFixture[str], config: Path, *args: str) -> Any:
    code, out, err = run(capsys, config, *args)
    assert code == 0, err
    return json.loads(out)  # one JSON document, nothing else on stdout


def account(capsys: pytest.CaptureFixture[str], config: Path, *args: str) -> dict[str, Any]:
    data: dict[str, Any] = run_json(capsys, config, "accounts", "create", "--name", "ACME", *args)
    return data


def test_accounts_create(capsys: pytest.CaptureFixture[str], config: Path) -> None:
    data = account(capsys, config, "--realm", "ACME.example")
    assert set(data) == {"id", "name", "realm", "auth_token", "api_key"}
    assert HEX32.fullmatch(data["id"])
    assert data["name"] == "ACME"
    assert data["realm"] == "acme.example"
    assert len(data["auth_token"]) >= 32 and len(data["api_key"]) >= 32
    assert data["auth_token"] != data["api_key"]
    without_realm = account(capsys, config)
    assert without_realm["realm"] is None
    assert without_realm["id"] != data["id"]


def test_accounts_create_duplicate_realm(capsys: pytest.CaptureFixture[str], config: Path) -> None:
    account(capsys, config, "--realm", "acme.example")
    code, out, err = run(
        capsys, config, "accounts", "create", "--name", "B", "--realm", "acme.example"
    )
    assert code == 2
    assert out == ""
    assert "realm" in err


def test_faxboxes_create(capsys: pytest.CaptureFixture[str], config: Path) -> None:
    acct = account(capsys, config)
    box = run_json(
        capsys,
        config,
        "faxboxes",
        "create",
        "--account",
        acct["id"],
        "--name",
        "Sales",
        "--caller-id",
        "(415) 555-0199",
        "--caller-name",
        "ACME Sales",
        "--fax-header",
        "ACME Corp",
        "--fax-identity",
        "+1 415 555 0199",
        "--permit",
        "*@acme.example",
        "--permit",
        "re:.*@partner\\.example",
        "--notify-email",
        "ops@acme.example",
        "--notify-email",
        "boss@acme.example",
        "--fax-number",
        "+14155550100",
        "--retries",
        "5",
        "--smtp-password",
        "s3cret!",
        "--custom-smtp-email-address",
        "Fax.ACME.example",
    )
    assert HEX32.fullmatch(box["id"])
    assert re.fullmatch(r"[0-9a-f]{8}\.fax\.example", box["smtp_email_address"])
    assert box["custom_smtp_email_address"] == "fax.acme.example"
    assert box["account_id"] == acct["id"]
    assert box["caller_id"] == "+14155550199"
    assert box["fax_number"] == "+14155550100"
    assert box["caller_name"] == "ACME Sales"
    assert box["fax_header"] == "ACME Corp"
    assert box["fax_identity"] == "+1 415 555 0199"
    assert box["retries"] == 5
    assert box["smtp_permission_list"] == ["@acme.example", "re:.*@partner\\.example"]
    notify = ["ops@acme.example", "boss@acme.example"]
    assert box["notifications"]["outbound"]["email"]["send_to"] == notify
    assert box["notifications"]["inbound"]["email"]["send_to"] == notify
    assert box["smtp_password_set"] is True
    assert "s3cret!" not in json.dumps(box)


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (["--caller-id", "call me"], "caller_id"),
        (["--fax-number", "+1555"], "fax_number"),
        (["--permit", "re:(unclosed"], "smtp_permission_list"),
        (["--permit", "nobody"], "smtp_permission_list"),
        (["--retries", "0"], "retries"),
    ],
)
def test_faxboxes_create_refuses_bad_fields(
    capsys: pytest.CaptureFixture[str], config: Path, args: list[str], field: str
) -> None:
    acct = account(capsys, config)
    code, out, err = run(
        capsys, config, "faxboxes", "create", "--account", acct["id"], "--name", "x", *args
    )
    assert code == 2
    assert out == ""
    assert err.startswith(f"fax-gateway: {field}: ")


def test_faxboxes_create_unknown_account(capsys: pytest.CaptureFixture[str], config: Path) -> None:
    code, out, err = run(capsys, config, "faxboxes", "create", "--account", "0" * 32, "--name", "x")
    assert code == 1
    assert out == ""
    assert "not found" in err


def test_faxboxes_custom_address_must_be_unique(
    capsys: pytest.CaptureFixture[str], config: Path
) -> None:
    acct = account(capsys, config)
    base = ["faxboxes", "create", "--account", acct["id"], "--name", "x"]
    first = run_json(capsys, config, *base, "--custom-smtp-email-address", "fax.acme.example")
    code, _, err = run(capsys, config, *base, "--custom-smtp-email-address", "FAX.acme.example")
    assert code == 2
    assert "custom_smtp_email_address" in err
    # Nor may a custom address take over another faxbox's generated one.
    code, _, err = run(
        capsys, config, *base, "--custom-smtp-email-address", first["smtp_email_address"]
    )
    assert code == 2
    assert "custom_smtp_email_address" in err


def seed(config: Path, account_id: str, faxbox_id: str) -> tuple[list[str], list[str]]:
    """Two accepted messages and one refused transaction, as intake would write them."""

    async def write() -> tuple[list[str], list[str]]:
        settings = load_settings(config)
        store = store_for(settings.storage)
        await store.open()
        log_ids, fax_ids = [], []
        try:
            for n in range(2):
                fax_id = credentials.new_id()
                entry = SmtpLogEntry(
                    id=credentials.new_id(),
                    created=1_800_000_000.0 + n,
                    mail_from="alice@acme.example",
                    reply_code=250,
                    reply_text=f"250 2.0.0 queued as {fax_id}",
                    fax_ids=[fax_id],
                    recipients=[
                        RecipientOutcome(
                            f"+1415555010{n}@fax.example",
                            "250 ok",
                            account_id=account_id,
                            faxbox_id=faxbox_id,
                            accepted=True,
                        )
                    ],
                )
                fax = NewFax(
                    account_id=account_id, faxbox_id=faxbox_id, to_number=f"+1415555010{n}"
                )
                await store.accept_message(entry, [(fax_id, fax)], [])
                log_ids.append(entry.id)
                fax_ids.append(fax_id)
            refused = SmtpLogEntry(
                id=credentials.new_id(),
                created=1_800_000_010.0,
                mail_from="eve@x.example",
                reply_code=550,
                reply_text="550 5.7.1 relaying denied",
                errors=["relaying denied"],
                recipients=[RecipientOutcome("1@elsewhere.example", "550 5.7.1 relaying denied")],
            )
            await store.write_smtplog(refused)
            log_ids.append(refused.id)
        finally:
            await store.close()
        return log_ids, fax_ids

    return asyncio.run(write())


def test_listings(capsys: pytest.CaptureFixture[str], config: Path) -> None:
    acct = account(capsys, config)
    box = run_json(capsys, config, "faxboxes", "create", "--account", acct["id"], "--name", "b")
    log_ids, fax_ids = seed(config, acct["id"], box["id"])

    logs = run_json(capsys, config, "smtplog", "--json")
    assert [row["id"] for row in logs] == log_ids[::-1]  # newest first
    assert {"id", "from", "to", "reply_code", "errors", "fax_ids"} <= set(logs[0])
    assert logs[0]["reply_code"] == 550 and logs[0]["errors"] == ["relaying denied"]
    assert logs[0]["to"] == "1@elsewhere.example"
    assert logs[1]["fax_ids"] == [fax_ids[1]]
    assert logs[1]["from"] == "alice@acme.example"

    mine = run_json(capsys, config, "smtplog", "--json", "--account", acct["id"], "--limit", "1")
    assert [row["id"] for row in mine] == [log_ids[1]]

    faxes = run_json(capsys, config, "faxes", "--json")
    assert [f["id"] for f in faxes] == fax_ids[::-1]
    assert {"id", "status", "to_number", "created"} <= set(faxes[0])
    assert faxes[0]["status"] == "attaching_files"
    assert faxes[0]["to_number"] == "+14155550101"
    assert isinstance(faxes[0]["created"], int) and faxes[0]["created"] > GREGORIAN_OFFSET

    code, out, _ = run(capsys, config, "smtplog")
    assert code == 0
    lines = out.splitlines()
    assert log_ids[2] in lines[0] and "eve@x.example" in lines[0] and "550" in lines[0]
    assert lines[1].strip() == "error: relaying denied"
    code, out, _ = run(capsys, config, "faxes", "--limit", "1")
    assert code == 0
    assert fax_ids[1] in out and "+14155550101" in out and "attaching_files" in out


def test_listing_for_an_unknown_account(capsys: pytest.CaptureFixture[str], config: Path) -> None:
    code, _, err = run(capsys, config, "faxes", "--account", "f" * 32)
    assert code == 1
    assert "no account" in err


def test_empty_listings(capsys: pytest.CaptureFixture[str], config: Path) -> None:
    assert run_json(capsys, config, "smtplog", "--json") == []
    assert run_json(capsys, config, "faxes", "--json") == []


def test_check_config_ok(capsys: pytest.CaptureFixture[str], config: Path) -> None:
    code, out, _ = run(capsys, config, "check-config")
    assert code == 0
    storage, ok = out.strip().splitlines()
    assert storage.startswith("storage: SQLite file ")  # which backend is in use
    assert ok == f"configuration ok: {config}"


def test_the_shipped_config_is_valid(capsys: pytest.CaptureFixture[str]) -> None:
    shipped = Path(__file__).resolve().parents[1] / "config" / "gateway.toml"
    assert main(["--config", str(shipped), "check-config"]) == 0


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[smtp]\nport = 'nineteen'\n", "smtp.port"),
        ("[smtp]\nno_such_key = 1\n", "smtp.no_such_key"),
        ("[nonsense]\n", "nonsense"),
        ("[smtp\n", "not valid TOML"),
        ("[smtp]\ntrusted_networks = ['10.0.0.0/33']\n", "trusted_networks"),
        ("[smtp]\ntls_cert = '/etc/x.pem'\n", "tls_cert and smtp.tls_key"),
        ("[smtp]\nrequire_tls = true\n", "require_tls"),
        ("[smtp]\ntls_cert = '/no/such.pem'\ntls_key = '/no/such.key'\n", "tls_cert"),
    ],
)
def test_check_config_broken(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "broken.toml"
    path.write_text(text)
    code, out, err = run(capsys, path, "check-config")
    assert code == 2
    assert out == ""
    assert err.startswith("fax-gateway: ")
    assert message in err


def test_missing_config(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, err = run(capsys, tmp_path / "nope.toml", "check-config")
    assert code == 2
    assert "cannot read config" in err


def test_config_from_the_environment(
    capsys: pytest.CaptureFixture[str], config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAX_GATEWAY_CONFIG", str(config))
    assert main(["check-config"]) == 0
    assert str(config) in capsys.readouterr().out
