"""Real browser, Documents tab: upload a PDF into a running web chat (``app.py --allow-uploads``) and ask
about its second page; the answer cites that page, and the earlier documents answer as before."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from sample_documents import PDF_ANSWER, PDF_QUESTION, make_pdf
from test_browser import ANSWER_S, CHROMIUM, CHROMIUM_ARGS, READY_S, STARTUP_S, _ask, _skip_reason

from chatbot.loadtest import start_process

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(_skip_reason() is not None, reason=_skip_reason() or "")


@pytest.fixture(scope="module")
def page(tmp_path_factory, free_port_factory):
    """A headless Chromium page on ``app.py --allow-uploads`` over a copy of the demo corpus, once ready."""
    from playwright.sync_api import sync_playwright

    tmp = tmp_path_factory.mktemp("web-documents")
    corpus = Path(shutil.copytree(ROOT / "corpus", tmp / "corpus"))
    port = free_port_factory()
    env = os.environ | {"PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
                        "GRADIO_ANALYTICS_ENABLED": "False", "NO_PROXY": "127.0.0.1,localhost"}
    url = f"http://127.0.0.1:{port}/"
    try:
        proc = start_process([sys.executable, "app.py", "--port", str(port), "--index", str(tmp / "index"),
                              "--corpus", str(corpus), "--allow-uploads"], url, tmp / "server.log", cwd=ROOT, env=env,
                             startup_s=STARTUP_S)
    except RuntimeError as exc:
        pytest.fail(str(exc))
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1280, "height": 1100})
            page.goto(url)
            page.locator("#status").get_by_text("Ready").wait_for(timeout=READY_S * 1000)
            page.upload_dir = tmp  # where the test writes the files it uploads
            yield page
            page.screenshot(path=str(tmp / "web-documents.png"), full_page=True)
            browser.close()
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


def test_uploaded_pdf_is_answered_with_its_page(page):
    before = _ask(page, "Which platform is Grok integrated into?")

    pdf = page.upload_dir / "Harbour report.pdf"
    pdf.write_bytes(make_pdf())
    page.get_by_role("tab", name="Documents").click()
    page.locator("#documents").get_by_text("000_1a2eb30073d68791.txt").wait_for(timeout=60_000)
    page.locator("#upload input[type=file]").set_input_files(str(pdf))
    page.locator("#upload").get_by_text("Harbour report.pdf").wait_for(timeout=60_000)  # uploaded to the server
    page.locator("#add-documents").click()
    page.locator("#documents-result").get_by_text("indexed (3 pages").wait_for(timeout=ANSWER_S * 1000)
    page.locator("#documents").get_by_text("Harbour report.pdf").wait_for(timeout=60_000)

    page.get_by_role("tab", name="Chat").click()
    reply = _ask(page, PDF_QUESTION)
    assert PDF_ANSWER in reply.splitlines()[0], reply
    assert "Harbour report.pdf, p. 2" in reply
    assert _ask(page, "Which platform is Grok integrated into?").splitlines()[0] == before.splitlines()[0]
