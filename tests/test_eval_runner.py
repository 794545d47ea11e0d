"""The eval runner: metrics against hand calculations, the report schema, a real run, bad input."""

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from chatbot.tools.evaluation import (GATED, KINDS, LANGS, METRICS, build_report, check_against, check_thresholds, standalone_context,
                                compare_standalone, evaluate, first_relevant_rank, format_table,
                                answer_direction, holds_evidence, run, score_row)
from chatbot.config import Settings
from chatbot.qa.conversation import resolve_followup
from chatbot.errors import ChatbotError
from chatbot.types import Answer, Citation, Passage

ROOT = Path(__file__).resolve().parents[1]


def settings_for(tmp_path):
    return Settings.from_env().with_(corpus_dir=ROOT / "corpus", index_dir=tmp_path / "index")


def cite(source, text):
    return {"source": source, "title": "T", "start": 0, "end": len(text), "text": text,
            "answer_start": None, "answer_end": None}


def pred(answer, citations=(), latency_ms=0.0):
    return {"answer": answer, "citations": list(citations), "latency_ms": latency_ms}


ROWS = [
    {"id": "a1", "lang": "en", "answerable": True, "answers": ["Paris"], "source": "a.txt",
     "evidence": "It is in Paris."},
    {"id": "a2", "lang": "en", "answerable": True, "answers": ["red dog"], "source": ["b.txt", "a.txt"],
     "evidence": ["A red dog ran.", "The dog was red dog."], "history": ["Who?"]},
    {"id": "a3", "lang": "ru", "answerable": True, "answers": ["Москва"], "source": "c.txt",
     "evidence": "Это Москва."},
    {"id": "u1", "lang": "en", "answerable": False, "answers": [], "source": None, "evidence": None},
    {"id": "u2", "lang": "en", "answerable": False, "answers": [], "source": None, "evidence": None,
     "history": ["Who?"]},
]
PREDS = [
    pred("Paris", [cite("a.txt", "Well,  It is in\nParis. Yes.")], 10),      # EM 1, cited (whitespace)
    pred("big red dog", [cite("c.txt", "The dog was red dog."), cite("b.txt", "A red dog ran.")], 20),
    pred(None, [], 30),                                                       # abstains on answerable
    pred(None, [], 40),                                                       # right abstention
    pred("something", [cite("a.txt", "x")], 50),                              # should have abstained
]
RETRIEVED = [["nothing", "so It is\tin Paris. ok"], ["The dog was red dog. more"], ["no", "no", "no"],
             None, None]


def scored(preds=PREDS):
    return [score_row(r, p, t) for r, p, t in zip(ROWS, preds, RETRIEVED)]


def test_evidence_matching():
    assert holds_evidence("a  b\nc d", "b c")
    assert holds_evidence("x y", ["q", "y"])
    assert not holds_evidence("x y", "x z")
    assert first_relevant_rank(["a", "b c", "b"], "b") == 2
    assert first_relevant_rank(["a"], "b") is None


def test_overall_matches_hand_calculation():
    overall = build_report(scored())["overall"]
    assert overall == {
        "n": 5,
        "em": 33.3,                    # 1 of 3 answerable
        "f1": 60.0,                    # (1 + 0.8 + 0) / 3; "big red dog" vs "red dog": P 2/3, R 1
        "recall@1": 33.3,              # ranks 2, 1, none
        "recall@5": 66.7,
        "mrr": 50.0,                   # (1/2 + 1 + 0) / 3
        "citation_accuracy": 33.3,     # a2's first citation is from c.txt, not a source
        "abstention_precision": 50.0,  # abstained on a3 and u1; only u1 is unanswerable
        "abstention_recall": 50.0,     # u1 of u1, u2
        "latency_p50_ms": 30.0,
        "latency_p95_ms": 48.0,        # 40 + 0.8 * (50 - 40)
        "ece": None,                   # these predictions carry no confidence
        "right_at_0.8": None,
        "n_at_0.8": None,
        "reliability": None,
    }


def test_groups_and_nulls():
    report = build_report(scored())
    assert [report["by_kind"][k]["n"] for k in KINDS] == [2, 1, 2]  # u2 (a follow-up) is unanswerable
    unanswerable = report["by_kind"]["unanswerable"]
    assert [unanswerable[m] for m in ("em", "f1", "recall@5", "mrr", "citation_accuracy")] == [None] * 5
    assert (unanswerable["abstention_precision"], unanswerable["abstention_recall"]) == (100.0, 50.0)
    followup = report["by_kind"]["followup"]
    assert (followup["f1"], followup["recall@1"], followup["citation_accuracy"]) == (80.0, 100.0, 0.0)
    assert followup["abstention_precision"] is None and followup["abstention_recall"] is None
    ru = report["by_language"]["ru"]
    assert (ru["n"], ru["em"], ru["mrr"], ru["abstention_precision"], ru["abstention_recall"]) == (
        1, 0.0, 0.0, 0.0, None)
    assert report["by_language"]["en"]["n"] == 4


