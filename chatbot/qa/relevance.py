"""How close each candidate answer's sentence is to the question: one of the answer policy's features.

Each reader judges one window at a time and is sure of wrong answers in passages that only share the
topic; the cosine between the question and the sentence holding a candidate is comparable across
passages and languages. :class:`SentenceRelevance` gives that cosine (``closeness``). Its encoder is a
multilingual sentence encoder (multilingual-e5-small), so an English question is compared with Russian
sentences too; how much a cosine counts, and how much less in another language, is the answer policy's
to weigh (chatbot.qa.policy: ``closeness``, ``closeness_gap``, ``same_language``).
"""

from __future__ import annotations

import json
from pathlib import Path

from ..ingest.chunking import sentence_of, split_sentences
from ..models.embedding import OnnxQueryEmbedder, TextEmbedder, cached
from ..errors import ModelLoadError
from ..models.export import QUERY_ENCODER_CONFIG


class OnnxSentenceEncoder(OnnxQueryEmbedder):
    """A sentence encoder exported as the index's query encoder is (``model.onnx``, ``tokenizer.json``,
    ``query_encoder.json``; :func:`chatbot.models.export.export_query_encoder`), in a directory of its own.
    Every text is embedded with the query prompt: sentences are compared with questions symmetrically
    (e5's "query: " on both sides)."""

    def __init__(self, directory: str | Path, threads: int = 0, setting: str = "CHATBOT_RELEVANCE_ENCODER"):
        directory = Path(directory)
        try:
            config = json.loads((directory / QUERY_ENCODER_CONFIG).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ModelLoadError(f"No sentence encoder in {directory} ({exc}): reinstall the package, or set "
                                 f"{setting} to an encoder directory (\"\" uses the multilingual embedder).") from exc
        super().__init__(lambda name: (directory / name).read_bytes(), config, documents=None, threads=threads,
                         strict=True, what=f"The sentence encoder in {directory}")
        self.directory = directory

    @property
    def name(self) -> str:
        return str(self.directory)

    def embed(self, texts: list[str], *, query: bool = False, batch_size: int = 32,
              show_progress: bool = False):
        return super().embed(texts, query=True, batch_size=batch_size)


class SentenceRelevance:
    """The closeness of candidates' sentences to the question, by one multilingual encoder."""

    def __init__(self, encoder: TextEmbedder):
        self.encoder = cached(encoder)

    @classmethod
    def load(cls, directory: str | Path, threads: int = 0) -> "SentenceRelevance":
        """The encoder in ``directory``."""
        return cls(OnnxSentenceEncoder(directory, threads=threads))

    def warm_up(self, passages: list[str] = ()) -> None:
        """Load the encoder and embed the sentences of ``passages`` (shortest first, so that batches pad
        little): the vectors are cached, and an answer then embeds only its question."""
        sentences = sorted({text[a:b] for text in passages for a, b in split_sentences(text)}, key=len)
        self.encoder.embed(["What is this?", *sentences], query=True)

    def closeness(self, question: str, spans: list[tuple[str, int]]) -> list[float]:
        """The cosine between the question and the sentence of each ``(passage text, offset)``."""
        if not spans:
            return []
        located = [(text, *sentence_of(text, offset)) for text, offset in spans]
        sentences = sorted({text[a:b] for text, a, b in located})
        vectors = self.encoder.embed([question] + sentences, query=True)
        cosines = dict(zip(sentences, (float(c) for c in vectors[1:] @ vectors[0])))
        return [cosines[text[a:b]] for text, a, b in located]
