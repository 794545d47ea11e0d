"""Web chat over the corpus (Gradio): ``chatbot serve`` or ``python app.py``.

Everything taken from the corpus, the reader or the user is shown as text:
:func:`escape_text` HTML-escapes it and neutralises markdown syntax before it
goes into a chat message, so a document can never inject markup or links.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterator
from functools import partial
from typing import Any

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # offline: no telemetry calls

import gradio as gr  # noqa: E402

from .config import Settings, UiSettings  # noqa: E402
from .conversation import Conversation  # noqa: E402
from .errors import ChatbotError  # noqa: E402
from .questions import check_question  # noqa: E402
from .types import Answer, Citation  # noqa: E402
from .web_documents import documents_tab  # noqa: E402
from .workers import AnswerWorkers  # noqa: E402

log = logging.getLogger(__name__)

NOT_FOUND = "I couldn't find the answer to that in the documents."
LOADING = "Indexing the corpus and loading the models… You can type a question now: it is answered as soon as this is done."
READY = "Ready: ask a question about the documents."
FAILED = "The chatbot could not start: "
INTERNAL_ERROR = "Sorry, something went wrong while answering. Please try again."

# HTML-significant characters become named entities; markdown syntax characters become
# numeric ones, which markdown treats as literal text (no emphasis, links, images, code).
_ESCAPES = str.maketrans(
    {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;", "\r": "", "\n": "<br>"}
    | {c: f"&#{ord(c)};" for c in "\\`*_{}[]()#+-.!|~$:="}
)


# ---------------------------------------------------------------- formatting (pure)


def escape_text(text: str) -> str:
    """``text`` as inert HTML/markdown: shown literally, on a single source line."""
    return text.translate(_ESCAPES)


def highlight(citation: Citation) -> str:
    """The cited passage, escaped, with the answer (if it lies in it) wrapped in ``<mark>``."""
    text = citation.text
    if citation.answer_start is None or citation.answer_end is None:
        return escape_text(text)
    a, b = citation.answer_start - citation.start, citation.answer_end - citation.start
    if not 0 <= a < b <= len(text):
        return escape_text(text)
    return f"{escape_text(text[:a])}<mark>{escape_text(text[a:b])}</mark>{escape_text(text[b:])}"


def format_citation(citation: Citation) -> str:
    """One passage as a quote headed by its document's title, file name and page ("p. 3")."""
    page = f", p. {citation.page}" if citation.page is not None else ""
    return (
        f'<blockquote class="citation"><div><strong>{escape_text(citation.title)}</strong>'
        f" — <code>{escape_text(citation.source)}</code>{page}</div>{highlight(citation)}</blockquote>"
    )


def _details(summary: str, body: str) -> str:
    return f"<details><summary>{summary}</summary>{body}</details>"


def format_answer(answer: Answer) -> str:
    """A chat message for ``answer``: short answer and confidence, the query used, the
    cited passage(s), and other candidate answers collapsed. Each block is one line."""
    blocks = []
    if answer.text is not None:
        blocks.append(
            f'<div class="answer">Answer: <strong>{escape_text(answer.text)}</strong>'
            f" <small>(confidence {answer.score:.0%})</small></div>"
        )
    else:
        blocks.append(f'<div class="not-found">{escape_text(NOT_FOUND)}</div>')
    blocks.append(f'<div class="searched-for"><small>searched for: “{escape_text(answer.searched_for)}”</small></div>')
    citations = answer.citations
    if answer.text is not None and citations:
        blocks.append(format_citation(citations[0]))
        citations = citations[1:]
    if citations:
        label = "Other passages" if answer.text is not None else "Closest passages"
        blocks.append(_details(f"{label} ({len(citations)})", "".join(map(format_citation, citations))))
    if answer.alternatives:
        items = "".join(f"<li>{escape_text(s.text)} <small>({s.score:.0%})</small></li>" for s in answer.alternatives)
        blocks.append(_details(f"Other candidate answers ({len(answer.alternatives)})", f"<ul>{items}</ul>"))
    return "\n\n".join(blocks)


# ---------------------------------------------------------------- loading and handlers


class Backend:
    """Loads the chatbot (index build + models) in a background thread, once."""

    def __init__(self, factory: Callable[[], Any]):
        self._factory = factory
        self._done = threading.Event()
        self._bot = None
        self.error: str | None = None
        threading.Thread(target=self._load, name="chatbot-loader", daemon=True).start()

    def _load(self) -> None:
        try:
            bot = self._factory()
            bot.warm_up()
            self._bot = bot
        except ChatbotError as exc:
            log.exception("loading the chatbot failed")
            self.error = str(exc)
        except Exception:
            log.exception("loading the chatbot failed")
            self.error = "an unexpected error (see the server log)."
        finally:
            self._done.set()

    @property
    def ready(self) -> bool:
        return self._done.is_set()

    def status(self) -> str:
        if not self.ready:
            return LOADING
        return READY if self.error is None else FAILED + escape_text(self.error)

    def bot(self):
        """The loaded chatbot, waiting for it if needed; ``ChatbotError`` if loading failed."""
        self._done.wait()
        if self.error is not None:
            raise ChatbotError(f"The chatbot could not start: {self.error}")
        return self._bot


