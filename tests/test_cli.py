"""The command line: ask/search JSON shapes, readable output, index, chat, and errors without tracebacks."""

import io
import json

import pytest

from chatbot.serve.cli import main


def test_ask_json_shape(argv_tail, capsys):
    assert main(["ask", "Which platform is Grok integrated into?", "--json", "-k", "3", *argv_tail]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) == {"question", "searched_for", "answer", "score", "citations", "latency_ms", "clarification",
                        "alternatives", "explanation"}
    assert out["clarification"] is None
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
    monkeypatch.setattr("sys.stdin", io.StringIO("What is xAI's data center in Memphis called?\n\n"
                                                 "How many GPUs does it house?\n/new\nHow many GPUs does it house?\n"
                                                 "exit\nignored\n"))
    assert main(["chat", *argv_tail]) == 0
    out = capsys.readouterr().out
    assert out.count("Sources:") + out.count("Closest passages:") == 2
    assert "Searched for: How many GPUs does it house? (" in out and "ignored" not in out
    assert "What does “it” refer to?" in out  # after /new, nothing to refer back to
    assert "**" not in out


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


class FakeChatBot:
    def __init__(self):
        self.asked = []

    def ask(self, question, history=None, k=5, answers=None, explain=False):
        from chatbot.types import Answer, Citation

        self.asked.append((question, list(history or [])))
        text = "The **Colossus** supercomputer is in Memphis."
        citation = Citation("a.md", "T", 0, len(text), text, answer_start=text.index("Memphis"), answer_end=len(text) - 1)
        return Answer(question, question, "Memphis", 0.9, [citation])


@pytest.mark.parametrize("ending", ["exit\nWho?\n", "quit\n", "", "  QUIT  \nWho?\n"])
def test_chat_ignores_blank_lines_starts_over_on_new_and_ends_on_exit_quit_or_eof(monkeypatch, capsys, ending):
    bot = FakeChatBot()
    monkeypatch.setattr("chatbot.serve.cli._load_chatbot", lambda args: bot)
    monkeypatch.setattr("sys.stdin", io.StringIO(f"Where is Colossus?\n\n   \nWho built Colossus?\n/new\n"
                                                 f"Who runs Colossus?\n{ending}"))
    assert main(["chat"]) == 0
    assert bot.asked == [("Where is Colossus?", []), ("Who built Colossus?", ["Where is Colossus?"]),
                         ("Who runs Colossus?", [])]
    out = capsys.readouterr().out
    assert "New conversation" in out
    # the answer is marked with brackets Markdown does not use; the document's own ** stays as it is
    assert "The **Colossus** supercomputer is in ⟦Memphis⟧." in out


def test_library_log_lines_only_with_verbose():
    import logging

    from chatbot.serve.cli import configure_logging

    seen = []

    class Collect(logging.Handler):
        def emit(self, record):
            seen.append(record.getMessage())

    root = logging.getLogger()
    handler = Collect()
    root.addHandler(handler)
    try:
        for verbose in (False, True):
            configure_logging(verbose=verbose)
            logging.getLogger("faiss.loader").info("Loading faiss with AVX512 support.")
            logging.getLogger("bm25s").warning("Building index from tokens")
            logging.getLogger("faiss.loader").error("faiss is broken")
            logging.getLogger("chatbot.qa.chatbot").warning("not indexed: a.txt (empty)")
        assert seen == ["faiss is broken", "not indexed: a.txt (empty)",
                        "Loading faiss with AVX512 support.", "Building index from tokens", "faiss is broken",
                        "not indexed: a.txt (empty)"]
    finally:
        configure_logging(verbose=False)
        root.removeHandler(handler)
        root.setLevel(logging.WARNING)


def test_feedback_export_turns_thumbs_down_into_eval_rows_to_review(tmp_path, capsys):
    from chatbot.tools.evaluation import validate_questions
    from chatbot.serve.feedback import feedback_row, record

    path = tmp_path / "feedback.jsonl"
    answer = {"question": "Who owns it?", "searched_for": "Who owns it? (Grok)", "answer": "Musk", "score": 0.4,
              "citations": [{"source": "a.txt", "title": "T", "start": 0, "end": 9, "text": "Musk owns",
                             "answer_start": 0, "answer_end": 4}]}
    record(path, feedback_row({"question": "Who owns it?", "answer": answer}, ["What is Grok?"], "down"))
    record(path, feedback_row({"question": "Who owns it?", "answer": answer}, ["What is Grok?"], "down", "It is xAI"))
    record(path, feedback_row({"question": "Кто такой Маск?", "answer": None}, [], "down"))
    record(path, feedback_row({"question": "What is Grok?", "answer": answer}, [], "up"))
    with open(path, "a", encoding="utf-8") as fh:
        fh.write("{not json\n")
    assert main(["feedback", "export", "--file", str(path), "--out", str(tmp_path / "review.jsonl")]) == 0
    rows = [json.loads(line) for line in (tmp_path / "review.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [(r["id"], r["question"], r["lang"]) for r in rows] == [("fb-001", "Who owns it?", "en"),
                                                                   ("fb-002", "Кто такой Маск?", "ru")]
    first = rows[0]
    assert first["history"] == ["What is Grok?"] and first["source"] == "a.txt" and first["answers"] == []
    assert first["review"]["bot_answer"] == "Musk" and first["review"]["comment"] == "It is xAI"
    # Not an eval row until a person says whether and how it is answerable.
    found = validate_questions(rows, tmp_path)
    assert any("answerable" in p for p in found.errors + found.warnings)
    assert main(["feedback", "export", "--file", str(tmp_path / "none.jsonl")]) == 2
    assert "No feedback file" in capsys.readouterr().err


def test_the_installed_chatbot_command_runs(tmp_path):
    """The console script that `pip install` writes (pyproject's [project.scripts]) starts the CLI."""
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    command = shutil.which("chatbot", path=str(Path(sys.executable).parent))
    assert command, "pip install -e . writes a `chatbot` command beside the interpreter"
    done = subprocess.run([command, "--help"], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 0 and "ask" in done.stdout and "serve-api" in done.stdout, done.stderr


def test_ask_explain_prints_the_passages_candidates_and_which_passages_were_not_read(capsys):
    from chatbot.serve.cli import _print_explanation
    from chatbot.types import Candidate, Explanation, RetrievedPassage

    read, unread = (RetrievedPassage(text=t, source=f"{i}.txt", title="T", start=0, end=len(t), rank=i)
                    for i, t in enumerate(("Grok runs on X.", "Nothing here.")))
    candidate = Candidate(text="X", start=13, end=14, passage=read, reader_probability=0.6,
                          features={"closeness": 0.8}, confidence=0.7)
    _print_explanation(Explanation(searched_for="Where does Grok run?", language="en", passages=[read, unread],
                                   candidates=[candidate], threshold=0.36, decision="answered 'X'"))
    out = capsys.readouterr().out.splitlines()
    passage_lines = [line for line in out if line.startswith(("  1. ", "  2. "))]
    assert "not read" not in passage_lines[0] and "not read: no span in it could beat the answer" in passage_lines[1]
    assert any("0.700  'X' from passage 1: closeness 0.80" in line for line in out)
    assert out[1] == "Why: answered 'X'"
