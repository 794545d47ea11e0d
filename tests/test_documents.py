"""PDF, DOCX, HTML and Markdown documents: converters, pages and offsets, hostile files, the
incremental index (equal to a full rebuild), and the document library (upload, list, remove)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from sample_documents import (
    DOCX_ANSWER, DOCX_TITLE, HTML_FOOTER, HTML_NAV, HTML_PAGE, PDF_ANSWER, PDF_PAGES, make_docx, make_pdf,
    make_pdf_with_javascript, make_zip_as_docx,
)

from chatbot.ingest.chunking import chunk_document
from chatbot.config import Settings, UiSettings, max_file_bytes
from chatbot.ingest.corpus import load_corpus
from chatbot.index.store import DOCUMENTS_FILE, load_index
from chatbot.ingest.documents import DocumentError, DocumentLibrary, sanitize_name
from chatbot.index.sync import ensure_index
from chatbot.qa.chatbot import Retriever

ARTICLE = ("Notes from the Quillon town council\n\nThe town council of Quillon voted on Monday to build a new "
           "library beside the harbour. Construction starts in the spring and should take two years.\n")


def write_samples(folder):
    folder.mkdir(exist_ok=True)
    (folder / "council.txt").write_text(ARTICLE, encoding="utf-8")
    (folder / "harbour.pdf").write_bytes(make_pdf())
    (folder / "orchard.docx").write_bytes(make_docx())
    (folder / "bridge.html").write_text(HTML_PAGE, encoding="utf-8")
    return folder


@pytest.fixture
def samples(tmp_path):
    docs, skipped = load_corpus(write_samples(tmp_path / "corpus"))
    assert skipped == []
    return {d.source: d for d in docs}


def test_pdf_has_pages_and_passages_cite_their_page(samples):
    doc = samples["harbour.pdf"]
    assert len(doc.pages) == 3 and doc.title == "Harbour Authority Annual Report"
    for number, (heading, body) in enumerate(PDF_PAGES, 1):
        start = doc.pages[number - 1]
        end = doc.pages[number] if number < len(doc.pages) else len(doc.text)
        page_text = " ".join(doc.text[start:end].split())
        assert page_text.startswith(heading) and body in page_text
        assert doc.page_at(start) == number == doc.page_at(end - 1)
    passages = chunk_document(doc)
    assert {p.page for p in passages} == {1, 2, 3}
    for p in passages:  # offsets index the extracted text; no passage crosses a page break
        assert doc.text[p.start:p.end] == p.text and "\f" not in p.text
        assert doc.page_at(p.start) == p.page == doc.page_at(p.end - 1)
    (answer,) = [p for p in passages if PDF_ANSWER in p.text]
    assert answer.page == 2


def test_docx_paragraphs_tables_and_properties(samples):
    doc = samples["orchard.docx"]
    assert doc.title == DOCX_TITLE and doc.metadata["author"] == "Mel Arden" and doc.pages == ()
    assert DOCX_ANSWER in doc.content() and "Members | 64" in doc.content()


def test_html_main_text_without_navigation_scripts_or_footer(samples):
    doc = samples["bridge.html"]
    assert doc.title == "Kettle Valley opens a new bridge"
    assert doc.metadata["author"] == "Jane Roe" and doc.metadata["date"] == "2024-03-02"
    assert "9,000 cars a day" in doc.text
    for furniture in (HTML_NAV, HTML_FOOTER, "Most read", "Home", "__pwned", "onclick", "color: red", "injected"):
        assert furniture not in doc.text, furniture


def test_markdown_is_indexed_as_readable_text(tmp_path):
    (tmp_path / "guide.md").write_text(
        "# Ferry guide\n\nThe **night ferry** leaves at [nine o'clock](http://example.com/times).\n\n"
        "- Tickets at the kiosk\n- Bikes go free\n\n![the harbour map](map.png)\n", encoding="utf-8")
    (doc,), _ = load_corpus(tmp_path)
    assert doc.title == "Ferry guide"
    assert doc.text == ("Ferry guide\n\nThe night ferry leaves at nine o'clock.\n\n"
                        "• Tickets at the kiosk\n• Bikes go free\n\nthe harbour map\n")


def test_hostile_files_are_refused_or_indexed_as_text_with_a_reason(tmp_path):
    (tmp_path / "script.pdf").write_bytes(make_pdf_with_javascript("The lighthouse keeper is Tomas Brell.",
                                                                   "app.alert('pwned')"))
    (tmp_path / "archive.docx").write_bytes(make_zip_as_docx())
    (tmp_path / "random.docx").write_bytes(os.urandom(2000))
    (tmp_path / "fake.pdf").write_bytes(b"<html>not a pdf</html>")
    with open(tmp_path / "huge.pdf", "wb") as fh:  # 200 MB, sparse: refused by its size, never read
        fh.truncate(200 * 2**20)
    (tmp_path / "handlers.html").write_text(
        '<html><body onload="steal()"><p onmouseover="steal()">The harbour opens at six in the morning '
        'every day of the week, and closes at ten in the evening.</p><a href="javascript:steal()">x</a>'
        "</body></html>", encoding="utf-8")
    docs, skipped = load_corpus(tmp_path)
    reasons = {s.source: s.reason for s in skipped}
    assert reasons["archive.docx"] == "not a Word document (a zip file without word/document.xml)"
    assert reasons["random.docx"].startswith("not a Word document (not a zip file")
    assert reasons["fake.pdf"] == "not a PDF file (it does not start with %PDF-)"
    assert reasons["huge.pdf"].startswith("too large (200.0 MB; the limit is 10 MB: set CHATBOT_MAX_FILE_MB")
    by = {d.source: d for d in docs}
    assert set(by) == {"script.pdf", "handlers.html"}
    assert by["script.pdf"].text == "The lighthouse keeper is Tomas Brell."
    assert by["script.pdf"].metadata["notes"] == ["it contains JavaScript, which was not run: only its text is indexed"]
    assert "steal" not in by["handlers.html"].text and "harbour opens at six" in by["handlers.html"].text


def test_size_limit_setting(monkeypatch):
    monkeypatch.setenv("CHATBOT_MAX_FILE_MB", "0.5")
    assert Settings.from_env().max_file_bytes == 2**19
    for bad in ("0", "-1", "lots", "inf", "nan"):
        with pytest.raises(ValueError, match="CHATBOT_MAX_FILE_MB / --max-file-mb must be a positive number"):
            max_file_bytes(bad)


def test_ui_settings_come_from_the_corpus_and_title(tmp_path):
    assert UiSettings.for_corpus(tmp_path) == UiSettings()
    (tmp_path / "chatbot.json").write_text(json.dumps(
        {"title": "Harbour docs", "intro": "Ask about the harbour.", "examples": ["Who dredged it?", 3]}))
    assert UiSettings.for_corpus(tmp_path) == UiSettings("Harbour docs", "Ask about the harbour.", ("Who dredged it?",))
    assert UiSettings.for_corpus(tmp_path, title="Mine").title == "Mine"
    (tmp_path / "chatbot.json").write_text("{broken")
    assert UiSettings.for_corpus(tmp_path) == UiSettings()
    docs, skipped = load_corpus(tmp_path)  # chatbot.json is not a document
    assert docs == [] and skipped == []


def test_sanitize_name():
    assert sanitize_name("../../etc/passwd.txt") == "passwd.txt"
    assert sanitize_name("C:\\Users\\me\\Report 2024 (final).pdf") == "Report 2024 _final_.pdf"
    assert sanitize_name(".hidden.md") == "hidden.md"
    assert sanitize_name("a\x00b<script>.html") == "ab_script_.html"
    assert len(sanitize_name("x" * 500 + ".docx")) == 120 and sanitize_name("x" * 500 + ".docx").endswith(".docx")
    for bad in ("", "...", "/", "metadata.json", "chatbot.json"):
        with pytest.raises(ValueError):
            sanitize_name(bad)


# ---------------------------------------------------------------- incremental index


class CountingEmbedder:
    """The session's embedder, counting the passages it embeds."""

    def __init__(self, embedder):
        self.inner, self.embedded = embedder, 0
        self.name, self.dimension = embedder.name, embedder.dimension

    def embed(self, texts, **kwargs):
        if not kwargs.get("query"):
            self.embedded += len(texts)
        return self.inner.embed(texts, **kwargs)

    def export_query_encoder(self, out_dir):
        return self.inner.export_query_encoder(out_dir)


