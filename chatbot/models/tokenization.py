"""Tokenization for the ONNX and torch models, by the ``tokenizers`` library directly.

A Hugging Face fast tokenizer is a thin layer over a ``tokenizers.Tokenizer`` (its
``tokenizer.json``); calling the library itself gives the same ids and offsets without
importing transformers (about 3 s of the cold start). :meth:`WordPieces.windows` is what
``tokenizer(questions, passages, truncation="only_second", max_length=..., stride=...,
return_overflowing_tokens=True, return_offsets_mapping=True)`` returns, window for window;
the reader (both runtimes) and the reader's training use it.

Truncation and padding are fixed when a :class:`WordPieces` is made and never changed, so one
instance is safe to share between threads.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tokenizers import Encoding, Tokenizer

from ..errors import ModelLoadError

TOKENIZER_FILE = "tokenizer.json"


@dataclass(frozen=True)
class Window:
    """One window of a (question, passage) pair: token ids, type ids, which sequence each token
    belongs to (None for special tokens, 0 question, 1 passage), character offsets into its text,
    and the index of its pair."""

    ids: list[int]
    type_ids: list[int]
    sequence_ids: list[int | None]
    offsets: list[tuple[int, int]]
    pair: int


def load_tokenizer(model_dir: str | Path) -> str:
    """The text of ``model_dir``'s ``tokenizer.json`` (what :class:`WordPieces` takes); ``ModelLoadError`` when it is
    missing or not a tokenizer."""
    path = Path(model_dir) / TOKENIZER_FILE
    try:
        text = path.read_text(encoding="utf-8")
        untruncated(text)
    except Exception as exc:  # missing file, or not a tokenizers JSON
        raise ModelLoadError(f"Cannot read the tokenizer {path} ({exc}): it must be a fast tokenizer's "
                             "tokenizer.json.") from exc
    return text


@functools.lru_cache(maxsize=4)
def untruncated(tokenizer_json: str) -> Tokenizer:
    """The tokenizer of ``tokenizer_json`` with truncation and padding off, parsed once per process: parsing a
    multilingual vocabulary (250,000 pieces) takes about 0.1 s of the cold start, and the encoder and the reader ship
    the same one. Never reconfigured, so shared by every :class:`WordPieces` of that tokenizer."""
    tokenizer = Tokenizer.from_str(tokenizer_json)
    tokenizer.no_truncation()
    tokenizer.no_padding()
    return tokenizer


class WordPieces:
    """Question/passage windows (``windows``) and single texts (``batch``) of one tokenizer (its ``tokenizer.json``
    text: ``Tokenizer.to_str()``)."""

    def __init__(self, tokenizer_json: str, max_length: int, stride: int = 0, pair: bool = True):
        self._plain = untruncated(tokenizer_json)  # measures questions
        self._cut = Tokenizer.from_str(tokenizer_json)
        self._cut.no_padding()
        self._cut.enable_truncation(max_length, stride=stride, strategy="only_second" if pair else "longest_first")
        self.max_length = max_length
        self.pad_id = next((i for name in ("[PAD]", "<pad>") if (i := self._cut.token_to_id(name)) is not None), 0)

    def truncate_question(self, question: str) -> str:
        """Cut the question to a quarter of the window, so the passage always fits beside it."""
        offsets = self._plain.encode(question, add_special_tokens=False).offsets
        budget = self.max_length // 4
        if len(offsets) <= budget:
            return question
        return question[: offsets[budget - 1][1]]

    def windows(self, pairs: list[tuple[str, str]]) -> list[Window]:
        """Every window of every (question, passage) pair, pair by pair: the passage is cut into
        windows of ``max_length`` tokens overlapping by ``stride``, each with the whole question."""
        out = []
        for i, first in enumerate(self._cut.encode_batch(pairs)):
            for enc in [first, *first.overflowing]:
                out.append(Window(enc.ids, enc.type_ids, enc.sequence_ids, enc.offsets, i))
        return out

    def batch(self, texts: list[str]) -> dict[str, np.ndarray]:
        """``texts`` cut to ``max_length`` tokens and padded into ``input_ids``, ``attention_mask`` and
        ``token_type_ids`` arrays."""
        encodings: list[Encoding] = self._cut.encode_batch(texts)
        return pad([(e.ids, e.type_ids) for e in encodings], self.pad_id)


def pad(rows: list[tuple[list[int], list[int]]], pad_id: int = 0) -> dict[str, np.ndarray]:
    """``(ids, type_ids)`` rows right-padded to the longest into int64 model inputs."""
    width = max(len(ids) for ids, _ in rows)
    input_ids = np.full((len(rows), width), pad_id, dtype=np.int64)
    type_ids = np.zeros((len(rows), width), dtype=np.int64)
    mask = np.zeros((len(rows), width), dtype=np.int64)
    for r, (ids, types) in enumerate(rows):
        input_ids[r, : len(ids)] = ids
        type_ids[r, : len(types)] = types
        mask[r, : len(ids)] = 1
    return {"input_ids": input_ids, "attention_mask": mask, "token_type_ids": type_ids}
