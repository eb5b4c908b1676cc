"""Benchmark: our renderer vs Ghostscript's tiffg4 device on the reference corpus.

    .venv/bin/python bench/convert.py [--repeat N] [--no-ocr]

Both run single-process on one core: ours in-process (as a pool worker does), Ghostscript as the
subprocess Kazoo and HylaFAX run, timed including its start-up (a per-job cost for them). Inputs
that are not PDF are first turned into PDF with img2pdf for Ghostscript (outside the timing).
Prints pages/s, bytes/page and OCR character accuracy (Tesseract, --psm 6, difflib ratio on
whitespace-normalised text) per input and overall, and our ratios against Ghostscript.
"""

from __future__ import annotations

import argparse
import difflib
import io
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import img2pdf
from corpus import CorpusItem, build
from PIL import Image, ImageSequence

from gateway.documents.render import RenderOptions, render_fax
from gateway.models import DocumentKind, SourceDocument

GS = ["gs", "-q", "-dSAFER", "-dBATCH", "-dNOPAUSE", "-sDEVICE=tiffg4", "-r204x196", "-dPDFFitPage"]


def ours(item: CorpusItem) -> bytes:
    doc = SourceDocument(item.kind, item.data, item.name, item.pages)
    return render_fax([doc], RenderOptions()).tiff


def ghostscript(pdf: Path, out: Path) -> bytes:
    subprocess.run([*GS, f"-sOutputFile={out}", str(pdf)], check=True)
    return out.read_bytes()


def best_time(fn: object, repeat: int) -> tuple[float, bytes]:
    assert callable(fn)
    best, result = float("inf"), b""
    for _ in range(repeat):
        started = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - started)
    return best, result


def ocr_accuracy(tiff: bytes, texts: list[str], work: Path) -> float | None:
    if not any(texts):
        return None
    read = []
    with Image.open(io.BytesIO(tiff)) as image:
        for n, frame in enumerate(ImageSequence.Iterator(image)):
            path = work / f"ocr{n}.png"
            frame.convert("L").save(path, dpi=frame.info.get("dpi", (204, 196)))
            out = subprocess.run(
                ["tesseract", str(path), "-", "--psm", "6"], capture_output=True, text=True
            )
            read.append(out.stdout)
    got, want = " ".join(" ".join(read).split()), " ".join(" ".join(texts).split())
    return difflib.SequenceMatcher(None, want, got, autojunk=False).ratio()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-ocr", action="store_true")
    args = parser.parse_args()
    os.environ.setdefault("OMP_THREAD_LIMIT", "1")  # tesseract: one thread, to not skew timings
    corpus = build()
    totals = {"ours": [0.0, 0, 0], "gs": [0.0, 0, 0]}  # seconds, bytes, pages
    ocr_sum = {"ours": [], "gs": []}  # type: dict[str, list[float]]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        gs_start, _ = best_time(lambda: ghostscript_empty(work), args.repeat)
        header = (
            f"{'input':<14} {'pages':>5} | {'ours p/s':>9} {'gs p/s':>8} | "
            f"{'ours B/p':>9} {'gs B/p':>8} | {'ours OCR':>8} {'gs OCR':>7}"
        )
        print(header)
        print("-" * len(header))
        for item in corpus:
            pdf = work / f"{item.name}.pdf"
            pdf.write_bytes(
                item.data if item.kind is DocumentKind.PDF else img2pdf.convert(item.data)
            )
            t_ours, tiff_ours = best_time(lambda item=item: ours(item), args.repeat)
            t_gs, tiff_gs = best_time(
                lambda pdf=pdf: ghostscript(pdf, work / "gs.tif"), args.repeat
            )
            pages_gs = _pages(tiff_gs)
            acc = {"ours": None, "gs": None}  # type: dict[str, float | None]
            if not args.no_ocr:
                acc = {
                    "ours": ocr_accuracy(tiff_ours, item.text, work),
                    "gs": ocr_accuracy(tiff_gs, item.text, work),
                }
            for who, t, tiff, pages in (
                ("ours", t_ours, tiff_ours, item.pages),
                ("gs", t_gs, tiff_gs, pages_gs),
            ):
                totals[who][0] += t
                totals[who][1] += len(tiff)
                totals[who][2] += pages
                if acc[who] is not None:
                    ocr_sum[who].append(acc[who])  # type: ignore[arg-type]
            fmt = lambda v: "-" if v is None else f"{v:.3f}"  # noqa: E731
            print(
                f"{item.name:<14} {item.pages:>5} | "
                f"{item.pages / t_ours:>9.1f} {pages_gs / t_gs:>8.1f} | "
                f"{len(tiff_ours) / item.pages:>9.0f} {len(tiff_gs) / pages_gs:>8.0f} | "
                f"{fmt(acc['ours']):>8} {fmt(acc['gs']):>7}"
            )
        print("-" * len(header))
        pps = {w: totals[w][2] / totals[w][0] for w in totals}
        bpp = {w: totals[w][1] / totals[w][2] for w in totals}
        ocr = {w: (sum(v) / len(v) if v else None) for w, v in ocr_sum.items()}
        print(
            f"{'overall':<14} {totals['ours'][2]:>5} | {pps['ours']:>9.1f} {pps['gs']:>8.1f} | "
            f"{bpp['ours']:>9.0f} {bpp['gs']:>8.0f} | "
            + (
                f"{ocr['ours']:>8.3f} {ocr['gs']:>7.3f}"
                if ocr["ours"] is not None and ocr["gs"] is not None
                else ""
            )
        )
        print(f"\nGhostscript start-up alone (empty page): {gs_start * 1000:.0f} ms per run")
        print(f"ratio pages/s   ours/gs: {pps['ours'] / pps['gs']:.2f}  (goal >= 1.0, aim 1.5)")
        print(f"ratio bytes/page ours/gs: {bpp['ours'] / bpp['gs']:.2f}  (goal <= 1.0)")
        if ocr["ours"] is not None and ocr["gs"] is not None:
            print(f"ratio OCR        ours/gs: {ocr['ours'] / ocr['gs']:.3f}  (goal >= 1.0)")


def ghostscript_empty(work: Path) -> bytes:
    empty = work / "empty.pdf"
    if not empty.exists():
        empty.write_bytes(img2pdf.convert(_white_png()))
    return ghostscript(empty, work / "empty.tif")


def _white_png() -> bytes:
    buf = io.BytesIO()
    Image.new("L", (85, 110), 255).save(buf, "PNG", dpi=(10, 10))
    return buf.getvalue()


def _pages(tiff: bytes) -> int:
    with Image.open(io.BytesIO(tiff)) as image:
        return int(getattr(image, "n_frames", 1))


if __name__ == "__main__":
    main()
