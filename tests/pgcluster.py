"""A private PostgreSQL cluster for tests: initdb in a temporary directory, pg_ctl on a free
loopback port (its unix socket in that directory), stopped at the end of the session.

PostgreSQL refuses to run as root, and the tests run as root in the build container: the
cluster then runs as the ``postgres`` system user the Debian package creates (``runuser``),
in a directory that user owns. The binaries are required (the Makefile installs them): a
missing one fails loudly rather than skipping the PostgreSQL half of the suite.

fsync stays on: the multi-node test checks that what a node acknowledged survives its
SIGKILL, and a benchmark of durable commits must pay for them.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import pwd
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import free_port

BIN = Path(os.environ.get("FAX_GATEWAY_PG_BIN", "/usr/lib/postgresql/15/bin"))
RUN_AS = "postgres"  # the Debian package's system user, used only when we are root


@dataclass(frozen=True)
class Cluster:
    folder: Path
    port: int
    user: str

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str | None = None) -> str:
        """A new empty database; its url."""
        name = name or "t_" + uuid.uuid4().hex[:16]
        self.psql(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def drop_database(self, name: str) -> None:
        self.psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def psql(self, sql: str, database: str = "postgres") -> str:
        return _run(
            [
                str(BIN / "psql"),
                "-X",
                "-q",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-U",
                self.user,
                "-d",
                database,
                "-At",
                "-c",
                sql,
            ],
            as_user=False,
        )


def _as_root() -> bool:
    return os.geteuid() == 0


def _run(args: list[str], as_user: bool = True) -> str:
    if as_user and _as_root():
        args = ["runuser", "-u", RUN_AS, "--", *args]
    done = subprocess.run(args, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(
            f"{' '.join(args)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
        )
    return done.stdout


def _require_binaries() -> None:
    missing = [
        name for name in ("initdb", "pg_ctl", "postgres", "psql") if not (BIN / name).exists()
    ]
    if missing:
        raise RuntimeError(
            f"PostgreSQL binaries missing in {BIN}: {', '.join(missing)};"
            " install Debian's postgresql (make deps) or set FAX_GATEWAY_PG_BIN"
        )


@contextlib.contextmanager
def running_cluster() -> Iterator[Cluster]:
    """Start a cluster, yield it, stop it (fast shutdown; immediate if that fails)."""
    _require_binaries()
    folder = Path(tempfile.mkdtemp(prefix="fax-gateway-pg-"))
    data = folder / "data"
    user = pwd.getpwuid(os.geteuid()).pw_name
    db_user = RUN_AS if _as_root() else user
    if _as_root():
        owner = pwd.getpwnam(RUN_AS)
        os.chown(folder, owner.pw_uid, owner.pw_gid)
    port = free_port()
    _run(
        [
            str(BIN / "initdb"),
            "-D",
            str(data),
            "-U",
            db_user,
            "--auth=trust",  # loopback and a socket in a private directory only
            "--encoding=UTF8",
            "--locale=C",
            "--no-sync",  # the initial files only; the server runs with fsync on
        ]
    )
    options = (
        f"-c listen_addresses=127.0.0.1 -p {port} -k {folder}"
        " -c max_connections=200 -c shared_buffers=64MB"
    )
    log = folder / "server.log"
    started = False
    try:
        _run([str(BIN / "pg_ctl"), "-D", str(data), "-l", str(log), "-o", options, "-w", "start"])
        started = True
        yield Cluster(folder=folder, port=port, user=db_user)
    finally:
        if started:
            try:
                _run([str(BIN / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"])
            except RuntimeError:
                with contextlib.suppress(RuntimeError):
                    _run([str(BIN / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"])
        shutil.rmtree(folder, ignore_errors=True)


_shared: list[Cluster] = []


def session_cluster() -> Cluster:
    """The cluster shared by the whole test session: started on first use, stopped when the
    interpreter exits (each test makes a database of its own in it)."""
    if not _shared:
        running = running_cluster()
        _shared.append(running.__enter__())
        atexit.register(running.__exit__, None, None, None)
    return _shared[0]
