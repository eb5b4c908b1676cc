"""SIPp (Debian's ``sip-tester``, 3.6.1) as a scripted far end, on loopback, with its results.

A test starts SIPp with one of the scenario files beside this module (see scenarios/*.xml
for what each far end does), lets it run to its ``-m`` calls, and reads back the exit code,
the final statistics row, and every message SIPp sent and received (its message log, parsed).
SIPp's own exit codes: 0 every call succeeded, 1 at least one failed, 97 stopped by an
internal command, 99 no call processed, 255 fatal error.
"""

from __future__ import annotations

import asyncio
import csv
import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from tests.farend.process import (
    LOOPBACK,
    Daemon,
    FarEndError,
    free_port,
    free_port_block,
    port_bound,
    wait_until,
)

SIPP = "/usr/bin/sipp"
SCENARIOS = Path(__file__).resolve().parent / "scenarios"
Transport = Literal["udp", "tcp"]

# Values for the scenario keywords ("-key NAME VALUE", used as [NAME]) that a scenario reads
# unless the caller overrides them.
DEFAULT_KEYS: Mapping[str, str] = {
    "reject_code": "486",
    "reject_reason": "Busy Here",
    # Never empty: an empty value would leave a blank line, ending the headers early.
    "reject_extra_header": "Server: farend-sipp",
    "auth_realm": "fax.test",
    "auth_user": "sipp",
    "auth_pass": "sipp-secret",
    "from_user": "sipp",
    "reg_domain": "fax.test",
    "expires": "600",
    "flood_filler": "x" * 12000,
}


# SIPp reads a response's status code and a recv's timeout while it loads the scenario, before
# any keyword is substituted, so these keys are written into a copy of the scenario by us.
RENDERED_KEYS = ("reject_code", "hold_ms")


def scenario_path(name: str) -> Path:
    """``"uas_reject"`` or ``"uas_reject.xml"`` -> the file in tests/farend/scenarios."""
    path = SCENARIOS / (name if name.endswith(".xml") else f"{name}.xml")
    if not path.is_file():
        raise FarEndError(f"no SIPp scenario {path}")
    return path


@dataclass(frozen=True)
class SippMessage:
    """One entry of SIPp's message log: a message it sent or received."""

    direction: Literal["sent", "received"]
    text: str

    @property
    def start_line(self) -> str:
        return self.text.split("\r\n", 1)[0].split("\n", 1)[0].strip()

    @property
    def status(self) -> int | None:
        match = re.match(r"SIP/2\.0 (\d{3})\b", self.start_line)
        return int(match.group(1)) if match else None

    @property
    def method(self) -> str | None:
        if self.status is not None:
            return None
        return self.start_line.split(" ", 1)[0] or None

    @property
    def cseq_method(self) -> str | None:
        value = self.header("CSeq")
        return value.split()[-1] if value else None

    def header(self, name: str) -> str | None:
        """The first header ``name`` (case-insensitive, long form), unfolded."""
        head = re.split(r"\r?\n\r?\n", self.text, maxsplit=1)[0]
        for line in head.splitlines()[1:]:
            key, sep, value = line.partition(":")
            if sep and key.strip().lower() == name.lower():
                return value.strip()
        return None

    @property
    def body(self) -> str:
        parts = re.split(r"\r?\n\r?\n", self.text, maxsplit=1)
        return parts[1] if len(parts) > 1 else ""


_LOG_ENTRY = re.compile(
    r"^-{20,} [^\n]*\n(?:UDP|TCP) message (sent|received) [^\n]*\n\n", re.MULTILINE
)


def parse_message_log(text: str) -> list[SippMessage]:
    """SIPp's ``-trace_msg`` file: a dashed timestamp line, "UDP message sent (N bytes):" or
    "... received [N] bytes :", a blank line, the message."""
    marks = list(_LOG_ENTRY.finditer(text))
    messages = []
    for n, mark in enumerate(marks):
        end = marks[n + 1].start() if n + 1 < len(marks) else len(text)
        direction: Literal["sent", "received"] = "sent" if mark.group(1) == "sent" else "received"
        messages.append(SippMessage(direction, text[mark.end() : end].strip("\n") + "\n"))
    return messages


