import threading

import numpy as np
import pytest

from chatbot.index.store import build_index
from chatbot.index.search import reciprocal_rank_fusion, tokenize
from chatbot.qa.retrieval import HybridRetriever, RetrievedPassage
from chatbot.types import Passage

TEXTS = [
    ("phones.txt", "Tecno Spark Slim", "The Tecno Spark Slim is a thin phone with a 5200 mAh battery and a curved AMOLED screen.", "en"),
    ("xai.txt", "xAI", "Elon Musk's xAI joined Microsoft and BlackRock in a $30 billion project to build AI data centres.", "en"),
    ("people.txt", "Inventors", "Who invented the telephone? Alexander Graham Bell is credited with the first practical telephone.", "en"),
    ("people.txt", "Inventors", "Marie Curie was a physicist and chemist who conducted pioneering research on radioactivity.", "en"),
    ("chefs.txt", "Chefs", "Orville Quennel was a celebrated French chef who ran a restaurant in Lyon.", "en"),
    ("art.txt", "Painters", "Orvil Quenby painted landscapes of the Scottish Highlands in the 1890s.", "en"),
    ("cycling.txt", "Cycling", "Ørvald Quennebert is a Belgian cyclist who won three stages of the Tour.", "en"),
    ("council.txt", "Council", "The council minutes list budgets, parking fees and school lunches; the vote passed after Quenneby abstained.", "en"),
    ("pets.txt", "Pets", "Kittens and puppies are popular household pets that need regular veterinary care.", "en"),
    ("metro.txt", "Московское метро", "Московский метрополитен открыл новую станцию на Большой кольцевой линии в декабре.", "ru"),
    ("science.txt", "Наука", "Российские учёные обнаружили в Сибири новый вид бабочек с необычной окраской крыльев.", "ru"),
]
PASSAGES = [Passage(text=t, source=s, title=ti, start=0, end=len(t), lang=lang) for s, ti, t, lang in TEXTS]
COUNCIL, METRO = 7, 9


@pytest.fixture(scope="module")
def index(tmp_path_factory, embedder):
    return build_index(PASSAGES, embedder, tmp_path_factory.mktemp("retrieval") / "index")


@pytest.fixture(scope="module")
def retriever(index, embedder):
    return HybridRetriever(index, embedder)


def test_rare_name_found_by_bm25_that_dense_alone_misses(index, retriever, embedder):
    query = "What did Quenneby do?"
    dense_top = index.dense_search(embedder.embed([query], query=True)[0], 1)
    assert dense_top[0][0] != COUNCIL  # the premise: similar-looking names fool the embedder
    results = retriever.retrieve(query, k=3)
    assert results[0].text == PASSAGES[COUNCIL].text
    assert results[0].bm25_score > 0
    assert all(r.bm25_score == 0 for r in results[1:])  # only the exact name matches lexically


def test_russian_query_finds_russian_passage(retriever):
    # Different inflections than the passage (станцию/станции, открыл/открыли): needs stemming.
    results = retriever.retrieve("Когда открыли новые станции метро?", k=2)
    assert results[0].text == PASSAGES[METRO].text and results[0].lang == "ru"
    # BM25 matches it through the stems; the second place goes to the other language (the cross-lingual place)
    assert results[0].bm25_rank == 0 and results[0].bm25_score > 0 and results[1].lang != "ru"


def test_results_are_scored_copies(retriever, index, embedder):
    query = "phone battery capacity"
    results = retriever.retrieve(query, k=4)
    assert len(results) == 4 and all(isinstance(r, RetrievedPassage) for r in results)
    assert results[0].source == "phones.txt"
    assert [r.score for r in results] == sorted((r.score for r in results), reverse=True)
    assert results[0].score == pytest.approx(2 / 61)  # first in both lists
    q = embedder.embed([query], query=True)[0]
    p = embedder.embed([results[1].text])[0]
    assert results[1].dense_score == pytest.approx(float(p @ q), abs=1e-5)
    results[0].text = "changed"
    assert index.passages[0].text == TEXTS[0][2] and index.passages[0].score == 0.0