def test_rows_answered_only_in_another_language_are_reported_apart():
    languages = {"a.txt": "en", "b.txt": "en", "c.txt": "ru"}
    english_about_russian = {**ROWS[0], "id": "x1", "source": "c.txt"}
    assert answer_direction(english_about_russian, languages) == "en->ru"
    assert answer_direction(ROWS[0], languages) is None                     # same language
    assert answer_direction({**ROWS[1], "source": ["a.txt", "c.txt"]}, languages) is None  # also in English
    assert answer_direction(ROWS[3], languages) is None                     # unanswerable
    assert answer_direction({**english_about_russian, "source": "gone.txt"}, languages) is None
    rows = [english_about_russian, *ROWS]
    preds = [pred("Москва", [cite("c.txt", "It is in Paris.")], 5), *PREDS]
    marked = [{**score_row(r, p, None), "direction": answer_direction(r, languages)} for r, p in zip(rows, preds)]
    report = build_report(marked)
    assert list(report["cross_lingual"]) == ["en->ru"]
    assert (report["cross_lingual"]["en->ru"]["n"], report["cross_lingual"]["en->ru"]["citation_accuracy"]) == (1, 100.0)
    assert "cross=en->ru" in format_table(report)


def test_citation_needs_evidence_in_first_three():
    row = ROWS[0]
    late = [cite("a.txt", "no"), cite("a.txt", "no"), cite("a.txt", "no"), cite("a.txt", "It is in Paris.")]
    assert score_row(row, pred("Paris", late), None)["cited"] is False
    assert score_row(row, pred("Paris", [late[0], late[3]]), None)["cited"] is True
    assert score_row(row, pred("Paris", [cite("b.txt", "It is in Paris.")]), None)["cited"] is False


def test_retriever_only_counts_only_retrieval():
    overall = build_report(scored([None] * 5))["overall"]
    assert (overall["recall@1"], overall["recall@5"], overall["mrr"]) == (33.3, 66.7, 50.0)
    assert all(overall[m] is None for m in METRICS if m not in ("recall@1", "recall@5", "mrr"))


def test_empty_group_is_all_null():
    report = build_report([])
    assert report["overall"] == {"n": 0, **{m: None for m in METRICS}}


def test_report_schema():
    report = build_report(scored())
    assert set(report) == {"overall", "by_language", "by_kind", "cross_lingual"}
    assert set(report["by_language"]) == set(LANGS) and set(report["by_kind"]) == set(KINDS)
    for group in [report["overall"], *report["by_language"].values(), *report["by_kind"].values()]:
        assert list(group) == ["n", *METRICS]
        assert isinstance(group["n"], int)
        assert all(v is None or (isinstance(v, float) and v == round(v, 1)) for k, v in group.items()
                   if k != "n")
        assert all(group[m] is None or 0 <= group[m] <= 100 for m in METRICS if "latency" not in m)
    json.dumps(report)
    assert "overall" in format_table(report) and "kind=unanswerable" in format_table(report)


def test_followup_vs_standalone():
    fvs = compare_standalone([(ROWS[1], PREDS[1], pred("red dog")), (ROWS[4], PREDS[4], pred(None))])
    assert fvs == {"n": 1, "followup_f1": 80.0, "standalone_f1": 100.0,
                   "rows": [{"id": "a2", "followup_f1": 80.0, "standalone_f1": 100.0}]}
    assert compare_standalone([])["followup_f1"] is None


def test_thresholds():
    report = build_report(scored())
    assert check_thresholds(report, {"overall": {"f1": 60.0, "recall@5": 66.0}}) == []
    assert check_thresholds(report, {"overall": {"f1": 60.1}}) == ["overall.f1: 60.0 < threshold 60.1"]
    assert check_thresholds(report, {"by_kind": {"unanswerable": {"f1": 1}}}) == [
        "by_kind.unanswerable.f1: not measured (threshold 1)"]
    shipped = json.loads((ROOT / "evals" / "gate-thresholds.json").read_text(encoding="utf-8"))
    assert set(shipped) == {"overall"} and set(shipped["overall"]) == set(GATED)


def test_a_run_is_checked_against_another_runs_report():
    report = build_report(scored())
    moved = json.loads(json.dumps(report))
    moved["overall"]["f1"] = report["overall"]["f1"] - 1.5
    assert check_against(moved, report, {"overall": {"f1": 2.0, "recall@5": 0.0}}) == []
    assert check_against(moved, report, {"overall": {"f1": 1.0}}) == [
        f"overall.f1: {moved['overall']['f1']} is more than 1.0 from the baseline's {report['overall']['f1']}"]
    assert check_against(moved, {}, {"overall": {"f1": 1.0}})[0].startswith("overall.f1: not measured in both runs")
    shipped = json.loads((ROOT / "evals" / "store-tolerance.json").read_text(encoding="utf-8"))
    assert check_against(report, report, shipped) == []


