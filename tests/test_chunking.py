from pathlib import Path

import pytest

from chatbot.ingest.chunking import chunk_corpus, chunk_document, split_sentences
from chatbot.config import ChunkingSettings
from chatbot.ingest.corpus import load_corpus
from chatbot.types import Document

CORPUS = Path(__file__).resolve().parent.parent / "corpus"
BOILERPLATE = ["See also", "Leave a Reply", "Dark Mode", "Add a comment", "Tecno Spark",
               "Reading time", "Your email address", "Highlights"]
SETTINGS = [ChunkingSettings(), ChunkingSettings(max_chars=200, overlap_sentences=0),
            ChunkingSettings(max_chars=900, overlap_sentences=2)]


@pytest.fixture(scope="module")
def docs():
    return load_corpus(CORPUS)[0]


def sentences(text):
    return [text[s:e] for s, e in split_sentences(text)]


def make_doc(text, segments=None, source="t.txt"):
    if segments is None:
        segments = []
        pos = 0
        for line in text.split("\n"):
            if line.strip():
                start = pos + len(line) - len(line.lstrip())
                segments.append((start, start + len(line.strip())))
            pos += len(line) + 1
    return Document(source, "T", "en", text, tuple(segments))


@pytest.mark.parametrize("settings", SETTINGS, ids=lambda s: f"{s.max_chars}-{s.overlap_sentences}")
def test_real_corpus_chunks_are_exact_slices_within_limits(docs, settings):
    passages = chunk_corpus(docs, settings)
    by_source = {d.source: d for d in docs}
    assert len(passages) >= len(docs)
    for p in passages:
        doc = by_source[p.source]
        assert p.text == doc.text[p.start : p.end]
        assert p.text == p.text.strip()
        assert len(p.text) <= settings.max_chars
        assert (p.title, p.lang) == (doc.title, doc.lang)


@pytest.mark.parametrize("settings", SETTINGS, ids=lambda s: f"{s.max_chars}-{s.overlap_sentences}")
def test_chunks_cover_all_content_and_nothing_else(docs, settings):
    for doc in docs:
        in_segment = [False] * len(doc.text)
        for s, e in doc.segments:
            in_segment[s:e] = [True] * (e - s)
        covered = [False] * len(doc.text)
        for p in chunk_document(doc, settings):
            for i in range(p.start, p.end):
                covered[i] = True
                # Outside segments a chunk may only contain whitespace between joined segments.
                assert in_segment[i] or doc.text[i].isspace(), (doc.source, p.text)
        missing = [i for i, flag in enumerate(in_segment) if flag and not covered[i] and not doc.text[i].isspace()]
        assert missing == [], doc.source


def test_no_boilerplate_and_headline_in_at_most_one_chunk(docs):
    passages = chunk_corpus(docs, ChunkingSettings())
    for p in passages:
        for marker in BOILERPLATE:
            assert marker not in p.text, (marker, p.text)
    headline = "xAI Joins Microsoft, BlackRock in $30 Billion AI Infrastructure Project"
    assert sum(headline in p.text for p in passages) == 1


def test_headings_stay_with_their_paragraph(docs):
    doc = next(d for d in docs if d.source.startswith("001"))
    powerhouse = [p for p in chunk_document(doc, ChunkingSettings()) if "A Powerhouse Collaboration" in p.text]
    assert len(powerhouse) == 1
    assert powerhouse[0].text.startswith("A Powerhouse Collaboration\nThe partnership among")

    # The heading would fit after the first paragraph, but belongs to the second.
    text = "The first paragraph has one sentence.\nNext Heading\n" + "Body " * 15 + "ends here."
    passages = chunk_document(make_doc(text), ChunkingSettings(max_chars=100, overlap_sentences=1))
    assert [p.text.split("\n")[0] for p in passages] == ["The first paragraph has one sentence.", "Next Heading"]


