"""The passage store on Milvus (``CHATBOT_STORE=milvus://HOST:PORT``, an ``http(s)://`` address, or a local
``.db`` file served by milvus-lite), for several app replicas over one store.

Two collections, named from ``settings.store_collection`` (default ``chatbot``):

    chatbot_chunks     one row per passage: text, source, title, start, end, lang, page, the version of
                       its document (its file's sha256), its BM25 terms (``terms``, :func:`~chatbot.index.search.tokenize`'s
                       output, analysed by Milvus's standard analyzer into the ``sparse`` field by Milvus's
                       BM25 function) and its vector (``dense``)
    chatbot_documents  one row per indexed document (source, sha256 of its file, its record:
                       title, lang, pages, page starts, chunks, metadata), and the row ``.`` holding the
                       store's manifest (embedder, chunking, corpus files, skipped files)
    chatbot_texts      the text each document's offsets index (for PDF, DOCX and HTML the extracted
                       text), in pieces of at most 16,000 characters (Milvus caps a field at 64 KiB)

Milvus runs the searches: dense (inner product of L2-normalised vectors, i.e. cosine), BM25 over the
``sparse`` field, and the hybrid of the two fused by its ``RRFRanker`` with the product's constant.

An update writes a document's new chunks under its new version, then its row, then deletes its chunks of
other versions; the manifest row is written last. A row's id is a hash of its source, version and place,
so two replicas indexing the same file write the same rows (upserts), never duplicates. A writer killed
part-way leaves chunks no row names, which the next sync deletes or overwrites, and a manifest that still
differs from the folder, so the next sync redoes the work.
"""

from __future__ import annotations

import hashlib
import json
import logging
from contextlib import contextmanager
from collections.abc import Callable, Collection, Sequence
from pathlib import Path

import numpy as np

from ..config import Settings
from ..errors import IndexBuildError, IndexLoadError
from ..ingest.chunking import chunk_corpus
from ..ingest.corpus import METADATA_FILE, load_corpus
from ..models.embedding import TextEmbedder
from ..types import Passage
from .search import BM25_B, BM25_K1, RRF_K, keyword_text, tokenize
from .store import embed_passages
from .sync import document_record, made_with_retired_embedder

log = logging.getLogger(__name__)

MANIFEST_ROW = "."  # the documents collection's row holding the store's manifest: no file is called "."
_PASSAGE_FIELDS = ["text", "source", "title", "start", "end", "lang", "page"]
_MAX_TITLE_CHARS = 1000
_QUERY_BATCH = 1000  # rows per query page when listing, and per insert
_TEXT_PIECE_CHARS = 16_000  # 4 bytes a character at most in UTF-8: under Milvus's 65,535-byte VARCHAR
KEYWORD_SCORE_DEPTH = 1000  # keyword_scores is exact for chunks among this many best matches
CONNECT_TIMEOUT_S = 10.0  # how long to wait for a Milvus server before saying it cannot be reached


def store_uri(setting: str) -> str:
    """The pymilvus URI of a ``CHATBOT_STORE`` setting: ``milvus://HOST:PORT`` becomes ``http://HOST:PORT``;
    ``http(s)://`` addresses and local ``.db`` paths are used as they are."""
    if setting.startswith("milvus://"):
        return "http://" + setting[len("milvus://"):]
    if setting.startswith(("http://", "https://")) or setting.endswith(".db"):
        return setting
    raise IndexLoadError(f"CHATBOT_STORE={setting!r} is not a Milvus address: use milvus://HOST:PORT, an "
                     "http(s):// address, or a local path ending in .db (leave it unset for the embedded store).")


def _connect(uri: str):
    try:
        from pymilvus import MilvusClient
    except ImportError:
        raise IndexLoadError("CHATBOT_STORE names a Milvus store but pymilvus is not installed: "
                             "pip install 'pymilvus[milvus-lite]' (or unset CHATBOT_STORE).") from None
    if uri.endswith(".db"):
        Path(uri).parent.mkdir(parents=True, exist_ok=True)
    try:
        return MilvusClient(uri=uri, timeout=CONNECT_TIMEOUT_S)
    except Exception as exc:
        raise IndexLoadError(f"Cannot reach the Milvus store at {uri} ({type(exc).__name__}: {exc}): start "
                             "Milvus there, or point CHATBOT_STORE at a running one.") from exc