class Handlers:
    """The app's event handlers, separate from the layout so that they can be tested."""

    def __init__(self, backend: Backend, settings: Settings):
        self.backend = backend
        self.settings = settings
        self.workers = AnswerWorkers(settings.concurrency)  # the models run on these threads only

    def respond(self, message: str, messages: list | None, conversation: Conversation | None) -> Iterator[tuple]:
        """Chat turn: echo the question, then replace a pending line with the answer."""
        problem = check_question(message, self.settings.max_question_chars)
        conversation = conversation or Conversation()
        shown = str(message or "")
        shown = shown if len(shown) <= 300 else shown[:300] + "…"
        messages = [*(messages or []), {"role": "user", "content": escape_text(shown)}]
        if problem:
            yield [*messages, {"role": "assistant", "content": escape_text(problem)}], "", conversation
            return
        if not self.backend.ready:
            yield [*messages, {"role": "assistant", "content": escape_text(LOADING)}], "", conversation
        reply = self._answer(lambda: format_answer(self.workers.run(
            partial(conversation.ask, self.backend.bot(), message, k=self.settings.top_k))))
        yield [*messages, {"role": "assistant", "content": reply}], "", conversation

    @staticmethod
    def _answer(make_reply: Callable[[], str]) -> str:
        """``make_reply()``, or a short message for the user instead of an exception."""
        try:
            return make_reply()
        except (ValueError, ChatbotError) as exc:  # messages meant for the user
            log.warning("question refused: %s", exc)
            return escape_text(str(exc))
        except Exception:
            log.exception("answering failed")
            return escape_text(INTERNAL_ERROR)

    @staticmethod
    def clear() -> tuple[list, Conversation]:
        """An empty chat and a fresh session."""
        return [], Conversation()

    def api_ask(self, question: str, history: list[str] | None = None) -> dict:
        """``/ask``: the same dict as ``chatbot ask --json``."""
        self._api_check(question)
        return self._api_call(lambda bot: bot.ask(question, history=list(history or []), k=self.settings.top_k).to_dict())

    def api_search(self, query: str, k: int = 5) -> dict:
        """``/search``: the ``k`` passages best matching ``query``."""
        self._api_check(query)
        return self._api_call(lambda bot: {"query": query, "passages": [p.to_dict() for p in bot.search(query, int(k))]})

    def _api_check(self, text: str) -> None:
        problem = check_question(text, self.settings.max_question_chars)
        if problem:
            raise gr.Error(problem)

    def _api_call(self, fn: Callable[[Any], dict]) -> dict:
        try:
            bot = self.backend.bot()
            return self.workers.run(lambda: fn(bot))
        except (ValueError, ChatbotError) as exc:
            raise gr.Error(str(exc)) from exc
        except Exception as exc:
            log.exception("API call failed")
            raise gr.Error(INTERNAL_ERROR) from exc


# ---------------------------------------------------------------- the app


def _default_factory(settings: Settings) -> Callable[[], Any]:
    def load():
        from .pipeline import Chatbot

        return Chatbot.load(settings=settings)

    return load


def build_app(chatbot_factory: Callable[[], Any] | None = None, settings: Settings | None = None) -> gr.Blocks:
    """The web chat; starts loading the chatbot (``chatbot_factory()``, default
    ``Chatbot.load(settings=settings)``) in the background right away."""
    settings = settings or Settings.from_env()
    ui = UiSettings.for_corpus(settings.corpus_dir, settings.title)
    handlers = Handlers(Backend(chatbot_factory or _default_factory(settings)), settings)

    def api_ask(question: str, history: list[str] | None = None) -> dict:
        return handlers.api_ask(question, history)

    def api_search(query: str, k: int = 5) -> dict:
        return handlers.api_search(query, k)

    def status() -> tuple[str, gr.Timer]:
        return handlers.backend.status(), gr.Timer(active=not handlers.backend.ready)

    with gr.Blocks(title=ui.title, analytics_enabled=False) as app:
        gr.Markdown(f"## {escape_text(ui.title)}\n{escape_text(ui.intro)}")
        status_line = gr.Markdown(handlers.backend.status(), elem_id="status")
        with gr.Tab("Chat", elem_id="chat-tab"):
            chat = gr.Chatbot(label="Chat", height=600, latex_delimiters=[], elem_id="chat",
                              feedback_options=None, buttons=["copy"])
            conversation = gr.State(None)  # a Conversation, created on the first question
            with gr.Row():
                question = gr.Textbox(placeholder="Ask a question…", show_label=False, scale=8, elem_id="question")
                send = gr.Button("Ask", variant="primary", scale=1, min_width=80)
                clear = gr.Button("Clear", scale=1, min_width=80, elem_id="clear")
            if ui.examples:
                gr.Examples(list(ui.examples), inputs=question, label="Examples")
        with gr.Tab("Documents", elem_id="documents-tab") as documents:
            docs, docs_table, docs_choice = documents_tab(handlers.backend, settings)
        documents.select(docs.listing, outputs=[docs_table, docs_choice], queue=False, api_visibility="private")

        timer = gr.Timer(1.0)
        timer.tick(status, outputs=[status_line, timer], queue=False, show_progress="hidden",
                   api_visibility="private")
        for trigger in (question.submit, send.click):
            trigger(handlers.respond, [question, chat, conversation], [chat, question, conversation],
                    api_visibility="private")
        clear.click(handlers.clear, outputs=[chat, conversation], queue=False, api_visibility="private")
        chat.clear(handlers.clear, outputs=[chat, conversation], queue=False, api_visibility="private")
        gr.api(api_ask, api_name="ask")
        gr.api(api_search, api_name="search")
    app.queue(default_concurrency_limit=settings.concurrency, max_size=settings.web_queue_size)
    return app


def serve(settings: Settings, host: str = "127.0.0.1", port: int = 7860) -> None:
    """Build the app for ``settings`` and serve it until interrupted."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    build_app(settings=settings).launch(server_name=host, server_port=port, footer_links=["api"],
                                        max_file_size=settings.max_file_bytes)
