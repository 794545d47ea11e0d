import json
import os

import numpy as np
import pytest

import chatbot.index.store as index_module
from chatbot.config import ChunkingSettings
from chatbot.errors import IndexBuildError, IndexLoadError
from chatbot.index.store import build_index, is_stale, load_index
from chatbot.types import Passage

TEXTS = [
    ("cats.txt", "Cats", "Cats are small domesticated carnivores that like to sleep most of the day.", "en"),
    ("rockets.txt", "Rockets", "The rocket reached orbit after a nine minute burn of its first stage engines.", "en"),
    ("bread.txt", "Bread", "Knead the dough for ten minutes, then let it rise in a warm place for an hour.", "en"),
    ("ru.txt", "Погода", "Завтра в Москве ожидается сильный снегопад и похолодание до минус двадцати.", "ru"),
]
EXTRA = {"chunking": ChunkingSettings().as_dict(), "files": {"cats.txt": "aa", "rockets.txt": "bb"}}


def make_passages():
    return [Passage(text=t, source=s, title=ti, start=10 * i, end=10 * i + len(t), lang=lang)
            for i, (s, ti, t, lang) in enumerate(TEXTS)]


@pytest.fixture
def built(tmp_path, embedder):
    index_dir = tmp_path / "index"
    build_index(make_passages(), embedder, index_dir, EXTRA)
    return index_dir


def leftovers(index_dir):
    return sorted(p.name for p in index_dir.parent.iterdir() if p.name not in (index_dir.name, f".{index_dir.name}.lock"))


def test_round_trip_and_search(built, embedder):
    index = load_index(built)
    # The shipped encoder embeds queries itself: no copy of it in the index (tests/test_onnx.py: a
    # sentence-transformers embedder's query encoder).
    assert sorted(os.listdir(built)) == ["index.faiss", "manifest.json", "passages.jsonl"]
    assert index.passages == make_passages()
    m = index.manifest
    assert m["format_version"] == 1 and m["embedder"] == embedder.name and m["dimension"] == 384
    assert m["chunk_count"] == 4 and m["chunking"] == EXTRA["chunking"] and m["files"] == EXTRA["files"]
    assert m["query_encoder"] is None
    assert set(m["checksums"]) == {"index.faiss", "passages.jsonl"}
    assert m["created_at"]

    query = embedder.embed(["how long should dough rise"], query=True)[0]
    hits = index.dense_search(query, 10)
    assert len(hits) == 4  # k is clipped to the index size
    assert hits[0][0] == 2
    assert [s for _, s in hits] == sorted((s for _, s in hits), reverse=True)
    cosines = embedder.embed([p.text for p in make_passages()]) @ query
    np.testing.assert_allclose([s for _, s in hits], cosines[[i for i, _ in hits]], atol=1e-5)
    np.testing.assert_allclose(index.similarity(query, [3, 0]), cosines[[3, 0]], atol=1e-5)
    with pytest.raises(ValueError):
        index.dense_search(query[:10], 1)


def test_failure_mid_build_leaves_previous_index_intact(built, embedder, monkeypatch):
    before = load_index(built).manifest
    calls = []
    real_write = index_module._write_durably

    def failing_write(path, data):
        calls.append(path.name)
        if len(calls) == 2:  # the faiss file is already written into the temp dir
            raise OSError(28, "No space left on device")
        real_write(path, data)

    monkeypatch.setattr(index_module, "_write_durably", failing_write)
    with pytest.raises(IndexBuildError, match="No space left on device.*previous index"):
        build_index(make_passages()[:2], embedder, built, EXTRA)
    assert calls == ["index.faiss", "passages.jsonl"]
    after = load_index(built)
    assert after.manifest == before and len(after) == 4
    assert leftovers(built) == []


def test_failure_during_swap_restores_previous_index(built, embedder, monkeypatch):
    before = load_index(built).manifest
    real_replace = os.replace

    def failing_replace(src, dst):
        if ".tmp-" in os.fspath(src):
            raise OSError("rename failed")
        real_replace(src, dst)

    monkeypatch.setattr(index_module.os, "replace", failing_replace)
    with pytest.raises(IndexBuildError, match="rename failed"):
        build_index(make_passages()[:2], embedder, built, EXTRA)
    assert load_index(built).manifest == before
    assert leftovers(built) == []


