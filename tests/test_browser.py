"""Real browser: start the web app (``app.py``) on a free loopback port, chat through
the page in headless Chromium (Debian's /usr/bin/chromium, driven by Playwright)."""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import pytest

from chatbot.config import Settings
from chatbot.tools.loadtest import start_process

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--no-first-run", "--disable-sync", "--no-proxy-server"]
STARTUP_S = 240  # the server answering HTTP
READY_S = 900  # index build + model loading, on a busy machine
ANSWER_S = 300


def _skip_reason() -> str | None:
    if not CHROMIUM.is_file():
        return f"{CHROMIUM} missing (apt-get install chromium)"
    if importlib.util.find_spec("playwright") is None:
        return "playwright missing (pip install playwright; no `playwright install` needed)"
    reader = Path(Settings.from_env().reader)
    if not (reader / "config.json").is_file():
        return f"no trained reader at {reader} (train one, or set CHATBOT_READER)"
    return None


pytestmark = pytest.mark.skipif(_skip_reason() is not None, reason=_skip_reason() or "")


# A document that tries to run script and to smuggle links into the chat (tests/test_browser.py, docs/hardening.md).
HOSTILE_DOC = """Quendale Festival News <img src=x onerror="window.__pwned='title';document.title='pwned'">

The Zorblax festival is held every spring in the town of Quendale. It was founded in 1921 by Mara Ostrava. \
<img src=x onerror="window.__pwned='img'"> <svg onload="window.__pwned='svg'"></svg> \
<iframe src="javascript:window.top.__pwned='iframe'"></iframe>

<script>window.__pwned = 'script'; document.title = 'pwned';</script>

Tickets for the Zorblax festival are sold at the town hall. Read the [official guide](http://evil.example/guide), \
see ![logo](http://evil.example/logo.png), <a href="http://evil.example/a">this page</a> or <http://evil.example/auto> first.
"""


@contextmanager
def running_app(tmp: Path, corpus: Path, port: int, *options: str, env: dict[str, str] | None = None):
    """``python app.py`` over ``corpus`` (with ``options``, and ``env`` added to the environment) and a
    fresh index in ``tmp``; yields its URL."""
    env = os.environ | {"PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
                        "GRADIO_ANALYTICS_ENABLED": "False", "NO_PROXY": "127.0.0.1,localhost"} | (env or {})
    url = f"http://127.0.0.1:{port}/"
    try:
        proc = start_process([sys.executable, "app.py", "--port", str(port), "--index", str(tmp / "index"),
                              "--corpus", str(corpus), *options], url, tmp / "server.log", cwd=ROOT, env=env,
                             startup_s=STARTUP_S)
    except RuntimeError as exc:
        pytest.fail(str(exc))
    try:
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="module")
def feedback_file(tmp_path_factory) -> Path:
    """Where the server appends ratings (CHATBOT_FEEDBACK)."""
    return tmp_path_factory.mktemp("feedback") / "feedback.jsonl"


@pytest.fixture(scope="module")
def server(tmp_path_factory, free_port_factory, feedback_file):
    """``python app.py`` over the demo corpus plus :data:`HOSTILE_DOC`, with a fresh index folder; yields its URL."""
    tmp = tmp_path_factory.mktemp("web")
    corpus = Path(shutil.copytree(ROOT / "corpus", tmp / "corpus"))
    (corpus / "zz_hostile.md").write_text(HOSTILE_DOC, encoding="utf-8")
    with running_app(tmp, corpus, free_port_factory(), env={"CHATBOT_FEEDBACK": str(feedback_file)}) as url:
        yield url


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def _open(browser, url: str, width: int = 1280, height: int = 1100):
    """A page in a browser context of its own (its own localStorage), once the index and models are ready."""
    page = browser.new_page(viewport={"width": width, "height": height})
    page.goto(url)
    page.locator("#status").get_by_text("Ready").wait_for(timeout=READY_S * 1000)
    return page


