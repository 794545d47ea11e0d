"""The Python API for other programs: ``from chatbot import Retriever, Chatbot``."""

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

import chatbot
from chatbot import Answer, Chatbot, Citation, Passage, Retriever

HEAVY = ("torch", "sentence_transformers", "faiss", "transformers", "gradio", "fastapi", "bm25s", "numpy")


def test_import_chatbot_loads_no_model_library():
    code = f"import sys, chatbot; print(sorted(m for m in {HEAVY!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).resolve().parents[1], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    assert set(chatbot.__all__) >= {"Retriever", "Chatbot", "Passage", "Answer", "Citation", "__version__"}
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        chatbot.Nope


@pytest.fixture(scope="module")
def retriever(built_corpus, embedder):
    corpus, index_dir = built_corpus
    return Retriever.load(index_dir=index_dir, corpus_dir=corpus, embedder=embedder)


def test_search_returns_passages_with_offsets_into_the_original_files(retriever, built_corpus):
    passages = retriever.search("Which platform is Grok integrated into?", k=4)
    assert len(passages) == 4 and all(isinstance(p, Passage) for p in passages)
    assert "000_1a2eb30073d68791.txt" in {p.source for p in passages}  # the Grok article
    scores = [p.score for p in passages]
    assert all(isinstance(s, float) for s in scores) and scores == sorted(scores, reverse=True)
    for p in passages:
        original = (built_corpus[0] / p.source).read_text(encoding="utf-8")
        assert p.text == original[p.start:p.end] and p.title
        assert set(p.to_dict()) == {"text", "score", "source", "title", "start", "end", "page"}
    assert len(retriever.search("Grok")) == 5


@pytest.mark.parametrize("query, k, message", [
    ("", 5, "empty"), ("  \n\t", 5, "empty"), (None, 5, "empty"),
    ("Grok", 0, "k must be"), ("Grok", 51, "k must be"), ("Grok", 2.5, "k must be"), ("Grok", True, "k must be"),
    ("Grok", "5", "k must be"),
])
def test_search_rejects_bad_arguments(retriever, query, k, message):
    with pytest.raises(ValueError, match=message):
        retriever.search(query, k)


def test_search_is_thread_safe(retriever):
    queries = ["Grok X platform", "Colossus Memphis GPUs", "Oracle deal report", "Сколько денег собрал стартап",
               "AI Infrastructure Partnership advisor", "Microsoft Azure", "Nvidia", "data centre power"]

    def run(query):
        return [(p.to_dict(), p.dense_score, p.bm25_score) for p in retriever.search(query, k=5)]

    sequential = [run(q) for q in queries * 3]
    with ThreadPoolExecutor(8) as pool:
        assert list(pool.map(run, queries * 3)) == sequential


def test_indexes_a_corpus_outside_the_repository(tmp_path, monkeypatch):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "bees.txt").write_text("Bees\n\nHoneybees dance to tell each other where the flowers are.\n", encoding="utf-8")
    (docs / "tides.txt").write_text("Tides\n\nThe Moon's gravity pulls the oceans and makes the tides.\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)  # another program's working directory, nothing of the checkout

    found = Retriever.load(index_dir=tmp_path / "idx", corpus_dir=docs).search("What causes tides?", k=2)
    assert [p.source for p in found] == ["tides.txt", "bees.txt"] and found[0].title == "Tides"
    original = (docs / "tides.txt").read_text(encoding="utf-8")
    assert original[found[0].start:found[0].end] == found[0].text and "Moon" in found[0].text
    assert (tmp_path / "idx" / "manifest.json").is_file()

    (docs / "volcano.txt").write_text("Volcanoes\n\nMagma rises through the crust and erupts as lava.\n", encoding="utf-8")
    found = Retriever.load(index_dir="idx", corpus_dir="docs").search("Where does lava come from?", k=1)
    assert found[0].source == "volcano.txt"  # the stale index was rebuilt


def test_chatbot_is_a_retriever_that_also_answers(built_corpus, embedder, trained_reader):
    corpus, index_dir = built_corpus
    bot = Chatbot.load(index_dir=index_dir, corpus_dir=corpus, embedder=embedder)
    assert isinstance(bot, Retriever) and Path(bot.settings.reader).resolve() == Path(trained_reader)
    answer = bot.ask("Which platform is Grok integrated into?")
    assert isinstance(answer, Answer) and isinstance(answer.score, float) and 0 <= answer.score <= 1
    assert answer.text is None or isinstance(answer.text, str)
    assert answer.citations and all(isinstance(c, Citation) for c in answer.citations)
    for c in answer.citations:
        assert c.text == (corpus / c.source).read_text(encoding="utf-8")[c.start:c.end]
    followup = bot.ask("How many GPUs does it house?", history=["What is xAI's data center in Memphis called?"])
    assert "Memphis" in followup.searched_for
    assert [p.to_dict() for p in bot.search("Grok", 3)] == [p.to_dict() for p in Retriever(
        bot.index, bot.settings, embedder).search("Grok", 3)]
    with pytest.raises(ValueError, match="empty"):
        bot.ask(" ")
