"""Legibility: 10 pt text rendered in fine mode reads back with Tesseract at >= 98 %."""

from __future__ import annotations

import difflib
import io
import shutil
import subprocess
from pathlib import Path

import pytest
from docgen import LETTER, pdf, text_content
from PIL import Image

from gateway.documents.render import RenderOptions, render_fax
from gateway.models import DocumentKind, SourceDocument

pytestmark = pytest.mark.skipif(shutil.which("tesseract") is None, reason="tesseract not installed")

LINES = [
    "Invoice 4711 for the quarterly service agreement, due on March 31.",
    "Please remit payment of USD 1,284.50 to account number 55-3920-17.",
    "Questions? Call our billing office at +1 (555) 010-4477, ext. 204.",
    "The quick brown fox jumps over the lazy dog; pack my box with five",
    "dozen liquor jugs. Sphinx of black quartz, judge my vow! Done.",
    "Shipping: 12 crates, 3 pallets, weight 845 kg, reference QX-88213.",
] * 4


def normalized(text: str) -> str:
    return " ".join(text.split())


def ocr(page: Image.Image, tmp_path: Path) -> str:
    path = tmp_path / "page.png"
    page.save(path, dpi=(204, 196))
    result = subprocess.run(
        ["tesseract", str(path), "-", "--psm", "6"], capture_output=True, text=True, check=True
    )
    return result.stdout


def accuracy(document: SourceDocument, tmp_path: Path) -> float:
    fax = render_fax([document], RenderOptions(resolution="fine"))
    with Image.open(io.BytesIO(fax.tiff)) as image:
        text = ocr(image.convert("L"), tmp_path)
    expected = normalized("\n".join(LINES))
    return difflib.SequenceMatcher(None, expected, normalized(text)).ratio()


def test_ten_point_pdf_text_is_legible(tmp_path: Path) -> None:
    document = SourceDocument(
        DocumentKind.PDF, pdf([(*LETTER, text_content(LINES, size=10))]), "a.pdf"
    )
    assert accuracy(document, tmp_path) >= 0.98


def test_plain_text_document_is_legible(tmp_path: Path) -> None:
    document = SourceDocument(DocumentKind.TEXT, "\n".join(LINES).encode(), "body.txt")
    assert accuracy(document, tmp_path) >= 0.98
