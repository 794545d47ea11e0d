"""Web chat: escaping of everything shown, answer formatting, and the app's handlers (with a fake chatbot)."""

from __future__ import annotations

import re

import gradio as gr
import pytest

from chatbot.config import Settings
from chatbot.errors import ModelLoadError
from chatbot.types import Answer, Candidate, Citation, Explanation, Passage, RetrievedPassage
from chatbot.serve.web import (
    INTERNAL_ERROR,
    NOT_FOUND,
    Backend,
    Handlers,
    build_app,
    check_question,
    escape_text,
    format_answer,
    format_explanation,
    highlight,
)

EVIL_HTML = '<img src=x onerror=alert(1)><script>alert("x")</script>'
EVIL_MD = "[click](http://evil) ![pic](http://evil/p.png) **bold** _it_ `code` # head"
ALLOWED_TAGS = {"div", "strong", "small", "blockquote", "code", "mark", "br", "details", "summary", "ul", "ol", "li", "p"}


def _citation(text="Grok is integrated into the X platform.", answer="X platform", **kw) -> Citation:
    start = 1000
    a = text.index(answer) if answer else None
    fields = dict(source="000_1a2eb30073d68791.txt", title="Musk’s xAI Joins Microsoft", start=start,
                  end=start + len(text), text=text,
                  answer_start=start + a if answer else None, answer_end=start + a + len(answer) if answer else None)
    return Citation(**(fields | kw))


def _candidate(text: str, confidence: float, source: str = "000_1a2eb30073d68791.txt") -> Candidate:
    passage = RetrievedPassage(text=f"{text} is here.", source=source, title="T", start=0, end=len(text) + 9)
    return Candidate(text=text, start=0, end=len(text), passage=passage, reader_probability=0.5,
                     features={"closeness": 0.81}, confidence=confidence)


def _answer(text="X platform", citations=None, **kw) -> Answer:
    fields = dict(question="Which platform is Grok integrated into?", searched_for="Which platform is Grok integrated into?",
                  text=text, score=0.87, citations=citations if citations is not None else [_citation()],
                  alternatives=[_candidate("Twitter", 0.05)])
    return Answer(**(fields | kw))


def _tags(html: str) -> set[str]:
    return {t.lower() for t in re.findall(r"</?\s*([a-zA-Z][\w-]*)", html)}


# ---------------------------------------------------------------- escaping and formatting


@pytest.mark.parametrize("text", [EVIL_HTML, EVIL_MD, "a & b < c > d \"q\" 'q'", "line 1\n\nline 2\n# not a heading"])
def test_escape_text_leaves_no_markup(text):
    out = escape_text(text)
    assert _tags(out) <= {"br"}
    for bad in ("<img", "<script", "[click]", "](", "**", "`", "\n"):
        assert bad not in out


def test_escape_text_keeps_the_text_readable_in_html():
    import html

    assert html.unescape(escape_text(EVIL_HTML)) == EVIL_HTML
    assert html.unescape(escape_text(EVIL_MD)) == EVIL_MD
    assert escape_text("Сколько денег уже собрал стартап Маска") == "Сколько денег уже собрал стартап Маска"


def test_highlight_marks_the_answer_slice_only():
    c = _citation(text="<b>Grok</b> is integrated into the X platform.", answer="X platform")
    out = highlight(c)
    assert out.count("<mark>") == 1
    assert re.search(r"<mark>X platform</mark>", out)
    assert "&lt;b&gt;Grok&lt;/b&gt;" in out


@pytest.mark.parametrize("bounds", [(None, None), (999, 1005), (1010, 1005), (1000, 99999)])
def test_highlight_without_consistent_offsets_shows_plain_text(bounds):
    c = _citation(answer_start=bounds[0], answer_end=bounds[1])
    assert "<mark>" not in highlight(c)
    assert "X platform" in highlight(c)


def test_format_answer_shows_answer_confidence_query_article_and_alternatives():
    out = format_answer(_answer(searched_for="Grok platform (xAI)").to_dict())
    assert "<strong>X platform</strong>" in out
    assert "87%" in out
    assert "searched for" in out and "Grok platform &#40;xAI&#41;" in out
    assert "<mark>X platform</mark>" in out
    assert "Musk’s xAI Joins Microsoft" in out and "000&#95;1a2eb30073d68791&#46;txt" in out
    assert re.search(r"<details><summary>Other candidate answers \(1\)</summary><ul><li>Twitter", out)