def test_invalid_questions_file_is_a_clear_error(tmp_path):
    bad = tmp_path / "q.jsonl"
    bad.write_text(json.dumps({"id": "x", "question": "", "answers": [], "source": None, "evidence": None,
                               "answerable": False, "lang": "de"}) + "\n", encoding="utf-8")
    with pytest.raises(ChatbotError) as err:
        evaluate(bad, settings_for(tmp_path))
    assert "x: empty question" in str(err.value) and "x: lang 'de'" in str(err.value)
    bad.write_text("{not json\n", encoding="utf-8")
    with pytest.raises(ChatbotError, match="invalid JSON"):
        evaluate(bad, settings_for(tmp_path))


class FakeBot:
    """Answers "Paris" with the evidence passage as citation; records every ask."""

    def __init__(self):
        self.calls = []
        self.index = SimpleNamespace(passages=[Passage("It is in Paris.", "a.txt", "T", 0, 15)])

    def ask(self, question, history=None, k=5, answers=None, explain=False):
        self.calls.append((question, list(history or [])))
        text = None if "France" in question else "Paris"
        citations = [Citation("a.txt", "T", 0, 15, "It is in Paris.")] if text else []
        return Answer(question, f"{question} (searched)", text, 0.9, citations, latency_ms=len(self.calls))

    def search(self, query, k):
        return [Passage("It is in Paris.", "a.txt", "T", 0, 15)]

    def rewrite(self, question, history=None):
        return resolve_followup(question, history or [])


def test_run_asks_history_in_a_fresh_conversation(tmp_path):
    rows = [{**ROWS[0], "question": "Where is it?", "history": ["What is X?", "And Y?"],
             "standalone": "Where is X?"},
            {**ROWS[3], "question": "Capital of France?"}]
    bot, out = FakeBot(), tmp_path / "p.jsonl"
    with open(out, "w", encoding="utf-8") as fh:
        report = run(bot, rows, predictions=fh, progress=False)
    assert bot.calls == [("What is X?", []), ("And Y?", ["What is X?"]),
                         ("Where is it?", ["What is X?", "And Y?"]), ("Where is X?", []),
                         ("Capital of France?", [])]
    preds = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [p["id"] for p in preds] == ["a1", "u1"]
    assert list(preds[0]) == ["id", "question", "searched_for", "answer", "score", "citations", "latency_ms",
                             "clarification", "alternatives", "explanation"]
    assert (preds[0]["latency_ms"], preds[1]["answer"]) == (3, None)   # the final question's latency
    assert report["overall"]["citation_accuracy"] == 100.0 and report["overall"]["abstention_recall"] == 100.0
    assert report["by_kind"]["followup"]["recall@1"] == 100.0
    assert report["followup_vs_standalone"]["n"] == 1
    assert report["standalone_with_context"] == {"n": 1, "with_context": 0, "rows": []}


def test_standalone_context_counts_questions_searched_with_an_earlier_subject():
    rows = [{**ROWS[0], "id": "s1", "question": "Who runs the IT helpdesk?"},
            {**ROWS[0], "id": "s2", "question": "Who is the founder?"},
            {**ROWS[0], "id": "f1", "question": "Where is it?", "history": ["What is X?"], "standalone": "Where is X?"}]
    result = standalone_context(rows, resolve_followup)
    assert result == {"n": 2, "with_context": 1,
                      "rows": [{"id": "s2", "question": "Who is the founder?",
                                "searched_for": "Who is the founder? (IT runs helpdesk)"}]}
    assert "1 of 2" in format_table({**build_report(scored()), "standalone_with_context": result})


def test_real_runner_on_tiny_set(tmp_path, capsys, trained_reader):
    wanted = ["en-000-02", "ru-002-01", "fu-01", "na-01"]
    rows = {r["id"]: r for r in map(json.loads, (ROOT / "evals" / "questions.jsonl").read_text(
        encoding="utf-8").splitlines())}
    questions = tmp_path / "q.jsonl"
    questions.write_text("".join(json.dumps(rows[i], ensure_ascii=False) + "\n" for i in wanted),
                         encoding="utf-8")
    common = {"settings": settings_for(tmp_path), "progress": False}
    rc = evaluate(questions, predictions_path=tmp_path / "p.jsonl", report_path=tmp_path / "r.json", **common)
    assert rc == 0
    preds = [json.loads(line) for line in (tmp_path / "p.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [p["id"] for p in preds] == wanted
    assert all(p["answer"] is None or isinstance(p["answer"], str) for p in preds)
    assert all(p["latency_ms"] > 0 for p in preds)
    report = json.loads((tmp_path / "r.json").read_text(encoding="utf-8"))
    assert report["overall"]["n"] == 4 and report["by_kind"]["followup"]["n"] == 1
    assert report["overall"]["recall@5"] is not None and report["overall"]["f1"] is not None
    assert report["followup_vs_standalone"]["n"] == 1
    assert "kind=followup" in capsys.readouterr().out

    assert evaluate(questions, retriever_only=True, report_path=tmp_path / "r2.json", **common) == 0
    retrieval = json.loads((tmp_path / "r2.json").read_text(encoding="utf-8"))["overall"]
    assert retrieval["mrr"] is not None and retrieval["f1"] is None and retrieval["latency_p50_ms"] is None
