"""All settings in one place, with defaults that work offline.

Paths are relative to the current directory (``corpus``, ``index``) or to the
installed package (the shipped reader), never to a particular machine.
Environment variables ``CHATBOT_*`` override the defaults.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
# The one reader, for every language (multilingual-e5-small fine-tuned on all of ../shared/qa-data; its model
# card), with its answer policy (answer_policy.json) beside its weights.
SHIPPED_READER_DIR = PACKAGE_DIR / "models" / "reader-multilingual"
# The one encoder, for passages, queries and sentences: multilingual-e5-small on ONNX Runtime, int8 (its card).
SHIPPED_ENCODER_DIR = PACKAGE_DIR / "models" / "encoder"
DEFAULT_EMBEDDER = str(SHIPPED_ENCODER_DIR)
# Corpus files larger than this are skipped with a warning (CHATBOT_MAX_FILE_MB, --max-file-mb).
# The shipped encoder embeds about 90-100 passages of 350 characters a second on 2 quiet CPU cores
# (chatbot/models/encoder/README.md): 10 MB of plain text (about 25,000 passages) is four to five minutes of
# indexing, while a 10 MB PDF or Word file usually holds far less text (images, fonts).
DEFAULT_MAX_FILE_MB = 10.0
MAX_CORPUS_FILE_BYTES = int(DEFAULT_MAX_FILE_MB * 1024 * 1024)
# The corpus folder's own settings for the web chat (title, intro, example questions): UiSettings.
CORPUS_SETTINGS_FILE = "chatbot.json"


def size_limit_message(size: int, limit: int) -> str:
    """Why a file of ``size`` bytes is refused, naming the setting that raises the limit."""
    return (f"too large ({size / 2**20:.1f} MB; the limit is {limit / 2**20:g} MB: set CHATBOT_MAX_FILE_MB "
            "or --max-file-mb to raise it, or split the file)")


@dataclass(frozen=True)
class UiSettings:
    """What the web chat says about the corpus: from ``--title`` and the corpus folder's
    ``chatbot.json`` (``{"title": ..., "intro": ..., "examples": [...]}``), else generic."""

    title: str = "Document QA chatbot"
    intro: str = "Ask about the documents: every answer quotes the passage it comes from."
    examples: tuple[str, ...] = ()

    @classmethod
    def for_corpus(cls, corpus_dir: Path, title: str | None = None) -> "UiSettings":
        """The corpus's ``chatbot.json`` (fields of the wrong type or an unreadable file are ignored,
        with a log line), with ``title`` over its title."""
        import json
        import logging

        path, data = Path(corpus_dir) / CORPUS_SETTINGS_FILE, {}
        if path.is_file():
            try:
                data = json.loads(path.read_text(encoding="utf-8-sig"))
                if not isinstance(data, dict):
                    raise ValueError("top level is not an object")
            except (OSError, ValueError) as exc:
                logging.getLogger(__name__).warning("ignoring %s: %s", path, exc)
                data = {}
        fields = {k: data[k] for k in ("title", "intro") if isinstance(data.get(k), str) and data[k].strip()}
        examples = data.get("examples")
        if isinstance(examples, list):
            fields["examples"] = tuple(e for e in examples if isinstance(e, str) and e.strip())
        return replace(cls(**fields), **({"title": title} if title else {}))


@dataclass(frozen=True)
class ChunkingSettings:
    max_chars: int = 500
    overlap_sentences: int = 1

    def as_dict(self) -> dict:
        return {"max_chars": self.max_chars, "overlap_sentences": self.overlap_sentences}


@dataclass(frozen=True)
class VectorIndexSettings:
    """How ``chatbot.index.store`` stores vectors, chosen by the number of chunks (docs/scale.md).

    Up to ``flat_max_chunks`` an exact ``IndexFlatIP``; above, an ``IndexIVFFlat`` with
    ``ivf_lists_per_sqrt * sqrt(n)`` lists, trained on a sample of ``ivf_train_sample`` vectors and
    searched in ``ivf_nprobe`` lists.
    """

    # Measured by scripts/scale_bench.py (docs/scale.md): one flat query over 100k chunks costs tens of
    # ms, over 10k under a millisecond; IVF with sqrt(n) lists and 32 probes keeps recall@10 near 100.
    flat_max_chunks: int = 50_000
    ivf_lists_per_sqrt: float = 1.0
    ivf_train_sample: int = 64_000
    ivf_nprobe: int = 32

    def as_dict(self) -> dict:
        return {"flat_max_chunks": self.flat_max_chunks, "ivf_lists_per_sqrt": self.ivf_lists_per_sqrt,
                "ivf_train_sample": self.ivf_train_sample, "ivf_nprobe": self.ivf_nprobe}


@dataclass(frozen=True)
class BenchSettings:
    """``chatbot bench`` (chatbot.tools.benchmark) and the Haystack 2 pipeline it compares with."""

    runs: int = 5  # warm runs over the questions; a question's latency is its median
    cold_start_runs: int = 3  # new processes timed to their first answer (at most ``runs``)
    # Haystack: word splits of about our 500-character chunks, its embedding retriever's top 5, and
    # our reader's window (256 tokens) and stride (96).
    haystack_split_words: int = 80
    haystack_split_overlap: int = 10
    haystack_top_k: int = 5
    haystack_max_seq_length: int = 256
    haystack_stride: int = 96
    # The sentence-transformers model Haystack embeds with (--haystack-embedder): "" is the embedder itself, which
    # must then be a sentence-transformers model. The shipped encoder is ONNX only; its weights as a transformers
    # folder are `chatbot convert-e5`'s output (runs/e5-small; chatbot/models/encoder/README.md).
    haystack_embedder: str = ""
    # Haystack's reader reads torch weights: a transformers QA checkpoint of the same reader, e.g. ``chatbot
    # torch-reader``'s rebuild of the shipped ONNX one ("": the chatbot's own reader, which must have them).
    haystack_reader: str = ""


@dataclass(frozen=True)
class Settings:
    corpus_dir: Path = Path("corpus")
    index_dir: Path = Path("index")
    # Where passages are stored and searched (CHATBOT_STORE): "" is the embedded store (FAISS + BM25 in
    # index_dir); milvus://HOST:PORT (or an http(s):// address) a Milvus server that several replicas share; a
    # path ending in .db a local milvus-lite file (chatbot.index.milvus).
    store: str = ""
    store_collection: str = "chatbot"  # the Milvus store's collections are named from it (CHATBOT_STORE_COLLECTION)
    embedder: str = DEFAULT_EMBEDDER
    # Any transformers extractive QA checkpoint (a local directory or a hub id; CHATBOT_READER, --reader).
    reader: str = str(SHIPPED_READER_DIR)
    chunking: ChunkingSettings = field(default_factory=ChunkingSettings)
    vector_index: VectorIndexSettings = field(default_factory=VectorIndexSettings)
    top_k: int = 5
    max_question_chars: int = 1000
    # One bound on the work a request can cause through its history (docs/hardening.md, "Bounded work"):
    # at most this many earlier turns are used, each cut to max_question_chars, and the searched-for
    # query (the question plus the earlier subject's terms) is cut to max_query_chars.
    max_history_turns: int = 20
    max_query_chars: int = 1400
    max_file_bytes: int = MAX_CORPUS_FILE_BYTES  # larger corpus files are skipped with a warning
    # Files added from the web chat's Documents tab and POST /documents (--allow-uploads): off by
    # default, since anyone who reaches the port could then write files into the corpus folder.
    allow_uploads: bool = False
    title: str | None = None  # the web chat's title (--title), over the corpus's chatbot.json
    threads: int = 2  # torch and ONNX Runtime threads (one per core of the 2-core target machine)
    # Questions answered at once by the web app and by the HTTP API; more wait their turn. Answering
    # is CPU-bound (the models use `threads` threads), so on 2 cores more at once only adds contention and
    # memory (each answer in flight holds its own activations): docs/hardening.md, "Load".
    concurrency: int = 2
    # Web chat (Gradio) questions that may wait before new ones are refused with "queue full";
    # 50 concurrent sessions fit.
    web_queue_size: int = 64
    # Web chat: the turns kept in the browser (localStorage, so reloads keep the chat; "New chat" clears it).
    web_history_turns: int = 50
    # Thumbs up/down (and comments) on answers are appended here, one JSON line each (chatbot.serve.feedback).
    feedback_file: Path = Path("feedback.jsonl")
    # Host names the servers answer to (the Host header; ports aside): a page on another name that resolves
    # to this machine (DNS rebinding) is refused. Set CHATBOT_ALLOWED_HOSTS (comma-separated; "*": any)
    # when serving on a network address. State-changing requests from a browser must come from the page
    # itself (same Origin as Host).
    allowed_hosts: tuple[str, ...] = ("127.0.0.1", "localhost", "::1")
    # The web app's request bodies (Gradio JSON calls) are refused above this; uploads above max_file_bytes.
    web_max_body_bytes: int = 1024 * 1024
    # FAISS's OpenMP threads busy-wait after each search and take the cores from torch: one query
    # against a few thousand vectors needs no second thread (docs/benchmark.md).
    faiss_threads: int = 1
    # "int8": the export with int8 weights (model_int8.onnx, the one shipped; `chatbot export-reader --int8`,
    # or torch dynamic quantization at load); "fp32": model.onnx or the checkpoint in fp32. The model card's
    # "Runtime" section gives the int8 export's figures against the checkpoint's.
    reader_precision: str = "int8"
    # Where the reader runs: "onnx" (ONNX Runtime on the exported model.onnx / model_int8.onnx beside the
    # weights; answering then never imports torch, which cuts seconds off a cold start), "torch", or
    # "auto": ONNX when that file exists and onnxruntime imports, else torch (with a log line saying why).
    reader_runtime: str = "auto"
    # Where queries are embedded: "onnx" (the index's query_encoder/, exported from the embedder when the
    # index is built; chatbot.models.embedding.OnnxQueryEmbedder), "torch" (sentence-transformers), or "auto":
    # ONNX when the index has the encoder and onnxruntime imports. Passages are always embedded by
    # sentence-transformers.
    query_runtime: str = "auto"
    # The multilingual sentence encoder whose cosine between the question and a candidate's sentence is one of
    # the answer policy's features (chatbot.qa.relevance, chatbot.qa.policy): multilingual-e5-small on ONNX Runtime.
    # The embedder's name shares the embedder's vectors; "" means no sentence encoder (every cosine is then 0 and
    # passages are read whole; the shipped policy was fitted with e5's cosines).
    relevance_encoder: str = str(SHIPPED_ENCODER_DIR)
    # What the reader reads of each retrieved passage: 0 reads it whole; n > 0 reads windows around the n sentences
    # of the passages closest to the question (the encoder's cosine, chatbot.qa.relevance), each with
    # ``window_context`` sentences either side. Whole, chosen on the policy's fitting questions (TyDi held out and
    # the tuning set; evals/README.md, "Reading windows"): every window size tried answered fewer of them right
    # (3 sentences, 2 either side: 57.8 % against 59.5 % of the TyDi ones) for half the latency.
    read_sentences: int = 0
    window_context: int = 2
    # Candidate spans the reader returns in each passage, for the policy to judge: 2, 3 and 5 tied out of fold on the
    # policy's fitting questions (top-1 63.3, 63.0, 63.1; evals/README.md, "Passages that cannot change the answer").
    reader_top_k: int = 3
    # Read every retrieved passage, also those none of whose spans could be judged likelier than the answer found
    # (Chatbot.read): the same answer, slower, with every runner-up; for measuring and for fitting the policy.
    read_every_passage: bool = False
    max_citations: int = 3  # passages cited per answer
    alternatives: int = 3  # runner-up answers kept on Answer.alternatives

    def with_(self, **changes) -> "Settings":
        return replace(self, **{k: v for k, v in changes.items() if v is not None})

    @classmethod
    def from_env(cls) -> "Settings":
        env = os.environ
        return cls().with_(
            corpus_dir=Path(env["CHATBOT_CORPUS"]) if "CHATBOT_CORPUS" in env else None,
            index_dir=Path(env["CHATBOT_INDEX"]) if "CHATBOT_INDEX" in env else None,
            store=env.get("CHATBOT_STORE"),
            store_collection=env.get("CHATBOT_STORE_COLLECTION"),
            feedback_file=Path(env["CHATBOT_FEEDBACK"]) if "CHATBOT_FEEDBACK" in env else None,
            embedder=env.get("CHATBOT_EMBEDDER"),
            reader=env.get("CHATBOT_READER"),
            relevance_encoder=env.get("CHATBOT_RELEVANCE_ENCODER"),
            read_sentences=int(env["CHATBOT_READ_SENTENCES"]) if "CHATBOT_READ_SENTENCES" in env else None,
            window_context=int(env["CHATBOT_WINDOW_CONTEXT"]) if "CHATBOT_WINDOW_CONTEXT" in env else None,
            read_every_passage=env["CHATBOT_READ_EVERY_PASSAGE"] == "1" if "CHATBOT_READ_EVERY_PASSAGE" in env else None,
            reader_precision=env.get("CHATBOT_READER_PRECISION"),
            reader_runtime=env.get("CHATBOT_READER_RUNTIME"),
            query_runtime=env.get("CHATBOT_QUERY_RUNTIME"),
            allowed_hosts=(tuple(h.strip() for h in env["CHATBOT_ALLOWED_HOSTS"].split(",") if h.strip())
                           if "CHATBOT_ALLOWED_HOSTS" in env else None),
            max_file_bytes=max_file_bytes(env["CHATBOT_MAX_FILE_MB"]) if "CHATBOT_MAX_FILE_MB" in env else None,
        )


def max_file_bytes(megabytes: str | float) -> int:
    """The file size limit in bytes for ``megabytes`` (CHATBOT_MAX_FILE_MB, --max-file-mb); ValueError if not a
    positive number."""
    try:
        value = float(megabytes)
    except ValueError:
        value = float("nan")
    if not value > 0 or value == float("inf"):
        raise ValueError(f"CHATBOT_MAX_FILE_MB / --max-file-mb must be a positive number of megabytes, "
                         f"got {megabytes!r}")
    return int(value * 2**20)
