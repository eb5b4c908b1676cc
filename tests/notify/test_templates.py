"""Templates: every documented variable renders; mistakes are caught when they are loaded."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from gateway.config import NotificationSettings, SmsWebhookSettings
from gateway.errors import ConfigError
from gateway.models import NotificationEvent
from gateway.notify import VARIABLES, check_settings, load_templates
from gateway.notify.templates import fax_variables
from gateway.store import Store
from tests.conftest import Tenant
from tests.notify.support import TEMPLATES, finished_fax

REPO = Path(__file__).resolve().parents[2]


def write_templates(folder: Path, email: str, sms: str = "$fax_id") -> Path:
    folder.mkdir(exist_ok=True)
    for event in NotificationEvent:
        (folder / f"{event.value}.email.txt").write_text(email)
        (folder / f"{event.value}.sms.txt").write_text(sms)
    return folder


async def variables_of(store: Store, tenant: Tenant, outcome: str = "completed") -> dict[str, str]:
    fax_id = await finished_fax(store, tenant, outcome=outcome, pages=4)
    [notification] = await store.notifications_of_fax(fax_id)
    fax = await store.get_fax(fax_id)
    return fax_variables(fax, tenant.faxbox, notification, f"fax-{fax_id}.pdf")


async def test_every_documented_variable_renders(
    store: Store, tenant: Tenant, tmp_path: Path
) -> None:
    body = "\n".join(f"{name}=[${{{name}}}]" for name in VARIABLES)
    templates = load_templates(write_templates(tmp_path / "t", f"Subject: $fax_id\n\n{body}\n"))
    variables = await variables_of(store, tenant)
    assert set(variables) == set(VARIABLES)
    _, text = templates.render_email(NotificationEvent.OUTBOUND_COMPLETED, variables)
    rendered = dict(re.findall(r"^(\w+)=\[(.*)\]$", text, re.M))
    fax_id = variables["fax_id"]
    assert rendered == {
        "fax_id": fax_id,
        "event": "outbound_completed",
        "status": "completed",
        "direction": "outbound",
        "to": "Bob's Bakery (+12125550188)",
        "to_number": "+12125550188",
        "to_name": "Bob's Bakery",
        "from": "ACME (+14155550199)",
        "from_number": "+14155550199",
        "from_name": "ACME",
        "pages": "4",
        "pages_sent": "4",
        "attempts": "1",
        "retries": "3",
        "time": "2027-01-15 09:00:00 CET",
        "submitted": "2027-01-15 09:00:00 CET",
        "timezone": "Europe/Paris",
        "result": "OK",
        "error": "",
        "remote_id": "+1 212 555 0188",
        "speed": "14400",
        "subject": "Quarterly report",
        "faxbox_name": "acme",
        "faxbox_id": tenant.faxbox.id,
        "account_id": tenant.account_id,
        "recipient": "alice@example.com",
        "attachment": f"fax-{fax_id}.pdf",
    }


async def test_a_failure_has_its_error_and_result(store: Store, tenant: Tenant) -> None:
    variables = await variables_of(store, tenant, outcome="failed")
    assert (variables["error"], variables["result"], variables["pages_sent"]) == (
        "the line was busy",
        "busy",
        "0",
    )


async def test_shipped_templates_render_for_every_event(store: Store, tenant: Tenant) -> None:
    templates = load_templates(TEMPLATES)
    variables = await variables_of(store, tenant)
    for event in NotificationEvent:
        subject, body = templates.render_email(event, variables)
        assert subject and "$" not in subject and variables["fax_id"] in body
        assert "\n" not in templates.render_sms(event, variables)


async def test_subject_stays_one_line_whatever_the_fax_holds(
    store: Store, tenant: Tenant, tmp_path: Path
) -> None:
    templates = load_templates(write_templates(tmp_path / "t", "Subject: Re: $subject\n\nx\n"))
    variables = await variables_of(store, tenant)
    variables["subject"] = "evil\r\nBcc: everyone@example.com"
    subject, _ = templates.render_email(NotificationEvent.OUTBOUND_COMPLETED, variables)
    assert subject == "Re: evil Bcc: everyone@example.com"


@pytest.mark.parametrize(
    ("email", "sms", "error"),
    [
        ("Subject: $fax_idd\n\nbody\n", "$fax_id", r"\(subject\): unknown variable\(s\) fax_idd"),
        ("Subject: ok\n\n$pages and $colour\n", "$fax_id", r"unknown variable\(s\) colour"),
        ("Subject: ok\n\ncosts $5\n", "$fax_id", r"write '\$\$' for '\$'"),
        ("no subject line\n\nbody\n", "$fax_id", "must start with a 'Subject:' line"),
        ("Subject: ok\n\nbody\n", "$nope", r"\.sms\.txt: unknown variable\(s\) nope"),
    ],
)
def test_template_mistakes_are_config_errors(
    tmp_path: Path, email: str, sms: str, error: str
) -> None:
    with pytest.raises(ConfigError, match=error):
        load_templates(write_templates(tmp_path / "t", email, sms))


def test_a_missing_template_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"cannot read notification template .*outbound"):
        load_templates(tmp_path)


def test_dollar_dollar_is_a_literal_dollar(tmp_path: Path) -> None:
    templates = load_templates(write_templates(tmp_path / "t", "Subject: $$5\n\nx\n"))
    assert templates.render_email(NotificationEvent.INBOUND_FAILED, {})[0] == "$5"


def test_docs_list_every_variable_and_the_config_every_key() -> None:
    docs = (REPO / "docs" / "notifications.md").read_text()
    for name in VARIABLES:
        assert f"| `${name}` |" in docs, name
    toml = (REPO / "config" / "gateway.toml").read_text()
    section = toml.split("[notifications]", 1)[1].split("\n[bootstrap]", 1)[0]
    for key in NotificationSettings.model_fields.keys() - {"sms"}:
        assert re.search(rf"^#? ?{key} = ", section, re.M), key
    sms = section.split("[notifications.sms]", 1)[1]
    for key in SmsWebhookSettings.model_fields:
        assert re.search(rf"^(#? ?{key} = |\[notifications\.sms\.{key}\])", sms, re.M), key
    tomllib.loads(toml)


def test_check_settings_reports_what_the_notifier_would_refuse(tmp_path: Path) -> None:
    check_settings(NotificationSettings(templates_dir=TEMPLATES, smarthost_host="127.0.0.1"))
    with pytest.raises(ConfigError, match="cannot read notification template"):
        check_settings(NotificationSettings(templates_dir=tmp_path))
    with pytest.raises(ConfigError, match="smarthost_ca_file"):
        check_settings(
            NotificationSettings(
                templates_dir=TEMPLATES,
                smarthost_host="127.0.0.1",
                smarthost_ca_file=tmp_path / "missing.pem",
            )
        )