@dataclass
class SippResult:
    scenario: str
    returncode: int
    stats: dict[str, str]
    messages: list[SippMessage]
    errors: str
    screen: str

    def _count(self, column: str) -> int:
        try:
            return int(self.stats.get(column, "0") or 0)
        except ValueError:
            return 0

    @property
    def successful(self) -> int:
        return self._count("SuccessfulCall(C)")

    @property
    def failed(self) -> int:
        return self._count("FailedCall(C)")

    def received(self, method: str | None = None) -> list[SippMessage]:
        """Requests SIPp received (all, or of one method)."""
        return [
            m
            for m in self.messages
            if m.direction == "received" and m.method and (method is None or m.method == method)
        ]

    def final_statuses(self, cseq_method: str = "INVITE") -> list[int]:
        """Status codes of the final responses SIPp RECEIVED to its ``cseq_method`` requests,
        retransmissions included, in order."""
        return [
            m.status
            for m in self.messages
            if m.direction == "received"
            and m.status is not None
            and m.status >= 200
            and m.cseq_method == cseq_method
        ]

    def sent_statuses(self, cseq_method: str = "INVITE") -> list[int]:
        """Status codes SIPp SENT in answer to ``cseq_method`` requests."""
        return [
            m.status
            for m in self.messages
            if m.direction == "sent" and m.status is not None and m.cseq_method == cseq_method
        ]

    def describe(self) -> str:
        return (
            f"sipp {self.scenario}: exit {self.returncode}, {self.successful} successful, "
            f"{self.failed} failed calls\n--- errors\n{self.errors[-3000:]}\n"
            f"--- screen\n{self.screen[-3000:]}"
        )

    def check(self, successful: int = 1) -> SippResult:
        """Raise unless SIPp exited 0 with exactly ``successful`` successful calls."""
        if self.returncode != 0 or self.successful != successful or self.failed:
            raise FarEndError(self.describe())
        return self


@dataclass
class Sipp:
    """A started SIPp process: where it listens, and how to collect its result."""

    scenario: str
    host: str
    port: int
    media_port: int
    transport: Transport
    directory: Path
    daemon: Daemon
    timeout: float
    keys: dict[str, str] = field(default_factory=dict)

    @property
    def address(self) -> tuple[str, int]:
        return (self.host, self.port)

    @property
    def uri(self) -> str:
        return f"sip:{self.host}:{self.port}"

    def wait(self, timeout: float | None = None) -> SippResult:
        """Wait for SIPp to finish its calls (a guard timeout kills it), then its result."""
        returncode = self.daemon.wait(self.timeout + 10 if timeout is None else timeout)
        return self.result(returncode)

    async def wait_async(self, timeout: float | None = None) -> SippResult:
        """``wait`` without blocking the event loop (the gateway under test runs in it)."""
        return await asyncio.to_thread(self.wait, timeout)

    def stop(self) -> SippResult:
        returncode = self.daemon.stop()
        return self.result(-1 if returncode is None else returncode)

    def result(self, returncode: int) -> SippResult:
        d = self.directory
        return SippResult(
            scenario=self.scenario,
            returncode=returncode,
            stats=_last_stats_row(d / "stats.csv"),
            messages=parse_message_log(_read(d / "messages.log")),
            errors=_read(d / "errors.log"),
            screen=self.daemon.log_text(),
        )


def _read(path: Path) -> str:
    try:
        return path.read_bytes().decode("latin-1")
    except FileNotFoundError:
        return ""


def _last_stats_row(path: Path) -> dict[str, str]:
    """The cumulative counters of SIPp's ``-trace_stat`` CSV (';'-separated, last row)."""
    rows = list(csv.reader(_read(path).splitlines(), delimiter=";"))
    if len(rows) < 2:
        return {}
    return dict(zip(rows[0], rows[-1], strict=False))


