"""The web chat's Documents tab: the list of documents, upload (several files at once) with a
progress bar, and removal, over :class:`~chatbot.ingest.documents.DocumentLibrary`.

Indexing runs on its own event queue, so the chat keeps answering (over the index as it was)
while a document is embedded. Adding and removing need ``--allow-uploads``.
"""

from __future__ import annotations

import logging
from pathlib import Path

import gradio as gr

from ..config import Settings
from ..errors import ChatbotError
from ..ingest.converters import SUPPORTED_SUFFIXES
from ..ingest.documents import UPLOADS_OFF, DocumentInfo, DocumentLibrary, list_documents

log = logging.getLogger(__name__)

COLUMNS = ["Name", "Status", "Title", "Language", "Pages", "Chunks", "Note"]
NOT_LOADED = "The documents are listed once the chatbot has loaded."


def _row(d: DocumentInfo) -> list:
    return [d.name, d.status, d.title or "", d.language or "", d.pages or "", d.chunks, d.note]


def _summary(results: list[DocumentInfo]) -> str:
    """One line per uploaded file: indexed (with pages and chunks) or why not."""
    lines = []
    for d in results:
        if d.status == "indexed":
            pages = f"{d.pages} pages, " if d.pages else ""
            lines.append(f"- **{_md(d.name)}**: indexed ({pages}{d.chunks} passages){'. ' + _md(d.note) if d.note else ''}")
        else:
            lines.append(f"- **{_md(d.name)}**: not added: {_md(d.note)}")
    return "\n".join(lines)


def _md(text: str) -> str:
    from .web import escape_text

    return escape_text(text)


class DocumentsTab:
    """Event handlers of the tab (separate from the layout, so that they can be tested)."""

    def __init__(self, backend, settings: Settings):
        self.backend = backend
        self.settings = settings
        self._library: DocumentLibrary | None = None

    def library(self) -> DocumentLibrary:
        if self._library is None:
            self._library = DocumentLibrary(self.backend.bot(), self.settings)
        return self._library

    def listing(self) -> tuple[list[list], dict]:
        """The table's rows and the removal choices."""
        if not self.backend.ready or self.backend.error is not None:
            return [], gr.update(choices=[])
        try:
            documents = self.library().list()
        except ChatbotError as exc:  # the folder changed and the update failed: the list is the index's
            log.warning("%s", exc)
            documents = list_documents(self.backend.bot().index)
        return [_row(d) for d in documents], gr.update(choices=[d.name for d in documents], value=None)

    def upload(self, paths: list[str] | None, progress=gr.Progress()) -> tuple[str, list[list], dict, None]:
        """Add the uploaded files (Gradio's copies keep the original names) and index them."""
        if not paths:
            return "Choose one or more files first.", *self.listing(), None

        def report(done: int, total: int) -> None:
            progress(done / total, desc=f"Indexing: {done} of {total} passages embedded")

        progress(0, desc="Reading the files")
        try:
            results = self.library().add([(Path(p).name, Path(p)) for p in paths], on_progress=report)
            message = _summary(results)
        except ChatbotError as exc:
            log.warning("adding documents failed: %s", exc)
            message = _md(str(exc))
        return message, *self.listing(), None

    def remove(self, name: str | None) -> tuple[str, list[list], dict]:
        if not name:
            return "Choose a document to remove.", *self.listing()
        try:
            self.library().remove(name)
            message = f"Removed **{_md(name)}**."
        except ChatbotError as exc:
            message = _md(str(exc))
        return message, *self.listing()


def documents_tab(backend, settings: Settings) -> tuple[DocumentsTab, gr.Dataframe, gr.Dropdown]:
    """Lay out the Documents tab's content (inside a ``gr.Tab``) and wire its events; returns the
    handlers, the table and the removal choice (for the events that list the documents)."""
    tab = DocumentsTab(backend, settings)
    table = gr.Dataframe(headers=COLUMNS, value=[], interactive=False, wrap=True, elem_id="documents",
                         label="Documents in the corpus folder")
    refresh = gr.Button("Refresh the list", elem_id="refresh-documents", size="sm")
    if settings.allow_uploads:
        limit = f"{settings.max_file_bytes / 2**20:g} MB"
        files = gr.File(file_count="multiple", file_types=list(SUPPORTED_SUFFIXES), type="filepath",
                        label=f"Add documents ({', '.join(SUPPORTED_SUFFIXES)}; at most {limit} each)",
                        elem_id="upload")
        add = gr.Button("Add and index", variant="primary", elem_id="add-documents")
        with gr.Row():
            choice = gr.Dropdown(choices=[], label="Remove a document", scale=4, elem_id="remove-choice")
            remove = gr.Button("Remove", variant="stop", scale=1, elem_id="remove-document")
        result = gr.Markdown(elem_id="documents-result")
        add.click(tab.upload, [files], [result, table, choice, files], concurrency_id="documents",
                  concurrency_limit=1, api_visibility="private")
        remove.click(tab.remove, [choice], [result, table, choice], concurrency_id="documents",
                     concurrency_limit=1, api_visibility="private")
    else:
        choice = gr.Dropdown(visible=False)
        gr.Markdown(_md(UPLOADS_OFF), elem_id="uploads-off")
    refresh.click(tab.listing, outputs=[table, choice], concurrency_id="documents", api_visibility="private")
    return tab, table, choice
