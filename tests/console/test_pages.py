"""What the console's pages show and do: escaping, account isolation, page images, actions,
the smtplog's reasons, faxbox edits."""

from __future__ import annotations

import io
import uuid

import httpx
from PIL import Image

from gateway.models import FaxStatus, RecipientOutcome, SmtpLogEntry
from gateway.routing import validate_rule
from gateway.store import Store
from tests.api.conftest import ADMIN, Created, seed_fax
from tests.conftest import Clock, Tenant
from tests.console.conftest import CONSOLE, hidden, sign_in

SCRIPT = "<script>alert(1)</script>"


async def _refused_log(store: Store, tenant: Tenant, clock: Clock, **fields: object) -> str:
    entry_id = uuid.uuid4().hex
    values: dict[str, object] = {
        "peer_ip": "192.0.2.7",
        "mail_from": "mallory@evil.test",
        "message_id": "<m1@evil.test>",
        "subject": "hello",
        "reply_code": 550,
        "reply_text": "550 5.7.1 sender mallory@evil.test is not permitted for this faxbox",
        "errors": ["sender mallory@evil.test is not permitted for this faxbox"],
        "recipients": [
            RecipientOutcome(
                f"+14155550100@{tenant.domain}",
                "550 5.7.1 sender not permitted",
                account_id=tenant.account_id,
                faxbox_id=tenant.faxbox.id,
            )
        ],
    }
    values.update(fields)
    await store.write_smtplog(SmtpLogEntry(entry_id, clock() - 60, **values))  # type: ignore[arg-type]
    return entry_id


async def test_a_subject_and_a_filename_carrying_script_are_shown_as_text(
    browser: httpx.AsyncClient, store: Store, tenant: Tenant, clock: Clock
) -> None:
    fax = await seed_fax(store, tenant, subject=SCRIPT, created=clock() - 30)
    log_id = await _refused_log(
        store, tenant, clock, subject=SCRIPT, documents=[{"filename": f"{SCRIPT}.pdf"}]
    )
    await sign_in(browser, tenant.auth_token)
    for path in (
        "/folders/outbox",
        f"/faxes/{fax.id}",
        f"/faxes/{fax.id}/delete",
        f"/smtplog/{log_id}",
        "/smtplog",
    ):
        page = await browser.get(CONSOLE + path)
        assert page.status_code == 200, path
        assert SCRIPT not in page.text, path
    assert (
        "&lt;script&gt;alert(1)&lt;/script&gt;"
        in (await browser.get(f"{CONSOLE}/faxes/{fax.id}")).text
    )
    entry = (await browser.get(f"{CONSOLE}/smtplog/{log_id}")).text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;.pdf" in entry


async def test_an_account_never_sees_another_accounts_faxes_pages_or_smtplog(
    browser: httpx.AsyncClient, store: Store, tenant: Tenant, other: Tenant, clock: Clock
) -> None:
    theirs = await seed_fax(store, other, pages=1, subject="globex secret", created=clock() - 30)
    their_log = await _refused_log(store, other, clock, subject="globex smtp secret")
    await sign_in(browser, tenant.auth_token)
    for path in (
        f"/faxes/{theirs.id}",
        f"/faxes/{theirs.id}/pages/1.png",
        f"/faxes/{theirs.id}/download/pdf",
        f"/faxes/{theirs.id}/resend",
        f"/smtplog/{their_log}",
    ):
        assert (await browser.get(CONSOLE + path)).status_code == 404, path
    # ?account= is the admin's choice only: an account's viewer always sees its own.
    outbox = await browser.get(f"{CONSOLE}/folders/outbox?account={other.account_id}")
    assert "globex secret" not in outbox.text
    assert "globex smtp secret" not in (await browser.get(f"{CONSOLE}/smtplog")).text
    csrf = hidden(outbox.text, "csrf")
    answer = await browser.post(f"{CONSOLE}/faxes/{theirs.id}/delete", data={"csrf": csrf})
    assert answer.status_code == 404
    assert (await store.get_fax(theirs.id)).id == theirs.id


async def test_the_admin_sees_any_accounts_fax(
    browser: httpx.AsyncClient, store: Store, other: Tenant, clock: Clock
) -> None:
    theirs = await seed_fax(store, other, pages=1, subject="globex fax", created=clock() - 30)
    await sign_in(browser, ADMIN)
    choose = await browser.get(f"{CONSOLE}/folders/outbox")
    assert f'href="?account={other.account_id}"' in choose.text
    outbox = await browser.get(f"{CONSOLE}/folders/outbox?account={other.account_id}")
    assert "globex fax" in outbox.text
    assert (await browser.get(f"{CONSOLE}/faxes/{theirs.id}")).status_code == 200


