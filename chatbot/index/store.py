"""The on-disk vector index: FAISS vectors, passages and a manifest in one directory.

Layout of ``index_dir``::

    index.faiss         L2-normalised vectors (inner product = cosine): an exact faiss.IndexFlatIP, or
                        above VectorIndexSettings.flat_max_chunks an IndexIVFFlat (make_vector_index)
    passages.jsonl      one passage per line; line number = chunk id = FAISS id
    documents.jsonl     one indexed document per line (source, title, lang, pages, chunks, metadata and
                        the text its offsets index: for PDF/DOCX/HTML the extracted text), when the
                        caller gives them
    query_encoder/      the embedder's ONNX export for embedding queries without torch
                        (model.onnx, tokenizer.json, query_encoder.json; chatbot.models.export), when
                        the embedder offers one (``export_query_encoder``) and supports it
    manifest.json       format version, embedder, dimension, query_encoder (its config, or null),
                        chunk count, created_at, sha256 checksums of the files above, plus the
                        caller's fields (chunking settings, corpus file hashes)

``build_index`` writes a complete new directory beside ``index_dir`` and swaps it
in with renames, so readers only ever see a whole old or a whole new index.
``update_index`` does the same for a change of a few documents: it embeds only
their passages and keeps the other vectors, in the order a full build gives.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import shutil
import tempfile
import threading
import uuid
from collections.abc import Callable, Collection, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

import bm25s
import faiss
import numpy as np

from ..config import VectorIndexSettings
from ..models.embedding import TextEmbedder
from ..errors import ChatbotError, IndexBuildError, IndexLoadError
from ..types import Passage
from .search import BM25_B, BM25_K1, keyword_text, reciprocal_rank_fusion, tokenize

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
FAISS_FILE = "index.faiss"
PASSAGES_FILE = "passages.jsonl"
DOCUMENTS_FILE = "documents.jsonl"
MANIFEST_FILE = "manifest.json"
QUERY_ENCODER_DIR = "query_encoder"
# dense_search with languages looks this deep among the nearest first (x8 until enough are found).
LANGUAGE_DEPTH = 256
_PASSAGE_FIELDS = ("text", "source", "title", "start", "end", "lang", "page")
_COMPUTED_FIELDS = frozenset({"format_version", "embedder", "dimension", "chunk_count", "vector_index",
                              "created_at", "checksums", "query_encoder"})


class VectorIndex:
    """The embedded passage store (:class:`~chatbot.index.search.PassageStore`): an index loaded from
    ``index_dir``, with its BM25 index built in memory from the passages on the first keyword search (well
    under a second for a few thousand passages). Read-only after construction, so safe to share between
    threads; an update writes a new version (:func:`update_index`).
    """

    def __init__(self, vectors: faiss.Index, passages: list[Passage], manifest: dict,
                 directory: Path | None = None, documents: list[dict] | None = None):
        self.vectors = vectors  # the passages' FAISS index (chunk id = FAISS id)
        self.passages = passages
        self.manifest = manifest
        self.directory = directory  # where it was loaded from or written to
        self.documents = documents or []  # documents.jsonl's records, when the index has it
        self.languages = {p.lang for p in passages}
        self._bm25 = None
        self._bm25_lock = threading.Lock()

    @property
    def query_encoder(self) -> dict | None:
        """The config of the index's ONNX query encoder (``query_encoder/``), or None when it has none."""
        return self.manifest.get("query_encoder") if self.directory is not None else None

    def query_encoder_file(self, name: str) -> bytes:
        """A file of ``query_encoder/``, checked against the manifest (``IndexLoadError`` if damaged)."""
        return _read_verified(self.directory, f"{QUERY_ENCODER_DIR}/{name}", self.manifest)

    @property
    def embedder_name(self) -> str:
        return self.manifest["embedder"]

    @property
    def dimension(self) -> int:
        return self.vectors.d

    def __len__(self) -> int:
        return len(self.passages)

    def _as_query(self, query_vec: np.ndarray) -> np.ndarray:
        q = np.ascontiguousarray(query_vec, dtype=np.float32).reshape(1, -1)
        if q.shape[1] != self.dimension:
            raise ValueError(f"query vector has dimension {q.shape[1]}, the index has {self.dimension}")
        return q

    def get(self, chunk_ids: Sequence[int]) -> list[Passage]:
        return [self.passages[i] for i in chunk_ids]

    def dense_search(self, query_vec: np.ndarray, k: int, *,
                     languages: Collection[str] | None = None) -> list[tuple[int, float]]:
        """The ``k`` nearest chunks as ``(chunk_id, cosine)``, best first; with ``languages``, the
        nearest of those languages (searched ``LANGUAGE_DEPTH`` deep first, eight times deeper until
        found)."""
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        vectors = self.vectors
        q = self._as_query(query_vec)
        if languages is None:
            scores, ids = vectors.search(q, min(k, len(self)))
            return [(int(i), float(s)) for i, s in zip(ids[0], scores[0]) if i >= 0]
        found, depth = [], LANGUAGE_DEPTH
        while True:
            scores, ids = vectors.search(q, min(depth, len(self)))
            found = [(int(i), float(s)) for i, s in zip(ids[0], scores[0])
                     if i >= 0 and self.passages[i].lang in languages]
            if len(found) >= k or depth >= len(self):
                return found[:k]
            depth *= 8

    def similarity(self, query_vec: np.ndarray, chunk_ids: Sequence[int]) -> np.ndarray:
        """Cosine between the query and the given chunks (for chunks found by other means)."""
        q = self._as_query(query_vec)
        if not len(chunk_ids):
            return np.zeros(0, dtype=np.float32)
        return self.vectors.reconstruct_batch(np.asarray(chunk_ids, dtype=np.int64)) @ q[0]

    def _bm25_scores(self, query: str) -> np.ndarray:
        tokens = tokenize(query)
        if not tokens:
            return np.zeros(len(self), dtype=np.float32)
        with self._bm25_lock:
            if self._bm25 is None:
                bm25 = bm25s.BM25(k1=BM25_K1, b=BM25_B)
                bm25.index([tokenize(keyword_text(p)) for p in self.passages], show_progress=False)
                self._bm25 = bm25
        return self._bm25.get_scores(tokens)

    def keyword_search(self, query: str, k: int) -> list[tuple[int, float]]:
        scores = self._bm25_scores(query)
        return [(int(i), float(scores[i])) for i in np.argsort(-scores, kind="stable")[:k] if scores[i] > 0]

    def keyword_scores(self, query: str, chunk_ids: Sequence[int]) -> np.ndarray:
        return self._bm25_scores(query)[np.asarray(chunk_ids, dtype=np.int64)]

    def hybrid_search(self, query_vec: np.ndarray, query: str, k: int, depth: int) -> list[tuple[int, float]]:
        dense = [i for i, _ in self.dense_search(query_vec, depth)]
        lexical = [i for i, _ in self.keyword_search(query, depth)]
        return reciprocal_rank_fusion([dense, lexical])[:k]


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _write_durably(path: Path, data: bytes) -> None:
    with open(path, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def _fsync(path: Path) -> None:
    """Flush a written file or a directory's entries to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _passage_record(p: Passage) -> dict:
    return {name: getattr(p, name) for name in _PASSAGE_FIELDS}


@contextmanager
def _build_lock(index_dir: Path):
    """Serialise builds of one index, so cleaning leftovers never hits a live build; ``IndexBuildError``
    when the folder cannot be written (a read-only mount)."""
    path = index_dir.with_name(f".{index_dir.name}.lock")
    try:
        fh = open(path, "a")
    except OSError as exc:
        raise IndexBuildError(f"Cannot write beside the index ({path}: {exc.strerror or exc}): the index in "
                              f"{index_dir} can be read but not built or repaired.") from exc
    with fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        yield


def _clean_leftovers(index_dir: Path) -> None:
    """Remove temp dirs of crashed builds; restore a backup if a crash fell between the two renames."""
    backups = sorted(index_dir.parent.glob(f".{index_dir.name}.old-*"), key=lambda p: p.stat().st_mtime)
    if backups and not index_dir.exists():
        os.replace(backups.pop(), index_dir)
    for leftover in [*backups, *index_dir.parent.glob(f".{index_dir.name}.tmp-*")]:
        shutil.rmtree(leftover, ignore_errors=True)


def recover(index_dir: str | os.PathLike) -> None:
    """Tidy up after a build that was killed: restore the previous index if the kill fell between
    the two renames of the swap, and remove half-written temp dirs. Does nothing (and needs no
    write access) when there is nothing to recover."""
    index_dir = Path(index_dir).absolute()
    leftovers = (p for kind in ("old", "tmp") for p in index_dir.parent.glob(f".{index_dir.name}.{kind}-*"))
    if not index_dir.parent.is_dir() or next(leftovers, None) is None:
        return
    try:
        with _build_lock(index_dir):
            _clean_leftovers(index_dir)
    except (IndexBuildError, OSError) as exc:  # read-only: the index, if whole, still answers
        log.warning("cannot tidy up after an interrupted build of %s: %s", index_dir, exc)


def _swap_in(new_dir: Path, index_dir: Path) -> None:
    backup = None
    if index_dir.exists():
        backup = index_dir.with_name(f".{index_dir.name}.old-{uuid.uuid4().hex}")
        os.replace(index_dir, backup)
    try:
        os.replace(new_dir, index_dir)
    except BaseException:
        if backup is not None:
            os.replace(backup, index_dir)
        raise
    _fsync(index_dir.parent)
    if backup is not None:
        shutil.rmtree(backup, ignore_errors=True)


def vector_index_kind(n: int, settings: VectorIndexSettings) -> dict:
    """The index for ``n`` vectors: ``{"kind": "flat"}`` or ``{"kind": "ivf", "nlist", "nprobe"}``."""
    if n <= settings.flat_max_chunks:
        return {"kind": "flat"}
    nlist = int(settings.ivf_lists_per_sqrt * n**0.5)
    return {"kind": "ivf", "nlist": nlist, "nprobe": min(settings.ivf_nprobe, nlist)}


def make_vector_index(vectors: np.ndarray, settings: VectorIndexSettings, seed: int = 0) -> faiss.Index:
    """A FAISS inner-product index holding ``vectors`` (unit rows), of the kind ``vector_index_kind`` picks.

    IVF is trained on a random sample of ``ivf_train_sample`` vectors and keeps a direct map, so that
    ``VectorIndex.similarity`` can reconstruct any chunk's vector.
    """
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    n, d = vectors.shape
    kind = vector_index_kind(n, settings)
    if kind["kind"] == "flat":
        index = faiss.IndexFlatIP(d)
    else:
        index = faiss.IndexIVFFlat(faiss.IndexFlatIP(d), d, kind["nlist"], faiss.METRIC_INNER_PRODUCT)
        sample = np.random.default_rng(seed).choice(n, size=min(n, settings.ivf_train_sample), replace=False)
        index.train(vectors[np.sort(sample)])
        index.nprobe = kind["nprobe"]
    index.add(vectors)
    if kind["kind"] == "ivf":
        index.make_direct_map()
    return index


# Passages embedded between two calls of an update's progress callback.
PROGRESS_BATCH = 64


def embed_passages(embedder: TextEmbedder, texts: list[str], batch_size: int, show_progress: bool,
                    progress: Callable[[int, int], None] | None = None) -> np.ndarray:
    """Passage vectors; ``progress(done, total)`` is called as batches of ``PROGRESS_BATCH`` finish."""
    embedder = getattr(embedder, "embedder", embedder)  # a CachingEmbedder's model: passages are not cached
    if progress is None:
        parts = [embedder.embed(texts, batch_size=batch_size, show_progress=show_progress)] if texts else []
    else:
        parts = []
        for start in range(0, len(texts), PROGRESS_BATCH):
            parts.append(embedder.embed(texts[start:start + PROGRESS_BATCH], batch_size=batch_size))
            progress(min(start + PROGRESS_BATCH, len(texts)), len(texts))
    vectors = np.concatenate(parts) if parts else np.zeros((0, embedder.dimension), dtype=np.float32)
    if vectors.shape != (len(texts), embedder.dimension):
        raise IndexBuildError(f"Embedder {embedder.name!r} returned shape {vectors.shape} for {len(texts)} passages")
    return np.ascontiguousarray(vectors, dtype=np.float32)


def build_index(
    passages: Sequence[Passage],
    embedder: TextEmbedder,
    index_dir: str | os.PathLike,
    manifest_extra: Mapping | None = None,
    *,
    documents: Sequence[Mapping] | None = None,
    batch_size: int = 32,
    show_progress: bool = False,
    vector_index: VectorIndexSettings | None = None,
) -> VectorIndex:
    """Embed ``passages`` with ``embedder`` and write the index to ``index_dir``, replacing any old one
    atomically.

    ``manifest_extra`` holds the caller's fields, e.g. ``{"chunking": ..., "files":
    {name: sha256}}``; they are what ``is_stale`` compares later. ``documents``, when given, are
    stored as ``documents.jsonl`` (one JSON object each, with a ``source``). On any failure
    the previous index is left as it was and ``IndexBuildError`` (or the
    embedder's ``ModelLoadError``) is raised. ``vector_index`` chooses flat or IVF by size
    (default ``VectorIndexSettings()``); the manifest records the choice.
    """
    extra = _checked_extra(manifest_extra)
    if not passages:
        raise IndexBuildError("No passages to index: the corpus is empty or every file was skipped.")
    index_dir = Path(index_dir).absolute()
    index_dir.parent.mkdir(parents=True, exist_ok=True)
    with _new_version(index_dir, "Building") as new_dir:
        texts = [p.text for p in passages]
        vectors = embed_passages(embedder, texts, batch_size, show_progress)
        checksums: dict[str, str] = {}
        try:
            encoder = {"query_encoder": _write_query_encoder(embedder, new_dir, checksums)}
        except OSError as exc:  # no "query_encoder" field: the next start adds the encoder (add_query_encoder)
            log.warning("the index in %s is written without its ONNX query encoder (%s: %s); queries are embedded "
                        "by %s until the next start adds it", index_dir, type(exc).__name__, exc, embedder.name)
            encoder = {}
        fields = {
            "embedder": embedder.name,
            "dimension": embedder.dimension,
            **encoder,
        }
        index = _write_version(new_dir, index_dir, passages, vectors, documents, checksums,
                               fields | extra, vector_index or VectorIndexSettings())
    return index


def update_index(
    index_dir: str | os.PathLike,
    embedder: TextEmbedder,
    *,
    remove: Collection[str] = (),
    passages: Sequence[Passage] = (),
    documents: Sequence[Mapping] = (),
    manifest_extra: Mapping | None = None,
    progress: Callable[[int, int], None] | None = None,
    batch_size: int = 32,
    vector_index: VectorIndexSettings | None = None,
) -> VectorIndex:
    """Change a few documents of the index in ``index_dir``: the passages (and ``documents.jsonl``
    records) of the sources in ``remove`` and of those of ``passages`` go, ``passages`` and
    ``documents`` come in. Only ``passages`` are embedded (``progress(done, total)`` as they are);
    the other vectors are kept. Passages and documents end up ordered by source, as a full build of
    sorted files orders them. ``manifest_extra`` fields replace the manifest's. Atomic as
    ``build_index``: on any failure the previous index stays (``IndexBuildError``).
    """
    extra = _checked_extra(manifest_extra)
    index_dir = Path(index_dir).absolute()
    with _new_version(index_dir, "Updating") as new_dir:
        old = load_index(index_dir)
        if embedder.name != old.embedder_name:
            raise IndexBuildError(f"The index was built with embedder {old.embedder_name!r}, not "
                                  f"{embedder.name!r}: rebuild it.")
        gone = set(remove) | {p.source for p in passages} | {d["source"] for d in documents}
        keep = [i for i, p in enumerate(old.passages) if p.source not in gone]
        merged = [old.passages[i] for i in keep] + list(passages)
        order = sorted(range(len(merged)), key=lambda i: merged[i].source)  # stable: chunk order kept
        if not merged:
            raise IndexBuildError("No passages left to index: every document was removed or skipped.")
        texts = [p.text for p in passages]
        kept = old.vectors.reconstruct_batch(np.asarray(keep, dtype=np.int64)) if keep else None
        new = embed_passages(embedder, texts, batch_size, False, progress)
        vectors = np.concatenate([v for v in (kept, new) if v is not None])[order]
        records = [d for d in old.documents if d["source"] not in gone] + [dict(d) for d in documents]
        records.sort(key=lambda d: d["source"])
        checksums = {name: digest for name, digest in old.manifest.get("checksums", {}).items()
                     if name.startswith(f"{QUERY_ENCODER_DIR}/")}
        for name in checksums:
            (new_dir / name).parent.mkdir(exist_ok=True)
            shutil.copy2(index_dir / name, new_dir / name)
            _fsync(new_dir / name)
        fields = {k: v for k, v in old.manifest.items() if k not in ("chunk_count", "vector_index", "created_at",
                                                                       "checksums")}
        index = _write_version(new_dir, index_dir, [merged[i] for i in order], vectors,
                               records if (records or old.documents) else None, checksums, fields | extra,
                               vector_index or VectorIndexSettings())
    return index


def _checked_extra(manifest_extra: Mapping | None) -> dict:
    extra = dict(manifest_extra or {})
    if clash := _COMPUTED_FIELDS & extra.keys():
        raise ValueError(f"manifest_extra may not set computed fields: {sorted(clash)}")
    return extra


def _write_version(new_dir: Path, index_dir: Path, passages: Sequence[Passage], vectors: np.ndarray,
                   documents: Sequence[Mapping] | None, checksums: dict, fields: dict,
                   settings: VectorIndexSettings) -> VectorIndex:
    """Write the vector file, passages, documents and manifest of a version into ``new_dir``
    (``checksums`` already lists the query encoder's files); the index as it will be at ``index_dir``."""
    flat = make_vector_index(vectors, settings)
    files = {FAISS_FILE: faiss.serialize_index(flat).tobytes()}
    files[PASSAGES_FILE] = _jsonl(_passage_record(p) for p in passages)
    if documents is not None:
        files[DOCUMENTS_FILE] = _jsonl(documents)
    for name, data in files.items():
        _write_durably(new_dir / name, data)
    checksums.update((name, _sha256(data)) for name, data in files.items())
    manifest = {
        "format_version": FORMAT_VERSION,
        **fields,
        "chunk_count": len(passages),
        "vector_index": vector_index_kind(len(passages), settings),
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "checksums": checksums,
    }
    _write_manifest(new_dir, manifest)
    return VectorIndex(flat, [Passage(**_passage_record(p)) for p in passages], manifest, index_dir,
                       [dict(d) for d in documents or ()])


def _jsonl(records) -> bytes:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records).encode("utf-8")


def _write_manifest(index_dir: Path, manifest: dict) -> None:
    _write_durably(index_dir / MANIFEST_FILE, json.dumps(manifest, indent=2, ensure_ascii=False).encode("utf-8"))


def add_query_encoder(index_dir: str | os.PathLike, embedder: TextEmbedder) -> VectorIndex:
    """Give an index built before query encoders existed (no ``query_encoder`` in its manifest) the
    embedder's ONNX query encoder, without embedding its passages again: a copy of its files gets the
    encoder and a new manifest, then replaces it as a build does. Returns the index as loaded after."""
    index_dir = Path(index_dir).absolute()
    with _new_version(index_dir, "Adding a query encoder to") as new_dir:
        manifest = _read_manifest(index_dir)
        checksums = dict(manifest.get("checksums", {}))
        for name in checksums:
            shutil.copy2(index_dir / name, new_dir / name)
            _fsync(new_dir / name)
        manifest.update(query_encoder=_write_query_encoder(embedder, new_dir, checksums), checksums=checksums)
        _write_manifest(new_dir, manifest)
    return load_index(index_dir)


@contextmanager
def _new_version(index_dir: Path, doing: str):
    """A fresh folder beside ``index_dir`` to write a whole new version of the index in; when the
    block ends without error it is flushed and swapped in for ``index_dir``. Builds of one index are
    serialised; on failure the previous index is left as it was (``IndexBuildError``)."""
    with _build_lock(index_dir):
        _clean_leftovers(index_dir)
        new_dir = Path(tempfile.mkdtemp(prefix=f".{index_dir.name}.tmp-", dir=index_dir.parent))
        try:
            yield new_dir
            _fsync(new_dir)
            _swap_in(new_dir, index_dir)
        except ChatbotError:
            raise
        except Exception as exc:
            raise IndexBuildError(
                f"{doing} the index in {index_dir} failed ({type(exc).__name__}: {exc}); "
                "the previous index, if any, is unchanged."
            ) from exc
        finally:
            shutil.rmtree(new_dir, ignore_errors=True)


def _write_query_encoder(embedder: TextEmbedder, index_dir: Path, checksums: dict) -> dict | None:
    """Export the embedder's query encoder into ``index_dir``, durably, adding its files to ``checksums``;
    returns its config (None when there is none). ``OSError`` (a full disk) leaves no encoder files."""
    out_dir = index_dir / QUERY_ENCODER_DIR
    config = _export_query_encoder(embedder, out_dir)
    if config is not None:
        written = {}
        try:
            for path in sorted(out_dir.iterdir()):
                written[f"{QUERY_ENCODER_DIR}/{path.name}"] = _sha256(path.read_bytes())
                _fsync(path)
            _fsync(out_dir)
        except OSError:
            shutil.rmtree(out_dir, ignore_errors=True)
            raise
        checksums.update(written)
    return config


def _export_query_encoder(embedder: TextEmbedder, out_dir: Path) -> dict | None:
    """The embedder's ONNX query encoder written into ``out_dir`` (its config), or None when the
    embedder has none or the export fails: queries are then embedded by the embedder itself."""
    export = getattr(embedder, "export_query_encoder", None)
    if export is None:
        return None
    try:
        config = export(out_dir)
    except OSError:  # a fault of this machine (full disk), not of the model: said, and repaired later
        shutil.rmtree(out_dir, ignore_errors=True)
        raise
    except ChatbotError:
        raise
    except Exception as exc:  # an exporter or model the export does not handle
        log.warning("no ONNX query encoder in the index (%s: %s): queries will be embedded by %s",
                    type(exc).__name__, exc, embedder.name)
        config = None
    if config is None:
        shutil.rmtree(out_dir, ignore_errors=True)
    return config


def _read_manifest(index_dir: Path) -> dict:
    path = index_dir / MANIFEST_FILE
    if not index_dir.is_dir():
        raise IndexLoadError(f"No index at {index_dir}: build it first.")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise IndexLoadError(f"{path} is missing: the index is incomplete, rebuild it.") from None
    except (OSError, ValueError) as exc:
        raise IndexLoadError(f"{path} is unreadable ({exc}): rebuild the index.") from exc
    if not isinstance(manifest, dict):
        raise IndexLoadError(f"{path} is not an index manifest: rebuild the index.")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise IndexLoadError(
            f"{path} has index format {manifest.get('format_version')!r}, this version reads "
            f"format {FORMAT_VERSION}: rebuild the index."
        )
    for name, types in _MANIFEST_TYPES.items():
        value = manifest.get(name)
        if not isinstance(value, types) or isinstance(value, bool):
            raise IndexLoadError(f"{path} has {name} {value!r:.80}, not a {types[0].__name__}: rebuild the index.")
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in manifest["checksums"].items()):
        raise IndexLoadError(f"{path} has checksums that are not file names and sha256 strings: rebuild the index.")
    return manifest


