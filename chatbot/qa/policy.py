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
from ..types import Candidate, RetrievedPassage

POLICY_FILE = "answer_policy.json"

FEATURES = (
    "log_reader_probability",  # log of the reader's p_start * p_end in its window
    "passage_rank",  # log(1 + place of its passage in the fused retrieval order)
    "best_retriever_rank",  # log(1 + best place of its passage by dense or by BM25 score alone)
    "dense_score",  # cosine of its passage with the query (the embedder's)
    "closeness",  # cosine of its sentence with the question (the multilingual sentence encoder's)
    "closeness_gap",  # that cosine minus the closest sentence's in the retrieved passages (0 for the closest)
    "same_language",  # 1 when its passage is in the question's language
    "type_fit",  # 1 when it looks like what the question asks for (an amount, a date, a name) or nothing is asked
    "question_words_near",  # share of the question's terms among the NEAR_WORDS words either side of it
)
# The features a candidate takes from its passage (:func:`passage_features`).
PASSAGE_FEATURES = ("passage_rank", "best_retriever_rank", "dense_score", "same_language")
# Every feature but those of the span itself is known before its passage is read, and those lie in ranges the passage
# sets (:func:`feature_ranges`). That is what lets ``Chatbot.read`` skip a passage none of whose spans could beat the
# answer found (:meth:`AnswerPolicy.bound`): no feature compares a candidate with the other candidates.

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

    def bound(self, ranges: dict[str, tuple[float, float]]) -> float:
        """The highest probability a candidate whose features lie in ``ranges`` (``(low, high)`` by name) can
        get: each weighted feature at the end of its range that raises it; 1.0 when that end is infinite."""
        extreme = {name: ranges[name][1] if w > 0 else ranges[name][0] for name, w in self.weights.items()}
        return 1.0 if any(math.isinf(x) for x in extreme.values()) else self.probability(extreme)

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


def could_fit_type(expected: str | None, text: str) -> bool:
    """Whether some whole-word span of ``text`` could fit the expected type (:func:`fits_type`): an amount or a
    date needs a match of its pattern in the text (the patterns' word boundaries are those of the text at a
    whole-word span's ends); a name, a capital letter anywhere."""
    if expected == "name":
        return bool(re.search(r"[A-ZА-ЯЁ]", text))
    return fits_type(expected, text)


def question_words_near(question_terms: set[str], candidate: Candidate) -> float:
    """The share of ``question_terms`` (BM25 terms: stemmed, stop words dropped) among the :data:`NEAR_WORDS`
    words either side of the candidate in its passage: a span beside what the question names ("Tomas Brekke designed
    the library" for "Who designed the library?") rather than elsewhere in the passage. It cannot tell apart two
    clauses that stand side by side: both are near the question's words."""
    text = candidate.passage.text
    near = _WORD.findall(text[: candidate.start])[-NEAR_WORDS:] + _WORD.findall(text[candidate.end :])[:NEAR_WORDS]
    return len(question_terms & set(tokenize(" ".join(near)))) / max(1, len(question_terms))


def passage_features(passage: RetrievedPassage, question: str, language: str, best_closeness: float) -> dict[str, float]:
    """The features every candidate of ``passage`` shares (``best_closeness``: the cosine of the retrieved
    passages' sentence closest to the question), and what bounds the others before it is read: the share of the
    question's terms anywhere in it (``question_words_near`` can be no higher: the words beside a span are whole
    words of the passage, ``whole_words``) and whether any span of it could fit the expected answer type."""
    question_terms = set(tokenize(question))
    return {
        "passage_rank": math.log1p(passage.rank),
        "best_retriever_rank": math.log1p(min(passage.dense_rank, passage.bm25_rank)),
        "dense_score": passage.dense_score,
        "same_language": float(passage.lang == language),
        "best_closeness": best_closeness,
        "question_words_in_passage": len(question_terms & set(tokenize(passage.text))) / max(1, len(question_terms)),
        "type_fit_possible": float(could_fit_type(expected_answer_type(question), passage.text)),
    }


def feature_ranges(shared: dict[str, float], closest: float) -> dict[str, tuple[float, float]]:
    """Where the features of any candidate of a passage lie before it is read: ``shared`` as
    :func:`passage_features` gives them, ``closest`` the cosine of its sentence closest to the question."""
    ranges = {name: (shared[name], shared[name]) for name in PASSAGE_FEATURES}
    ranges["closeness"] = (-1.0, closest)
    ranges["closeness_gap"] = (-1.0 - shared["best_closeness"], closest - shared["best_closeness"])
    ranges["log_reader_probability"] = (-math.inf, 0.0)
    ranges["type_fit"] = (0.0, shared["type_fit_possible"])
    ranges["question_words_near"] = (0.0, shared["question_words_in_passage"])
    return ranges


def candidate_features(candidates: list[Candidate], closeness: list[float], question: str,
                       shared: dict[str, float]) -> None:
    """Set the :data:`FEATURES` of each candidate of one passage (``closeness``: its sentence's cosine with the
    question; ``shared``: :func:`passage_features`)."""
    question_terms = set(tokenize(question))
    expected = expected_answer_type(question)
    for c, close in zip(candidates, closeness):
        c.features = {
            **{name: shared[name] for name in PASSAGE_FEATURES},
            "log_reader_probability": math.log(max(c.reader_probability, 1e-9)),
            "closeness": close,
            "closeness_gap": close - shared["best_closeness"],
            "type_fit": float(fits_type(expected, c.text)),
            "question_words_near": question_words_near(question_terms, c),
        }