def test_k_larger_than_index_returns_every_passage(retriever):
    assert len(retriever.retrieve("anything at all", k=50)) == len(PASSAGES)


@pytest.mark.parametrize("query, k", [("", 5), ("   \n", 5), (None, 5), ("ok", 0), ("ok", 51), ("ok", True), ("ok", 2.0)])
def test_bad_arguments_raise_value_error(retriever, query, k):
    with pytest.raises(ValueError):
        retriever.retrieve(query, k)


def test_rrf_order_on_constructed_rankings():
    fused = reciprocal_rank_fusion([[1, 2, 3], [3, 1, 4]], k=60)
    assert [i for i, _ in fused] == [1, 3, 2, 4]
    assert dict(fused)[1] == pytest.approx(1 / 61 + 1 / 62)
    assert dict(fused)[3] == pytest.approx(1 / 63 + 1 / 61)
    # Second in both lists beats first in one; equal scores fall back to the smaller id.
    assert [i for i, _ in reciprocal_rank_fusion([[7, 5], [9, 5]])] == [5, 7, 9]


class FixedEmbedder:
    """A second backend behind the TextEmbedder protocol, with hand-set vectors."""

    name, dimension = "fixed", 3
    vectors = {
        "doc a": [1, 0, 0], "doc b": [0.8, 0.6, 0], "doc c": [0, 1, 0],
        "doc d zebra": [0, 0, 1], "doc e zebra zebra": [0, -0.1, -0.995],
    }
    query_vector = [0.8, 0.6, 0]

    def embed(self, texts, *, query=False, batch_size=32, show_progress=False):
        return np.array([self.query_vector if query else self.vectors[t] for t in texts], dtype=np.float32)


def test_retriever_fuses_dense_and_bm25_ranks(tmp_path):
    passages = [Passage(text=t, source=f"{i}.txt", title="", start=0, end=len(t))
                for i, t in enumerate(FixedEmbedder.vectors)]
    index = build_index(passages, FixedEmbedder(), tmp_path / "index")
    results = HybridRetriever(index, FixedEmbedder()).retrieve("zebra", k=5)
    # Dense order (cosines 1, .8, .6, 0, -.06): b, a, c, d, e. BM25 order: e (two zebras), d.
    expected = {
        "doc b": 1 / 61, "doc a": 1 / 62, "doc c": 1 / 63,
        "doc d zebra": 1 / 64 + 1 / 62, "doc e zebra zebra": 1 / 65 + 1 / 61,
    }
    assert [r.text for r in results] == sorted(expected, key=lambda t: -expected[t])
    for r in results:
        assert r.score == pytest.approx(expected[r.text])
    assert [r.dense_score for r in results][-1] == pytest.approx(0.6)


def test_retriever_rejects_index_of_another_embedder(index):
    with pytest.raises(ValueError, match="rebuild the index"):
        HybridRetriever(index, FixedEmbedder())


def test_concurrent_retrieve_matches_sequential(retriever):
    queries = ["What did Quenneby do?", "станция метро", "telephone inventor", "AI data centres"] * 3
    expected = [[r.text for r in retriever.retrieve(q, k=3)] for q in queries]
    got = [None] * len(queries)

    def work(i):
        got[i] = [r.text for r in retriever.retrieve(queries[i], k=3)]

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(queries))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert got == expected


def test_tokenize_lowercases_stems_and_drops_stopwords():
    assert tokenize("Станцию МЕТРО открыли") == tokenize("станции метро открыл") == ["станц", "метр", "откр"]
    assert tokenize("Who is running the phones?") == ["run", "phone"]
    assert tokenize("Ёлка 5200 mAh") == ["елк", "5200", "mah"]
