"""Mail through a real Postfix relay into the gateway: the configuration of docs/postfix.md.

A private Postfix instance (its own config, queue and data directories; nothing of the
system's Postfix is used or started) listens on a free loopback port and relays the fax
domain to the gateway's SMTP server running in this test. Mail for ``example.com`` (the
senders' domain) goes to a sink in this test, so the bounce Postfix generates for a refused
recipient can be read. No DNS is used: every next hop is a bracketed IP address.

Postfix's daemons run as the ``postfix`` user, which must reach the queue, so the instance
lives in a world-traversable directory of its own rather than in pytest's private tmp_path.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import smtplib
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from email import message_from_bytes
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.smtp import SMTP, Envelope, Session

from tests.builders import make_email, pdf_bytes
from tests.conftest import SmtpHarness, Tenant, free_port

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "postfix.md"
POSTFIX = shutil.which("postfix") or shutil.which("postfix", path="/usr/sbin:/sbin")
IS_ROOT = os.geteuid() == 0

if POSTFIX is None and not IS_ROOT:
    pytest.skip(
        "postfix is not installed and we are not root to install it (`make debs-test` as root"
        " installs it)",
        allow_module_level=True,
    )


def ensure_postfix() -> str:
    """The postfix binary; as root, install Debian's package when it is missing (what the
    Makefile's debs-test does, for a run of pytest alone). "No configuration" keeps the
    package from configuring or starting the system's own Postfix."""
    if POSTFIX is not None:
        return POSTFIX
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(
        ["debconf-set-selections"],
        input=b"postfix postfix/main_mailer_type select No configuration\n",
        check=True,
        env=env,
    )
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(
        ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "postfix"],
        check=True,
        env=env,
    )
    found = shutil.which("postfix", path="/usr/sbin:/sbin")
    assert found, "postfix did not install"
    return found


def documented_block() -> str:
    """The main.cf lines docs/postfix.md tells the mail admin to add."""
    text = DOC.read_text()
    found = re.search(
        r"# --- fax-gateway relay: begin ---\n(.*?)# --- fax-gateway relay: end ---", text, re.S
    )
    assert found, "docs/postfix.md lost its main.cf block"
    return found.group(1)


MASTER_CF = """\
{listen} inet  n - n - - smtpd
pickup    unix  n - n 60 1 pickup
cleanup   unix  n - n - 0 cleanup
qmgr      unix  n - n 300 1 qmgr
rewrite   unix  - - n - - trivial-rewrite
bounce    unix  - - n - 0 bounce
defer     unix  - - n - 0 bounce
trace     unix  - - n - 0 bounce
verify    unix  - - n - 1 verify
flush     unix  n - n 1000? 0 flush
proxymap  unix  - - n - - proxymap
smtp      unix  - - n - - smtp
relay     unix  - - n - - smtp
error     unix  - - n - - error
retry     unix  - - n - - error
discard   unix  - - n - - discard
anvil     unix  - - n - 1 anvil
scache    unix  - - n - 1 scache
showq     unix  n - n - - showq
postlog   unix-dgram n - n - 1 postlogd
"""

# What a private test instance needs beside the documented block: its own directories, a
# loopback listener, no local delivery, no DNS, and retries within seconds.
INSTANCE_CF = """\
compatibility_level = 3.6
queue_directory = {base}/queue
data_directory = {base}/data
mail_owner = postfix
setgid_group = postdrop
myhostname = relay.example.net
mydomain = example.net
myorigin = $myhostname
mydestination =
local_transport = error:5.1.1 no local delivery on this relay
alias_maps =
alias_database =
inet_interfaces = loopback-only
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
default_transport = error:5.7.1 this test relay sends nowhere else
smtp_host_lookup = native
smtp_dns_support_level = disabled
smtpd_peername_lookup = no
queue_run_delay = 1s
minimal_backoff_time = 1s
maximal_backoff_time = 2s
maillog_file = {base}/data/maillog
maillog_file_prefixes = {base}
syslog_name = postfix-faxtest
"""


