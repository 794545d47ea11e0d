"""evals/policy_ablation.py: the figures a richer policy could weigh, computed from a question's candidates."""

import importlib.util
import math
from pathlib import Path

import pytest

from chatbot.qa.policy import FEATURES

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("policy_ablation", ROOT / "evals" / "policy_ablation.py")
policy_ablation = importlib.util.module_from_spec(spec)
spec.loader.exec_module(policy_ablation)


def _row(question: str, text: str, probability: float, passage_rank: int) -> dict:
    features = dict.fromkeys(FEATURES, 0.0) | {"log_reader_probability": math.log(probability),
                                               "passage_rank": math.log1p(passage_rank)}
    return {"question_id": question, "set": "t", "lang": "en", "answerable": True, "text": text,
            "features": features, "right": False}


def test_extra_features_pool_a_questions_candidates_by_text_and_by_passage():
    rows = [_row("q", "Memphis", 0.4, 0), _row("q", "memphis.", 0.2, 1), _row("q", "Paris", 0.1, 0),
            _row("other", "Memphis", 0.3, 0), {"question_id": "q", "text": None, "features": {}}]
    policy_ablation.add_extra_features(rows)
    memphis, memphis_again, paris, other = (r["features"] for r in rows[:4])
    assert memphis["support"] == memphis_again["support"] == pytest.approx(math.log(0.6))  # same words, either passage
    assert paris["support"] == pytest.approx(math.log(0.1))
    assert memphis["share"] == pytest.approx(math.log(0.6 / 0.7))
    assert paris["passage_best"] == pytest.approx(math.log(0.4)) and memphis_again["passage_best"] == pytest.approx(math.log(0.2))
    assert paris["passage_margin"] == pytest.approx(math.log(0.1 / 0.4)) and memphis["passage_margin"] == 0.0
    assert paris["passage_mass"] == pytest.approx(math.log(0.5))
    assert other["support"] == pytest.approx(math.log(0.3))  # another question's candidates do not count
    assert rows[4]["features"] == {}


def test_variants_are_the_policy_each_feature_left_out_and_figures_added():
    variants = dict(policy_ablation.variants())
    assert variants["the policy"] == FEATURES
    assert variants["the policy without closeness"] == tuple(f for f in FEATURES if f != "closeness")
    assert variants["the policy + support"] == FEATURES + ("support",)
    assert len(variants) == 1 + len(FEATURES) + len(policy_ablation.ADDED) - 1
