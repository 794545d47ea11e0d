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


@dataclass
class RetrievedPassage(Passage):
    """A retrieved passage: ``score`` is the fused RRF score, which ranks but does not
    measure relevance; ``dense_score`` (cosine with the query) and ``bm25_score`` do. ``rank`` is
    its place in the results (0 = first), ``dense_rank`` and ``bm25_rank`` its place by either
    score alone among the results."""

    dense_score: float = 0.0
    bm25_score: float = 0.0
    rank: int = 0
    dense_rank: int = 0
    bm25_rank: int = 0


@dataclass(frozen=True)
class Span:
    """An answer span found by the reader in one of the texts it was given.

    ``start``/``end`` index into that text; ``score`` is the reader's probability
    ``p_start * p_end`` in its window, in [0, 1]; ``text_index`` says which text.
    """

    text: str
    score: float
    text_index: int
    start: int
    end: int


@dataclass
class Candidate:
    """A candidate answer: a span of one retrieved passage (``start``/``end`` index into
    ``passage.text``), the figures the answer policy judges it by (``features``) and the
    policy's probability that it is right (``confidence``)."""

    text: str
    start: int
    end: int
    passage: RetrievedPassage
    reader_probability: float
    features: dict[str, float] = field(default_factory=dict)
    confidence: float = 0.0

    def to_dict(self) -> dict:
        return {"text": self.text, "confidence": round(self.confidence, 4),
                "reader_probability": round(self.reader_probability, 4), "source": self.passage.source,
                "passage_rank": self.passage.rank, "start": self.passage.start + self.start,
                "end": self.passage.start + self.end,
                "features": {k: round(v, 4) for k, v in self.features.items()}}


@dataclass(frozen=True)
class Sentence:
    """A sentence of a retrieved passage (``passage.text[start:end]``) and its cosine with the question."""

    start: int
    end: int
    closeness: float


@dataclass(frozen=True)
class ReadingWindow:
    """A stretch of a retrieved passage that the reader reads: ``passage.text[start:end]``."""

    passage: RetrievedPassage
    start: int
    end: int

    @property
    def text(self) -> str:
        return self.passage.text[self.start:self.end]


@dataclass
class Question:
    """A question made ready to answer: cleaned, its follow-up resolved into the query that is
    searched for, its language, and the question back to the user when it cannot be resolved."""

    text: str
    searched_for: str
    language: str
    clarification: str | None = None


@dataclass
class Explanation:
    """Why the bot answered as it did (``chatbot ask --explain``, HTTP ``"explain": true``, the web
    chat's "Why this answer"): what was searched for, the passages found with their ranks and scores,
    the candidates with their features and confidence, the policy's threshold and its decision. A passage
    that gave no candidate was not read: no span in it could have beaten the answer (``Chatbot.read``)."""

    searched_for: str
    language: str
    passages: list[RetrievedPassage]
    candidates: list[Candidate]
    threshold: float
    decision: str

    def was_read(self, passage: RetrievedPassage) -> bool:
        return any(c.passage is passage for c in self.candidates)

    def to_dict(self) -> dict:
        return {
            "searched_for": self.searched_for,
            "language": self.language,
            "passages": [{"rank": p.rank, "source": p.source, "page": p.page, "start": p.start, "end": p.end,
                          "lang": p.lang, "fused_score": round(p.score, 5), "dense_score": round(p.dense_score, 4),
                          "dense_rank": p.dense_rank, "bm25_score": round(p.bm25_score, 4),
                          "bm25_rank": p.bm25_rank, "read": self.was_read(p)} for p in self.passages],
            "candidates": [c.to_dict() for c in self.candidates],
            "threshold": self.threshold,
            "decision": self.decision,
        }


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

    ``score`` is the answer policy's probability that the answer is right (for an abstention:
    that of the best candidate, which was under the threshold).

    ``clarification`` is a question back to the user instead of an answer (a follow-up such as
    "How many GPUs does it house?" with no earlier turn to say what "it" is); nothing was searched.
    """

    question: str
    searched_for: str
    text: str | None
    score: float
    citations: list[Citation] = field(default_factory=list)
    alternatives: list[Candidate] = field(default_factory=list)
    latency_ms: float = 0.0
    clarification: str | None = None
    explanation: Explanation | None = None

    def to_dict(self) -> dict:
        return {
            "question": self.question,
            "searched_for": self.searched_for,
            "answer": self.text,
            "score": self.score,
            "citations": [c.to_dict() for c in self.citations],
            "latency_ms": self.latency_ms,
            "clarification": self.clarification,
            "alternatives": [{"text": c.text, "score": round(c.confidence, 4)} for c in self.alternatives],
            "explanation": self.explanation.to_dict() if self.explanation else None,
        }