@pytest.fixture(scope="module")
def page(server, browser, tmp_path_factory):
    """A headless Chromium page on the app, once the index and models are ready."""
    page = _open(browser, server)
    yield page
    shot = tmp_path_factory.getbasetemp() / "web-chat.png"
    page.screenshot(path=str(shot), full_page=True)
    print(f"screenshot: {shot}")
    page.close()


def _ask(page, question: str) -> str:
    """Type ``question``, press Enter, and return the text of the bot's final reply."""
    bot = page.locator("#chat [data-testid='bot']")
    before = bot.count()
    page.locator("#question textarea").fill(question)
    page.locator("#question textarea").press("Enter")
    bot.nth(before).wait_for(timeout=ANSWER_S * 1000)
    reply = bot.nth(before)
    page.wait_for_function(  # the pending "Indexing…" line, if any, is replaced by the answer
        "el => !el.innerText.includes('Indexing the corpus')", arg=reply.element_handle(), timeout=ANSWER_S * 1000
    )
    return reply.inner_text()


def test_clear_button_empties_the_chat(page):
    _ask(page, "Who is Elon Musk?")
    page.locator("#clear").click()
    page.locator("#chat [data-testid='bot']").first.wait_for(state="detached", timeout=30_000)


def test_answers_with_the_cited_article(page):
    reply = _ask(page, "Who is the CEO of OpenAI?")
    assert re.match(r"Answer: .*\bSam Altman\b.*\(confidence \d+%\)", reply), reply
    assert "000_1a2eb30073d68791.txt" in reply or "Musk’s xAI Joins Microsoft" in reply
    assert "Altman" in page.locator("#chat [data-testid='bot']").last.locator("mark").first.inner_text()


def test_question_outside_the_corpus_is_not_answered(page):
    reply = _ask(page, "What is the capital of France?")
    assert "couldn't find the answer" in reply


def test_markup_in_a_question_is_shown_as_text(page):
    _ask(page, "Who clicked <img src=x onerror=alert(1)> or [here](http://evil.example)?")
    user = page.locator("#chat [data-testid='user']").last.inner_text()
    assert "<img src=x onerror=alert(1)>" in user and "[here](http://evil.example)" in user
    assert page.locator("#chat img[src='x']").count() == 0
    assert page.locator("#chat a[href*='evil']").count() == 0


@pytest.mark.parametrize("question", ["Who founded the Zorblax festival?", "Where are Zorblax festival tickets sold?"])
def test_hostile_document_is_shown_as_text_and_runs_nothing(page, question):
    """Markup and markdown from a corpus document: visible as text, never executed or turned into links."""
    _ask(page, question)
    reply = page.locator("#chat [data-testid='bot']").last
    shown = reply.text_content()
    assert "Zorblax" in shown and "zz_hostile.md" in shown
    assert "<img src=x onerror=" in shown or "[official guide](http://evil.example/guide)" in shown
    page.wait_for_timeout(1500)  # let any injected onerror/onload handler fire
    assert page.evaluate("window.__pwned") is None and page.title() != "pwned"
    chat = page.locator("#chat")
    for selector in ("img[src='x']", "svg[onload]", "iframe", "script", "a[href*='evil']"):
        assert chat.locator(selector).count() == 0, selector
    assert reply.locator("a").count() == 0  # the corpus is plain text: no link of any kind



