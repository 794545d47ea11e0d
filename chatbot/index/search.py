"""What every passage store searches with: the ``PassageStore`` interface, the BM25 terms of a text and
reciprocal rank fusion.

Two stores implement the interface: the embedded one (:class:`~chatbot.index.store.VectorIndex`, FAISS
and an in-memory BM25 index over the files of ``index/``) and Milvus
(:class:`~chatbot.index.milvus.MilvusStore`, whose engine does the BM25 search and the fusion). Both score
keywords on the same terms (``tokenize``: Snowball-stemmed, stopwords dropped), so a question finds the
same passages in either. Chunk ids are the store's own: opaque integers, valid until the store changes.
"""

from __future__ import annotations

import re
import threading
from collections import defaultdict
from collections.abc import Collection, Sequence
from typing import Protocol, runtime_checkable

import numpy as np
import Stemmer
from bm25s.stopwords import STOPWORDS_EN_PLUS, STOPWORDS_RUSSIAN

from ..types import Passage

# Reciprocal rank fusion's constant, the one Milvus's RRFRanker and Haystack use by default.
RRF_K = 60
# BM25's term-frequency saturation and length normalisation: bm25s's defaults, given to Milvus too.
BM25_K1 = 1.5
BM25_B = 0.75

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


def keyword_text(passage: Passage) -> str:
    """What a passage is found by in keyword search: its title (so that every chunk of an article
    matches the article's name) and its text."""
    return f"{passage.title}\n{passage.text}"


def reciprocal_rank_fusion(rankings: Sequence[Sequence[int]], k: int = RRF_K) -> list[tuple[int, float]]:
    """Fuse ranked id lists: score(id) = sum over lists of 1 / (k + rank), rank from 1.

    Returns ``(id, score)`` best first; ties go to the smaller id, for determinism.
    """
    scores: dict[int, float] = defaultdict(float)
    for ranking in rankings:
        for rank, item in enumerate(ranking, start=1):
            scores[item] += 1.0 / (k + rank)
    return sorted(scores.items(), key=lambda item: (-item[1], item[0]))


@runtime_checkable
class PassageStore(Protocol):
    """Where the retriever finds passages, by the embedder's vectors and by keywords. Results are
    ``(chunk_id, score)`` pairs, best first. Safe to search from several threads."""

    embedder_name: str
    manifest: dict  # what the store was built with (embedder, chunking, corpus files, skipped files)
    documents: list[dict]  # one record per indexed document: source, title, lang, pages, chunks, metadata

    def __len__(self) -> int: ...

    @property
    def languages(self) -> set[str]:
        """The languages of the stored passages."""

    @property
    def passages(self) -> list[Passage]:
        """Every stored passage (for listing and counting; a large store reads them all)."""

    def get(self, chunk_ids: Sequence[int]) -> list[Passage]:
        """The passages of ``chunk_ids``, in that order."""

    def dense_search(self, query_vec: np.ndarray, k: int, *,
                     languages: Collection[str] | None = None) -> list[tuple[int, float]]:
        """The ``k`` chunks nearest ``query_vec`` by cosine, only those in ``languages`` when given."""

    def keyword_search(self, query: str, k: int) -> list[tuple[int, float]]:
        """The ``k`` best chunks for ``query`` by BM25 over :func:`tokenize`'s terms (score > 0 only)."""

    def hybrid_search(self, query_vec: np.ndarray, query: str, k: int, depth: int) -> list[tuple[int, float]]:
        """The ``k`` best chunks by reciprocal rank fusion (:data:`RRF_K`) of the ``depth`` best of
        ``dense_search`` and of ``keyword_search``."""

    def similarity(self, query_vec: np.ndarray, chunk_ids: Sequence[int]) -> np.ndarray:
        """Cosine between ``query_vec`` and each of ``chunk_ids`` (found by other means)."""

    def keyword_scores(self, query: str, chunk_ids: Sequence[int]) -> np.ndarray:
        """The BM25 score of each of ``chunk_ids`` for ``query`` (0 where no term matches)."""
