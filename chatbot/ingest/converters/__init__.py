"""File converters: one module per format, each with ``SUFFIXES`` and ``convert(data: bytes) -> Extracted``.

A new format is one new module here: it is found by its ``SUFFIXES``. Converters raise
:class:`ConversionError` with a reason for a file they cannot read, and never run anything a file
contains (scripts, macros, links).
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from pathlib import Path

from .base import ConversionError, Extracted

__all__ = ["CONVERTERS", "ConversionError", "Extracted", "SUPPORTED_SUFFIXES", "convert", "unsupported"]


def _discover() -> dict[str, Callable[[bytes], Extracted]]:
    converters = {}
    for info in pkgutil.iter_modules(__path__):
        module = importlib.import_module(f"{__name__}.{info.name}")
        for suffix in getattr(module, "SUFFIXES", ()):
            converters[suffix] = module.convert
    return converters


CONVERTERS = _discover()
SUPPORTED_SUFFIXES = tuple(sorted(CONVERTERS))


def unsupported(name: str) -> str | None:
    """Why a file called ``name`` is not read (its type has no converter), or None when it is."""
    suffix = Path(name).suffix
    if suffix.lower() in CONVERTERS:
        return None
    return f"unsupported file type {suffix or '(no extension)'!r}: the types indexed are {', '.join(SUPPORTED_SUFFIXES)}"


def convert(name: str, data: bytes) -> Extracted:
    """The text of the file ``name`` (its type is its suffix) holding ``data``; ``ConversionError``
    when its type is unsupported or it is unreadable."""
    if reason := unsupported(name):
        raise ConversionError(reason)
    return CONVERTERS[Path(name).suffix.lower()](data)
