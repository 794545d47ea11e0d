"""Bounded load test (CI size): 50 concurrent sessions of 3 questions, follow-ups included, against the web
app (gradio_client) and the HTTP API (httpx), in-process on loopback. Full figures: scripts/load_test.py."""

import pytest

from chatbot.serve.http_api import create_app
from chatbot.tools.loadtest import gradio_session, http_session, run_load
from chatbot.serve.web import build_app

SESSIONS, QUESTIONS = 50, 3
# Whole-process RSS: the servers *and* 50 clients (gradio_client threads and buffers, about 250 MB
# measured). scripts/load_test.py measures the server processes alone (flat within ~40 MB).
RSS_GROWTH_MB = 400


@pytest.mark.parametrize("face", ["gradio", "http"])
def test_concurrent_sessions_get_the_single_user_answers(face, real_bot, local_servers):
    if face == "gradio":
        url = local_servers.gradio(build_app(lambda: real_bot, real_bot.settings))
        result = run_load(face, lambda: gradio_session(url), SESSIONS, QUESTIONS)
    else:
        url = local_servers.http(create_app(real_bot))
        result = run_load(face, lambda: http_session(url), SESSIONS, QUESTIONS)
    summary = result.summary()
    print(summary)
    assert result.errors == [] and result.mismatches == []
    assert summary["questions"] == SESSIONS * QUESTIONS
    assert summary["rss_after_mb"] - summary["rss_before_mb"] < RSS_GROWTH_MB, summary


def test_sessions_sending_the_largest_history_leave_everyone_else_their_answers(real_bot, local_servers):
    """Hostile clients (every question with ``max_history_turns`` questions of ``max_question_chars``
    characters) are answered without error, and the other sessions still get the single-user answers."""
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location("load_test", Path(__file__).parents[1] / "scripts" / "load_test.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    history = script.hostile_history(real_bot.settings)
    assert len(history) == real_bot.settings.max_history_turns
    assert all(len(h) <= real_bot.settings.max_question_chars for h in history)

    url = local_servers.http(create_app(real_bot))
    result = run_load("http", lambda: http_session(url), 8, QUESTIONS, hostile=4, hostile_history=history)
    summary = result.summary()
    assert result.errors == [] and result.mismatches == [], summary
    assert len(result.hostile_latencies_ms) == 4 * QUESTIONS and summary["hostile_sessions"] == 4