def settings_for(root):
    return Settings().with_(corpus_dir=root / "corpus", index_dir=root / "index")


def assert_same_index(a, b):
    assert [vars(p) for p in a.passages] == [vars(p) for p in b.passages]
    assert a.documents == b.documents
    assert a.manifest["files"] == b.manifest["files"] and a.manifest["skipped"] == b.manifest["skipped"]
    n = len(a)
    np.testing.assert_allclose(a.vectors.reconstruct_n(0, n), b.vectors.reconstruct_n(0, n), atol=1e-5)


def test_adding_and_removing_a_document_embeds_only_it_and_equals_a_full_rebuild(tmp_path, embedder):
    counting = CountingEmbedder(embedder)
    settings = settings_for(tmp_path)
    corpus = write_samples(tmp_path / "corpus")
    (corpus / "orchard.docx").unlink()
    (corpus / "bad.docx").write_bytes(make_zip_as_docx())
    first = ensure_index(settings, embedder=counting)
    assert (tmp_path / "index" / DOCUMENTS_FILE).is_file()
    assert first.manifest["skipped"] == {"bad.docx": "not a Word document (a zip file without word/document.xml)"}

    (corpus / "orchard.docx").write_bytes(make_docx())
    counting.embedded = 0
    added = ensure_index(settings, embedder=counting)
    docx_chunks = sum(p.source == "orchard.docx" for p in added.passages)
    assert counting.embedded == docx_chunks > 0
    rebuilt = ensure_index(settings_for(tmp_path).with_(index_dir=tmp_path / "full"), embedder=embedder)
    assert_same_index(added, rebuilt)
    assert_same_index(load_index(tmp_path / "index"), rebuilt)

    (corpus / "harbour.pdf").unlink()
    (corpus / "bad.docx").unlink()
    counting.embedded = 0
    removed = ensure_index(settings, embedder=counting)
    assert counting.embedded == 0 and not any(p.source == "harbour.pdf" for p in removed.passages)
    assert removed.manifest["skipped"] == {}
    rebuilt = ensure_index(settings_for(tmp_path).with_(index_dir=tmp_path / "full2"), embedder=embedder)
    assert_same_index(removed, rebuilt)
    # Stored with the index: the extracted text each citation's offsets index.
    stored = {d["source"]: d for d in load_index(tmp_path / "index").documents}
    for p in removed.passages:
        assert stored[p.source]["text"][p.start:p.end] == p.text


