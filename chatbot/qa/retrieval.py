"""Hybrid retrieval: dense search plus BM25, fused by reciprocal rank fusion, in a passage store.

BM25 catches rare names and exact terms that a small embedding model blurs; the dense side
catches paraphrases, in either language (the shipped encoder is multilingual). The store
(:class:`~chatbot.index.search.PassageStore`: the embedded FAISS + BM25 index, or Milvus) runs
both searches and fuses them.

The last of the ``k`` results goes to the best passage, by dense similarity, of a corpus language
that has none among them: BM25 cannot match a passage written in another language than the
question, and the fused ranking buries it, so without that place an answer found only in the
Russian article rarely reaches an English question's results (on the held-out gate, R@5 of those
questions is 0 without it and 80 with it). The first ``k - 1`` results are unchanged (see
evals/README.md, "Cross-lingual retrieval").
"""

from __future__ import annotations

import dataclasses

from ..index.search import PassageStore
from ..models.embedding import TextEmbedder
from ..types import RetrievedPassage

MAX_K = 50
MIN_CANDIDATES = 20
CROSS_LINGUAL_SLOTS = 1  # places (of k > 1) kept for passages in languages missing from the top k


class HybridRetriever:
    """Dense + BM25 retrieval, with a cross-lingual place, over a passage store; safe to call from
    several threads."""

    def __init__(self, store: PassageStore, embedder: TextEmbedder):
        if embedder.name != store.embedder_name:
            raise ValueError(
                f"The index was built with embedder {store.embedder_name!r} but the retriever was given "
                f"{embedder.name!r}: rebuild the index or configure the same embedder."
            )
        self._store = store
        self._embedder = embedder

    def warm_up(self) -> None:
        """Load the embedding model now, so that the first query is fast."""
        self._embedder.embed(["warm up"], query=True)

    def retrieve(self, query: str, k: int = 5) -> list[RetrievedPassage]:
        """The ``k`` best passages for ``query``, best first, as copies with scores set."""
        if not isinstance(query, str) or not query.strip():
            raise ValueError("query must be a non-empty string")
        if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= MAX_K:
            raise ValueError(f"k must be an integer from 1 to {MAX_K}, got {k!r}")
        store = self._store
        query_vec = self._embedder.embed([query], query=True)[0]
        top = store.hybrid_search(query_vec, query, k, depth=max(MIN_CANDIDATES, 4 * k))
        if k > 1:
            top = self._with_missing_languages(query_vec, top, k)
        ids = [chunk_id for chunk_id, _ in top]
        cosines = store.similarity(query_vec, ids)
        bm25_scores = store.keyword_scores(query, ids)
        found = [
            RetrievedPassage(
                **{**dataclasses.asdict(passage), "score": score},
                dense_score=float(cosine),
                bm25_score=float(bm25),
                rank=rank,
            )
            for rank, ((_, score), passage, cosine, bm25)
            in enumerate(zip(top, store.get(ids), cosines, bm25_scores))
        ]
        for field_name, key in (("dense_rank", "dense_score"), ("bm25_rank", "bm25_score")):
            for rank, p in enumerate(sorted(found, key=lambda p: -getattr(p, key))):
                setattr(p, field_name, rank)
        return found

    def _with_missing_languages(self, query_vec, top: list[tuple[int, float]], k: int) -> list[tuple[int, float]]:
        """``top`` with its last ``CROSS_LINGUAL_SLOTS`` places (fewer than ``k``) given to the
        passages, best by ``query_vec`` (the embedder's: the shipped encoder is multilingual), of store
        languages it lacks."""
        present = {p.lang for p in self._store.get([i for i, _ in top])}
        extra: list[int] = []
        for _ in range(min(CROSS_LINGUAL_SLOTS, k - 1)):
            missing = self._store.languages - present
            if not missing:
                break
            hits = self._store.dense_search(query_vec, 1, languages=missing)
            if not hits:
                break
            chunk_id = hits[0][0]
            present.add(self._store.get([chunk_id])[0].lang)
            extra.append(chunk_id)
        return top[: k - len(extra)] + [(i, 0.0) for i in extra]
