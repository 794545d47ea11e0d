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
from chatbot.loadtest import start_process

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
def running_app(tmp: Path, corpus: Path, port: int, *options: str):
    """``python app.py`` over ``corpus`` (with ``options``) and a fresh index in ``tmp``; yields its URL."""
    env = os.environ | {"PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
                        "GRADIO_ANALYTICS_ENABLED": "False", "NO_PROXY": "127.0.0.1,localhost"}
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
def server(tmp_path_factory, free_port_factory):
    """``python app.py`` over the demo corpus plus :data:`HOSTILE_DOC`, with a fresh index folder; yields its URL."""
    tmp = tmp_path_factory.mktemp("web")
    corpus = Path(shutil.copytree(ROOT / "corpus", tmp / "corpus"))
    (corpus / "zz_hostile.md").write_text(HOSTILE_DOC, encoding="utf-8")
    with running_app(tmp, corpus, free_port_factory()) as url:
        yield url


@pytest.fixture(scope="module")
def page(server, tmp_path_factory):
    """A headless Chromium page on the app, once the index and models are ready."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 1100})
        page.goto(server)
        page.locator("#status").get_by_text("Ready").wait_for(timeout=READY_S * 1000)
        yield page
        shot = tmp_path_factory.getbasetemp() / "web-chat.png"
        page.screenshot(path=str(shot), full_page=True)
        print(f"screenshot: {shot}")
        browser.close()


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
    reply = _ask(page, "Which platform is Grok integrated into?")
    assert re.match(r"Answer: .*\bX\b.*\(confidence \d+%\)", reply), reply
    assert "000_1a2eb30073d68791.txt" in reply or "Musk’s xAI Joins Microsoft" in reply
    assert "X" in page.locator("#chat [data-testid='bot']").last.locator("mark").first.inner_text()


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

