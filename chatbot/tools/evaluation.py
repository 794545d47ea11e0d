"""Evaluation: the question set (loading, validation), SQuAD-style scoring, and the `chatbot eval` runner with its report and gate."""

from __future__ import annotations

import collections
import json
import os
import re
import string
import sys
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..config import Settings

LANGS = ("en", "ru")
KINDS = ("single", "followup", "unanswerable")

_FOLD = str.maketrans({"’": "'", "‘": "'", "“": '"', "”": '"', "«": '"', "»": '"',
                       "–": "-", "—": "-", "−": "-"})
_ARTICLES = re.compile(r"\b(a|an|the)\b")


def _is_punct(ch: str) -> bool:
    return ch in string.punctuation or unicodedata.category(ch).startswith("P")


def normalize_answer(s: str) -> str:
    """SQuAD v1.1 normalisation, Unicode-aware, after folding typographic quotes and dashes."""
    s = s.translate(_FOLD).lower()
    s = "".join(ch for ch in s if not _is_punct(ch))
    s = _ARTICLES.sub(" ", s)
    return " ".join(s.split())


def exact_match(pred: str, golds: list[str]) -> float:
    """1.0 if the normalised prediction equals any normalised gold; with no golds, 1.0 iff pred is empty."""
    p = normalize_answer(pred)
    if not golds:
        return float(not p)
    return float(any(p == normalize_answer(g) for g in golds))


def _f1(pred: str, gold: str) -> float:
    p, g = normalize_answer(pred).split(), normalize_answer(gold).split()
    common = collections.Counter(p) & collections.Counter(g)
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision, recall = same / len(p), same / len(g)
    return 2 * precision * recall / (precision + recall)


def f1_score(pred: str, golds: list[str]) -> float:
    """Token F1, the maximum over golds; with no golds, 1.0 iff pred is empty."""
    if not golds:
        return float(not normalize_answer(pred))
    return max(_f1(pred, g) for g in golds)


def load_questions(path: str | Path) -> list[dict]:
    """Read a JSONL question file; raises ValueError naming the first bad line."""
    rows = []
    for n, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}:{n}: invalid JSON: {e}") from e
        if not isinstance(row, dict):
            raise ValueError(f"{path}:{n}: not a JSON object")
        rows.append(row)
    return rows


def row_kind(row: dict) -> str:
    """'unanswerable' (even as a follow-up), 'followup' (has history) or 'single'."""
    if not row.get("answerable", True):
        return "unanswerable"
    return "followup" if row.get("history") else "single"


def _as_list(x) -> list:
    return x if isinstance(x, list) else [x]


def _loose(s: str) -> str:
    """Normalise with punctuation read as a word break ("Abu Dhabi-backed" holds "Abu Dhabi")."""
    return normalize_answer("".join(" " if _is_punct(ch) else ch for ch in s.translate(_FOLD)))


def _contains(text: str, answer: str) -> bool:
    return f" {_loose(answer)} " in f" {_loose(text)} "


def _check_types(row: dict) -> list[str]:
    problems = []
    for key, types in (("id", str), ("question", str), ("answers", list), ("answerable", bool),
                       ("lang", str), ("source", (str, list, type(None))),
                       ("evidence", (str, list, type(None)))):
        if key not in row:
            problems.append(f"missing key {key!r}")
        elif not isinstance(row[key], types):
            problems.append(f"{key!r} has type {type(row[key]).__name__}")
    if problems:
        return problems
    if not row["question"].strip():
        problems.append("empty question")
    if not all(isinstance(a, str) and a.strip() for a in row["answers"]):
        problems.append("answers must be non-empty strings")
    if row["lang"] not in LANGS:
        problems.append(f"lang {row['lang']!r} not in {LANGS}")
    if "history" in row and not (isinstance(row["history"], list)
                                 and all(isinstance(h, str) for h in row["history"])):
        problems.append("history must be a list of strings")
    if "standalone" in row and not isinstance(row["standalone"], str):
        problems.append("standalone must be a string")
    return problems


