"""The vector index kind is chosen by size (flat, then IVF) and recorded in the manifest."""

import faiss
import numpy as np

from chatbot.config import VectorIndexSettings
from chatbot.index.store import build_index, load_index, make_vector_index, vector_index_kind
from chatbot.types import Passage


def unit_rows(n, d=16, seed=0):
    x = np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_kind_by_size():
    s = VectorIndexSettings(flat_max_chunks=100, ivf_lists_per_sqrt=2.0, ivf_nprobe=4)
    assert vector_index_kind(100, s) == {"kind": "flat"}
    assert vector_index_kind(400, s) == {"kind": "ivf", "nlist": 40, "nprobe": 4}


def test_ivf_finds_exact_neighbours_and_reconstructs_vectors():
    vectors = unit_rows(2000)
    s = VectorIndexSettings(flat_max_chunks=100, ivf_lists_per_sqrt=0.5, ivf_train_sample=1000, ivf_nprobe=22)
    index = make_vector_index(vectors, s)
    assert isinstance(index, faiss.IndexIVFFlat) and index.nprobe == 22 and index.ntotal == 2000
    _, ids = index.search(vectors[:5], 1)
    assert ids[:, 0].tolist() == [0, 1, 2, 3, 4]  # every list probed: exact
    np.testing.assert_allclose(index.reconstruct_batch(np.array([7, 1999])), vectors[[7, 1999]])


class FakeEmbedder:
    name, dimension = "fake", 16

    def embed(self, texts, **kwargs):
        return unit_rows(len(texts), seed=1)


def test_manifest_records_the_choice_and_the_index_loads(tmp_path):
    passages = [Passage(text=f"passage {i}", source="a.txt", title="A", start=0, end=1) for i in range(300)]
    s = VectorIndexSettings(flat_max_chunks=100, ivf_lists_per_sqrt=1.0, ivf_train_sample=300, ivf_nprobe=4)
    built = build_index(passages, FakeEmbedder(), tmp_path / "index", vector_index=s)
    assert built.manifest["vector_index"] == {"kind": "ivf", "nlist": 17, "nprobe": 4}
    loaded = load_index(tmp_path / "index")
    query = FakeEmbedder().embed(["x"] * 300)[42]
    assert loaded.dense_search(query, 1)[0][0] == 42
    assert abs(loaded.similarity(query, [42])[0] - 1.0) < 1e-5
