"""Markdown (``.md``): rendered to readable text by markdown-it (CommonMark), not shown as markup.

Headings, paragraphs and list items become lines (items start with "• "), links keep their text,
images their alt text, code its content. Raw HTML in the file stays as literal text: it is never
rendered (the web chat shows it escaped), and the corpus loader drops <script>/<style> blocks.
"""

from __future__ import annotations

from markdown_it import MarkdownIt

from .base import Extracted
from .text import convert as convert_text

SUFFIXES = (".md", ".markdown")
_PARSER = MarkdownIt("commonmark")
_BLOCK_TEXT = {"fence", "code_block", "html_block"}


def convert(data: bytes) -> Extracted:
    source = convert_text(data).text
    lines: list[str] = []
    bullet = ""
    for token in _PARSER.parse(source):
        if token.type == "list_item_open":
            bullet = "• "
        elif token.type == "inline":
            lines.append(bullet + _inline_text(token.children or []))
            bullet = ""
        elif token.type in _BLOCK_TEXT:
            lines += [token.content.rstrip("\n"), ""]
        elif token.type in ("heading_close", "bullet_list_close", "ordered_list_close") or (
                token.type == "paragraph_close" and not token.hidden):
            lines.append("")
    text = "\n".join(lines).strip("\n")
    while "\n\n\n" in text:
        text = text.replace("\n\n\n", "\n\n")
    return Extracted(text + "\n")


def _inline_text(children) -> str:
    parts = []
    for child in children:
        if child.type in ("text", "code_inline", "html_inline"):
            parts.append(child.content)
        elif child.type == "image":
            parts.append(child.content)  # the alt text
        elif child.type in ("softbreak", "hardbreak"):
            parts.append("\n")
    return "".join(parts)