def test_the_explanation_says_which_passages_were_not_read():
    read, unread = _candidate("Twitter", 0.4), _candidate("Grok", 0.1, source="001_07add878744182aa.txt")
    answer = _answer()
    answer.explanation = Explanation(searched_for="Grok", language="en", passages=[read.passage, unread.passage],
                                     candidates=[read], threshold=0.3, decision="answered")
    assert [p["read"] for p in answer.to_dict()["explanation"]["passages"]] == [True, False]
    items = re.findall(r"<li>.*?</li>", format_explanation(answer.to_dict()["explanation"]))
    assert "not read" not in items[0] and "not read: no span in it could beat the answer" in items[1]


def test_format_answer_escapes_every_document_and_user_string():
    evil = EVIL_HTML + EVIL_MD
    citation = Citation(source=evil, title=evil, start=0, end=len(evil) + 2, text=evil + " X",
                        answer_start=len(evil) + 1, answer_end=len(evil) + 2)
    answer = _answer(text=evil, question=evil, searched_for=evil, citations=[citation, citation],
                     alternatives=[_candidate(evil, 0.1, source=evil)])
    answer.explanation = Explanation(searched_for=evil, language="en", passages=[answer.alternatives[0].passage],
                                     candidates=answer.alternatives, threshold=0.3, decision=evil)
    out = format_answer(answer.to_dict())
    assert "<summary>Why this answer</summary>" in out
    assert _tags(out) <= ALLOWED_TAGS
    for bad in ("<img", "<script", "onerror=alert", "[click]", "](http", "**bold**", "`code`", "_it_"):
        assert bad not in out


def test_format_answer_renders_as_inert_markdown():
    """What the chat's markdown renderer makes of it: no link, image, emphasis or script."""
    markdown_it = pytest.importorskip("markdown_it")
    evil = EVIL_HTML + "\n\n" + EVIL_MD
    citation = _citation(text=evil + " X platform", answer="X platform", title=evil)
    rendered = markdown_it.MarkdownIt("commonmark").render(format_answer(_answer(text=evil, citations=[citation]).to_dict()))
    assert _tags(rendered) <= ALLOWED_TAGS | {"p"}
    assert "<mark>X platform</mark>" in rendered


def test_format_answer_not_found_shows_message_and_closest_passages_collapsed():
    out = format_answer(_answer(text=None, score=0.1, alternatives=[], citations=[_citation(answer=None)]).to_dict())
    assert escape_text(NOT_FOUND) in out
    assert "Answer:" not in out and "<mark>" not in out
    assert "<summary>Closest passages (1)</summary>" in out


@pytest.mark.parametrize("question, expected", [
    ("", "Please type a question"), ("   \n ", "Please type a question"), (None, "Please type a question"),
    ("?!...", "punctuation"), ("x" * 1001, "too long"), ("Who is Musk?", None), ("Кто такой Маск?", None),
])
def test_check_question(question, expected):
    problem = check_question(question, 1000)
    assert problem is None if expected is None else expected in problem


# ---------------------------------------------------------------- handlers (fake chatbot)


class FakeBot:
    def __init__(self, fail: Exception | None = None):
        self.fail = fail
        self.histories = []

    def warm_up(self):
        pass

    def ask(self, question, history=None, k=5, answers=None, explain=False):
        if self.fail:
            raise self.fail
        self.histories.append(list(history or []))
        if "France" in question:
            return _answer(text=None, question=question, searched_for=question, alternatives=[])
        return _answer(question=question, searched_for=question)

    def search(self, query, k=5):
        return [Passage(text="Grok is integrated into the X platform.", source="000_a.txt", title="T",
                        start=0, end=39, score=0.5)][:k]


def _handlers(bot=None, factory=None, tmp_path=None) -> Handlers:
    backend = Backend(factory or (lambda: bot or FakeBot()))
    settings = Settings() if tmp_path is None else Settings(feedback_file=tmp_path / "feedback.jsonl")
    return Handlers(backend, settings)


def _last_reply(handlers, message, turns=None):
    *_, (messages, box, turns, hint) = handlers.respond(message, turns or [])
    assert box == "" and hint == ""
    assert messages[-1]["role"] == "assistant"
    return messages, turns


