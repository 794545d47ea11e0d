"""Hardening, round two (issue 20): bounded work per request whatever its history, text that cannot be
encoded, hostile file names, the servers' Host/Origin/body checks, index faults that are said and
repaired, and ``chatbot search`` without the reader. docs/hardening.md lists them."""

from __future__ import annotations

import errno
import io
import json
import logging
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import httpx
import orjson
import pytest

from conftest import patch_embedder

import chatbot.index.store as index_module
from chatbot.serve.cli import main
from chatbot.config import Settings
from chatbot.qa.conversation import MAX_CONTEXT_TERMS, MAX_TERM_CHARS
from chatbot.errors import IndexBuildError, IndexLoadError
from chatbot.serve.http_api import create_app
from chatbot.index.store import load_index
from chatbot.index.sync import ensure_index
from chatbot.qa.chatbot import searched_for
from chatbot.serve.web import TEMP_DIR_PREFIX, Backend, Handlers, build_app, own_temp_dir

ROOT = Path(__file__).resolve().parents[1]
SETTINGS = Settings()
FOLLOW_UP = "How many GPUs does it house?"
HOSTILE_WORD = "Colossus" * 7500  # 60,000 characters
HOSTILE_HISTORIES = {
    "one huge word": [HOSTILE_WORD],
    "many huge words": [" ".join([HOSTILE_WORD[:5000]] * 12)],
    "thousands of entries": ["What is xAI's data center in Memphis called?"] * 5000,
    "huge entries with names": [" ".join(f"Name{i}" for i in range(20000))] * 50,
}


# ---------------------------------------------------------------- bounded work


@pytest.mark.parametrize("history", HOSTILE_HISTORIES.values(), ids=HOSTILE_HISTORIES.keys())
def test_the_searched_for_query_is_bounded_whatever_the_history(history):
    query = searched_for(FOLLOW_UP, history, history, SETTINGS)
    assert query.startswith(FOLLOW_UP) and len(query) <= SETTINGS.max_query_chars
    added = query[len(FOLLOW_UP):].strip(" ()").split()
    assert len(added) <= MAX_CONTEXT_TERMS and all(len(term) <= MAX_TERM_CHARS for term in added)


def test_a_normal_history_still_resolves_the_follow_up():
    query = searched_for(FOLLOW_UP, ["What is xAI's data center in Memphis called?"], None, SETTINGS)
    assert query.startswith(FOLLOW_UP) and "xAI's" in query and "Memphis" in query


def test_only_the_last_turns_of_the_history_are_used():
    """A chain of follow-ups keeps its subject, as far back as ``max_history_turns`` turns and no further."""
    turns = SETTINGS.max_history_turns
    assert "OpenAI" in searched_for("And when?", ["Who founded OpenAI?"] + ["And when?"] * (turns - 1), None, SETTINGS)
    assert "OpenAI" not in searched_for("And when?", ["Who founded OpenAI?"] + ["And when?"] * turns, None, SETTINGS)


def test_a_history_that_is_not_a_list_is_refused_with_a_message():
    with pytest.raises(ValueError, match="list of the earlier questions"):
        searched_for(FOLLOW_UP, "What is Colossus?", None, SETTINGS)


def test_a_hostile_history_gets_a_bounded_answer(real_bot, monkeypatch):
    seen = []
    retrieve = real_bot.retriever.retrieve
    monkeypatch.setattr(real_bot.retriever, "retrieve", lambda query, k: (seen.append(query), retrieve(query, k))[1])
    answer = real_bot.ask(FOLLOW_UP, history=[f"What is Colossus? {HOSTILE_WORD}"] * 100,
                          answers=[HOSTILE_WORD] * 100)
    assert answer.citations and len(seen[0]) <= SETTINGS.max_query_chars and answer.searched_for == seen[0]
    assert "Colossus" in answer.searched_for
    # A history of nothing but over-long words gives "it" nothing to refer to: the bot asks back, searching nothing.
    asked_back = real_bot.ask(FOLLOW_UP, history=[HOSTILE_WORD] * 100, answers=[HOSTILE_WORD] * 100)
    assert asked_back.clarification and not asked_back.citations and len(seen) == 1


