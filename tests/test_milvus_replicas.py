"""Two HTTP API replicas over one Milvus store (milvus-lite's server on loopback) and one shared corpus
folder: a document added through one is answered through the other without a restart, a conversation moves
between them (its history travels in the request), and a replica killed mid-upload leaves the store
consistent."""

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

pytest.importorskip("pymilvus")
pytest.importorskip("milvus_lite")

from chatbot.config import Settings  # noqa: E402
from chatbot.index.milvus import MilvusStore  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
FILES = {
    "stargate.txt": "Stargate is a joint venture of OpenAI, SoftBank and Oracle. It plans to invest $500 billion in AI "
                    "data centres in the United States over four years.\n\nThe first site is in Abilene, Texas.\n",
    "colossus.txt": "xAI built Colossus, its supercomputer, in Memphis, Tennessee. It houses 200,000 Nvidia GPUs.\n",
}
LIGHTHOUSE = ("The Skerryvore lighthouse was designed by the engineer Alan Stevenson. Its construction took six "
              "years and was finished in 1844.\n")
START_TIMEOUT_S = 600


def _wait_for_port(port: int, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        assert proc.poll() is None, log.read_text(errors="replace")
        assert time.monotonic() < deadline, "did not start:\n" + log.read_text(errors="replace")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.5)


@pytest.fixture
def milvus_server(tmp_path, free_port_factory):
    """``milvus://127.0.0.1:PORT`` of a milvus-lite server started for the test."""
    port = free_port_factory()
    log = tmp_path / "milvus.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "milvus_lite", "server", "--data-dir", str(tmp_path / "milvus"),
                                 "--host", "127.0.0.1", "--port", str(port)], stdout=out, stderr=subprocess.STDOUT)
    try:
        _wait_for_port(port, proc, log)
        yield f"milvus://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(30)


class Replica:
    """``chatbot serve-api --allow-uploads`` in its own process."""

    def __init__(self, name: str, tmp_path: Path, corpus: Path, store: str, port: int):
        env = os.environ | {"PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
                            "CHATBOT_STORE": store, "NO_PROXY": "127.0.0.1,localhost"}
        self.log = tmp_path / f"{name}.log"
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "chatbot", "serve-api", "--allow-uploads", "--port", str(port),
                 "--corpus", str(corpus), "--index", str(tmp_path / f"{name}-index")],
                cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT)
        self.http = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=300)
        self.port = port

    def wait_ready(self) -> None:
        _wait_for_port(self.port, self.proc, self.log)

    def ask(self, question: str, history: list[str] | None = None) -> dict:
        response = self.http.post("/ask", json={"question": question, "history": history or []})
        assert response.status_code == 200, response.text
        return response.json()

    def stop(self) -> None:
        self.http.close()
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(30)


@pytest.fixture
def replicas(tmp_path, milvus_server, free_port_factory):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for name, text in FILES.items():
        (corpus / name).write_text(text, encoding="utf-8")
    a = Replica("a", tmp_path, corpus, milvus_server, free_port_factory())
    a.wait_ready()  # the first builds the store; the second then finds it up to date
    b = Replica("b", tmp_path, corpus, milvus_server, free_port_factory())
    b.wait_ready()
    yield a, b, corpus, milvus_server
    a.stop()
    b.stop()


def _cited(answer: dict) -> str | None:
    return answer["citations"][0]["source"] if answer["answer"] is not None else None


def assert_consistent(store_setting: str, corpus: Path) -> None:
    """The store holds exactly the folder's documents, each with the chunks its row counts, of its version."""
    store = MilvusStore.open(Settings().with_(store=store_setting))
    rows = {r["source"]: r for r in store._document_rows()}
    assert set(rows) == {p.name for p in corpus.iterdir() if not p.name.startswith(".")}
    chunks = store._query(store._chunks, "", ["source", "version"])
    for source, row in rows.items():
        own = [c for c in chunks if c["source"] == source]
        assert len(own) == row["record"]["chunks"] and {c["version"] for c in own} == {row["sha256"]}, source
    assert {c["source"] for c in chunks} == set(rows)


def test_a_document_added_through_one_replica_is_answered_by_the_other(replicas):
    a, b, corpus, store = replicas
    assert _cited(b.ask("Who designed the Skerryvore lighthouse?")) != "lighthouse.txt"
    added = a.http.post("/documents", files=[("files", ("lighthouse.txt", LIGHTHOUSE.encode(), "text/plain"))])
    assert added.status_code == 200 and added.json()["documents"][0]["status"] == "indexed", added.text

    answer = b.ask("Who designed the Skerryvore lighthouse?")
    assert _cited(answer) == "lighthouse.txt" and "Stevenson" in answer["answer"]
    assert {d["name"] for d in b.http.get("/documents").json()["documents"]} == set(FILES) | {"lighthouse.txt"}
    # a conversation started on one replica goes on on the other: its history comes with each request
    first = a.ask("Who designed the Skerryvore lighthouse?")
    follow_up = b.ask("When was it finished?", history=["Who designed the Skerryvore lighthouse?"])
    assert _cited(first) == "lighthouse.txt" and _cited(follow_up) == "lighthouse.txt" and "1844" in follow_up["answer"]

    assert b.http.delete("/documents/lighthouse.txt").status_code == 204
    assert _cited(a.ask("Who designed the Skerryvore lighthouse?")) != "lighthouse.txt"
    assert_consistent(store, corpus)


def test_a_replica_killed_mid_upload_leaves_the_store_consistent(replicas):
    a, b, corpus, store = replicas
    # long enough that its embedding takes seconds: the kill lands while it is being indexed
    big = "".join(f"Report {n}: the depot in district {n} stored {n * 7} crates of copper wire in week {n % 52}. "
                  + ("\n\n" if n % 4 == 3 else "") for n in range(4000)) + LIGHTHOUSE

    def upload():
        try:
            a.http.post("/documents", files=[("files", ("depots.txt", big.encode(), "text/plain"))], timeout=300)
        except httpx.TransportError:
            pass  # the replica is killed mid-request

    thread = threading.Thread(target=upload)
    thread.start()
    deadline = time.monotonic() + 120
    while not (corpus / "depots.txt").exists():  # written to the folder, now being embedded
        assert time.monotonic() < deadline and thread.is_alive(), a.log.read_text(errors="replace")
        time.sleep(0.05)
    time.sleep(1.0)
    a.proc.send_signal(signal.SIGKILL)
    a.proc.wait(30)
    thread.join(60)

    # the other replica finds the folder changed, finishes the work, and answers from the whole document
    answer = b.ask("Who designed the Skerryvore lighthouse?")
    assert _cited(answer) == "depots.txt" and "Stevenson" in answer["answer"]
    assert_consistent(store, corpus)
