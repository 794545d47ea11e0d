"""The reader's training (a developer step): which data it reads, what it holds out, and that an
interrupted run resumed from its checkpoint ends where an uninterrupted one does."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from chatbot.errors import ChatbotError
from chatbot.tools.training import (
    HELDOUT_XQUAD_ARTICLES,
    CHECKPOINT_DIR,
    TrainConfig,
    data_sources,
    featurize,
    is_heldout,
    load_squad,
    passage_negative_examples,
    select_datasets,
    train_reader,
    training_examples,
)

SHARED_QA = Path(__file__).resolve().parents[2] / "shared" / "qa-data"


def _squad(path: Path, articles: list[tuple[str, str, list[tuple[str, list[str]]]]]) -> Path:
    """Write SQuAD v1.1 JSON: articles of (title, context, [(question, [answers])])."""
    data = []
    for a, (title, context, qas) in enumerate(articles):
        data.append({"title": title, "paragraphs": [{"context": context, "qas": [
            {"id": f"{title}-{i}", "question": q,
             "answers": [{"text": t, "answer_start": context.index(t)} for t in answers]}
            for i, (q, answers) in enumerate(qas)]}]})
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"version": "1.1", "data": data}, ensure_ascii=False), encoding="utf-8")
    return path


@pytest.fixture
def qa_data(tmp_path) -> Path:
    """A small qa-data folder in the layout of ../shared/qa-data: XQuAD en/ru, TyDi en train/dev and ru, QED."""
    root = tmp_path / "qa-data"
    held = HELDOUT_XQUAD_ARTICLES[0]
    en = "Paris is the capital of France. It lies on the Seine."
    ru = "Париж - столица Франции. Он стоит на Сене."
    _squad(root / "xquad" / "xquad.en.json", [(held, en, [("What is the capital of France?", ["Paris"])]),
                                              ("Rome", "Rome is old.", [("What is old?", ["Rome"])])])
    _squad(root / "xquad" / "xquad.ru.json", [(held, ru, [("Какая столица Франции?", ["Париж"])]),
                                              ("Rome", "Рим старый.", [("Что старое?", ["Рим"])])])
    _squad(root / "tydiqa-goldp" / "tydiqa-goldp-v1.1-train.english.json",
           [("Oslo", "Oslo is in Norway.", [("Where is Oslo?", ["Norway"])])])
    _squad(root / "tydiqa-goldp" / "tydiqa-goldp-v1.1-dev.english.json",
           [("Bern", "Bern is in Switzerland.", [("Where is Bern?", ["Switzerland", "in Switzerland"])])])
    _squad(root / "tydiqa-goldp" / "tydiqa-goldp-v1.1-dev.russian.json",
           [(f"Город {i}", f"Город {i} стоит на реке.", [(f"Где стоит город {i}?", ["на реке"])]) for i in range(40)])
    _squad(root / "qed" / "qed-nq-dev.json", [("Lima", "lima is the capital of peru", [("capital of peru", ["lima"])])])
    for folder in ("xquad", "tydiqa-goldp", "qed"):
        (root / folder / "SOURCE").write_text(f"{folder}: where it came from\nmore\n", encoding="utf-8")
    (root / "xquad" / "LICENSE-CC-BY-SA-4.0.txt").write_text("licence", encoding="utf-8")
    return root


def test_every_dataset_folder_is_read_under_its_name_with_every_reference_answer(qa_data):
    cfg = TrainConfig(data=[qa_data], cross_lingual=True)
    train, heldout = training_examples(cfg, random.Random(0))
    datasets = {e.dataset for e in train + heldout}
    assert {"xquad.en", "xquad.ru", "xquad.en->ru", "xquad.ru->en", "tydi.en", "tydi.en.dev", "tydi.ru", "qed"} <= datasets
    bern = next(e for e in heldout if e.dataset == "tydi.en.dev")
    assert bern.answer_text == "Switzerland" and bern.golds == ["Switzerland", "in Switzerland"]
    sources = {s["folder"]: s for s in data_sources([qa_data])}
    assert sources["xquad"]["source"] == "xquad: where it came from"
    assert sources["xquad"]["licence_files"] == ["LICENSE-CC-BY-SA-4.0.txt"]


def test_held_out_parts_are_never_trained_on_in_any_language(qa_data):
    cfg = TrainConfig(data=[qa_data], cross_lingual=True)
    train, heldout = training_examples(cfg, random.Random(0))
    assert not any(is_heldout(e) for e in train)
    assert all(e.title != HELDOUT_XQUAD_ARTICLES[0] for e in train if e.dataset.startswith("xquad"))
    assert {e.dataset for e in heldout if e.title == HELDOUT_XQUAD_ARTICLES[0]} == {
        "xquad.en", "xquad.ru", "xquad.en->ru", "xquad.ru->en"}
    assert not any(e.dataset == "tydi.en.dev" for e in train)
    # One TyDi Russian article in five, by its title: a fixed, non-empty part, and never the whole.
    ru_held = {e.title for e in heldout if e.dataset == "tydi.ru"}
    ru_train = {e.title for e in train if e.dataset == "tydi.ru"}
    assert ru_held and ru_train and not ru_held & ru_train
    assert 2 <= len(ru_held) <= 16


def test_dataset_selection_names_what_exists(qa_data):
    examples = [e for f in sorted(qa_data.rglob("*.json")) for e in load_squad(f)]
    kept = select_datasets(examples, TrainConfig(exclude=("qed", "tydi.en")))
    assert {e.dataset for e in kept} == {"xquad.en", "xquad.ru", "tydi.en.dev", "tydi.ru"}
    with pytest.raises(ChatbotError, match="No dataset named covid"):
        select_datasets(examples, TrainConfig(exclude=("covid",)))


def test_passage_negatives_are_close_paragraphs_of_other_articles_without_the_answer(tiny_reader_dir):
    from transformers import AutoTokenizer

    from chatbot.tools.training import QAExample

    def example(title: str, context: str, question: str, answer: str) -> QAExample:
        return QAExample(f"{title}-{question}", "tydi.en", title, context, question, answer, context.index(answer))

    oslo = example("Oslo", "Oslo is the capital of Norway and its largest city.", "What is the capital of Norway?",
                   "Oslo")
    bergen = example("Bergen", "Bergen is a city in Norway, the second largest after the capital.",
                     "Which city is second largest?", "Bergen")
    also_oslo = example("Oslo", "Oslo lies at the head of a fjord in Norway.", "Where does Oslo lie?", "at the head")
    mentions = example("Trains", "Trains run from Oslo to Bergen every day.", "What runs every day?", "Trains")
    stop_words = example("Words", "Who is who in the city?", "Who is who?", "who")
    negatives = passage_negative_examples([oslo, bergen, also_oslo, mentions, stop_words], 1.0, random.Random(0))
    by_question = {e.question: e for e in negatives}
    # The closest paragraph of another article: not the question's own article, not one holding its answer.
    assert by_question["What is the capital of Norway?"].context == bergen.context
    assert "Who is who?" not in by_question  # nothing to search for: no negative, no crash
    for e in negatives:
        asked = next(s for s in (oslo, bergen, also_oslo, mentions) if s.question == e.question)
        assert e.answer_start == -1 and not e.has_answer
        assert e.context not in {s.context for s in (oslo, bergen, also_oslo, mentions) if s.title == asked.title}
        assert asked.answer_text.casefold() not in e.context.casefold()
    assert passage_negative_examples([oslo, bergen], 0.0, random.Random(0)) == []

    tokenizer = AutoTokenizer.from_pretrained(tiny_reader_dir)
    cfg = TrainConfig(max_length=64, stride=16)
    windows = featurize([by_question["What is the capital of Norway?"]], tokenizer, cfg, random.Random(0))
    assert len(windows) == 1 and windows[0]["start_positions"] == windows[0]["end_positions"] == 0


@pytest.mark.skipif(not SHARED_QA.is_dir(), reason="../shared/qa-data is not beside the checkout")
def test_the_shared_data_gives_about_eleven_thousand_training_questions_and_every_held_out_part():
    cfg = TrainConfig(data=[SHARED_QA], cross_lingual=True)
    train, heldout = training_examples(cfg, random.Random(0))
    assert 9_000 < len(train) < 12_000
    counts = {}
    for e in heldout:
        counts[e.dataset] = counts.get(e.dataset, 0) + 1
    assert counts["tydi.en.dev"] == 440 and counts["xquad.en"] == 230 and counts["xquad.en->ru"] == 230
    assert 80 < counts["tydi.ru"] < 170  # about one article in five of 610 questions
    assert not {e.context for e in train} & {e.context for e in heldout if not e.dataset.startswith("xquad.")}


def test_a_run_killed_after_a_checkpoint_resumes_to_the_weights_of_an_uninterrupted_run(
        qa_data, tiny_reader_dir, tmp_path, monkeypatch):
    import torch
    from safetensors.torch import load_file

    import chatbot.tools.training as training

    def config(out: Path) -> TrainConfig:
        return TrainConfig(data=[qa_data], base=str(tiny_reader_dir), out=out, epochs=2, batch_size=4, lr=1e-3,
                           max_length=64, stride=16, cross_lingual=True, checkpoint_minutes=0.0)

    whole = train_reader(config(tmp_path / "whole"), log=lambda *_: None)
    assert whole["steps"] > 4

    collate, calls = training._collate, []

    def killed_after_three_steps(batch, pad_id):
        calls.append(1)
        if len(calls) > 3:
            raise KeyboardInterrupt  # the session ends
        return collate(batch, pad_id)

    monkeypatch.setattr(training, "_collate", killed_after_three_steps)
    with pytest.raises(KeyboardInterrupt):
        train_reader(config(tmp_path / "resumed"), log=lambda *_: None)
    assert (tmp_path / "resumed" / CHECKPOINT_DIR / "state.pt").is_file()
    monkeypatch.setattr(training, "_collate", collate)
    # Resumed with other options: the run's saved config wins.
    resumed = train_reader(TrainConfig(out=tmp_path / "resumed", lr=0.5), log=lambda *_: None, resume=True)

    assert resumed["config"]["lr"] == 1e-3 and resumed["steps"] == whole["steps"]
    assert not (tmp_path / "resumed" / CHECKPOINT_DIR).exists()
    a = load_file(tmp_path / "whole" / "model.safetensors")
    b = load_file(tmp_path / "resumed" / "model.safetensors")
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key].float(), b[key].float(), atol=2e-3, rtol=0)
    reader_config = json.loads((tmp_path / "resumed" / "reader_config.json").read_text())
    assert reader_config["max_length"] == 64 and reader_config["stride"] == 16


def test_evaluate_reader_reports_every_held_out_part_and_writes_beside_the_weights(qa_data, tiny_reader_dir, tmp_path):
    import shutil

    from chatbot.serve.cli import main

    model = Path(shutil.copytree(tiny_reader_dir, tmp_path / "reader"))
    root = Path(__file__).resolve().parents[1]
    assert main(["evaluate-reader", str(model), "--data", str(qa_data), "--questions",
                 str(root / "evals" / "questions.jsonl"), "--corpus", str(root / "corpus")]) == 0
    report = json.loads((model / "evaluation.json").read_text(encoding="utf-8"))
    assert {"xquad.en", "xquad.ru", "xquad.en->ru", "xquad.ru->en", "tydi.en.dev", "tydi.ru"} <= set(report["heldout"])
    assert {"en", "ru", "en->ru"} <= set(report["corpus_paragraphs"])
    assert report["corpus_paragraphs"]["en"]["n"] > 50
    assert 0 < report["no_answer"]["threshold"] < 1 and report["no_answer"]["pairs"] > 0
