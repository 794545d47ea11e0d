"""Exceptions the chatbot raises for problems a user can fix (models, index files)."""


class ChatbotError(Exception):
    """Base class: the message says what went wrong and how to fix it."""


class ModelLoadError(ChatbotError):
    """A model is missing or cannot be loaded."""


class IndexBuildError(ChatbotError):
    """Building the on-disk index failed; the previous index is left untouched."""


class IndexLoadError(ChatbotError):
    """The on-disk index is missing, truncated, corrupt or inconsistent."""
