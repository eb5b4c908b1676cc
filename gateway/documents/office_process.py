"""LibreOffice as a converter: one ``soffice --convert-to pdf`` process per document.

Each conversion gets a slot (as many as the render pool has workers; waiting is bounded, then
``BusyError`` and the MTA retries), a fresh profile and work directory (removed afterwards),
a profile that forbids macros, an empty network namespace when the kernel allows one (linked
images and URLs in a document are an SSRF risk), an address-space limit, a time limit, and its
own process group, killed whole afterwards so no ``soffice.bin`` outlives its conversion.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import subprocess
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from gateway.config import OfficeSettings
from gateway.errors import BusyError, ConfigError, ConversionError

log = logging.getLogger(__name__)

# Macros never run: "very high" security (only from trusted locations, and there are none)
# and macro execution disabled outright; no first-start wizard either.
_PROFILE_XCU: Final = """<?xml version="1.0" encoding="UTF-8"?>
<oor:items xmlns:oor="http://openoffice.org/2001/registry"
 xmlns:xs="http://www.w3.org/2001/XMLSchema"
 xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
<item oor:path="/org.openoffice.Office.Common/Security/Scripting">\
<prop oor:name="MacroSecurityLevel" oor:op="fuse"><value>3</value></prop></item>
<item oor:path="/org.openoffice.Office.Common/Security/Scripting">\
<prop oor:name="DisableMacrosExecution" oor:op="fuse"><value>true</value></prop></item>
<item oor:path="/org.openoffice.Office.Common/Security/Scripting">\
<prop oor:name="SecureURL" oor:op="fuse"><value/></prop></item>
<item oor:path="/org.openoffice.Office.Common/Misc">\
<prop oor:name="FirstRun" oor:op="fuse"><value>false</value></prop></item>
</oor:items>
"""
_SOFFICE_OPTIONS: Final = (
    "--headless",
    "--norestore",
    "--nolockcheck",
    "--nodefault",
    "--nologo",
    "--nofirststartwizard",
)
_MIB: Final = 1024 * 1024


@dataclass(frozen=True)
class OfficeLimits:
    """``slot_wait_s``: how long a conversion waits for a free slot before ``BusyError``."""

    timeout_s: float = 60.0
    memory_bytes: int = 2048 * _MIB
    slot_wait_s: float = 30.0


def find_soffice(configured: str) -> str | None:
    """The soffice executable: ``configured``, or for "auto" the one on PATH (None if none)."""
    if configured != "auto":
        return shutil.which(configured)  # a path, or a name looked up on PATH
    for name in ("soffice", "libreoffice"):
        found = shutil.which(name)
        if found is not None:
            return found
    return None


def network_isolation() -> tuple[str, ...]:
    """The command prefix that runs a program without network, or () if this kernel refuses.

    ``unshare -rn`` needs no privilege where unprivileged user namespaces are allowed; as root
    ``unshare -n`` also works. Tried once, at start."""
    unshare = shutil.which("unshare")
    if unshare is None:
        log.warning("office: no unshare(1): LibreOffice runs with network access")
        return ()
    for flags in ("-rn", "-n"):
        try:
            done = subprocess.run(  # noqa: S603 - fixed arguments
                [unshare, flags, "true"], capture_output=True, timeout=10, check=False
            )
        except (OSError, subprocess.TimeoutExpired):
            continue
        if done.returncode == 0:
            return (unshare, flags)
    log.warning("office: this kernel refuses network namespaces: LibreOffice runs with network")
    return ()


class LibreOfficeConverter:
    """An ``OfficeConverter`` running ``soffice`` (see the module docstring for the limits)."""

    def __init__(
        self,
        soffice: str,
        slots: int,
        limits: OfficeLimits | None = None,
        *,
        isolate_network: bool = True,
    ) -> None:
        self._soffice = soffice
        self._limits = limits or OfficeLimits()
        self._slots = threading.BoundedSemaphore(max(1, slots))
        self._prlimit = shutil.which("prlimit")
        self._no_network = network_isolation() if isolate_network else ()

    @property
    def network_isolated(self) -> bool:
        return bool(self._no_network)

    def to_pdf(self, data: bytes, fmt: str, filename: str) -> bytes:
        if not self._slots.acquire(timeout=self._limits.slot_wait_s):
            raise BusyError("every LibreOffice conversion slot is busy")
        try:
            with tempfile.TemporaryDirectory(prefix="fax-office-") as work:
                return self._convert(Path(work), data, fmt, filename)
        finally:
            self._slots.release()

    def _convert(self, work: Path, data: bytes, fmt: str, filename: str) -> bytes:
        profile = work / "profile"
        (profile / "user").mkdir(parents=True)
        (profile / "user" / "registrymodifications.xcu").write_text(_PROFILE_XCU)
        out = work / "out"
        out.mkdir()
        # Our own name on disk: the sender's file name never reaches a path or a command line.
        source = work / f"document.{fmt}"
        source.write_bytes(data)
        command = [
            *self._memory_prefix(),
            *self._no_network,
            self._soffice,
            f"-env:UserInstallation={profile.as_uri()}",
            *_SOFFICE_OPTIONS,
            "--convert-to",
            "pdf",
            "--outdir",
            str(out),
            str(source),
        ]
        returncode = self._run(command, work, filename)
        if returncode != 0:
            raise ConversionError(filename, _exit_reason(returncode))
        pdf = out / "document.pdf"
        if not pdf.is_file() or pdf.stat().st_size == 0:
            raise ConversionError(filename, "LibreOffice made no PDF of it")
        return pdf.read_bytes()

    def _memory_prefix(self) -> list[str]:
        # prlimit(1) rather than preexec_fn: the gateway has threads, and preexec_fn is unsafe
        # between fork and exec in a threaded process.
        if self._prlimit is None:
            return []
        return [self._prlimit, f"--as={self._limits.memory_bytes}", "--"]

    def _run(self, command: list[str], work: Path, filename: str) -> int:
        environment = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(work),
            "TMPDIR": str(work),
            "LANG": "C.UTF-8",
        }
        process = subprocess.Popen(  # noqa: S603 - our own command line, no shell
            command,
            cwd=work,
            env=environment,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        try:
            _, stderr = process.communicate(timeout=self._limits.timeout_s)
        except subprocess.TimeoutExpired:
            _kill_group(process.pid)
            process.communicate()
            raise ConversionError(
                filename, f"LibreOffice timed out after {self._limits.timeout_s:g} s"
            ) from None
        finally:
            # The wrapper script may exit before soffice.bin, or leave helpers behind.
            _kill_group(process.pid)
        if process.returncode != 0:
            log.info(
                "office: soffice exited %s on %r: %s",
                process.returncode,
                filename,
                stderr[-500:].decode("utf-8", "replace").strip(),
            )
        return process.returncode


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def _exit_reason(returncode: int) -> str:
    # A signal shows as -N when soffice itself died, as 128+N when its wrapper script reports it.
    number = -returncode if returncode < 0 else returncode - 128 if returncode > 128 else 0
    if number in (signal.SIGSEGV, signal.SIGBUS, signal.SIGILL, signal.SIGFPE, signal.SIGKILL):
        return f"LibreOffice crashed (signal {number})"
    if number == signal.SIGABRT:
        return f"LibreOffice crashed (signal {number}; out of memory or a broken document)"
    return f"LibreOffice failed (exit status {returncode})"


def office_converter(settings: OfficeSettings, workers: int) -> LibreOfficeConverter | None:
    """The converter ``[office]`` asks for, or None (logged once) when there is none to use.

    ``workers`` is the render pool's size (0: one per CPU, as the pool resolves it)."""
    if settings.enabled is False:
        log.info("office: disabled by [office] enabled = false; office documents are refused")
        return None
    soffice = find_soffice(settings.soffice)
    if soffice is None:
        if settings.enabled is True:
            raise ConfigError(f"[office] soffice: no LibreOffice at {settings.soffice!r}")
        log.warning("office: no LibreOffice (soffice) found; office documents are refused")
        return None
    limits = OfficeLimits(
        timeout_s=settings.timeout_s,
        memory_bytes=settings.memory_mb * _MIB,
        slot_wait_s=settings.slot_wait_s,
    )
    slots = workers or os.cpu_count() or 1
    log.info("office: LibreOffice at %s, %d conversion slots", soffice, slots)
    return LibreOfficeConverter(soffice, slots, limits)
