"""evals/xquad_corpus.py: the held-out XQuAD articles become a bilingual corpus and an eval set `chatbot eval` accepts."""

import importlib.util
import json
from pathlib import Path

from chatbot.tools.evaluation import load_questions, validate_questions
from chatbot.tools.training import HELDOUT_XQUAD_ARTICLES

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("xquad_corpus", ROOT / "evals" / "xquad_corpus.py")
xquad_corpus = importlib.util.module_from_spec(spec)
spec.loader.exec_module(xquad_corpus)

PARAGRAPHS = {
    "en": ["Oxygen is a chemical element. Its symbol is O. It was named by Lavoisier in 1777.",
           "Oxygen makes up about 21 percent of the air! Plants release it."],
    "ru": ["Кислород — химический элемент. Его символ O. Название дал Лавуазье в 1777 году.",
           "Кислород составляет около 21 процента воздуха! Растения выделяют его."],
}
QUESTIONS = {"en": [("Who named oxygen?", "Lavoisier"), ("How much of the air is oxygen?", "about 21 percent")],
             "ru": [("Кто дал название кислороду?", "Лавуазье"), ("Какую долю воздуха составляет кислород?",
                                                                 "около 21 процента")]}


def _squad(lang: str) -> dict:
    paragraphs = []
    for n, (context, (question, answer)) in enumerate(zip(PARAGRAPHS[lang], QUESTIONS[lang])):
        paragraphs.append({"context": context, "qas": [{"id": f"q{n}", "question": question, "answers": [
            {"text": answer, "answer_start": context.index(answer)}]}]})
    other = {"title": "Not_Held_Out", "paragraphs": [{"context": "Elsewhere.", "qas": [
        {"id": "x", "question": "Where?", "answers": [{"text": "Elsewhere", "answer_start": 0}]}]}]}
    return {"data": [{"title": "Oxygen", "paragraphs": paragraphs}, other]}


def test_evidence_is_the_sentences_holding_the_answer():
    text = "First one. The answer spans here. And on! Last?"
    start = text.index("spans here. And")
    assert xquad_corpus.evidence_around(text, start, start + len("spans here. And")) == "The answer spans here. And on!"
    assert xquad_corpus.evidence_around(text, 0, 5) == "First one."


def test_builds_one_file_per_article_and_language_and_a_valid_eval_set(tmp_path):
    assert "Oxygen" in HELDOUT_XQUAD_ARTICLES
    data = tmp_path / "xquad"
    data.mkdir()
    for lang in ("en", "ru"):
        (data / f"xquad.{lang}.json").write_text(json.dumps(_squad(lang), ensure_ascii=False), encoding="utf-8")
    assert xquad_corpus.main(["--data", str(data), "--out", str(tmp_path / "out")]) == 0
    corpus = tmp_path / "out" / "corpus"
    rows = load_questions(tmp_path / "out" / "questions.jsonl")
    assert [(r["lang"], r["answers"]) for r in rows] == [
        ("en", ["Lavoisier"]), ("en", ["about 21 percent"]), ("ru", ["Лавуазье"]), ("ru", ["около 21 процента"])]
    assert all(r["source"].endswith(f".{r['lang']}.txt") for r in rows)  # the asker's language is the source
    oxygen = {p.name: p.read_text(encoding="utf-8") for p in corpus.glob("*oxygen*")}
    assert sorted(oxygen) == ["02_oxygen.en.txt", "02_oxygen.ru.txt"]
    assert oxygen["02_oxygen.en.txt"] == "\n\n".join(PARAGRAPHS["en"]) + "\n"
    assert len(list(corpus.iterdir())) == 2 and "Elsewhere" not in "".join(p.read_text(encoding="utf-8") for p in corpus.iterdir())
    validation = validate_questions(rows, corpus)
    assert validation.errors == [] and validation.warnings == []


def test_missing_data_is_a_message_not_a_traceback(tmp_path, capsys):
    assert xquad_corpus.main(["--data", str(tmp_path), "--out", str(tmp_path / "out")]) == 2
    assert "xquad.en.json" in capsys.readouterr().err
