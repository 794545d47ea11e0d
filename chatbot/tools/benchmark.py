"""``chatbot bench``: speed, quality and memory of the chatbot, optionally side by side with Haystack 2.

Both systems answer the same questions (the single questions of the eval set, follow-ups in their
standalone form) ``runs`` times, warm; a question's latency is its median over the runs, and p50/p95
are taken over those medians. F1 is the scorer of ``chatbot eval`` over the answerable questions
(an abstention scores 0). Cold start is a new process from launch to its first printed answer, and
its peak RSS is that process's. Index time is the build of the corpus index with models loaded.

The Haystack pipeline (``pip install '.[bench]'``) uses the same embedder on sentence-transformers (for the
shipped ONNX encoder, its weights as a transformers folder: ``--haystack-embedder runs/e5-small``, with e5's
prompts) and the same reader (through its ``TransformersExtractiveReader``, fp32, same window and stride; it
reads torch weights, so ``--haystack-reader`` gives it a checkpoint of the shipped ONNX reader, which
``chatbot torch-reader`` rebuilds), word-based splitting, an ``InMemoryDocumentStore`` and its embedding
retriever. F1 is also given per language of the questions.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from ..config import BenchSettings, Settings
from .evaluation import _percentile, f1_score, load_questions
from .loadtest import process_memory_mb

METRICS = ("p50_ms", "p95_ms", "f1", "cold_start_s", "index_s", "rss_mb")


# ---------------------------------------------------------------- questions and figures


def bench_questions(rows: list[dict]) -> list[dict]:
    """``{"question", "answers", "answerable", "lang"}`` per eval row asked on its own: single questions, and
    follow-ups in their standalone form (follow-ups without one are left out)."""
    out = []
    for row in rows:
        question = row.get("standalone") if row.get("history") else row["question"]
        if question:
            out.append({"question": question, "answers": row.get("answers") or [],
                        "answerable": bool(row.get("answerable")), "lang": row.get("lang")})
    return out


def f1_percent(predictions: list[str | None], questions: list[dict]) -> float | None:
    """Mean token F1 (``chatbot eval``'s scorer) over the answerable questions, as a percentage."""
    scores = [f1_score(pred or "", q["answers"]) for pred, q in zip(predictions, questions) if q["answerable"]]
    return round(100 * sum(scores) / len(scores), 1) if scores else None


def f1_by_language(predictions: list[str | None], questions: list[dict]) -> dict[str, float | None]:
    """:func:`f1_percent` over each language's questions (the ``lang`` of their eval rows)."""
    out = {}
    for lang in sorted({q["lang"] for q in questions if q.get("lang")}):
        pairs = [(p, q) for p, q in zip(predictions, questions) if q.get("lang") == lang]
        out[lang] = f1_percent([p for p, _ in pairs], [q for _, q in pairs])
    return out


def latency_figures(per_question_ms: list[list[float]]) -> tuple[list[float], dict]:
    """Each question's median over runs, and the p50/p95 of those medians."""
    medians = [statistics.median(runs) for runs in per_question_ms]
    return medians, {"p50_ms": round(_percentile(medians, 50), 1), "p95_ms": round(_percentile(medians, 95), 1)}


def timed_runs(answer, questions: list[dict], runs: int) -> tuple[list[list[float]], list[str | None]]:
    """Latencies (ms, per question, per run) and the last run's answers of ``answer(question)``."""
    latencies: list[list[float]] = [[] for _ in questions]
    predictions: list[str | None] = []
    for _ in range(runs):
        predictions = []
        for i, q in enumerate(questions):
            started = time.perf_counter()
            predictions.append(answer(q["question"]))
            latencies[i].append((time.perf_counter() - started) * 1000)
    return latencies, predictions


def ratios(ours: dict, theirs: dict) -> dict:
    """``ratio_<metric>`` (unit dropped: ``ratio_p50``) = ours / theirs for every metric both have
    (lower is better except for F1)."""
    return {"ratio_" + m.rsplit("_", 1)[0] if m != "f1" else "ratio_f1": round(ours[m] / theirs[m], 3)
            for m in METRICS if ours.get(m) and theirs.get(m)}


def first_answer_process(argv: list[str], poll_s: float = 0.02) -> tuple[float, float]:
    """Seconds from launching ``argv`` to its exit (after its first answer) and its peak RSS in MB.

    The peak is polled from /proc (VmHWM): ``ru_maxrss`` of a child counts its parent's memory at
    fork, so it would report this (large) benchmark process instead.
    """
    with tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=err)
        peak = 0.0
        while proc.poll() is None:
            peak = max(peak, process_memory_mb(proc.pid, "VmHWM") or 0.0)
            time.sleep(poll_s)
        seconds = time.perf_counter() - started
        err.seek(0)
        stderr = err.read().decode(errors="replace")
    if proc.returncode != 0:
        raise RuntimeError(f"{argv[:4]} failed ({proc.returncode}): {stderr[-2000:]}")
    return seconds, peak