async def test_each_page_of_a_fax_is_a_png_sized_for_a_screen(
    browser: httpx.AsyncClient, store: Store, tenant: Tenant, clock: Clock
) -> None:
    fax = await seed_fax(store, tenant, pages=1, created=clock() - 30)
    await sign_in(browser, tenant.auth_token)
    page = await browser.get(f"{CONSOLE}/faxes/{fax.id}")
    assert f"/faxes/{fax.id}/pages/1.png" in page.text
    image = await browser.get(f"{CONSOLE}/faxes/{fax.id}/pages/1.png")
    assert image.headers["content-type"] == "image/png"
    with Image.open(io.BytesIO(image.content)) as png:
        assert png.width == 850 and png.height > 500
    assert (await browser.get(f"{CONSOLE}/faxes/{fax.id}/pages/2.png")).status_code == 404
    tiff = await browser.get(f"{CONSOLE}/faxes/{fax.id}/download/tiff")
    assert tiff.headers["content-type"] == "image/tiff" and tiff.content[:2] in (b"II", b"MM")


async def test_resending_a_failed_fax_makes_a_new_job_after_confirmation(
    browser: httpx.AsyncClient, store: Store, tenant: Tenant, clock: Clock, created: Created
) -> None:
    failed = await seed_fax(store, tenant, FaxStatus.FAILED, pages=1, created=clock() - 30)
    await sign_in(browser, tenant.auth_token)
    confirm = await browser.get(f"{CONSOLE}/faxes/{failed.id}/resend")
    assert confirm.status_code == 200 and "Yes, resend" in confirm.text
    refused = await browser.post(f"{CONSOLE}/faxes/{failed.id}/resend", data={"csrf": "x"})
    assert refused.status_code == 403 and created.calls == 0
    answer = await browser.post(
        f"{CONSOLE}/faxes/{failed.id}/resend", data={"csrf": hidden(confirm.text, "csrf")}
    )
    assert answer.status_code == 303
    new_id = answer.headers["location"].split("/faxes/")[1].split("?")[0]
    assert new_id != failed.id and created.calls == 1
    copy = await store.get_fax(new_id, tenant.account_id)
    assert copy.to_number == "+14155550100" and copy.status is not FaxStatus.FAILED


async def test_cancel_and_delete_use_the_stores_operations(
    browser: httpx.AsyncClient, store: Store, tenant: Tenant, clock: Clock
) -> None:
    pending = await seed_fax(store, tenant, FaxStatus.PENDING, created=clock() - 30)
    await sign_in(browser, tenant.auth_token)
    csrf = hidden((await browser.get(f"{CONSOLE}/faxes/{pending.id}/cancel")).text, "csrf")
    await browser.post(f"{CONSOLE}/faxes/{pending.id}/cancel", data={"csrf": csrf})
    assert (await store.get_fax(pending.id)).status is FaxStatus.FAILED
    await browser.post(f"{CONSOLE}/faxes/{pending.id}/delete", data={"csrf": csrf})
    assert (await browser.get(f"{CONSOLE}/faxes/{pending.id}")).status_code == 404


async def test_a_refused_message_reads_its_reason_in_plain_words_and_is_searchable(
    browser: httpx.AsyncClient, store: Store, tenant: Tenant, clock: Clock
) -> None:
    log_id = await _refused_log(store, tenant, clock)
    await _refused_log(store, tenant, clock, mail_from="bob@example.com", message_id="<b@x>")
    await sign_in(browser, tenant.auth_token)
    found = await browser.get(f"{CONSOLE}/smtplog", params={"sender": "mallory"})
    assert "not on this faxbox&#39;s list" in found.text
    assert "bob@example.com" not in found.text
    by_id = await browser.get(f"{CONSOLE}/smtplog", params={"message_id": "<b@x>"})
    assert "bob@example.com" in by_id.text and "mallory" not in by_id.text
    entry = await browser.get(f"{CONSOLE}/smtplog/{log_id}")
    assert "192.0.2.7" in entry.text and "550 5.7.1 sender mallory@evil.test" in entry.text


async def test_a_faxbox_edit_is_validated_as_the_api_does(
    browser: httpx.AsyncClient, store: Store, tenant: Tenant
) -> None:
    await sign_in(browser, tenant.auth_token)
    url = f"{CONSOLE}/faxboxes/{tenant.faxbox.id}"
    form = await browser.get(url)
    fields = {
        "csrf": hidden(form.text, "csrf"),
        "caller_id": "not a number",
        "caller_name": "Sales",
        "fax_header": "ACME Sales",
        "smtp_permission_list": "*@example.com\n*@acme.test",
        "outbound_notify": "ops@acme.test",
        "inbound_notify": "",
    }
    bad = await browser.post(url, data=fields)
    assert bad.status_code == 400 and 'role="alert"' in bad.text
    assert (await store.get_faxbox(tenant.faxbox.id)).fax_header == "ACME Corp"
    good = await browser.post(url, data={**fields, "caller_id": "+14155550123"})
    assert good.status_code == 303
    box = await store.get_faxbox(tenant.faxbox.id)
    assert box.caller_id == "+14155550123" and box.fax_header == "ACME Sales"
    # Stored as the API stores them: the routing module's normalized form of each rule.
    assert box.smtp_permission_list == tuple(
        validate_rule(r) for r in ("*@example.com", "*@acme.test")
    )