# ---------------------------------------------------------------- the servers

@pytest.fixture(scope="module")
def handlers(real_bot):
    return Handlers(Backend(lambda: real_bot), real_bot.settings)


@pytest.fixture(scope="module")
def http_url(real_bot, local_servers):
    return local_servers.http(create_app(real_bot))


@pytest.fixture(scope="module")
def http(http_url):
    with httpx.Client(base_url=http_url, timeout=120) as client:
        yield client


@pytest.fixture(scope="module")
def gradio_url(real_bot, local_servers):
    return local_servers.gradio(build_app(lambda: real_bot, real_bot.settings))


def _raw_post(client: httpx.Client, path: str, body: str, **headers) -> httpx.Response:
    """POST ``body`` as written (JSON escapes such as \\ud800 or NaN that json.dumps would not write)."""
    return client.post(path, content=body.encode("ascii"), headers={"content-type": "application/json", **headers})


@pytest.mark.parametrize("history, problem", [
    (["x" * (SETTINGS.max_question_chars + 1)], "too long"),
    (["Who founded OpenAI?"] * (SETTINGS.max_history_turns + 1), "at most"),
])
def test_http_and_gradio_refuse_a_history_over_the_bounds(http, handlers, history, problem):
    import gradio as gr

    response = http.post("/ask", json={"question": FOLLOW_UP, "history": history})
    assert response.status_code == 422 and response.json()["detail"][0]["msg"]
    with pytest.raises(gr.Error, match=problem):
        handlers.api_ask(FOLLOW_UP, history)


def test_gradio_api_refuses_a_history_that_is_not_a_list_of_questions(handlers):
    import gradio as gr

    for history in ("What is Colossus?", [{"role": "user"}], [1, 2]):
        with pytest.raises(gr.Error, match="list of the earlier questions"):
            handlers.api_ask(FOLLOW_UP, history)


@pytest.mark.parametrize("path, field", [("/ask", "question"), ("/search", "query")])
def test_http_lone_surrogates(http, path, field):
    alone = _raw_post(http, path, f'{{"{field}": "\\ud800"}}')
    assert alone.status_code == 400 and "no words" in alone.json()["detail"]
    inside = _raw_post(http, path, f'{{"{field}": "Who is the CEO of OpenAI? \\udcff"}}')
    assert inside.status_code == 200
    assert inside.json()["question" if path == "/ask" else "query"] == "Who is the CEO of OpenAI?"
    history = _raw_post(http, "/ask", '{"question": "How old is he?", "history": ["Who leads OpenAI? \\ud800"]}')
    assert history.status_code == 200 and "OpenAI" in history.json()["searched_for"]
    extra = _raw_post(http, path, f'{{"{field}": "Grok", "\\ud800": "\\udfff"}}')  # echoed in the 422 detail
    assert extra.status_code == 422 and extra.json()["detail"]


@pytest.mark.parametrize("k", ["NaN", "Infinity", "-Infinity", "2.5", "true", '"5"'])
def test_http_k_that_is_not_a_whole_number_is_422(http, k):
    for path, field in (("/search", "query"), ("/ask", "question")):
        response = _raw_post(http, path, f'{{"{field}": "Who founded OpenAI?", "k": {k}}}')
        assert response.status_code == 422 and "k" in json.dumps(response.json()["detail"])


def test_http_k_written_as_a_whole_float_is_the_integer_the_schema_allows(http):
    response = http.post("/search", json={"query": "Colossus Memphis", "k": 8.0})
    assert response.status_code == 200 and len(response.json()["passages"]) == 8