def test_a_failed_update_keeps_the_last_good_index(tmp_path, embedder, monkeypatch):
    settings = settings_for(tmp_path)
    corpus = write_samples(tmp_path / "corpus")
    before = ensure_index(settings, embedder=embedder)
    (corpus / "extra.txt").write_text("The ferry to Brennick leaves every hour from pier four.\n", encoding="utf-8")

    class Broken(CountingEmbedder):
        def embed(self, texts, **kwargs):
            raise OSError(28, "No space left on device")

    with pytest.raises(Exception, match="No space left on device.*previous index"):
        ensure_index(settings, embedder=Broken(embedder))
    assert_same_index(load_index(tmp_path / "index"), before)


# ---------------------------------------------------------------- the document library


@pytest.fixture
def library(tmp_path, embedder):
    settings = settings_for(tmp_path).with_(allow_uploads=True)
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "council.txt").write_text(ARTICLE, encoding="utf-8")
    retriever = Retriever(ensure_index(settings, embedder=embedder), settings, embedder)
    return DocumentLibrary(retriever, settings), retriever


def test_upload_list_and_remove(library, tmp_path):
    docs, retriever = library
    uploads = tmp_path / "uploads"
    uploads.mkdir()
    (uploads / "pdf").write_bytes(make_pdf())
    (uploads / "zip").write_bytes(make_zip_as_docx())
    (uploads / "png").write_bytes(b"\x89PNG\r\n")
    progress = []
    result = docs.add([("../Harbour report.pdf", uploads / "pdf"), ("evil.docx", uploads / "zip"),
                       ("photo.png", uploads / "png")], on_progress=lambda done, total: progress.append((done, total)))
    assert [(r.name, r.status) for r in result] == [
        ("Harbour report.pdf", "indexed"), ("evil.docx", "refused"), ("photo.png", "refused")]
    assert result[0].pages == 3 and result[0].chunks >= 3 and result[0].language == "en"
    assert result[1].note == "not a Word document (a zip file without word/document.xml)"
    assert result[2].note.startswith("unsupported file type '.png'")
    assert progress and progress[-1][0] == progress[-1][1] == result[0].chunks
    assert sorted(p.name for p in (tmp_path / "corpus").iterdir()) == ["Harbour report.pdf", "council.txt"]

    (hit,) = retriever.search("Which company dredged the main channel?", k=1)
    assert hit.source == "Harbour report.pdf" and hit.page == 2 and PDF_ANSWER in hit.text
    assert hit.to_dict()["page"] == 2
    assert [(d.name, d.status) for d in docs.list()] == [("Harbour report.pdf", "indexed"), ("council.txt", "indexed")]

    docs.remove("Harbour report.pdf")
    assert [d.name for d in docs.list()] == ["council.txt"]
    assert all(p.source == "council.txt" for p in retriever.index.passages)
    for bad in ("Harbour report.pdf", "../corpus/council.txt", "metadata.json", ".lock"):
        with pytest.raises(DocumentError, match="No document called"):
            docs.remove(bad)