def test_respond_answers_and_keeps_the_turns_for_follow_ups():
    bot = FakeBot()
    handlers = _handlers(bot)
    messages, turns = _last_reply(handlers, "Which platform is Grok integrated into?")
    assert "<mark>X platform</mark>" in messages[-1]["content"]
    assert turns[0]["question"] == "Which platform is Grok integrated into?"
    assert turns[0]["answer"]["answer"] == "X platform" and turns[0]["answer"]["alternatives"][0]["text"] == "Twitter"
    messages, turns = _last_reply(handlers, "Who owns it?", turns)
    assert len(messages) == 4 and len(turns) == 2
    assert bot.histories == [[], ["Which platform is Grok integrated into?"]]


def test_restore_draws_the_same_chat_from_the_kept_turns():
    """What a reload shows: the turns kept in the browser, drawn as they were (JSON round trip included)."""
    import json

    handlers = _handlers()
    messages, turns = _last_reply(handlers, "Which platform is Grok integrated into?")
    messages, turns = _last_reply(handlers, "What is the capital of France?", turns)
    assert Handlers.restore(json.loads(json.dumps(turns))) == messages
    assert Handlers.restore(None) == []


def test_respond_escapes_the_echoed_question():
    messages, _ = _last_reply(_handlers(), EVIL_HTML + " who?")
    assert "<img" not in messages[0]["content"] and "&lt;img" in messages[0]["content"]


@pytest.mark.parametrize("message", ["", "   ", None])
def test_empty_submit_changes_nothing(message):
    bot = FakeBot()
    (update,) = list(_handlers(bot).respond(message, []))
    chat, box, turns, hint = update
    assert all(isinstance(u, dict) and u.get("__type__") == "update" and len(u) == 1 for u in (chat, box, turns))
    assert hint == "" and bot.histories == []


@pytest.mark.parametrize("message, expected", [("???", "punctuation"), ("why " * 400, "too long")])
def test_question_that_cannot_be_asked_stays_in_the_box_with_the_reason(message, expected):
    bot = FakeBot()
    (update,) = list(_handlers(bot).respond(message, []))
    chat, box, turns, hint = update
    assert box == gr.skip() and chat == gr.skip() and turns == gr.skip()
    assert expected in hint and bot.histories == []


def test_respond_not_found():
    messages, _ = _last_reply(_handlers(), "What is the capital of France?")
    assert "find the answer" in messages[-1]["content"]


def test_respond_shows_a_clarification_instead_of_an_answer():
    class AsksBack(FakeBot):
        def ask(self, question, history=None, k=5, answers=None, explain=False):
            return _answer(text=None, question=question, citations=[], alternatives=[],
                           clarification="What does “it” refer to? No earlier question says.")

    messages, turns = _last_reply(_handlers(AsksBack()), "How many GPUs does it house?")
    clarification = escape_text("What does “it” refer to? No earlier question says.")
    assert messages[-1]["content"] == f'<div class="clarification">{clarification}</div>'
    assert "searched for" not in messages[-1]["content"]


def test_respond_never_shows_a_traceback(caplog):
    messages, turns = _last_reply(_handlers(FakeBot(fail=RuntimeError("secret internals"))), "Who is Musk?")
    assert messages[-1]["content"] == escape_text(INTERNAL_ERROR)
    assert "secret" not in messages[-1]["content"] and turns == [{"question": "Who is Musk?", "message": INTERNAL_ERROR}]
    assert "Traceback" in caplog.text  # logged server-side


def test_respond_shows_chatbot_errors_and_failed_start():
    messages, _ = _last_reply(_handlers(FakeBot(fail=ModelLoadError("reader missing"))), "Who is Musk?")
    assert "reader missing" in messages[-1]["content"]

    def broken():
        raise ModelLoadError("no reader in chatbot/models/reader")

    handlers = _handlers(factory=broken)
    messages, _ = _last_reply(handlers, "Who is Musk?")
    assert "could not start" in messages[-1]["content"]
    assert "could not start" in handlers.backend.status()