def cold_start(argv: list[str], runs: int) -> dict:
    """Median cold start and peak RSS over ``runs`` new processes."""
    results = [first_answer_process(argv) for _ in range(runs)]
    return {"cold_start_s": round(statistics.median(s for s, _ in results), 2),
            "rss_mb": round(statistics.median(r for _, r in results), 1)}


# ---------------------------------------------------------------- the two systems


class Ours:
    """The chatbot as users run it: ``Chatbot.load`` then ``ask``."""

    name = "ours"

    def __init__(self, settings: Settings):
        from ..qa.chatbot import Chatbot

        self.settings = settings
        self.bot = Chatbot.load(settings=settings)
        self.bot.warm_up()

    def answer(self, question: str) -> str | None:
        return self.bot.ask(question).text

    def index_seconds(self) -> tuple[float, int]:
        """Build the corpus index from scratch into a temporary folder: (seconds, chunks). The passage
        embedder is loaded first (answering never loaded it: queries go through the index's ONNX encoder)."""
        from ..index.sync import ensure_index

        self.bot.embedder.embed(["warm up"])
        with tempfile.TemporaryDirectory() as tmp:
            started = time.perf_counter()
            index = ensure_index(replace(self.settings, index_dir=Path(tmp) / "index"), embedder=self.bot.embedder)
            return time.perf_counter() - started, len(index)

    def cold_start_argv(self, question: str) -> list[str]:
        return [sys.executable, "-m", "chatbot", "ask", question, "--corpus", str(self.settings.corpus_dir),
                "--index", str(self.settings.index_dir), "--reader", str(self.settings.reader)]


def _haystack_components(bench: BenchSettings, settings: Settings):
    os.environ.setdefault("HAYSTACK_TELEMETRY_ENABLED", "False")
    try:
        import torch
        from haystack_integrations.components.embedders.sentence_transformers import (
            SentenceTransformersDocumentEmbedder, SentenceTransformersTextEmbedder)
        from haystack_integrations.components.readers.transformers import TransformersExtractiveReader
    except ImportError as exc:
        raise RuntimeError(f"--vs-haystack needs the bench extra: pip install '.[bench]' ({exc})") from exc
    from ..models.embedding import is_onnx_encoder_folder, resolve_model_path

    reader_dir = Path(settings.reader)
    if reader_dir.is_dir() and not any((reader_dir / f).is_file() for f in ("model.safetensors", "pytorch_model.bin")):
        raise RuntimeError(f"--vs-haystack reads with the reader's torch weights, and {reader_dir} has none (the shipped "
                           "reader is ONNX only): pass --haystack-reader DIR of a transformers QA checkpoint of it (chatbot "
                           "torch-reader --out DIR rebuilds one)")
    if not bench.haystack_embedder and is_onnx_encoder_folder(settings.embedder):
        raise RuntimeError(f"--vs-haystack embeds with sentence-transformers, and the embedder {settings.embedder} is "
                           "an ONNX export: pass --haystack-embedder DIR of the same weights as a transformers folder "
                           "(e.g. runs/e5-small from `chatbot convert-e5`)")
    model = resolve_model_path(bench.haystack_embedder or settings.embedder)
    # e5's prompts when ours is the shipped encoder, as it puts them; a sentence-transformers model's own otherwise
    passage_prefix, query_prefix = ("passage: ", "query: ") if is_onnx_encoder_folder(settings.embedder) else ("", "")
    common = {"model": model, "local_files_only": True, "normalize_embeddings": True, "progress_bar": False}
    reader = TransformersExtractiveReader(
        model=str(settings.reader), top_k=1, no_answer=False, max_seq_length=bench.haystack_max_seq_length,
        stride=bench.haystack_stride, model_kwargs={"dtype": torch.float32})
    return (SentenceTransformersDocumentEmbedder(**common, prefix=passage_prefix),
            SentenceTransformersTextEmbedder(**common, prefix=query_prefix), reader)


