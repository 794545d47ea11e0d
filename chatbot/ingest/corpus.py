"""Load corpus files into :class:`Document` records with boilerplate removed.

Each file is turned into text by the converter of its type (:mod:`chatbot.ingest.converters`:
.txt, .md, .pdf, .docx, .html). Boilerplate is never cut out of that text: ``Document.text`` is
the whole decoded file (for .txt) or the whole extracted text (other types; stored with the
index), and ``Document.segments`` lists the spans that are content, so every citation can point
back into it.  Removal works line by line
with generic rules (navigation labels, comment forms, "See also" links,
reading-time lines, repeated headlines, teaser headlines above the title).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from chatbot.config import CORPUS_SETTINGS_FILE, MAX_CORPUS_FILE_BYTES, size_limit_message
from chatbot.ingest.converters import ConversionError, convert, unsupported
from chatbot.ingest.converters.text import decode_text  # noqa: F401 (part of this module's API)
from chatbot.types import Document

log = logging.getLogger(__name__)

MAX_FILE_BYTES = MAX_CORPUS_FILE_BYTES  # the default of load_corpus(max_file_bytes=...)
METADATA_FILE = "metadata.json"
# Files of the corpus folder that describe it rather than hold documents.
CORPUS_CONFIG_FILES = (METADATA_FILE, CORPUS_SETTINGS_FILE)
TITLE_MAX_CHARS = 100


@dataclass(frozen=True)
class SkippedFile:
    """A corpus file that was not loaded, and why (shown to the operator)."""

    source: str
    reason: str


def file_sha256(path: str | Path) -> str:
    """SHA-256 of the file's raw bytes, for the index manifest."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def source_name(path: Path) -> str:
    """The file's name as it is stored and shown: bytes that are not UTF-8 (names from cp1251 or cp866
    zip archives) as ``\\xNN`` escapes, so that it can be written to the index and printed; control
    characters and bidirectional overrides (which could redraw a terminal or reorder a line) escaped too."""
    name = os.fsencode(path.name).decode("utf-8", "backslashreplace")
    return "".join(ch.encode("unicode_escape").decode("ascii") if _hidden_in_names(ch) else ch for ch in name)


def _hidden_in_names(ch: str) -> bool:
    return unicodedata.category(ch) == "Cc" or "\u202a" <= ch <= "\u202e" or "\u2066" <= ch <= "\u2069"


def document_files(corpus_dir: str | Path) -> list[Path]:
    """The files of ``corpus_dir`` that are documents (indexed or skipped), sorted by name: every
    visible file directly in it but ``metadata.json`` and ``chatbot.json``."""
    return [p for p in sorted(Path(corpus_dir).iterdir(), key=lambda p: p.name)
            if not p.name.startswith(".") and p.name not in CORPUS_CONFIG_FILES and p.is_file()]


def load_corpus(corpus_dir: str | Path, max_file_bytes: int | None = None,
                names: set[str] | None = None) -> tuple[list[Document], list[SkippedFile]]:
    """Load every document file directly in ``corpus_dir`` (or only those ``names``), sorted by name.

    Never raises for a single bad file: it is reported in the second list
    instead, as are files of types no converter reads and links to files outside
    ``corpus_dir``.  ``metadata.json``, when present, supplies title, language
    and the other metadata fields per file name.  Files over ``max_file_bytes``
    (default ``MAX_FILE_BYTES``) are skipped.
    """
    corpus_dir = Path(corpus_dir)
    limit = MAX_FILE_BYTES if max_file_bytes is None else max_file_bytes
    skipped: list[SkippedFile] = []
    metadata = _read_metadata(corpus_dir / METADATA_FILE, skipped)
    docs: list[Document] = []
    for path in document_files(corpus_dir):
        name = source_name(path)
        if names is not None and name not in names:
            continue
        if not path.resolve().is_relative_to(corpus_dir.resolve()):
            doc, reason = None, "a link to a file outside the corpus folder"
        else:
            doc, reason = load_file(path, metadata.get(name) or {}, limit, name)
        if doc is None:
            skipped.append(SkippedFile(name, reason))
        else:
            docs.append(doc)
    return docs, skipped


