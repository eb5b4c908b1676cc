"""Pytest fixtures for the real far ends. A test module (or a conftest) imports the ones it
uses::

    from tests.farend.fixtures import kamailio, kamailio_factory, rtpengine, sipp  # noqa: F401

Each instance lives under the test's tmp_path (config, logs, runtime files), listens on
127.0.0.1 at free ports, and is stopped when the test ends, whatever happened. When a binary is
missing the test is skipped with the package to install (`make debs-test` installs them all).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from tests.farend.kamailio import KAMAILIO, Kamailio, KamailioConfig, running_kamailio
from tests.farend.rtpengine import RTPENGINE, Rtpengine, running_rtpengine
from tests.farend.sipp import SIPP, Sipp, SippResult, start_sipp

_PACKAGES = {KAMAILIO: "kamailio", RTPENGINE: "rtpengine-daemon", SIPP: "sip-tester"}


def require(binary: str) -> None:
    """Skip the test when a far end's binary is not installed."""
    if shutil.which(binary) is None:
        pytest.skip(f"{binary} missing: install Debian's {_PACKAGES[binary]} (make debs-test)")


KamailioFactory = Callable[..., Kamailio]


@pytest.fixture
def kamailio_factory(tmp_path: Path) -> Iterator[KamailioFactory]:
    """``start(config=None) -> Kamailio``: as many private kamailios as the test wants (each
    in tmp_path/kamailio-N), all stopped at teardown."""
    require(KAMAILIO)
    with ExitStack() as stack:
        count = 0

        def start(config: KamailioConfig | None = None) -> Kamailio:
            nonlocal count
            count += 1
            return stack.enter_context(running_kamailio(tmp_path / f"kamailio-{count}", config))

        yield start


@pytest.fixture
def kamailio(kamailio_factory: KamailioFactory) -> Kamailio:
    """A kamailio with the default config: domain fax.test, users gwa and gwb
    (``kamailio.users`` has their passwords), MD5 digest, no static routes, no rtpengine."""
    return kamailio_factory()


@pytest.fixture
def rtpengine(tmp_path: Path) -> Iterator[Rtpengine]:
    """A userspace rtpengine: ``rtpengine.client()`` speaks ng to it; pass
    ``RtpengineLink(rtpengine.ng_port, ...)`` in a KamailioConfig to put it in the media path."""
    require(RTPENGINE)
    with running_rtpengine(tmp_path / "rtpengine") as engine:
        yield engine


class SippLauncher:
    """Starts SIPp far ends for one test, each in its own directory under tmp_path, and kills
    whichever is still running at teardown."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.started: list[Sipp] = []

    def _directory(self, scenario: str) -> Path:
        return self.base / f"sipp-{len(self.started) + 1}-{Path(scenario).stem}"

    def start(self, scenario: str, **options: object) -> Sipp:
        """A SIPp running ``scenario`` in the background (a UAS to call, a UAC calling);
        options as for ``tests.farend.sipp.start_sipp``. Collect it with ``.wait()`` (or
        ``await .wait_async()`` from an async test)."""
        sipp = start_sipp(self._directory(scenario), scenario, **options)  # type: ignore[arg-type]
        self.started.append(sipp)
        return sipp

    def run(self, scenario: str, **options: object) -> SippResult:
        """Run ``scenario`` to its end (a UAC) and return the result."""
        return self.start(scenario, **options).wait()

    def register(self, kamailio: Kamailio, user: str, contact: Sipp, expires: int = 600) -> None:
        """REGISTER ``user`` at ``kamailio`` with ``contact`` (a SIPp UAS) as its Contact, with
        digest, and wait until the location table has it."""
        result = self.run(
            "uac_register",
            remote=(kamailio.host, kamailio.port),
            auth_user=user,
            auth_password=kamailio.users[user],
            keys={
                "reg_domain": kamailio.domain,
                "contact_host": contact.host,
                "contact_port": str(contact.port),
                "expires": str(expires),
            },
            timeout=20,
        )
        result.check()
        if expires:
            kamailio.wait_registered(user)

    def close(self) -> None:
        for sipp in self.started:
            sipp.daemon.stop()


@pytest.fixture
def sipp(tmp_path: Path) -> Iterator[SippLauncher]:
    require(SIPP)
    launcher = SippLauncher(tmp_path)
    yield launcher
    launcher.close()


__all__ = [
    "KamailioFactory",
    "SippLauncher",
    "kamailio",
    "kamailio_factory",
    "require",
    "rtpengine",
    "sipp",
]
