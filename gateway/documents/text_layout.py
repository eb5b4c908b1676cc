"""Plain text → pages of lines on a monospace grid of cells (pure; no fonts, no pixels).

A character takes the cells a terminal gives it: two for East Asian Wide and Fullwidth
characters, none for combining marks and format characters, one otherwise. Lines wrap at spaces;
a run longer than the line (a URL, or Chinese and Japanese, which have no spaces) is broken at
the last character that fits. Used by the renderer and, for the page estimate, at SMTP time, so
both count the same pages.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator

# Separators FriBiDi (through raqm) treats as paragraph ends, which make Pillow's raqm_layout()
# fail inside one line: they end the line here instead.
_LINE_BREAKS = re.compile("\r\n|[\r\x1c\x1d\x1e\x85\u2028\u2029]")
# Other C0 and C1 controls (tab, line feed and form feed stay) draw nothing useful.
_CONTROL = re.compile("[\x00-\x08\x0b\x0e-\x1f\x7f-\x9f]")
TAB_CELLS = 8


def clean(text: str) -> str:
    return _CONTROL.sub(" ", _LINE_BREAKS.sub("\n", text))


def cells(char: str) -> int:
    if unicodedata.combining(char) or unicodedata.category(char) in ("Mn", "Me", "Cf"):
        return 0
    return 2 if unicodedata.east_asian_width(char) in ("W", "F") else 1


def width(text: str) -> int:
    return sum(cells(char) for char in text)


def _tokens(line: str) -> Iterator[str]:
    """Runs of spaces, words, and each wide character alone (a place to break a line)."""
    token, token_kind = "", ""
    for char in line:
        size = cells(char)
        if token and size == 0 and not char.isspace():
            token += char  # a combining mark stays with its base
            continue
        kind = "space" if char.isspace() else ("wide" if size == 2 else "word")
        if token and (kind != token_kind or kind == "wide"):
            yield token
            token = ""
        token, token_kind = token + char, kind
    if token:
        yield token


def _split(token: str, columns: int) -> list[str]:
    pieces, piece, used = [], "", 0
    for char in token:
        size = cells(char)
        if piece and used + size > columns:
            pieces.append(piece)
            piece, used = "", 0
        piece += char
        used += size
    return [*pieces, piece] if piece else pieces


def wrap(line: str, columns: int) -> list[str]:
    """Wrap one line (tabs already expanded) to ``columns`` cells; [] for an empty line."""
    lines: list[str] = []
    current, used = "", 0
    for token in _tokens(line):
        size = width(token)
        if used + size <= columns:
            if token.isspace() and not current and lines:
                continue  # a wrapped line does not start with the space it broke at
            current += token
            used += size
            continue
        if token.isspace():
            lines.append(current.rstrip())
            current, used = "", 0
            continue
        if current.strip():
            lines.append(current.rstrip())
        current, used = "", 0
        for piece in _split(token, columns):
            if used + width(piece) > columns:
                lines.append(current)
                current, used = "", 0
            current += piece
            used += width(piece)
    if current.strip() or (current and not lines):
        lines.append(current.rstrip())
    return lines


def layout(
    text: str, columns: int, lines_per_page: int, first_page_lines: int = 0
) -> list[list[str]]:
    """Split text into pages of wrapped lines; ``first_page_lines`` reserves room on page one;
    form feeds start a new page."""
    pages: list[list[str]] = []
    for chunk in clean(text).split("\f"):
        page: list[str] = []
        capacity = lines_per_page - (first_page_lines if not pages else 0)
        rows = chunk.split("\n")
        while rows and not rows[-1].strip():
            rows.pop()  # trailing blank lines would only become chopped blank paper
        for raw in rows:
            for line in wrap(raw.expandtabs(TAB_CELLS), columns) or [""]:
                if len(page) >= capacity:
                    pages.append(page)
                    page, capacity = [], lines_per_page
                page.append(line)
        pages.append(page)
    return pages
