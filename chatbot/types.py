"""Typed records passed between the pipeline stages.

Every offset is a character offset (Python ``str`` index) into the text of a
document: the decoded file for ``.txt``, the text its converter extracted for
other types (stored with the index, ``documents.jsonl``), so ``text[start:end]``
is always the cited text. ``page`` is the 1-based page of a passage's start in a
paged document (PDF), else None.
"""

from __future__ import annotations

import bisect
from dataclasses import asdict, dataclass, field


@dataclass(frozen=True)
class Document:
    """One corpus file after loading.

    ``text`` is the whole original file; ``segments`` are the ``(start, end)``
    spans of it that are content (boilerplate removed), in order and disjoint.
    Chunks never cross the gap between two segments, nor a page break: ``pages``
    holds the offset where each page starts (empty for text without pages).
    """

    source: str
    title: str
    lang: str
    text: str
    segments: tuple[tuple[int, int], ...]
    metadata: dict = field(default_factory=dict)
    pages: tuple[int, ...] = ()

    def page_at(self, offset: int) -> int | None:
        """The 1-based page holding ``offset``, or None without pages."""
        return bisect.bisect_right(self.pages, offset) if self.pages else None

    def content(self) -> str:
        """Kept text only, segments joined by blank lines (for display and hashing)."""
        return "\n\n".join(self.text[s:e] for s, e in self.segments)


@dataclass
class Passage:
    """A chunk of a document, optionally with a retrieval score."""

    text: str
    source: str
    title: str
    start: int
    end: int
    score: float = 0.0
    lang: str = "en"
    page: int | None = None

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in ("text", "score", "source", "title", "start", "end", "page")}


@dataclass(frozen=True)
class Span:
    """An answer span found by the reader in one passage.

    ``start``/``end`` index into the passage text; ``score`` is a probability
    in [0, 1] that is comparable across passages.
    """

    text: str
    score: float
    passage_index: int
    start: int
    end: int


@dataclass
class Citation:
    source: str
    title: str
    start: int
    end: int
    text: str
    answer_start: int | None = None
    answer_end: int | None = None
    page: int | None = None  # 1-based, in a paged document (PDF)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Answer:
    """The chatbot's reply: a short answer (or ``None``) with its evidence.

    ``clarification`` is a question back to the user instead of an answer (a follow-up such as
    "How many GPUs does it house?" with no earlier turn to say what "it" is); nothing was searched.
    """

    question: str
    searched_for: str
    text: str | None
    score: float
    citations: list[Citation] = field(default_factory=list)
    alternatives: list[Span] = field(default_factory=list)
    latency_ms: float = 0.0
    clarification: str | None = None

    def to_dict(self) -> dict:
        return {
            "question": self.question,
            "searched_for": self.searched_for,
            "answer": self.text,
            "score": self.score,
            "citations": [c.to_dict() for c in self.citations],
            "latency_ms": self.latency_ms,
            "clarification": self.clarification,
        }
