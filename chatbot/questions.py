"""Checking and normalising what users type, shared by every face (web, HTTP, CLI, library).

Light on purpose (no model or index imports), so the web app can use it before anything loads.
"""

from __future__ import annotations

import unicodedata
from typing import Any


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
    """Control characters (NUL, ESC, DEL, C1 ...) become spaces; format characters such as
    right-to-left marks and emoji joiners are kept."""
    return "".join(" " if unicodedata.category(ch) == "Cc" else ch for ch in text)


def clean_question(question, max_chars: int) -> str:
    """The question with control characters removed, whitespace collapsed, cut to ``max_chars``
    at a word boundary; ``ValueError`` when nothing is left."""
    if not isinstance(question, str) or not question.strip():
        raise ValueError("Please type a question: it is empty.")
    question = " ".join(without_controls(question).split())
    if not question:
        raise ValueError("Please type a question: it is empty.")
    if len(question) > max_chars:
        cut = question[:max_chars]
        question = cut.rsplit(" ", 1)[0] if " " in cut else cut
    return question
