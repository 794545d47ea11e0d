"""The answer policy: its probability, threshold and file, the candidates' features, and its fit."""

import json
import math

import numpy as np
import pytest

from chatbot.config import SHIPPED_READER_DIR
from chatbot.errors import ModelLoadError
from chatbot.models.reader import whole_words
from chatbot.qa.chatbot import balanced
from chatbot.qa.policy import (FEATURES, POLICY_FILE, AnswerPolicy, candidate_features, expected_answer_type,
                               feature_ranges, fits_type, passage_features)
from chatbot.tools.policy_fit import calibration, chosen, fit_logistic, out_of_fold, policy_from, threshold_for
from chatbot.types import Candidate, RetrievedPassage


def _policy(**weights) -> AnswerPolicy:
    names = list(weights)
    return AnswerPolicy(weights=weights, bias=0.0, mean=dict.fromkeys(names, 0.0), scale=dict.fromkeys(names, 1.0),
                        threshold=0.5)


def _candidate(text, p, rank=0, lang="en", dense=0.5) -> Candidate:
    passage = RetrievedPassage(text=f"In 2023, {text} said so.", source="a.txt", title="t", start=0, end=30, lang=lang,
                               dense_score=dense, rank=rank, dense_rank=rank, bm25_rank=rank + 1)
    return Candidate(text=text, start=9, end=9 + len(text), passage=passage, reader_probability=p)


def test_probability_is_a_sigmoid_of_the_standardised_features():
    policy = AnswerPolicy(weights={"closeness": 2.0}, bias=-1.0, mean={"closeness": 0.8}, scale={"closeness": 0.1},
                          threshold=0.5)
    assert policy.probability({"closeness": 0.8}) == pytest.approx(1 / (1 + math.e))
    assert policy.probability({"closeness": 0.9}) == pytest.approx(0.5 + 0.5 * math.tanh(0.5))
    assert policy.probability({"closeness": 1e9}) == pytest.approx(1.0)  # clipped, no overflow


def test_judge_ranks_by_probability_and_the_threshold_decides():
    policy = _policy(log_reader_probability=1.0)
    low, high = _candidate("Elon Musk", 0.1), _candidate("Sam Altman", 0.9)
    for c in (low, high):
        c.features = {"log_reader_probability": math.log(c.reader_probability)}
    ranked = policy.judge([low, high])
    assert ranked == [high, low] and ranked[0].confidence > ranked[1].confidence
    assert policy.answers(high) == (high.confidence >= 0.5) and not policy.answers(None)


def test_features_of_candidates():
    first, second = _candidate("Sam Altman", 0.6, rank=0), _candidate("OpenAI", 0.2, rank=2, lang="ru")
    for c, close in ((first, 0.9), (second, 0.7)):
        candidate_features([c], [close], "Who is the CEO of OpenAI?", passage_features(c.passage, "Who is the CEO of OpenAI?", "en",
                                                                                              best_closeness=0.95))
    assert set(first.features) == set(FEATURES)
    assert first.features["log_reader_probability"] == pytest.approx(math.log(0.6))
    assert second.features["passage_rank"] == pytest.approx(math.log(3))
    assert second.features["best_retriever_rank"] == pytest.approx(math.log(3))  # min(dense 2, bm25 3)
    assert first.features["closeness"] == 0.9 and second.features["closeness_gap"] == pytest.approx(-0.25)
    assert first.features["same_language"] == 1.0 and second.features["same_language"] == 0.0
    assert first.features["type_fit"] == 1.0 and second.features["type_fit"] == 1.0  # both capitalised names
    assert first.features["question_words_near"] == 0.0  # "In 2023, ... said so." names nothing the question asks


