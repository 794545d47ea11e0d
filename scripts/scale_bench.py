"""How vector retrieval cost and memory grow with the number of chunks: flat FAISS vs IVF (and HNSW), and
with ``--stores``, the embedded store against the Milvus store (milvus-lite, or a Milvus server by URI).

Synthetic data: unit 384-d vectors drawn around random topic centres (cosine about 0.7 to their centre,
about 0.5 between two chunks of a topic), so nearest neighbours have structure as real embeddings do;
a query is a chunk's vector with noise. Each query is searched alone on one thread, as the chatbot does
(``Settings.faiss_threads``), for the retriever's 20 candidates; recall@10 is measured against the flat
index. The index kinds are built by ``chatbot.index.store.make_vector_index`` with the IVF parameters of
``chatbot.config.VectorIndexSettings``; "auto" is what the chatbot would build for that size.

    python scripts/scale_bench.py --sizes 49 10000 100000 1000000 --out docs/scale-results.md

``--stores embedded milvus`` writes synthetic chunks through each store's own write path instead (the
embedded store: ``make_vector_index`` and its BM25 index; Milvus: ``MilvusStore.replace_document``, 1,000
chunks a document, Milvus's BM25 function and index), each chunk with a text of its topic's words, and
measures ingest rate (vectors given: embedding is not counted), dense and hybrid query p50/p95 through
the store interface, dense recall@10 against exact search, the hybrid top 10's overlap with the embedded
store's, and memory (this process and its children, e.g. milvus-lite's server; and the store on disk):

    python scripts/scale_bench.py --stores embedded milvus --sizes 10000 100000 --out docs/scale-stores.md
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from dataclasses import replace

import faiss
import numpy as np

from chatbot.config import VectorIndexSettings
from chatbot.index.store import make_vector_index, vector_index_kind
from chatbot.tools.loadtest import process_memory_mb
from chatbot.types import Passage

DIM = 384
CANDIDATES = 20  # chatbot.qa.retrieval: max(MIN_CANDIDATES, 4 * k) for k = 5


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def synthetic(n: int, rng: np.random.Generator, topics: int = 2000, block: int = 100_000,
              with_topics: bool = False):
    """``n`` unit vectors around random topic centres (and, ``with_topics``, each one's topic)."""
    centres = unit(rng.standard_normal((topics, DIM), dtype=np.float32))
    out = np.empty((n, DIM), dtype=np.float32)
    topic_of = rng.integers(0, topics, n)
    for a in range(0, n, block):
        b = min(n, a + block)
        noise = rng.standard_normal((b - a, DIM), dtype=np.float32) / np.float32(DIM**0.5)
        out[a:b] = unit(centres[topic_of[a:b]] + noise)
    return (out, topic_of) if with_topics else out


def build(kind: str, vectors: np.ndarray, settings: VectorIndexSettings) -> faiss.Index:
    if kind == "hnsw":
        index = faiss.IndexHNSWFlat(DIM, 32, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efSearch = 64
        index.add(vectors)
        return index
    forced = {"flat": replace(settings, flat_max_chunks=len(vectors)),
              "ivf": replace(settings, flat_max_chunks=0), "auto": settings}[kind]
    return make_vector_index(vectors, forced)


def measure(kind: str, vectors: np.ndarray, queries: np.ndarray, truth: np.ndarray | None,
            settings: VectorIndexSettings) -> tuple[dict, np.ndarray]:
    before = process_memory_mb()
    faiss.omp_set_num_threads(os.cpu_count() or 1)  # building may use every core
    started = time.perf_counter()
    index = build(kind, vectors, settings)
    build_s = time.perf_counter() - started
    grown = process_memory_mb() - before
    faiss.omp_set_num_threads(1)  # one query at a time on one thread, as the chatbot searches
    times, found = [], []
    for q in queries:
        t = time.perf_counter()
        _, ids = index.search(q[None, :], CANDIDATES)
        times.append((time.perf_counter() - t) * 1000)
        found.append(ids[0])
    found = np.array(found)
    recall = None if truth is None else float(np.mean(
        [len(set(f[:10]) & set(t[:10])) / 10 for f, t in zip(found, truth)]))
    row = {"kind": kind, "build_s": round(build_s, 2), "query_p50_ms": round(statistics.median(times), 3),
           "query_p95_ms": round(float(np.percentile(times, 95)), 3),
           "recall@10": None if recall is None else round(100 * recall, 1),
           "index_mb": round(len(faiss.serialize_index(index)) / 2**20, 1), "rss_growth_mb": round(grown, 1)}
    del index
    return row, found


# ---------------------------------------------------------------- stores


WORDS_PER_TOPIC = 30
WORDS_PER_CHUNK = 40
CHUNKS_PER_DOCUMENT = 1000


def synthetic_passages(topic_of: np.ndarray, rng: np.random.Generator) -> list[Passage]:
    """A text for each chunk: words of its topic (``t<topic>w<j>``) among common filler words."""
    filler = [f"common{j}" for j in range(200)]
    passages = []
    for i, topic in enumerate(topic_of):
        words = [f"t{topic}w{j}" if rng.random() < 0.5 else filler[rng.integers(0, 200)]
                 for j in rng.integers(0, WORDS_PER_TOPIC, WORDS_PER_CHUNK)]
        text = " ".join(words)
        passages.append(Passage(text=text, source=f"doc{i // CHUNKS_PER_DOCUMENT:05d}.txt", title="synthetic",
                                start=0, end=len(text), lang="en"))
    return passages


def memory_with_children_mb() -> float:
    import psutil

    me = psutil.Process()
    return sum(p.memory_info().rss for p in [me, *me.children(recursive=True)]) / 2**20


def folder_mb(path: str) -> float:
    from pathlib import Path

    root = Path(path)
    files = [root] if root.is_file() else root.rglob("*")
    return sum(f.stat().st_size for f in files if f.is_file()) / 2**20


def open_embedded(vectors: np.ndarray, passages: list[Passage]):
    from chatbot.index.store import VectorIndex

    store = VectorIndex(make_vector_index(vectors, VectorIndexSettings()), passages,
                        {"embedder": "synthetic", "dimension": DIM})
    store.keyword_search("common0", 1)  # builds its BM25 index, part of making it searchable
    return store, None


def open_milvus(vectors: np.ndarray, passages: list[Passage], uri: str):
    from chatbot.index.milvus import MilvusStore, _connect

    store = MilvusStore(_connect(uri), "scalebench", uri)
    store.create(DIM)
    for a in range(0, len(passages), CHUNKS_PER_DOCUMENT):
        source = passages[a].source
        store.replace_document(source, f"{a:064x}", {"chunks": CHUNKS_PER_DOCUMENT}, "", passages[a:a + CHUNKS_PER_DOCUMENT],
                               vectors[a:a + CHUNKS_PER_DOCUMENT])
    store._client.flush(store._chunks)
    return store, uri


def measure_store(name: str, vectors: np.ndarray, passages: list[Passage], queries: np.ndarray,
                  query_texts: list[str], exact: np.ndarray, uri: str, reference: dict | None) -> tuple[dict, dict]:
    before = memory_with_children_mb()
    started = time.perf_counter()
    store, disk = open_embedded(vectors, passages) if name == "embedded" else open_milvus(vectors, passages, uri)
    ingest_s = time.perf_counter() - started
    dense_ms, hybrid_ms, dense_hits, hybrid_hits = [], [], [], []
    faiss.omp_set_num_threads(1)
    for q, text in zip(queries, query_texts):
        t = time.perf_counter()
        dense_hits.append([i for i, _ in store.dense_search(q, CANDIDATES)])
        dense_ms.append((time.perf_counter() - t) * 1000)
        t = time.perf_counter()
        hybrid_hits.append([i for i, _ in store.hybrid_search(q, text, 10, CANDIDATES)])
        hybrid_ms.append((time.perf_counter() - t) * 1000)
    grown = memory_with_children_mb() - before
    ids = (lambda hits: hits) if name == "embedded" else _milvus_positions(store)
    dense_hits = [ids(h) for h in dense_hits]
    hybrid_hits = [ids(h) for h in hybrid_hits]
    recall = np.mean([len(set(h[:10]) & set(t[:10])) / 10 for h, t in zip(dense_hits, exact)])
    overlap = None if reference is None else float(np.mean(
        [len(set(h) & set(r)) / max(1, len(r)) for h, r in zip(hybrid_hits, reference["hybrid"])]))
    row = {"store": name, "chunks": len(passages), "ingest_s": round(ingest_s, 1),
           "ingest_per_s": round(len(passages) / ingest_s), "dense_p50_ms": round(statistics.median(dense_ms), 2),
           "dense_p95_ms": round(float(np.percentile(dense_ms, 95)), 2),
           "hybrid_p50_ms": round(statistics.median(hybrid_ms), 2),
           "hybrid_p95_ms": round(float(np.percentile(hybrid_ms, 95)), 2),
           "dense_recall@10": round(100 * float(recall), 1),
           "hybrid_top10_overlap": 100.0 if overlap is None else round(100 * overlap, 1),
           "memory_growth_mb": round(grown, 1), "disk_mb": round(folder_mb(disk), 1) if disk else None}
    if name != "embedded":
        store._client.close()
    return row, {"hybrid": hybrid_hits}


def _milvus_positions(store):
    """Milvus ids (hashes) back to the chunks' places in the synthetic list, by their source and ordinal."""
    from chatbot.index.milvus import _row_id

    lookup = {}

    def positions(hits: list[int]) -> list[int]:
        missing = [i for i in hits if i not in lookup]
        if missing:
            for row in store._client.get(store._chunks, ids=missing, output_fields=["source", "version"]):
                place = int(row["version"], 16)  # the document's first position, as written above
                for n in range(CHUNKS_PER_DOCUMENT):
                    lookup.setdefault(_row_id("chunk", row["source"], row["version"], n), place + n)
        return [lookup[i] for i in hits]

    return positions


def compare_stores(args) -> int:
    import tempfile

    rng = np.random.default_rng(0)
    rows = []
    for n in args.sizes:
        vectors, topic_of = synthetic(n, rng, with_topics=True)
        passages = synthetic_passages(topic_of, rng)
        picks = rng.integers(0, n, args.queries)
        queries = unit(vectors[picks] + rng.standard_normal((args.queries, DIM), dtype=np.float32) * 0.03)
        query_texts = [" ".join(passages[i].text.split()[:3]) for i in picks]
        exact = np.argsort(-(queries @ vectors.T), axis=1)[:, :10]
        reference = None
        for name in args.stores:
            with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
                uri = args.milvus_uri or f"{tmp}/store.db"
                row, hits = measure_store(name, vectors, passages, queries, query_texts, exact, uri, reference)
            reference = reference or (hits if name == "embedded" else None)
            rows.append(row)
            print(row, file=sys.stderr, flush=True)
        del vectors, passages
    table = ["| chunks | store | ingest (s) | ingest (chunks/s) | dense p50 (ms) | dense p95 (ms) | hybrid p50 (ms) "
             "| hybrid p95 (ms) | dense recall@10 vs exact (%) | hybrid top 10 shared with embedded (%) "
             "| memory growth (MB) | on disk (MB) |", "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        table.append(f"| {r['chunks']:,} | {r['store']} | {r['ingest_s']} | {r['ingest_per_s']} | {r['dense_p50_ms']} | "
                     f"{r['dense_p95_ms']} | {r['hybrid_p50_ms']} | {r['hybrid_p95_ms']} | {r['dense_recall@10']} | "
                     f"{r['hybrid_top10_overlap']} | {r['memory_growth_mb']} | {r['disk_mb'] or ''} |")
    import pymilvus

    note = (f"\n{args.queries} queries per size, one at a time; {os.cpu_count()} CPUs, load average "
            f"{[round(x, 2) for x in os.getloadavg()]} at the end; Milvus: "
            f"{args.milvus_uri or 'milvus-lite (local .db file)'}, pymilvus {pymilvus.__version__}.\n")
    return _write(table, note, args.out)


def _write(table: list[str], note: str, out: str | None) -> int:
    text = "\n".join(table) + "\n" + note
    print(text)
    if out:
        with open(out, "w", encoding="utf-8") as fh:
            fh.write(text)
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[49, 10_000, 100_000, 1_000_000])
    p.add_argument("--queries", type=int, default=200)
    p.add_argument("--hnsw-max", type=int, default=100_000, help="build HNSW only up to this size (slow to build)")
    p.add_argument("--out", help="write the markdown table here")
    p.add_argument("--stores", nargs="+", choices=["embedded", "milvus"],
                   help="compare these passage stores instead of the FAISS index kinds")
    p.add_argument("--milvus-uri", help="a Milvus server (http://HOST:PORT) instead of milvus-lite")
    p.add_argument("--workdir", help="where milvus-lite's .db files go (default: the temp folder)")
    args = p.parse_args(argv)
    if args.stores:
        return compare_stores(args)
    settings = VectorIndexSettings()
    rng = np.random.default_rng(0)
    rows = []
    for n in args.sizes:
        vectors = synthetic(n, rng)
        picks = rng.integers(0, n, args.queries)
        queries = unit(vectors[picks] + rng.standard_normal((args.queries, DIM), dtype=np.float32) * 0.03)
        flat, truth = measure("flat", vectors, queries, None, settings)
        flat["recall@10"] = 100.0
        kinds = ["ivf"] + (["hnsw"] if n <= args.hnsw_max else [])
        auto = vector_index_kind(n, settings)
        for row in [flat] + [measure(k, vectors, queries, truth, settings)[0] for k in kinds]:
            row.update(chunks=n, auto=row["kind"] == auto["kind"],
                       params=str(auto) if row["kind"] == "ivf" and auto["kind"] == "ivf" else "")
            rows.append(row)
            print(row, file=sys.stderr, flush=True)
        del vectors
    table = ["| chunks | index | chosen by size | build (s) | query p50 (ms) | query p95 (ms) | recall@10 vs flat (%) "
             "| index size (MB) | RSS growth (MB) |", "|---:|---|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        table.append(f"| {r['chunks']:,} | {r['kind']} | {'yes' if r['auto'] else ''} | {r['build_s']} | "
                     f"{r['query_p50_ms']} | {r['query_p95_ms']} | {r['recall@10']} | {r['index_mb']} | "
                     f"{r['rss_growth_mb']} |")
    ivf = vector_index_kind(max(args.sizes), settings)
    note = (f"\n{args.queries} queries per size, one thread; {os.cpu_count()} CPUs, load average "
            f"{[round(x, 2) for x in os.getloadavg()]} at the end. VectorIndexSettings: {settings.as_dict()}; "
            f"at {max(args.sizes):,} chunks: {ivf}.\n")
    return _write(table, note, args.out)


if __name__ == "__main__":
    sys.exit(main())
