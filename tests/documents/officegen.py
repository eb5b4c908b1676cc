"""Minimal valid Office documents written by hand (OOXML and ODF as ZIP + XML, RTF as text),
so that the tests carry no binary fixtures and say exactly what is in each document."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path
from xml.sax.saxutils import escape

PAGE_BREAK = "\f"  # in a list of paragraphs: start a new page here

_CONTENT_TYPES = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
    '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
    '<Default Extension="rels" '
    'ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
    '<Default Extension="xml" ContentType="application/xml"/>{overrides}</Types>'
)
_OVERRIDE = '<Override PartName="/{part}" ContentType="{type}"/>'
_RELS = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
    '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    "{rels}</Relationships>"
)
_REL = '<Relationship Id="{id}" Type="{type}" Target="{target}"/>'
_OFFICE_DOCUMENT = (
    "http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument"
)
_WORKSHEET = "http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet"
_WORD_MAIN = "application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"
_SHEET_MAIN = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"
_SHEET = "application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"


def _zip(entries: list[tuple[str, str]], *, first_stored: bool = False) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for index, (name, text) in enumerate(entries):
            if first_stored and index == 0:
                archive.writestr(zipfile.ZipInfo(name), text)  # ZIP_STORED, as ODF demands
            else:
                archive.writestr(name, text)
    return buffer.getvalue()


def docx(paragraphs: list[str], size_pt: int = 16) -> bytes:
    runs = []
    for text in paragraphs:
        if text == PAGE_BREAK:
            runs.append('<w:p><w:r><w:br w:type="page"/></w:r></w:p>')
        else:
            runs.append(
                f'<w:p><w:r><w:rPr><w:sz w:val="{size_pt * 2}"/></w:rPr>'
                f"<w:t>{escape(text)}</w:t></w:r></w:p>"
            )
    document = (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
        '<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main">'
        f"<w:body>{''.join(runs)}</w:body></w:document>"
    )
    return _zip(
        [
            (
                "[Content_Types].xml",
                _CONTENT_TYPES.format(
                    overrides=_OVERRIDE.format(part="word/document.xml", type=_WORD_MAIN)
                ),
            ),
            (
                "_rels/.rels",
                _RELS.format(
                    rels=_REL.format(id="rId1", type=_OFFICE_DOCUMENT, target="word/document.xml")
                ),
            ),
            ("word/document.xml", document),
        ]
    )


def xlsx(rows: list[list[str]]) -> bytes:
    cells = []
    for r, row in enumerate(rows, start=1):
        values = "".join(
            f'<c r="{chr(ord("A") + c)}{r}" t="inlineStr"><is><t>{escape(v)}</t></is></c>'
            for c, v in enumerate(row)
        )
        cells.append(f'<row r="{r}">{values}</row>')
    sheet = (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
        '<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
        f"<sheetData>{''.join(cells)}</sheetData></worksheet>"
    )
    workbook = (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
        '<workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" '
        'xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships">'
        '<sheets><sheet name="Orders" sheetId="1" r:id="rId1"/></sheets></workbook>'
    )
    overrides = _OVERRIDE.format(part="xl/workbook.xml", type=_SHEET_MAIN) + _OVERRIDE.format(
        part="xl/worksheets/sheet1.xml", type=_SHEET
    )
    return _zip(
        [
            ("[Content_Types].xml", _CONTENT_TYPES.format(overrides=overrides)),
            (
                "_rels/.rels",
                _RELS.format(
                    rels=_REL.format(id="rId1", type=_OFFICE_DOCUMENT, target="xl/workbook.xml")
                ),
            ),
            ("xl/workbook.xml", workbook),
            (
                "xl/_rels/workbook.xml.rels",
                _RELS.format(
                    rels=_REL.format(id="rId1", type=_WORKSHEET, target="worksheets/sheet1.xml")
                ),
            ),
            ("xl/worksheets/sheet1.xml", sheet),
        ]
    )


_ODF_MANIFEST = (
    '<?xml version="1.0" encoding="UTF-8"?>'
    '<manifest:manifest xmlns:manifest="urn:oasis:names:tc:opendocument:xmlns:manifest:1.0" '
    'manifest:version="1.2">'
    '<manifest:file-entry manifest:full-path="/" manifest:media-type="{mimetype}"/>'
    '<manifest:file-entry manifest:full-path="content.xml" manifest:media-type="text/xml"/>'
    "{extra}</manifest:manifest>"
)
_ODT_MIMETYPE = "application/vnd.oasis.opendocument.text"
_ODF_NAMESPACES = (
    'xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" '
    'xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0" '
    'xmlns:style="urn:oasis:names:tc:opendocument:xmlns:style:1.0" '
    'xmlns:fo="urn:oasis:names:tc:opendocument:xmlns:xsl-fo-compatible:1.0" '
    'xmlns:script="urn:oasis:names:tc:opendocument:xmlns:script:1.0" '
    'xmlns:xlink="http://www.w3.org/1999/xlink" office:version="1.2"'
)


def odt(paragraphs: list[str], size_pt: int = 16, scripts: str = "") -> bytes:
    body = "".join(f'<text:p text:style-name="Big">{escape(p)}</text:p>' for p in paragraphs)
    content = (
        '<?xml version="1.0" encoding="UTF-8"?>'
        f"<office:document-content {_ODF_NAMESPACES}>{scripts}"
        '<office:automatic-styles><style:style style:name="Big" style:family="paragraph">'
        f'<style:text-properties fo:font-size="{size_pt}pt"/></style:style>'
        "</office:automatic-styles>"
        f"<office:body><office:text>{body}</office:text></office:body>"
        "</office:document-content>"
    )
    return _zip(
        [
            ("mimetype", _ODT_MIMETYPE),
            ("META-INF/manifest.xml", _ODF_MANIFEST.format(mimetype=_ODT_MIMETYPE, extra="")),
            ("content.xml", content),
        ],
        first_stored=True,
    )


def odt_with_load_macro(paragraphs: list[str], marker: str) -> bytes:
    """An ODT whose document Basic writes ``marker`` when the document loads (OnLoad)."""
    listener = (
        "<office:scripts><office:event-listeners>"
        '<script:event-listener script:language="ooo:script" script:event-name="dom:load" '
        'xlink:href="vnd.sun.star.script:Standard.Module1.Main?language=Basic&amp;'
        'location=document" xlink:type="simple"/>'
        "</office:event-listeners></office:scripts>"
    )
    plain = odt(paragraphs, scripts=listener)
    module = (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<script:module xmlns:script="http://openoffice.org/2000/script" '
        'script:name="Module1" script:language="StarBasic">Sub Main\n'
        f'  Open "{marker}" For Output As #1\n  Print #1, "macro ran"\n  Close #1\n'
        "End Sub\n</script:module>"
    )
    library = (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<library:library xmlns:library="http://openoffice.org/2000/library" '
        'library:name="Standard" library:readonly="false" library:passwordprotected="false">'
        '<library:element library:name="Module1"/></library:library>'
    )
    libraries = (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<library:libraries xmlns:library="http://openoffice.org/2000/library" '
        'xmlns:xlink="http://www.w3.org/1999/xlink">'
        '<library:library library:name="Standard" library:link="false"/></library:libraries>'
    )
    basic_entries = "".join(
        f'<manifest:file-entry manifest:full-path="{path}" manifest:media-type="text/xml"/>'
        for path in (
            "Basic/script-lc.xml",
            "Basic/Standard/script-lb.xml",
            "Basic/Standard/Module1.xml",
        )
    )
    with zipfile.ZipFile(io.BytesIO(plain)) as archive:
        content = archive.read("content.xml").decode()
    return _zip(
        [
            ("mimetype", _ODT_MIMETYPE),
            (
                "META-INF/manifest.xml",
                _ODF_MANIFEST.format(mimetype=_ODT_MIMETYPE, extra=basic_entries),
            ),
            ("content.xml", content),
            ("Basic/script-lc.xml", libraries),
            ("Basic/Standard/script-lb.xml", library),
            ("Basic/Standard/Module1.xml", module),
        ],
        first_stored=True,
    )


def rtf(paragraphs: list[str], size_pt: int = 16) -> bytes:
    parts = []
    for text in paragraphs:
        if text == PAGE_BREAK:
            parts.append("\\page\n")
        else:
            escaped = text.replace("\\", "\\\\").replace("{", "\\{").replace("}", "\\}")
            parts.append(f"\\fs{size_pt * 2} {escaped}\\par\n")
    return (
        "{\\rtf1\\ansi\\deff0{\\fonttbl{\\f0 Liberation Serif;}}\n" + "".join(parts) + "}"
    ).encode("ascii")


def stand_in(tmp_path: Path, body: str) -> str:
    """An executable called with soffice's arguments, standing in for a LibreOffice that
    misbehaves; ``$OUT`` is the --outdir it was given."""
    script = tmp_path / "soffice-stand-in"
    script.write_text(
        "#!/bin/sh\n"
        'OUT=""; prev=""\n'
        'for a in "$@"; do [ "$prev" = "--outdir" ] && OUT="$a"; prev="$a"; done\n'
        f"{body}\n"
    )
    script.chmod(0o755)
    return str(script)
