"""Hybrid retrieval: dense search in the FAISS index plus BM25, fused by reciprocal rank fusion.

BM25 catches rare names and exact terms that the small English embedding model
blurs (and Russian text, which all-MiniLM-L6-v2 barely understands); the dense
side catches paraphrases. The BM25 index is built in memory from the passages
when the retriever is created: it takes well under a second for a few thousand
passages.

When the index has multilingual vectors, the last of the ``k`` results goes to the
best passage, by the multilingual embedder, of a corpus language that has none
among them: MiniLM and BM25 cannot rank a passage written in another language
than the question, so without that place an answer found only in the Russian
article never reaches an English question's results. The first ``k - 1`` results
are unchanged (see evals/README.md, "Cross-lingual retrieval").
"""

from __future__ import annotations

import dataclasses
import re
import threading
from collections import defaultdict
from collections.abc import Sequence

import bm25s
import numpy as np
import Stemmer
from bm25s.stopwords import STOPWORDS_EN_PLUS, STOPWORDS_RUSSIAN

from ..models.embedding import TextEmbedder, cached, make_embedder
from ..index.store import VectorIndex
from ..types import RetrievedPassage

MAX_K = 50
RRF_K = 60
MIN_CANDIDATES = 20
CROSS_LINGUAL_SLOTS = 1  # places (of k > 1) kept for passages in languages missing from the top k
CROSS_LINGUAL_DEPTH = 256  # nearest multilingual neighbours searched first for a missing language (x8 until found)

_WORD_RE = re.compile(r"\w+")
_CYRILLIC_RE = re.compile(r"[а-я]")
# The larger English list includes question words (who, what, did), which every query has.
_STOPWORDS = frozenset(STOPWORDS_EN_PLUS) | frozenset(STOPWORDS_RUSSIAN)
_thread_stemmers = threading.local()


def _stemmers() -> tuple[Stemmer.Stemmer, Stemmer.Stemmer]:
    """(english, russian) Snowball stemmers of this thread: a PyStemmer object must not be shared."""
    if not hasattr(_thread_stemmers, "pair"):
        _thread_stemmers.pair = (Stemmer.Stemmer("english"), Stemmer.Stemmer("russian"))
    return _thread_stemmers.pair


def tokenize(text: str) -> list[str]:
    """BM25 terms: lowercase Unicode words, stopwords dropped, Snowball-stemmed
    (Russian rules for Cyrillic words, English rules for the rest)."""
    english, russian = _stemmers()
    words = _WORD_RE.findall(text.lower().replace("ё", "е"))
    return [
        (russian if _CYRILLIC_RE.search(w) else english).stemWord(w) for w in words if w not in _STOPWORDS
    ]


def reciprocal_rank_fusion(rankings: Sequence[Sequence[int]], k: int = RRF_K) -> list[tuple[int, float]]:
    """Fuse ranked id lists: score(id) = sum over lists of 1 / (k + rank), rank from 1.

    Returns ``(id, score)`` best first; ties go to the smaller id, for determinism.
    """
    scores: dict[int, float] = defaultdict(float)
    for ranking in rankings:
        for rank, item in enumerate(ranking, start=1):
            scores[item] += 1.0 / (k + rank)
    return sorted(scores.items(), key=lambda item: (-item[1], item[0]))


