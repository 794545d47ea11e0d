"""Build the held-out XQuAD corpus: 8 articles in English and Russian as user documents, with their questions.

The reader never trained on these 8 articles (``HELDOUT_XQUAD_ARTICLES`` in chatbot.tools.training) and
no setting of the chatbot was chosen on them. Each article becomes one text file per language (its
paragraphs in order, a blank line between them), all 16 in one corpus, so that every question is asked
over both languages' documents, as a user with a bilingual folder would ask it. Each question becomes
a row of the eval schema (evals/README.md): its answer, its own language's file as the source, and as
evidence the sentences of that paragraph that hold the answer. An answer taken from the other
language's article scores as wrong: the bot should answer in the asker's language when both say it.

    python evals/xquad_corpus.py                      # writes build/xquad/corpus and build/xquad/questions.jsonl
    chatbot eval --corpus build/xquad/corpus --index build/xquad/index --questions build/xquad/questions.jsonl
    chatbot bench --corpus build/xquad/corpus --index build/xquad/index --questions build/xquad/questions.jsonl \
        --vs-haystack --reader DIR   # DIR: chatbot torch-reader output (Haystack reads torch weights)

A developer step: it reads ``../shared/qa-data/xquad`` (CC BY-SA 4.0), the product never does.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from chatbot.tools.training import HELDOUT_XQUAD_ARTICLES, load_squad  # noqa: E402

LANGS = ("en", "ru")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def evidence_around(context: str, start: int, end: int) -> str:
    """The sentences of ``context`` that hold ``context[start:end]`` (split after . ! or ? and a space)."""
    bounds = [0] + [m.end() for m in _SENTENCE_END.finditer(context)] + [len(context)]
    first = max(b for b in bounds if b <= start)
    last = min(b for b in bounds if b >= end)
    return context[first:last].strip()


def build(data_dir: Path, out: Path) -> dict:
    """Write ``out/corpus/*.txt`` and ``out/questions.jsonl``; return counts per language."""
    corpus = out / "corpus"
    corpus.mkdir(parents=True, exist_ok=True)
    rows, counts = [], {}
    for lang in LANGS:
        examples = [e for e in load_squad(data_dir / f"xquad.{lang}.json") if e.title in HELDOUT_XQUAD_ARTICLES]
        for n, title in enumerate(HELDOUT_XQUAD_ARTICLES):
            paragraphs = list(dict.fromkeys(e.context for e in examples if e.title == title))
            if not paragraphs:
                continue
            name = f"{n:02d}_{title.lower().strip('_,')}.{lang}.txt".replace(",", "")
            (corpus / name).write_text("\n\n".join(paragraphs) + "\n", encoding="utf-8")
            for e in (e for e in examples if e.title == title):
                rows.append({"id": f"xquad.{lang}:{e.id}", "question": e.question, "answers": e.golds,
                             "source": name, "answerable": True, "lang": lang,
                             "evidence": evidence_around(e.context, e.answer_start,
                                                         e.answer_start + len(e.answer_text))})
        counts[lang] = sum(r["lang"] == lang for r in rows)
    (out / "questions.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows),
                                         encoding="utf-8")
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/qa-data/xquad"),
                        help="folder with xquad.en.json and xquad.ru.json")
    parser.add_argument("--out", type=Path, default=Path("build/xquad"))
    args = parser.parse_args(argv)
    missing = [f"xquad.{lang}.json" for lang in LANGS if not (args.data / f"xquad.{lang}.json").is_file()]
    if missing:
        print(f"error: {args.data} lacks {', '.join(missing)}: pass --data FOLDER with XQuAD's files", file=sys.stderr)
        return 2
    counts = build(args.data, args.out)
    documents = len(list((args.out / "corpus").glob("*.txt")))
    print(f"{args.out}/corpus: {documents} documents; {args.out}/questions.jsonl: "
          + ", ".join(f"{n} {lang}" for lang, n in counts.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