def _read_metadata(path: Path, skipped: list[SkippedFile]) -> dict:
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))
        if not isinstance(data, dict):
            raise ValueError("top level is not an object")
    except (OSError, ValueError) as exc:
        log.warning("ignoring %s: %s", path.name, exc)
        skipped.append(SkippedFile(path.name, f"invalid metadata file: {exc}"))
        return {}
    return {name: entry for name, entry in data.items() if isinstance(entry, dict)}


def load_file(path: Path, meta: dict, max_bytes: int, name: str | None = None) -> tuple[Document | None, str]:
    """One file as a :class:`Document` (``meta``: its metadata.json entry), or ``(None, reason)``.
    ``name`` (default: the file's) is the document's source name, whose suffix picks the converter."""
    name = name or path.name
    if reason := unsupported(name):
        return None, reason
    try:
        size = path.stat().st_size
        if size > max_bytes:
            return None, size_limit_message(size, max_bytes)
        data = path.read_bytes()
    except OSError as exc:
        return None, f"unreadable: {exc.strerror or exc}"
    try:
        extracted = convert(name, data)
    except ConversionError as exc:
        return None, str(exc)
    text = extracted.text
    if not text.strip():
        return None, "empty"
    title_hint = meta.get("title") if isinstance(meta.get("title"), str) else extracted.title
    segments = find_segments(text, title_hint)
    if not segments:
        return None, "no content left after boilerplate removal"
    title = title_hint or derive_title(text, segments)
    lang = meta.get("language") if meta.get("language") in ("en", "ru") else detect_language(
        " ".join(text[s:e] for s, e in segments)
    )
    extra = extracted.metadata | {k: v for k, v in meta.items() if k not in ("title", "language")}
    extra["sha256"] = hashlib.sha256(data).hexdigest()
    if extracted.notes:
        extra["notes"] = list(extracted.notes)
    return Document(name, title, lang, text, tuple(segments), extra, extracted.pages), ""


# ---------------------------------------------------------------- language

_CYRILLIC = re.compile(r"[\u0400-\u04FF]")


def detect_language(text: str) -> str:
    """``"ru"`` when at least 30% of the letters are Cyrillic, else ``"en"``."""
    letters = [c for c in text if c.isalpha()]
    if not letters:
        return "en"
    cyr = sum(1 for c in letters if _CYRILLIC.match(c))
    return "ru" if cyr / len(letters) >= 0.3 else "en"


# ---------------------------------------------------------------- boilerplate

_SCRIPT_STYLE = re.compile(r"<(script|style)\b[^>]*>.*?(?:</\1\s*>|\Z)", re.I | re.S)

# Whole-line UI labels (normalized: casefolded, single spaces, straight quotes).
_NAVIGATION = frozenset(
    "dark mode light mode|light mode dark mode|dark mode|light mode|highlights|skip to content|"
    "skip to main content|toggle navigation|menu|main menu|search|home|share|share this|"
    "share this article|share on facebook|share on twitter|tweet|advertisement|sponsored|"
    "subscribe|sign in|log in|back to top|scroll to top|главная|меню|поиск|поделиться|реклама|"
    "наверх".split("|")
)

_COMMENT_FORM = re.compile(
    r"(?:add a comment|leave a (?:reply|comment)|post comment|cancel reply|\d+ comments?|"
    r"comments?|your email address will not be published\b.*|required fields are marked.*|"
    r"save my name, email, and website\b.*|(?:name|email|website|comment) ?\*|"
    r"(?:оставьте|добавить|оставить) комментарий|комментарии|"
    r"ваш (?:адрес )?e-?mail не будет опубликован.*)"
)
_SEE_ALSO = re.compile(
    r"(?:see also|read also|also read|read more|related(?::| (?:articles?|posts?|stories|news)\b)|"
    r"more from|you may also like|читайте также|см\. также|смотрите также)\b.*"
)
_READING_TIME = re.compile(
    r"(?:(?:estimated )?read(?:ing)? time|время чтения)(?:\s*:|\s+\d).{0,40}|\d+ ?(?:min|minutes?) read"
)
_QUOTES = str.maketrans({"’": "'", "‘": "'", "‛": "'", "“": '"', "”": '"', "„": '"'})
_TERMINAL_END = re.compile(r"[.!?…][\"'”’»)\]]*$")


