"""IANA zone name -> POSIX TZ rule string, which is what spandsp's header clock understands.

``t30_set_tx_page_header_tz`` takes a POSIX string ("CET-1CEST,M3.5.0,M10.5.0/3"), not an
IANA name. Every TZif v2+ file ends with exactly that string as its footer, so we read it from
the system zoneinfo database or from the ``tzdata`` package, whichever has the zone.
"""

from __future__ import annotations

import zoneinfo
from functools import cache
from importlib import resources
from pathlib import Path

_UTC = "UTC0"


@cache
def posix_tz(name: str) -> str:
    """The POSIX rule for ``name``; UTC when the zone is unknown or has no footer."""
    data = _tzif_bytes(name)
    if data is None or not data.startswith(b"TZif") or data[4:5] < b"2":
        return _UTC
    # The footer is "\n<rule>\n" at the very end of the file.
    footer = data.rstrip(b"\n").rsplit(b"\n", 1)[-1]
    rule = footer.decode("ascii", "replace").strip()
    return rule or _UTC


def _tzif_bytes(name: str) -> bytes | None:
    if not name or name.startswith("/") or ".." in name.split("/"):
        return None
    for root in zoneinfo.TZPATH:
        path = Path(root) / name
        if path.is_file():
            return path.read_bytes()
    try:
        parts = name.split("/")
        package = ".".join(["tzdata", "zoneinfo", *parts[:-1]])
        return resources.files(package).joinpath(parts[-1]).read_bytes()
    except (ModuleNotFoundError, FileNotFoundError, OSError, ValueError):
        return None
