"""The eval question set is well-formed and grounded in the corpus."""

import json
from pathlib import Path

import pytest

from chatbot.evaluation import KINDS, LANGS, load_questions, row_kind, validate_rows

ROOT = Path(__file__).resolve().parents[1]
QUESTIONS = ROOT / "evals" / "questions.jsonl"
CORPUS = ROOT / "corpus"


@pytest.fixture(scope="module")
def rows():
    return load_questions(QUESTIONS)


def test_every_line_is_a_json_object():
    lines = QUESTIONS.read_text(encoding="utf-8").splitlines()
    assert all(isinstance(json.loads(line), dict) for line in lines if line.strip())


def test_set_is_valid(rows):
    assert validate_rows(rows, CORPUS) == []


def test_set_size_and_coverage(rows):
    assert len(rows) >= 80
    assert {r["lang"] for r in rows} == set(LANGS)
    assert {row_kind(r) for r in rows} == set(KINDS)


@pytest.fixture
def corpus(tmp_path):
    (tmp_path / "a.txt").write_text("Nav line\nMusk’s xAI raised $6 billion in May.\n", encoding="utf-8")
    return tmp_path


GOOD = {"id": "x-1", "question": "How much did xAI raise?", "answers": ["$6 billion", "6 billion"],
        "source": "a.txt", "evidence": "Musk’s xAI raised $6 billion in May.", "answerable": True,
        "lang": "en"}


def test_validator_accepts_good_rows(corpus):
    unanswerable = {**GOOD, "id": "x-2", "answers": [], "source": None, "evidence": None,
                    "answerable": False, "history": ["Who founded xAI?"], "standalone": "..."}
    assert validate_rows([GOOD, unanswerable], corpus) == []


@pytest.mark.parametrize("change, message", [
    ({"evidence": "Musk's xAI raised $6 billion in May."}, "not verbatim"),
    ({"evidence": "Nav line"}, "no answer in evidence"),
    ({"answers": ["6 billion", "$7 billion"]}, "'$7 billion' not in evidence"),
    ({"answers": ["6 Billion"]}, "no answer verbatim"),
    ({"answers": []}, "without answers"),
    ({"source": "missing.txt"}, "not in"),
    ({"source": ["a.txt", "a.txt"]}, "2 sources but 1 evidences"),
    ({"answerable": False}, "must have answers []"),
    ({"lang": "fr"}, "lang"),
    ({"history": "Who founded xAI?"}, "history"),
    ({"answerable": "yes"}, "'answerable' has type"),
])
def test_validator_flags_bad_rows(corpus, change, message):
    problems = validate_rows([{**GOOD, **change}], corpus)
    assert any(message in p for p in problems), problems


def test_validator_flags_missing_keys_and_duplicate_ids(corpus):
    row = {k: v for k, v in GOOD.items() if k != "question"}
    problems = validate_rows([GOOD, GOOD, row], corpus)
    assert "x-1: duplicate id" in problems
    assert "x-1: missing key 'question'" in problems
