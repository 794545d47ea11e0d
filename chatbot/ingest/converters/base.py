"""What every converter returns, and the error it raises for a file it cannot read."""

from __future__ import annotations

from dataclasses import dataclass, field


class ConversionError(ValueError):
    """A file that cannot be converted; the message says why, for the list of skipped files."""


@dataclass(frozen=True)
class Extracted:
    """A file's text as a converter extracted it.

    ``text`` is what gets indexed and what citations quote (offsets index it). ``pages`` holds the
    offset where each page starts (PDF; empty for formats without pages); ``title`` and
    ``metadata`` (author, date, …) are the file's own when it has them. ``notes`` are things the
    user should know about the file (``"its JavaScript was ignored"``), shown in the documents list.
    """

    text: str
    pages: tuple[int, ...] = ()
    title: str | None = None
    metadata: dict = field(default_factory=dict)
    notes: tuple[str, ...] = ()


def join_pages(page_texts: list[str]) -> tuple[str, tuple[int, ...]]:
    """Page texts joined by a form feed between blank lines, and where each page starts."""
    starts, parts, pos = [], [], 0
    for i, page in enumerate(page_texts):
        if i:
            parts.append("\n\f\n")
            pos += 3
        starts.append(pos)
        parts.append(page)
        pos += len(page)
    return "".join(parts), tuple(starts)