def test_web_chat_answers_or_refuses_surrogates_and_the_reply_can_be_sent(handlers):
    *_, (_, _, _, hint) = handlers.respond("\ud800", [])
    assert "in words" in hint
    *_, (messages, _, turns, _) = handlers.respond("Who is the CEO of OpenAI? \ud800", [])
    orjson.dumps([messages, turns])  # what Gradio's event stream does with them: no UnicodeEncodeError
    assert "searched for" in messages[-1]["content"]
    orjson.dumps(handlers.api_ask("How old is he?", ["Who is the CEO of OpenAI? \udcff"]))
    result = handlers.api_search("Colossus \udcff", 3.0)
    assert result["query"] == "Colossus" and len(result["passages"]) == 3
    import gradio as gr

    with pytest.raises(gr.Error, match="whole number"):
        handlers.api_search("Colossus", float("nan"))


def test_cli_ask_and_search_with_bytes_that_are_not_utf8(argv_tail, capsys):
    question = os.fsdecode(b"Who is the CEO of OpenAI? \xff")  # how Python hands such an argument over
    assert main(["ask", question, *argv_tail]) == 0
    out, err = capsys.readouterr()
    assert out.startswith(("Answer:", "Not found")) and "unexpected" not in err
    assert main(["search", question, "--json", *argv_tail]) == 0
    assert json.loads(capsys.readouterr().out)["query"] == "Who is the CEO of OpenAI?"


def test_cli_chat_goes_on_after_a_line_that_is_not_utf8(argv_tail, capsys, monkeypatch):
    lines = b"Who is the CEO of OpenAI? \xff\xfe\nWhat is Colossus?\n\n"
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(lines), encoding="utf-8"))
    assert main(["chat", *argv_tail]) == 0
    out, err = capsys.readouterr()
    assert out.count("Sources:") + out.count("Closest passages:") == 2 and "error" not in err


# ---------------------------------------------------------------- Host, Origin, body size, uploads


def test_both_servers_refuse_other_host_names(http_url, gradio_url):
    for url in (http_url + "/health", gradio_url):
        response = httpx.get(url, headers={"Host": "evil.example"}, timeout=30)
        assert response.status_code == 400 and "CHATBOT_ALLOWED_HOSTS" in response.json()["detail"]
        assert httpx.get(url, headers={"Host": "localhost"}, timeout=30).status_code == 200


def test_http_refuses_other_origins_and_accepts_its_own(http, http_url):
    body = '{"query": "Colossus"}'
    assert _raw_post(http, "/search", body, origin="http://evil.example").status_code == 403
    assert _raw_post(http, "/search", body, origin="null").status_code == 403
    assert _raw_post(http, "/search", body, origin=http_url).status_code == 200


def test_gradio_upload_is_only_for_its_own_page_and_bounded(gradio_url, real_bot):
    upload = gradio_url + "gradio_api/upload"
    files = {"files": ("note.txt", b"The harbour opens at dawn.\n")}
    evil = httpx.post(upload, files=files, headers={"Origin": "http://evil.example"}, timeout=30)
    assert evil.status_code == 403 and "not accepted" in evil.json()["detail"]
    own = httpx.post(upload, files=files, headers={"Origin": gradio_url.rstrip("/")}, timeout=30)
    assert own.status_code == 200
    (stored,) = own.json()
    assert Path(stored).is_relative_to(os.environ["GRADIO_TEMP_DIR"])  # this process's own folder
    big = {"files": ("big.bin", b"x" * (real_bot.settings.max_file_bytes + 100_000))}
    assert httpx.post(upload, files=big, timeout=60).status_code == 413


def test_gradio_refuses_a_large_body_also_without_its_length(gradio_url, real_bot):
    limit = real_bot.settings.web_max_body_bytes
    body = json.dumps({"data": ["x" * (limit + 1000), []]}).encode()
    response = httpx.post(gradio_url + "gradio_api/call/ask", content=body,
                          headers={"content-type": "application/json"}, timeout=30)
    assert response.status_code == 413 and "larger than" in response.json()["detail"]
    streamed = httpx.post(gradio_url + "gradio_api/call/ask", content=iter([body[:65536], body[65536:]]),
                          headers={"content-type": "application/json"}, timeout=30)
    assert streamed.status_code == 413


