"""`make run`'s first start: the demo token printed, and the test fax — mailed through the
gateway's own SMTP listener — in the console with its page image and its smtplog row."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import httpx

from tests.console.conftest import hidden
from tests.daemon_process import Served, free_port, write_config


def test_first_start_shows_the_test_fax_with_its_page_and_smtplog_row(
    tmp_path: Path, daemons: list[Served]
) -> None:
    config = write_config(tmp_path, free_port(), bootstrap={"enabled": True, "demo_fax": True})
    daemon = Served(config, tmp_path)
    daemons.append(daemon)
    token = re.search(r"demo auth token: (\S+)", daemon.output())
    assert token, daemon.output()
    port = tomllib.loads(config.read_text())["http"]["port"]
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as browser:
        form = browser.get("/console/", follow_redirects=True)
        browser.post(
            "/console/signin",
            data={"credential": token.group(1), "signin_token": hidden(form.text, "signin_token")},
        )

        def sent() -> str | None:
            outbox = browser.get("/console/folders/outbox").text
            found = re.search(r'href="/console/faxes/([0-9a-f]+)"', outbox)
            return found.group(1) if found and "completed" in outbox else None

        fax_id = daemon.wait_for(sent, "the test fax to be sent", timeout=60)
        page = browser.get(f"/console/faxes/{fax_id}").text
        assert "fax-gateway test fax" in page
        image = browser.get(f"/console/faxes/{fax_id}/pages/1.png")
        assert image.status_code == 200 and image.content.startswith(b"\x89PNG")
        smtplog = browser.get("/console/smtplog").text
        assert f"/console/faxes/{fax_id}" in smtplog and "+14155550123@fax.test" in smtplog
