"""Property tests (hypothesis): chunk offsets against the original text, and question normalisation."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chatbot.ingest.chunking import chunk_document
from chatbot.config import ChunkingSettings, Settings
from chatbot.qa.conversation import resolve_followup
from chatbot.ingest.corpus import find_segments
from chatbot.qa.chatbot import searched_for
from chatbot.qa.questions import check_question, clean_history, clean_question
from chatbot.types import Document

PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Lines like real articles: prose, headlines, boilerplate that find_segments removes, script blocks, blanks.
WORD = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJ0123456789абвгдежзКЛМ$%'’-", min_size=1, max_size=12)
SENTENCE = st.builds(
    lambda words, end: " ".join(words) + end,
    st.lists(WORD, min_size=1, max_size=25),
    st.sampled_from([".", "!", "?", "…", ".”", "", ":", " e.g.", " Dr.", " U.S."]),
)
LINE = st.one_of(
    st.builds(" ".join, st.lists(SENTENCE, min_size=1, max_size=6)),
    st.sampled_from(["Dark Mode Light Mode", "Leave a Reply", "See also", "Share", "5 min read",
                     "<script>var x = 1;\n</script>", "<style>p {}</style> Styled text.", "# Heading",
                     "Big News Big News", "", "   ", "\t"]),
)
TEXT = st.builds(lambda lines, sep: sep.join(lines), st.lists(LINE, min_size=0, max_size=15),
                 st.sampled_from(["\n", "\n\n", "\r\n", "\n \n"]))
CHUNKING = st.builds(ChunkingSettings, max_chars=st.integers(20, 600), overlap_sentences=st.integers(0, 2))


@PROPERTY
@given(text=TEXT, chunking=CHUNKING)
def test_chunks_are_slices_that_cover_all_kept_text_and_no_removed_text(text, chunking):
    segments = find_segments(text)
    doc = Document("doc.txt", "T", "en", text, tuple(segments))
    in_segment = [False] * len(text)
    for s, e in segments:
        in_segment[s:e] = [True] * (e - s)
    covered = [False] * len(text)
    for p in chunk_document(doc, chunking):
        assert p.text == text[p.start:p.end] and p.text == p.text.strip() and p.text
        assert len(p.text) <= chunking.max_chars
        for i in range(p.start, p.end):
            covered[i] = True
            assert in_segment[i] or text[i].isspace(), "a chunk spans removed text"
    missed = [i for i, kept in enumerate(in_segment) if kept and not covered[i] and not text[i].isspace()]
    assert missed == []


@PROPERTY
@given(text=TEXT)
def test_segments_are_ordered_trimmed_slices(text):
    end = 0
    for s, e in find_segments(text):
        assert end <= s < e <= len(text) and text[s:e] == text[s:e].strip()
        end = e


ANY_TEXT = st.text(st.characters(codec="utf-8"), max_size=300)
MAX = st.integers(1, 120)


@PROPERTY
@given(question=ANY_TEXT, max_chars=MAX)
def test_clean_question_is_collapsed_bounded_idempotent_and_a_prefix(question, max_chars):
    try:
        cleaned = clean_question(question, max_chars)
    except ValueError as exc:
        assert "empty" in str(exc)
        assert not "".join(ch for ch in question if unicodedata.category(ch) != "Cc").split()
        return
    assert cleaned and cleaned == cleaned.strip() and "  " not in cleaned and len(cleaned) <= max_chars
    assert not any(unicodedata.category(ch) == "Cc" for ch in cleaned)
    full = " ".join("".join(" " if unicodedata.category(ch) == "Cc" else ch for ch in question).split())
    assert full.startswith(cleaned)
    assert clean_question(cleaned, max_chars) == cleaned


@PROPERTY
@given(question=ANY_TEXT)
def test_check_question_never_raises_and_agrees_with_clean_question(question):
    problem = check_question(question, 100)
    if problem is None:
        assert clean_question(question, 100)  # anything the faces accept, the library can ask


@PROPERTY
@given(question=ANY_TEXT, history=st.lists(ANY_TEXT, max_size=4),
       answers=st.none() | st.lists(ANY_TEXT, max_size=4))
def test_followup_rewriting_keeps_the_question_and_never_raises(question, history, answers):
    question = question.strip() or "x"
    query = resolve_followup(question, history, answers)
    assert query.startswith(question)
    assert resolve_followup(question, [], None) == question


@pytest.mark.parametrize("question", ["Who is the CEO of OpenAI?", "\x00 Who\x1b[2J is  CEO?\x07", "🤖 Кто это? מי"])
def test_clean_question_examples(question):
    assert clean_question(question, 1000) == " ".join(
        "".join(" " if unicodedata.category(ch) == "Cc" else ch for ch in question).split())


# Any code point, lone surrogates included (JSON "\ud800", command-line bytes that are not UTF-8).
RAW_TEXT = st.text(st.characters(exclude_categories=()), max_size=300)
HISTORY_ENTRY = RAW_TEXT | st.text(st.sampled_from("Colossus xAI \ud800\x1b"), min_size=1000, max_size=5000) \
    | st.none() | st.integers()


def _removed(ch: str) -> bool:
    return unicodedata.category(ch) in ("Cc", "Cs")


@PROPERTY
@given(history=st.lists(HISTORY_ENTRY, max_size=40), max_turns=st.integers(0, 25), max_chars=MAX)
def test_history_cleaning_is_bounded_clean_and_idempotent(history, max_turns, max_chars):
    cleaned = clean_history(history, max_turns, max_chars)
    assert len(cleaned) == min(len(history), max_turns)
    for entry in cleaned:
        assert len(entry) <= max_chars and entry == entry.strip() and not any(_removed(ch) for ch in entry)
    assert clean_history(cleaned, max_turns, max_chars) == cleaned


@PROPERTY
@given(question=RAW_TEXT, max_chars=MAX)
def test_clean_question_removes_lone_surrogates(question, max_chars):
    try:
        cleaned = clean_question(question, max_chars)
    except ValueError:
        return
    assert not any(_removed(ch) for ch in cleaned)
    cleaned.encode("utf-8")  # can be written anywhere


@PROPERTY
@given(question=RAW_TEXT.filter(lambda q: check_question(q, 1000) is None),
       history=st.lists(HISTORY_ENTRY, max_size=40), answers=st.none() | st.lists(HISTORY_ENTRY, max_size=40))
def test_the_searched_for_query_is_bounded_for_any_history(question, history, answers):
    settings = Settings()
    query = searched_for(question, history, answers, settings)
    assert query.startswith(clean_question(question, settings.max_question_chars))
    assert len(query) <= settings.max_query_chars and not any(_removed(ch) for ch in query)
