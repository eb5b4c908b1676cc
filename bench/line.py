"""Benchmark: line time of our fax images vs Ghostscript's, and the worker's throughput.

    .venv/bin/python bench/line.py [--no-ocr] [--no-line] [--jobs 200] [--lines N]

1. Line time. Every document of the reference corpus (bench/corpus.py) is rendered by our
   pipeline and by Ghostscript's tiffg4 device (bench/convert.py runs gs the same way), and
   each TIFF is sent through the same loopback line: a real T.30 session (libspandsp, V.17,
   ECM, T.6 as negotiated) against the default answering remote. The figure is the simulated
   line time, i.e. what the call would cost on a real line, in seconds per page, set-up and
   hang-up included. OCR accuracy (Tesseract, as in bench/convert.py) of both image sets says
   whether the saving costs legibility.
2. Throughput. ``--jobs`` one-page jobs to distinct numbers are stored as the render stage
   leaves them (``pending``, due now) and one Worker sends them all (claim under a lease,
   transmit over the loopback line, record the attempt) with ``lines`` = the CPU count; the
   figure is completed faxes per wall-clock second.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import random
import sys
import tempfile
import time
from concurrent.futures import Executor, ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import img2pdf
from convert import _pages, ghostscript, ocr_accuracy
from corpus import CorpusItem, _sentences, build

from gateway.config import parse_settings
from gateway.documents.pdfout import tiff_to_pdf
from gateway.documents.render import RenderOptions, render_fax
from gateway.models import DocumentKind, FaxStatus, NewFax, SourceDocument
from gateway.store import store_for
from gateway.transports import session
from gateway.transports.base import OutboundCall, TxResult
from gateway.transports.loopback import LoopbackTransport
from gateway.transports.remotes import ANSWER
from gateway.transports.session import CallRequest, place_call
from gateway.worker import Worker

TSI = "+1 415 555 0100"
HEADER = "fax-gateway bench"


def ours(item: CorpusItem) -> bytes:
    doc = SourceDocument(item.kind, item.data, item.name, item.pages)
    return render_fax([doc], RenderOptions()).tiff


def _call(tiff: bytes, pages: int = 1, number: str = "+14155550123") -> OutboundCall:
    return OutboundCall(
        fax_id="bench",
        to_number=number,
        from_number="+14155550100",
        tsi=TSI,
        header=HEADER,
        timezone="UTC",
        tiff=tiff,
        pages=pages,
    )


def send(tiff: bytes, pages: int) -> TxResult:
    result = place_call(CallRequest(_call(tiff, pages), ANSWER, capture=False)).result
    assert result.success, result
    assert result.pages_sent == pages, result
    return result


def line_time(ocr: bool) -> None:
    # The transport cuts a call after 120 + 180 s per page (a stuck session's backstop); a
    # dense dithered page can need more than that. Here we want to know how long it takes.
    session.max_line_seconds = lambda pages: 3600 * max(pages, 1)
    print("Line time per page (simulated seconds on the loopback line, V.17 + ECM)\n")
    header = (
        f"{'input':<14} {'pages':>5} | {'ours s/p':>8} {'gs s/p':>7} {'ratio':>6} | "
        f"{'ours OCR':>8} {'gs OCR':>7} | {'speed':>11}"
    )
    print(header)
    print("-" * len(header))
    totals = {"ours": [0.0, 0], "gs": [0.0, 0]}  # line seconds, pages
    ocr_sum: dict[str, list[float]] = {"ours": [], "gs": []}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for item in build():
            pdf = work / f"{item.name}.pdf"
            pdf.write_bytes(
                item.data if item.kind is DocumentKind.PDF else img2pdf.convert(item.data)
            )
            images = {"ours": ours(item), "gs": ghostscript(pdf, work / "gs.tif")}
            seconds, acc, speeds = {}, {}, set()
            for who, tiff in images.items():
                pages = item.pages if who == "ours" else _pages(tiff)
                result = send(tiff, pages)
                speeds.add(result.fax_speed)
                seconds[who] = result.line_seconds / pages
                totals[who][0] += result.line_seconds
                totals[who][1] += pages
                acc[who] = ocr_accuracy(tiff, item.text, work) if ocr else None
                if acc[who] is not None:
                    ocr_sum[who].append(acc[who])  # type: ignore[arg-type]
            fmt = lambda v: "-" if v is None else f"{v:.3f}"  # noqa: E731
            print(
                f"{item.name:<14} {item.pages:>5} | {seconds['ours']:>8.1f} {seconds['gs']:>7.1f}"
                f" {seconds['ours'] / seconds['gs']:>6.2f} | {fmt(acc['ours']):>8}"
                f" {fmt(acc['gs']):>7} | {'/'.join(str(s) for s in sorted(speeds)):>11}"
            )
    print("-" * len(header))
    per_page = {who: totals[who][0] / totals[who][1] for who in totals}
    ratio = per_page["ours"] / per_page["gs"]
    line = (
        f"{'overall':<14} {totals['ours'][1]:>5} | {per_page['ours']:>8.1f} {per_page['gs']:>7.1f}"
        f" {ratio:>6.2f} |"
    )
    if ocr_sum["ours"] and ocr_sum["gs"]:
        o, g = (sum(v) / len(v) for v in (ocr_sum["ours"], ocr_sum["gs"]))
        line += f" {o:>8.3f} {g:>7.3f} |"
    print(line)
    print(f"\nratio line s/page ours/gs: {ratio:.2f}  (goal <= 0.90 at equal legibility)")


def one_page_documents() -> dict[str, SourceDocument]:
    """A typical one-page fax (a page of plain text) and a heavy one (text and a photo)."""
    rng = random.Random(4)
    text = "\n".join(_sentences(rng, 52, 80))
    mixed = next(i for i in build() if i.name == "mixed.pdf")
    return {
        "text page": SourceDocument(DocumentKind.TEXT, text.encode(), "body.txt", 1),
        "mixed.pdf": SourceDocument(mixed.kind, mixed.data, mixed.name, 1),
    }


async def throughput(doc: SourceDocument, jobs: int, lines: int, executor: str) -> None:
    tiff = render_fax([doc], RenderOptions()).tiff
    pdf = tiff_to_pdf(tiff)
    line_s = send(tiff, 1).line_seconds
    with tempfile.TemporaryDirectory() as tmp:
        settings = parse_settings(
            {
                "storage": {"path": f"{tmp}/bench.sqlite3"},  # synchronous = "full", the default
                "worker": {"lines": lines, "max_outbound": jobs},
            }
        )
        store = store_for(settings.storage)
        await store.open()
        account, _, _ = await store.create_account("bench")
        for n in range(jobs):
            fax_id = await store.create_fax(
                NewFax(
                    account_id=account.id,
                    to_number=f"+1415556{n:04d}",
                    from_number="+14155550100",
                    fax_identity_number=TSI,
                    fax_identity_name=HEADER,
                    source="api",
                ),
                [doc],
            )
            await store.claim_attaching("bench", 60, 1)
            assert await store.finish_render(fax_id, "bench", tiff, pdf, 1)
        pool: Executor | None = None
        if executor == "process":
            pool = ProcessPoolExecutor(lines, mp_context=multiprocessing.get_context("spawn"))
            # Start the workers (and load libspandsp in them) before the clock runs.
            list(pool.map(place_call, [CallRequest(_call(tiff), ANSWER, False)] * lines))
        line = LoopbackTransport({}, executor=pool)

        worker = Worker(store, line, settings.worker)
        started = time.perf_counter()
        await worker.run_until_idle()
        wall = time.perf_counter() - started
        counts = await store.count_by_status()
        await line.close()
        if pool is not None:
            pool.shutdown()
        await store.close()
    assert counts.get(FaxStatus.COMPLETED.value, 0) == jobs, counts
    print(
        f"{doc.filename:<10} {line_s:>6.1f} | {executor:<8} {lines:>5} | {wall:>6.2f} |"
        f" {jobs / wall:>7.1f} | {wall / jobs * 1000 * lines:>9.1f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--no-ocr", action="store_true")
    parser.add_argument("--no-line", action="store_true", help="throughput only")
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--lines", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    os.environ.setdefault("OMP_THREAD_LIMIT", "1")
    if not args.no_line:
        line_time(not args.no_ocr)
    print(
        f"\nWorker throughput: {args.jobs} one-page faxes to distinct numbers, claim -> T.30"
        f" call -> record, SQLite synchronous=full, {os.cpu_count()} CPUs\n"
    )
    print("document   line s | executor lines | wall s | faxes/s | ms/fax/line")
    print("-" * 66)
    for doc in one_page_documents().values():
        for executor in ("thread", "process"):
            asyncio.run(throughput(doc, args.jobs, args.lines, executor))


if __name__ == "__main__":
    main()
