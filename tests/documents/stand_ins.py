"""Picklable document renderers injected into RenderPool by the tests (run in worker processes)."""

from __future__ import annotations

import os
import time

from gateway.documents.render import render_document
from gateway.documents.render_options import RenderOptions
from gateway.documents.tiffout import EncodedPage
from gateway.models import SourceDocument


def hang_on_stuck(
    document: SourceDocument, options: RenderOptions, budget: int
) -> list[EncodedPage]:
    """Renders normally, except that a document named "stuck" never finishes."""
    if document.filename == "stuck":
        time.sleep(3600)
    return render_document(document, options, budget)


def crash_on_crash(
    document: SourceDocument, options: RenderOptions, budget: int
) -> list[EncodedPage]:
    """Renders normally, except that a document named "crash" kills its worker process."""
    if document.filename == "crash":
        os._exit(1)
    return render_document(document, options, budget)


def quick_or_slow(
    document: SourceDocument, options: RenderOptions, budget: int
) -> list[EncodedPage]:
    """No pages at once, except that a document named "slow" takes 0.5 s of its worker."""
    if document.filename == "slow":
        time.sleep(0.5)
    return render_document(SourceDocument(document.kind, b"x", document.filename), options, budget)
