"""Hardening (issue 8): bad questions through every face, hostile corpus files, index faults, broken
models and the servers' bounds. Each test asserts what the user sees; docs/hardening.md lists them."""

from __future__ import annotations

import errno
import inspect
import io
import json
import logging
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from conftest import patch_embedder

import chatbot.index.store as index_module
from chatbot.serve import http_api, web
from chatbot.serve.cli import build_parser, main
from chatbot.config import Settings
from chatbot.errors import IndexLoadError
from chatbot.serve.http_api import create_app
from chatbot.index.store import load_index
from chatbot.index.sync import ensure_index
from chatbot.qa.questions import check_question
from chatbot.serve.web import NOT_FOUND, Backend, Handlers, build_app, escape_text

ROOT = Path(__file__).resolve().parents[1]

# ---------------------------------------------------------------- questions

BIG = ("Who leads OpenAI? " * 6000)[:100_000]  # 100 kB
QUESTIONS = {  # name: (question, "refused" with a message | "answered" normally)
    "empty": ("", "refused"),
    "whitespace": (" \t\n  ", "refused"),
    "100kB": (BIG, "refused"),
    "control-chars": ("Who is\x00 the CEO\x1b[2J of OpenAI?\x07", "answered"),
    "only-control-chars": ("\x00\x01\x1b\x7f", "refused"),
    "emoji": ("Who is the CEO of OpenAI? 🤖🔥", "answered"),
    "only-emoji": ("🤖🔥👍", "refused"),
    "right-to-left": ("מי המנכ״ל של OpenAI?", "answered"),
    "mixed-scripts": ("Who is مدير OpenAI? Кто CEO?", "answered"),
    "bidi-override": ("\u202eWho is the CEO of OpenAI?\u202c", "answered"),
    "only-punctuation": ("?!... ,;:", "refused"),
}
CASES = [pytest.param(q, outcome, id=name) for name, (q, outcome) in QUESTIONS.items()]
MAX_CHARS = Settings().max_question_chars


def test_every_refused_question_has_a_message():
    for name, (question, outcome) in QUESTIONS.items():
        assert (check_question(question, MAX_CHARS) is None) == (outcome == "answered"), name


@pytest.fixture(scope="module")
def handlers(real_bot):
    return Handlers(Backend(lambda: real_bot), real_bot.settings)


@pytest.mark.parametrize("question, outcome", CASES)
def test_web_chat_bad_questions(handlers, question, outcome):
    *_, (messages, box, turns, hint) = handlers.respond(question, [])
    if outcome == "refused":  # nothing is added to the chat; the question stays in the box with the reason under it
        assert not isinstance(messages, list) and not isinstance(turns, list)
        assert hint == (escape_text(check_question(question, MAX_CHARS)) if question.strip() else "")
    else:
        reply = messages[-1]["content"]
        assert box == "" and hint == "" and messages[-1]["role"] == "assistant" and "Traceback" not in reply
        assert "Answer:" in reply or escape_text(NOT_FOUND) in reply
        assert "searched for" in reply and "<img" not in reply and len(turns) == 1


@pytest.fixture(scope="module")
def gradio_client(real_bot, local_servers):
    from gradio_client import Client

    return Client(local_servers.gradio(build_app(lambda: real_bot, real_bot.settings)), verbose=False)


@pytest.mark.parametrize("question, outcome", CASES)
def test_gradio_api_bad_questions(gradio_client, question, outcome):
    from gradio_client.exceptions import AppError

    if outcome == "refused":
        with pytest.raises(AppError) as err:
            gradio_client.predict(question, [], api_name="/ask")
        assert str(err.value) == check_question(question, MAX_CHARS)
    else:
        result = gradio_client.predict(question, [], api_name="/ask")
        assert result["answer"] is None or isinstance(result["answer"], str)
        assert result["citations"] and result["searched_for"]


