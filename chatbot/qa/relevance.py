"""How close each candidate answer's sentence is to the question: one of the answer policy's features.

Each reader judges one window at a time and is sure of wrong answers in passages that only share the
topic; the cosine between the question and the sentence holding a candidate is comparable across
passages and languages. :class:`SentenceRelevance` gives the cosines of sentences with the question
(``cosines``): ``Chatbot.sentences`` takes those of the retrieved passages' sentences, by which the policy judges a
candidate (``closeness``), bounds what an unread passage could give, and ``Chatbot.windows`` chooses what to read. Its encoder is the
one multilingual encoder that retrieval uses too (multilingual-e5-small; questions and sentences both with
e5's "query: " prompt), so an English question is compared with Russian sentences too, and the question is
embedded once for both; how much a cosine counts, and how much less in another language, is the answer policy's
to weigh (chatbot.qa.policy: ``closeness``, ``closeness_gap``, ``same_language``).
"""

from __future__ import annotations

from pathlib import Path

from ..ingest.chunking import split_sentences
from ..models.embedding import OnnxEmbedder, TextEmbedder, cached


class SentenceRelevance:
    """The closeness of candidates' sentences to the question, by one multilingual encoder."""

    def __init__(self, encoder: TextEmbedder):
        self.encoder = cached(encoder)

    @classmethod
    def load(cls, directory: str | Path, threads: int = 0) -> "SentenceRelevance":
        """The ONNX encoder in ``directory`` (:meth:`~chatbot.models.embedding.OnnxEmbedder.from_folder`)."""
        return cls(OnnxEmbedder.from_folder(directory, threads=threads, setting="CHATBOT_RELEVANCE_ENCODER"))

    def warm_up(self, passages: list[str] = ()) -> None:
        """Load the encoder and embed the sentences of ``passages`` (shortest first, so that batches pad
        little): the vectors are cached, and an answer then embeds only its question."""
        sentences = sorted({text[a:b] for text in passages for a, b in split_sentences(text)}, key=len)
        self.encoder.embed(["What is this?", *sentences], query=True)

    def cosines(self, question: str, sentences: list[str]) -> list[float]:
        """The cosine between the question and each of ``sentences``."""
        if not sentences:
            return []
        vectors = self.encoder.embed([question, *sentences], query=True)
        return [float(c) for c in vectors[1:] @ vectors[0]]
