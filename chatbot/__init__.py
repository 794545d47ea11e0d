"""Offline extractive question answering over a document corpus, with cited passages.

Use it from your own program::

    from chatbot import Retriever
    retriever = Retriever.load(index_dir="index", corpus_dir="corpus")
    passages = retriever.search("Where is the Colossus supercomputer?", k=3)

``Chatbot.load(...).ask(question, history)`` answers with citations. Importing
``chatbot`` is cheap: the names below load their modules (and models) on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

__version__ = "0.1.0"

_LAZY = {
    "Retriever": "qa.chatbot",
    "Chatbot": "qa.chatbot",
    "Settings": "config",
    "Passage": "types",
    "Answer": "types",
    "Citation": "types",
    "ChatbotError": "errors",
}
__all__ = ["__version__", *_LAZY]

if TYPE_CHECKING:
    from .config import Settings
    from .errors import ChatbotError
    from .qa.chatbot import Chatbot, Retriever
    from .types import Answer, Citation, Passage


def __getattr__(name: str):
    """Import the module that defines ``name`` on first access."""
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    globals()[name] = value
    return value