@pytest.fixture(scope="module")
def http(real_bot, local_servers):
    with httpx.Client(base_url=local_servers.http(create_app(real_bot)), timeout=120) as client:
        yield client


@pytest.mark.parametrize("path, field", [("/ask", "question"), ("/search", "query")])
@pytest.mark.parametrize("question, outcome", CASES)
def test_http_bad_questions(http, path, field, question, outcome):
    response = http.post(path, json={field: question})
    if outcome == "refused":
        assert response.status_code == (413 if question is BIG else 400)
        detail = response.json()["detail"]
        assert isinstance(detail, str) and detail.endswith(".") and "Traceback" not in detail
    else:
        assert response.status_code == 200
        assert response.json()["passages" if path == "/search" else "citations"]


@pytest.mark.parametrize("command", ["ask", "search"])
@pytest.mark.parametrize("question, outcome", CASES)
def test_cli_bad_questions(argv_tail, capsys, command, question, outcome):
    rc = main([command, question, *argv_tail])
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err and "\x1b" not in out
    if outcome == "refused":
        assert rc == 2 and out == ""
        assert err == f"error: {check_question(question, MAX_CHARS)}\n"
    else:
        assert rc == 0 and "error" not in err  # (transformers may draw a loading bar here)
        assert out.startswith(("Answer:", "Not found in the corpus.") if command == "ask" else "[1] ")


def _error_lines(stderr: str) -> list[str]:
    """The CLI's error lines (transformers may also draw a loading bar on stderr); never a traceback."""
    assert "Traceback" not in stderr
    return [line for line in stderr.splitlines() if line.startswith("error: ")]


def test_cli_process_refuses_punctuation_with_one_line():
    """The real process: exit status 2, one line on stderr, no traceback."""
    done = subprocess.run([sys.executable, "-m", "chatbot", "ask", "?!..."], capture_output=True, text=True,
                          cwd=ROOT, timeout=300, env=os.environ | {"PYTHONPATH": str(ROOT)})
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.splitlines() == ["error: Please ask a question in words: I can't search for punctuation alone."]


def test_cli_chat_reports_bad_lines_and_goes_on(argv_tail, capsys, monkeypatch):
    lines = ["?!", "\x00\x07", "🤖", "x" * 2000, "Who is the CEO of OpenAI?", ""]
    monkeypatch.setattr("sys.stdin", io.StringIO("\n".join(lines) + "\n"))
    assert main(["chat", *argv_tail]) == 0
    out, err = capsys.readouterr()
    assert len(_error_lines(err)) == 4
    assert out.count("Sources:") + out.count("Closest passages:") == 1


# ---------------------------------------------------------------- documents dropped into the corpus

ARTICLE = ("Quendale Weekly\n\nThe Zorblax festival is held every spring in the town of Quendale. "
           "It was founded in 1921 by Mara Ostrava, a local baker.\n")
RUSSIAN = "Новости Кведейла\n\nФестиваль Зорблакс проходит каждую весну. Его основала Мара Острава в 1921 году.\n"
HTML_PAGE = ("<html><head><title>Page</title><script>var tracking = 'pixel';</script>"
             "<style>p {color: red}</style></head>\n<body>\n<p>The harbour of Quendale opens at dawn.</p>\n"
             "<img src=x onerror=alert(1)>\n</body></html>\n")


@pytest.fixture
def session_embedder(monkeypatch, embedder):
    """CLI runs use the session's embedder (loaded once)."""
    patch_embedder(monkeypatch, embedder)


