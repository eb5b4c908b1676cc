"""``systemd/fax-gateway.service``: what the unit promises, ``systemd-analyze verify`` and
``systemd-analyze security`` (rated "OK" or better), and the sysusers file.

systemd-analyze works offline on unit files, so this runs in containers without systemd as
PID 1; the Makefile installs the ``systemd`` package that ships it.
"""

from __future__ import annotations

import configparser
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.config import Settings

ROOT = Path(__file__).resolve().parents[1]
UNIT = ROOT / "systemd" / "fax-gateway.service"
SYSUSERS = ROOT / "systemd" / "fax-gateway.sysusers"
INSTALLED_BINARY = "/opt/fax-gateway/.venv/bin/fax-gateway"
ANALYZE = shutil.which("systemd-analyze")
needs_analyze = pytest.mark.skipif(
    ANALYZE is None, reason="systemd-analyze is not installed (Debian package: systemd)"
)


def service_section() -> dict[str, list[str]]:
    """[Service] as key -> every value given (systemd allows repeating a key)."""
    values: dict[str, list[str]] = {}
    section = None
    for line in UNIT.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            section = line
            continue
        if section == "[Service]":
            key, _, value = line.partition("=")
            values.setdefault(key, []).append(value)
    return values


def test_the_unit_says_what_the_service_needs():
    service = service_section()
    one = {key: values[-1] for key, values in service.items()}
    assert one["Type"] == "notify" and one["NotifyAccess"] == "main"
    assert one["ExecStart"] == f"{INSTALLED_BINARY} --config /etc/fax-gateway/gateway.toml serve"
    assert one["User"] == "fax-gateway"
    assert one["StateDirectory"] == "fax-gateway"
    assert one["ConfigurationDirectory"] == "fax-gateway"
    assert one["ProtectSystem"] == "strict"
    assert one["NoNewPrivileges"] == "yes"
    assert one["CapabilityBoundingSet"] == ""
    assert one["RestrictAddressFamilies"] == "AF_INET AF_INET6 AF_UNIX"
    assert one["Restart"] == "on-failure"
    assert one["ExecReload"] == "/bin/kill -HUP $MAINPID"
    defaults = Settings()
    drain = max(defaults.smtp.drain_timeout_s, defaults.worker.drain_timeout_s)
    assert int(one["TimeoutStopSec"]) > drain + 10  # both drains run at once, then the close
    ini = configparser.ConfigParser(strict=False, interpolation=None)
    ini.read_string(UNIT.read_text())  # well-formed sections
    assert ini.get("Install", "WantedBy") == "multi-user.target"


@pytest.fixture
def checkable_unit(tmp_path: Path) -> Path:
    """The unit with ExecStart pointed at this checkout's console script.

    ``verify`` checks that the ExecStart binary exists on this machine; the unit names the
    installed path (/opt/fax-gateway), which a test machine does not have.
    """
    binary = Path(sys.executable).parent / "fax-gateway"
    if not binary.exists():
        found = shutil.which("fax-gateway")
        assert found, "the fax-gateway console script is not installed (pip install -e .)"
        binary = Path(found)
    unit = tmp_path / UNIT.name
    unit.write_text(UNIT.read_text().replace(INSTALLED_BINARY, str(binary)))
    return unit


@needs_analyze
def test_systemd_analyze_verify_passes(checkable_unit: Path):
    assert ANALYZE is not None
    done = subprocess.run(
        [ANALYZE, "verify", str(checkable_unit)],
        cwd=checkable_unit.parent,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    complaints = [
        line
        for line in (done.stdout + done.stderr).splitlines()
        if line.startswith(checkable_unit.name)
    ]
    assert done.returncode == 0 and not complaints, done.stdout + done.stderr


@needs_analyze
def test_systemd_analyze_security_rates_it_ok_or_better():
    assert ANALYZE is not None
    done = subprocess.run(
        [ANALYZE, "security", "--offline=true", "--no-pager", str(UNIT)],
        cwd=UNIT.parent,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    found = re.search(r"Overall exposure level for \S+: (\d+\.\d+) (\w+)", done.stdout)
    assert found, done.stdout + done.stderr
    exposure, rating = float(found.group(1)), found.group(2)
    assert rating in ("OK", "SAFE", "PERFECT") and exposure <= 4.9, done.stdout


@pytest.mark.skipif(shutil.which("systemd-sysusers") is None, reason="no systemd-sysusers")
def test_sysusers_creates_the_service_user(tmp_path: Path):
    (tmp_path / "etc").mkdir()
    done = subprocess.run(
        ["systemd-sysusers", f"--root={tmp_path}", str(SYSUSERS)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    passwd = (tmp_path / "etc" / "passwd").read_text()
    assert re.search(r"^fax-gateway:x:\d+:\d+:.*:/var/lib/fax-gateway:", passwd, re.MULTILINE)
