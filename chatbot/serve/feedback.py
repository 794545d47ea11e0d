"""Users' thumbs up/down on answers, kept in a local JSONL file, and eval-set rows made from the thumbs-down.

Each rating is one appended line (:func:`record`): the question, the earlier questions of its
conversation, what was searched for, the answer, its confidence and citations, the rating and an
optional comment. A comment sent after the thumbs is a second line for the same answer; the last line
of an answer wins. ``chatbot feedback export`` (:func:`review_rows`) turns the thumbs-down into rows of
the eval set's schema (evals/README.md) for a person to complete: ``answers``, ``source``,
``evidence`` and ``answerable`` are left for them (``answerable`` is ``null``, which the eval set
refuses until it is filled in), and ``review`` says what the bot did.
"""

from __future__ import annotations

import json
import threading
from datetime import datetime, timezone
from pathlib import Path

from ..ingest.corpus import detect_language

_lock = threading.Lock()  # one writer at a time: lines from concurrent sessions never interleave


def feedback_row(turn: dict, history: list[str], rating: str, comment: str = "") -> dict:
    """The line for ``turn`` (``{"question", "answer": Answer.to_dict() or None}``) rated ``rating``."""
    answer = turn.get("answer") or {}
    return {
        "time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "rating": rating,
        "question": turn["question"],
        "history": list(history),
        "searched_for": answer.get("searched_for"),
        "answer": answer.get("answer"),
        "score": answer.get("score"),
        "citations": answer.get("citations", []),
        "comment": " ".join(comment.split()),
    }


def record(path: str | Path, row: dict) -> None:
    """Append ``row`` to the JSONL file at ``path`` (created with its folder when missing)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    line = json.dumps(row, ensure_ascii=False) + "\n"
    with _lock, open(path, "a", encoding="utf-8") as fh:
        fh.write(line)


def read(path: str | Path) -> list[dict]:
    """The rows of the feedback file, the last one per answer; unreadable lines are skipped."""
    latest: dict[tuple, dict] = {}
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(line)
            key = (row["question"], tuple(row.get("history") or []), row.get("answer"))
        except (ValueError, KeyError, TypeError):
            continue
        latest.pop(key, None)  # re-inserted: the order is that of each answer's last rating
        latest[key] = row
    return list(latest.values())


def review_rows(rows: list[dict]) -> list[dict]:
    """Eval-set rows, to complete by hand, for the thumbs-down among ``rows``."""
    out = []
    for n, row in enumerate((r for r in rows if r.get("rating") == "down"), 1):
        citations = row.get("citations") or []
        out.append({
            "id": f"fb-{n:03d}",
            "question": row["question"],
            "answers": [],
            "source": citations[0]["source"] if citations else None,
            "evidence": None,
            "answerable": None,
            "lang": detect_language(row["question"]),
            **({"history": row["history"]} if row.get("history") else {}),
            "review": {"bot_answer": row.get("answer"), "score": row.get("score"),
                       "searched_for": row.get("searched_for"), "comment": row.get("comment", ""),
                       "cited": [f"{c['source']} {c['start']}-{c['end']}" for c in citations],
                       "time": row.get("time")},
        })
    return out
