"""The eval question set is well-formed and grounded in the corpus; what `chatbot eval` refuses, what it warns of."""

import json
import sys
import types
from pathlib import Path
from types import SimpleNamespace

import pytest

from chatbot.errors import ChatbotError
from chatbot.tools.evaluation import (KINDS, LANGS, Validation, evaluate, load_questions, row_kind,
                                validate_questions)

ROOT = Path(__file__).resolve().parents[1]
QUESTIONS = ROOT / "evals" / "questions.jsonl"  # the tuning set
GATE = ROOT / "evals" / "gate.jsonl"  # the gate set: no setting is chosen on it
CORPUS = ROOT / "corpus"


def _all_problems(validation) -> list[str]:
    """Every problem of a question set, errors then warnings."""
    return validation.errors + validation.warnings


@pytest.fixture(scope="module", params=[QUESTIONS, GATE], ids=["tuning", "gate"])
def rows(request):
    return load_questions(request.param)


@pytest.mark.parametrize("path", [QUESTIONS, GATE], ids=["tuning", "gate"])
def test_every_line_is_a_json_object(path):
    lines = path.read_text(encoding="utf-8").splitlines()
    assert all(isinstance(json.loads(line), dict) for line in lines if line.strip())


def test_the_gate_set_shares_no_question_with_the_tuning_set():
    tuning = {r["question"].casefold() for r in load_questions(QUESTIONS)}
    gate = load_questions(GATE)
    assert len(gate) >= 60 and not [r["id"] for r in gate if r["question"].casefold() in tuning]


def test_set_is_valid(rows):
    # The shipped set has neither errors nor (grounding) warnings.
    assert validate_questions(rows, CORPUS) == Validation(errors=[], warnings=[])
    assert _all_problems(validate_questions(rows, CORPUS)) == []


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
    assert validate_questions([GOOD, unanswerable], corpus) == Validation([], [])
    assert _all_problems(validate_questions([GOOD, unanswerable], corpus)) == []


# Grounding (an answer or evidence not found verbatim in the source): warnings, the row is still run.
@pytest.mark.parametrize("change, message", [
    ({"evidence": "Musk's xAI raised $6 billion in May."}, "not verbatim"),
    ({"evidence": "Nav line"}, "no answer in evidence"),
    ({"answers": ["6 billion", "$7 billion"]}, "'$7 billion' not in evidence"),
    ({"answers": ["6 Billion"]}, "no answer verbatim"),
])
def test_validator_warns_of_ungrounded_rows(corpus, change, message):
    found = validate_questions([{**GOOD, **change}], corpus)
    assert found.errors == [] and found.ok and not found.clean
    assert any(w.startswith("x-1: ") and message in w for w in found.warnings), found.warnings
    assert any(message in p for p in _all_problems(validate_questions([{**GOOD, **change}], corpus)))   # every problem


# Schema and types (missing keys, wrong types, duplicate ids, an unknown source): errors, the file is refused.
@pytest.mark.parametrize("change, message", [
    ({"answers": []}, "without answers"),
    ({"source": "missing.txt"}, "not in"),
    ({"source": ["a.txt", "a.txt"]}, "2 sources but 1 evidences"),
    ({"source": None}, "needs source and evidence"),
    ({"source": [1], "evidence": ["x"]}, "must be strings"),
    ({"answerable": False}, "must have answers []"),
    ({"lang": "fr"}, "lang"),
    ({"history": "Who founded xAI?"}, "history"),
    ({"answerable": "yes"}, "'answerable' has type"),
])
def test_validator_flags_bad_rows(corpus, change, message):
    found = validate_questions([{**GOOD, **change}], corpus)
    assert any(e.startswith("x-1: ") and message in e for e in found.errors), found.errors
    assert not any(message in w for w in found.warnings) and not found.ok
    assert any(message in p for p in _all_problems(validate_questions([{**GOOD, **change}], corpus)))


def test_validator_flags_missing_keys_and_duplicate_ids(corpus):
    row = {k: v for k, v in GOOD.items() if k != "question"}
    found = validate_questions([GOOD, GOOD, row], corpus)
    assert "x-1: duplicate id" in found.errors
    assert "x-1: missing key 'question'" in found.errors
    assert found.warnings == []
    assert _all_problems(validate_questions([GOOD, GOOD, row], corpus)) == found.errors


