"""Real ``fax-gateway serve`` processes with ``[transport] kind = "sip"``, for the
gateway-to-gateway tests: a config per gateway (its own SQLite, SMTP, HTTP, SIP port and RTP
range on 127.0.0.1), an account and a faxbox made with the CLI before the start, a fax mailed
in over SMTP, and the outcome read back over the HTTP API.

The daemons run the media clock at its real 20 ms pace, so every wait here is bounded by a
generous guard (``GUARD_S``), never asserted on.
"""

from __future__ import annotations

import json
import smtplib
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.builders import make_email, pdf_bytes
from tests.conftest import free_port, transact
from tests.daemon_process import Served, cli, write_config
from tests.farend.process import free_port_block

HOST = "127.0.0.1"
GUARD_S = 150.0  # wall seconds a fax may take before the test gives up (never an assertion)
POLL_S = 0.25
SENDER = "alice@example.com"
RTP_PORTS = 20  # per gateway: ten calls' worth of even/odd pairs


def sip_keys(**keys: Any) -> dict[str, Any]:
    """``[transport.sip]`` for a test gateway on loopback: a free SIP port (UDP and TCP) and a
    private RTP range, short SIP timers, ring timeout and media silence; ``keys`` override."""
    rtp_min = free_port_block(RTP_PORTS, protos=("udp",), even=True)
    values: dict[str, Any] = {
        "listen_host": HOST,
        "listen_port": free_port_block(1, protos=("udp", "tcp")),
        "rtp_port_min": rtp_min,
        "rtp_port_max": rtp_min + RTP_PORTS - 1,
        "t1_ms": 100,
        "ring_timeout_s": 10,
        "media_silence_s": 6,
    }
    values.update(keys)
    return values


@dataclass
class Gateway:
    """One configured gateway; ``start()`` runs its daemon."""

    name: str
    folder: Path
    config: Path
    smtp_port: int
    http_port: int
    sip: dict[str, Any]
    account_id: str = ""
    token: str = ""
    faxboxes: list[dict[str, Any]] = field(default_factory=list)
    daemon: Served | None = None

    @property
    def sip_port(self) -> int:
        return int(self.sip["listen_port"])

    def create_faxbox(self, **options: str) -> dict[str, Any]:
        """An account (the first time) and a faxbox in it, through the CLI; ``options`` are
        ``faxboxes create`` flags without the dashes (``fax_number="+1..."``)."""
        if not self.account_id:
            account = _cli_json(self.config, "accounts", "create", "--name", self.name)
            self.account_id, self.token = account["id"], account["auth_token"]
        args = ["faxboxes", "create", "--account", self.account_id, "--name", self.name]
        for key, value in options.items():
            args += [f"--{key.replace('_', '-')}", value]
        faxbox = _cli_json(self.config, *args)
        self.faxboxes.append(faxbox)
        return faxbox

    def start(self, daemons: list[Served]) -> Served:
        self.daemon = Served(self.config, self.folder)
        daemons.append(self.daemon)
        return self.daemon

    @property
    def served(self) -> Served:
        assert self.daemon is not None, f"gateway {self.name} is not started"
        return self.daemon

    def mail(self, to: str, pages: int) -> str:
        """Mail a PDF of ``pages`` pages to ``to`` over SMTP; the fax id the gateway queued."""
        message = make_email(to=to, attachments=[(pdf_bytes(pages), "application/pdf", "d.pdf")])
        with smtplib.SMTP(HOST, self.smtp_port, local_hostname="c.test", timeout=30) as client:
            outcome = transact(client, SENDER, [to], message)
        [fax_id] = outcome.fax_ids
        return fax_id

    def api(self, path: str) -> Any:
        """GET an account path of the HTTP API (``faxes/inbox``); its ``data``."""
        url = f"http://{HOST}:{self.http_port}/v2/accounts/{self.account_id}/{path}"
        request = urllib.request.Request(url, headers={"X-Auth-Token": self.token})
        with urllib.request.urlopen(request, timeout=10) as reply:
            return json.loads(reply.read())["data"]

    def healthz(self) -> int:
        try:
            with urllib.request.urlopen(f"http://{HOST}:{self.http_port}/healthz", timeout=10):
                return 200
        except urllib.error.HTTPError as error:
            return error.code

    def outbound(self, fax_id: str) -> dict[str, Any]:
        """The whole outbound fax (``attempts_log`` included), wherever it is."""
        for folder in ("outbox", "outgoing"):
            try:
                fax: dict[str, Any] = self.api(f"faxes/{folder}/{fax_id}")
            except urllib.error.HTTPError as error:
                if error.code == 404:
                    continue
                raise
            return fax
        raise AssertionError(f"gateway {self.name} has no outbound fax {fax_id}")

    def inbox(self) -> list[dict[str, Any]]:
        return list(self.api("faxes/inbox"))

    def incoming(self) -> list[dict[str, Any]]:
        return list(self.api("faxes/incoming"))

    def output(self) -> str:
        return self.served.output()