def test_temp_folders_of_processes_that_are_gone_are_removed(tmp_path):
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = tmp_path / f"{TEMP_DIR_PREFIX}{int(gone.stdout)}"
    (stale / "upload").mkdir(parents=True)
    (stale / "upload" / "50MB.bin").write_bytes(b"x")
    live = tmp_path / f"{TEMP_DIR_PREFIX}1"  # init: always running
    live.mkdir()
    own = own_temp_dir(str(tmp_path))
    assert not stale.exists() and live.exists() and Path(own).is_dir() and str(os.getpid()) in own


def test_allowed_hosts_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("CHATBOT_ALLOWED_HOSTS", "chat.example.org, 10.0.0.5")
    assert Settings.from_env().allowed_hosts == ("chat.example.org", "10.0.0.5")


# ---------------------------------------------------------------- hostile file names


@pytest.fixture
def session_embedder(monkeypatch, embedder):
    patch_embedder(monkeypatch, embedder)


def test_file_names_that_are_not_utf8_or_hold_escapes_are_indexed_and_shown_safely(tmp_path, session_embedder,
                                                                                     caplog, capsys):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    article = "Quendale Weekly\n\nThe Zorblax museum opens every spring in Quendale.\n"
    for name in (b"bad\xffname.txt", "Отчёт".encode("cp1251") + b".txt", b"evil\x1b[2Jname.txt", b"ok.txt"):
        with open(os.path.join(os.fsencode(corpus), name), "w", encoding="utf-8") as fh:
            fh.write(article)
    with open(os.path.join(os.fsencode(corpus), b"photo\x1b]0;pwned\x07\xe2\x80\xae.png"), "wb") as fh:
        fh.write(b"\x89PNG")
    index_dir = tmp_path / "index"
    with caplog.at_level(logging.WARNING):
        assert main(["index", "--corpus", str(corpus), "--index", str(index_dir)]) == 0
    assert "4 files" in capsys.readouterr().out
    sources = {p.source for p in load_index(index_dir).passages}
    assert sources == {"bad\\xffname.txt", "\\xce\\xf2\\xf7\\xb8\\xf2.txt", "evil\\x1b[2Jname.txt", "ok.txt"}
    (warning,) = [r.getMessage() for r in caplog.records if r.getMessage().startswith("not indexed")]
    assert "photo\\x1b]0;pwned\\x07\\u202e.png" in warning and "\x1b" not in warning and "\u202e" not in warning
    assert main(["search", "Zorblax museum", "--json", "--corpus", str(corpus), "--index", str(index_dir)]) == 0
    assert {p["source"] for p in json.loads(capsys.readouterr().out)["passages"]} == sources


# ---------------------------------------------------------------- index faults


@pytest.fixture
def small_index(tmp_path, session_embedder, embedder):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "article.txt").write_text("Quendale Weekly\n\nThe Zorblax festival was founded in 1921.\n")
    settings = Settings.from_env().with_(corpus_dir=corpus, index_dir=tmp_path / "index")
    return settings, ensure_index(settings, embedder=embedder).manifest


@pytest.mark.parametrize("field, value", [("checksums", None), ("checksums", {"index.faiss": 5}),
                                          ("chunk_count", "1"), ("dimension", True), ("embedder", ["x"]),
                                          ("query_encoder", "yes")])
def test_a_wrong_typed_manifest_means_rebuild(small_index, embedder, caplog, field, value):
    settings, before = small_index
    manifest = settings.index_dir / "manifest.json"
    manifest.write_text(json.dumps(before | {field: value}))
    with pytest.raises(IndexLoadError, match="rebuild"):
        load_index(settings.index_dir)
    with caplog.at_level(logging.INFO, logger="chatbot"):
        index = ensure_index(settings, embedder=embedder)
    assert "building the index" in caplog.text and index.manifest["checksums"] == before["checksums"]