# ---------------------------------------------------------------------------
# `chatbot eval` on a set with warnings: run, with the warnings on stderr; with errors: refused, nothing loaded.

class FakeAnswer:
    def __init__(self, question, text, score):
        self.question, self.text, self.score = question, text, score

    def to_dict(self):
        return {"question": self.question, "searched_for": self.question, "answer": self.text, "score": self.score,
                "citations": [{"source": "a.txt", "title": "T", "start": 0, "end": 0,
                               "text": GOOD["evidence"], "answer_start": None, "answer_end": None}],
                "latency_ms": 1.0}


class FakeBot:
    """Answers "$6 billion" at 0.9 to everything; stands in for ``Chatbot.load`` (no models, no index)."""

    loaded = 0

    def __init__(self):
        self.asked = []
        self.index = SimpleNamespace(passages=[SimpleNamespace(source="a.txt", lang="en", text=GOOD["evidence"])])

    @classmethod
    def load(cls, settings=None, progress=True):
        cls.loaded += 1
        return cls()

    def warm_up(self):
        pass

    def ask(self, question, history=None, k=5, answers=None, explain=False):
        self.asked.append(question)
        return FakeAnswer(question, "$6 billion", 0.9)

    def search(self, query, k=5):
        return self.index.passages

    def rewrite(self, question, history=None):
        return question


@pytest.fixture
def fake_pipeline(monkeypatch):
    """``chatbot.qa.chatbot`` replaced by a module whose ``Chatbot`` is :class:`FakeBot` (evaluate imports it late)."""
    module = types.ModuleType("chatbot.qa.chatbot")
    module.Chatbot = FakeBot
    monkeypatch.setitem(sys.modules, "chatbot.qa.chatbot", module)
    monkeypatch.setattr(FakeBot, "loaded", 0)
    return FakeBot


def _write(path, rows):
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def test_eval_runs_a_set_with_grounding_warnings(corpus, tmp_path, capsys, fake_pipeline):
    # "$6 Billion" is not verbatim in a.txt; the set is still run, with one warning line per problem.
    paraphrased = {**GOOD, "id": "x-2", "answers": ["6 Billion dollars"]}
    questions = _write(tmp_path / "q.jsonl", [GOOD, paraphrased])
    rc = evaluate(questions, SimpleNamespace(corpus_dir=corpus), report_path=tmp_path / "r.json", progress=False)
    assert rc == 0 and fake_pipeline.loaded == 1
    err = capsys.readouterr().err.splitlines()
    warnings = [line for line in err if line.startswith("warning: ")]
    assert warnings and all(line.startswith("warning: x-2: ") for line in warnings)
    assert "warning: x-2: no answer verbatim in the source text" in warnings
    assert f"{questions}: {len(warnings)} grounding warnings" in err[0] and "the run goes on" in err[0]
    report = json.loads((tmp_path / "r.json").read_text(encoding="utf-8"))
    assert report["overall"]["n"] == 2
    # Both answered "$6 billion" at 0.9 and right (x-2: F1 against "6 Billion dollars" 0.8): ece |0.9 - 1|.
    assert report["overall"]["n_at_0.8"] == 2 and report["overall"]["ece"] == 0.1


def test_eval_run_without_warnings_prints_none(corpus, tmp_path, capsys, fake_pipeline):
    assert evaluate(_write(tmp_path / "q.jsonl", [GOOD]), SimpleNamespace(corpus_dir=corpus), progress=False) == 0
    assert "warning" not in capsys.readouterr().err


def test_eval_refuses_a_set_with_errors(corpus, tmp_path, fake_pipeline):
    rows = [{**GOOD, "source": "missing.txt"}, {**GOOD, "id": "x-2", "answers": ["6 Billion"]}]
    with pytest.raises(ChatbotError) as err:
        evaluate(_write(tmp_path / "q.jsonl", rows), SimpleNamespace(corpus_dir=corpus), progress=False)
    message = str(err.value)
    assert "(1 error)" in message and "x-1: source 'missing.txt' not in" in message
    assert "warning: x-2: no answer verbatim in the source text" in message   # listed too, to fix at once
    assert fake_pipeline.loaded == 0