class HybridRetriever:
    """Dense + BM25 retrieval, with a cross-lingual place, over a loaded ``VectorIndex``; safe
    to call from several threads.

    ``multilingual`` defaults to the backend named in the index manifest, when the index
    has multilingual vectors.
    """

    def __init__(self, index: VectorIndex, embedder: TextEmbedder, multilingual: TextEmbedder | None = None):
        if multilingual is None and index.has_multilingual:
            multilingual = make_embedder(index.multilingual_embedder_name)
        for role, given, built_with in (("embedder", embedder, index.embedder_name),
                                        ("multilingual embedder", multilingual, index.multilingual_embedder_name)):
            if (given.name if given else None) != built_with:
                raise ValueError(
                    f"The index was built with {role} {built_with!r} but the retriever was given "
                    f"{given.name if given else None!r}: rebuild the index or configure the same {role}."
                )
        self._index = index
        self._embedder = embedder
        self._multilingual = cached(multilingual) if multilingual is not None else None
        self._languages = {p.lang for p in index.passages}
        self._bm25 = bm25s.BM25()
        # Titles are included so that every chunk of an article matches the article's name.
        corpus_tokens = [tokenize(f"{p.title}\n{p.text}") for p in index.passages]
        self._bm25.index(corpus_tokens, show_progress=False)

    @property
    def multilingual(self) -> TextEmbedder | None:
        """The multilingual embedder, or None when the index has no multilingual vectors."""
        return self._multilingual

    def warm_up(self) -> None:
        """Load the embedding models now, so that the first query is fast."""
        for embedder in (self._embedder, self._multilingual):
            if embedder is not None:
                embedder.embed(["warm up"], query=True)

    def _bm25_scores(self, query: str) -> np.ndarray:
        tokens = tokenize(query)
        if not tokens:
            return np.zeros(len(self._index), dtype=np.float32)
        return self._bm25.get_scores(tokens)

    def retrieve(self, query: str, k: int = 5) -> list[RetrievedPassage]:
        """The ``k`` best passages for ``query``, best first, as copies with scores set."""
        if not isinstance(query, str) or not query.strip():
            raise ValueError("query must be a non-empty string")
        if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= MAX_K:
            raise ValueError(f"k must be an integer from 1 to {MAX_K}, got {k!r}")
        candidates = max(MIN_CANDIDATES, 4 * k)

        query_vec = self._embedder.embed([query], query=True)[0]
        dense_ranking = [chunk_id for chunk_id, _ in self._index.search(query_vec, candidates)]
        bm25_scores = self._bm25_scores(query)
        lexical_ranking = [
            int(i) for i in np.argsort(-bm25_scores, kind="stable")[:candidates] if bm25_scores[i] > 0
        ]

        fused = reciprocal_rank_fusion([dense_ranking, lexical_ranking])
        top = fused[:k]
        multilingual_vec = None
        if self._multilingual is not None:
            multilingual_vec = self._multilingual.embed([query], query=True)[0]
            if k > 1:
                top = self._with_missing_languages(multilingual_vec, top, dict(fused), k)
        ids = [chunk_id for chunk_id, _ in top]
        cosines = self._index.similarity(query_vec, ids)
        multilingual_cosines = ([None] * len(ids) if multilingual_vec is None
                                else self._index.similarity(multilingual_vec, ids, multilingual=True))
        found = [
            RetrievedPassage(
                **{**dataclasses.asdict(self._index.passages[chunk_id]), "score": score},
                dense_score=float(cosine),
                bm25_score=float(bm25_scores[chunk_id]),
                multilingual_score=None if multilingual is None else float(multilingual),
                rank=rank,
            )
            for rank, ((chunk_id, score), cosine, multilingual) in enumerate(zip(top, cosines, multilingual_cosines))
        ]
        for field_name, key in (("dense_rank", "dense_score"), ("bm25_rank", "bm25_score")):
            for rank, p in enumerate(sorted(found, key=lambda p: -getattr(p, key))):
                setattr(p, field_name, rank)
        return found

    def _with_missing_languages(
        self, query_vec: np.ndarray, top: list[tuple[int, float]], fused_scores: dict[int, float], k: int
    ) -> list[tuple[int, float]]:
        """``top`` with its last ``CROSS_LINGUAL_SLOTS`` places (fewer than ``k``) given to the
        passages, best by the multilingual embedder (``query_vec``), of corpus languages it lacks."""
        passages = self._index.passages
        present = {passages[i].lang for i, _ in top}
        if present >= self._languages:
            return top
        slots = min(CROSS_LINGUAL_SLOTS, k - 1)
        extra, seen, depth = [], 0, CROSS_LINGUAL_DEPTH
        while len(extra) < slots and seen < len(self._index):  # deeper only when the nearest lack the language
            hits = self._index.search(query_vec, depth, multilingual=True)
            for i, _ in hits[seen:]:
                if len(extra) < slots and passages[i].lang not in present:
                    present.add(passages[i].lang)
                    extra.append(i)
            seen, depth = max(len(hits), depth), depth * 8
        return top[: k - len(extra)] + [(i, fused_scores.get(i, 0.0)) for i in extra]