def start_sipp(
    directory: Path,
    scenario: str,
    *,
    remote: tuple[str, int] | None = None,
    calls: int = 1,
    rate: float | None = None,
    service: str = "service",
    keys: Mapping[str, str] | None = None,
    auth_user: str | None = None,
    auth_password: str | None = None,
    duration_ms: int = 0,
    transport: Transport = "udp",
    local_ip: str = LOOPBACK,
    local_port: int | None = None,
    timeout: float = 60.0,
    extra_args: Sequence[str] = (),
) -> Sipp:
    """Start SIPp with ``scenario`` in ``directory`` (created; its logs go there).

    ``remote``: where a UAC sends (also the default host of its Request-URI, key ruri_host);
    a UAS needs none. ``calls`` is ``-m`` (SIPp exits after that many), ``rate`` calls per
    second for a UAC. ``local_ip`` may be any 127.x address (127.0.0.2 is a "disallowed"
    source for allow_from tests); ``local_port`` fixes SIPp's port (else a free one).
    ``duration_ms`` is ``-d``: the length of each ``<pause/>``.
    A UAC holds an answered call ``duration_ms`` too (key hold_ms).
    ``auth_user``/``auth_password`` answer challenges (-au/-ap) and are also the keys
    auth_user/auth_pass a UAS checks with. ``timeout`` is SIPp's own -timeout (it then fails).
    """
    if not local_ip.startswith("127."):
        raise FarEndError(f"SIPp must stay on loopback, not {local_ip}")
    if remote is not None and not remote[0].startswith("127."):
        raise FarEndError(f"SIPp must only send to loopback, not {remote[0]}")
    directory.mkdir(parents=True, exist_ok=True)
    path = scenario_path(scenario)
    proto_set: tuple[Literal["udp", "tcp"], ...] = (transport,)
    port = free_port(proto_set) if local_port is None else local_port
    media_port = free_port_block(4, protos=("udp",), even=True)
    control_port = free_port(("udp",))
    values = dict(DEFAULT_KEYS)
    values["hold_ms"] = str(max(1, duration_ms))  # 0 would mean "wait forever" to SIPp
    values["from_host"] = local_ip
    values["contact_host"] = local_ip
    if remote is not None:
        values["ruri_host"] = f"{remote[0]}:{remote[1]}"
    if auth_user is not None:
        values["auth_user"] = auth_user
        values["reg_user"] = auth_user
    if auth_password is not None:
        values["auth_pass"] = auth_password
    values.setdefault("reg_user", values["auth_user"])
    values.update(keys or {})
    text = path.read_bytes().decode("latin-1")
    if any(f"[{key}]" in text for key in RENDERED_KEYS):
        for key in RENDERED_KEYS:
            text = text.replace(f"[{key}]", values[key])
        path = directory / path.name
        path.write_bytes(text.encode("latin-1"))
    argv = [SIPP]
    # Keys first: SIPp substitutes them while it loads the scenario at -sf.
    for name, value in values.items():
        argv += ["-key", name, value]
    argv += ["-sf", str(path)]
    if remote is not None:
        argv.append(f"{remote[0]}:{remote[1]}")
    argv += [
        "-t",
        "u1" if transport == "udp" else "t1",
        "-i",
        local_ip,
        "-p",
        str(port),
        "-bind_local",  # listen on local_ip only, and send from it
        "-mi",
        local_ip,
        "-mp",
        str(media_port),
        "-ci",
        LOOPBACK,
        "-cp",
        str(control_port),
        "-s",
        service,
        "-m",
        str(calls),
        "-d",
        str(duration_ms),
        "-au",
        values["auth_user"],
        "-ap",
        values["auth_pass"],
        "-timeout",
        f"{max(1, round(timeout))}s",
        "-timeout_error",
        "-aa",  # in-call OPTIONS/INFO/NOTIFY/UPDATE answered 200 (session refreshes)
        "-nostdin",
        "-trace_msg",
        "-message_file",
        str(directory / "messages.log"),
        "-trace_err",
        "-error_file",
        str(directory / "errors.log"),
        "-trace_stat",
        "-stf",
        str(directory / "stats.csv"),
        "-fd",
        "1",
    ]
    if rate is not None:
        argv += ["-r", str(rate)]
    argv += list(extra_args)
    daemon = Daemon(f"sipp {path.name}", argv, directory / "screen.log", directory)
    daemon.start()
    sipp = Sipp(path.stem, local_ip, port, media_port, transport, directory, daemon, timeout)
    sipp.keys = values
    # A UAS must be bound before the test's caller sends; SIPp binds before it reads calls.
    # A UAC may even be done already; its result tells then how it went.
    wait_until(
        lambda: port_bound(port, transport, local_ip) or not daemon.alive,
        timeout=10,
        what=f"SIPp bound to {transport} {local_ip}:{port}",
    )
    return sipp


def run_sipp(directory: Path, scenario: str, **options: object) -> SippResult:
    """``start_sipp`` and wait for it to finish: for a UAC that runs its calls and exits."""
    return start_sipp(directory, scenario, **options).wait()  # type: ignore[arg-type]


def verify_digest(header: str, *, method: str, password: str) -> bool:
    """Check an Authorization/Proxy-Authorization value (RFC 2617 MD5 / RFC 7616 SHA-256,
    qop=auth or none) against ``password``: what SIPp's verifyauth cannot do for 407."""
    params = dict(
        (key.lower(), value.strip('"'))
        for key, value in re.findall(r'(\w+)=("[^"]*"|[^,\s]+)', header.removeprefix("Digest"))
    )
    algorithm = params.get("algorithm", "MD5").upper()
    name = {"MD5": "md5", "SHA-256": "sha256"}.get(algorithm)
    if name is None:
        return False

    def h(text: str) -> str:
        return hashlib.new(name, text.encode()).hexdigest()

    ha1 = h(f"{params.get('username')}:{params.get('realm')}:{password}")
    ha2 = h(f"{method}:{params.get('uri')}")
    if params.get("qop") == "auth":
        tail = f"{params.get('nc')}:{params.get('cnonce')}:auth"
        expected = h(f"{ha1}:{params.get('nonce')}:{tail}:{ha2}")
    else:
        expected = h(f"{ha1}:{params.get('nonce')}:{ha2}")
    return expected == params.get("response")
