"""PDF (``.pdf``): the text of each page, by PDFium (pypdfium2), with where each page starts.

PDFium here is a text extractor only: a PDF's JavaScript, forms and embedded files are never run
or opened; a PDF that has JavaScript is indexed as text with a note saying so.
"""

from __future__ import annotations

import re

from .base import ConversionError, Extracted, join_pages

SUFFIXES = (".pdf",)
_SCRIPT_MARKERS = re.compile(rb"/(?:JavaScript|JS)\b")


def convert(data: bytes) -> Extracted:
    import pypdfium2 as pdfium

    if not data.startswith(b"%PDF-"):
        raise ConversionError("not a PDF file (it does not start with %PDF-)")
    try:
        document = pdfium.PdfDocument(data)
    except pdfium.PdfiumError as exc:
        reason = "it is password-protected" if "password" in str(exc).lower() else f"it is damaged ({exc})"
        raise ConversionError(f"unreadable PDF: {reason}") from None
    try:
        pages = []
        for page in document:
            textpage = page.get_textpage()
            pages.append(textpage.get_text_bounded().replace("\r\n", "\n").replace("\r", "\n").strip())
            textpage.close()
            page.close()
        info = {k.lower(): v for k, v in document.get_metadata_dict(skip_empty=True).items()}
    finally:
        document.close()
    if not any(pages):
        raise ConversionError("the PDF has no text layer (a scan?): OCR it first")
    text, starts = join_pages(pages)
    notes = ("it contains JavaScript, which was not run: only its text is indexed",) \
        if _SCRIPT_MARKERS.search(data) else ()
    metadata = {"author": info["author"]} if info.get("author") else {}
    return Extracted(text, starts, info.get("title") or None, metadata, notes)