def test_respond_waits_for_loading_and_says_so():
    import threading

    release = threading.Event()
    handlers = _handlers(factory=lambda: release.wait() and FakeBot())
    replies = handlers.respond("Which platform is Grok integrated into?", [])
    first, _, _, _ = next(replies)
    assert "Indexing" in first[-1]["content"] and not handlers.backend.ready
    release.set()
    last, _, turns, _ = next(replies)
    assert "<mark>X platform</mark>" in last[-1]["content"] and len(last) == 2 and len(turns) == 1
    assert "Ready" in handlers.backend.status()


def test_new_chat_clears_the_kept_turns():
    messages, turns, hint, comment_row = Handlers.clear()
    assert messages == [] and turns == [] and hint == "" and comment_row["visible"] is False


def test_history_kept_in_the_browser_is_capped():
    handlers = _handlers()
    handlers.settings = Settings(web_history_turns=2)
    turns = []
    for q in ("Who is Musk?", "Who is Altman?", "Who is Nadella?"):
        _, turns = _last_reply(handlers, q, turns)
    assert [t["question"] for t in turns] == ["Who is Altman?", "Who is Nadella?"]


def test_thumbs_and_comment_are_appended_to_the_feedback_file(tmp_path):
    import json

    handlers = _handlers(tmp_path=tmp_path)
    _, turns = _last_reply(handlers, "Which platform is Grok integrated into?")
    _, turns = _last_reply(handlers, "Who owns it?", turns)
    rated, row = handlers.feedback(turns, gr.LikeData(None, {"index": 3, "value": "", "liked": False}))
    assert row["visible"] is True
    assert handlers.comment("  wrong   company ", rated) == (None, gr.update(visible=False), "")
    handlers.feedback(turns, gr.LikeData(None, {"index": 1, "value": "", "liked": True}))
    lines = [json.loads(line) for line in (tmp_path / "feedback.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [(r["rating"], r["question"], r["comment"]) for r in lines] == [
        ("down", "Who owns it?", ""), ("down", "Who owns it?", "wrong company"),
        ("up", "Which platform is Grok integrated into?", "")]
    down = lines[0]
    assert down["history"] == ["Which platform is Grok integrated into?"] and down["answer"] == "X platform"
    assert down["score"] == 0.87 and down["citations"][0]["source"] == "000_1a2eb30073d68791.txt"


def test_export_writes_markdown_and_json_with_citations():
    import json

    _, turns = _last_reply(_handlers(), "Which platform is Grok integrated into?")
    _, turns = _last_reply(_handlers(), "What is the capital of France?", turns)
    markdown_file, json_file = Handlers.export(turns)
    markdown = open(markdown_file, encoding="utf-8").read()
    assert "## Which platform is Grok integrated into?" in markdown
    assert "**Answer:** X platform (confidence 87%)" in markdown
    assert "Musk’s xAI Joins Microsoft — `000_1a2eb30073d68791.txt`, characters 1000–1039" in markdown
    assert "> Grok is integrated into the X platform." in markdown
    assert "**Answer:** " + NOT_FOUND in markdown
    data = json.loads(open(json_file, encoding="utf-8").read())
    assert data == turns and data[0]["answer"]["citations"][0]["text"] == "Grok is integrated into the X platform."


def test_api_handlers():
    handlers = _handlers()
    result = handlers.api_ask("Which platform is Grok integrated into?", ["Who is Musk?"])
    assert result["answer"] == "X platform" and result["citations"][0]["source"] == "000_1a2eb30073d68791.txt"
    assert set(result) == set(_answer().to_dict())
    found = handlers.api_search("Grok", 3)
    assert found["query"] == "Grok" and found["passages"][0]["source"] == "000_a.txt"
    with pytest.raises(gr.Error):
        handlers.api_ask("  ")
    with pytest.raises(gr.Error):
        handlers.api_search("!!!", 3)
    with pytest.raises(gr.Error, match="went wrong"):
        _handlers(FakeBot(fail=RuntimeError("secret internals"))).api_ask("Who is Musk?")


def test_app_serves_named_api_endpoints(free_port):
    from gradio_client import Client

    app = build_app(chatbot_factory=FakeBot, settings=Settings())
    port = free_port
    app.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    try:
        client = Client(f"http://127.0.0.1:{port}/", verbose=False)
        result = client.predict("Which platform is Grok integrated into?", [], api_name="/ask")
        assert result["answer"] == "X platform"
        assert client.predict("Grok", 2, api_name="/search")["passages"][0]["title"] == "T"
    finally:
        app.close()
