"""Held-out check of answer ranking across passages and languages (evals/README.md, "Sentence relevance").

For every held-out XQuAD question asked in English, the readers see a small set of paragraphs of its
article, as retrieval would give them:
  en->ru  the Russian gold paragraph and the 3 English paragraphs (without the answer) closest to the question;
  en->en  the English gold paragraph, the 2 closest other English paragraphs and the closest other Russian one.
English paragraphs go to the neural reader, Russian ones to the multilingual reader (or, with --sentence-reader or
without a multilingual reader in the settings, to the sentence reader), as in `Chatbot`. The best span
is picked by score times the sentence relevance weight (``chatbot.relevance``, the settings' relevance encoder) at
each temperature (0: score alone) and each offset given to sentences in the other language than the question's,
and scored by F1.

    .venv/bin/python scripts/mixed_passages.py [--temperatures 0 0.03 0.05 0.1 0.2] [--language-offsets 0 0.05]
                                               [--sentence-reader]
"""

import argparse
import json
from pathlib import Path

import numpy as np

from chatbot.config import Settings
from chatbot.embedding import UseEmbedder
from chatbot.evaluation import f1_score
from chatbot.reader import Reader
from chatbot.relevance import RelevanceSettings, SentenceRelevance
from chatbot.sentence_reader import SentenceReader
from chatbot.training import DEFAULT_DATA_DIR, load_squad, split_heldout


def paragraphs_by_title(examples) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for e in examples:
        out.setdefault(e.title, [])
        if e.context not in out[e.title]:
            out[e.title].append(e.context)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA_DIR / "xquad")
    parser.add_argument("--temperatures", type=float, nargs="+", default=[0, 0.03, 0.05, 0.1, 0.2])
    parser.add_argument("--language-offsets", type=float, nargs="+", help="default: the encoder's own")
    parser.add_argument("--sentence-reader", action="store_true", help="read Russian paragraphs with the sentence reader")
    args = parser.parse_args()
    _, english = split_heldout(load_squad(args.data / "xquad.en.json"))
    _, russian = split_heldout(load_squad(args.data / "xquad.ru.json"))
    russian = {e.id: e for e in russian}
    en_paragraphs, ru_paragraphs = paragraphs_by_title(english), paragraphs_by_title(russian.values())
    settings = Settings.from_env()
    neural, sentence = Reader(settings.reader, precision=settings.reader_precision), SentenceReader(UseEmbedder())
    relevance = (SentenceRelevance.load(settings.relevance_encoder) if settings.relevance_encoder
                 else SentenceRelevance(sentence.embedder))
    offsets = args.language_offsets or [relevance.settings.language_offset]
    russian_reader = (sentence if args.sentence_reader or not settings.multilingual_reader
                      else Reader(settings.multilingual_reader, precision=settings.multilingual_reader_precision))

    def closest(question: str, candidates: list[str], n: int) -> list[str]:
        if not candidates:
            return []
        vectors = sentence.embedder.embed([question] + candidates, query=True)
        return [candidates[i] for i in np.argsort(-(vectors[1:] @ vectors[0]))[:n]]

    results: dict[str, dict[float, list[float]]] = {"en->ru": {}, "en->en": {}}
    for e in english:
        r = russian.get(e.id)
        if r is None:
            continue
        en_gold_index = en_paragraphs[e.title].index(e.context)
        en_others = [p for p in en_paragraphs[e.title] if p != e.context and e.answer_text not in p]
        ru_others = [p for i, p in enumerate(ru_paragraphs[r.title]) if p != r.context and i != en_gold_index]
        cases = {"en->ru": ([r.context], closest(e.question, en_others, 3), r.answer_text),
                 "en->en": (closest(e.question, ru_others, 1), [e.context] + closest(e.question, en_others, 2),
                            e.answer_text)}
        for case, (ru_texts, en_texts, gold) in cases.items():
            spans = [(s, en_texts) for s in neural.read(e.question, en_texts, top_k=settings.reader_top_k)]
            spans += [(s, ru_texts) for s in russian_reader.read(e.question, ru_texts, top_k=settings.reader_top_k)]
            located = [(texts[s.passage_index], s.start) for s, texts in spans]
            for t in args.temperatures:
                for offset in offsets if t else [0.0]:
                    relevance.settings = RelevanceSettings(temperature=t, language_offset=offset)
                    weights = relevance.weights(relevance.closeness(e.question, located))
                    best = max(zip(spans, weights), key=lambda sw: sw[0][0].score * sw[1], default=None)
                    key = f"t={t} offset={offset}" if t else "score alone"
                    results[case].setdefault(key, []).append(f1_score(best[0][0].text, [gold]) if best else 0.0)
    table = {case: {key: round(100 * float(np.mean(v)), 1) for key, v in by_key.items()}
             for case, by_key in results.items()}
    print(json.dumps({"questions": len(next(iter(results["en->ru"].values()))), "f1": table}, indent=2))


if __name__ == "__main__":
    main()