class MilvusStore:
    """A :class:`~chatbot.index.search.PassageStore` on a Milvus collection. Every read asks Milvus, so a
    document another replica added is found at once."""

    query_encoder = None  # queries are embedded by the embedder itself

    def __init__(self, client, collection: str, uri: str):
        self._client = client
        self.collection = collection
        self.directory = uri  # where it lives, for messages
        self._chunks, self._documents, self._texts = (f"{collection}_{kind}" for kind in ("chunks", "documents", "texts"))

    @classmethod
    def open(cls, settings: Settings) -> "MilvusStore":
        uri = store_uri(settings.store)
        store = cls(_connect(uri), settings.store_collection, uri)
        if store._exists():  # searchable once loaded into memory (a no-op when another client loaded it)
            for name in store._collections:
                store._client.load_collection(name)
        return store

    # Reading

    @property
    def _collections(self) -> tuple[str, str, str]:
        return self._chunks, self._documents, self._texts

    def _exists(self) -> bool:
        return all(self._client.has_collection(name) for name in self._collections)

    @property
    def manifest(self) -> dict:
        if not self._exists():
            return {}
        rows = self._client.get(self._documents, ids=[MANIFEST_ROW], output_fields=["record"])
        return dict(rows[0]["record"]) if rows else {}

    @property
    def embedder_name(self) -> str:
        return self.manifest["embedder"]

    def _document_rows(self) -> list[dict]:
        if not self._exists():
            return []
        rows = self._query(self._documents, f'source != "{MANIFEST_ROW}"', ["source", "sha256", "record"])
        return sorted(rows, key=lambda r: r["source"])

    @property
    def documents(self) -> list[dict]:
        """The documents' records, each with the text its passages' offsets index."""
        pieces: dict[str, list[tuple[int, str]]] = {}
        for row in self._query(self._texts, "", ["source", "part", "text"]):
            pieces.setdefault(row["source"], []).append((row["part"], row["text"]))
        return [{"source": r["source"], **r["record"], "text": "".join(t for _, t in sorted(pieces.get(r["source"], [])))}
                for r in self._document_rows()]

    @property
    def languages(self) -> set[str]:
        return {r["record"]["lang"] for r in self._document_rows()}

    def __len__(self) -> int:
        if not self._exists():
            return 0
        rows = self._client.query(self._chunks, filter="", output_fields=["count(*)"])
        return int(rows[0]["count(*)"])

    @property
    def passages(self) -> list[Passage]:
        rows = self._query(self._chunks, "", _PASSAGE_FIELDS)
        return sorted((_passage(r) for r in rows), key=lambda p: (p.source, p.start))

    def _query(self, collection: str, filter_: str, fields: list[str]) -> list[dict]:
        rows, offset = [], 0
        while True:
            page = self._client.query(collection, filter=filter_, output_fields=fields, limit=_QUERY_BATCH,
                                      offset=offset)
            rows += page
            if len(page) < _QUERY_BATCH:
                return rows
            offset += _QUERY_BATCH

    def get(self, chunk_ids: Sequence[int]) -> list[Passage]:
        if not len(chunk_ids):
            return []
        rows = {r["id"]: r for r in self._client.get(self._chunks, ids=list(chunk_ids), output_fields=_PASSAGE_FIELDS)}
        return [_passage(rows[i]) for i in chunk_ids]

    def dense_search(self, query_vec: np.ndarray, k: int, *,
                     languages: Collection[str] | None = None) -> list[tuple[int, float]]:
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        filter_ = _in("lang", sorted(languages)) if languages is not None else ""
        hits = self._client.search(self._chunks, data=[_vector(query_vec)], anns_field="dense", limit=k,
                                   filter=filter_, search_params={"metric_type": "IP"}, output_fields=[])
        return [(int(h["id"]), float(h["distance"])) for h in hits[0]]

    def keyword_search(self, query: str, k: int) -> list[tuple[int, float]]:
        terms = " ".join(tokenize(query))
        if not terms:
            return []
        hits = self._client.search(self._chunks, data=[terms], anns_field="sparse", limit=k, output_fields=[])
        # milvus-lite reports BM25 scores negated (its distances sort ascending), Milvus positive; both keep
        # Lucene's (k1 + 1) numerator, which bm25s (the embedded store) drops: divided out, the scores are
        # the embedded store's
        return [(int(h["id"]), abs(float(h["distance"])) / (BM25_K1 + 1)) for h in hits[0]]

    def keyword_scores(self, query: str, chunk_ids: Sequence[int]) -> np.ndarray:
        """As the protocol says, for chunks among the ``KEYWORD_SCORE_DEPTH`` best keyword matches (0 for the
        rest, whose scores are far below): a search filtered to the ids would score them against the
        filtered rows' statistics in milvus-lite, not the collection's."""
        if not len(chunk_ids):
            return np.zeros(0, dtype=np.float32)
        scores = dict(self.keyword_search(query, KEYWORD_SCORE_DEPTH))
        return np.array([scores.get(int(i), 0.0) for i in chunk_ids], dtype=np.float32)

    def hybrid_search(self, query_vec: np.ndarray, query: str, k: int, depth: int) -> list[tuple[int, float]]:
        from pymilvus import AnnSearchRequest, RRFRanker

        terms = " ".join(tokenize(query))
        if not terms:  # nothing to match by keyword: the dense ranking alone, fused
            return [(i, 1.0 / (RRF_K + rank)) for rank, (i, _) in enumerate(self.dense_search(query_vec, k), 1)]
        requests = [AnnSearchRequest(data=[_vector(query_vec)], anns_field="dense", param={"metric_type": "IP"},
                                     limit=depth),
                    AnnSearchRequest(data=[terms], anns_field="sparse", param={}, limit=depth)]
        hits = self._client.hybrid_search(self._chunks, requests, RRFRanker(RRF_K), limit=k, output_fields=[])
        return [(int(h["id"]), float(h["distance"])) for h in hits[0]]

    def similarity(self, query_vec: np.ndarray, chunk_ids: Sequence[int]) -> np.ndarray:
        if not len(chunk_ids):
            return np.zeros(0, dtype=np.float32)
        rows = {r["id"]: r["dense"] for r in self._client.get(self._chunks, ids=list(chunk_ids), output_fields=["dense"])}
        vectors = np.array([rows[i] for i in chunk_ids], dtype=np.float32)
        return vectors @ np.asarray(query_vec, dtype=np.float32).reshape(-1)

    # Writing

    def create(self, dimension: int) -> None:
        """Drop and create both collections, empty."""
        from pymilvus import DataType, Function, FunctionType, MilvusClient

        for name in self._collections:
            if self._client.has_collection(name):
                self._client.drop_collection(name)
        schema = MilvusClient.create_schema(auto_id=False)
        schema.add_field("id", DataType.INT64, is_primary=True)
        schema.add_field("text", DataType.VARCHAR, max_length=65535)
        schema.add_field("source", DataType.VARCHAR, max_length=1024)
        schema.add_field("title", DataType.VARCHAR, max_length=4 * _MAX_TITLE_CHARS)
        schema.add_field("start", DataType.INT64)
        schema.add_field("end", DataType.INT64)
        schema.add_field("lang", DataType.VARCHAR, max_length=16)
        schema.add_field("page", DataType.INT64, nullable=True)
        schema.add_field("version", DataType.VARCHAR, max_length=64)
        schema.add_field("terms", DataType.VARCHAR, max_length=65535, enable_analyzer=True)
        schema.add_field("sparse", DataType.SPARSE_FLOAT_VECTOR)
        schema.add_field("dense", DataType.FLOAT_VECTOR, dim=dimension)
        schema.add_function(Function(name="bm25", function_type=FunctionType.BM25, input_field_names=["terms"],
                                     output_field_names=["sparse"]))
        indexes = self._client.prepare_index_params()
        indexes.add_index(field_name="sparse", index_type="SPARSE_INVERTED_INDEX", metric_type="BM25",
                          params={"bm25_k1": BM25_K1, "bm25_b": BM25_B})
        indexes.add_index(field_name="dense", index_type="AUTOINDEX", metric_type="IP")
        with _quiet_grpc_server():
            self._client.create_collection(self._chunks, schema=schema, index_params=indexes)

        documents = MilvusClient.create_schema(auto_id=False)
        documents.add_field("source", DataType.VARCHAR, max_length=1024, is_primary=True)
        documents.add_field("sha256", DataType.VARCHAR, max_length=64)
        documents.add_field("record", DataType.JSON)
        documents.add_field("placeholder", DataType.FLOAT_VECTOR, dim=2)  # Milvus wants a vector field
        indexes = self._client.prepare_index_params()
        indexes.add_index(field_name="placeholder", index_type="AUTOINDEX", metric_type="L2")
        with _quiet_grpc_server():
            self._client.create_collection(self._documents, schema=documents, index_params=indexes)

        texts = MilvusClient.create_schema(auto_id=False)
        texts.add_field("id", DataType.INT64, is_primary=True)
        texts.add_field("source", DataType.VARCHAR, max_length=1024)
        texts.add_field("version", DataType.VARCHAR, max_length=64)
        texts.add_field("part", DataType.INT64)
        texts.add_field("text", DataType.VARCHAR, max_length=65535)
        texts.add_field("placeholder", DataType.FLOAT_VECTOR, dim=2)
        with _quiet_grpc_server():
            self._client.create_collection(self._texts, schema=texts, index_params=indexes)
        for name in self._collections:
            self._client.load_collection(name)

    def replace_document(self, source: str, sha256: str, record: dict, text: str, passages: Sequence[Passage],
                         vectors: np.ndarray) -> None:
        """Put ``source``'s record, ``text`` and passages (with their ``vectors``, one row each) in place of its old
        ones; ``sha256`` (its file's) is the version of the new rows."""
        version = sha256
        pieces = [{"id": _row_id("text", source, version, n), "source": source, "version": version, "part": n,
                   "text": text[start:start + _TEXT_PIECE_CHARS], "placeholder": [0.0, 0.0]}
                  for n, start in enumerate(range(0, len(text), _TEXT_PIECE_CHARS))]
        for start in range(0, len(pieces), 100):
            self._client.upsert(self._texts, pieces[start:start + 100])
        rows = [{"id": _row_id("chunk", source, version, n), "text": p.text, "source": p.source,
                 "title": p.title[:_MAX_TITLE_CHARS], "start": p.start, "end": p.end, "lang": p.lang,
                 "page": p.page, "version": version, "terms": " ".join(tokenize(keyword_text(p))) or "_",
                 "dense": _vector(vectors[n])}
                for n, p in enumerate(passages)]
        for start in range(0, len(rows), _QUERY_BATCH):
            self._client.upsert(self._chunks, rows[start:start + _QUERY_BATCH])
        self._client.upsert(self._documents, [{"source": source, "sha256": sha256, "record": record,
                                               "placeholder": [0.0, 0.0]}])
        for name in (self._chunks, self._texts):
            self._client.delete(name, filter=f"source == {_literal(source)} and version != {_literal(version)}")

    def remove_document(self, source: str) -> None:
        self._client.delete(self._documents, ids=[source])
        for name in (self._chunks, self._texts):
            self._client.delete(name, filter=f"source == {_literal(source)}")

    def delete_orphans(self) -> None:
        """Delete chunks and texts whose version no document row names (left by a writer killed part-way)."""
        versions = [r["sha256"] for r in self._document_rows()]
        for name in (self._chunks, self._texts):
            self._client.delete(name, filter=f"not ({_in('version', versions)})")

    def write_manifest(self, manifest: dict) -> None:
        self._client.upsert(self._documents, [{"source": MANIFEST_ROW, "sha256": "", "record": manifest, "placeholder": [0.0, 0.0]}])


