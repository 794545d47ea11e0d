"""Evaluation helpers: the question set (loading, validation) and SQuAD-style scoring."""

from __future__ import annotations

import collections
import json
import re
import string
import unicodedata
from pathlib import Path

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


def _check_grounding(row: dict, corpus_dir: Path, texts: dict[str, str]) -> list[str]:
    answers = row["answers"]
    if not answers:
        return ["answerable row without answers"]
    sources, evidences = _as_list(row["source"]), _as_list(row["evidence"])
    if row["source"] is None or row["evidence"] is None or not sources:
        return ["answerable row needs source and evidence"]
    if len(sources) != len(evidences):
        return [f"{len(sources)} sources but {len(evidences)} evidences"]
    problems = []
    for src, ev in zip(sources, evidences):
        if not (isinstance(src, str) and isinstance(ev, str)):
            problems.append("source and evidence items must be strings")
            continue
        if src not in texts:
            path = corpus_dir / src
            if Path(src).name != src or not path.is_file():
                problems.append(f"source {src!r} not in {corpus_dir}")
                continue
            texts[src] = path.read_text(encoding="utf-8")
        if ev not in texts[src]:
            problems.append(f"evidence not verbatim in {src}: {ev[:60]!r}")
        if not any(_contains(ev, a) for a in answers):
            problems.append(f"no answer in evidence: {ev[:60]!r}")
    found = [s for s in sources if isinstance(s, str) and s in texts]
    haystacks = [e for e in evidences if isinstance(e, str)] + [texts[s] for s in found]
    for a in answers:
        if not any(_contains(t, a) for t in haystacks):
            problems.append(f"answer {a!r} not in evidence or source")
    if found and not any(a in texts[s] for a in answers for s in found):
        problems.append("no answer verbatim in the source text")
    return problems


def validate_rows(rows: list[dict], corpus_dir: str | Path) -> list[str]:
    """Problems found in a question set, as 'id: message' strings (empty list: valid)."""
    corpus_dir = Path(corpus_dir)
    texts: dict[str, str] = {}
    problems, seen = [], set()
    for i, row in enumerate(rows):
        rid = str(row.get("id", f"#{i}")) if isinstance(row, dict) else f"#{i}"
        if not isinstance(row, dict):
            problems.append(f"{rid}: not an object")
            continue
        if rid in seen:
            problems.append(f"{rid}: duplicate id")
        seen.add(rid)
        found = _check_types(row)
        if not found:
            if row["answerable"]:
                found = _check_grounding(row, corpus_dir, texts)
            elif row["answers"] or row["source"] is not None or row["evidence"] is not None:
                found = ["unanswerable row must have answers [], source null, evidence null"]
        problems.extend(f"{rid}: {p}" for p in found)
    return problems
