"""The command line: ask/search JSON shapes, readable output, index, chat, and errors without tracebacks."""

import io
import json

import pytest

from chatbot.cli import main


def test_ask_json_shape(argv_tail, capsys):
    assert main(["ask", "Which platform is Grok integrated into?", "--json", "-k", "3", *argv_tail]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) == {"question", "searched_for", "answer", "score", "citations", "latency_ms"}
    assert out["question"] == out["searched_for"] == "Which platform is Grok integrated into?"
    assert out["answer"] is None or isinstance(out["answer"], str)
    assert 0 <= out["score"] <= 1 and out["latency_ms"] > 0 and out["citations"]
    for c in out["citations"]:
        assert set(c) == {"source", "title", "start", "end", "text", "answer_start", "answer_end", "page"}


def test_search_json_and_readable_output(argv_tail, capsys):
    assert main(["search", "Colossus data center", "--json", "-k", "2", *argv_tail]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["query"] == "Colossus data center" and len(out["passages"]) == 2
    assert all(set(p) == {"text", "score", "source", "title", "start", "end", "page"} for p in out["passages"])
    assert main(["search", "Colossus data center", "-k", "1", *argv_tail]) == 0
    assert capsys.readouterr().out.startswith("[1] ")
    assert main(["ask", "What is the boiling point of water in Fahrenheit?", *argv_tail]) == 0
    text = capsys.readouterr().out
    assert text.startswith("Not found in the corpus.") and "Closest passages:" in text


def test_index_then_chat(argv_tail, capsys, monkeypatch):
    assert main(["index", *argv_tail[:4]]) == 0
    assert "49 passages from 5 files" in capsys.readouterr().out
    monkeypatch.setattr("sys.stdin", io.StringIO("What is xAI's data center in Memphis called?\nHow many GPUs does it house?\n\nignored\n"))
    assert main(["chat", *argv_tail]) == 0
    out = capsys.readouterr().out
    assert out.count("Sources:") + out.count("Closest passages:") == 2
    assert "Searched for: How many GPUs does it house? (" in out and "ignored" not in out


@pytest.mark.parametrize("args, message", [
    (["ask", "  "], "error: Please type a question"),
    (["ask", "Who?", "-k", "0"], "error: k must be"),
    (["search", "xAI", "-k", "51"], "error: k must be"),
])
def test_errors_are_one_line_without_traceback(argv_tail, capsys, args, message):
    assert main([*args, *argv_tail]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(message) and "Traceback" not in err and len(err.splitlines()) == 1


def test_missing_corpus_is_reported(tmp_path, capsys):
    assert main(["index", "--corpus", str(tmp_path / "nope"), "--index", str(tmp_path / "index")]) == 2
    assert "does not exist" in capsys.readouterr().err
