"""Web pages (``.html``, ``.htm``): the main content by trafilatura (navigation, footers, scripts
and other page furniture removed), with the page's title, author and date. Nothing in the page is
run: scripts and event handlers are markup that the extractor drops."""

from __future__ import annotations

from .base import ConversionError, Extracted
from .text import convert as convert_text

SUFFIXES = (".html", ".htm")


def convert(data: bytes) -> Extracted:
    import trafilatura

    html = convert_text(data).text
    try:
        found = trafilatura.bare_extraction(html, with_metadata=True, include_comments=False, include_tables=True,
                                            include_links=False, include_images=False)
    except Exception as exc:  # lxml's errors on a page it cannot parse
        raise ConversionError(f"unreadable HTML ({type(exc).__name__}: {exc})") from None
    if found is None or not (found.text or "").strip():
        raise ConversionError("no main text found in the page")
    metadata = {k: getattr(found, k) for k in ("author", "date", "sitename", "url") if getattr(found, k, None)}
    return Extracted(found.text.strip() + "\n", title=found.title or None, metadata=metadata)
