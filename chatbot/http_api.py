"""HTTP API (FastAPI): ``chatbot serve-api``; interactive docs at ``/docs``, schema at ``/openapi.json``.

``POST /search`` returns cited passages, ``POST /ask`` an answer with citations (the
object ``chatbot ask --json`` prints), ``GET /health`` what is loaded, ``GET /documents`` the
documents; ``POST /documents`` (multipart upload) and ``DELETE /documents/{name}`` add and remove
documents when the server was started with ``--allow-uploads`` (else 403). Errors are
``{"detail": message}``: 400 for a question that cannot be asked (empty, too long, no words),
422 for a malformed body (FastAPI's list of field errors), 413/411 for a body that is
too large or has no length, 503 when the models or index fail.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi import FastAPI, HTTPException, Request, Response, UploadFile
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from . import __version__
from .config import SHIPPED_READER_DIR, Settings
from .errors import ChatbotError
from .ingest.documents import DocumentLibrary, NoSuchDocument, UploadsOff
from .pipeline import Chatbot
from .questions import has_words
from .retrieval import MAX_K
from .workers import AnswerWorkers

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 64 * 1024
MAX_HISTORY = 20
MAX_UPLOAD_FILES = 20  # files in one POST /documents


class SearchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    query: str = Field(description="What to search for.", examples=["Colossus supercomputer Memphis"])
    k: int = Field(5, ge=1, le=MAX_K, strict=True, description="How many passages to return.")


class PassageOut(BaseModel):
    text: str = Field(description="The passage, exactly as in the file: file_text[start:end].")
    score: float = Field(description="Fused rank score (higher is better); ranks, does not measure relevance.")
    source: str = Field(description="File name in the corpus.")
    title: str
    start: int = Field(description="Character offset of the passage in the document's text (the file for .txt, "
                                   "the extracted text stored with the index for PDF, DOCX, HTML and Markdown).")
    end: int
    page: int | None = Field(None, description="Page of a PDF the passage is on (1 = first), else null.")


class SearchResponse(BaseModel):
    query: str
    passages: list[PassageOut]


class AskRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    question: str = Field(examples=["Which platform is Grok integrated into?"])
    history: list[str] = Field(default_factory=list, max_length=MAX_HISTORY,
                               description="Earlier questions of the conversation, oldest first (for follow-ups).")
    k: int | None = Field(None, ge=1, le=MAX_K, strict=True,
                          description="Passages retrieved and read (default: the server's setting, 5).")


class CitationOut(BaseModel):
    source: str
    title: str
    start: int
    end: int
    text: str = Field(description="The cited passage: document_text[start:end].")
    answer_start: int | None = Field(description="Offset of the answer in the document, when it lies in this passage.")
    answer_end: int | None
    page: int | None = Field(None, description="Page of a PDF the passage is on (1 = first), else null.")


class AskResponse(BaseModel):
    question: str
    searched_for: str = Field(description="The query used: follow-ups get their earlier subject.")
    answer: str | None = Field(description="The short answer, or null when the corpus does not hold it.")
    score: float = Field(description="Confidence in [0, 1].")
    citations: list[CitationOut]
    latency_ms: float


class Health(BaseModel):
    status: str
    version: str
    documents: int
    chunks: int
    embedder: str
    reader: str


class ErrorBody(BaseModel):
    detail: str


class DocumentOut(BaseModel):
    name: str = Field(description="File name in the corpus folder.")
    status: str = Field(description='"indexed", "skipped" (in the folder, not indexed: see note) or "refused" '
                                    "(an upload that was not written: see note).")
    title: str | None = None
    language: str | None = None
    pages: int | None = Field(None, description="Pages of a PDF, else null.")
    chunks: int = Field(0, description="Passages indexed.")
    note: str = Field("", description="Why it was skipped or refused, or what to know about it.")


class DocumentList(BaseModel):
    documents: list[DocumentOut]


_ERRORS = {code: {"model": ErrorBody} for code in (400, 503)}
_DOCUMENT_ERRORS = {code: {"model": ErrorBody} for code in (403, 404, 413, 503)}


def _reader_name(reader: str) -> str:
    return "chatbot/models/reader (shipped)" if reader == str(SHIPPED_READER_DIR) else reader


def create_app(chatbot: Chatbot) -> FastAPI:
    """The HTTP API over a loaded ``chatbot``; requests are taken concurrently, and answered on
    ``settings.concurrency`` dedicated threads (:class:`~chatbot.workers.AnswerWorkers`)."""
    settings: Settings = chatbot.settings
    app = FastAPI(title="chatbot", version=__version__,
                  description="Offline question answering over a document corpus, with cited passages.")
    library = DocumentLibrary(chatbot, settings)
    # An upload's body holds its files plus multipart headers.
    max_upload_bytes = MAX_UPLOAD_FILES * settings.max_file_bytes + MAX_BODY_BYTES

    @app.middleware("http")
    async def limit_body(request: Request, call_next):
        if request.method == "POST":
            limit = max_upload_bytes if request.url.path == "/documents" else MAX_BODY_BYTES
            length = request.headers.get("content-length")
            if length is None:
                return JSONResponse({"detail": "Send the body with a Content-Length header."}, status_code=411)
            if not length.isdigit() or int(length) > limit:
                detail = f"The request body is larger than {limit} bytes."
                if limit == max_upload_bytes:
                    detail += (f" Send at most {MAX_UPLOAD_FILES} files of at most {settings.max_file_bytes / 2**20:g} "
                               "MB each (CHATBOT_MAX_FILE_MB, --max-file-mb).")
                return JSONResponse({"detail": detail}, status_code=413)
        return await call_next(request)

    def checked(text: str, what: str) -> str:
        if not text.strip():
            raise HTTPException(400, f"The {what} is empty: please type one.")
        if len(text) > settings.max_question_chars:
            raise HTTPException(400, f"The {what} is too long ({len(text)} characters): "
                                     f"please keep it under {settings.max_question_chars}.")
        if not has_words(text):
            raise HTTPException(400, f"The {what} has no words (only punctuation or symbols): please type some.")
        return text

    workers = AnswerWorkers(settings.concurrency)  # the rest wait their turn: flat memory, fair latency

    def answered(fn: Callable[[], Any]) -> Any:
        """``fn()``, its errors as HTTP errors with their message."""
        try:
            return fn()
        except UploadsOff as exc:
            raise HTTPException(403, str(exc)) from exc
        except NoSuchDocument as exc:
            raise HTTPException(404, str(exc)) from exc
        except ValueError as exc:
            raise HTTPException(400, str(exc)) from exc
        except ChatbotError as exc:
            log.exception("the chatbot failed")
            raise HTTPException(503, str(exc)) from exc

    def call(fn: Callable[[], Any]) -> Any:
        return answered(lambda: workers.run(fn))

    @app.post("/search", response_model=SearchResponse, responses=_ERRORS)
    def search(body: SearchRequest) -> dict:
        """The ``k`` passages best matching ``query``, best first, with their offsets in the original files."""
        passages = call(lambda: chatbot.search(checked(body.query, "query"), body.k))
        return {"query": body.query, "passages": [p.to_dict() for p in passages]}

    @app.post("/ask", response_model=AskResponse, responses=_ERRORS)
    def ask(body: AskRequest) -> dict:
        """Answer ``question`` from the corpus, with the cited passages (``answer`` is null when not found)."""
        question = checked(body.question, "question")
        return call(lambda: chatbot.ask(question, history=body.history, k=body.k or settings.top_k).to_dict())

    @app.get("/health", response_model=Health)
    def get_health() -> Health:
        """What is loaded: corpus documents, index chunks, embedder and reader."""
        index = chatbot.index
        return Health(status="ok", version=__version__, documents=len({p.source for p in index.passages}),
                      chunks=len(index), embedder=index.embedder_name,
                      reader=_reader_name(chatbot.reader.model_name_or_path))

    @app.get("/documents", response_model=DocumentList, responses=_DOCUMENT_ERRORS)
    def get_documents() -> dict:
        """The corpus folder's documents: indexed ones with title, language, pages and chunks, skipped ones with
        the reason. Files dropped into the folder are indexed first."""
        return {"documents": [d.to_dict() for d in answered(library.list)]}

    @app.post("/documents", response_model=DocumentList, responses=_DOCUMENT_ERRORS)
    def post_documents(files: list[UploadFile]) -> dict:
        """Add documents (multipart field ``files``, one or more; .pdf, .docx, .html, .md, .txt) and index them
        (only their passages are embedded); a file of the same name is replaced. Each file's result comes back:
        ``refused`` with the reason for one of another type, too large, or unreadable. Needs ``--allow-uploads``."""
        answered(library.check_allowed)
        if len(files) > MAX_UPLOAD_FILES:
            raise HTTPException(413, f"Send at most {MAX_UPLOAD_FILES} files at once.")
        with tempfile.TemporaryDirectory(prefix="chatbot-upload-") as tmp:
            saved = []
            for n, upload in enumerate(files):
                path = Path(tmp) / str(n)
                with open(path, "wb") as out:
                    while block := upload.file.read(1 << 20):
                        out.write(block)
                saved.append((upload.filename or "", path))
            return {"documents": [d.to_dict() for d in answered(lambda: library.add(saved))]}

    @app.delete("/documents/{name}", status_code=204, responses=_DOCUMENT_ERRORS)
    def delete_document(name: str) -> Response:
        """Remove the document ``name`` from the corpus folder and its passages from the index. Needs
        ``--allow-uploads``."""
        answered(lambda: library.remove(name))
        return Response(status_code=204)

    return app


def serve(settings: Settings, host: str = "127.0.0.1", port: int = 8000) -> None:
    """Load the chatbot for ``settings`` (index and both models), then serve the API until interrupted."""
    import uvicorn

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    chatbot = Chatbot.load(settings=settings, progress=True)
    chatbot.warm_up()
    uvicorn.run(create_app(chatbot), host=host, port=port)
