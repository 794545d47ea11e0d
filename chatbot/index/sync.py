"""The index kept in step with the corpus folder: built when missing, damaged or made with other
settings; updated (only the files that changed embedded again) when documents were added, changed or
removed; its ONNX query encoder added to an index from before query encoders.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from pathlib import Path

from ..config import Settings
from ..errors import IndexBuildError, IndexLoadError, ModelLoadError
from ..ingest.chunking import chunk_corpus
from ..ingest.corpus import METADATA_FILE, SkippedFile, document_files, file_sha256, load_corpus, source_name
from ..models.embedding import OnnxEmbedder, OnnxQueryEmbedder, TextEmbedder, make_embedder
from ..models.onnx_runtime import check_runtime, onnxruntime_available
from ..types import Document, Passage
from .search import PassageStore
from .store import VectorIndex, add_query_encoder, build_index, is_stale, load_index, recover, update_index

log = logging.getLogger(__name__)

# Bumped when the converters change the text a file gives, so that older indexes are rebuilt.
TEXT_EXTRACTION_VERSION = 1


def corpus_files(corpus_dir: Path) -> dict[str, str]:
    """``{file name: sha256}`` of the document files of ``corpus_dir`` (those ``load_corpus`` reads
    and those it skips) and of its ``metadata.json``, so that dropping in any file updates the index
    and reports it."""
    if not corpus_dir.is_dir():
        raise IndexBuildError(f"Corpus directory {corpus_dir} does not exist: create it, or point corpus_dir= "
                              "(the command line's --corpus DIR, or CHATBOT_CORPUS) at your documents.")
    paths = document_files(corpus_dir)
    if (corpus_dir / METADATA_FILE).is_file():
        paths.append(corpus_dir / METADATA_FILE)
    return {source_name(p): file_sha256(p) for p in sorted(paths, key=lambda p: p.name)}


def corpus_signature(corpus_dir: Path) -> tuple | None:
    """Names, sizes and modification times of the corpus folder's files: a scan cheap enough for
    every question, which tells when ``corpus_files`` (which reads every file) may have changed."""
    try:
        stats = {source_name(p): p.stat() for p in Path(corpus_dir).iterdir() if not p.name.startswith(".")}
    except OSError:
        return None
    return tuple((name, st.st_size, st.st_mtime_ns) for name, st in sorted(stats.items()))


def index_fields(settings: Settings) -> dict:
    """What the index depends on, as recorded in (and compared with) its manifest."""
    return {
        "embedder": settings.embedder,
        "chunking": settings.chunking.as_dict(),
        "max_file_bytes": settings.max_file_bytes,
        "text_extraction": TEXT_EXTRACTION_VERSION,
        "files": corpus_files(Path(settings.corpus_dir)),
    }


def made_with_retired_embedder(manifest: Mapping) -> str | None:
    """Why a store made with the second, multilingual embedder (retired in issue 17; its manifest names it in
    ``multilingual_embedder``) is made again, or None: its vectors for that embedder would go unread, and the
    Milvus store's rows could not be written without them. ``multilingual_embedder: null``, what default
    stores made before hold, needs nothing."""
    name = manifest.get("multilingual_embedder")
    return f"it was made with the retired second embedder {name!r}" if name else None


def document_record(doc: Document, passages: list[Passage]) -> dict:
    """What the index stores of a document (``documents.jsonl``): its description, its chunk count and
    the text the offsets of its passages index."""
    return {"source": doc.source, "title": doc.title, "lang": doc.lang, "pages": len(doc.pages) or None,
            "chunks": sum(p.source == doc.source for p in passages), "metadata": doc.metadata,
            "page_starts": list(doc.pages), "text": doc.text}


def _log_skipped(skipped: list[SkippedFile]) -> None:
    for s in skipped:
        log.warning("not indexed: %s (%s)", s.source, s.reason)


def ensure_index(settings: Settings, progress: bool = False, embedder: TextEmbedder | None = None, *,
                 on_progress: Callable[[int, int], None] | None = None) -> PassageStore:
    """Load the index in ``settings.index_dir``, bringing it up to date with the corpus first; with
    ``settings.store`` set, the Milvus store it names instead (:func:`~chatbot.index.milvus.sync_store`).

    When only document files were added, changed or removed, only their passages are embedded
    (:func:`~chatbot.index.store.update_index`, ``on_progress(done, total)`` as they are); when the index is
    missing or damaged, or a setting, the embedder or ``metadata.json`` changed, or it was made with the retired
    second embedder (:func:`made_with_retired_embedder`), it is rebuilt. An
    index from before query encoders gets one added (:func:`~chatbot.index.store.add_query_encoder`).
    Each skipped file is logged once, when it is first seen.
    """
    fields = index_fields(settings)
    embedder = embedder or make_embedder(settings.embedder, settings.threads)
    if settings.store:
        from .milvus import sync_store

        return sync_store(settings, fields, embedder, on_progress)
    recover(settings.index_dir)  # a build killed half-way leaves the previous index in place
    reason = is_stale(settings.index_dir, {k: v for k, v in fields.items() if k != "files"})
    if reason is None:
        try:
            index = load_index(settings.index_dir)
        except IndexLoadError as exc:
            reason = str(exc)
        else:
            reason = made_with_retired_embedder(index.manifest)
    if reason is None:
        if "query_encoder" not in index.manifest:
            index = _with_query_encoder(index, embedder)
        have, want = index.manifest.get("files", {}), fields["files"]
        if have == want:
            return index
        if have.get(METADATA_FILE) == want.get(METADATA_FILE) and index.documents:
            return _update(index, settings, fields, embedder, on_progress)
        reason = is_stale(settings.index_dir, {"files": want})
    log.info("building the index in %s: %s", settings.index_dir, reason)
    docs, skipped = load_corpus(settings.corpus_dir, settings.max_file_bytes)
    _log_skipped(skipped)
    passages = chunk_corpus(docs, settings.chunking)
    # build_index records the embedder itself
    extra = {k: v for k, v in fields.items() if k != "embedder"}
    extra["skipped"] = {s.source: s.reason for s in skipped}
    return build_index(passages, embedder, settings.index_dir, extra,
                       documents=[document_record(d, passages) for d in docs], show_progress=progress,
                       vector_index=settings.vector_index)


def _update(index: VectorIndex, settings: Settings, fields: dict, embedder: TextEmbedder,
            on_progress: Callable[[int, int], None] | None) -> VectorIndex:
    """``index`` with the document files that changed since it was written embedded again (and those
    gone removed): the other documents' vectors are kept."""
    have, want = index.manifest.get("files", {}), fields["files"]
    changed = {name for name, digest in want.items() if have.get(name) != digest}
    removed = set(have) - set(want)
    log.info("updating the index in %s: added or changed %s, removed %s", settings.index_dir,
             sorted(changed) or "none", sorted(removed) or "none")
    docs, skipped = load_corpus(settings.corpus_dir, settings.max_file_bytes, names=changed)
    _log_skipped(skipped)
    passages = chunk_corpus(docs, settings.chunking)
    skipped_before = {n: r for n, r in index.manifest.get("skipped", {}).items() if n not in changed | removed}
    extra = {k: v for k, v in fields.items() if k != "embedder"}
    extra["skipped"] = dict(sorted((skipped_before | {s.source: s.reason for s in skipped}).items()))
    return update_index(settings.index_dir, embedder, remove=changed | removed, passages=passages,
                        documents=[document_record(d, passages) for d in docs],
                        manifest_extra=extra, progress=on_progress, vector_index=settings.vector_index)


