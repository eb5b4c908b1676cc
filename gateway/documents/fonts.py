"""The fonts text is drawn with, and which of them draws each character.

The chain is: the bundled DejaVu Sans Mono (always first: Latin on the monospace grid), the
configured font files (``[render] fonts``), then one system font per script found through
fontconfig (Greek, Cyrillic, Hebrew, Arabic, Chinese, Japanese, Korean; Debian's
fonts-dejavu-core and fonts-noto-cjk). Each character is drawn with the first font of the chain
whose ``cmap`` maps it to a real glyph. Pillow has no API for that (``getmask`` draws .notdef
boxes for missing glyphs without complaint), so the 'cmap' table is read here, from the file,
by a small bounded parser of TrueType/OpenType/TTC headers and cmap formats 4 and 12.

The fontconfig lookup runs ``fc-list`` once per process (with a timeout) and is cached; it runs
in intake threads and render processes, never on the event loop.
"""

from __future__ import annotations

import io
import logging
import struct
import subprocess
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import BinaryIO

log = logging.getLogger(__name__)

BUNDLED = "<bundled DejaVu Sans Mono>"
# Scripts the gateway promises to draw, as fontconfig language tags, and the families preferred
# for them (the first installed wins; any regular face covering the language otherwise).
_SCRIPT_LANGS = ("el", "ru", "he", "ar", "zh-cn", "ja", "ko")
_PREFERRED = (
    "DejaVu Sans Mono",
    "DejaVu Sans",
    "Noto Sans Mono CJK SC",
    "Noto Sans CJK SC",
    "Noto Sans Mono CJK JP",
    "Noto Sans CJK JP",
    "Noto Sans CJK KR",
    "WenQuanYi Micro Hei",
)
_FC_TIMEOUT_S = 10.0
_MAX_TABLES = 1024
_MAX_CMAP_BYTES = 16 << 20


@dataclass(frozen=True)
class FontFace:
    """One face: a file (or the bundled font) and its index in a collection (.ttc)."""

    path: str
    index: int = 0

    def describe(self) -> str:
        return self.path if self.index == 0 else f"{self.path}#{self.index}"


@dataclass
class FontChain:
    """Faces in order with the code points each one has a glyph for."""

    faces: tuple[FontFace, ...]
    coverage: tuple[frozenset[int], ...]
    _memo: dict[str, int | None] = field(default_factory=dict, repr=False)

    def face_of(self, char: str) -> int | None:
        """Index in ``faces`` of the first face that draws ``char``; None if none does."""
        try:
            return self._memo[char]
        except KeyError:
            point = ord(char)
            found = next((i for i, cov in enumerate(self.coverage) if point in cov), None)
            self._memo[char] = found
            return found

    def can_draw(self, char: str) -> bool:
        return self.face_of(char) is not None


class FontFileError(ValueError):
    """A font file that cannot be read or has no usable Unicode cmap."""


def _u16(data: bytes, at: int) -> int:
    return int(struct.unpack_from(">H", data, at)[0])


def _u32(data: bytes, at: int) -> int:
    return int(struct.unpack_from(">I", data, at)[0])


def read_cmap(data_or_path: bytes | str, index: int = 0) -> frozenset[int]:
    """The code points the face maps to a glyph other than .notdef (glyph 0)."""
    try:
        if isinstance(data_or_path, bytes):
            return _parse_cmap(_cmap_table_from_bytes(data_or_path, index))
        with open(data_or_path, "rb") as stream:
            return _parse_cmap(_cmap_table_from_file(stream, index))
    except (OSError, struct.error, IndexError) as exc:
        raise FontFileError(f"{data_or_path!s:.200}: unreadable font ({exc})") from exc


def _cmap_table_from_bytes(data: bytes, index: int) -> bytes:
    return _cmap_table_from_file(io.BytesIO(data), index)


def _cmap_table_from_file(file: BinaryIO, index: int) -> bytes:
    head = file.read(12)
    start = 0
    if head[:4] == b"ttcf":
        count = _u32(head, 8)
        if not 0 <= index < min(count, _MAX_TABLES):
            raise FontFileError(f"no face {index} in the collection")
        start = _u32(file.read(4 * (index + 1)), 4 * index)
        file.seek(start)
        head = file.read(12)
    tables = _u16(head, 4)
    if tables > _MAX_TABLES:
        raise FontFileError("implausible table count")
    directory = file.read(16 * tables)
    for entry in range(tables):
        tag = directory[16 * entry : 16 * entry + 4]
        if tag == b"cmap":
            offset, length = _u32(directory, 16 * entry + 8), _u32(directory, 16 * entry + 12)
            if length > _MAX_CMAP_BYTES:
                raise FontFileError("cmap table too large")
            file.seek(offset)
            return file.read(length)
    raise FontFileError("no cmap table")


# Preferred Unicode subtables: full repertoire (format 12) first, then the BMP (format 4).
_SUBTABLE_RANK = {(3, 10): 0, (0, 4): 1, (0, 6): 1, (3, 1): 2, (0, 3): 3, (0, 2): 3, (0, 1): 3}


def _parse_cmap(table: bytes) -> frozenset[int]:
    records = []
    for number in range(min(_u16(table, 2), _MAX_TABLES)):
        at = 4 + 8 * number
        key = (_u16(table, at), _u16(table, at + 2))
        if key in _SUBTABLE_RANK:
            records.append((_SUBTABLE_RANK[key], _u32(table, at + 4)))
    for _rank, offset in sorted(records):
        form = _u16(table, offset)
        if form == 12:
            return _format12(table, offset)
        if form == 4:
            return _format4(table, offset)
    raise FontFileError("no Unicode cmap subtable in format 4 or 12")


