"""Office documents: sniffed by content, converted to PDF by the real LibreOffice, legible (OCR);
a LibreOffice that hangs, crashes or makes nothing ends in a clear refusal with nothing left
running; every slot busy is BusyError; no LibreOffice means no converter."""

from __future__ import annotations

import io
import logging
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pypdf
import pytest
from officegen import PAGE_BREAK, docx, odt, odt_with_load_macro, rtf, stand_in, xlsx
from PIL import Image

from gateway.config import OfficeSettings
from gateway.documents.office import office_format
from gateway.documents.office_process import (
    LibreOfficeConverter,
    OfficeLimits,
    find_soffice,
    office_converter,
)
from gateway.documents.render import RenderOptions, render_fax
from gateway.errors import BusyError, ConfigError, ConversionError
from gateway.models import DocumentKind, SourceDocument

SOFFICE = find_soffice("auto")
needs_soffice = pytest.mark.skipif(SOFFICE is None, reason="LibreOffice not installed")
needs_tesseract = pytest.mark.skipif(shutil.which("tesseract") is None, reason="no tesseract")

DOCUMENTS = {
    "docx": docx(["Quarterly invoice", "Account ledger", PAGE_BREAK, "Shipping manifest"]),
    # Long words alone on their row: a cell's text is cut where the next cell has content.
    "xlsx": xlsx([["Orders", "Crates"], ["Warehouse"], ["Delivered"]]),
    "odt": odt(["Purchase agreement", "Signature required"]),
    "rtf": rtf(["Meeting minutes", PAGE_BREAK, "Budget approved"]),
}
PAGES = {"docx": 2, "xlsx": 1, "odt": 1, "rtf": 2}
WORDS = {
    "docx": [["Quarterly", "invoice", "ledger"], ["Shipping", "manifest"]],
    "xlsx": [["Orders", "Crates", "Warehouse", "Delivered"]],
    "odt": [["Purchase", "agreement", "Signature"]],
    "rtf": [["Meeting", "minutes"], ["Budget", "approved"]],
}


# --- what is an office document -------------------------------------------------------------


@pytest.mark.parametrize("fmt", sorted(DOCUMENTS))
def test_office_format_is_known_by_content(fmt: str) -> None:
    assert office_format(DOCUMENTS[fmt]) == fmt


def test_binary_formats_are_known_by_their_ole2_stream_names() -> None:
    header = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(504)

    def entry(name: str) -> bytes:
        return (name + "\0").encode("utf-16-le").ljust(128, b"\0")

    assert office_format(header + entry("Root Entry") + entry("WordDocument")) == "doc"
    assert office_format(header + entry("Root Entry") + entry("Workbook")) == "xls"
    assert office_format(header + entry("Root Entry") + entry("PowerPoint Document")) == "ppt"
    # An MSI installer or an Outlook .msg is OLE2 too: not an office document.
    assert office_format(header + entry("Root Entry") + entry("__properties_version1.0")) is None


def test_not_office_documents_are_none() -> None:
    assert office_format(b"%PDF-1.4\n") is None
    assert office_format(b"PK\x03\x04 not really a zip") is None
    plain_zip = io.BytesIO()
    import zipfile

    with zipfile.ZipFile(plain_zip, "w") as archive:
        archive.writestr("word/document.xml", "<x/>")  # no [Content_Types].xml: not OPC
    assert office_format(plain_zip.getvalue()) is None
    assert office_format(b"") is None


# --- the real LibreOffice --------------------------------------------------------------------


@pytest.fixture(scope="module")
def converted() -> dict[str, bytes]:
    """Each document converted once by the real LibreOffice (seconds each)."""
    if SOFFICE is None:
        pytest.skip("LibreOffice not installed")
    converter = LibreOfficeConverter(SOFFICE, slots=2)
    return {fmt: converter.to_pdf(data, fmt, f"a.{fmt}") for fmt, data in DOCUMENTS.items()}


@needs_soffice
@pytest.mark.parametrize("fmt", sorted(DOCUMENTS))
def test_converted_pdf_has_the_documents_pages(converted: dict[str, bytes], fmt: str) -> None:
    assert len(pypdf.PdfReader(io.BytesIO(converted[fmt])).pages) == PAGES[fmt]