def _check_grounding(row: dict, corpus_dir: Path, texts: dict[str, str]) -> tuple[list[str], list[str]]:
    """``(errors, warnings)`` of an answerable row: a missing or unknown source is an error; an answer or
    evidence not found verbatim (the schema's "verbatim where possible") only a warning."""
    answers = row["answers"]
    if not answers:
        return ["answerable row without answers"], []
    sources, evidences = _as_list(row["source"]), _as_list(row["evidence"])
    if row["source"] is None or row["evidence"] is None or not sources:
        return ["answerable row needs source and evidence"], []
    if len(sources) != len(evidences):
        return [f"{len(sources)} sources but {len(evidences)} evidences"], []
    errors, warnings = [], []
    for src, ev in zip(sources, evidences):
        if not (isinstance(src, str) and isinstance(ev, str)):
            errors.append("source and evidence items must be strings")
            continue
        if src not in texts:
            path = corpus_dir / src
            if Path(src).name != src or not path.is_file():
                errors.append(f"source {src!r} not in {corpus_dir}")
                continue
            texts[src] = path.read_text(encoding="utf-8")
        if ev not in texts[src]:
            warnings.append(f"evidence not verbatim in {src}: {ev[:60]!r}")
        if not any(_contains(ev, a) for a in answers):
            warnings.append(f"no answer in evidence: {ev[:60]!r}")
    found = [s for s in sources if isinstance(s, str) and s in texts]
    haystacks = [e for e in evidences if isinstance(e, str)] + [texts[s] for s in found]
    for a in answers:
        if not any(_contains(t, a) for t in haystacks):
            warnings.append(f"answer {a!r} not in evidence or source")
    if found and not any(a in texts[s] for a in answers for s in found):
        warnings.append("no answer verbatim in the source text")
    return errors, warnings