def _literal(text: str) -> str:
    """``text`` as a string literal of Milvus's filter expressions (file names may hold quotes; milvus-lite
    reads neither filter templates nor \\u escapes, so the text itself goes in, quotes escaped)."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _in(field: str, values: Sequence[str]) -> str:
    return f"{field} in [{', '.join(_literal(v) for v in values)}]"


@contextmanager
def _quiet_grpc_server():
    """milvus-lite's in-process server logs a traceback for the one call it does not implement (pymilvus's
    AllocTimestamp while it waits for an index), which pymilvus then does without."""
    server_log = logging.getLogger("grpc._server")
    level = server_log.level
    server_log.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        server_log.setLevel(level)


def _row_id(kind: str, source: str, version: str, place: int) -> int:
    """A row's primary key: the same for the same row of the same version of a document, whoever writes it."""
    digest = hashlib.blake2b(f"{kind}\0{source}\0{version}\0{place}".encode("utf-8", "surrogatepass"),
                             digest_size=8).digest()
    return int.from_bytes(digest, "big") >> 1  # a non-negative int64


def _vector(v) -> list[float]:
    return np.asarray(v, dtype=np.float32).reshape(-1).tolist()


def _passage(row: dict) -> Passage:
    return Passage(**{k: row[k] for k in _PASSAGE_FIELDS})


