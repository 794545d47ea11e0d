"""SQuAD-style scoring, loading and row kinds."""

import pytest

from chatbot.evaluation import exact_match, f1_score, load_questions, normalize_answer, row_kind


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