def _format12(table: bytes, offset: int) -> frozenset[int]:
    points: set[int] = set()
    for group in range(min(_u32(table, offset + 12), 1 << 20)):
        at = offset + 16 + 12 * group
        first, last, glyph = _u32(table, at), _u32(table, at + 4), _u32(table, at + 8)
        last = min(last, 0x10FFFF)
        if first > last:
            continue
        points.update(range(first + (1 if glyph == 0 else 0), last + 1))
    return frozenset(points)


def _format4(table: bytes, offset: int) -> frozenset[int]:
    segments = _u16(table, offset + 6) // 2
    ends = offset + 14
    starts = ends + 2 * segments + 2
    deltas = starts + 2 * segments
    ranges = deltas + 2 * segments
    points: set[int] = set()
    for seg in range(segments):
        first, last = _u16(table, starts + 2 * seg), _u16(table, ends + 2 * seg)
        delta, range_offset = _u16(table, deltas + 2 * seg), _u16(table, ranges + 2 * seg)
        for point in range(first, min(last, 0xFFFE) + 1):
            if range_offset == 0:
                glyph = (point + delta) & 0xFFFF
            else:
                at = ranges + 2 * seg + range_offset + 2 * (point - first)
                glyph = _u16(table, at) if at + 2 <= len(table) else 0
                glyph = (glyph + delta) & 0xFFFF if glyph else 0
            if glyph:
                points.add(point)
    return frozenset(points)


def bundled_font_bytes() -> bytes:
    return resources.files("gateway.documents").joinpath("fonts/DejaVuSansMono.ttf").read_bytes()


@dataclass(frozen=True)
class _Installed:
    face: FontFace
    family: str
    langs: frozenset[str]


def fontconfig_faces(executable: str = "fc-list") -> list[FontFace]:
    """One regular face per script of ``_SCRIPT_LANGS`` that fontconfig knows (deduplicated)."""
    fmt = "%{file}\t%{index}\t%{family[0]}\t%{style[0]}\t%{lang}\n"
    try:
        listing = subprocess.run(  # noqa: S603 - fixed arguments, no shell
            [executable, "--format", fmt],
            capture_output=True,
            text=True,
            timeout=_FC_TIMEOUT_S,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        log.warning("fonts: fontconfig lookup failed (%s); only configured fonts are used", exc)
        return []
    installed = [face for line in listing.splitlines() if (face := _installed(line))]
    chosen: list[FontFace] = []
    for lang in _SCRIPT_LANGS:
        candidates = [item for item in installed if lang in item.langs]
        if not candidates:
            log.warning("fonts: no installed font covers language %r", lang)
            continue
        best = min(candidates, key=_preference)
        if best.face not in chosen:
            chosen.append(best.face)
    return chosen


def _installed(line: str) -> _Installed | None:
    fields = line.split("\t")
    if len(fields) != 5 or not fields[0].endswith((".ttf", ".otf", ".ttc", ".otc")):
        return None
    path, index, family, style, langs = fields
    # Upright, regular weight: what text is set in.
    if style not in ("Regular", "Book", "Normal") or not index.isdigit():
        return None
    return _Installed(FontFace(path, int(index)), family, frozenset(langs.split("|")))


def _preference(item: _Installed) -> tuple[int, int, str]:
    rank = _PREFERRED.index(item.family) if item.family in _PREFERRED else len(_PREFERRED)
    return (rank, "Serif" in item.family, item.family)


def build_chain(configured: Sequence[str], system: Sequence[FontFace]) -> FontChain:
    """The chain: bundled font, configured files, system faces; unreadable files are skipped
    with a warning (a configured path that is wrong must not stop the gateway drawing Latin)."""
    faces = [FontFace(BUNDLED)]
    coverage = [read_cmap(bundled_font_bytes())]
    wanted = [(_configured_face(path), True) for path in configured]
    for face, is_configured in [*wanted, *((face, False) for face in system)]:
        if face in faces:
            continue
        try:
            points = read_cmap(face.path, face.index)
        except FontFileError as exc:
            log.warning("fonts: skipping %s: %s", face.describe(), exc)
            continue
        if not is_configured and points <= frozenset().union(*coverage):
            continue  # a system copy of a font already in the chain
        faces.append(face)
        coverage.append(points)
    return FontChain(tuple(faces), tuple(coverage))


def _configured_face(path: str) -> FontFace:
    # "file.ttc#2" picks a face of a collection.
    name, _, index = path.rpartition("#")
    if name and index.isdigit():
        return FontFace(str(Path(name)), int(index))
    return FontFace(str(Path(path)))


_CHAINS: dict[tuple[str, ...], FontChain] = {}
_LOCK = threading.Lock()


def font_chain(configured: Sequence[str] = ()) -> FontChain:
    """The process's chain for these configured fonts, built once (fontconfig runs once)."""
    key = tuple(configured)
    with _LOCK:
        chain = _CHAINS.get(key)
        if chain is None:
            chain = _CHAINS[key] = build_chain(key, _system_faces())
        return chain


_SYSTEM: list[list[FontFace]] = []


def _system_faces() -> list[FontFace]:
    if not _SYSTEM:
        _SYSTEM.append(fontconfig_faces())
    return _SYSTEM[0]
