"""Answering without torch: tokenization by the tokenizers library, the ONNX reader, the index's ONNX
query encoder, their fallbacks, and a first answer that imports neither torch nor transformers."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from chatbot.serve.cli import main
from chatbot.config import SHIPPED_READER_DIR, Settings
from chatbot.models.embedding import MINILM_EMBEDDER, Embedder, OnnxQueryEmbedder
from chatbot.errors import ModelLoadError
from chatbot.index.store import QUERY_ENCODER_DIR, load_index
from chatbot.index.sync import ensure_index, query_embedder
from chatbot.qa.chatbot import Chatbot
from chatbot.models.reader import ONNX_FILES, Reader, window_stride
from chatbot.models.tokenization import WordPieces

ROOT = Path(__file__).resolve().parents[1]
QUESTIONS = ["Which platform is Grok integrated into?", "How much did xAI raise?", "Who is the CEO of X?",
             "Сколько денег собрал Маск?", "Кто генеральный директор X?", "Where is the Colossus supercomputer?"]
_no_onnx = pytest.mark.skipif(not (SHIPPED_READER_DIR / ONNX_FILES["fp32"]).is_file(),
                              reason="no model.onnx beside the shipped reader")


def shipped_onnx(test):
    return pytest.mark.shipped_weights(_no_onnx(test))


# The query encoder written into the index is for sentence-transformers embedders: this module's index is built
# with all-MiniLM-L6-v2 (the shipped ONNX encoder embeds its queries itself).
@pytest.fixture(scope="module")
def embedder():
    return Embedder(MINILM_EMBEDDER)


@pytest.fixture(scope="module")
def built_corpus(tmp_path_factory, embedder):
    root = tmp_path_factory.mktemp("built-st")
    corpus = Path(shutil.copytree(Path(__file__).resolve().parents[1] / "corpus", root / "corpus"))
    ensure_index(Settings(embedder=MINILM_EMBEDDER).with_(corpus_dir=corpus, index_dir=root / "index"),
                 embedder=embedder)
    return corpus, root / "index"


def _corpus_passages() -> list[str]:
    """Every article of the demo corpus, whole (long, and one in Russian) and by paragraph."""
    texts = [p.read_text(encoding="utf-8") for p in sorted((ROOT / "corpus").glob("*.txt"))]
    return texts + [line for t in texts for line in t.splitlines() if line.strip()]


# ---------------------------------------------------------------- tokenization


@pytest.mark.parametrize(("max_length", "stride"), [(256, 96), (64, 16)])
def test_windows_are_the_hugging_face_tokenizers_windows(max_length, stride):
    from transformers import AutoTokenizer

    hf = AutoTokenizer.from_pretrained(SHIPPED_READER_DIR)
    tokens = WordPieces(hf.backend_tokenizer.to_str(), max_length, window_stride(max_length, stride))
    passages = _corpus_passages()
    assert any(sum("а" <= c <= "я" for c in p) > 100 for p in passages)  # the Russian article is there
    for question in QUESTIONS:
        enc = hf([question] * len(passages), passages, truncation="only_second", max_length=max_length,
                 stride=window_stride(max_length, stride), return_overflowing_tokens=True,
                 return_offsets_mapping=True, padding=False)
        windows = tokens.windows([(question, p) for p in passages])
        assert len(windows) == len(enc["input_ids"]) > len(passages)  # long passages give several windows
        for w, window in enumerate(windows):
            assert window.ids == enc["input_ids"][w]
            if "token_type_ids" in enc:
                assert window.type_ids == enc["token_type_ids"][w]
            else:  # XLM-R's tokenizer (the shipped reader's) has none: ours mark the passage, as in training
                assert set(window.type_ids) <= {0, 1} and window.type_ids[0] == 0
            assert window.sequence_ids == enc.sequence_ids(w)
            assert [tuple(o) for o in window.offsets] == [tuple(o) for o in enc["offset_mapping"][w]]
            assert window.pair == enc["overflow_to_sample_mapping"][w]


def test_question_truncation_matches_the_old_hugging_face_cut():
    from transformers import AutoTokenizer

    hf = AutoTokenizer.from_pretrained(SHIPPED_READER_DIR)
    tokens = WordPieces(hf.backend_tokenizer.to_str(), 256)
    for question in ["why " * 500, "Сколько стоит " * 40, QUESTIONS[0]]:
        offsets = hf(question, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
        expected = question if len(offsets) <= 64 else question[: offsets[63][1]]
        assert tokens.truncate_question(question) == expected


# ---------------------------------------------------------------- reader


def _same_spans(a, b, tolerance):
    assert [(s.text_index, s.start, s.end, s.text) for s in a] == [(s.text_index, s.start, s.end, s.text) for s in b]
    assert [s.score for s in a] == pytest.approx([s.score for s in b], abs=tolerance)


def test_export_round_trip_reads_what_torch_reads(tmp_path, tiny_reader_dir):
    from chatbot.models.export import export_reader

    model_dir = Path(shutil.copytree(tiny_reader_dir, tmp_path / "reader"))
    written = export_reader(model_dir, int8=True)
    assert set(written) == {"fp32", "int8"} and all(p.parent == model_dir for p in written.values())
    import onnx

    ops = {n.name.removesuffix("_quant").removesuffix("/MatMul"): n.op_type for n in onnx.load(str(written["int8"])).graph.node
           if n.op_type in ("MatMul", "MatMulInteger")}
    layer = "/model/bert/encoder/layer.1"
    assert {ops[f"{layer}/attention/self/query"], ops[f"{layer}/intermediate/dense"]} == {"MatMulInteger"}
    assert {ops[f"{layer}/output/dense"], ops["/model/qa_outputs"], ops[f"{layer}/attention/self"]} == {"MatMul"}  # fp32
    assert _largest_int8_weight(written["int8"]) <= 64
    passages = _corpus_passages()[:12]
    for question in QUESTIONS[:3]:
        onnx = Reader(model_dir, runtime="onnx").read(question, passages, top_k=5)
        torch = Reader(model_dir, runtime="torch").read(question, passages, top_k=5)
        _same_spans(onnx, torch, 1e-5)
    int8 = Reader(model_dir, precision="int8")
    assert int8.read(QUESTIONS[0], passages) and int8.runtime == "onnx"


def _largest_int8_weight(onnx_file: Path) -> int:
    import numpy as np
    import onnx
    from onnx import numpy_helper

    weights = [numpy_helper.to_array(t) for t in onnx.load(str(onnx_file)).graph.initializer
               if t.data_type == onnx.TensorProto.INT8]
    assert weights
    return max(int(np.abs(w.astype(np.int16)).max()) for w in weights)


@pytest.mark.shipped_weights
def test_the_shipped_int8_reader_reads_the_same_on_every_x86_cpu():
    """7-bit weights (quantize_dynamic's reduce_range): on x86 CPUs with AVX2 but no VNNI, ONNX Runtime's int8 kernels
    add pairs of 8-bit products in 16 bits, which full-range weights overflow; the shipped reader lost 4.9 F1 on the
    gate that way (evals/README.md, "The int8 reader on AVX2 CPUs")."""
    assert _largest_int8_weight(SHIPPED_READER_DIR / ONNX_FILES["int8"]) <= 64


@shipped_onnx
def test_shipped_onnx_reader_reads_what_torch_reads_on_corpus_questions():
    """model.onnx stores the fp16 weights as they are and computes in fp32, like the torch reader."""
    from chatbot.tools.training import corpus_paragraph_cases

    cases = corpus_paragraph_cases(ROOT / "evals/questions.jsonl", ROOT / "corpus")
    onnx, torch = Reader(runtime="onnx"), Reader(runtime="torch")
    for _, question, paragraph, _ in cases[::3]:
        _same_spans(onnx.read(question, [paragraph], top_k=3), torch.read(question, [paragraph], top_k=3), 1e-4)
    assert (onnx.runtime, torch.runtime) == ("onnx", "torch")
    assert (SHIPPED_READER_DIR / ONNX_FILES["fp32"]).stat().st_size < 0.6 * 4 * 22.7e6  # fp16 weights: about half


@shipped_onnx
def test_auto_runtime_prefers_onnx_and_explicit_torch_is_honoured():
    assert Reader(precision="int8").load().runtime == "onnx"
    assert Reader(runtime="torch").load().runtime == "torch"
    int8_file = (SHIPPED_READER_DIR / ONNX_FILES["int8"]).is_file()
    assert Reader(precision="int8").load().runtime == ("onnx" if int8_file else "torch")


@pytest.fixture
def reader_with_bad_onnx(tmp_path, tiny_reader_dir):
    model_dir = Path(shutil.copytree(tiny_reader_dir, tmp_path / "reader"))
    (model_dir / ONNX_FILES["int8"]).write_bytes(b"not an onnx model")
    return model_dir


def test_damaged_onnx_falls_back_to_torch_with_a_log_line(reader_with_bad_onnx, caplog):
    with caplog.at_level(logging.WARNING, logger="chatbot.models.reader"):
        reader = Reader(reader_with_bad_onnx, precision="int8").load()
    assert reader.runtime == "torch" and reader.read(QUESTIONS[0], ["Grok is on the X platform."])
    assert "falling back to torch" in caplog.text and str(reader_with_bad_onnx) in caplog.text


def test_damaged_onnx_asked_for_explicitly_is_one_clear_error(reader_with_bad_onnx, argv_tail, capsys, monkeypatch):
    monkeypatch.setenv("CHATBOT_READER_RUNTIME", "onnx")
    monkeypatch.setenv("CHATBOT_READER_PRECISION", "int8")
    assert main(["ask", QUESTIONS[0], *argv_tail[:4], "--reader", str(reader_with_bad_onnx)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: Cannot load the ONNX reader") and "\n" not in err and "Traceback" not in err


@pytest.mark.shipped_weights
def test_a_damaged_tokenizer_beside_the_onnx_reader_is_one_clear_error(tmp_path):
    model_dir = tmp_path / "reader"
    model_dir.mkdir()
    for f in SHIPPED_READER_DIR.iterdir():
        (model_dir / f.name).symlink_to(f)
    (model_dir / "tokenizer.json").unlink()
    (model_dir / "tokenizer.json").write_text("{damaged")
    with pytest.raises(ModelLoadError, match="Cannot read the tokenizer .*tokenizer.json"):
        Reader(model_dir, runtime="onnx", precision="int8").load()


def test_missing_onnx_file_asked_for_explicitly_says_how_to_make_it(tiny_reader_dir):
    with pytest.raises(ModelLoadError, match="chatbot export-reader"):
        Reader(tiny_reader_dir, runtime="onnx").load()


def test_without_onnxruntime_the_reader_runs_on_torch(tmp_path, tiny_reader_dir, monkeypatch, caplog):
    model_dir = Path(shutil.copytree(tiny_reader_dir, tmp_path / "reader"))
    (model_dir / ONNX_FILES["int8"]).write_bytes(b"never opened")
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import onnxruntime raises ImportError
    with caplog.at_level(logging.WARNING, logger="chatbot.models.reader"):
        assert Reader(model_dir, precision="int8").load().runtime == "torch"
    assert "onnxruntime is not installed" in caplog.text


# ---------------------------------------------------------------- query encoder


def test_index_holds_a_query_encoder_that_matches_sentence_transformers(built_corpus, embedder):
    _, index_dir = built_corpus
    index = load_index(index_dir)
    assert index.query_encoder == {"pooling": "mean", "normalize": True, "prompt": "", "max_length": 256,
                                   "dimension": 384}
    assert f"{QUERY_ENCODER_DIR}/model.onnx" in index.manifest["checksums"]
    onnx = query_embedder(index, embedder, Settings(embedder=MINILM_EMBEDDER))
    assert isinstance(onnx, OnnxQueryEmbedder) and onnx.name == embedder.name and onnx.dimension == 384
    queries = QUESTIONS + ["Colossus " * 400]  # longer than the 256-token limit
    cosines = (onnx.embed(queries, query=True) * embedder.embed(queries, query=True)).sum(axis=1)
    assert cosines.min() > 0.9999
    assert onnx.embed(["a passage"]).tolist() == embedder.embed(["a passage"]).tolist()  # passages: sentence-transformers


def _copy_index(built_corpus, tmp_path) -> Path:
    return Path(shutil.copytree(built_corpus[1], tmp_path / "index"))


def test_an_index_without_query_encoder_embeds_queries_with_sentence_transformers(built_corpus, embedder, tmp_path):
    index_dir = _copy_index(built_corpus, tmp_path)
    manifest = json.loads((index_dir / "manifest.json").read_text())
    manifest["query_encoder"] = None  # built with an embedder the encoder does not reproduce
    (index_dir / "manifest.json").write_text(json.dumps(manifest))
    shutil.rmtree(index_dir / QUERY_ENCODER_DIR)
    assert query_embedder(load_index(index_dir), embedder, Settings(embedder=MINILM_EMBEDDER)) is embedder
    with pytest.raises(ModelLoadError, match="no ONNX query encoder"):
        query_embedder(load_index(index_dir), embedder, Settings(embedder=MINILM_EMBEDDER, query_runtime="onnx"))


def _index_from_before_query_encoders(built_corpus, tmp_path) -> tuple[Path, dict]:
    """A copy of the built index as the version before this one wrote it, and its manifest."""
    index_dir = _copy_index(built_corpus, tmp_path)
    manifest = json.loads((index_dir / "manifest.json").read_text())
    del manifest["query_encoder"]
    manifest["checksums"] = {k: v for k, v in manifest["checksums"].items() if not k.startswith(QUERY_ENCODER_DIR)}
    (index_dir / "manifest.json").write_text(json.dumps(manifest))
    shutil.rmtree(index_dir / QUERY_ENCODER_DIR)
    return index_dir, manifest


def test_an_index_from_before_query_encoders_gets_one_without_re_embedding(built_corpus, embedder, tmp_path, caplog):
    index_dir, manifest = _index_from_before_query_encoders(built_corpus, tmp_path)
    settings = Settings(embedder=MINILM_EMBEDDER).with_(corpus_dir=built_corpus[0], index_dir=index_dir)

    class NoReembedding:  # the old passages' vectors are kept: embedding them again would fail here
        name, dimension = embedder.name, embedder.dimension
        export_query_encoder = embedder.export_query_encoder

        def embed(self, texts, **kwargs):
            raise AssertionError("passages embedded again")

    with caplog.at_level(logging.INFO, logger="chatbot"):
        index = ensure_index(settings, embedder=NoReembedding())
    assert "adding an ONNX query encoder" in caplog.text
    after = json.loads((index_dir / "manifest.json").read_text())
    assert after["query_encoder"]["pooling"] == "mean" and after["created_at"] == manifest["created_at"]
    assert {k: v for k, v in after["checksums"].items() if k in manifest["checksums"]} == manifest["checksums"]
    assert isinstance(query_embedder(index, embedder, settings), OnnxQueryEmbedder)
    assert [p.name for p in tmp_path.iterdir() if ".tmp-" in p.name or ".old-" in p.name] == []


def test_a_read_only_index_from_before_query_encoders_still_answers(built_corpus, embedder, tmp_path, monkeypatch,
                                                                     caplog):
    from chatbot.index import sync
    from chatbot.errors import IndexBuildError

    index_dir, _ = _index_from_before_query_encoders(built_corpus, tmp_path)

    def read_only(*_):
        raise IndexBuildError("Adding a query encoder to the index failed (PermissionError: read-only)")

    monkeypatch.setattr(sync, "add_query_encoder", read_only)
    settings = Settings(embedder=MINILM_EMBEDDER).with_(corpus_dir=built_corpus[0], index_dir=index_dir)
    with caplog.at_level(logging.WARNING, logger="chatbot"):
        index = ensure_index(settings, embedder=embedder)
    assert "read-only" in caplog.text and len(index) == len(load_index(built_corpus[1]))
    assert query_embedder(index, embedder, settings) is embedder


def test_a_damaged_query_encoder_falls_back_or_fails_clearly(built_corpus, embedder, tmp_path, caplog):
    index_dir = _copy_index(built_corpus, tmp_path)
    model = index_dir / QUERY_ENCODER_DIR / "model.onnx"
    model.write_bytes(model.read_bytes()[:1000])
    index = load_index(index_dir)  # the passages and vectors are intact: the index still loads
    with caplog.at_level(logging.WARNING, logger="chatbot.models.embedding"):
        vectors = query_embedder(index, embedder, Settings(embedder=MINILM_EMBEDDER)).embed(["Where is Colossus?"], query=True)
    assert vectors.tolist() == embedder.embed(["Where is Colossus?"], query=True).tolist()
    assert "embedding queries with sentence-transformers" in caplog.text and "corrupt" in caplog.text
    with pytest.raises(ModelLoadError, match="corrupt"):
        query_embedder(index, embedder, Settings(embedder=MINILM_EMBEDDER, query_runtime="onnx")).embed(["Where?"], query=True)


def test_queries_go_to_sentence_transformers_when_asked(built_corpus, embedder):
    assert query_embedder(load_index(built_corpus[1]), embedder, Settings(embedder=MINILM_EMBEDDER, query_runtime="torch")) is embedder


def test_pooling_the_onnx_path_does_not_reproduce_keeps_sentence_transformers(embedder, tmp_path, caplog):
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules.pooling import Pooling

    from chatbot.models.export import export_query_encoder

    max_pooled = SentenceTransformer(modules=[embedder._get_model()[0], Pooling(384, pooling_mode="max")])
    with caplog.at_level(logging.INFO, logger="chatbot.models.export"):
        assert export_query_encoder(max_pooled, tmp_path / "encoder") is None
    assert "pooling 'max'" in caplog.text and not (tmp_path / "encoder").exists()


def test_an_embedder_without_export_builds_an_index_without_encoder(tmp_path, corpus_copy, embedder):
    class Plain:  # a TextEmbedder with no export_query_encoder
        name, dimension = embedder.name, embedder.dimension

        def embed(self, texts, **kwargs):
            return embedder.embed(texts, **kwargs)

    settings = Settings(embedder=MINILM_EMBEDDER).with_(corpus_dir=corpus_copy, index_dir=tmp_path / "index")
    index = ensure_index(settings, embedder=Plain())
    assert index.query_encoder is None and not (tmp_path / "index" / QUERY_ENCODER_DIR).exists()


# ---------------------------------------------------------------- the first answer


@shipped_onnx
def test_answering_through_onnx_imports_no_torch(corpus_copy, tmp_path):
    """The index built and the question answered by the shipped encoder and reader, in a new process."""
    corpus, index_dir = corpus_copy, tmp_path / "index"
    script = f"""
import sys
from chatbot import Chatbot
bot = Chatbot.load(index_dir={str(index_dir)!r}, corpus_dir={str(corpus)!r})
answer = bot.ask("Where is the Colossus supercomputer?")
assert answer.text and "Memphis" in answer.text, answer
assert bot.reader.runtime == "onnx", bot.reader.runtime
heavy = sorted(m for m in ("torch", "transformers", "sentence_transformers") if m in sys.modules)
assert not heavy, heavy
print("ok", answer.text)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, cwd=ROOT,
                          env={k: v for k, v in os.environ.items() if not k.startswith("CHATBOT_")})
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.startswith("ok ")


def test_onnx_query_encoder_retrieves_the_same_passages(built_corpus, embedder):
    corpus, index_dir = built_corpus
    settings = Settings(embedder=MINILM_EMBEDDER).with_(corpus_dir=corpus, index_dir=index_dir)
    index = ensure_index(settings, embedder=embedder)
    onnx = Chatbot(index, settings, query_embedder(index, embedder, settings))
    torch = Chatbot(index, settings, embedder)
    for question in QUESTIONS:
        assert [(p.source, p.start, p.end) for p in onnx.search(question, k=10)] == \
               [(p.source, p.start, p.end) for p in torch.search(question, k=10)]