def test_no_candidate_of_a_passage_is_judged_likelier_than_the_passages_bound():
    """What lets Chatbot.read leave a passage unread: the bound, known before reading, holds for every span."""
    rng = np.random.default_rng(0)
    words = ["In", "2023", "Sam", "Altman", "said", "the", "CEO", "of", "OpenAI", "paid", "$6", "billion", ".", "(",
             ")", "ceo_pay", "it", "six", "so,"]
    for _ in range(200):
        weights = {name: float(rng.normal(0, 2)) for name in FEATURES}
        policy = AnswerPolicy(weights=weights, bias=float(rng.normal()), mean={n: float(rng.normal()) for n in FEATURES},
                              scale={n: float(rng.uniform(0.1, 2)) for n in FEATURES}, threshold=0.5)
        text = " ".join(rng.choice(words, size=int(rng.integers(1, 16))))
        passage = RetrievedPassage(text=text, source="a.txt", title="t", start=0, end=len(text), rank=int(rng.integers(5)),
                                   lang=str(rng.choice(["en", "ru"])), dense_score=float(rng.uniform()),
                                   dense_rank=int(rng.integers(5)), bm25_rank=int(rng.integers(5)))
        closest, best = sorted(rng.uniform(-1, 1, size=2))
        question = str(rng.choice(["Who paid?", "How much did Altman pay?", "When did the CEO say so?", "What is it?"]))
        shared = passage_features(passage, question, "en", best_closeness=best)
        bound = policy.bound(feature_ranges(shared, closest))
        for _ in range(5):  # whole-word spans, as the reader gives them
            a, e = whole_words(text, *sorted(int(i) for i in rng.integers(0, len(text), size=2)))
            if text[a:e].strip():
                a, e = balanced(text, a, e)
                c = Candidate(text=text[a:e], start=a, end=e, passage=passage, reader_probability=float(rng.uniform(1e-6, 1)))
                candidate_features([c], [float(rng.uniform(-1, closest))], question, shared)
                assert policy.probability(c.features) <= bound + 1e-12
    # What the passage holds bounds the span's features: none of the question's words, no number for "how much".
    passage = RetrievedPassage(text="Sam Altman said so.", source="a.txt", title="t", start=0, end=19, lang="en")
    shared = passage_features(passage, "How much did OpenAI pay?", "en", best_closeness=0.5)
    assert feature_ranges(shared, 0.5)["question_words_near"] == (0.0, 0.0)  # pay, openai: not in it ("much": a stop word)
    assert feature_ranges(shared, 0.5)["type_fit"] == (0.0, 0.0)
    shared = passage_features(passage, "Who said so?", "en", best_closeness=0.5)
    assert feature_ranges(shared, 0.5)["type_fit"] == (0.0, 1.0) and feature_ranges(shared, 0.5)["question_words_near"][1] > 0
    # A feature whose weight pushes it to an unbounded end (a higher probability for a less likely span): no bound.
    assert _policy(log_reader_probability=-1.0).bound(feature_ranges(shared, 0.5)) == 1.0
    # The bound is reached by a span at the ends of the ranges.
    policy = _policy(log_reader_probability=1.0, closeness=2.0)
    assert policy.bound(feature_ranges(shared, 0.5)) == pytest.approx(policy.probability({"log_reader_probability": 0.0,
                                                                                          "closeness": 0.5}))


def test_question_words_near_favours_the_span_beside_what_the_question_names():
    text = "Tomas Brekke designed the library in 1968; the reading room was painted by Anna Holm."
    passage = RetrievedPassage(text=text, source="a.txt", title="t", start=0, end=len(text), lang="en", rank=0)
    designer, painter = (Candidate(text=span, start=text.index(span), end=text.index(span) + len(span),
                                   passage=passage, reader_probability=0.5) for span in ("Tomas Brekke", "Anna Holm"))
    candidate_features([designer, painter], [0.9, 0.9], "Who designed the library?",
                       passage_features(passage, "Who designed the library?", "en", 0.9))
    assert designer.features["question_words_near"] == 1.0  # design, librari: both within 3 words
    assert painter.features["question_words_near"] == 0.0
    russian = RetrievedPassage(text="Билет для школьников стоит 100 рублей, для взрослых 300 рублей.", source="b.txt",
                               title="t", start=0, end=62, lang="ru", rank=0)
    pupils, adults = (Candidate(text=span, start=russian.text.index(span), end=russian.text.index(span) + len(span),
                                passage=russian, reader_probability=0.5) for span in ("100 рублей", "300 рублей"))
    candidate_features([pupils, adults], [0.9, 0.9], "Сколько стоит билет для школьников?",
                       passage_features(russian, "Сколько стоит билет для школьников?", "ru", 0.9))
    assert pupils.features["question_words_near"] > adults.features["question_words_near"]


@pytest.mark.parametrize(("question", "expected"), [
    ("How much did xAI raise?", "amount"),
    ("And when was it published?", "date"),
    ("Who is the CEO of X?", "name"),
    ("Сколько денег собрал Маск?", "amount"),
    ("Кто генеральный директор X?", "name"),
    ("What is Grok?", None),
    ("Who paid how much?", "name"),
])
def test_expected_answer_type_comes_from_the_first_question_word(question, expected):
    assert expected_answer_type(question) == expected


def test_type_fit():
    assert fits_type("amount", "$30 billion") and fits_type("amount", "12 миллиардов долларов")
    assert fits_type("date", "May 26, 2024") and fits_type("name", "Anthony Burr") and fits_type("name", "Элон Маск")
    assert fits_type(None, "anything")
    assert not fits_type("amount", "Microsoft") and not fits_type("name", "the platform")