def sync_store(settings: Settings, fields: dict, embedder: TextEmbedder,
               on_progress: Callable[[int, int], None] | None = None) -> MilvusStore:
    """The Milvus store of ``settings``, brought up to date with the corpus folder: created when empty or
    made with other settings (``fields``: :func:`~chatbot.index.sync.index_fields`), else only the files
    added, changed or removed since its manifest are embedded again or deleted."""
    store = MilvusStore.open(settings)
    try:
        return _sync(store, settings, fields, embedder, on_progress)
    except IndexLoadError:
        raise
    except Exception as exc:
        raise IndexBuildError(f"Updating the Milvus store at {store.directory} failed ({type(exc).__name__}: "
                              f"{exc}); what it held before stays searchable. Check that Milvus is running, "
                              "then start again.") from exc


def _sync(store: MilvusStore, settings: Settings, fields: dict, embedder: TextEmbedder, on_progress) -> MilvusStore:
    manifest = store.manifest
    want = {**fields, "embedder": embedder.name}
    same_settings = manifest and not made_with_retired_embedder(manifest) and all(
        manifest.get(k) == json.loads(json.dumps(v)) for k, v in want.items() if k != "files")
    have_files = manifest.get("files", {}) if same_settings else {}
    if not same_settings or have_files.get(METADATA_FILE) != want["files"].get(METADATA_FILE):
        log.info("creating the Milvus store %s at %s", store.collection, store.directory)
        store.create(embedder.dimension)
        have_files, skipped_before = {}, {}
    else:
        store.delete_orphans()
        skipped_before = manifest.get("skipped", {})
    if not want["files"]:
        raise IndexBuildError("No passages to index: the corpus is empty or every file was skipped.")
    if have_files == want["files"]:
        return store
    changed = {name for name, digest in want["files"].items() if have_files.get(name) != digest}
    removed = set(have_files) - set(want["files"])
    log.info("updating the Milvus store %s: added or changed %s, removed %s", store.collection,
             sorted(changed) or "none", sorted(removed) or "none")
    docs, skipped = load_corpus(settings.corpus_dir, settings.max_file_bytes, names=changed)
    for s in skipped:
        log.warning("not indexed: %s (%s)", s.source, s.reason)
    passages = chunk_corpus(docs, settings.chunking)
    indexed = {p.source for p in passages}
    if not indexed | (set(have_files) - changed - removed - {METADATA_FILE} - set(skipped_before)):
        raise IndexBuildError("No passages to index: the corpus is empty or every file was skipped.")
    total, done = len(passages), 0
    for doc in docs:
        own = [p for p in passages if p.source == doc.source]
        if not own:  # nothing to cite in it: removed below
            continue
        vectors = embed_passages(embedder, [p.text for p in own], 32, False)
        record = {k: v for k, v in document_record(doc, passages).items() if k not in ("source", "text")}
        store.replace_document(doc.source, want["files"][doc.source], record, doc.text, own, vectors)
        done += len(own)
        if on_progress is not None:
            on_progress(done, total)
    for source in removed | (changed - indexed):
        store.remove_document(source)
    skipped_now = {n: r for n, r in skipped_before.items() if n not in changed | removed}
    skipped_now |= {s.source: s.reason for s in skipped}
    store.write_manifest({**want, "skipped": dict(sorted(skipped_now.items()))})
    return store
