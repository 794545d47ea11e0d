"""HTTP API (FastAPI): ``chatbot serve-api``; interactive docs at ``/docs``, schema at ``/openapi.json``.

``POST /search`` returns cited passages, ``POST /ask`` an answer with citations (the
object ``chatbot ask --json`` prints), ``GET /health`` what is loaded. Errors are
``{"detail": message}``: 400 for a question that cannot be asked (empty, too long, no words),
422 for a malformed body (FastAPI's list of field errors), 413/411 for a body that is
too large or has no length, 503 when the models or index fail.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from . import __version__
from .config import SHIPPED_READER_DIR, Settings
from .errors import ChatbotError
from .pipeline import Chatbot
from .questions import has_words
from .retrieval import MAX_K
from .workers import AnswerWorkers

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 64 * 1024
MAX_HISTORY = 20


class SearchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    query: str = Field(description="What to search for.", examples=["Colossus supercomputer Memphis"])
    k: int = Field(5, ge=1, le=MAX_K, strict=True, description="How many passages to return.")


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
    history: list[str] = Field(default_factory=list, max_length=MAX_HISTORY,
                               description="Earlier questions of the conversation, oldest first (for follow-ups).")
    k: int | None = Field(None, ge=1, le=MAX_K, strict=True,
                          description="Passages retrieved and read (default: the server's setting, 5).")


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


_ERRORS = {code: {"model": ErrorBody} for code in (400, 503)}


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

    @app.middleware("http")
    async def limit_body(request: Request, call_next):
        if request.method == "POST":
            length = request.headers.get("content-length")
            if length is None:
                return JSONResponse({"detail": "Send the body with a Content-Length header."}, status_code=411)
            if not length.isdigit() or int(length) > MAX_BODY_BYTES:
                return JSONResponse({"detail": f"The request body is larger than {MAX_BODY_BYTES} bytes."},
                                    status_code=413)
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
        return health

    return app


def serve(settings: Settings, host: str = "127.0.0.1", port: int = 8000) -> None:
    """Load the chatbot for ``settings`` (index and both models), then serve the API until interrupted."""
    import uvicorn

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    chatbot = Chatbot.load(settings=settings, progress=True)
    chatbot.warm_up()
    uvicorn.run(create_app(chatbot), host=host, port=port)
