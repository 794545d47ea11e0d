"""Command-line face of the library: ``chatbot SUBCOMMAND``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import __version__
from .errors import ChatbotError


def _train_reader(args) -> int:
    from .training import TrainConfig, train_reader

    cfg = TrainConfig(
        data=[Path(p) for p in args.data] if args.data else TrainConfig().data,
        base=args.base,
        out=Path(args.out),
        epochs=args.epochs,
        max_length=args.max_length,
        seed=args.seed,
    )
    train_reader(cfg)
    return 0


def _eval(args) -> int:
    from .evaluation import evaluate

    return evaluate(
        args.questions,
        corpus_dir=args.corpus,
        index_dir=args.index,
        predictions_path=args.predictions,
        report_path=args.report,
        retriever_only=args.retriever_only,
        check=args.check,
        progress=not args.quiet,
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="chatbot", description=__doc__)
    parser.add_argument("--version", action="version", version=f"chatbot {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    from .training import DEFAULT_BASE, TrainConfig

    defaults = TrainConfig()
    p = sub.add_parser("train-reader", help="fine-tune the extractive QA reader (developer step)")
    p.add_argument("--data", nargs="+", metavar="FILE_OR_DIR", help="SQuAD-format JSON (default: ../shared/qa-data/)")
    p.add_argument("--base", default=DEFAULT_BASE, help="encoder to fine-tune (name or local path)")
    p.add_argument("--out", default=str(defaults.out), help="output directory for the trained model")
    p.add_argument("--epochs", type=float, default=defaults.epochs)
    p.add_argument("--max-length", type=int, default=defaults.max_length)
    p.add_argument("--seed", type=int, default=defaults.seed)
    p.set_defaults(func=_train_reader)

    from .config import Settings

    settings = Settings.from_env()
    p = sub.add_parser("eval", help="run the eval question set through the chatbot and score it")
    p.add_argument("--questions", default="evals/questions.jsonl", metavar="FILE", help="JSONL question set")
    p.add_argument("--predictions", metavar="OUT.jsonl", help="write one prediction per question here")
    p.add_argument("--report", metavar="OUT.json", help="write the metrics here")
    p.add_argument("--retriever-only", action="store_true", help="retrieval metrics only; no reader loaded")
    p.add_argument("--check", metavar="THRESHOLDS.json", help="exit 1 when a metric falls below its threshold")
    p.add_argument("--corpus", default=str(settings.corpus_dir), metavar="DIR")
    p.add_argument("--index", default=str(settings.index_dir), metavar="DIR")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_eval)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except ChatbotError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
