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
import math
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

from fastapi import FastAPI, HTTPException, Request, Response, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema

from .. import __version__
from ..config import SHIPPED_READER_DIR, Settings
from ..errors import ChatbotError
from .guard import RequestGuard
from ..ingest.documents import DocumentLibrary, NoSuchDocument, UploadsOff
from ..qa.chatbot import Chatbot
from ..qa.questions import clean_question, has_words, valid_text
from ..qa.retrieval import MAX_K
from .workers import AnswerWorkers

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 64 * 1024
MAX_HISTORY = Settings().max_history_turns
MAX_HISTORY_CHARS = Settings().max_question_chars


def _whole_number(value: Any) -> Any:
    """JSON Schema's integer: 8.0 is 8; NaN, Infinity and 2.5 are refused (422)."""
    if isinstance(value, float):
        if not math.isfinite(value) or not value.is_integer():
            raise ValueError("k must be a whole number")
        return int(value)
    return value


PassageCount = Annotated[int, Field(ge=1, le=MAX_K, strict=True), BeforeValidator(_whole_number)]


def _history_entry(text: str) -> str:
    if len(text) > MAX_HISTORY_CHARS:
        raise ValueError(f"each earlier question must be at most {MAX_HISTORY_CHARS} characters, this has {len(text)}")
    return text


# Checked in Python, not by pydantic's max_length, which refuses text holding lone surrogates (the library
# removes them, as from the question).
HistoryEntry = Annotated[str, AfterValidator(_history_entry),
                         WithJsonSchema({"type": "string", "maxLength": MAX_HISTORY_CHARS})]
MAX_UPLOAD_FILES = 20  # files in one POST /documents


class SearchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    query: str = Field(description="What to search for.", examples=["Colossus supercomputer Memphis"])
    k: PassageCount = Field(5, description="How many passages to return.")


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
    history: list[HistoryEntry] = Field(
        default_factory=list, max_length=MAX_HISTORY,
        description="Earlier questions of the conversation, oldest first (for follow-ups).")
    k: PassageCount | None = Field(None, description="Passages retrieved and read (default: the server's setting, 5).")
    explain: bool = Field(False, strict=True, description="Also return why: the passages and their ranks, the candidates with "
                                             "their features and confidence, the threshold and the decision.")


class CitationOut(BaseModel):
    source: str
    title: str
    start: int
    end: int
    text: str = Field(description="The cited passage: document_text[start:end].")
    answer_start: int | None = Field(description="Offset of the answer in the document, when it lies in this passage.")
    answer_end: int | None
    page: int | None = Field(None, description="Page of a PDF the passage is on (1 = first), else null.")


class AlternativeOut(BaseModel):
    text: str
    score: float = Field(description="The answer policy's probability that this answer is right.")


class AskResponse(BaseModel):
    question: str
    searched_for: str = Field(description="The query used: follow-ups get their earlier subject.")
    answer: str | None = Field(description="The short answer, or null when the corpus does not hold it.")
    score: float = Field(description="Confidence in [0, 1]: the answer policy's probability that the answer is "
                                     "right (when the bot abstains: that of its most likely candidate).")
    citations: list[CitationOut]
    latency_ms: float
    clarification: str | None = Field(description="A question back instead of an answer (a follow-up such as "
                                                   "\"Who founded it?\" with no earlier question); null otherwise.")
    alternatives: list[AlternativeOut] = Field(description="Runner-up answers, most likely first.")
    explanation: dict | None = Field(None, description="With \"explain\": true: searched_for, language, passages "
                                                       "(rank, scores), candidates (text, confidence, features), "
                                                       "threshold and decision.")


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


# 400: a question that cannot be asked, or a Host not served; 403: a browser page of another origin;
# 411/413: a body without length or too large (chatbot.serve.guard); 503: the models or index failed.
_ERRORS = {code: {"model": ErrorBody} for code in (400, 403, 411, 413, 503)}
_HOST_ERROR = {400: {"model": ErrorBody, "description": "A Host header this server does not serve."}}
_DOCUMENT_ERRORS = {code: {"model": ErrorBody} for code in (400, 403, 404, 411, 413, 503)}


def _reader_name(reader: str) -> str:
    return "chatbot/models/reader-multilingual (shipped)" if reader == str(SHIPPED_READER_DIR) else reader


def create_app(chatbot: Chatbot) -> FastAPI:
    """The HTTP API over a loaded ``chatbot``; requests are taken concurrently, and answered on
    ``settings.concurrency`` dedicated threads (:class:`~chatbot.serve.workers.AnswerWorkers`)."""
    settings: Settings = chatbot.settings
    app = FastAPI(title="chatbot", version=__version__,
                  description="Offline question answering over a document corpus, with cited passages.")
    library = DocumentLibrary(chatbot, settings)
    # An upload's body holds its files plus multipart headers.
    max_upload_bytes = MAX_UPLOAD_FILES * settings.max_file_bytes + MAX_BODY_BYTES

    def upload_hint(path: str) -> str:
        return (f"Send at most {MAX_UPLOAD_FILES} files of at most {settings.max_file_bytes / 2**20:g} MB each "
                "(CHATBOT_MAX_FILE_MB, --max-file-mb).") if path == "/documents" else ""

    app.add_middleware(RequestGuard, allowed_hosts=settings.allowed_hosts, require_length=True,
                       body_limit=lambda path: max_upload_bytes if path == "/documents" else MAX_BODY_BYTES,
                       body_hint=upload_hint)

    @app.exception_handler(RequestValidationError)
    async def malformed_body(request: Request, exc: RequestValidationError) -> JSONResponse:
        """FastAPI's 422 list of field errors, with what cannot be written as JSON (NaN, lone surrogates)
        written as text."""
        return JSONResponse({"detail": _json_safe(exc.errors())}, status_code=422)

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
        query = clean_question(checked(body.query, "query"), settings.max_question_chars)
        passages = call(lambda: chatbot.search(query, body.k))
        return {"query": query, "passages": [p.to_dict() for p in passages]}

    @app.post("/ask", response_model=AskResponse, responses=_ERRORS)
    def ask(body: AskRequest) -> dict:
        """Answer ``question`` from the corpus, with the cited passages (``answer`` is null when not found)."""
        question = checked(body.question, "question")
        return call(lambda: chatbot.ask(question, history=body.history, k=body.k or settings.top_k,
                                        explain=body.explain).to_dict())

    @app.get("/health", response_model=Health, responses=_HOST_ERROR)
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


def _json_safe(value: Any) -> Any:
    """``value`` (error details) with non-finite numbers and other non-JSON values as text, lone surrogates replaced."""
    if isinstance(value, dict):
        return {_json_safe(k) if isinstance(k, str) else str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, str):
        return valid_text(value)
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if value is None or isinstance(value, (bool, int, float)):
        return value
    return valid_text(str(value))


def serve(settings: Settings, host: str = "127.0.0.1", port: int = 8000) -> None:
    """Load the chatbot for ``settings`` (index and both models), then serve the API until interrupted."""
    import uvicorn

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    chatbot = Chatbot.load(settings=settings, progress=True)
    chatbot.warm_up()
    uvicorn.run(create_app(chatbot), host=host, port=port)