@dataclass
class Validation:
    """What validating a question set found, as 'id: message' strings.

    ``errors`` (schema and types: missing keys, wrong types, duplicate ids, an unknown source file) make the
    set unusable; ``warnings`` (grounding: an answer or evidence not found verbatim in the source) do not.
    """

    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when there is no error (warnings allowed)."""
        return not self.errors

    @property
    def clean(self) -> bool:
        """True when there is neither an error nor a warning."""
        return not self.errors and not self.warnings


def validate_questions(rows: list[dict], corpus_dir: str | Path) -> Validation:
    """Errors and warnings of a question set (see :class:`Validation`)."""
    corpus_dir = Path(corpus_dir)
    texts: dict[str, str] = {}
    result, seen = Validation(), set()
    for i, row in enumerate(rows):
        rid = str(row.get("id", f"#{i}")) if isinstance(row, dict) else f"#{i}"
        if not isinstance(row, dict):
            result.errors.append(f"{rid}: not an object")
            continue
        if rid in seen:
            result.errors.append(f"{rid}: duplicate id")
        seen.add(rid)
        errors, warnings = _check_types(row), []
        if not errors:
            if row["answerable"]:
                errors, warnings = _check_grounding(row, corpus_dir, texts)
            elif row["answers"] or row["source"] is not None or row["evidence"] is not None:
                errors = ["unanswerable row must have answers [], source null, evidence null"]
        result.errors.extend(f"{rid}: {p}" for p in errors)
        result.warnings.extend(f"{rid}: {p}" for p in warnings)
    return result


# ---------------------------------------------------------------------------
# Scoring a run: per-row outcomes, grouped metrics, the report and its gate.

METRICS = ("em", "f1", "recall@1", "recall@5", "mrr", "citation_accuracy",
           "abstention_precision", "abstention_recall", "latency_p50_ms", "latency_p95_ms",
           "ece", "right_at_0.8", "n_at_0.8", "reliability")
GATED = ("f1", "recall@5", "citation_accuracy", "abstention_recall", "ece")
LOWER_IS_BETTER = ("ece",)  # gated as maximums; every other metric as a minimum
RIGHT_F1 = 0.5       # an answer is right when answerable and its token F1 reaches this
CONFIDENT = 0.8      # right_at_0.8: answers scored at least this
BINS = 10            # equal-width confidence bins over [0, 1] for ece and reliability


def _squash(s: str) -> str:
    return " ".join(s.split())


def holds_evidence(text: str, evidence) -> bool:
    """True if ``text`` contains the evidence (any item of a list), whitespace normalised."""
    return any(_squash(e) in _squash(text) for e in _as_list(evidence) if e)


def first_relevant_rank(texts: list[str], evidence) -> int | None:
    """1-based rank of the first text holding the evidence, or None."""
    return next((i for i, t in enumerate(texts, 1) if holds_evidence(t, evidence)), None)


def score_row(row: dict, pred: dict | None, retrieved: list[str] | None) -> dict:
    """One row's outcome; a figure the row does not count towards is None.

    ``pred`` is a prediction (``answer``, ``citations``, ``latency_ms``, ``score``) or None
    (retriever-only run); ``retrieved`` the texts of the passages retrieved for it.
    ``score`` is the prediction's confidence (None when it has none); ``right`` whether the
    answer is right (answerable and F1 >= ``RIGHT_F1``; any answer to an unanswerable row is
    wrong), None when the bot abstained.
    """
    answerable = bool(row["answerable"])
    out = {"id": row["id"], "lang": row["lang"], "kind": row_kind(row), "answerable": answerable,
           "rank": None, "em": None, "f1": None, "cited": None, "abstained": None, "latency_ms": None,
           "score": None, "right": None}
    if answerable and retrieved is not None:
        out["rank"] = first_relevant_rank(retrieved, row["evidence"]) or 0
    if pred is None:
        return out
    answer, citations = pred["answer"], pred["citations"]
    out["abstained"] = answer is None
    out["latency_ms"] = pred["latency_ms"]
    out["score"] = pred.get("score")
    if answer is not None:
        out["right"] = answerable and f1_score(answer, row["answers"]) >= RIGHT_F1
    if answerable:
        out["em"] = exact_match(answer or "", row["answers"])
        out["f1"] = f1_score(answer or "", row["answers"])
        out["cited"] = bool(citations) and citations[0]["source"] in _as_list(row["source"]) and any(
            holds_evidence(c["text"], row["evidence"]) for c in citations[:3])
    return out


def _pct(num: float, den: int) -> float | None:
    return None if den == 0 else round(100 * num / den, 1)


def _mean_pct(values: list) -> float | None:
    values = [v for v in values if v is not None]
    return _pct(sum(values), len(values))


def _percentile(values: list[float], q: float) -> float | None:
    """Linear-interpolated percentile (numpy's default), in ms, one decimal."""
    values = sorted(v for v in values if v is not None)
    if not values:
        return None
    pos = (len(values) - 1) * q / 100
    lo = int(pos)
    hi = min(lo + 1, len(values) - 1)
    return round(values[lo] + (values[hi] - values[lo]) * (pos - lo), 1)


def _bin_label(b: int) -> str:
    return f"{b / BINS:.1f}-{(b + 1) / BINS:.1f}"


def calibration(scored: list[dict]) -> dict:
    """``ece``, ``right_at_0.8``, ``n_at_0.8`` and ``reliability`` over the rows the bot answered (with a score).

    ``ece``: expected calibration error over ``BINS`` equal-width confidence bins, a fraction (3 decimals);
    ``right_at_0.8``: percent right among answers scored >= 0.8, ``n_at_0.8`` their count;
    ``reliability``: per non-empty bin its count, mean confidence and percent right. All null when the
    group has no answered row (``right_at_0.8`` also when none is scored >= 0.8).
    """
    answered = [s for s in scored if s.get("right") is not None and s.get("score") is not None]
    if not answered:
        return {"ece": None, "right_at_0.8": None, "n_at_0.8": None, "reliability": None}
    bins: dict[int, list[dict]] = collections.defaultdict(list)
    for s in answered:
        bins[min(BINS - 1, max(0, int(s["score"] * BINS)))].append(s)
    ece, reliability = 0.0, []
    for b in sorted(bins):
        rows = bins[b]
        confidence = sum(s["score"] for s in rows) / len(rows)
        accuracy = sum(bool(s["right"]) for s in rows) / len(rows)
        ece += len(rows) / len(answered) * abs(confidence - accuracy)
        reliability.append({"bin": _bin_label(b), "n": len(rows), "confidence": round(confidence, 3),
                            "right": round(100 * accuracy, 1)})
    confident = [s for s in answered if s["score"] >= CONFIDENT]
    return {"ece": round(ece, 3), "right_at_0.8": _pct(sum(bool(s["right"]) for s in confident), len(confident)),
            "n_at_0.8": len(confident), "reliability": reliability}


def summarize(scored: list[dict]) -> dict:
    """The report's metrics over a group of scored rows (percent, one decimal; null if nothing to count),
    with the calibration of its answers (:func:`calibration`)."""
    ranks = [s["rank"] for s in scored if s["rank"] is not None]
    judged = [s for s in scored if s["abstained"] is not None]
    abstained = [s for s in judged if s["abstained"]]
    unanswerable = [s for s in judged if not s["answerable"]]
    right = sum(not s["answerable"] for s in abstained)
    return {
        "n": len(scored),
        "em": _mean_pct([s["em"] for s in scored]),
        "f1": _mean_pct([s["f1"] for s in scored]),
        "recall@1": _mean_pct([r == 1 for r in ranks]),
        "recall@5": _mean_pct([0 < r <= 5 for r in ranks]),
        "mrr": _mean_pct([1 / r if r else 0.0 for r in ranks]),
        "citation_accuracy": _mean_pct([s["cited"] for s in scored]),
        "abstention_precision": _pct(right, len(abstained)),
        "abstention_recall": _pct(right, len(unanswerable)),
        "latency_p50_ms": _percentile([s["latency_ms"] for s in scored], 50),
        "latency_p95_ms": _percentile([s["latency_ms"] for s in scored], 95),
        **calibration(scored),
    }


def build_report(scored: list[dict]) -> dict:
    """Overall, by-language, by-kind and cross-lingual metrics of a run.

    ``cross_lingual`` groups the rows marked with a ``direction`` ("en->ru": an English question
    whose answer is only in a Russian article), one group per direction found.
    """
    directions = sorted({s["direction"] for s in scored if s.get("direction")})
    return {
        "overall": summarize(scored),
        "by_language": {lang: summarize([s for s in scored if s["lang"] == lang]) for lang in LANGS},
        "by_kind": {kind: summarize([s for s in scored if s["kind"] == kind]) for kind in KINDS},
        "cross_lingual": {d: summarize([s for s in scored if s.get("direction") == d]) for d in directions},
    }


def answer_direction(row: dict, languages: dict[str, str]) -> str | None:
    """"QUESTION->ANSWER" languages ("en->ru") when every source of an answerable row is written in
    another language than the question (``languages``: file name to language), else None."""
    if not row["answerable"]:
        return None
    found = {languages.get(source) for source in _as_list(row["source"])}
    if len(found) != 1 or None in found or row["lang"] in found:
        return None
    return f"{row['lang']}->{found.pop()}"


def compare_standalone(pairs: list[tuple[dict, dict, dict]]) -> dict:
    """EM/F1 of answerable follow-ups against their standalone forms.

    ``pairs`` holds ``(row, followup_prediction, standalone_prediction)``.
    """
    scores = [(row["id"], f1_score(fu["answer"] or "", row["answers"]),
               f1_score(sa["answer"] or "", row["answers"]))
              for row, fu, sa in pairs if row["answerable"]]
    return {
        "n": len(scores),
        "followup_f1": _mean_pct([f for _, f, _ in scores]),
        "standalone_f1": _mean_pct([s for _, _, s in scores]),
        "rows": [{"id": i, "followup_f1": round(100 * f, 1), "standalone_f1": round(100 * s, 1)}
                 for i, f, s in scores],
    }


def standalone_context(rows: list[dict], rewrite) -> dict:
    """Questions that stand on their own, asked after an earlier turn, whose query got context anyway.

    Checked: each ``standalone`` form after its row's ``history``, and each single-turn question after
    the set's previous single-turn question (a change of topic). ``rewrite(question, history)`` is the
    query searched for (``Chatbot.rewrite``).
    """
    cases = [(row["id"], row["standalone"], row["history"]) for row in rows if row.get("history") and row.get("standalone")]
    singles = [row for row in rows if not row.get("history")]
    cases += [(row["id"], row["question"], [before["question"]]) for before, row in zip(singles, singles[1:])]
    polluted = [{"id": i, "question": q, "searched_for": rewrite(q, h)} for i, q, h in cases if rewrite(q, h) != q]
    return {"n": len(cases), "with_context": len(polluted), "rows": polluted}


def check_thresholds(report: dict, thresholds: dict, where: str = "") -> list[str]:
    """Failures of ``report`` against ``thresholds`` (same nesting); empty: passed.

    A threshold is a minimum, except for the metrics of ``LOWER_IS_BETTER`` (``ece``), where it is a
    maximum. A threshold on a metric the run did not measure (null) is a failure.
    """
    failures = []
    for key, limit in thresholds.items():
        name = f"{where}{key}"
        value = report.get(key) if isinstance(report, dict) else None
        if isinstance(limit, dict):
            failures += check_thresholds(value or {}, limit, f"{name}.")
        elif value is None:
            failures.append(f"{name}: not measured (threshold {limit})")
        elif key in LOWER_IS_BETTER:
            if value > limit:
                failures.append(f"{name}: {value} > threshold {limit}")
        elif value < limit:
            failures.append(f"{name}: {value} < threshold {limit}")
    return failures


def check_against(report: dict, baseline: dict, tolerances: dict, where: str = "") -> list[str]:
    """Failures of ``report`` against another run's report: a metric of ``tolerances`` (same nesting) that is
    more than its tolerance away from the ``baseline``'s, either way (e.g. the same eval on another store)."""
    failures = []
    for key, tolerance in tolerances.items():
        name = f"{where}{key}"
        value, expected = (r.get(key) if isinstance(r, dict) else None for r in (report, baseline))
        if isinstance(tolerance, dict):
            failures += check_against(value or {}, expected or {}, tolerance, f"{name}.")
        elif value is None or expected is None:
            failures.append(f"{name}: not measured in both runs ({value} against {expected})")
        elif abs(value - expected) > tolerance:
            failures.append(f"{name}: {value} is more than {tolerance} from the baseline's {expected}")
    return failures


_COLUMNS = (("n", "n"), ("EM", "em"), ("F1", "f1"), ("R@1", "recall@1"), ("R@5", "recall@5"),
            ("MRR", "mrr"), ("Cite", "citation_accuracy"), ("AbsP", "abstention_precision"),
            ("AbsR", "abstention_recall"), ("p50ms", "latency_p50_ms"), ("p95ms", "latency_p95_ms"),
            ("ECE", "ece"), ("OK@.8", "right_at_0.8"), ("n@.8", "n_at_0.8"))


def format_table(report: dict) -> str:
    """The report as a fixed-width text table ('-' for null)."""
    groups = [("overall", report["overall"]),
              *((f"lang={k}", v) for k, v in report["by_language"].items()),
              *((f"kind={k}", v) for k, v in report["by_kind"].items()),
              *((f"cross={k}", v) for k, v in report.get("cross_lingual", {}).items())]
    lines = [f"{'':18}" + "".join(f"{title:>7}" for title, _ in _COLUMNS)]
    for label, metrics in groups:
        cells = (_cell(key, metrics.get(key)) for _, key in _COLUMNS)
        lines.append(f"{label:18}" + "".join(f"{c:>7}" for c in cells))
    if fvs := report.get("followup_vs_standalone"):
        lines.append(f"follow-ups vs standalone forms (n={fvs['n']}): F1 "
                     f"{_dash(fvs['followup_f1'])} vs {_dash(fvs['standalone_f1'])}")
    if sc := report.get("standalone_with_context"):
        lines.append(f"standalone questions after another turn searched with its context: {sc['with_context']} of {sc['n']}")
    lines += _reliability_lines([("overall", report["overall"]),
                                 *((f"lang={k}", v) for k, v in report["by_language"].items())])
    return "\n".join(lines)


def _reliability_lines(groups: list[tuple[str, dict]]) -> list[str]:
    """The reliability table: per group and non-empty confidence bin, answers, mean confidence, % right."""
    groups = [(label, metrics["reliability"]) for label, metrics in groups if metrics.get("reliability")]
    if not groups:
        return []
    lines = ["reliability of answers (confidence bin: answers, mean confidence, % right)",
             f"{'':18}{'bin':>9}{'n':>7}{'conf':>7}{'right':>7}"]
    for label, bins in groups:
        for i, b in enumerate(bins):
            lines.append(f"{label if i == 0 else '':18}{b['bin']:>9}{b['n']:>7}{b['confidence']:>7}{b['right']:>7}")
    return lines


def _dash(value) -> str:
    return "-" if value is None else str(value)


def _cell(key: str, value) -> str:
    return f"{value:.3f}" if key == "ece" and value is not None else _dash(value)


# ---------------------------------------------------------------------------
# The runner: every question through the chat path, then scoring.

def ask_in_conversation(chatbot, question: str, history: list[str]) -> dict:
    """Ask ``history`` then ``question`` in a fresh conversation, as the web chat does; the last answer."""
    from ..qa.conversation import Conversation

    conversation = Conversation()
    for turn in history:
        conversation.ask(chatbot, turn)
    return conversation.ask(chatbot, question).to_dict()


def run(chatbot, rows: list[dict], *, retriever_only: bool = False, predictions=None,
        progress: bool = True) -> dict:
    """Run ``rows`` through ``chatbot`` and return the report.

    ``predictions`` (a writable text file) receives one JSON prediction per row.
    Standalone forms of follow-ups are asked too, for ``followup_vs_standalone``.
    """
    from tqdm import tqdm

    scored, pairs = [], []
    languages = {p.source: p.lang for p in chatbot.index.passages}
    for row in tqdm(rows, desc="eval", unit="q", disable=not progress):
        history = row.get("history") or []
        if retriever_only:
            pred, searched_for = None, chatbot.rewrite(row["question"], history)
        else:
            pred = {"id": row["id"], **ask_in_conversation(chatbot, row["question"], history)}
            searched_for = pred["searched_for"]
            if predictions is not None:
                predictions.write(json.dumps(pred, ensure_ascii=False) + "\n")
            if history and row.get("standalone"):
                pairs.append((row, pred, ask_in_conversation(chatbot, row["standalone"], [])))
        retrieved = [p.text for p in chatbot.search(searched_for, k=5)] if row["answerable"] else None
        scored.append({**score_row(row, pred, retrieved), "direction": answer_direction(row, languages)})
    report = build_report(scored)
    report["standalone_with_context"] = standalone_context(rows, chatbot.rewrite)
    if not retriever_only:
        report["followup_vs_standalone"] = compare_standalone(pairs)
    return report


def _count(items: list, noun: str) -> str:
    return f"{len(items)} {noun}{'' if len(items) == 1 else 's'}"


def report_warnings(questions: str | Path, warnings: list[str], file=None) -> None:
    """Print a question set's grounding warnings to ``file`` (default stderr): a count, then one line each."""
    if not warnings:
        return
    file = file or sys.stderr
    print(f"{questions}: {_count(warnings, 'grounding warning')} "
          "(answer or evidence not verbatim in the source); the run goes on", file=file)
    for warning in warnings:
        print(f"warning: {warning}", file=file)


def evaluate(questions: str | Path, settings: Settings | None = None, *,
             predictions_path: str | Path | None = None, report_path: str | Path | None = None,
             retriever_only: bool = False, check: str | Path | None = None,
             against: str | Path | None = None, tolerance: str | Path | None = None,
             progress: bool = True) -> int:
    """``chatbot eval``: validate, run, print the table, write the files, apply the gate.

    ``settings`` (default: from the environment) give the corpus, index and reader.
    Returns the exit status: 0, or 1 when a threshold of ``check`` is not met or a metric of ``tolerance``
    is further than its tolerance from the report ``against`` (another run's ``--report``).
    Raises ``ChatbotError`` for an invalid questions or thresholds file (a validation error);
    grounding warnings are printed to stderr and the run goes on.
    """
    from ..config import Settings
    from ..errors import ChatbotError

    settings = settings or Settings.from_env()
    try:
        rows = load_questions(questions)
        thresholds = json.loads(Path(check).read_text(encoding="utf-8")) if check else {}
        if bool(against) != bool(tolerance):
            raise ValueError("--against and --tolerance go together: a baseline report and the tolerances")
        baseline = json.loads(Path(against).read_text(encoding="utf-8")) if against else {}
        tolerances = json.loads(Path(tolerance).read_text(encoding="utf-8")) if tolerance else {}
    except (OSError, ValueError) as exc:
        raise ChatbotError(str(exc)) from exc
    checked = validate_questions(rows, settings.corpus_dir)
    errors = checked.errors or ([] if rows else [f"{questions}: no questions"])
    if errors:
        raise ChatbotError(f"{questions} is not a valid question set ({_count(errors, 'error')}):\n  "
                           + "\n  ".join(errors)
                           + "".join(f"\n  warning: {w}" for w in checked.warnings))
    report_warnings(questions, checked.warnings)
    from ..qa.chatbot import Chatbot

    chatbot = Chatbot.load(settings=settings, progress=progress)
    if not retriever_only:
        chatbot.warm_up()  # as the web chat and the HTTP API do before their first question: latencies as served
    if predictions_path:
        Path(predictions_path).parent.mkdir(parents=True, exist_ok=True)
    with open(predictions_path or os.devnull, "w", encoding="utf-8") as predictions:
        report = run(chatbot, rows, retriever_only=retriever_only, predictions=predictions,
                     progress=progress)
    print(format_table(report))
    if report_path:
        Path(report_path).parent.mkdir(parents=True, exist_ok=True)
        Path(report_path).write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n",
                                     encoding="utf-8")
    failures = check_thresholds(report, thresholds) + check_against(report, baseline, tolerances)
    for failure in failures:
        print(f"FAILED {failure}", file=sys.stderr)
    if check and not failures:
        print(f"all thresholds in {check} met")
    if against and not failures:
        print(f"within {tolerance} of {against}")
    return 1 if failures else 0
