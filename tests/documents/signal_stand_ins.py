"""A picklable document renderer that is sent the daemon's stop signals while it works, as
when SIGTERM or SIGINT goes to the whole process group (run in a render worker process)."""

from __future__ import annotations

import os
import signal

from gateway.documents.render import render_document
from gateway.documents.render_options import RenderOptions
from gateway.documents.tiffout import EncodedPage
from gateway.models import SourceDocument


def signalled_mid_render(
    document: SourceDocument, options: RenderOptions, budget: int
) -> list[EncodedPage]:
    """Signals itself and its parent (the fork server), then renders normally."""
    for pid in (os.getpid(), os.getppid()):
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            os.kill(pid, sig)
    return render_document(document, options, budget)