def _with_query_encoder(index: VectorIndex, embedder: TextEmbedder) -> VectorIndex:
    """``index`` (built before query encoders existed) with the embedder's encoder added, or as it is
    when it cannot be written (a read-only index still answers, its queries through the embedder)."""
    log.info("adding an ONNX query encoder to the index in %s (passages are not embedded again)", index.directory)
    try:
        return add_query_encoder(index.directory, embedder)
    except IndexBuildError as exc:
        log.warning("%s", exc)
        return index


def query_embedder(index: VectorIndex, embedder: TextEmbedder, settings: Settings) -> TextEmbedder:
    """What embeds queries: an :class:`OnnxQueryEmbedder` over the index's query encoder (passages
    still go to ``embedder``), or ``embedder`` itself, as ``settings.query_runtime`` asks ("auto":
    the encoder when the index has one and onnxruntime imports). An ONNX embedder (the shipped
    encoder) embeds its queries itself: the index keeps no copy of it."""
    runtime = check_runtime(settings.query_runtime)
    if runtime == "torch" or isinstance(embedder, OnnxEmbedder):
        return embedder
    problem = None
    if index.query_encoder is None:
        problem = f"the index in {index.directory} has no ONNX query encoder (its build log says why)"
    elif not onnxruntime_available():
        problem = "onnxruntime is not installed (pip install onnxruntime)"
    if problem is None:
        return OnnxQueryEmbedder(index.query_encoder_file, index.query_encoder, embedder, threads=settings.threads,
                                 strict=runtime == "onnx")
    if runtime == "onnx":
        raise ModelLoadError(f"CHATBOT_QUERY_RUNTIME=onnx but {problem}.")
    log.info("queries are embedded by sentence-transformers: %s", problem)
    return embedder