def test_uploads_are_off_unless_allowed(library, tmp_path):
    docs, _ = library
    docs.settings = docs.settings.with_(allow_uploads=False)
    (tmp_path / "a.txt").write_text("text", encoding="utf-8")
    with pytest.raises(DocumentError, match="--allow-uploads"):
        docs.add([("a.txt", tmp_path / "a.txt")])
    with pytest.raises(DocumentError, match="--allow-uploads"):
        docs.remove("council.txt")


def test_a_too_large_upload_is_refused_naming_the_setting(library, tmp_path):
    docs, _ = library
    with open(tmp_path / "big", "wb") as fh:
        fh.truncate(200 * 2**20)
    (result,) = docs.add([("big.pdf", tmp_path / "big")])
    assert result.status == "refused" and "CHATBOT_MAX_FILE_MB" in result.note and "--max-file-mb" in result.note
    assert not (tmp_path / "corpus" / "big.pdf").exists()


def test_a_file_dropped_into_the_corpus_folder_is_found_without_a_restart(library, tmp_path):
    _, retriever = library
    (tmp_path / "corpus" / "orchard.docx").write_bytes(make_docx())
    hits = retriever.search("Who chairs the Brennick orchard cooperative?", k=2)
    assert hits[0].source == "orchard.docx" and DOCX_ANSWER in hits[0].text and hits[0].page is None


# ---------------------------------------------------------------- HTTP /documents


@pytest.fixture
def http_bot(tmp_path, embedder, tiny_reader_dir):
    from chatbot.qa.chatbot import Chatbot
    from chatbot.models.reader import Reader

    settings = settings_for(tmp_path).with_(reader=str(tiny_reader_dir), allow_uploads=True, relevance_encoder="",
                                            max_file_bytes=2**19)
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "council.txt").write_text(ARTICLE, encoding="utf-8")
    return Chatbot(ensure_index(settings, embedder=embedder), settings, embedder, Reader(tiny_reader_dir))