class _FullDiskExport:
    """The session's embedder, whose query-encoder export fails as on a full disk."""

    def __init__(self, embedder):
        self._embedder = embedder
        self.name, self.dimension, self.embed = embedder.name, embedder.dimension, embedder.embed

    def export_query_encoder(self, out_dir):
        out_dir.mkdir()
        (out_dir / "model.onnx").write_bytes(b"half")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(out_dir / "model.onnx"))


def test_a_query_encoder_lost_to_a_full_disk_is_said_and_added_at_the_next_start(tmp_path, caplog):
    from chatbot.models.embedding import MINILM_EMBEDDER, Embedder

    embedder = Embedder(MINILM_EMBEDDER)  # a sentence-transformers embedder: its query encoder goes into the index
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "harbour.txt").write_text("The Quendale harbour opened in 1911.\n")
    settings = Settings(embedder=MINILM_EMBEDDER).with_(corpus_dir=corpus, index_dir=tmp_path / "index")
    before = ensure_index(settings, embedder=embedder).manifest
    (settings.corpus_dir / "more.txt").write_text("Another article about the Quendale harbour.\n")
    # Other chunking: a full rebuild, which exports the query encoder (adding a file alone updates the index).
    settings = settings.with_(chunking=replace(settings.chunking, max_chars=settings.chunking.max_chars + 1))
    with caplog.at_level(logging.WARNING, logger="chatbot.index.store"):
        index = ensure_index(settings, embedder=_FullDiskExport(embedder))
    assert "without its ONNX query encoder" in caplog.text and "No space left" in caplog.text
    assert "query_encoder" not in index.manifest and not (settings.index_dir / "query_encoder").exists()
    assert len(load_index(settings.index_dir)) == 2  # the index answers meanwhile
    repaired = ensure_index(settings, embedder=embedder)  # the next start
    assert repaired.manifest["query_encoder"] == before["query_encoder"]
    assert (settings.index_dir / "query_encoder" / "model.onnx").is_file()


def _read_only(monkeypatch):
    """The index's folder as on a read-only mount: nothing can be created or replaced in it."""
    def refuse(*args, **kwargs):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(args[0]) if args else "")

    monkeypatch.setattr(index_module, "open", refuse, raising=False)


def test_a_read_only_index_answers_while_it_matches_and_says_why_it_cannot_be_rebuilt(small_index, embedder, caplog,
                                                                                       monkeypatch):
    settings, before = small_index
    leftover = settings.index_dir.with_name(".index.tmp-crashed")  # a build killed before the mount went read-only
    leftover.mkdir()
    _read_only(monkeypatch)
    with caplog.at_level(logging.WARNING, logger="chatbot.index.store"):
        index = ensure_index(settings, embedder=embedder)
    assert index.manifest == before and "Read-only file system" in caplog.text
    (settings.corpus_dir / "more.txt").write_text("Another article.\n")
    with pytest.raises(IndexBuildError, match="can be read but not built"):
        ensure_index(settings, embedder=embedder)


# ---------------------------------------------------------------- search without the reader, dependency floor


def test_search_loads_no_reader(argv_tail, capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("CHATBOT_RELEVANCE_ENCODER", str(tmp_path / "gone"))
    monkeypatch.setenv("CHATBOT_MULTILINGUAL_READER", str(tmp_path / "gone"))
    args = [*argv_tail[:4], "--reader", str(tmp_path / "gone")]
    assert main(["search", "Colossus Memphis", *args]) == 0
    assert capsys.readouterr().out.startswith("[1] ")
    assert main(["ask", "Where is Colossus?", *args]) == 2  # asking needs them, and says so


def test_gradio_floor_has_no_published_advisory():
    import tomllib

    from packaging.version import Version

    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    (gradio,) = [d for d in deps if d.startswith("gradio")]
    assert Version(gradio.split(">=")[1]) >= Version("6.16")