def _haystack_query_pipeline(store, bench: BenchSettings, settings: Settings):
    from haystack import Pipeline
    from haystack.components.retrievers.in_memory import InMemoryEmbeddingRetriever

    _, text_embedder, reader = _haystack_components(bench, settings)
    pipeline = Pipeline()
    pipeline.add_component("embedder", text_embedder)
    pipeline.add_component("retriever", InMemoryEmbeddingRetriever(store, top_k=bench.haystack_top_k))
    pipeline.add_component("reader", reader)
    pipeline.connect("embedder.embedding", "retriever.query_embedding")
    pipeline.connect("retriever.documents", "reader.documents")
    pipeline.warm_up()
    return pipeline


def _haystack_answer(pipeline, question: str) -> str | None:
    answers = pipeline.run({"embedder": {"text": question}, "reader": {"query": question}})["reader"]["answers"]
    return answers[0].data if answers else None


def _haystack_store(bench: BenchSettings, settings: Settings):
    """An ``InMemoryDocumentStore`` of the corpus (the same cleaned text the chatbot indexes), and the
    seconds to split, embed and write it (models loaded beforehand)."""
    from haystack import Document
    from haystack.components.preprocessors import DocumentSplitter
    from haystack.document_stores.in_memory import InMemoryDocumentStore

    from ..ingest.corpus import load_corpus

    doc_embedder, _, _ = _haystack_components(bench, settings)
    doc_embedder.warm_up()
    docs, _ = load_corpus(settings.corpus_dir)
    splitter = DocumentSplitter(split_by="word", split_length=bench.haystack_split_words,
                                split_overlap=bench.haystack_split_overlap)
    store = InMemoryDocumentStore(embedding_similarity_function="cosine")
    started = time.perf_counter()
    chunks = splitter.run([Document(content=d.content(), meta={"source": d.source}) for d in docs])["documents"]
    store.write_documents(doc_embedder.run(chunks)["documents"])
    return store, time.perf_counter() - started


class Haystack:
    """The same questions through a Haystack 2 pipeline with the same embedder and reader."""

    name = "haystack"

    def __init__(self, settings: Settings, bench: BenchSettings, store_file: Path):
        self.settings, self.bench, self.store_file = settings, bench, store_file
        self.store, self._index_s = _haystack_store(bench, settings)
        self.store.save_to_disk(str(store_file))
        self.pipeline = _haystack_query_pipeline(self.store, bench, settings)

    def answer(self, question: str) -> str | None:
        return _haystack_answer(self.pipeline, question)

    def index_seconds(self) -> tuple[float, int]:
        return self._index_s, self.store.count_documents()

    def cold_start_argv(self, question: str) -> list[str]:
        return [sys.executable, "-m", "chatbot.tools.benchmark", "haystack-first-answer", str(self.store_file), question,
                "--reader", str(self.settings.reader), "--haystack-embedder", self.bench.haystack_embedder]


# ---------------------------------------------------------------- running and reporting


def measure(system, questions: list[dict], runs: int, cold_runs: int) -> tuple[dict, list[float]]:
    """The report figures of one system and its per-question median latencies."""
    print(f"bench {system.name}: {len(questions)} questions x {runs} runs, then index build and "
          f"{cold_runs} cold start(s)", file=sys.stderr, flush=True)
    latencies, predictions = timed_runs(system.answer, questions, runs)
    medians, figures = latency_figures(latencies)
    index_s, chunks = system.index_seconds()
    figures.update(f1=f1_percent(predictions, questions), f1_by_lang=f1_by_language(predictions, questions),
                   index_s=round(index_s, 2),
                   chunks=chunks, chunks_per_s=round(chunks / index_s, 1),
                   **cold_start(system.cold_start_argv(questions[0]["question"]), cold_runs))
    return figures, medians


def machine() -> dict:
    return {"cpus": os.cpu_count(), "load_avg_1m_5m_15m": [round(x, 2) for x in os.getloadavg()],
            "python": sys.version.split()[0]}


