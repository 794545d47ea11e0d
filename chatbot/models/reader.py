"""The reading stage: an extractive QA model that finds answer spans in passages.

Any Hugging Face ``AutoModelForQuestionAnswering`` checkpoint works (a local
directory or a hub id); the default is the model shipped inside the package.
Scores are per-window probabilities ``p_start(i) * p_end(j)`` from softmaxes
over the window's context tokens and [CLS], so they lie in [0, 1] and mean
the same thing in every passage; the answer policy beside the weights
(``answer_policy.json``, :mod:`chatbot.qa.policy`) turns them into the probability
that an answer is right and decides when to abstain.
The model runs on ONNX Runtime when an exported copy lies beside the weights (see
:class:`Reader`), else on torch; both tokenize with the ``tokenizers`` library
(chatbot.models.tokenization), so their windows and offsets are the same.
"""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..config import SHIPPED_READER_DIR
from ..errors import ModelLoadError
from .onnx_runtime import check_runtime, onnxruntime_available, open_session
from .tokenization import WordPieces, load_tokenizer, pad
from ..types import Span

log = logging.getLogger(__name__)

READER_CONFIG = "reader_config.json"
PRECISIONS = ("fp32", "int8")
ONNX_FILES = {"fp32": "model.onnx", "int8": "model_int8.onnx"}  # beside the weights, by precision


@dataclass(frozen=True)
class ReaderSettings:
    max_length: int = 256
    stride: int = 96
    batch_size: int = 4  # small batches pad short English windows less than long Cyrillic ones
    max_answer_tokens: int = 24
    n_best: int = 20


class Reader:
    """Extractive QA over a list of passages; the model loads lazily, once.

    ``runtime``: "onnx" runs the exported model beside the weights (``model_int8.onnx`` for int8,
    ``model.onnx`` for fp32; ``chatbot export-reader`` writes them) with ONNX Runtime, without
    importing torch; "torch" runs the transformers checkpoint; "auto" takes ONNX when that file
    exists and onnxruntime imports, else torch, and says in a log line why it fell back.
    ``threads``: intra-op threads of either runtime (None: ONNX Runtime's default; torch's setting
    is left alone). ``setting``: what a user sets to choose another model, named in load errors.
    """

    def __init__(self, model_name_or_path: str | Path | None = None, *, precision: str = "fp32",
                 runtime: str = "auto", threads: int | None = None, setting: str = "Settings.reader (CHATBOT_READER, --reader)",
                 **overrides):
        if precision not in PRECISIONS:
            raise ValueError(f"reader precision must be one of {PRECISIONS}, got {precision!r}")
        self.model_name_or_path = str(model_name_or_path or SHIPPED_READER_DIR)
        self.precision = precision
        self.requested_runtime = check_runtime(runtime)
        self.runtime: str | None = None  # the runtime in use, once loaded
        self.threads = threads
        self.setting = setting
        self._overrides = overrides
        self._lock = threading.Lock()
        self._model = None
        self._tokens: WordPieces | None = None
        self._settings: ReaderSettings | None = None

    @property
    def settings(self) -> ReaderSettings:
        self.load()
        return self._settings

    def load(self) -> "Reader":
        if self._model is not None:
            return self
        with self._lock:
            if self._model is None:
                path = _checked_dir(self.model_name_or_path, self.setting)
                settings = _settings(path, self._overrides)
                model, tokenizer_json, runtime = self._open(path)
                stride = window_stride(settings.max_length, settings.stride)
                self._tokens = WordPieces(tokenizer_json, settings.max_length, stride)
                self._model, self._settings, self.runtime = model, settings, runtime
        return self

    def _open(self, path: Path) -> tuple[_OnnxQA | _TorchQA, str, str]:
        """The model, its tokenizer (``tokenizer.json`` text) and the runtime they run on."""
        if self._choose_runtime(path) == "onnx":
            try:
                return _OnnxQA(path / ONNX_FILES[self.precision], self.threads or 0), load_tokenizer(path), "onnx"
            except ModelLoadError as exc:
                if self.requested_runtime == "onnx":
                    raise
                log.warning("reader: %s; falling back to torch", exc)
        return *_load_torch(self.model_name_or_path, self.precision, self.threads, self.setting), "torch"

    def _choose_runtime(self, path: Path) -> str:
        if self.requested_runtime != "auto":
            return self.requested_runtime
        onnx_file = path / ONNX_FILES[self.precision]
        if not onnx_file.is_file():
            return "torch"
        if not onnxruntime_available():
            log.warning("reader: onnxruntime is not installed (pip install onnxruntime); running %s with torch",
                        onnx_file.parent)
            return "torch"
        return "onnx"

    def read(self, question: str, passages: list[str], top_k: int = 5) -> list[Span]:
        """Return up to ``top_k`` answer spans over all passages, best first.

        Span offsets index into the passage they come from (``text_index``); whether
        one is an answer is the answer policy's to decide.
        """
        if not passages or not question.strip():
            return []
        self.load()
        s = self._settings
        question = self._tokens.truncate_question(question)
        windows = sorted(self._tokens.windows([(question, p) for p in passages]), key=lambda w: len(w.ids))
        best: dict[tuple[int, int, int], float] = {}
        for b in range(0, len(windows), s.batch_size):
            batch = windows[b : b + s.batch_size]
            starts, ends = self._model(pad([(w.ids, w.type_ids) for w in batch], self._tokens.pad_id))
            for row, w in enumerate(batch):
                for start, end, score in _window_spans(starts[row], ends[row], w.sequence_ids, w.offsets, s):
                    key = (w.pair, *whole_words(passages[w.pair], start, end))
                    if score > best.get(key, -1.0):
                        best[key] = score
        ranked = sorted(best.items(), key=lambda kv: -kv[1])[:top_k]
        return [
            Span(text=passages[p][a:e], score=float(sc), text_index=p, start=a, end=e)
            for (p, a, e), sc in ranked
        ]


