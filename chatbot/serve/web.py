"""Web chat over the corpus (Gradio): ``chatbot serve`` or ``python app.py``.

Everything taken from the corpus, the reader or the user is shown as text:
:func:`escape_text` HTML-escapes it and neutralises markdown syntax before it
goes into a chat message, so a document can never inject markup or links.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # offline: no telemetry calls

import gradio as gr  # noqa: E402

from starlette.middleware import Middleware  # noqa: E402

from ..config import Settings, UiSettings  # noqa: E402
from ..qa.conversation import Conversation  # noqa: E402
from ..errors import ChatbotError  # noqa: E402
from .feedback import feedback_row, record  # noqa: E402
from .guard import RequestGuard  # noqa: E402
from ..qa.questions import check_question, clean_question, valid_text  # noqa: E402
from ..types import Citation  # noqa: E402
from .web_documents import documents_tab  # noqa: E402
from .workers import AnswerWorkers  # noqa: E402

log = logging.getLogger(__name__)

NOT_FOUND = "I couldn't find the answer to that in the documents."
LOADING = "Indexing the corpus and loading the models… You can type a question now: it is answered as soon as this is done."
READY = "Ready: ask a question about the documents."
FAILED = "The chatbot could not start: "
INTERNAL_ERROR = "Sorry, something went wrong while answering. Please try again."
# Uploads (multipart) may exceed the corpus file limit by this much: the form's own bytes.
UPLOAD_OVERHEAD_BYTES = 64 * 1024
# Gradio's temporary files (uploads) older than this are deleted, checked as often.
TEMP_FILE_MAX_AGE_S = 3600

# The answer's highlight: dark text on yellow in both themes (contrast about 15:1; the theme's own <mark>
# keeps the light text of dark mode on a bright background). Citations read as quotes.
CSS = """
#chat mark { background-color: #fde047; color: #111827; padding: 0 2px; border-radius: 2px; }
#chat [data-testid="bot"] { scroll-margin-top: 8px; }
#chat blockquote.citation { border-left: 3px solid #a3a3a3; padding-left: 0.6em; margin: 0.5em 0; }
"""
# Characters typed, under the box, once the question is long (the box stops at the limit).
_COUNTER_JS = "(q) => (q.length >= MAX * 0.8 ? `${q.length} / MAX characters` : '')"
# After an answer, scroll its first line ("Answer: ...") into view; on a phone the chat would otherwise
# show the answer's end, its citations.
_SHOW_ANSWER_JS = """() => { setTimeout(() => {
  const bots = document.querySelectorAll('#chat [data-testid="bot"]');
  if (bots.length) bots[bots.length - 1].scrollIntoView({block: 'start', behavior: 'instant'});
}, 50); }"""

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


def format_answer(answer: dict) -> str:
    """A chat message for ``answer`` (``Answer.to_dict()``, as a turn stores it): short answer and
    confidence, the query used, the cited passage(s), other candidate answers and, when the answer
    carries its explanation, why, collapsed. Each block is one line."""
    if answer.get("clarification"):
        return f'<div class="clarification">{escape_text(answer["clarification"])}</div>'
    blocks = []
    if answer["answer"] is not None:
        blocks.append(
            f'<div class="answer">Answer: <strong>{escape_text(answer["answer"])}</strong>'
            f" <small>(confidence {answer['score']:.0%})</small></div>"
        )
    else:
        blocks.append(f'<div class="not-found">{escape_text(NOT_FOUND)}</div>')
    blocks.append(f'<div class="searched-for"><small>searched for: “{escape_text(answer["searched_for"])}”</small></div>')
    citations = [Citation(**c) for c in answer["citations"]]
    if answer["answer"] is not None and citations:
        blocks.append(format_citation(citations[0]))
        citations = citations[1:]
    if citations:
        label = "Other passages" if answer["answer"] is not None else "Closest passages"
        blocks.append(_details(f"{label} ({len(citations)})", "".join(map(format_citation, citations))))
    alternatives = answer.get("alternatives") or []
    if alternatives:
        items = "".join(f"<li>{escape_text(a['text'])} <small>({a['score']:.0%})</small></li>" for a in alternatives)
        blocks.append(_details(f"Other candidate answers ({len(alternatives)})", f"<ul>{items}</ul>"))
    if answer.get("explanation"):
        blocks.append(_details("Why this answer", format_explanation(answer["explanation"])))
    return "\n\n".join(blocks)


def format_explanation(explanation: dict) -> str:
    """The decision, the passages with their ranks and scores, the candidates with their confidence and
    features (``Explanation.to_dict()``), as one line of HTML."""
    passages = "".join(
        f"<li>{p['rank'] + 1}. <code>{escape_text(p['source'])}</code> [{escape_text(p['lang'])}]: fused "
        f"{p['fused_score']:.4f}, dense {p['dense_score']:.3f} (#{p['dense_rank'] + 1}), BM25 {p['bm25_score']:.2f} "
        f"(#{p['bm25_rank'] + 1}){'' if p['read'] else '; not read: no span in it could beat the answer'}</li>"
        for p in explanation["passages"])
    candidates = "".join(
        f"<li>{c['confidence']:.0%} <strong>{escape_text(c['text'])}</strong> (passage {c['passage_rank'] + 1}; "
        + ", ".join(f"{escape_text(k)} {v:.2f}" for k, v in c["features"].items()) + ")</li>"
        for c in explanation["candidates"])
    return (f"<p>{escape_text(explanation['decision'])}</p>"
            f"<p><small>searched for: “{escape_text(explanation['searched_for'])}”; threshold "
            f"{explanation['threshold']:.0%}</small></p><p>Passages:</p><ol>{passages}</ol>"
            f"<p>Candidates (confidence: the probability that the answer is right):</p><ul>{candidates}</ul>")


def conversation_markdown(turns: list[dict]) -> str:
    """The chat as a Markdown document: each question, its answer (or message) and the cited passages,
    quoted, with the answer in bold. Quoted text is the documents' own, not escaped."""
    lines = ["# Conversation", ""]
    for turn in turns:
        lines += [f"## {turn['question']}", ""]
        answer = turn.get("answer")
        if not answer:
            lines += [turn.get("message", ""), ""]
            continue
        if answer.get("clarification"):
            lines += [answer["clarification"], ""]
            continue
        lines.append(f"**Answer:** {answer['answer']} (confidence {answer['score']:.0%})" if answer["answer"]
                     else f"**Answer:** {NOT_FOUND}")
        if answer["searched_for"] != answer["question"]:
            lines.append(f"  \n*Searched for:* {answer['searched_for']}")
        lines.append("")
        for n, c in enumerate(answer["citations"], 1):
            lines += [f"[{n}] {c['title']} — `{c['source']}`, characters {c['start']}–{c['end']}", "",
                      *(f"> {line}" for line in c["text"].splitlines() or [""]), ""]
    return "\n".join(lines)


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


