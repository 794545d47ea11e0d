"""HTTP API (FastAPI): ``chatbot serve-api``; interactive docs at ``/docs``, schema at ``/openapi.json``.

``POST /search`` returns cited passages, ``POST /ask`` an answer with citations (the
object ``chatbot ask --json`` prints), ``GET /health`` what is loaded. Errors are
``{"detail": message}``: 400 for a question that cannot be asked (empty, too long, no words),
422 for a malformed body (FastAPI's list of field errors), 413/411 for a body that is
too large or has no length, 503 when the models or index fail.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema

from . import __version__
from .config import SHIPPED_READER_DIR, Settings
from .errors import ChatbotError
from .guard import RequestGuard
from .pipeline import Chatbot
from .questions import clean_question, has_words, valid_text
from .retrieval import MAX_K
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


class SearchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    query: str = Field(description="What to search for.", examples=["Colossus supercomputer Memphis"])
    k: PassageCount = Field(5, description="How many passages to return.")


class PassageOut(BaseModel):
    text: str = Field(description="The passage, exactly as in the file: file_text[start:end].")
    score: float = Field(description="Fused rank score (higher is better); ranks, does not measure relevance.")
    source: str = Field(description="File name in the corpus.")
    title: str
    start: int = Field(description="Character offset of the passage in the original file.")
    end: int


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


class CitationOut(BaseModel):
    source: str
    title: str
    start: int
    end: int
    text: str = Field(description="The cited passage: file_text[start:end].")
    answer_start: int | None = Field(description="Offset of the answer in the file, when it lies in this passage.")
    answer_end: int | None


class AskResponse(BaseModel):
    question: str
    searched_for: str = Field(description="The query used: follow-ups get their earlier subject.")
    answer: str | None = Field(description="The short answer, or null when the corpus does not hold it.")
    score: float = Field(description="Confidence in [0, 1].")
    citations: list[CitationOut]
    latency_ms: float
    clarification: str | None = Field(description="A question back instead of an answer (a follow-up such as "
                                                   "\"Who founded it?\" with no earlier question); null otherwise.")


class Health(BaseModel):
    status: str
    version: str
    documents: int
    chunks: int
    embedder: str
    reader: str


class ErrorBody(BaseModel):
    detail: str


# 400: a question that cannot be asked, or a Host not served; 403: a browser page of another origin;
# 411/413: a body without length or too large (chatbot.guard); 503: the models or index failed.
_ERRORS = {code: {"model": ErrorBody} for code in (400, 403, 411, 413, 503)}
_HOST_ERROR = {400: {"model": ErrorBody, "description": "A Host header this server does not serve."}}


def _reader_name(reader: str) -> str:
    return "chatbot/models/reader (shipped)" if reader == str(SHIPPED_READER_DIR) else reader


def create_app(chatbot: Chatbot) -> FastAPI:
    """The HTTP API over a loaded ``chatbot``; requests are taken concurrently, and answered on
    ``settings.concurrency`` dedicated threads (:class:`~chatbot.workers.AnswerWorkers`)."""
    settings: Settings = chatbot.settings
    app = FastAPI(title="chatbot", version=__version__,
                  description="Offline question answering over a document corpus, with cited passages.")
    health = Health(status="ok", version=__version__, documents=len({p.source for p in chatbot.index.passages}),
                    chunks=len(chatbot.index), embedder=chatbot.index.embedder_name,
                    reader=_reader_name(chatbot.reader.model_name_or_path))

    app.add_middleware(RequestGuard, allowed_hosts=settings.allowed_hosts, body_limit=lambda path: MAX_BODY_BYTES,
                       require_length=True)

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

    def call(fn: Callable[[], Any]) -> Any:
        try:
            return workers.run(fn)
        except ValueError as exc:
            raise HTTPException(400, str(exc)) from exc
        except ChatbotError as exc:
            log.exception("the chatbot failed")
            raise HTTPException(503, str(exc)) from exc

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
        return call(lambda: chatbot.ask(question, history=body.history, k=body.k or settings.top_k).to_dict())

    @app.get("/health", response_model=Health, responses=_HOST_ERROR)
    def get_health() -> Health:
        """What is loaded: corpus documents, index chunks, embedder and reader."""
        return health

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
