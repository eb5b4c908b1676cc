"""SIGHUP's reload, in process: what is applied, what waits for a restart, what is refused."""

from __future__ import annotations

import asyncio
import logging
import smtplib
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway import reload
from gateway.daemon import Daemon
from tests.builders import make_email, pdf_bytes
from tests.conftest import TlsFiles, make_settings, make_tenant
from tests.daemon_process import write_config


@pytest.fixture
async def daemon(tmp_path: Path) -> AsyncIterator[Daemon]:
    config = write_config(tmp_path, 0, logging={"level": "INFO"})
    daemon = Daemon(make_settings(tmp_path), announce=lambda line: None, config_path=config)
    level = logging.getLogger().level
    await daemon.start()
    yield daemon
    await daemon.stop()
    logging.getLogger().setLevel(level)  # a reload sets the process's level


def test_merge_takes_the_reloadable_keys_only(tmp_path: Path):
    old = make_settings(tmp_path)
    new = make_settings(
        tmp_path,
        smtp={"max_pages": 5, "port": 2525, "trusted_networks": ["10.0.0.0/8"]},
        retention={"faxes_days": 30},
        logging={"level": "DEBUG", "format": "json"},
    )
    merged, ignored = reload.merge(old, new)
    assert merged.smtp.max_pages == 5 and merged.retention.faxes_days == 30
    assert merged.logging.level == "DEBUG" and merged.logging.format == "plain"
    assert merged.smtp.port == old.smtp.port and merged.smtp.trusted_networks == ()
    assert sorted(ignored) == ["logging.format", "smtp.port", "smtp.trusted_networks"]


async def test_reload_applies_limits_and_certificates(
    daemon: Daemon, tmp_path: Path, tls_files: TlsFiles, caplog: pytest.LogCaptureFixture
):
    assert daemon.smtp.tls is None
    write_config(
        tmp_path,
        0,
        smtp={
            "max_sessions": 3,
            "max_recipients": 2,
            "max_pages": 7,
            "tls_cert": str(tls_files.cert),
            "tls_key": str(tls_files.key),
        },
        logging={"level": "DEBUG"},
        retention={"smtplog_days": 9},
    )
    assert await reload.reload(daemon)
    assert daemon.smtp.counter.limit == 3
    assert daemon.smtp.handler.settings.max_recipients == 2
    assert daemon.render.settings.smtp.max_pages == 7
    assert daemon.settings.retention.smtplog_days == 9
    assert isinstance(daemon.smtp.tls, ssl.SSLContext)
    assert logging.getLogger().level == logging.DEBUG

    before = daemon.smtp.tls
    assert await reload.reload(daemon)  # the same paths: the files are read again (renewal)
    assert daemon.smtp.tls is not before


async def test_a_bad_reload_changes_nothing(
    daemon: Daemon, tmp_path: Path, caplog: pytest.LogCaptureFixture
):
    settings = daemon.settings
    broken = tmp_path / "missing.pem"
    write_config(tmp_path, 0, smtp={"tls_cert": str(broken), "tls_key": str(broken)})
    assert not await reload.reload(daemon)
    assert daemon.settings is settings and "keeping the running configuration" in caplog.text
    assert daemon.config_path is not None
    daemon.config_path.write_text("not = [valid toml")
    assert not await reload.reload(daemon)
    assert daemon.settings is settings
    daemon.config_path = None
    assert not await reload.reload(daemon)


async def test_reload_applies_bare_lf_to_new_connections(daemon: Daemon, tmp_path: Path):
    await make_tenant(daemon.store)
    raw = make_email(attachments=[(pdf_bytes(), "application/pdf", "a.pdf")]).as_bytes()

    def send() -> tuple[int, bytes]:
        with smtplib.SMTP("127.0.0.1", daemon.smtp_port, timeout=30) as client:
            try:
                client.sendmail("alice@example.com", ["+14155550100@fax.test"], raw)
            except smtplib.SMTPDataError as exc:
                return exc.smtp_code, exc.smtp_error
            return 250, b""

    assert (await asyncio.to_thread(send))[0] == 250  # bare LF line ends: made CRLF
    write_config(tmp_path, 0, smtp={"bare_lf": "reject"})
    assert await reload.reload(daemon)
    code, text = await asyncio.to_thread(send)
    assert code == 550 and b"bare LF" in text