def turn_messages(turn: dict) -> list[dict]:
    """The two chat bubbles of a stored turn: the question, and the answer (or the message shown instead)."""
    shown = turn["question"] if len(turn["question"]) <= 300 else turn["question"][:300] + "…"
    reply = format_answer(turn["answer"]) if turn.get("answer") else escape_text(turn["message"])
    return [{"role": "user", "content": escape_text(shown)}, {"role": "assistant", "content": reply}]


def conversation_of(turns: list[dict]) -> Conversation:
    """The follow-up context of the stored turns: their questions and answers (failed turns left out)."""
    answered = [t for t in turns if t.get("answer")]
    conversation = Conversation()
    for t in answered[-conversation.max_turns:]:
        conversation.add(t["question"], t["answer"]["answer"])
    return conversation


class Handlers:
    """The app's event handlers, separate from the layout so that they can be tested.

    A chat is a list of *turns* kept in the browser (``gr.BrowserState``): ``{"question", "answer"}``
    with the answer as ``Answer.to_dict()`` (with its explanation), or ``{"question", "message"}``
    when an error was shown instead. The chat's bubbles are drawn from them, two per turn.
    """

    def __init__(self, backend: Backend, settings: Settings):
        self.backend = backend
        self.settings = settings
        self.workers = AnswerWorkers(settings.concurrency)  # the models run on these threads only

    def respond(self, message: str, turns: list | None) -> Iterator[tuple]:
        """Chat turn: echo the question, then replace a pending line with the answer.

        Yields ``(chat bubbles, question box, turns, input hint)``. An empty question changes nothing;
        one that cannot be asked (too long, no words) stays in the box, with the reason under it.
        """
        turns = list(turns or [])
        message = valid_text(str(message or ""))  # lone surrogates cannot be stored in the browser or shown
        problem = check_question(message, self.settings.max_question_chars)
        if problem:
            yield gr.skip(), gr.skip(), gr.skip(), (escape_text(problem) if message.strip() else "")
            return
        messages = [m for t in turns for m in turn_messages(t)]
        if not self.backend.ready:
            pending = turn_messages({"question": message, "message": LOADING})
            yield [*messages, *pending], "", gr.skip(), ""
        turn = self._turn(message, conversation_of(turns))
        turns = [*turns, turn][-self.settings.web_history_turns:]
        yield [*messages, *turn_messages(turn)], "", turns, ""

    def _turn(self, question: str, conversation: Conversation) -> dict:
        """The stored turn for ``question``: its answer, or the message for the user instead of an exception."""
        try:
            answer = self.workers.run(partial(conversation.ask, self.backend.bot(), question, k=self.settings.top_k,
                                              explain=True))
        except (ValueError, ChatbotError) as exc:  # messages meant for the user
            log.warning("question refused: %s", exc)
            return {"question": question, "message": str(exc)}
        except Exception:
            log.exception("answering failed")
            return {"question": question, "message": INTERNAL_ERROR}
        return {"question": question, "answer": answer.to_dict()}

    @staticmethod
    def restore(turns: list | None) -> list[dict]:
        """The chat bubbles of the turns kept in the browser (on page load)."""
        return [m for t in turns or [] for m in turn_messages(t)]

    @staticmethod
    def clear() -> tuple[list, list, str, Any]:
        """A new chat: no bubbles, no turns kept, no hint, no pending comment."""
        return [], [], "", gr.update(visible=False)

    def feedback(self, turns: list | None, like: gr.LikeData) -> tuple[dict | None, Any]:
        """A thumbs up/down on an answer: its line is appended to the feedback file; the comment box opens."""
        turns = list(turns or [])
        index = like.index[0] if isinstance(like.index, (list, tuple)) else like.index
        if not isinstance(index, int) or not 0 <= index // 2 < len(turns):
            return None, gr.update(visible=False)
        n = index // 2
        rating = "up" if like.liked is True else "down" if like.liked is False else None
        if rating is None:  # the thumb was taken back
            return None, gr.update(visible=False)
        row = feedback_row(turns[n], [t["question"] for t in turns[:n]], rating)
        record(self.settings.feedback_file, row)
        return row, gr.update(visible=True)

    def comment(self, text: str, rated: dict | None) -> tuple[None, Any, str]:
        """The optional comment on the last rating: the rating's line again, with the comment."""
        if rated and str(text or "").strip():
            record(self.settings.feedback_file, rated | {"comment": " ".join(str(text).split())[:2000]})
        return None, gr.update(visible=False), ""

    @staticmethod
    def export(turns: list | None) -> list[str]:
        """The conversation as Markdown and JSON files (with citations), for download."""
        folder = Path(tempfile.mkdtemp(prefix="chat-export-"))
        markdown, data = folder / "conversation.md", folder / "conversation.json"
        markdown.write_text(conversation_markdown(turns or []), encoding="utf-8")
        data.write_text(json.dumps(turns or [], ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
        return [str(markdown), str(data)]

    def api_ask(self, question: str, history: list[str] | None = None) -> dict:
        """``/ask``: the same dict as ``chatbot ask --json``."""
        self._api_check(question)
        self._api_check_history(history)
        return self._api_call(lambda bot: bot.ask(question, history=list(history or []), k=self.settings.top_k).to_dict())

    def api_search(self, query: str, k: int = 5) -> dict:
        """``/search``: the ``k`` passages best matching ``query``."""
        self._api_check(query)
        query = clean_question(query, self.settings.max_question_chars)
        k = int(k) if isinstance(k, float) and k.is_integer() else k  # JSON's 5.0 is 5; NaN is refused by search
        return self._api_call(lambda bot: {"query": query, "passages": [p.to_dict() for p in bot.search(query, k)]})

    def _api_check(self, text: str) -> None:
        problem = check_question(text, self.settings.max_question_chars)
        if problem:
            raise gr.Error(problem)

    def _api_check_history(self, history: Any) -> None:
        """The HTTP API's bounds on ``history``: a list of at most ``max_history_turns`` questions, each
        at most ``max_question_chars`` long."""
        s = self.settings
        if history is None:
            return
        if not isinstance(history, list) or not all(isinstance(h, str) for h in history):
            raise gr.Error("The history must be a list of the earlier questions, oldest first.")
        if len(history) > s.max_history_turns:
            raise gr.Error(f"The history has {len(history)} questions: send at most the last {s.max_history_turns}.")
        if (longest := max((len(h) for h in history), default=0)) > s.max_question_chars:
            raise gr.Error(f"A question in the history is too long ({longest} characters): "
                           f"each must be under {s.max_question_chars}.")

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
        from ..qa.chatbot import Chatbot

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

    with GuardedBlocks(settings, title=ui.title, analytics_enabled=False,
                       delete_cache=(TEMP_FILE_MAX_AGE_S, TEMP_FILE_MAX_AGE_S)) as app:
        gr.HTML(f"<style>{CSS}</style>", padding=False)
        gr.Markdown(f"## {escape_text(ui.title)}\n{escape_text(ui.intro)}")
        status_line = gr.Markdown(handlers.backend.status(), elem_id="status")
        with gr.Tab("Chat", elem_id="chat-tab"):
            chat = gr.Chatbot(label="Chat", height=600, latex_delimiters=[], elem_id="chat", autoscroll=False,
                              feedback_options=("Like", "Dislike"), buttons=["copy"])
            # The chat's turns, kept in this browser across reloads (localStorage).
            turns = gr.BrowserState([], storage_key="chatbot-chat-turns")
            with gr.Row():
                question = gr.Textbox(placeholder="Ask a question…", show_label=False, scale=8, elem_id="question",
                                      autofocus=True, max_length=settings.max_question_chars)
                send = gr.Button("Ask", variant="primary", scale=1, min_width=80)
                clear = gr.Button("New chat", scale=1, min_width=80, elem_id="clear")
            hint = gr.Markdown("", elem_id="input-hint")
            rated = gr.State(None)  # the feedback line a comment would be added to
            with gr.Row(visible=False, elem_id="comment-row") as comment_row:
                comment = gr.Textbox(placeholder="Thanks! Anything to add? (optional)", show_label=False, scale=8,
                                     elem_id="comment", max_length=2000)
                send_comment = gr.Button("Send", scale=1, min_width=80, elem_id="send-comment")
            examples = (gr.Examples(list(ui.examples), inputs=question, label="Examples", elem_id="examples")
                        if ui.examples else None)
            with gr.Row():
                export = gr.Button("Export conversation (Markdown, JSON)", size="sm", elem_id="export")
            files = gr.File(label="Conversation", file_count="multiple", visible=False, elem_id="export-files")
        with gr.Tab("Documents", elem_id="documents-tab") as documents:
            docs, docs_table, docs_choice = documents_tab(handlers.backend, settings)
        documents.select(docs.listing, outputs=[docs_table, docs_choice], queue=False, api_visibility="private")

        timer = gr.Timer(1.0)
        timer.tick(status, outputs=[status_line, timer], queue=False, show_progress="hidden",
                   api_visibility="private")
        app.load(handlers.restore, inputs=turns, outputs=chat, queue=False, api_visibility="private")
        counter = _COUNTER_JS.replace("MAX", str(settings.max_question_chars))
        question.change(None, inputs=question, outputs=hint, js=counter,
                       api_visibility="private")
        asked = dict(inputs=[question, turns], outputs=[chat, question, turns, hint], api_visibility="private")
        clicked_example = [examples.load_input_event.then(handlers.respond, **asked)] if examples else []
        for event in (question.submit(handlers.respond, **asked), send.click(handlers.respond, **asked),
                      *clicked_example):
            event.then(None, js=_SHOW_ANSWER_JS, api_visibility="private")
        for trigger in (clear.click, chat.clear):
            trigger(handlers.clear, outputs=[chat, turns, hint, comment_row], queue=False, api_visibility="private")
        chat.like(handlers.feedback, inputs=turns, outputs=[rated, comment_row], queue=False, api_visibility="private")
        for trigger in (comment.submit, send_comment.click):
            trigger(handlers.comment, [comment, rated], [rated, comment_row, comment], queue=False,
                    api_visibility="private")
        export.click(lambda t: gr.update(value=handlers.export(t), visible=True), inputs=turns, outputs=files,
                     api_visibility="private")
        gr.api(api_ask, api_name="ask")
        gr.api(api_search, api_name="search")
    app.queue(default_concurrency_limit=settings.concurrency, max_size=settings.web_queue_size)
    return app


class GuardedBlocks(gr.Blocks):
    """``gr.Blocks`` whose ``launch`` always adds the :class:`~chatbot.serve.guard.RequestGuard` (Host, Origin,
    body size: ``web_max_body_bytes``, uploads ``max_file_bytes``), Gradio's own ``max_file_size``, and
    a temporary folder of this process's own that the next start removes if this one is killed."""

    def __init__(self, settings: Settings, **kwargs):
        super().__init__(**kwargs)
        self.chatbot_settings = settings

    def launch(self, *args, **kwargs):
        s = self.chatbot_settings
        kwargs.setdefault("max_file_size", s.max_file_bytes)
        app_kwargs = dict(kwargs.pop("app_kwargs", None) or {})
        app_kwargs["middleware"] = [
            *app_kwargs.get("middleware", []),
            Middleware(RequestGuard, allowed_hosts=s.allowed_hosts,
                       body_limit=lambda path: (s.max_file_bytes + UPLOAD_OVERHEAD_BYTES if path.endswith("/upload")
                                                else s.web_max_body_bytes)),
        ]
        if "GRADIO_TEMP_DIR" not in os.environ:
            os.environ["GRADIO_TEMP_DIR"] = str(own_temp_dir())
        return super().launch(*args, app_kwargs=app_kwargs, **kwargs)


TEMP_DIR_PREFIX = "chatbot-web-"


def own_temp_dir(parent: str | None = None) -> str:
    """This process's folder for Gradio's temporary files (``chatbot-web-PID`` in the system's temp
    folder), after removing those of processes that no longer run (a killed server's uploads)."""
    parent = parent or tempfile.gettempdir()
    for folder in os.scandir(parent):
        pid = folder.name.removeprefix(TEMP_DIR_PREFIX)
        if folder.name.startswith(TEMP_DIR_PREFIX) and pid.isdigit() and not _running(int(pid)):
            shutil.rmtree(folder.path, ignore_errors=True)
    own = os.path.join(parent, f"{TEMP_DIR_PREFIX}{os.getpid()}")
    os.makedirs(own, exist_ok=True)
    return own


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def serve(settings: Settings, host: str = "127.0.0.1", port: int = 7860) -> None:
    """Build the app for ``settings`` and serve it until interrupted."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    build_app(settings=settings).launch(server_name=host, server_port=port, footer_links=["api"],
                                        max_file_size=settings.max_file_bytes)