def _contrast(foreground: str, background: str) -> float:
    """WCAG contrast ratio of two CSS ``rgb()``/``rgba()`` colours (opaque)."""
    def luminance(css: str) -> float:
        r, g, b = (int(v) / 255 for v in re.findall(r"[\d.]+", css)[:3])
        lin = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in (r, g, b)]
        return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]

    light, dark = sorted((luminance(foreground), luminance(background)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


def test_empty_submit_adds_nothing(page):
    bubbles = page.locator("#chat [data-testid='user'], #chat [data-testid='bot']")
    before = bubbles.count()
    box = page.locator("#question textarea")
    box.fill("   ")
    box.press("Enter")
    page.wait_for_timeout(1500)
    assert bubbles.count() == before


def test_too_long_question_stays_in_the_box_with_a_counter(page):
    box = page.locator("#question textarea")
    box.fill("")
    box.focus()
    page.keyboard.insert_text("Why " * 400)  # as a paste: the box takes at most max_question_chars
    value = box.input_value()
    assert len(value) == Settings().max_question_chars
    # The counter follows the box's change event, which runs after the paste: wait for it (up to 30 s).
    from playwright.sync_api import expect

    expect(page.locator("#input-hint")).to_contain_text(f"{len(value)} / {len(value)} characters", timeout=30_000)
    box.fill("")


def test_example_is_asked_when_clicked(page):
    bot = page.locator("#chat [data-testid='bot']")
    before = bot.count()
    # The examples the shipped reader misses are strict xfails in test_examples.py; this one it gets right.
    page.locator("#examples").get_by_text("What is the capital of France?", exact=True).click()
    bot.nth(before).wait_for(timeout=ANSWER_S * 1000)
    assert "find the answer" in bot.nth(before).inner_text()


def test_dark_mode_highlight_is_readable(server, browser):
    """?__theme=dark: the answer's highlight has a contrast of at least 4.5:1, from the page's computed colours."""
    page = _open(browser, server + "?__theme=dark")
    try:
        _ask(page, "Who is the CEO of OpenAI?")
        assert page.evaluate("document.body.classList.contains('dark')")
        mark = page.locator("#chat [data-testid='bot']").last.locator("mark").first
        colour, background = mark.evaluate("m => [getComputedStyle(m).color, getComputedStyle(m).backgroundColor]")
        assert _contrast(colour, background) >= 4.5, (colour, background)
    finally:
        page.close()


def test_answer_line_is_visible_after_an_answer_at_phone_width(server, browser):
    page = _open(browser, server, width=375, height=667)
    try:
        _ask(page, "Who is the CEO of OpenAI?")
        answer = page.locator("#chat [data-testid='bot']").last.locator(".answer")
        page.wait_for_timeout(500)  # the scroll after the answer
        top, bottom, height, seen = answer.evaluate("""a => { const r = a.getBoundingClientRect();
            const hit = document.elementFromPoint(r.left + 5, (r.top + r.bottom) / 2);
            return [r.top, r.bottom, innerHeight, a.contains(hit)]; }""")
        assert top >= -1 and bottom <= height and seen, (top, bottom, height)
    finally:
        page.close()


def test_reload_keeps_the_chat_and_new_chat_clears_it(server, browser):
    page = _open(browser, server)
    try:
        _ask(page, "Who is the CEO of OpenAI?")
        page.reload()
        page.locator("#status").get_by_text("Ready").wait_for(timeout=READY_S * 1000)
        user = page.locator("#chat [data-testid='user']")
        user.first.wait_for(timeout=30_000)
        assert user.last.inner_text() == "Who is the CEO of OpenAI?"
        assert "<mark>" in page.locator("#chat [data-testid='bot']").last.inner_html()
        page.locator("#clear").click()
        user.first.wait_for(state="detached", timeout=30_000)
        page.reload()
        page.locator("#status").get_by_text("Ready").wait_for(timeout=READY_S * 1000)
        page.wait_for_timeout(1500)
        assert user.count() == 0
    finally:
        page.close()


def test_thumbs_down_writes_a_feedback_row(page, feedback_file):
    import json

    _ask(page, "Who is the technical advisor of the AI Infrastructure Partnership?")
    page.locator("#chat").get_by_label("Dislike").last.click()
    page.locator("#comment textarea").wait_for(timeout=30_000)
    page.locator("#comment textarea").fill("Not what I meant")
    page.locator("#send-comment").click()
    page.locator("#comment textarea").wait_for(state="hidden", timeout=30_000)
    rows = [json.loads(line) for line in feedback_file.read_text(encoding="utf-8").splitlines()]
    assert [(r["rating"], r["comment"]) for r in rows[-2:]] == [("down", ""), ("down", "Not what I meant")]
    assert rows[-1]["question"] == "Who is the technical advisor of the AI Infrastructure Partnership?"
    assert rows[-1]["citations"] and rows[-1]["score"] is not None
