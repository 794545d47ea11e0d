"""How vector retrieval cost and memory grow with the number of chunks: flat FAISS vs IVF (and HNSW).

Synthetic data: unit 384-d vectors drawn around random topic centres (cosine about 0.7 to their centre,
about 0.5 between two chunks of a topic), so nearest neighbours have structure as real embeddings do;
a query is a chunk's vector with noise. Each query is searched alone on one thread, as the chatbot does
(``Settings.faiss_threads``), for the retriever's 20 candidates; recall@10 is measured against the flat
index. The index kinds are built by ``chatbot.index.store.make_vector_index`` with the IVF parameters of
``chatbot.config.VectorIndexSettings``; "auto" is what the chatbot would build for that size.

    python scripts/scale_bench.py --sizes 49 10000 100000 1000000 --out docs/scale.md
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

DIM = 384
CANDIDATES = 20  # chatbot.qa.retrieval: max(MIN_CANDIDATES, 4 * k) for k = 5


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def synthetic(n: int, rng: np.random.Generator, topics: int = 2000, block: int = 100_000) -> np.ndarray:
    centres = unit(rng.standard_normal((topics, DIM), dtype=np.float32))
    out = np.empty((n, DIM), dtype=np.float32)
    for a in range(0, n, block):
        b = min(n, a + block)
        noise = rng.standard_normal((b - a, DIM), dtype=np.float32) / np.float32(DIM**0.5)
        out[a:b] = unit(centres[rng.integers(0, topics, b - a)] + noise)
    return out


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


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[49, 10_000, 100_000, 1_000_000])
    p.add_argument("--queries", type=int, default=200)
    p.add_argument("--hnsw-max", type=int, default=100_000, help="build HNSW only up to this size (slow to build)")
    p.add_argument("--out", help="write the markdown table here")
    args = p.parse_args(argv)
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
    text = "\n".join(table) + "\n" + note
    print(text)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as fh:
            fh.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
