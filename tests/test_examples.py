"""Every example question the product ships answers correctly: the web chat's (``corpus/chatbot.json``), the
README's (CLI, Python, HTTP, Gradio client) and the HTTP API schema's.

The examples are read from where a user sees them, so a new one without an expected answer here fails
``test_every_shipped_example_has_an_expected_answer`` until one is written down."""

import json
import re

import pytest

from chatbot.config import CORPUS_SETTINGS_FILE
from chatbot.serve.http_api import AskRequest

from conftest import ROOT

# question -> (earlier questions, a word the answer must contain; None: the bot must not answer)
EXPECTED = {
    "Which platform is Grok integrated into?": ((), "X"),
    "Who is the technical advisor of the AI Infrastructure Partnership?": ((), "Nvidia"),
    "Сколько денег уже собрал стартап Маска?": ((), "12"),
    "What is the capital of France?": ((), None),
    "Who wrote the report on the Oracle deal?": ((), "Burr"),
    "How many GPUs does it house?": (("What is xAI's data center in Memphis called?",), "million"),
}

# Misses of the shipped reader and policy (measured; evals/README.md): each must start passing to be taken off.
KNOWN_MISSES = {
    "Which platform is Grok integrated into?": "“X” is read from the Russian article only, under the threshold",
    "Who is the technical advisor of the AI Infrastructure Partnership?":
        "“Nvidia and Elon Musk” from the article's first passage outranks “Nvidia”",
    "Who wrote the report on the Oracle deal?": "“Elon Musk” from the headline outranks the byline's “Anthony Burr”",
}

_README_QUESTIONS = (
    re.compile(r'chatbot ask "([^"]+)"'),  # the CLI
    re.compile(r'\.ask\("([^"]+)"'),  # Python
    re.compile(r'predict\(question="([^"]+)"'),  # the Gradio client
    re.compile(r'"question": "([^"]+)"'),  # curl
)


def shipped_examples() -> dict[str, str]:
    """question -> where it is shown."""
    found = {}
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for pattern in _README_QUESTIONS:
        found.update({q: "README.md" for q in pattern.findall(readme)})
    web = json.loads((ROOT / "corpus" / CORPUS_SETTINGS_FILE).read_text(encoding="utf-8"))["examples"]
    found.update({q: "the web chat" for q in web})
    found.update({q: "the HTTP API schema" for q in AskRequest.model_json_schema()["properties"]["question"]["examples"]})
    return found


def test_every_shipped_example_has_an_expected_answer():
    examples = shipped_examples()
    assert len(examples) >= 5  # the patterns still find the README's, the web chat's and the schema's examples
    missing = {q: where for q, where in examples.items() if q not in EXPECTED}
    assert not missing, f"example questions without an expected answer in {__file__}: {missing}"
    # and the README's follow-up is asked after the question it follows
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for question, (history, _) in EXPECTED.items():
        for earlier in history:
            assert f'ask("{question}", history=["{earlier}"])' in readme


@pytest.mark.parametrize("question", [
    pytest.param(q, marks=pytest.mark.xfail(strict=True, reason=KNOWN_MISSES[q])) if q in KNOWN_MISSES else q
    for q in EXPECTED])
def test_every_shipped_example_answers_correctly(real_bot, question):
    history, expected = EXPECTED[question]
    answer = real_bot.ask(question, history=list(history))
    if expected is None:
        assert answer.text is None, f"answered {answer.text!r} ({answer.score:.2f}) where the corpus does not say"
    else:
        assert answer.text is not None, f"no answer ({answer.score:.2f})"
        assert expected in re.findall(r"\w+", answer.text), answer.text
        assert answer.citations and expected in answer.citations[0].text
