"""The answer policy: the probability that a candidate answer is right, and when to abstain.

One small model decides every answer (Haystack's reader has one calibration and one threshold; so do
we): a logistic regression over a few figures of each candidate (:data:`FEATURES`, computed by
:func:`candidate_features`) gives P(right), the confidence shown everywhere (web, CLI, JSON ``score``,
HTTP). The answer is the candidate with the highest probability; the bot abstains when that
probability is under ``threshold``, chosen on the fitting questions for a stated precision.

The coefficients belong to the reader whose probabilities they weigh, so they live beside its weights
(``answer_policy.json``), with the data they were fitted on and where the threshold was chosen.
``chatbot fit-policy`` (chatbot.policy_fit) writes that file; the gate set is never used.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ModelLoadError
from ..index.search import tokenize
from ..types import Candidate

POLICY_FILE = "answer_policy.json"

FEATURES = (
    "log_reader_probability",  # log of the reader's p_start * p_end in its window
    "reader_margin",  # that log probability minus the best candidate's (0 for the reader's best)
    "candidate_rank",  # log(1 + place among the candidates by reader probability)
    "passage_rank",  # log(1 + place of its passage in the fused retrieval order)
    "best_retriever_rank",  # log(1 + best place of its passage by dense or by BM25 score alone)
    "dense_score",  # cosine of its passage with the query (the embedder's)
    "closeness",  # cosine of its sentence with the question (the multilingual sentence encoder's)
    "closeness_gap",  # that cosine minus the best candidate sentence's (0 for the closest)
    "same_language",  # 1 when its passage is in the question's language
    "type_fit",  # 1 when it looks like what the question asks for (an amount, a date, a name) or nothing is asked
    "answer_words",  # log(1 + its number of words)
    "question_words_near",  # share of the question's terms among the NEAR_WORDS words either side of it
)

# How many words either side of a candidate ``question_words_near`` looks at: 3, of 3, 6 and 12 compared out of fold
# on the policy's fitting questions (evals/README.md, "What the answer policy could gain").
NEAR_WORDS = 3


@dataclass(frozen=True)
class AnswerPolicy:
    """Logistic regression over standardised :data:`FEATURES`: ``P = sigmoid(bias + sum w * (x - mean) / scale)``."""

    weights: dict[str, float]
    bias: float
    mean: dict[str, float]
    scale: dict[str, float]
    threshold: float
    provenance: dict = field(default_factory=dict)  # what it was fitted on and how the threshold was chosen

    def probability(self, features: dict[str, float]) -> float:
        z = self.bias + sum(w * (features[name] - self.mean[name]) / self.scale[name]
                            for name, w in self.weights.items())
        return 1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, z))))

    def judge(self, candidates: list[Candidate]) -> list[Candidate]:
        """``candidates`` with their confidence set, most likely right first."""
        for c in candidates:
            c.confidence = self.probability(c.features)
        return sorted(candidates, key=lambda c: -c.confidence)

    def answers(self, best: Candidate | None) -> bool:
        return best is not None and best.confidence >= self.threshold

    @classmethod
    def load(cls, path: str | Path) -> AnswerPolicy:
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            policy = cls(weights={k: float(v) for k, v in data["weights"].items()}, bias=float(data["bias"]),
                         mean={k: float(v) for k, v in data["mean"].items()},
                         scale={k: float(v) for k, v in data["scale"].items()},
                         threshold=float(data["threshold"]), provenance=data.get("provenance", {}))
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ModelLoadError(f"The answer policy {path} cannot be read ({exc}): reinstall the package (pip install .) "
                                 "or write one with `chatbot fit-policy --reader DIR`.") from exc
        unknown = set(policy.weights) - set(FEATURES)
        missing = set(policy.weights) - set(policy.mean) | set(policy.weights) - set(policy.scale)
        if unknown or missing:
            raise ModelLoadError(f"The answer policy {path} names features this version does not compute "
                                 f"({', '.join(sorted(unknown | missing))}): refit it with `chatbot fit-policy`.")
        return policy

    def save(self, path: str | Path) -> None:
        data = {"features": list(self.weights), "weights": self.weights, "bias": self.bias, "mean": self.mean,
                "scale": self.scale, "threshold": self.threshold, "provenance": self.provenance}
        Path(path).write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def policy_for(reader_dir: str | Path, shipped: Path) -> tuple[AnswerPolicy, Path]:
    """The policy beside the reader's weights, else the shipped one (fitted on the shipped reader's
    probabilities: ``chatbot fit-policy --reader DIR`` fits one for another reader)."""
    own = Path(reader_dir) / POLICY_FILE
    path = own if own.is_file() else shipped / POLICY_FILE
    return AnswerPolicy.load(path), path


# ---------------------------------------------------------------- features

# The earliest question word decides what kind of span is expected.
_QUESTION_TYPES = (
    ("amount", re.compile(r"\b(how (much|many|big|large)|what (amount|percentage|sum|valuation)|сколько)\b", re.I)),
    ("date", re.compile(r"\b(when|what (year|date|month|day)|which (year|date)|когда|в каком году)\b", re.I)),
    ("name", re.compile(r"\b(who|whom|whose|кто|кого|кому|чей|чья)\b", re.I)),
)
_NUMBER = re.compile(r"\d|\b(one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|twenty|hundred|thousand|"
                     r"million|billion|trillion|дв\w+|тр[еёи]\w*|пят\w+|десят\w*|сто|миллион\w*|миллиард\w*|тысяч\w*)\b",
                     re.I)
MONTHS = (r"january|february|march|april|may|june|july|august|september|october|november|december|"
          r"январ\w*|феврал\w*|март\w*|апрел\w*|ма[йя]|июн\w*|июл\w*|август\w*|сентябр\w*|октябр\w*|ноябр\w*|декабр\w*")
_DATE = re.compile(r"\d|\b(" + MONTHS + r"|monday|tuesday|wednesday|thursday|friday|saturday|sunday|yesterday|today|year)\b",
                   re.I)
_NAME = re.compile(r"(?:^|[\s(\"«])[A-ZА-ЯЁ]")


def expected_answer_type(question: str) -> str | None:
    """'amount', 'date', 'name' or None, from the earliest question word found."""
    found = [(m.start(), kind) for kind, pattern in _QUESTION_TYPES if (m := pattern.search(question))]
    return min(found)[1] if found else None


def fits_type(expected: str | None, span_text: str) -> bool:
    """Whether the span looks like the expected kind of answer (always, when none is expected)."""
    pattern = {"amount": _NUMBER, "date": _DATE, "name": _NAME}.get(expected)
    return pattern is None or bool(pattern.search(span_text))


_WORD = re.compile(r"\w+")


def question_words_near(question_terms: set[str], candidate: Candidate) -> float:
    """The share of ``question_terms`` (BM25 terms: stemmed, stop words dropped) among the :data:`NEAR_WORDS`
    words either side of the candidate in its passage: a span beside what the question names ("Tomas Brekke designed
    the library" for "Who designed the library?") rather than elsewhere in the passage. It cannot tell apart two
    clauses that stand side by side: both are near the question's words."""
    text = candidate.passage.text
    near = _WORD.findall(text[: candidate.start])[-NEAR_WORDS:] + _WORD.findall(text[candidate.end :])[:NEAR_WORDS]
    return len(question_terms & set(tokenize(" ".join(near)))) / max(1, len(question_terms))


def candidate_features(candidates: list[Candidate], closeness: list[float], question: str,
                       language: str) -> None:
    """Set each candidate's :data:`FEATURES` (``closeness``: its sentence's cosine with the question)."""
    if not candidates:
        return
    question_terms = set(tokenize(question))
    logs = [math.log(max(c.reader_probability, 1e-9)) for c in candidates]
    by_reader = sorted(range(len(candidates)), key=lambda i: -logs[i])
    place = {i: n for n, i in enumerate(by_reader)}
    best_log, best_close = max(logs), max(closeness)
    expected = expected_answer_type(question)
    for i, (c, log_p, close) in enumerate(zip(candidates, logs, closeness)):
        p = c.passage
        c.features = {
            "log_reader_probability": log_p,
            "reader_margin": log_p - best_log,
            "candidate_rank": math.log1p(place[i]),
            "passage_rank": math.log1p(p.rank),
            "best_retriever_rank": math.log1p(min(p.dense_rank, p.bm25_rank)),
            "dense_score": p.dense_score,
            "closeness": close,
            "closeness_gap": close - best_close,
            "same_language": float(p.lang == language),
            "type_fit": float(fits_type(expected, c.text)),
            "answer_words": math.log1p(len(c.text.split())),
            "question_words_near": question_words_near(question_terms, c),
        }