def configure(folder: Path, name: str, sip: dict[str, Any], **sections: dict[str, Any]) -> Gateway:
    """A gateway's config in ``folder/name`` (``sip`` is its whole ``[transport.sip]``); the
    worker retries at once, so that a retry the test does not expect would show."""
    home = folder / name
    home.mkdir(parents=True, exist_ok=True)
    smtp_port, http_port = free_port(), free_port()
    worker = {"poll_s": 0.1, "drain_timeout_s": 5, "retry_busy_s": 0, "retry_no_answer_s": 0}
    worker["retry_line_s"] = 0
    worker.update(sections.pop("worker", {}))
    config = write_config(
        home,
        smtp_port,
        smtp={"default_smtp_domain": f"{name}.test"},
        http={"host": HOST, "port": http_port},
        worker=worker,
        transport={"kind": "sip"},
        **{"transport.sip": sip},
        **sections,
    )
    return Gateway(name, home, config, smtp_port, http_port, sip)


def _cli_json(config: Path, *args: str) -> dict[str, Any]:
    done = cli(config, *args)
    assert done.returncode == 0, f"fax-gateway {' '.join(args)}: {done.stderr}"
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def poll(
    condition: Callable[[], Any], what: str, *gateways: Gateway, timeout: float = GUARD_S
) -> Any:
    """Poll ``condition`` every POLL_S until it is truthy (its value); fail, with the daemons'
    logs, when one of them exits or the guard runs out."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        for gateway in gateways:
            process = gateway.served.process
            if process.poll() is not None:
                pytest.fail(
                    f"gateway {gateway.name} exited ({process.returncode}) waiting for "
                    f"{what}:\n{logs(*gateways)}"
                )
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}:\n{logs(*gateways)}")
        time.sleep(POLL_S)


def logs(*gateways: Gateway, tail: int = 60) -> str:
    parts = []
    for gateway in gateways:
        lines = [line for line in gateway.output().splitlines() if "uvicorn.access" not in line]
        lines = lines[-tail:]
        parts.append(f"--- gateway {gateway.name} ---\n" + "\n".join(lines))
    return "\n".join(parts)


def finished(gateway: Gateway, fax_id: str) -> Callable[[], dict[str, Any] | None]:
    """A ``poll`` condition: the outbound fax once it is completed or failed."""

    def check() -> dict[str, Any] | None:
        fax = gateway.outbound(fax_id)
        return fax if fax["status"] in ("completed", "failed") else None

    return check


def one_in_inbox(gateway: Gateway) -> Callable[[], dict[str, Any] | None]:
    """A ``poll`` condition: the inbound fax, once exactly one reached the inbox."""

    def check() -> dict[str, Any] | None:
        inbox = gateway.inbox()
        assert len(inbox) <= 1, inbox
        return inbox[0] if inbox else None

    return check
