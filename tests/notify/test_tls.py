"""The smarthost over STARTTLS with AUTH, and over implicit TLS, with trustme certificates; a
smarthost that cannot do what is configured is retried, never used in plain text."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from gateway.models import NotificationState
from gateway.store import Store
from tests.conftest import Tenant
from tests.notify.conftest import MakeNotifier
from tests.notify.support import Collector, finished_fax

trustme = pytest.importorskip("trustme")


@dataclass
class Pki:
    ca_file: Path
    server_context: ssl.SSLContext


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    ca = trustme.CA()
    folder = tmp_path_factory.mktemp("pki")
    ca_file = folder / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    return Pki(ca_file, context)


def authenticator(
    server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
) -> AuthResult:
    ok = isinstance(data, LoginPassword) and (data.login, data.password) == (b"gateway", b"pw")
    return AuthResult(success=ok, handled=False, auth_data=data if ok else None)


@pytest.fixture
async def starttls_sink(pki: Pki) -> AsyncIterator[Collector]:
    sink = Collector(
        smtp_kwargs={
            "tls_context": pki.server_context,
            "require_starttls": True,
            "auth_required": True,
            "authenticator": authenticator,
        }
    )
    await sink.start()
    yield sink
    await sink.stop()


async def test_starttls_and_auth(
    store: Store, tenant: Tenant, pki: Pki, starttls_sink: Collector, make_notifier: MakeNotifier
) -> None:
    fax_id = await finished_fax(store, tenant)
    notifier = make_notifier(
        starttls_sink.port,
        smarthost_tls="starttls",
        smarthost_user="gateway",
        smarthost_password="pw",
        smarthost_ca_file=str(pki.ca_file),
    )
    await notifier.run_until_idle()
    [received] = starttls_sink.received
    assert (received.tls, received.auth_user) == (True, "gateway")
    [row] = await store.notifications_of_fax(fax_id)
    assert row.state is NotificationState.SENT


async def test_wrong_password_is_retried_not_dropped(
    store: Store, tenant: Tenant, pki: Pki, starttls_sink: Collector, make_notifier: MakeNotifier
) -> None:
    fax_id = await finished_fax(store, tenant)
    notifier = make_notifier(
        starttls_sink.port,
        smarthost_tls="starttls",
        smarthost_user="gateway",
        smarthost_password="wrong",
        smarthost_ca_file=str(pki.ca_file),
    )
    await notifier.run_until_idle()
    [row] = await store.notifications_of_fax(fax_id)
    assert row.state is NotificationState.PENDING  # the operator can fix the password
    assert row.error is not None and "535" in row.error
    assert starttls_sink.received == []


async def test_implicit_tls(
    store: Store, tenant: Tenant, pki: Pki, make_notifier: MakeNotifier
) -> None:
    sink = Collector(ssl_context=pki.server_context)
    await sink.start()
    try:
        await finished_fax(store, tenant)
        notifier = make_notifier(sink.port, smarthost_tls="tls", smarthost_ca_file=str(pki.ca_file))
        await notifier.run_until_idle()
        [received] = sink.received
        assert received.tls
    finally:
        await sink.stop()


async def test_an_untrusted_certificate_is_refused(
    store: Store, tenant: Tenant, starttls_sink: Collector, make_notifier: MakeNotifier
) -> None:
    fax_id = await finished_fax(store, tenant)
    notifier = make_notifier(
        starttls_sink.port,
        smarthost_tls="starttls",
        smarthost_user="gateway",
        smarthost_password="pw",
    )  # no CA file: the system CAs do not know trustme's
    await notifier.run_until_idle()
    [row] = await store.notifications_of_fax(fax_id)
    assert row.state is NotificationState.PENDING
    assert row.error is not None and "CERTIFICATE_VERIFY_FAILED" in row.error
    assert starttls_sink.received == []


async def test_starttls_required_never_falls_back_to_plain(
    store: Store, tenant: Tenant, collector: Collector, make_notifier: MakeNotifier
) -> None:
    fax_id = await finished_fax(store, tenant)
    await make_notifier(collector.port, smarthost_tls="starttls").run_until_idle()
    [row] = await store.notifications_of_fax(fax_id)
    assert row.state is NotificationState.PENDING
    assert row.error is not None and "STARTTLS" in row.error
    assert collector.received == []