def test_policy_file_round_trip_and_bad_files(tmp_path):
    policy = _policy(closeness=1.5, type_fit=0.5)
    policy.save(tmp_path / POLICY_FILE)
    assert AnswerPolicy.load(tmp_path / POLICY_FILE) == policy
    (tmp_path / "broken.json").write_text("{not json")
    with pytest.raises(ModelLoadError, match="fit-policy"):
        AnswerPolicy.load(tmp_path / "broken.json")
    data = json.loads((tmp_path / POLICY_FILE).read_text())
    data["weights"]["shoe_size"] = 1.0
    data["mean"]["shoe_size"] = data["scale"]["shoe_size"] = 1.0
    (tmp_path / "unknown.json").write_text(json.dumps(data))
    with pytest.raises(ModelLoadError, match="shoe_size"):
        AnswerPolicy.load(tmp_path / "unknown.json")


def test_the_shipped_policy_names_its_data_and_threshold():
    policy = AnswerPolicy.load(SHIPPED_READER_DIR / POLICY_FILE)
    assert set(policy.weights) == set(FEATURES) and 0 < policy.threshold < 1
    assert "gate" in policy.provenance["data"] and policy.provenance["fitted_on"]["tydi"] > 0


def test_fit_logistic_recovers_a_known_model():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4000, 2))
    y = (rng.random(4000) < 1 / (1 + np.exp(-(2.0 * x[:, 0] - 1.0 * x[:, 1] + 0.5)))).astype(float)
    w, b = fit_logistic(x, y, l2=1e-3)
    assert w == pytest.approx([2.0, -1.0], abs=0.2) and b == pytest.approx(0.5, abs=0.15)


def _rows(n_questions: int, rng) -> list[dict]:
    """Two candidates a question; the right one has the higher reader probability in 80 % of questions."""
    rows = []
    for q in range(n_questions):
        good_first = rng.random() < 0.8
        for right in (True, False):
            p = 0.7 if right == good_first else 0.3
            features = dict.fromkeys(FEATURES, 0.0) | {"log_reader_probability": math.log(p)}
            rows.append({"question_id": f"q{q}", "set": "t", "lang": "en", "answerable": True, "features": features,
                         "right": right})
    return rows


def test_a_fitted_policy_picks_and_calibrates():
    rows = _rows(400, np.random.default_rng(1))
    policy = policy_from(rows, l2=1.0)
    picks = chosen(policy, rows)
    assert len(picks) == 400 and sum(p["right"] for p in picks) / 400 == pytest.approx(0.8, abs=0.05)
    assert calibration(picks, threshold=0.0)["ece"] < 0.1


def test_threshold_for_a_stated_precision():
    picks = [{"p": p, "right": r, "answerable": True} for p, r in
             [(0.9, True), (0.8, True), (0.7, False), (0.6, True), (0.5, False), (0.4, False)]]
    assert threshold_for(picks, 0.75) == 0.6  # 3 right of the 4 at or over 0.6
    assert threshold_for(picks, 1.0) == 0.8
    figures = calibration(picks, 0.6)
    assert figures["answered"] == 4 and figures["precision"] == 75.0


def test_threshold_abstains_on_the_stated_share_of_questions_without_an_answer():
    picks = [{"p": p, "right": r, "answerable": a} for p, r, a in
             [(0.9, True, True), (0.8, True, True), (0.7, False, False), (0.6, True, True), (0.5, False, False),
              (0.3, False, False), (0.2, False, False)]]
    assert threshold_for(picks, 0.75) == 0.6  # precision alone: 0.7 answered, 3 of the 4 unanswerable abstained
    assert threshold_for(picks, 0.75, abstention=1.0) == 0.7001  # all 4 under it
    assert calibration(picks, 0.7001)["abstained_on_unanswerable"] == 100.0
    assert threshold_for(picks, 0.75, abstention=0.5) == 0.6  # already met by the precision threshold




def test_a_policy_can_be_fitted_and_scored_out_of_fold_on_other_features():
    rows = _rows(200, np.random.default_rng(2))
    for r in rows:
        r["features"]["extra"] = float(r["right"])  # a figure that gives the answer away
    policy = policy_from(rows, l2=1.0, features=("extra",))
    assert list(policy.weights) == ["extra"] and policy.weights["extra"] > 0
    picks = out_of_fold(rows, l2=1.0, features=("extra",))
    assert len(picks) == 200 and all(p["right"] for p in picks)
    assert sum(p["right"] for p in out_of_fold(rows, l2=1.0)) < 190  # the policy's own features do not
