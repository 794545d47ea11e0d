"""The documents of a running chatbot: list them, add uploaded files, remove one.

The corpus folder stays the one source of truth: an upload is checked (type, size, and that its
converter reads it), written into the folder under a sanitised name, and indexed by
:meth:`~chatbot.qa.chatbot.Retriever.refresh`, which embeds only that document's passages; removing
deletes the file and its passages the same way. The web chat's Documents tab and the HTTP API's
``/documents`` are thin faces over :class:`DocumentLibrary`.
"""

from __future__ import annotations

import os
import re
import tempfile
import threading
import unicodedata
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from ..config import size_limit_message
from .corpus import CORPUS_CONFIG_FILES, load_file
from ..errors import ChatbotError
from .converters import unsupported

MAX_NAME_CHARS = 120
UPLOADS_OFF = ("Uploads are off: start the server with --allow-uploads to add or remove documents "
               "(anyone who can reach the port could then write files into the corpus folder).")
_UNSAFE = re.compile(r"[^\w.\- ]+")


class DocumentError(ChatbotError):
    """A document request that cannot be done; the message says why."""


class UploadsOff(DocumentError):
    """Adding or removing documents when the server was not started with ``--allow-uploads``."""


class NoSuchDocument(DocumentError):
    """Removing a document that the corpus folder does not have."""


@dataclass(frozen=True)
class DocumentInfo:
    """One file of the corpus folder as the documents list shows it: indexed (``status="indexed"``,
    with title, language, pages and chunks) or skipped (``status="skipped"``, with the reason)."""

    name: str
    status: str
    title: str | None = None
    language: str | None = None
    pages: int | None = None
    chunks: int = 0
    note: str = ""  # the reason it was skipped, or what to know about it ("its JavaScript was not run")

    def to_dict(self) -> dict:
        return asdict(self)


def sanitize_name(name: str) -> str:
    """A safe file name for an uploaded file called ``name``: its last path part, NFC, letters,
    digits, spaces, dots, dashes and underscores only (others become "_"), no leading dot, at most
    ``MAX_NAME_CHARS`` characters with its extension kept. ``ValueError`` when nothing is left."""
    base = re.split(r"[\\/]", unicodedata.normalize("NFC", str(name)))[-1]
    base = _UNSAFE.sub("_", "".join(c for c in base if c.isprintable())).strip(" ._")
    stem, suffix = os.path.splitext(base)
    suffix = suffix[:16]
    base = stem[: MAX_NAME_CHARS - len(suffix)].rstrip(" .") + suffix
    if not stem.strip(" ._-") or base in CORPUS_CONFIG_FILES:
        raise ValueError(f"{name!r} is not a usable file name: rename the file and upload it again.")
    return base


def list_documents(index) -> list[DocumentInfo]:
    """The indexed documents of ``index`` (a :class:`~chatbot.index.store.VectorIndex`) and the skipped
    files with their reasons, by name."""
    infos = [DocumentInfo(d["source"], "indexed", d.get("title"), d.get("lang"), d.get("pages"), d.get("chunks", 0),
                          "; ".join(d.get("metadata", {}).get("notes", [])))
             for d in index.documents]
    if not infos:  # an index written before documents.jsonl existed
        chunks: dict[str, list] = {}
        for p in index.passages:
            chunks.setdefault(p.source, []).append(p)
        infos = [DocumentInfo(name, "indexed", ps[0].title, ps[0].lang, None, len(ps)) for name, ps in chunks.items()]
    infos += [DocumentInfo(name, "skipped", note=reason) for name, reason in index.manifest.get("skipped", {}).items()]
    return sorted(infos, key=lambda d: d.name)


class DocumentLibrary:
    """Documents of a loaded chatbot (a :class:`~chatbot.qa.chatbot.Retriever`): ``list``, ``add``, ``remove``.

    ``add`` and ``remove`` need ``settings.allow_uploads``; they run one at a time, and questions
    are answered meanwhile over the index as it was.
    """

    def __init__(self, bot, settings):
        self.bot = bot
        self.settings = settings
        self._lock = threading.Lock()

    @property
    def corpus_dir(self) -> Path:
        return Path(self.settings.corpus_dir)

    def list(self) -> list[DocumentInfo]:
        self.bot.refresh(wait=False)  # files dropped into the folder show up here too
        return list_documents(self.bot.index)

    def check_allowed(self) -> None:
        """``UploadsOff`` unless the settings allow adding and removing documents."""
        if not self.settings.allow_uploads:
            raise UploadsOff(UPLOADS_OFF)

    def check(self, name: str, size: int) -> str | None:
        """Why a file called ``name`` of ``size`` bytes cannot be added (type or size), or None."""
        return unsupported(name) or (size_limit_message(size, self.settings.max_file_bytes)
                                     if size > self.settings.max_file_bytes else None)

    def add(self, files: list[tuple[str, Path]], on_progress: Callable[[int, int], None] | None = None
            ) -> list[DocumentInfo]:
        """Add the uploaded ``files`` (``(original name, path of the uploaded copy)``) and index them.

        Each is checked before it is written: a file of the wrong type, too large, or that its
        converter cannot read (a zip renamed .docx, a damaged PDF) is refused, with the reason, and not
        written. The rest go into the corpus folder (a file of the same name is replaced) and are
        indexed together. Returns one :class:`DocumentInfo` per file, in order.
        """
        self.check_allowed()
        results: list[tuple[str, str | None]] = []  # (name, why it was refused)
        with self._lock:
            for original, path in files:
                try:
                    name = sanitize_name(original)
                except ValueError as exc:
                    results.append((str(original), str(exc)))
                    continue
                reason = self.check(name, Path(path).stat().st_size) or self._unreadable(Path(path), name)
                if reason is None:
                    self._write(Path(path), name)
                results.append((name, reason))
            if any(reason is None for _, reason in results):
                self.bot.refresh(on_progress)
        listed = {d.name: d for d in list_documents(self.bot.index)}
        return [DocumentInfo(name, "refused", note=reason) if reason
                else listed.get(name, DocumentInfo(name, "skipped", note="not in the index after the update"))
                for name, reason in results]

    def remove(self, name: str) -> None:
        """Delete the document file ``name`` from the corpus folder and its passages from the index."""
        self.check_allowed()
        path = self.corpus_dir / str(name)
        if (name in CORPUS_CONFIG_FILES or path.name != name or name.startswith(".")
                or not path.is_file()):
            raise NoSuchDocument(f"No document called {name!r} in the corpus folder.")
        with self._lock:
            path.unlink()
            self.bot.refresh()

    def _unreadable(self, path: Path, name: str) -> str | None:
        """Why the converter cannot read the uploaded file (the reason it would be skipped), or None."""
        doc, reason = load_file(path, {}, self.settings.max_file_bytes, name=name)
        return None if doc is not None else reason

    def _write(self, path: Path, name: str) -> None:
        """Copy the uploaded file into the corpus folder as ``name``, whole or not at all."""
        fd, tmp = tempfile.mkstemp(prefix=".upload-", dir=self.corpus_dir)
        try:
            with os.fdopen(fd, "wb") as out, open(path, "rb") as src:
                while block := src.read(1 << 20):
                    out.write(block)
            os.replace(tmp, self.corpus_dir / name)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