def test_overlap_repeats_one_sentence_inside_a_paragraph():
    para = " ".join(f"Sentence number {i} is here." for i in range(12))
    doc = make_doc(para)
    passages = chunk_document(doc, ChunkingSettings(max_chars=100, overlap_sentences=1))
    assert len(passages) > 2
    for a, b in zip(passages, passages[1:]):
        assert sentences(a.text)[-1] == sentences(b.text)[0]
    no_overlap = chunk_document(doc, ChunkingSettings(max_chars=100, overlap_sentences=0))
    assert " ".join(p.text for p in no_overlap) == para


def test_chunks_never_join_across_removed_text():
    text = "Heading\nFirst para.\nSee also  Other story\nSecond para."
    segs = ((0, 7), (8, 19), (42, 54))  # the "See also" line is not a segment
    assert text[42:54] == "Second para."
    passages = chunk_document(make_doc(text, segs), ChunkingSettings())
    assert [p.text for p in passages] == ["Heading\nFirst para.", "Second para."]


def test_long_sentence_split_at_word_boundaries():
    words = [f"word{i}" for i in range(200)]
    text = " ".join(words) + "."
    passages = chunk_document(make_doc(text), ChunkingSettings(max_chars=120, overlap_sentences=1))
    assert all(len(p.text) <= 120 for p in passages)
    rebuilt = " ".join(p.text for p in passages).split()
    assert rebuilt == text.split()  # whole words, no overlap inside one over-long sentence


def test_hard_wrapped_markdown_sentence_stays_whole(tmp_path):
    (tmp_path / "n.md").write_text(
        "# Notes\n\nThe committee met on Friday and\nagreed on the budget. Next steps follow.\n",
        encoding="utf-8")
    (doc,), _ = load_corpus(tmp_path)
    passages = chunk_document(doc, ChunkingSettings(max_chars=60, overlap_sentences=0))
    assert any("The committee met on Friday and\nagreed on the budget." in p.text for p in passages)


def test_english_abbreviations_and_decimals():
    text = ("Mr. Smith paid $1.5 billion to the U.S. Treasury on Jan. 5 last year. "
            "It was J. R. R. Tolkien's idea, e.g. a ring. Dr. Who? Yes! "
            "Growth was 3.5% in the U.S. The rest grew slower. xAI raised money.")
    assert sentences(text) == [
        "Mr. Smith paid $1.5 billion to the U.S. Treasury on Jan. 5 last year.",
        "It was J. R. R. Tolkien's idea, e.g. a ring.",
        "Dr. Who?",
        "Yes!",
        "Growth was 3.5% in the U.S.",
        "The rest grew slower.",
        "xAI raised money.",
    ]


def test_list_number_is_not_a_sentence():
    assert sentences("1. The Growing Demand for AI Infrastructure") == [
        "1. The Growing Demand for AI Infrastructure"]


def test_russian_sentences_with_guillemets_and_initials():
    text = ("Он сказал: «Мы победим!» Затем ушёл. А. С. Пушкин родился в Москве, т.е. не в Петербурге. "
            "Проект стоит 1,5 млрд. долларов. Это партнерство называется «Партнерство по инфраструктуре ИИ» (AIP).")
    assert sentences(text) == [
        "Он сказал: «Мы победим!»",
        "Затем ушёл.",
        "А. С. Пушкин родился в Москве, т.е. не в Петербурге.",
        "Проект стоит 1,5 млрд. долларов.",
        "Это партнерство называется «Партнерство по инфраструктуре ИИ» (AIP).",
    ]


def test_real_russian_article_splits_sensibly(docs):
    doc = next(d for d in docs if d.lang == "ru")
    paragraph = next(doc.text[s:e] for s, e in doc.segments if doc.text[s:e].startswith("Маск удается"))
    got = sentences(paragraph)
    assert len(got) == 3
    assert got[0] == "Маск удается превратить напряженность и соперничество на рынке в личные стратегические преимущества."
    assert got[2].startswith("Это партнерство осуществляется под названием «Партнерство")
    assert all(s[0].isupper() and s.endswith(".") for s in got)
    all_sentences = [s for a, b in doc.segments for s in sentences(doc.text[a:b])]
    assert len(all_sentences) == 23  # counted by hand: 11 lines, 4 of them one-sentence