def test_dropped_files_are_indexed_or_skipped_with_named_reasons(tmp_path, session_embedder, caplog, capsys):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "article.txt").write_text(ARTICLE, encoding="utf-8")
    (corpus / "empty.txt").write_bytes(b"")
    (corpus / "binary.txt").write_bytes(bytes(range(256)) * 64)
    (corpus / "russian-cp1251.txt").write_bytes(RUSSIAN.encode("cp1251"))
    with open(corpus / "huge.txt", "w", encoding="utf-8") as fh:  # 50 MB of text
        fh.write(ARTICLE * (50_000_000 // len(ARTICLE.encode())))
    (corpus / "page.html").write_text(HTML_PAGE, encoding="utf-8")
    (corpus / "page.md").write_text(HTML_PAGE, encoding="utf-8")
    (corpus / "photo.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(100))
    (corpus / "outside.txt").symlink_to(tmp_path / "secret.txt")
    (tmp_path / "secret.txt").write_text("Top secret text outside the corpus folder.\n", encoding="utf-8")

    index_dir = tmp_path / "index"
    with caplog.at_level(logging.WARNING):
        assert main(["index", "--corpus", str(corpus), "--index", str(index_dir)]) == 0
    assert "4 files" in capsys.readouterr().out
    warned = dict(re.fullmatch(r"not indexed: (\S+) \((.*)\)", r.getMessage()).groups()
                  for r in caplog.records if r.getMessage().startswith("not indexed: "))
    assert {name: reason.split(" (")[0].split(":")[0] for name, reason in warned.items()} == {
        "empty.txt": "empty", "binary.txt": "binary", "huge.txt": "too large",
        "photo.png": "unsupported file type '.png'",
        "outside.txt": "a link to a file outside the corpus folder"}

    index = load_index(index_dir)
    by_source = {}
    for p in index.passages:
        by_source.setdefault(p.source, []).append(p.text)
    assert sorted(by_source) == ["article.txt", "page.html", "page.md", "russian-cp1251.txt"]
    assert by_source["page.html"] == ["The harbour of Quendale opens at dawn."]  # main text only (trafilatura)
    assert any("Мара Острава" in t for t in by_source["russian-cp1251.txt"])
    page = " ".join(by_source["page.md"])
    assert "harbour of Quendale" in page and "tracking" not in page and "color: red" not in page
    assert not any("secret" in t for texts in by_source.values() for t in texts)


# ---------------------------------------------------------------- index faults


@pytest.fixture
def small_index(tmp_path, session_embedder, embedder):
    """``(settings, manifest)``: a one-article corpus and its freshly built index."""
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "article.txt").write_text(ARTICLE, encoding="utf-8")
    settings = Settings.from_env().with_(corpus_dir=corpus, index_dir=tmp_path / "index")
    return settings, ensure_index(settings, embedder=embedder).manifest


def _damage(index_dir: Path, how: str) -> None:
    faiss_file, passages, manifest = (index_dir / n for n in ("index.faiss", "passages.jsonl", "manifest.json"))
    if how == "missing passages file":
        passages.unlink()
    elif how == "missing manifest":
        manifest.unlink()
    elif how == "truncated vectors":
        faiss_file.write_bytes(faiss_file.read_bytes()[:100])
    elif how == "flipped byte":
        data = bytearray(faiss_file.read_bytes())
        data[60] ^= 0xFF
        faiss_file.write_bytes(bytes(data))
    elif how == "garbage manifest":
        manifest.write_bytes(os.urandom(64))
    elif how == "manifest from another embedder":
        m = json.loads(manifest.read_text())
        manifest.write_text(json.dumps(m | {"embedder": "intfloat/multilingual-e5-base", "dimension": 768}))


DAMAGE = ["missing passages file", "missing manifest", "truncated vectors", "flipped byte", "garbage manifest",
          "manifest from another embedder"]


@pytest.mark.parametrize("how", DAMAGE)
def test_damaged_index_is_refused_by_load_and_rebuilt_by_ensure_index(small_index, embedder, how, caplog):
    settings, before = small_index
    _damage(settings.index_dir, how)
    with pytest.raises(IndexLoadError, match="rebuild"):
        load_index(settings.index_dir)
    with caplog.at_level(logging.INFO, logger="chatbot"):
        index = ensure_index(settings, embedder=embedder)
    assert "building the index" in caplog.text
    assert index.embedder_name == embedder.name and index.passages == load_index(settings.index_dir).passages
    assert index.manifest["checksums"] == before["checksums"]


_KILLED_BUILD = """
import os, sys, time
from pathlib import Path
import numpy as np
import chatbot.index.store as ix
from chatbot.types import Passage

class Fake:
    name, dimension = "fake", 8
    def embed(self, texts, **kw):
        return np.ones((len(texts), 8), dtype=np.float32) / np.sqrt(8)

def pause(*args):
    Path(sys.argv[2]).touch()
    time.sleep(600)

stage = sys.argv[3]
if stage == "writing files":
    real = ix._write_durably
    ix._write_durably = lambda path, data: (real(path, data), pause())
else:  # between the two renames of the swap: the old index is moved aside, the new one not yet in
    real_replace = os.replace
    def replace(src, dst):
        real_replace(src, dst)
        if ".old-" in str(dst):
            pause()
    ix.os.replace = replace
ix.build_index([Passage("Something else entirely.", "x.txt", "X", 0, 24)], Fake(), sys.argv[1])
"""


@pytest.mark.parametrize("stage", ["writing files", "between the two renames"])
def test_build_killed_half_way_keeps_the_last_good_index(small_index, embedder, tmp_path, stage, caplog):
    settings, before = small_index
    marker = tmp_path / "paused"
    proc = subprocess.Popen([sys.executable, "-c", _KILLED_BUILD, str(settings.index_dir), str(marker), stage],
                            cwd=ROOT, env=os.environ | {"PYTHONPATH": str(ROOT)})
    try:
        deadline = time.monotonic() + 120
        while not marker.exists():
            assert proc.poll() is None and time.monotonic() < deadline, "the build did not reach its pause"
            time.sleep(0.1)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(30)
    with caplog.at_level(logging.INFO, logger="chatbot"):
        index = ensure_index(settings, embedder=embedder)
    assert "building the index" not in caplog.text  # recovered, not rebuilt
    assert index.manifest == before == load_index(settings.index_dir).manifest
    assert [p.name for p in settings.index_dir.parent.iterdir() if p.name.startswith((".index.tmp-", ".index.old-"))] == []


def test_full_disk_during_rebuild_keeps_the_last_good_index(small_index, argv_tail, capsys, monkeypatch):
    settings, before = small_index
    (settings.corpus_dir / "more.txt").write_text("Another article about the Quendale harbour.\n", encoding="utf-8")

    def full_disk(path, data):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    monkeypatch.setattr(index_module, "_write_durably", full_disk)
    assert main(["ask", "Who founded the Zorblax festival?", "--corpus", str(settings.corpus_dir),
                 "--index", str(settings.index_dir), *argv_tail[4:]]) == 2
    err = capsys.readouterr().err
    (err,) = _error_lines(err)
    assert "No space left on device" in err and "previous index" in err
    assert load_index(settings.index_dir).manifest == before
    assert [p.name for p in settings.index_dir.parent.iterdir() if ".tmp-" in p.name] == []


# ---------------------------------------------------------------- models


@pytest.fixture
def broken_readers(tmp_path, tiny_reader_dir):
    """Reader directories: missing, empty, unreadable config, truncated weights, broken reader settings."""
    import shutil

    def copy(name):
        return Path(shutil.copytree(tiny_reader_dir, tmp_path / name))

    (tmp_path / "empty").mkdir()
    (copy("bad-config") / "config.json").write_text("{not json")
    weights = next(copy("truncated").glob("*.safetensors"))
    weights.write_bytes(weights.read_bytes()[:200])
    (copy("bad-settings") / "reader_config.json").write_text("[1, 2")
    return {name: tmp_path / name for name in ("missing", "empty", "bad-config", "truncated", "bad-settings")}


@pytest.mark.parametrize("which", ["missing", "empty", "bad-config", "truncated", "bad-settings"])
def test_broken_reader_names_what_to_set(broken_readers, argv_tail, capsys, which):
    assert main(["ask", "Who founded OpenAI?", *argv_tail[:4], "--reader", str(broken_readers[which])]) == 2
    err = capsys.readouterr().err
    (err,) = _error_lines(err)
    assert str(broken_readers[which]) in err
    assert "CHATBOT_READER" in err or "pip install ." in err


@pytest.mark.parametrize("state", ["missing", "broken"])
def test_broken_embedder_names_its_variable(tmp_path, built_corpus, monkeypatch, capsys, state):
    model = tmp_path / "model"
    if state == "broken":
        model.mkdir()
        (model / "config.json").write_text("{not json")
    monkeypatch.setenv("CHATBOT_EMBEDDER", str(model))
    assert main(["index", "--corpus", str(built_corpus[0]), "--index", str(tmp_path / "index")]) == 2
    err = capsys.readouterr().err
    (err,) = _error_lines(err)
    assert str(model) in err and "CHATBOT_EMBEDDER to" in err


# ---------------------------------------------------------------- servers: bounds, paths, addresses


def test_http_body_without_length_is_refused(http):
    response = http.post("/ask", content=iter([b'{"question": "Who founded OpenAI?"}']),
                         headers={"content-type": "application/json"})
    assert response.status_code == 411 and "Content-Length" in response.json()["detail"]


@pytest.mark.parametrize("body", [
    {"question": "Who founded OpenAI?", "source": "../../etc/passwd"},
    {"question": "Who founded OpenAI?", "k": 10**9}, {"question": "Who founded OpenAI?", "k": -1},
    {"question": "x" * (MAX_CHARS + 1)},
])
def test_http_bounds(http, body):
    response = http.post("/ask", json=body)
    assert response.status_code in (400, 422) and response.json()["detail"]


@pytest.mark.parametrize("path", ["/../../etc/passwd", "/%2e%2e/%2e%2e/etc/passwd", "/corpus/../../etc/passwd",
                                  "/000_1a2eb30073d68791.txt", "/static/../../../etc/passwd"])
def test_http_serves_no_files(http, path):
    response = http.get(path)
    assert response.status_code == 404 and "root:" not in response.text


def test_sources_are_corpus_file_names(http, built_corpus):
    passages = http.post("/search", json={"query": "Colossus Memphis", "k": 50}).json()["passages"]
    for p in passages:
        assert Path(p["source"]).name == p["source"] and (built_corpus[0] / p["source"]).is_file()


def test_gradio_app_serves_no_corpus_or_system_files(gradio_client, built_corpus):
    base = gradio_client.src.rstrip("/")
    corpus_file = built_corpus[0] / "000_1a2eb30073d68791.txt"
    for path in ("/etc/passwd", "../../../../../../etc/passwd", str(corpus_file), "corpus/../../../etc/passwd",
                 str(built_corpus[1] / "manifest.json")):
        for route in ("/gradio_api/file=", "/file="):
            response = httpx.get(base + route + path, timeout=30)
            assert response.status_code != 200 or ("root:" not in response.text and "Colossus" not in response.text), path


def test_servers_listen_on_loopback_by_default():
    parser = build_parser()
    for command in ("serve", "serve-api"):
        assert parser.parse_args([command]).host == "127.0.0.1"
    for serve in (web.serve, http_api.serve):
        assert inspect.signature(serve).parameters["host"].default == "127.0.0.1"


def test_a_missing_or_damaged_answer_policy_says_what_to_do(argv_tail, capsys, tmp_path):
    """A reader directory whose answer_policy.json is damaged stops with a message naming the fix."""
    import shutil

    reader = Path(shutil.copytree(argv_tail[-1], tmp_path / "reader"))
    (reader / "answer_policy.json").write_text("{damaged")
    assert main(["ask", "Who is the CEO of OpenAI?", *argv_tail[:4], "--reader", str(reader)]) == 2
    (err,) = _error_lines(capsys.readouterr().err)
    assert "answer_policy.json" in err and "fit-policy" in err

