"""SQuAD-style scoring, loading, row kinds, and the calibration of answers in the report."""

import pytest

from chatbot.tools.evaluation import (CONFIDENT, build_report, calibration, check_thresholds, exact_match, f1_score,
                                format_table, load_questions, normalize_answer, row_kind, score_row, summarize)


@pytest.mark.parametrize("raw, expected", [
    ("The Eiffel Tower!", "eiffel tower"),
    ("  a   cat, an  owl ", "cat owl"),
    ("another theory", "another theory"),
    ("$30 billion", "30 billion"),
    ("«Партнерство по инфраструктуре ИИ» (AIP)", "партнерство по инфраструктуре ии aip"),
    ("а также", "а также"),
])
def test_normalize_answer(raw, expected):
    assert normalize_answer(raw) == expected


@pytest.mark.parametrize("a, b", [
    ("Musk’s", "Musk's"),
    ("“Gigafactory of Compute”", '"Gigafactory of Compute"'),
    ("2023–2024", "2023-2024"),
    ("2023—2024", "2023-2024"),
    ("−5", "-5"),
])
def test_typographic_folding(a, b):
    assert normalize_answer(a) == normalize_answer(b)


def test_exact_match():
    assert exact_match("the Eiffel Tower", ["Eiffel Tower"]) == 1.0
    assert exact_match("$30 billion", ["30 billion"]) == 1.0
    assert exact_match("Eiffel Tower in Paris", ["Eiffel Tower"]) == 0.0
    assert exact_match("12 Миллиардов долларов.", ["10 миллиардов", "12 миллиардов долларов"]) == 1.0


def test_f1_score():
    # pred tokens: eiffel tower in paris; gold: eiffel tower -> P 2/4, R 2/2
    assert f1_score("Eiffel Tower in Paris", ["the Eiffel Tower"]) == pytest.approx(2 / 3)
    # max over golds; second gold: P 1, R 2/3 -> 0.8
    assert f1_score("12 миллиардов", ["Мемфисе", "12 миллиардов долларов"]) == pytest.approx(0.8)
    assert f1_score("tower tower", ["tower"]) == pytest.approx(2 / 3)
    assert f1_score("Paris", ["Eiffel Tower"]) == 0.0


def test_empty_prediction_and_unanswerable():
    assert exact_match("", ["Eiffel Tower"]) == 0.0
    assert f1_score("", ["Eiffel Tower"]) == 0.0
    assert f1_score("the", ["Eiffel Tower"]) == 0.0
    assert exact_match("", []) == f1_score("", []) == 1.0
    assert exact_match("Paris", []) == f1_score("Paris", []) == 0.0


def test_row_kind():
    assert row_kind({"answerable": True}) == "single"
    assert row_kind({"answerable": True, "history": []}) == "single"
    assert row_kind({"answerable": True, "history": ["Who?"]}) == "followup"
    assert row_kind({"answerable": False, "history": ["Who?"]}) == "unanswerable"


def test_load_questions(tmp_path):
    path = tmp_path / "q.jsonl"
    path.write_text('{"id": "a", "question": "Где?"}\n\n{"id": "b"}\n', encoding="utf-8")
    assert [r["id"] for r in load_questions(path)] == ["a", "b"]
    path.write_text('{"id": "a"}\nnot json\n', encoding="utf-8")
    with pytest.raises(ValueError, match=":2:"):
        load_questions(path)


# ---------------------------------------------------------------------------
# Calibration: score and right per row, ece / right_at_0.8 / reliability per group, ece gated as a maximum.


def _row(rid, answers, lang="en"):
    return {"id": rid, "lang": lang, "answerable": bool(answers), "answers": answers,
            "source": "a.txt" if answers else None, "evidence": "x" if answers else None}


def _pred(answer, score):
    return {"answer": answer, "score": score, "citations": [], "latency_ms": 1.0}


def _scored(cases):
    """``cases``: (row, answer, score) -> score_row outputs (retriever not measured)."""
    return [score_row(row, _pred(answer, score), None) for row, answer, score in cases]


def test_score_row_keeps_score_and_judges_right():
    red_dog = _row("a", ["red dog"])
    answered = score_row(red_dog, _pred("the red dog", 0.7), None)
    assert (answered["score"], answered["right"]) == (0.7, True)
    assert score_row(red_dog, _pred("red cat", 0.7), None)["right"] is True       # F1 exactly 0.5
    assert score_row(_row("b", ["red big dog"]), _pred("red cat", 0.7), None)["right"] is False  # F1 0.4
    assert score_row(_row("u", []), _pred("red dog", 0.7), None)["right"] is False  # answered an unanswerable
    assert score_row(_row("u", []), _pred("the", 0.7), None)["right"] is False      # even "nothing" (F1 1 vs [])
    abstained = score_row(red_dog, _pred(None, 0.1), None)
    assert (abstained["right"], abstained["score"]) == (None, 0.1)
    assert score_row(red_dog, None, ["x"])["right"] is None and score_row(red_dog, None, ["x"])["score"] is None


def test_all_answered_at_0_9_and_right_gives_ece_0_1():
    rows = _scored([(_row(f"a{i}", ["Paris"]), "Paris", 0.9) for i in range(4)])
    overall = summarize(rows)
    assert overall["ece"] == 0.1
    assert (overall["right_at_0.8"], overall["n_at_0.8"]) == (100.0, 4)
    assert overall["reliability"] == [{"bin": "0.9-1.0", "n": 4, "confidence": 0.9, "right": 100.0}]


