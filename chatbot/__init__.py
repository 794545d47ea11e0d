"""Offline extractive question answering over a document corpus, with cited passages."""

__version__ = "0.1.0"
