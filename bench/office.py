"""Benchmark: Office conversion time per page, against rendering a PDF of the same page count.

    .venv/bin/python bench/office.py [--repeat N]

Each conversion runs as in production: a cold, fresh LibreOffice profile and process per
document, in its own network namespace, under the memory limit (LibreOfficeConverter). The
docx inputs are made in memory (1 and 10 pages of 16 pt text); the baseline is our renderer
turning the converted PDF into fax pages (fine mode), which happens to every document anyway.
Prints the median seconds per document and per page, and the conversion's ratio to the render.
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "documents"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pypdf
from officegen import PAGE_BREAK, docx

from gateway.documents.office_process import LibreOfficeConverter, find_soffice
from gateway.documents.render import RenderOptions, render_fax
from gateway.models import DocumentKind, SourceDocument

LINE = "Quarterly invoice for the service agreement, remit payment within thirty days."


def document(pages: int) -> bytes:
    paragraphs: list[str] = []
    for page in range(pages):
        if page:
            paragraphs.append(PAGE_BREAK)
        paragraphs.extend([f"Page {page + 1}", *[LINE] * 20])
    return docx(paragraphs, size_pt=12)


def median_seconds(work: object, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        work()  # type: ignore[operator]
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    soffice = find_soffice("auto")
    if soffice is None:
        sys.exit("no LibreOffice (soffice) on PATH")
    converter = LibreOfficeConverter(soffice, slots=1)
    print(f"soffice {soffice}; network namespace: {converter.network_isolated}")
    print(
        f"{'pages':>5} {'convert s':>10} {'s/page':>8} {'render s':>9} {'s/page':>8} {'ratio':>6}"
    )
    for pages in (1, 10):
        data = document(pages)
        pdf = converter.to_pdf(data, "docx", "bench.docx")
        made = len(pypdf.PdfReader(io.BytesIO(pdf)).pages)
        assert made == pages, f"the {pages}-page docx converted to {made} pages"
        source = SourceDocument(DocumentKind.PDF, pdf, "bench.pdf", pages=pages)
        convert = median_seconds(
            lambda d=data: converter.to_pdf(d, "docx", "bench.docx"), args.repeat
        )
        render = median_seconds(
            lambda s=source: render_fax([s], RenderOptions(resolution="fine")), args.repeat
        )
        print(
            f"{pages:>5} {convert:>10.2f} {convert / pages:>8.3f} {render:>9.2f} "
            f"{render / pages:>8.3f} {convert / render:>6.1f}"
        )


if __name__ == "__main__":
    main()