MIXED = [
    (_row("a", ["Paris"]), "Paris", 0.95),                # bin 0.9-1.0, right
    (_row("u", [], lang="ru"), "Москва", 0.85),           # bin 0.8-0.9, wrong: the row is unanswerable
    (_row("c", ["red dog"], lang="ru"), "red dog", 0.85), # bin 0.8-0.9, right
    (_row("d", ["red big dog"]), "red cat", 0.25),        # bin 0.2-0.3, wrong (F1 0.4)
    (_row("e", ["Paris"]), None, 0.1),                    # abstained: not in the calibration
    (_row("f", ["Paris"]), "Paris", 0.79),                # bin 0.7-0.8, right, below 0.8
]


def test_ece_reliability_and_right_at_0_8_match_hand_calculation():
    overall = build_report(_scored(MIXED))["overall"]
    # 5 answered: |0.95-1| + 2 * |0.85-0.5| + |0.25-0| + |0.79-1|, each bin weighted by its count / 5
    assert overall["ece"] == round((0.05 + 2 * 0.35 + 0.25 + 0.21) / 5, 3) == 0.242
    assert overall["reliability"] == [
        {"bin": "0.2-0.3", "n": 1, "confidence": 0.25, "right": 0.0},
        {"bin": "0.7-0.8", "n": 1, "confidence": 0.79, "right": 100.0},
        {"bin": "0.8-0.9", "n": 2, "confidence": 0.85, "right": 50.0},
        {"bin": "0.9-1.0", "n": 1, "confidence": 0.95, "right": 100.0},
    ]
    assert (overall["right_at_0.8"], overall["n_at_0.8"]) == (66.7, 3)   # a and c of a, u, c


def test_calibration_in_every_group():
    report = build_report([{**s, "direction": "en->ru" if s["id"] == "c" else None} for s in _scored(MIXED)])
    ru = report["by_language"]["ru"]
    assert (ru["ece"], ru["right_at_0.8"], ru["n_at_0.8"]) == (0.35, 50.0, 2)
    en = report["by_language"]["en"]
    assert en["ece"] == round((0.05 + 0.25 + 0.21) / 3, 3) == 0.17 and en["n_at_0.8"] == 1
    unanswerable = report["by_kind"]["unanswerable"]
    assert (unanswerable["ece"], unanswerable["right_at_0.8"]) == (0.85, 0.0)
    assert report["by_kind"]["followup"]["ece"] is None                     # empty group
    cross = report["cross_lingual"]["en->ru"]
    assert cross["ece"] == 0.15
    assert cross["reliability"] == [{"bin": "0.8-0.9", "n": 1, "confidence": 0.85, "right": 100.0}]


def test_bins_edges_and_nothing_answered():
    at = calibration(_scored([(_row("a", ["x"]), "x", 1.0), (_row("b", ["x"]), "y", CONFIDENT),
                              (_row("c", ["x"]), "x", 0.0)]))
    assert [b["bin"] for b in at["reliability"]] == ["0.0-0.1", "0.8-0.9", "0.9-1.0"]   # 1.0 in the last bin
    assert (at["right_at_0.8"], at["n_at_0.8"]) == (50.0, 2)                       # 0.8 itself counts
    assert at["ece"] == round((1 + 0.8 + 0) / 3, 3)
    below = calibration(_scored([(_row("a", ["x"]), "x", 0.5)]))
    assert (below["right_at_0.8"], below["n_at_0.8"], below["ece"]) == (None, 0, 0.5)
    nothing = {"ece": None, "right_at_0.8": None, "n_at_0.8": None, "reliability": None}
    assert calibration(_scored([(_row("a", ["x"]), None, 0.3)])) == nothing        # only abstentions
    assert calibration([score_row(_row("a", ["x"]), None, ["x"])]) == nothing      # retriever-only
    assert calibration([]) == nothing


def test_ece_is_gated_as_a_maximum():
    report = build_report(_scored(MIXED))                                  # ece 0.242, f1 ~ 57
    assert check_thresholds(report, {"overall": {"ece": 0.25}}) == []
    assert check_thresholds(report, {"overall": {"ece": 0.242}}) == []    # equal passes
    assert check_thresholds(report, {"overall": {"ece": 0.15}}) == ["overall.ece: 0.242 > threshold 0.15"]
    assert check_thresholds(report, {"overall": {"ece": 0.3, "f1": 90}}) == [
        f"overall.f1: {report['overall']['f1']} < threshold 90"]          # other metrics stay minimums
    assert check_thresholds(report, {"overall": {"right_at_0.8": 70}}) == ["overall.right_at_0.8: 66.7 < threshold 70"]
    assert check_thresholds(report, {"by_kind": {"followup": {"ece": 0.15}}}) == [
        "by_kind.followup.ece: not measured (threshold 0.15)"]


def test_table_shows_calibration_and_reliability():
    table = format_table(build_report(_scored(MIXED)))
    lines = table.splitlines()
    header = lines[0].split()
    assert header[-3:] == ["ECE", "OK@.8", "n@.8"]
    overall = lines[1].split()
    assert overall[0] == "overall" and overall[-3:] == ["0.242", "66.7", "3"]
    assert lines[5].split()[0] == "kind=followup"
    assert lines[5].split()[-3:] == ["-", "-", "-"]                       # followup: nothing answered
    start = lines.index(next(line for line in lines if line.startswith("reliability")))
    rest = [line.split() for line in lines[start + 2:]]
    assert rest[0] == ["overall", "0.2-0.3", "1", "0.25", "0.0"]
    assert rest[3] == ["0.9-1.0", "1", "0.95", "100.0"]
    assert rest[4] == ["lang=en", "0.2-0.3", "1", "0.25", "0.0"]
    assert ["lang=ru", "0.8-0.9", "2", "0.85", "50.0"] in rest
    assert not any(r[0].startswith("kind=") for r in rest)                # overall and per language only