def run_bench(settings: Settings, questions_file: str | Path, runs: int, vs_haystack: bool,
              report_path: str | Path | None = None, docs_dir: str | Path | None = None,
              bench: BenchSettings | None = None) -> dict:
    """Run the benchmark; write the JSON report, and the markdown table and plot into ``docs_dir``."""
    bench = bench or BenchSettings()
    questions = bench_questions(load_questions(questions_file))
    if not questions:
        raise ValueError(f"{questions_file}: no questions to benchmark")
    cold_runs = max(1, min(runs, bench.cold_start_runs))
    report = {"questions": len(questions), "runs": runs, "machine_before": machine()}
    distributions = {}
    report["ours"], distributions["ours"] = measure(Ours(settings), questions, runs, cold_runs)
    if vs_haystack:
        with tempfile.TemporaryDirectory() as tmp:
            reader = bench.haystack_reader or settings.reader
            system = Haystack(replace(settings, reader=reader), bench, Path(tmp) / "store.json")
            report["haystack"], distributions["haystack"] = measure(system, questions, runs, cold_runs)
        report.update(ratios(report["ours"], report["haystack"]))
    report["machine_after"] = machine()
    report["latencies_ms"] = {name: [round(x, 2) for x in values] for name, values in distributions.items()}
    if report_path:
        Path(report_path).parent.mkdir(parents=True, exist_ok=True)
        Path(report_path).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    if docs_dir:
        Path(docs_dir).mkdir(parents=True, exist_ok=True)
        (Path(docs_dir) / "benchmark-results.md").write_text(markdown_table(report), encoding="utf-8")
        plot_latencies(report["latencies_ms"], Path(docs_dir) / "benchmark.png")
    return report


ROWS = (("p50_ms", "latency p50 (ms)"), ("p95_ms", "latency p95 (ms)"), ("f1", "F1"),
        ("cold_start_s", "cold start to first answer (s)"), ("index_s", "index build (s)"),
        ("chunks_per_s", "chunks indexed per second"), ("rss_mb", "peak RSS of the cold-start process (MB)"))


def markdown_table(report: dict) -> str:
    """The report as a markdown table (one column per system, plus ours/haystack)."""
    systems = [s for s in ("ours", "haystack") if s in report]
    lines = ["| | " + " | ".join(systems) + (" | ours / haystack |" if len(systems) == 2 else " |"),
             "|---" * (len(systems) + 1 + (len(systems) == 2)) + "|"]
    rows = []
    for key, label in ROWS:
        rows.append((label, [report[s].get(key) for s in systems]))
        if key == "f1":  # then F1 per language
            rows += [(f"F1 ({lang})", [report[s].get("f1_by_lang", {}).get(lang) for s in systems])
                     for lang in report[systems[0]].get("f1_by_lang", {})]
    for label, values in rows:
        cells = ["-" if v is None else str(v) for v in values]
        if len(systems) == 2:
            cells.append(f"{values[0] / values[1]:.2f}" if values[0] and values[1] else "-")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    m = report["machine_before"]
    lines.append("")
    lines.append(f"{report['questions']} questions × {report['runs']} runs; {m['cpus']} CPUs, load average "
                 f"(1, 5, 15 min) {m['load_avg_1m_5m_15m']} before and {report['machine_after']['load_avg_1m_5m_15m']} after.")
    return "\n".join(lines) + "\n"


def plot_latencies(latencies: dict[str, list[float]], out: Path) -> None:
    """Histogram-like step plot of each system's per-question median latency (log scale)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, ax = plt.subplots(figsize=(7, 3.5))
    values = [v for vs in latencies.values() for v in vs]
    bins = np.geomspace(max(min(values), 0.1), max(values) * 1.05, 40)
    for name, vs in latencies.items():
        ax.hist(vs, bins=bins, histtype="step", linewidth=1.5, label=f"{name} (p50 {np.median(vs):.0f} ms)")
    ax.set_xscale("log")
    ax.set_xlabel("latency per question, median over runs (ms, log scale)")
    ax.set_ylabel("questions")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def _haystack_first_answer(argv: list[str]) -> int:
    """Cold-start process for Haystack: load the saved store, build the query pipeline, answer once."""
    import argparse

    from haystack.document_stores.in_memory import InMemoryDocumentStore

    p = argparse.ArgumentParser()
    p.add_argument("store")
    p.add_argument("question")
    p.add_argument("--reader")
    p.add_argument("--haystack-embedder", default="")
    args = p.parse_args(argv)
    settings = Settings.from_env().with_(reader=args.reader)
    import torch

    torch.set_num_threads(settings.threads)
    pipeline = _haystack_query_pipeline(InMemoryDocumentStore.load_from_disk(args.store),
                                        BenchSettings(haystack_embedder=args.haystack_embedder), settings)
    print(_haystack_answer(pipeline, args.question))
    return 0


if __name__ == "__main__" and sys.argv[1:2] == ["haystack-first-answer"]:
    sys.exit(_haystack_first_answer(sys.argv[2:]))
