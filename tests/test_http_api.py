"""HTTP API: a real server on a loopback port, called with httpx."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from chatbot.serve import cli
from chatbot.config import Settings
from chatbot.errors import ModelLoadError
from chatbot.serve.http_api import MAX_BODY_BYTES, create_app
from chatbot.index.sync import ensure_index
from chatbot.qa.chatbot import Chatbot, Retriever
from chatbot.models.reader import Reader

ROOT = Path(__file__).resolve().parents[1]
QUESTION = "Which platform is Grok integrated into?"


@pytest.fixture(scope="module")
def bot(built_corpus, embedder, tiny_reader_dir):
    """A chatbot over the built corpus with the tiny random reader (plumbing, not answers)."""
    corpus, index_dir = built_corpus
    settings = Settings().with_(corpus_dir=corpus, index_dir=index_dir, reader=str(tiny_reader_dir))
    return Chatbot(ensure_index(settings, embedder=embedder), settings, embedder, Reader(tiny_reader_dir))


@pytest.fixture(scope="module")
def client(bot, local_servers):
    """An httpx client of ``create_app(bot)`` served by uvicorn in a thread."""
    with httpx.Client(base_url=local_servers.http(create_app(bot)), timeout=60) as http:
        yield http


def test_health(client, bot):
    body = client.get("/health").json()
    assert body == {"status": "ok", "version": "0.1.0", "documents": 5, "chunks": len(bot.index),
                    "embedder": bot.embedder.name, "reader": bot.reader.model_name_or_path}


def test_search_matches_the_library_and_the_cli(client, bot, built_corpus, capsys):
    response = client.post("/search", json={"query": "Colossus Memphis", "k": 3})
    assert response.status_code == 200
    assert response.json() == {"query": "Colossus Memphis", "passages": [p.to_dict() for p in bot.search("Colossus Memphis", 3)]}
    corpus, index_dir = built_corpus
    assert cli.main(["search", "Colossus Memphis", "-k", "3", "--json", "--corpus", str(corpus), "--index", str(index_dir)]) == 0
    assert json.loads(capsys.readouterr().out) == response.json()
    assert len(client.post("/search", json={"query": "Grok"}).json()["passages"]) == 5


def test_ask_matches_the_library(client, bot):
    history = ["What is xAI's data center in Memphis called?"]
    response = client.post("/ask", json={"question": "How many GPUs does it house?", "history": history})
    assert response.status_code == 200
    body = response.json()
    expected = bot.ask("How many GPUs does it house?", history=history).to_dict()
    assert body.pop("latency_ms") > 0 and body == {k: v for k, v in expected.items() if k != "latency_ms"}
    assert "Memphis" in body["searched_for"]
    assert client.post("/ask", json={"question": QUESTION, "k": 2}).json()["citations"]


@pytest.mark.parametrize("path, body", [
    ("/search", {"query": ""}), ("/search", {"query": "  \n "}), ("/ask", {"question": "\t"}),
    ("/ask", {"question": "Who " + "really " * 200 + "leads OpenAI?"}),
])
def test_unusable_question_is_400_with_a_message(client, path, body):
    response = client.post(path, json=body)
    assert response.status_code == 400
    assert response.json()["detail"].startswith(("The query is", "The question is"))


@pytest.mark.parametrize("path, body", [
    ("/search", {"query": "Grok", "k": 0}), ("/search", {"query": "Grok", "k": 51}),
    ("/search", {"query": "Grok", "k": "5"}), ("/search", {"query": "Grok", "k": 2.5}),
    ("/search", {}), ("/search", {"query": 42}), ("/search", {"query": "Grok", "kk": 3}), ("/search", [1]),
    ("/ask", {"question": QUESTION, "history": "not a list"}), ("/ask", {"question": QUESTION, "k": 0}),
    ("/ask", {"question": QUESTION, "history": ["q"] * 21}), ("/ask", {"question": QUESTION, "explain": 0}),
    ("/ask", {"question": QUESTION, "explain": "yes"}),
])
def test_malformed_body_is_422_with_messages(client, path, body):
    response = client.post(path, json=body)
    assert response.status_code == 422
    assert all(error["msg"] for error in response.json()["detail"])


def test_body_that_is_not_json_or_too_large(client):
    assert client.post("/search", content=b"{not json", headers={"content-type": "application/json"}).status_code == 422
    response = client.post("/ask", json={"question": "x" * MAX_BODY_BYTES})
    assert response.status_code == 413 and "larger than" in response.json()["detail"]


def test_model_failure_is_503_with_its_message(client, bot, monkeypatch):
    def fail(*args, **kwargs):
        raise ModelLoadError("Reader model 'x' cannot be loaded: install it.")

    monkeypatch.setattr(bot.reader, "read", fail)
    response = client.post("/ask", json={"question": QUESTION})
    assert response.status_code == 503 and response.json() == {"detail": "Reader model 'x' cannot be loaded: install it."}


def test_openapi_documents_the_endpoints(client):
    schema = client.get("/openapi.json").json()
    assert {"/search", "/ask", "/health"} <= set(schema["paths"])
    search = schema["components"]["schemas"]["SearchRequest"]["properties"]["k"]
    assert (search["minimum"], search["maximum"], search["default"]) == (1, 50, 5)
    assert client.get("/docs").status_code == 200


def test_serve_api_command(corpus_copy, tmp_path, free_port, embedder, trained_reader):
    """``chatbot serve-api`` end to end: builds the index, loads the reader, answers with exact citations."""
    env = os.environ | {"PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
                        "CHATBOT_READER": trained_reader, "NO_PROXY": "127.0.0.1,localhost"}
    index_dir = tmp_path / "index"
    log_path = tmp_path / "server.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "chatbot", "serve-api", "--port", str(free_port),
                                 "--corpus", str(corpus_copy), "--index", str(index_dir)],
                                cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{free_port}", timeout=120) as http:
            deadline = time.monotonic() + 600
            while True:
                assert proc.poll() is None, log_path.read_text()
                assert time.monotonic() < deadline, "serve-api did not start:\n" + log_path.read_text()
                try:
                    health = http.get("/health").json()
                    break
                except httpx.TransportError:
                    time.sleep(1)
            assert health["status"] == "ok" and health["documents"] == 5 and health["reader"] in (trained_reader, "chatbot/models/reader-multilingual (shipped)")
            passages = http.post("/search", json={"query": QUESTION, "k": 4}).json()["passages"]
            retriever = Retriever.load(index_dir=index_dir, corpus_dir=corpus_copy, embedder=embedder)
            assert passages == [p.to_dict() for p in retriever.search(QUESTION, 4)]
            answer = http.post("/ask", json={"question": QUESTION}).json()
            for c in answer["citations"]:
                assert c["text"] == (corpus_copy / c["source"]).read_text(encoding="utf-8")[c["start"]:c["end"]]
            if answer["answer"] is not None:
                first = answer["citations"][0]
                original = (corpus_copy / first["source"]).read_text(encoding="utf-8")
                assert original[first["answer_start"]:first["answer_end"]] == answer["answer"]
    finally:
        proc.terminate()
        proc.wait(30)


@pytest.mark.parametrize("question", ["  ", "Who " * 300, "?!…"])
def test_readme_quotes_the_message_ask_returns(client, question):
    """One README text per error, as /ask returns it (the too-long one with N for the count)."""
    import re

    detail = client.post("/ask", json={"question": question}).json()["detail"]
    readme = " ".join((ROOT / "README.md").read_text(encoding="utf-8").split())
    assert re.sub(r"\(\d+ characters\)", "(N characters)", detail) in readme, detail