@dataclass
class Postfix:
    binary: str
    base: Path
    port: int

    @property
    def conf(self) -> Path:
        return self.base / "conf"

    def log(self) -> str:
        path = self.base / "data" / "maillog"
        return path.read_text(errors="replace") if path.exists() else ""

    def postfix(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [self.binary, "-c", str(self.conf), *args],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    def master_pid(self) -> int | None:
        try:
            return int((self.base / "queue" / "pid" / "master.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None


def configure(base: Path, port: int, gateway_port: int, sink_port: int, fax_domain: str) -> None:
    conf = base / "conf"
    for folder in (conf, base / "queue", base / "data"):
        folder.mkdir(parents=True)
    shutil.chown(base / "data", "postfix", "postfix")  # master.lock, maillog: as postfix
    (conf / "fax_domains").write_text(f"{fax_domain} OK\n.{fax_domain} OK\n")
    (conf / "fax_transport").write_text(
        f"{fax_domain} smtp:[127.0.0.1]:19025\n"
        f".{fax_domain} smtp:[127.0.0.1]:19025\n"
        # The senders' domain (test only): bounces go to the sink.
        f"example.com smtp:[127.0.0.1]:{sink_port}\n"
    )
    block = documented_block().replace("/etc/postfix/", f"{conf}/")
    main_cf = INSTANCE_CF.format(base=base) + block
    (conf / "main.cf").write_text(main_cf.replace(":19025", f":{gateway_port}"))
    transport = (conf / "fax_transport").read_text().replace(":19025", f":{gateway_port}")
    (conf / "fax_transport").write_text(transport)
    (conf / "master.cf").write_text(MASTER_CF.format(listen=f"127.0.0.1:{port}"))
    # Postfix's daemons run as ``postfix`` and read the config: whatever the test's umask.
    for folder in (conf, base / "queue"):
        folder.chmod(0o755)
    for file in conf.iterdir():
        file.chmod(0o644)


@dataclass
class Sink:
    """An SMTP server that keeps what it receives (the senders' mail server)."""

    messages: list[Envelope] = field(default_factory=list)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.messages.append(envelope)
        return "250 2.0.0 OK"


@pytest.fixture
async def sink() -> AsyncIterator[tuple[Sink, int]]:
    handler = Sink()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(handler, hostname="mx.example.com"), "127.0.0.1", 0
    )
    yield handler, int(server.sockets[0].getsockname()[1])
    server.close()


@pytest.fixture
async def postfix(
    smtp: SmtpHarness, tenant: Tenant, sink: tuple[Sink, int]
) -> AsyncIterator[Postfix]:
    binary = await asyncio.to_thread(ensure_postfix)
    base = Path(tempfile.mkdtemp(prefix="fax-postfix-"))
    base.chmod(0o755)  # the postfix user must reach the queue inside
    instance = Postfix(binary, base, free_port())
    try:
        configure(base, instance.port, smtp.port, sink[1], tenant.domain)
        checked = await asyncio.to_thread(instance.postfix, "check")
        assert checked.returncode == 0, checked.stdout + checked.stderr + instance.log()
        started = await asyncio.to_thread(instance.postfix, "start")
        assert started.returncode == 0, started.stdout + started.stderr + instance.log()
        yield instance
    finally:
        pid = instance.master_pid()
        await asyncio.to_thread(instance.postfix, "stop")
        await _wait_gone(pid)
        shutil.rmtree(base, ignore_errors=True)


async def _wait_gone(pid: int | None, timeout: float = 20) -> None:
    if pid is None:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        await asyncio.sleep(0.1)
    os.kill(pid, 9)


async def until(check: Callable[[], Awaitable[Any]], what: str, log: Callable[[], str]) -> Any:
    deadline = time.monotonic() + 40
    while time.monotonic() < deadline:
        value = await check()
        if value:
            return value
        await asyncio.sleep(0.1)
    pytest.fail(f"timed out waiting for {what}; postfix log:\n{log()}")


async def test_mail_through_postfix_becomes_a_fax_and_refusals_bounce(
    postfix: Postfix, smtp: SmtpHarness, tenant: Tenant, sink: tuple[Sink, int]
):
    good = make_email(
        to=f"+14155550100@{tenant.domain}",
        attachments=[(pdf_bytes(2), "application/pdf", "contract.pdf")],
    )
    bad = make_email(
        to=f"12@{tenant.domain}", attachments=[(pdf_bytes(1), "application/pdf", "x.pdf")]
    )

    def submit() -> None:
        with smtplib.SMTP("127.0.0.1", postfix.port, local_hostname="client.example.com") as c:
            c.send_message(good, "alice@example.com", [f"+14155550100@{tenant.domain}"])
            c.send_message(bad, "alice@example.com", [f"12@{tenant.domain}"])

    await asyncio.to_thread(submit)  # Postfix takes both: it does not know the numbers

    async def the_fax() -> Any:
        return [f for f in await smtp.store.recent_faxes(None, 10) if f.message_id]

    [fax] = await until(the_fax, "the fax job", postfix.log)
    assert fax.message_id == good["Message-ID"]
    assert fax.to_number == "+14155550100" and fax.status.value == "attaching_files"
    await until(lambda: _sent_line(postfix, fax.id), "postfix's status=sent line", postfix.log)

    bounces, _ = sink
    await until(_at_least_one(bounces), "the bounce", postfix.log)
    [bounce] = bounces.messages
    assert bounce.mail_from == "<>" or bounce.mail_from == ""  # a bounce has a null sender
    assert bounce.rcpt_tos == ["alice@example.com"]
    dsn = message_from_bytes(bounce.original_content or b"")
    assert dsn.get_content_type() == "multipart/report"
    # Postfix folds long lines: compare with the whitespace unfolded.
    text = " ".join((bounce.original_content or b"").decode("utf-8", "replace").split())
    said = f"<12@{tenant.domain}>: host 127.0.0.1[127.0.0.1] said: 550 5.1.1 12 is not a valid"
    assert f"{said} fax number" in text
    assert "Status: 5.1.1" in text
    assert "Diagnostic-Code: smtp; 550 5.1.1 12 is not a valid fax number" in text

    log = [e for e in await smtp.smtplog() if e.helo == "relay.example.net"]
    accepted = [e for e in log if e.reply_code == 250]
    refused = [e for e in log if any(r.reply.startswith("550 5.1.1") for r in e.recipients)]
    assert len(accepted) == 1 and accepted[0].fax_ids == [fax.id]
    assert accepted[0].message_id == good["Message-ID"] and accepted[0].peer_ip == "127.0.0.1"
    assert len(refused) == 1 and refused[0].mail_from == "alice@example.com"


async def _sent_line(postfix: Postfix, fax_id: str) -> bool:
    return f"status=sent (250 2.0.0 queued as {fax_id})" in postfix.log()


def _at_least_one(sink: Sink) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return bool(sink.messages)

    return check