def test_next_build_cleans_crash_leftovers_and_restores_interrupted_swap(built, embedder):
    stale_tmp = built.parent / ".index.tmp-crashed"
    stale_tmp.mkdir()
    (stale_tmp / "index.faiss").write_bytes(b"partial")
    before = load_index(built).manifest
    # A crash between the two renames of a swap: only the backup of the old index exists.
    os.rename(built, built.parent / ".index.old-crashed")

    class BrokenEmbedder:
        name, dimension = "broken", 384

        def embed(self, texts, **kwargs):
            raise RuntimeError("embedding crashed")

    with pytest.raises(IndexBuildError, match="embedding crashed"):
        build_index(make_passages(), BrokenEmbedder(), built)
    assert leftovers(built) == []
    assert load_index(built).manifest == before

    build_index(make_passages()[:3], embedder, built, EXTRA)
    assert len(load_index(built)) == 3 and leftovers(built) == []


@pytest.mark.parametrize("damage", ["truncate", "flip", "delete"])
def test_damaged_faiss_file_raises_index_load_error(built, damage):
    path = built / "index.faiss"
    data = path.read_bytes()
    if damage == "truncate":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "flip":
        path.write_bytes(data[:100] + bytes([data[100] ^ 0xFF]) + data[101:])
    else:
        path.unlink()
    with pytest.raises(IndexLoadError, match=r"index\.faiss.*rebuild"):
        load_index(built)


def test_damaged_passages_and_manifest_raise_index_load_error(built, tmp_path):
    passages = built / "passages.jsonl"
    passages.write_text(passages.read_text()[:-20])
    with pytest.raises(IndexLoadError, match=r"passages\.jsonl is corrupt or truncated"):
        load_index(built)

    (built / "manifest.json").write_text('{"format_version": 1, "embedder"')
    with pytest.raises(IndexLoadError, match=r"manifest\.json is unreadable"):
        load_index(built)

    (built / "manifest.json").write_text(json.dumps({"format_version": 99}))
    with pytest.raises(IndexLoadError, match="format 99"):
        load_index(built)

    (built / "manifest.json").unlink()
    with pytest.raises(IndexLoadError, match=r"manifest\.json is missing"):
        load_index(built)

    with pytest.raises(IndexLoadError, match="No index at"):
        load_index(tmp_path / "nowhere")


def test_inconsistent_chunk_count_is_detected(built):
    manifest_path = built / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["chunk_count"] = 5
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(IndexLoadError, match="inconsistent"):
        load_index(built)


def test_is_stale(built, embedder, tmp_path):
    same = {"embedder": embedder.name, **EXTRA}
    assert is_stale(built, same) is None
    assert is_stale(built, {"embedder": embedder.name}) is None  # only the given fields are compared

    reason = is_stale(built, {**same, "embedder": "intfloat/multilingual-e5-small"})
    assert reason and "embedder" in reason and "multilingual-e5-small" in reason

    reason = is_stale(built, {**same, "chunking": ChunkingSettings(max_chars=200).as_dict()})
    assert reason and reason.startswith("chunking changed")

    reason = is_stale(built, {**same, "files": {"cats.txt": "zz", "new.txt": "cc"}})
    assert reason == "corpus files changed: added ['new.txt']; removed ['rockets.txt']; changed ['cats.txt']"

    assert "No index" in is_stale(tmp_path / "nowhere", same)


def test_is_stale_compares_tuples_like_the_lists_json_stores(tmp_path, embedder):
    build_index(make_passages(), embedder, tmp_path / "index", {"langs": ("en", "ru")})
    assert is_stale(tmp_path / "index", {"langs": ("en", "ru")}) is None
    assert is_stale(tmp_path / "index", {"langs": ("en",)}) is not None


def test_build_rejects_empty_input_and_reserved_manifest_fields(tmp_path, embedder):
    with pytest.raises(IndexBuildError, match="No passages"):
        build_index([], embedder, tmp_path / "index")
    with pytest.raises(ValueError, match="checksums"):
        build_index(make_passages(), embedder, tmp_path / "index", {"checksums": {}})
    assert not (tmp_path / "index").exists()
