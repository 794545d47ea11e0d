"""Split documents into overlapping passages of whole sentences.

Passages are spans of the original text (``doc.text[start:end]``).  A passage
may span several segments only when nothing but whitespace lies between them
in the original, so no removed boilerplate is ever inside a passage, and never
across a page break of a paged document (each passage has one ``page``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable

from chatbot.config import ChunkingSettings
from chatbot.types import Document, Passage

_CLOSERS = "\"'”’»)]"
_CANDIDATE = re.compile(r"[.!?…]+[" + re.escape(_CLOSERS) + r"]*(?=\s)")
_OPENERS = "«\"“„'‘([—–-"
# Abbreviations after which a full stop does not end the sentence (lowercase, no final dot).
_ABBREVIATIONS = frozenset(
    "mr mrs ms dr prof sr jr st gen sen rep gov lt col capt sgt mt ft vs approx dept est fig "
    "e.g i.e cf al "
    "т.е т.к т.н напр см им ул проф акад тов г-н г-жа".split()
)
# Abbreviations that only precede a number ("Jan. 5", "No. 3").
_BEFORE_NUMBER = frozenset("jan feb mar apr jun jul aug sep sept oct nov dec no nos vol p pp".split())
_DOTTED = re.compile(r"(?:[^\W\d_]\.)+[^\W\d_]")
# Words that start a new sentence after an acronym ("... in the U.S. The company ...").
_STARTERS = frozenset(
    "the this that these those it its he she they we i in on at but however a an as after "
    "since while when there his her their our".split()
)
_TERMINAL_END = re.compile(r"[.!?…:;][" + re.escape(_CLOSERS) + r"]*$")
HEADING_MAX_CHARS = 150


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """:func:`split_sentences`, or the whole text as one sentence when it has none."""
    return split_sentences(text) or [(0, len(text))]


def split_sentences(text: str) -> list[tuple[int, int]]:
    """Sentence spans of ``text`` (English or Russian), trimmed of whitespace.

    A full stop ends a sentence unless it follows an abbreviation, an initial,
    a dotted acronym (unless a typical sentence opener follows) or a list
    number at the start; decimals ("$1.5") never qualify because no space
    follows the dot.  The next sentence must start with an uppercase letter,
    a digit or an opening quote/dash.
    """
    spans = []
    start = 0
    for m in _CANDIDATE.finditer(text):
        if _is_boundary(text, m):
            spans.append((start, m.end()))
            start = m.end()
    spans.append((start, len(text)))
    result = []
    for s, e in spans:
        chunk = text[s:e]
        stripped = chunk.strip()
        if stripped:
            s += len(chunk) - len(chunk.lstrip())
            result.append((s, s + len(stripped)))
    return result


def _is_boundary(text: str, m: re.Match) -> bool:
    rest = text[m.end() :].lstrip()
    if not rest:
        return False
    nxt = rest[0]
    next_word = re.match(r"\S*", rest).group()
    starts_sentence = nxt.isupper() or nxt.isdigit() or nxt in _OPENERS or (
        nxt.islower() and any(c.isupper() for c in next_word[1:4])  # "xAI", "iPhone"
    )
    if not starts_sentence:
        return False
    if m.group().rstrip(_CLOSERS) != ".":
        return True
    token_start = max(text.rfind(" ", 0, m.start()), text.rfind("\n", 0, m.start())) + 1
    token = text[token_start : m.start()].lstrip(_OPENERS)
    lower = token.lower()
    if len(token) == 1 and token.isupper():
        return False  # initial: "J. Smith", "А. С. Пушкин"
    if lower in _ABBREVIATIONS:
        return False
    if lower in _BEFORE_NUMBER and nxt.isdigit():
        return False
    if _DOTTED.fullmatch(token):
        return token.isupper() and next_word.strip(_OPENERS).lower() in _STARTERS
    if token.isdigit() and not text[:token_start].strip():
        return False  # list number: "1. The Growing Demand"
    return True


@dataclass
class _Unit:
    """A sentence (or piece of an over-long one) in document offsets."""

    start: int
    end: int
    new_paragraph: bool  # first unit of a segment
    heading: bool  # a short segment without closing punctuation


def chunk_document(doc: Document, settings: ChunkingSettings = ChunkingSettings()) -> list[Passage]:
    """Overlapping windows of whole sentences, at most ``settings.max_chars`` long."""
    passages = []
    for run in _runs(doc):
        units = _units(doc.text, run, settings.max_chars)
        for start, end in _windows(units, settings.max_chars, settings.overlap_sentences):
            passages.append(
                Passage(text=doc.text[start:end], source=doc.source, title=doc.title,
                        start=start, end=end, lang=doc.lang, page=doc.page_at(start))
            )
    return passages


def chunk_corpus(docs: Iterable[Document], settings: ChunkingSettings = ChunkingSettings()) -> list[Passage]:
    return [p for doc in docs for p in chunk_document(doc, settings)]


def _runs(doc: Document) -> list[list[tuple[int, int]]]:
    """Group consecutive segments separated only by whitespace in the original, on one page."""
    runs: list[list[tuple[int, int]]] = []
    prev_end = None
    for seg in doc.segments:
        if (prev_end is not None and not doc.text[prev_end : seg[0]].strip()
                and doc.page_at(prev_end) == doc.page_at(seg[0])):
            runs[-1].append(seg)
        else:
            runs.append([seg])
        prev_end = seg[1]
    return runs


def _units(text: str, run: list[tuple[int, int]], max_chars: int) -> list[_Unit]:
    units: list[_Unit] = []
    for seg_start, seg_end in run:
        seg = text[seg_start:seg_end]
        sentences = split_sentences(seg)
        heading = len(seg) <= HEADING_MAX_CHARS and not _TERMINAL_END.search(seg)
        prev = units[-1] if units else None
        # A hard-wrapped line: the previous line stops mid-sentence and this one goes on in lowercase.
        wrapped = (
            prev is not None
            and "\n\n" not in text[prev.end : seg_start].replace("\r", "")
            and not _TERMINAL_END.search(text[prev.start : prev.end])
            and seg[:1].islower()
        )
        for i, (s, e) in enumerate(sentences):
            if i == 0 and wrapped:
                prev.end, prev.heading = seg_start + e, False
                continue
            units.append(_Unit(seg_start + s, seg_start + e, i == 0, heading))
    return [piece for unit in units for piece in _split_long(text, unit, max_chars)]


def _split_long(text: str, unit: _Unit, max_chars: int) -> list[_Unit]:
    """Cut a unit longer than ``max_chars`` at word boundaries."""
    pieces = []
    start, end, first = unit.start, unit.end, unit.new_paragraph
    while end - start > max_chars:
        cut = text.rfind(" ", start + 1, start + max_chars + 1)
        if cut <= start:
            cut = start + max_chars
        piece_end = start + len(text[start:cut].rstrip())
        pieces.append(_Unit(start, piece_end, first, False))
        start = cut + len(text[cut:end]) - len(text[cut:end].lstrip())
        first = False
    pieces.append(_Unit(start, end, first, unit.heading))
    return pieces


def _windows(units: list[_Unit], max_chars: int, overlap: int) -> list[tuple[int, int]]:
    """Pack units into windows; overlap by ``overlap`` units inside a paragraph.

    A window stops early at a paragraph start once it is half full, and a
    heading at a window's end moves to the next window so it stays with the
    text it introduces.
    """
    windows = []
    i, n = 0, len(units)
    while i < n:
        j = i + 1
        while j < n and units[j].end - units[i].start <= max_chars:
            if units[j].new_paragraph and units[j - 1].end - units[i].start >= max_chars // 2:
                break
            j += 1
        while j < n and j - i > 1 and units[j - 1].heading:
            j -= 1
        windows.append((units[i].start, units[j - 1].end))
        if j >= n:
            break
        if units[j].new_paragraph:
            i = j
            continue
        nxt = max(i + 1, j - overlap)
        while nxt < j and units[j].end - units[nxt].start > max_chars:
            nxt += 1
        i = nxt
    return windows