def test_http_documents_upload_list_delete(http_bot, local_servers):
    import httpx

    from chatbot.serve.http_api import create_app

    with httpx.Client(base_url=local_servers.http(create_app(http_bot)), timeout=120) as http:
        schema = http.get("/openapi.json").json()
        assert {"get", "post"} <= set(schema["paths"]["/documents"]) and "delete" in schema["paths"]["/documents/{name}"]
        response = http.post("/documents", files=[("files", ("harbour.pdf", make_pdf(), "application/pdf")),
                                                  ("files", ("bad.docx", make_zip_as_docx(), "application/zip"))])
        assert response.status_code == 200, response.text
        assert [(d["name"], d["status"], d["pages"]) for d in response.json()["documents"]] == [
            ("harbour.pdf", "indexed", 3), ("bad.docx", "refused", None)]
        assert [d["name"] for d in http.get("/documents").json()["documents"]] == ["council.txt", "harbour.pdf"]
        assert http.get("/health").json()["documents"] == 2
        passages = http.post("/search", json={"query": "Velmar Marine dredging", "k": 1}).json()["passages"]
        assert passages[0]["source"] == "harbour.pdf" and passages[0]["page"] == 2
        big = [("files", ("big.txt", b"x" * 2**20, "text/plain"))]
        (refused,) = http.post("/documents", files=big).json()["documents"]  # over the file limit, within the body's
        assert refused["status"] == "refused" and "CHATBOT_MAX_FILE_MB" in refused["note"]
        assert http.delete("/documents/harbour.pdf").status_code == 204
        assert http.delete("/documents/harbour.pdf").status_code == 404
        assert [d["name"] for d in http.get("/documents").json()["documents"]] == ["council.txt"]

    http_bot.settings = http_bot.settings.with_(max_file_bytes=2**16)
    with httpx.Client(base_url=local_servers.http(create_app(http_bot)), timeout=60) as http:
        too_big = http.post("/documents", files=[("files", ("big.txt", b"x" * 2**21, "text/plain"))])
        assert too_big.status_code == 413 and "CHATBOT_MAX_FILE_MB" in too_big.json()["detail"]

    http_bot.settings = http_bot.settings.with_(allow_uploads=False)
    with httpx.Client(base_url=local_servers.http(create_app(http_bot)), timeout=60) as http:
        refused = http.post("/documents", files=[("files", ("a.txt", b"Some text here.", "text/plain"))])
        assert refused.status_code == 403 and "--allow-uploads" in refused.json()["detail"]
        assert http.delete("/documents/council.txt").status_code == 403
        assert http.get("/documents").status_code == 200


# ---------------------------------------------------------------- real answers


@pytest.fixture(scope="module")
def bot_over_all_formats(tmp_path_factory, embedder, trained_reader):
    """The news corpus plus a PDF, a DOCX and an HTML page, with the shipped reader."""
    import shutil

    from chatbot.models.reader import Reader
    from chatbot.qa.chatbot import Chatbot

    root = tmp_path_factory.mktemp("formats")
    corpus = write_samples(root / "corpus")
    for path in (Path(__file__).resolve().parents[1] / "corpus").iterdir():
        shutil.copy(path, corpus / path.name)
    settings = Settings().with_(corpus_dir=corpus, index_dir=root / "index", reader=trained_reader)
    assert {d.source for d in load_corpus(corpus)[0]} >= {"harbour.pdf", "orchard.docx", "bridge.html"}
    return Chatbot(ensure_index(settings, embedder=embedder), settings, embedder,
                   Reader(trained_reader, precision=settings.reader_precision))


def _format_cases():
    from sample_documents import DOCX_QUESTION, HTML_ANSWER, HTML_QUESTION, PDF_QUESTION

    return [pytest.param(PDF_QUESTION, PDF_ANSWER, "harbour.pdf", 2, id="pdf"),
            pytest.param(DOCX_QUESTION, DOCX_ANSWER, "orchard.docx", None, id="docx"),
            pytest.param(HTML_QUESTION, HTML_ANSWER, "bridge.html", None, id="html")]


@pytest.mark.parametrize("question, answer, source, page", _format_cases())
def test_pdf_docx_and_html_answers_cite_the_right_document_and_page(bot_over_all_formats, question, answer,
                                                                    source, page):
    """Each answered from its own file (the PDF from page 2), citing the text stored with the index."""
    bot = bot_over_all_formats
    reply = bot.ask(question, explain=True)
    best = reply.explanation.candidates[0]  # the answer, or the likeliest candidate when the policy abstains
    assert answer in best.text and (best.passage.source, best.passage.page) == (source, page), (question, best)
    if reply.text is None:  # the policy is not sure enough: the likeliest candidate above is still right
        return
    assert answer in reply.text, (question, reply.text)
    cited = reply.citations[0]
    assert (cited.source, cited.page) == (source, page)
    assert reply.to_dict()["citations"][0]["page"] == page
    stored = {d["source"]: d["text"] for d in bot.index.documents}[source]
    assert stored[cited.start:cited.end] == cited.text
    assert stored[cited.answer_start:cited.answer_end] == reply.text


def test_an_html_pages_navigation_and_footer_are_never_cited(bot_over_all_formats):
    for c in bot_over_all_formats.ask("Kettle Valley Times newsletter copyright").citations:
        assert HTML_NAV not in c.text and HTML_FOOTER not in c.text
