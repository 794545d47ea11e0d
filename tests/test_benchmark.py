"""`chatbot bench`: the figures' maths and the report's shape on a tiny question file (no timings asserted)."""

import importlib.util
import json
from pathlib import Path

import pytest

from chatbot.models.embedding import MINILM_EMBEDDER

from chatbot.tools.benchmark import (METRICS, bench_questions, f1_by_language, f1_percent, latency_figures,
                                     markdown_table, ratios, run_bench)
from chatbot.config import BenchSettings, Settings
from chatbot.tools.evaluation import load_questions

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "tests" / "data" / "bench_questions.jsonl"
HAYSTACK = importlib.util.find_spec("haystack") is not None and \
    importlib.util.find_spec("haystack_integrations.components.readers.transformers") is not None


def test_bench_questions_use_standalone_forms_and_skip_followups_without_one():
    rows = [{"question": "Q1", "answers": ["a"], "answerable": True},
            {"question": "And it?", "history": ["Q1"], "standalone": "Q2", "answers": ["b"], "answerable": True},
            {"question": "And then?", "history": ["Q1"], "answers": ["c"], "answerable": True},
            {"question": "Q3", "answers": [], "answerable": False}]
    assert [q["question"] for q in bench_questions(rows)] == ["Q1", "Q2", "Q3"]


def test_f1_counts_answerable_questions_only_and_abstentions_as_zero():
    qs = [{"answers": ["Sam Altman"], "answerable": True}, {"answers": ["2023"], "answerable": True},
          {"answers": [], "answerable": False}]
    assert f1_percent(["Sam Altman", None, "Paris"], qs) == 50.0
    assert f1_percent(["Altman", "in 2023", None], qs) == round(100 * (2 / 3 + 2 / 3) / 2, 1)


def test_f1_is_also_given_per_language_of_the_question():
    qs = [{"answers": ["308"], "answerable": True, "lang": "en"}, {"answers": ["Лютер"], "answerable": True, "lang": "ru"},
          {"answers": ["1777"], "answerable": True, "lang": "en"}]
    assert f1_by_language(["308", "Лавуазье", None], qs) == {"en": 50.0, "ru": 0.0}
    machine = {"cpus": 2, "load_avg_1m_5m_15m": [1.0, 1.0, 1.0]}
    figures = {**{m: 1.0 for m in METRICS}, "f1_by_lang": {"en": 50.0, "ru": 20.0}}
    table = markdown_table({"questions": 3, "runs": 1, "machine_before": machine, "machine_after": machine,
                            "ours": figures, "haystack": {**figures, "f1_by_lang": {"en": 25.0, "ru": None}}})
    assert "| F1 (en) | 50.0 | 25.0 | 2.00 |" in table and "| F1 (ru) | 20.0 | - | - |" in table


def test_latency_is_the_median_per_question_then_percentiles():
    medians, figures = latency_figures([[10, 30, 20], [5, 5, 100], [40, 41, 39], [1, 2, 3]])
    assert medians == [20, 5, 40, 2]
    assert figures == {"p50_ms": 12.5, "p95_ms": round(20 + 0.85 * 20, 1)}


def test_ratios_are_ours_over_theirs():
    ours = {"p50_ms": 20.0, "p95_ms": 50.0, "f1": 60.0, "cold_start_s": 4.0, "index_s": 2.0, "rss_mb": 500.0}
    theirs = {"p50_ms": 80.0, "p95_ms": 100.0, "f1": 50.0, "cold_start_s": 8.0, "index_s": 0.0, "rss_mb": 1000.0}
    assert ratios(ours, theirs) == {"ratio_p50": 0.25, "ratio_p95": 0.5, "ratio_f1": 1.2,
                                    "ratio_cold_start": 0.5, "ratio_rss": 0.5}


def test_markdown_table_has_a_row_per_figure():
    machine = {"cpus": 2, "load_avg_1m_5m_15m": [1.0, 1.0, 1.0]}
    figures = {m: 1.0 for m in METRICS}
    table = markdown_table({"questions": 3, "runs": 2, "machine_before": machine, "machine_after": machine,
                            "ours": figures, "haystack": {**figures, "p50_ms": 4.0}})
    assert "| latency p50 (ms) | 1.0 | 4.0 | 0.25 |" in table
    assert table.count("\n|") >= 7


@pytest.mark.parametrize("vs_haystack", [False, pytest.param(True, marks=pytest.mark.skipif(
    not HAYSTACK, reason="the bench extra is not installed (pip install '.[bench]')"))])
def test_run_bench_report_shape(built_corpus, trained_reader, tiny_reader_dir, tmp_path, vs_haystack):
    docs = tmp_path / "docs" if importlib.util.find_spec("matplotlib") else None
    corpus, index = built_corpus
    # Haystack reads with the reader's torch weights, which the shipped reader (ONNX only) does not carry: both
    # systems then read with the tiny checkpoint.
    reader = str(tiny_reader_dir) if vs_haystack else trained_reader
    settings = Settings.from_env().with_(corpus_dir=corpus, index_dir=index, reader=reader)
    # Haystack embeds with sentence-transformers: the English MiniLM stands in for the shipped ONNX encoder.
    report = run_bench(settings, TINY, 1, vs_haystack, report_path=tmp_path / "r.json", docs_dir=docs,
                       bench=BenchSettings(cold_start_runs=1, haystack_embedder=MINILM_EMBEDDER))
    assert json.loads((tmp_path / "r.json").read_text()) == report
    n = len(bench_questions(load_questions(TINY)))
    systems = ["ours", "haystack"] if vs_haystack else ["ours"]
    for name in systems:
        figures = report[name]
        assert set(METRICS) <= figures.keys()
        assert figures["p50_ms"] <= figures["p95_ms"] and 0 <= figures["f1"] <= 100
        assert figures["cold_start_s"] > 0 and figures["rss_mb"] > 100 and figures["chunks"] > 0
        assert len(report["latencies_ms"][name]) == n
    if vs_haystack:
        assert report["ratio_p50"] == round(report["ours"]["p50_ms"] / report["haystack"]["p50_ms"], 3)
    if docs:
        assert (docs / "benchmark.png").stat().st_size > 1000
        assert "latency p50 (ms)" in (docs / "benchmark-results.md").read_text()