def _norm(line: str) -> str:
    line = unicodedata.normalize("NFKC", line).translate(_QUOTES)
    return " ".join(line.split()).casefold()


def _is_boilerplate(key: str, raw: str) -> bool:
    if key in _NAVIGATION or _COMMENT_FORM.fullmatch(key) or _READING_TIME.fullmatch(key):
        return True
    # A "See also" *sentence* ends with a full stop; a link line does not.
    return bool(_SEE_ALSO.fullmatch(key)) and not raw.rstrip().endswith(".")


def _doubled(raw: str) -> int | None:
    """If ``raw`` is one headline written twice ("A A"), return where the second copy starts."""
    if len(raw) > 600:
        return None
    for i, ch in enumerate(raw):
        if ch.isspace() and abs(2 * i - len(raw)) <= 4:
            first, second = raw[:i].strip(), raw[i:].strip()
            if first and _norm(first) == _norm(second):
                return i
    return None


def _is_prose(raw: str) -> bool:
    return bool(_TERMINAL_END.search(raw)) and len(raw.split()) >= 8


def _content_lines(text: str):
    """Trimmed, non-empty ``(start, end)`` line spans outside <script>/<style> blocks."""
    pos = 0
    regions = []
    for m in _SCRIPT_STYLE.finditer(text):
        regions.append((pos, m.start()))
        pos = m.end()
    regions.append((pos, len(text)))
    for r_start, r_end in regions:
        for m in re.finditer(r"[^\n]+", text[r_start:r_end]):
            raw = m.group()
            stripped = raw.strip()
            if stripped:
                start = r_start + m.start() + (len(raw) - len(raw.lstrip()))
                yield start, start + len(stripped)


def find_segments(text: str, title: str | None = None) -> list[tuple[int, int]]:
    """Content spans of ``text``: one per kept line, trimmed, in order.

    ``title``, when known, anchors the teaser rule: headline lines above the
    article title (other stories' headlines in a site header) are dropped.
    Without it the anchor is the first header line that is repeated later,
    since pages typically print their own headline more than once.
    """
    kept: list[list] = []  # [start, end, key, repeated]
    seen: dict[str, int] = {}
    for start, end in _content_lines(text):
        raw = text[start:end]
        key = _norm(raw)
        split = _doubled(raw)
        if split is not None:
            half = raw[:split].rstrip()
            key = _norm(half)
            if _is_boilerplate(key, half):
                continue
            end = start + len(half)
        elif _is_boilerplate(key, raw):
            continue
        if key in seen and (split is not None or len(key.split()) >= 3):
            kept[seen[key]][3] = True
            continue
        seen.setdefault(key, len(kept))
        kept.append([start, end, key, False])

    # The header is everything above the first prose line (a long line ending a sentence).
    header = 0
    while header < len(kept) and not _is_prose(text[kept[header][0] : kept[header][1]]):
        header += 1
    title_key = _norm(title) if title else None
    anchor = next((i for i in range(header) if kept[i][2] == title_key), None)
    if anchor is None:
        anchor = next((i for i in range(header) if kept[i][3]), 0)
    return [(s, e) for s, e, _, _ in kept[anchor:]]


def derive_title(text: str, segments: list[tuple[int, int]]) -> str:
    """Title for a file without metadata: its first kept line, markdown ``#`` stripped, shortened."""
    start, end = segments[0]
    first = text[start:end].lstrip("#").strip() or text[start:end]
    if len(first) <= TITLE_MAX_CHARS:
        return first
    cut = first[:TITLE_MAX_CHARS].rsplit(" ", 1)[0]
    return cut.rstrip(" ,;:-") + "…"
