"""Checking and normalising what users type, shared by every face (web, HTTP, CLI, library).

Light on purpose (no model or index imports), so the web app can use it before anything loads.
Text can reach the faces holding lone surrogates (JSON ``"\\ud800"``, a command-line argument or
a line that is not valid UTF-8): they cannot be encoded, so they are removed like control characters
before anything else sees the text (``without_controls``) or, where text is shown as given,
replaced by U+FFFD (``valid_text``).
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

# Unicode categories removed from questions: control characters and lone surrogates.
_REMOVED = frozenset({"Cc", "Cs"})
_SURROGATE = re.compile("[\ud800-\udfff]")


def has_words(text: str) -> bool:
    """True when ``text`` holds at least one letter or digit, in any script."""
    return any(ch.isalnum() for ch in text)


def check_question(question: Any, max_chars: int) -> str | None:
    """A friendly message when ``question`` can't be asked (empty, too long, no words), else ``None``."""
    if not isinstance(question, str) or not question.strip():
        return "Please type a question first."
    if len(question) > max_chars:
        return f"That question is too long ({len(question)} characters): please keep it under {max_chars}."
    if not has_words(question):
        return "Please ask a question in words: I can't search for punctuation alone."
    return None


def without_controls(text: str) -> str:
    """Control characters (NUL, ESC, DEL, C1 ...) and lone surrogates become spaces; format characters
    such as right-to-left marks and emoji joiners are kept."""
    return "".join(" " if unicodedata.category(ch) in _REMOVED else ch for ch in text)


def valid_text(text: str) -> str:
    """``text`` with each lone surrogate replaced by U+FFFD, so that it can be encoded and shown."""
    return _SURROGATE.sub("\ufffd", text)


def clip(text: str, max_chars: int) -> str:
    """``text`` cut to ``max_chars`` at a word boundary (mid-word when its first word is longer)."""
    if len(text) <= max_chars:
        return text
    cut = text[:max_chars]
    return cut.rsplit(" ", 1)[0] if " " in cut else cut


def clean_question(question, max_chars: int) -> str:
    """The question with control characters and lone surrogates removed, whitespace collapsed, cut
    to ``max_chars`` at a word boundary; ``ValueError`` when nothing is left."""
    if not isinstance(question, str) or not question.strip():
        raise ValueError("Please type a question: it is empty.")
    question = " ".join(without_controls(question).split())
    if not question:
        raise ValueError("Please type a question: it is empty.")
    return clip(question, max_chars)


def clean_history(history: Any, max_turns: int, max_chars: int) -> list[str]:
    """The last ``max_turns`` entries of ``history`` (earlier questions or answers, oldest first), each
    cleaned as a question is and cut to ``max_chars``: the bound on the work one request's history can
    cause. Entries that are not text or hold nothing become ``""`` (kept, so that questions and answers
    stay aligned); ``ValueError`` when ``history`` is not a list."""
    if history is None:
        return []
    if isinstance(history, (str, bytes)) or not isinstance(history, (list, tuple)):
        raise ValueError("The history must be a list of the earlier questions, oldest first.")
    entries = list(history)[-max_turns:] if max_turns > 0 else []
    return [clip(" ".join(without_controls(e).split()), max_chars) if isinstance(e, str) else "" for e in entries]