# The manifest's computed fields and their JSON types (the first named in messages); others are the caller's,
# or those of retired features that older indexes still hold (multilingual_embedder, multilingual_dimension),
# which are not read.
_MANIFEST_TYPES = {
    "embedder": (str,), "dimension": (int,), "chunk_count": (int,), "checksums": (dict,),
    "query_encoder": (dict, type(None)),
}


def _read_verified(index_dir: Path, name: str, manifest: dict) -> bytes:
    path = index_dir / name
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise IndexLoadError(f"{path} cannot be read ({exc.strerror or exc}): rebuild the index.") from exc
    if _sha256(data) != manifest.get("checksums", {}).get(name):
        raise IndexLoadError(
            f"{path} is corrupt or truncated (sha256 does not match manifest.json, "
            f"{len(data)} bytes): rebuild the index."
        )
    return data


def load_index(index_dir: str | os.PathLike) -> VectorIndex:
    """Load and verify an index; ``IndexLoadError`` says which file is missing or damaged."""
    index_dir = Path(index_dir)
    manifest = _read_manifest(index_dir)
    passages_bytes = _read_verified(index_dir, PASSAGES_FILE, manifest)
    try:
        flat = faiss.deserialize_index(np.frombuffer(_read_verified(index_dir, FAISS_FILE, manifest), dtype=np.uint8))
        passages = [Passage(**json.loads(line)) for line in passages_bytes.decode("utf-8").splitlines()]
        documents = ([json.loads(line) for line in
                      _read_verified(index_dir, DOCUMENTS_FILE, manifest).decode("utf-8").splitlines()]
                     if DOCUMENTS_FILE in manifest.get("checksums", {}) else [])
    except IndexLoadError:
        raise
    except Exception as exc:  # checksums matched, so this is a writer bug or a foreign file
        raise IndexLoadError(f"The index in {index_dir} cannot be parsed ({exc}): rebuild it.") from exc
    counts = {"passages": len(passages), "manifest chunk_count": manifest.get("chunk_count"),
              f"{FAISS_FILE} vectors": flat.ntotal}
    if len(set(counts.values())) != 1 or flat.d != manifest.get("dimension"):
        raise IndexLoadError(
            f"The index in {index_dir} is inconsistent ({counts}, dimension {flat.d} in {FAISS_FILE} and "
            f"{manifest.get('dimension')!r} in the manifest): rebuild it."
        )
    return VectorIndex(flat, passages, manifest, index_dir, documents)


def is_stale(index_dir: str | os.PathLike, expected_manifest_fields: Mapping) -> str | None:
    """Why the index must be rebuilt, or ``None`` if it matches.

    Compares each expected field (e.g. ``embedder``, ``chunking``, ``files``) with
    the manifest; a missing or unreadable manifest also counts as stale. File
    checksums are not re-verified here: ``load_index`` does that.
    """
    try:
        manifest = _read_manifest(Path(index_dir))
    except IndexLoadError as exc:
        return str(exc)
    # A JSON round trip makes tuples and lists compare equal, as they do once stored.
    expected = json.loads(json.dumps(dict(expected_manifest_fields)))
    for key, want in expected.items():
        have = manifest.get(key)
        if have == want:
            continue
        if key == "files" and isinstance(have, dict) and isinstance(want, dict):
            changes = {
                "added": sorted(want.keys() - have.keys()),
                "removed": sorted(have.keys() - want.keys()),
                "changed": sorted(n for n in want.keys() & have.keys() if want[n] != have[n]),
            }
            return "corpus files changed: " + "; ".join(f"{k} {v}" for k, v in changes.items() if v)
        return f"{key} changed: index has {have!r}, expected {want!r}"
    return None