def window_stride(max_length: int, stride: int) -> int:
    """Overlap between windows, kept below the room a (truncated) question leaves."""
    return min(stride, max_length // 2)


def _window_spans(start_logits, end_logits, sequence_ids, offsets, s: ReaderSettings):
    """Candidate (char_start, char_end, probability) spans of one window."""
    context = np.array([sid == 1 for sid in sequence_ids])
    allowed = context.copy()
    allowed[0] = True  # [CLS] takes the no-answer mass
    ps = _masked_softmax(start_logits[: len(allowed)], allowed)
    pe = _masked_softmax(end_logits[: len(allowed)], allowed)
    ctx_idx = np.flatnonzero(context)
    if ctx_idx.size == 0:
        return
    top_starts = ctx_idx[np.argsort(-ps[ctx_idx])[: s.n_best]]
    top_ends = ctx_idx[np.argsort(-pe[ctx_idx])[: s.n_best]]
    for i in top_starts:
        for j in top_ends:
            if j < i or j - i + 1 > s.max_answer_tokens:
                continue
            a, e = offsets[i][0], offsets[j][1]
            if e > a:
                yield a, e, float(ps[i] * pe[j])


def whole_words(text: str, start: int, end: int) -> tuple[int, int]:
    """``[start, end)`` widened to the words it cuts: a span that ends inside a word (a sub-word piece
    boundary: "12 миллиард|ов") takes the whole word. A word is a run of ``\\w`` (letters, digits, "_"), so
    the words either side of a span are whole words of the text (the answer policy bounds a passage by them)."""
    while 0 < start < len(text) and _is_word(text[start - 1]) and _is_word(text[start]):
        start -= 1
    while 0 < end < len(text) and _is_word(text[end]) and _is_word(text[end - 1]):
        end += 1
    return start, end


def _is_word(char: str) -> bool:
    return char.isalnum() or char == "_"


def _masked_softmax(logits: np.ndarray, mask: np.ndarray) -> np.ndarray:
    x = np.where(mask, logits.astype(np.float64), -np.inf)
    x = np.exp(x - x.max())
    return x / x.sum()


def quantize_int8(model):
    """The model with int8 weights in its attention projections and feed-forward input layers (torch
    dynamic quantization: activations are quantized on the fly). The feed-forward output layers and the
    span head stay fp32: quantizing them too lost 7.8 F1 on the eval set (model card, "int8")."""
    import warnings

    import torch

    names = {name for name, module in model.named_modules() if isinstance(module, torch.nn.Linear)
             and not name.startswith("qa_outputs") and not (name.endswith("output.dense") and "attention" not in name)}
    with warnings.catch_warnings():  # torch.ao.quantization is deprecated in favour of torchao, still in torch 2.13
        warnings.simplefilter("ignore")
        return torch.ao.quantization.quantize_dynamic(model, names, dtype=torch.qint8)


class _OnnxQA:
    """The exported model on ONNX Runtime: padded numpy inputs -> (start logits, end logits)."""

    def __init__(self, onnx_file: Path, threads: int):
        if not onnx_file.is_file():
            raise ModelLoadError(f"The reader has no ONNX model {onnx_file}: run `chatbot export-reader "
                                 f"{onnx_file.parent}`, or set CHATBOT_READER_RUNTIME=torch.")
        self._session = open_session(onnx_file, threads, "reader")
        self._inputs = [i.name for i in self._session.get_inputs()]

    def __call__(self, inputs: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        starts, ends = self._session.run(["start_logits", "end_logits"], {k: inputs[k] for k in self._inputs})
        return starts, ends


class _TorchQA:
    """A transformers QA model: padded numpy inputs -> (start logits, end logits)."""

    def __init__(self, model, input_names: list[str]):
        self._model = model
        self._inputs = input_names

    def __call__(self, inputs: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        import torch

        with torch.inference_mode():
            out = self._model(**{k: torch.from_numpy(inputs[k]) for k in self._inputs})
        return out.start_logits.float().numpy(), out.end_logits.float().numpy()


def _checked_dir(name_or_path: str, setting: str) -> Path:
    """``name_or_path`` as a path; ``ModelLoadError`` when it looks local but is missing or holds no checkpoint.
    (A hub id that is not a local directory is left for transformers to find in its cache.)"""
    path = Path(name_or_path)
    looks_local = path.is_absolute() or name_or_path.startswith((".", "~")) or name_or_path.count("/") > 1
    if looks_local and not path.exists():
        raise ModelLoadError(
            f"Reader model directory {path} does not exist. Reinstall the package (pip install .) for the shipped "
            f"model, or point {setting} at a directory holding a transformers QA checkpoint."
        )
    if path.exists() and not (path / "config.json").is_file():
        raise ModelLoadError(
            f"Reader model directory {path} has no config.json. Reinstall the package (pip install .) "
            f"or point {setting} at a directory holding a transformers QA checkpoint."
        )
    return path


def _settings(path: Path, overrides: dict) -> ReaderSettings:
    """``ReaderSettings`` from ``reader_config.json`` beside the weights, then ``overrides``."""
    stored = {}
    config_file = path / READER_CONFIG
    if config_file.is_file():
        try:
            stored = json.loads(config_file.read_text(encoding="utf-8"))
            if not isinstance(stored, dict):
                raise ValueError("not a JSON object")
        except (OSError, ValueError) as exc:
            raise ModelLoadError(f"The reader settings {config_file} cannot be read ({exc}): fix or delete that "
                                 "file, or reinstall with pip install . to get the shipped model.") from exc
    known = ReaderSettings.__dataclass_fields__
    values = {k: v for k, v in {**stored, **overrides}.items() if k in known}
    return ReaderSettings(**values)


def _load_torch(name_or_path: str, precision: str, threads: int | None, setting: str) -> tuple[_TorchQA, str]:
    """The transformers checkpoint (int8-quantized for ``precision="int8"``) and its fast tokenizer."""
    try:
        import torch
        from transformers import AutoModelForQuestionAnswering, AutoTokenizer
    except ImportError as exc:  # pragma: no cover - packaging error
        raise ModelLoadError(f"The reader needs torch and transformers: pip install . ({exc})") from exc
    if threads:
        torch.set_num_threads(threads)
    try:
        tokenizer = AutoTokenizer.from_pretrained(name_or_path)
        model = AutoModelForQuestionAnswering.from_pretrained(name_or_path, dtype=torch.float32)
    except Exception as exc:
        raise ModelLoadError(
            f"Could not load the reader model '{name_or_path}': {exc}. Set {setting} to a "
            "local directory with a transformers question-answering checkpoint, or reinstall with pip install . "
            "to get the shipped model."
        ) from exc
    if not getattr(tokenizer, "is_fast", False):
        raise ModelLoadError(f"The reader '{name_or_path}' needs a fast tokenizer (tokenizer.json) for offsets.")
    model.eval()
    if precision == "int8":
        model = quantize_int8(model)
    inputs = [k for k in ("input_ids", "attention_mask", "token_type_ids") if k in tokenizer.model_input_names]
    return _TorchQA(model, inputs), tokenizer.backend_tokenizer.to_str()
