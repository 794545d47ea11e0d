"""Hybrid retrieval: dense search in the FAISS index plus BM25, fused by reciprocal rank fusion.

BM25 catches rare names and exact terms that the small English embedding model
blurs (and Russian text, which all-MiniLM-L6-v2 barely understands); the dense
side catches paraphrases. The BM25 index is built in memory from the passages
when the retriever is created: it takes well under a second for a few thousand
passages.
"""

from __future__ import annotations

import dataclasses
import re
import threading
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import bm25s
import numpy as np
import Stemmer
from bm25s.stopwords import STOPWORDS_EN_PLUS, STOPWORDS_RUSSIAN

from .embedding import TextEmbedder
from .index import VectorIndex
from .types import Passage

MAX_K = 50
RRF_K = 60
MIN_CANDIDATES = 20

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


@dataclass
class RetrievedPassage(Passage):
    """A retrieved passage: ``score`` is the fused RRF score, which ranks but does not
    measure relevance; ``dense_score`` (cosine) and ``bm25_score`` do."""

    dense_score: float = 0.0
    bm25_score: float = 0.0


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
    """Dense + BM25 retrieval over a loaded ``VectorIndex``; safe to call from several threads."""

    def __init__(self, index: VectorIndex, embedder: TextEmbedder):
        if embedder.name != index.embedder_name:
            raise ValueError(
                f"The index was built with embedder {index.embedder_name!r} but the retriever was given "
                f"{embedder.name!r}: rebuild the index or configure the same embedder."
            )
        self._index = index
        self._embedder = embedder
        self._bm25 = bm25s.BM25()
        # Titles are included so that every chunk of an article matches the article's name.
        corpus_tokens = [tokenize(f"{p.title}\n{p.text}") for p in index.passages]
        self._bm25.index(corpus_tokens, show_progress=False)

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

        fused = reciprocal_rank_fusion([dense_ranking, lexical_ranking])[:k]
        cosines = self._index.similarity(query_vec, [chunk_id for chunk_id, _ in fused])
        return [
            RetrievedPassage(
                **{**dataclasses.asdict(self._index.passages[chunk_id]), "score": score},
                dense_score=float(cosine),
                bm25_score=float(bm25_scores[chunk_id]),
            )
            for (chunk_id, score), cosine in zip(fused, cosines)
        ]