@needs_soffice
@needs_tesseract
@pytest.mark.parametrize("fmt", sorted(DOCUMENTS))
def test_faxed_pages_read_back_with_the_documents_words(
    converted: dict[str, bytes], fmt: str, tmp_path: Path
) -> None:
    document = SourceDocument(DocumentKind.PDF, converted[fmt], f"a.{fmt}", pages=PAGES[fmt])
    fax = render_fax([document], RenderOptions(resolution="fine"))
    with Image.open(io.BytesIO(fax.tiff)) as image:
        assert image.n_frames == PAGES[fmt]
        for page, words in enumerate(WORDS[fmt]):
            image.seek(page)
            path = tmp_path / f"page{page}.png"
            image.convert("L").save(path)
            text = subprocess.run(
                ["tesseract", str(path), "-", "--psm", "3"],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            for word in words:
                assert word in text, f"{fmt} page {page + 1}: {word!r} not in {text!r}"


@needs_soffice
def test_document_macros_never_run(tmp_path: Path) -> None:
    marker = tmp_path / "macro-ran"
    converter = LibreOfficeConverter(SOFFICE or "", slots=1)
    pdf = converter.to_pdf(odt_with_load_macro(["Harmless text"], str(marker)), "odt", "m.odt")
    assert pdf.startswith(b"%PDF")
    assert not marker.exists()


# --- a LibreOffice that misbehaves (an injected executable stands in for it) -----------------


def processes_of(path: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if path.encode() in cmdline:
                found.append(int(entry.name))
    return found


def living_in_group(group: int) -> list[int]:
    """Processes of a process group that are not zombies (orphans wait for init to reap them)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            state, _ppid, pgrp = stat.rsplit(")", 1)[1].split()[:3]
            if int(pgrp) == group and state != "Z":
                found.append(int(entry.name))
    return found


def test_a_hanging_libreoffice_is_killed_with_its_children(tmp_path: Path) -> None:
    # A child in the background, as soffice.bin is to its wrapper script: it must die too.
    leader = tmp_path / "leader"
    script = stand_in(
        tmp_path,
        f'echo $$ > "{leader}"; sh -c "sleep 1000; true" "{tmp_path}" & sleep 1000; true',
    )
    converter = LibreOfficeConverter(script, 1, OfficeLimits(timeout_s=0.5))
    with pytest.raises(ConversionError, match=r"LibreOffice timed out after 0\.5 s"):
        converter.to_pdf(b"{\\rtf1 x}", "rtf", "hang.rtf")
    group = int(leader.read_text())
    for _ in range(100):  # SIGKILL is delivered at once; dying may take a moment
        if not living_in_group(group):
            break
        time.sleep(0.05)
    assert living_in_group(group) == []
    assert processes_of(str(tmp_path)) == []


def test_a_crashing_libreoffice_is_a_clear_refusal(tmp_path: Path) -> None:
    script = stand_in(tmp_path, "kill -SEGV $$")
    converter = LibreOfficeConverter(script, 1)
    with pytest.raises(ConversionError, match=r"LibreOffice crashed \(signal 11\)") as caught:
        converter.to_pdf(b"{\\rtf1 x}", "rtf", "crash.rtf")
    assert caught.value.part == "crash.rtf"


def test_no_pdf_from_libreoffice_is_a_refusal(tmp_path: Path) -> None:
    converter = LibreOfficeConverter(stand_in(tmp_path, "exit 0"), 1)
    with pytest.raises(ConversionError, match="made no PDF"):
        converter.to_pdf(b"{\\rtf1 x}", "rtf", "empty.rtf")


def test_a_failing_libreoffice_reports_its_exit_status(tmp_path: Path) -> None:
    converter = LibreOfficeConverter(stand_in(tmp_path, "exit 3"), 1)
    with pytest.raises(ConversionError, match=r"exit status 3"):
        converter.to_pdf(b"{\\rtf1 x}", "rtf", "bad.rtf")


def test_libreoffice_runs_without_network_and_under_the_memory_limit(tmp_path: Path) -> None:
    # The stand-in "converts" by writing what it sees: its interfaces and its address-space limit.
    script = stand_in(
        tmp_path,
        'tail -n +3 /proc/net/dev | cut -d: -f1 > "$OUT/document.pdf"; '
        'ulimit -v >> "$OUT/document.pdf"',
    )
    converter = LibreOfficeConverter(script, 1, OfficeLimits(memory_bytes=1536 * 1024 * 1024))
    seen = converter.to_pdf(b"{\\rtf1 x}", "rtf", "probe.rtf").decode().split()
    assert seen[-1] == str(1536 * 1024)
    if converter.network_isolated:
        assert seen[:-1] == ["lo"]
    else:
        pytest.skip("this kernel refuses network namespaces")


def test_each_conversion_has_its_own_profile_removed_afterwards(tmp_path: Path) -> None:
    script = stand_in(
        tmp_path,
        'for a in "$@"; do case "$a" in -env:UserInstallation=file://*) '
        f'echo "${{a#-env:UserInstallation=file://}}" >> "{tmp_path}/profiles";; esac; done; '
        'echo x > "$OUT/document.pdf"',
    )
    converter = LibreOfficeConverter(script, 1)
    converter.to_pdf(b"{\\rtf1 x}", "rtf", "one.rtf")
    converter.to_pdf(b"{\\rtf1 x}", "rtf", "two.rtf")
    profiles = (tmp_path / "profiles").read_text().split()
    assert len(set(profiles)) == 2
    assert not any(os.path.exists(p) for p in profiles)


@pytest.fixture
def gate(tmp_path: Path) -> Iterator[Path]:
    gate = tmp_path / "gate"
    yield gate
    gate.touch()  # whatever happened, let a held conversion finish


def test_every_slot_taken_is_busy(tmp_path: Path, gate: Path) -> None:
    started = tmp_path / "started"
    script = stand_in(
        tmp_path,
        f'touch "{started}"; while [ ! -e "{gate}" ]; do sleep 0.05; done; '
        'echo x > "$OUT/document.pdf"',
    )
    converter = LibreOfficeConverter(script, 1, OfficeLimits(slot_wait_s=0.2))
    results: list[bytes] = []
    holder = threading.Thread(
        target=lambda: results.append(converter.to_pdf(b"{\\rtf1 x}", "rtf", "first.rtf"))
    )
    holder.start()
    while not started.exists():
        time.sleep(0.01)
    with pytest.raises(BusyError, match="slot"):
        converter.to_pdf(b"{\\rtf1 x}", "rtf", "second.rtf")
    gate.touch()
    holder.join()
    assert results == [b"x\n"]
    # The slot is free again.
    assert converter.to_pdf(b"{\\rtf1 x}", "rtf", "third.rtf") == b"x\n"


# --- building the converter from [office] ----------------------------------------------------


def test_no_libreoffice_means_no_converter_and_says_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    missing = str(tmp_path / "no-soffice")
    with caplog.at_level(logging.WARNING, "gateway.documents.office_process"):
        assert office_converter(OfficeSettings(soffice=missing), workers=2) is None
    assert "no LibreOffice" in caplog.text


def test_disabled_office_means_no_converter(tmp_path: Path) -> None:
    script = stand_in(tmp_path, "exit 0")
    assert office_converter(OfficeSettings(enabled=False, soffice=script), workers=2) is None


def test_office_required_but_missing_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="soffice"):
        office_converter(OfficeSettings(enabled=True, soffice=str(tmp_path / "none")), workers=1)


def test_configured_soffice_is_used(tmp_path: Path) -> None:
    script = stand_in(tmp_path, 'echo made > "$OUT/document.pdf"')
    converter = office_converter(OfficeSettings(soffice=script), workers=1)
    assert converter is not None
    assert converter.to_pdf(b"{\\rtf1 x}", "rtf", "a.rtf") == b"made\n"


@needs_soffice
def test_libreoffice_beyond_its_memory_limit_is_a_clear_refusal() -> None:
    # 300 MB of address space is below what LibreOffice 7.4 needs to start (400-512 MB).
    converter = LibreOfficeConverter(
        SOFFICE or "", slots=1, limits=OfficeLimits(memory_bytes=300 * 1024 * 1024)
    )
    with pytest.raises(ConversionError, match=r"LibreOffice crashed \(signal 6; out of memory"):
        converter.to_pdf(DOCUMENTS["odt"], "odt", "big.odt")
