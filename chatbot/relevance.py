"""How close each candidate answer's sentence is to the question: ranks answers across passages and languages.

Each reader judges one window at a time and is sure of wrong answers in passages that only share the
topic; the cosine between the question and the sentence holding a candidate is comparable across
passages and readers. :class:`SentenceRelevance` gives that cosine (``closeness``) and the weight
``exp((cos - best) / temperature)`` candidates are ranked by (``relevance``). Its encoder is a
multilingual sentence encoder, so an English question is compared with Russian sentences too;
sentences in another language than the question's get ``language_offset`` added, since encoders put
a question closer to a sentence in its own language than to the sentence's translation.

The settings belong to the encoder, beside its weights (``relevance.json``): cosines of different
encoders live on different scales (e5's between 0.7 and 0.9, USE's between -0.1 and 0.6).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, fields
from pathlib import Path

from .chunking import sentence_of, split_sentences
from .corpus import detect_language
from .embedding import OnnxQueryEmbedder, TextEmbedder, cached
from .errors import ModelLoadError
from .export import QUERY_ENCODER_CONFIG

RELEVANCE_CONFIG = "relevance.json"


@dataclass(frozen=True)
class RelevanceSettings:
    """How an encoder's cosines rank and gate answers. The defaults are those measured for the
    multilingual USE (evals/README.md, "Sentence relevance")."""

    temperature: float = 0.1  # 0 turns the ranking by sentence off
    language_offset: float = 0.05
    # Abstain when the answer's sentence (offset included) is less close to the question than this; None: never.
    min_closeness: float | None = None

    @classmethod
    def load(cls, directory: Path) -> "RelevanceSettings":
        path = Path(directory) / RELEVANCE_CONFIG
        if not path.is_file():
            return cls()
        known = {f.name for f in fields(cls)}
        try:
            values = json.loads(path.read_text(encoding="utf-8"))
            return cls(**{k: v for k, v in values.items() if k in known})
        except (ValueError, TypeError) as exc:
            raise ModelLoadError(f"{path} is not a valid relevance configuration ({exc}): restore it from the "
                                 "repository or set CHATBOT_RELEVANCE_ENCODER.") from exc


class OnnxSentenceEncoder(OnnxQueryEmbedder):
    """A sentence encoder exported as the index's query encoder is (``model.onnx``, ``tokenizer.json``,
    ``query_encoder.json``; :func:`chatbot.export.export_query_encoder`), in a directory of its own.
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

    def __init__(self, encoder: TextEmbedder, settings: RelevanceSettings | None = None):
        self.encoder = cached(encoder)
        self.settings = settings or RelevanceSettings()

    @classmethod
    def load(cls, directory: str | Path, threads: int = 0) -> "SentenceRelevance":
        """The encoder in ``directory`` with the settings beside it."""
        encoder = OnnxSentenceEncoder(directory, threads=threads)
        return cls(encoder, RelevanceSettings.load(encoder.directory))

    def warm_up(self, passages: list[str] = ()) -> None:
        """Load the encoder and embed the sentences of ``passages`` (shortest first, so that batches pad
        little): the vectors are cached, and an answer then embeds only its question."""
        sentences = sorted({text[a:b] for text in passages for a, b in split_sentences(text)}, key=len)
        self.encoder.embed(["What is this?", *sentences], query=True)

    def closeness(self, question: str, spans: list[tuple[str, int]], whole_passage: bool = False) -> list[float]:
        """The cosine between the question and the sentence of each ``(passage text, offset)``,
        ``language_offset`` added for sentences in another language; with ``whole_passage``, the
        highest over all the passage's sentences (offsets are ignored)."""
        if not spans:
            return []
        located = [[(text, a, b) for a, b in split_sentences(text)] or [(text, 0, len(text))] if whole_passage
                   else [(text, *sentence_of(text, offset))] for text, offset in spans]
        sentences = sorted({text[a:b] for group in located for text, a, b in group})
        vectors = self.encoder.embed([question] + sentences, query=True)
        language, offset = detect_language(question), self.settings.language_offset
        cosines = {sentence: float(cos) + (offset if detect_language(sentence) != language else 0.0)
                   for sentence, cos in zip(sentences, vectors[1:] @ vectors[0])}
        return [max(cosines[text[a:b]] for text, a, b in group) for group in located]

    def weights(self, closeness: list[float]) -> list[float]:
        """``exp((cos - best) / temperature)`` for each closeness: 1 in the sentence closest to the
        question, less in the others (all 1 when the temperature is 0)."""
        t, best = self.settings.temperature, max(closeness, default=0.0)
        return [math.exp((c - best) / t) if t else 1.0 for c in closeness]

    def close_enough(self, closeness: float) -> bool:
        floor = self.settings.min_closeness
        return floor is None or closeness >= floor
