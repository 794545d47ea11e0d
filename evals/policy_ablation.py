"""Which candidate features does the answer policy gain from? A developer measurement (issue 17).

Reads the candidates that ``chatbot fit-policy`` cached (``runs/policy/candidates-*.jsonl``: every candidate of the
policy's fitting questions, labelled right or wrong) and scores feature sets as fit-policy scores the shipped one:
the policy's own, each of its features left out, and figures it does not use added (:data:`EXTRA`). Each is scored
out of fold (5 folds by question) on the likeliest candidate of each question, with the threshold chosen by the same
rule (precision 0.6, abstention 0.9). Nothing here is read by the product, and the gate set is never touched.

    python evals/policy_ablation.py [CANDIDATES.jsonl]

Printed first: the share of answerable questions with a right candidate at all (the ceiling of any ranking).
Then per feature set: ``top-1``, the share of answerable questions whose likeliest candidate is right (the
policy's ranking alone, before any threshold), overall and per fitting set; then the threshold, the share of
answerable questions answered right at it, the precision of the answers shown, the abstention on questions without
an answer, and the calibration error.
"""

from __future__ import annotations

import argparse
import math
import re
from collections import defaultdict
from pathlib import Path

from chatbot.qa.policy import FEATURES
from chatbot.tools.policy_fit import CACHE_DIR, calibration, out_of_fold, read_candidates, threshold_for

# Figures a candidate could be given beyond FEATURES, from what its question's other candidates say.
EXTRA = {
    "support": "log of the reader probabilities summed over the question's candidates with the same text",
    "share": "that sum over the sum of all the question's candidates' probabilities (log)",
    "passage_best": "the best reader log probability of a candidate in the same passage",
    "passage_margin": "its reader log probability minus that best one",
    "passage_mass": "log of the reader probabilities summed over the candidates in the same passage",
}
ADDED = [(), ("support",), ("share",), ("passage_best",), ("passage_margin",), ("passage_mass",),
         ("support", "passage_best", "passage_mass")]


def variants() -> list[tuple[str, tuple[str, ...]]]:
    """(label, features): the policy's own, each of its features left out, and :data:`ADDED` figures added."""
    out = [(f"the policy + {', '.join(extra)}" if extra else "the policy", FEATURES + extra) for extra in ADDED]
    return out[:1] + [(f"the policy without {name}", tuple(f for f in FEATURES if f != name)) for name in FEATURES] + out[1:]


def _words(text: str | None) -> str:
    return " ".join(re.findall(r"\w+", (text or "").casefold()))


def add_extra_features(rows: list[dict]) -> None:
    """Set :data:`EXTRA` on every candidate row with features (a passage is known by its ``passage_rank``)."""
    by_question: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        if r["features"]:
            by_question[r["question_id"]].append(r)
    for group in by_question.values():
        probability = [math.exp(r["features"]["log_reader_probability"]) for r in group]
        total = sum(probability)
        same_text: dict[str, float] = defaultdict(float)
        passage_mass: dict[float, float] = defaultdict(float)
        passage_best: dict[float, float] = defaultdict(lambda: -math.inf)
        for r, p in zip(group, probability):
            same_text[_words(r["text"])] += p
            passage = r["features"]["passage_rank"]
            passage_mass[passage] += p
            passage_best[passage] = max(passage_best[passage], r["features"]["log_reader_probability"])
        for r in group:
            f, passage = r["features"], r["features"]["passage_rank"]
            f["support"] = math.log(same_text[_words(r["text"])])
            f["share"] = f["support"] - math.log(total)
            f["passage_best"] = passage_best[passage]
            f["passage_margin"] = f["log_reader_probability"] - passage_best[passage]
            f["passage_mass"] = math.log(passage_mass[passage])


def score(rows: list[dict], features: tuple[str, ...], l2: float = 1.0) -> dict:
    picks = out_of_fold(rows, l2, features)
    answerable = [c for c in picks if c["answerable"]]
    top1 = {"all": round(100 * sum(c["right"] for c in answerable) / len(answerable), 1)}
    for name in sorted({c["set"] for c in answerable}):
        of_set = [c for c in answerable if c["set"] == name]
        top1[name] = round(100 * sum(c["right"] for c in of_set) / len(of_set), 1)
    threshold = threshold_for(picks, precision=0.6, abstention=0.9)
    return {"top1": top1, "threshold": threshold, **calibration(picks, threshold)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("candidates", nargs="?", type=Path,
                        help="a fit-policy candidate cache (default: the newest in runs/policy)")
    args = parser.parse_args()
    cache = args.candidates or max(CACHE_DIR.glob("candidates-*.jsonl"), key=lambda p: p.stat().st_mtime, default=None)
    if cache is None:
        raise SystemExit(f"No candidates in {CACHE_DIR}: run `chatbot fit-policy` first.")
    rows = read_candidates(cache)
    add_extra_features(rows)
    answerable = {r["question_id"] for r in rows if r["answerable"]}
    reachable = {r["question_id"] for r in rows if r["right"]}
    print(f"{cache}: {len({r['question_id'] for r in rows})} questions, {len(rows)} candidate rows; "
          f"a right candidate exists for {100 * len(reachable) / len(answerable):.1f} % of the {len(answerable)} "
          "answerable ones (the ceiling of top-1)")
    print(f"{'features':52} {'top-1 (all / per set)':34} {'thr':>6} {'right':>6} {'prec':>6} {'abst':>6} {'ece':>6}")
    for label, features in variants():
        s = score(rows, features)
        per_set = " / ".join(f"{k} {v}" for k, v in s["top1"].items())
        print(f"{label:52} {per_set:34} {s['threshold']:6.3f} "
              f"{s['right_of_answerable']:6.1f} {s['precision']:6.1f} {s['abstained_on_unanswerable']:6.1f} "
              f"{s['ece']:6.3f}")


if __name__ == "__main__":
    main()
