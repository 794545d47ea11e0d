import hashlib
import json
import shutil
from pathlib import Path

import pytest

from chatbot.ingest import corpus as corpus_mod
from chatbot.ingest.corpus import SkippedFile, file_sha256, load_corpus

CORPUS = Path(__file__).resolve().parent.parent / "corpus"
HEADLINE = "Musk’s xAI Joins Microsoft, BlackRock in $30 Billion AI Infrastructure Project"
BOILERPLATE = [
    "See also", "Leave a Reply", "Dark Mode", "Add a comment", "Tecno Spark",
    "Reading time", "Your email address", "Required fields", "Highlights",
]


@pytest.fixture(scope="module")
def real():
    docs, skipped = load_corpus(CORPUS)
    return {d.source: d for d in docs}, skipped


def kept(doc):
    return [doc.text[s:e] for s, e in doc.segments]


def test_real_corpus_loads_all_files_with_metadata(real):
    docs, skipped = real
    assert skipped == []
    assert sorted(docs) == sorted(p.name for p in CORPUS.glob("*.txt"))
    assert [d.lang for d in docs.values()] == ["en", "en", "ru", "en", "en"]
    d3 = docs["003_b9ba9737376ecf2c.txt"]
    assert d3.title == "Elon Musk Announces Partnership with Oracle"
    assert d3.metadata["author"] == "Anthony Burr"
    assert d3.metadata["outlet"] == "TH3FUS3"
    assert d3.metadata["date"] == "2024-05-26"
    assert docs["000_1a2eb30073d68791.txt"].title == HEADLINE
    # 001 has no title in the text: derived from its first line, shortened.
    title1 = docs["001_07add878744182aa.txt"].title
    assert title1.startswith("The race to develop") and len(title1) <= 101


def test_metadata_json_covers_every_article():
    meta = json.loads((CORPUS / "metadata.json").read_text(encoding="utf-8"))
    assert set(meta) == {p.name for p in CORPUS.glob("*.txt")}
    for entry in meta.values():
        assert set(entry) == {"title", "language", "outlet", "author", "date"}
    assert meta["002_514f26c353995508.txt"]["language"] == "ru"


def test_segments_are_trimmed_ordered_and_disjoint(real):
    for doc in real[0].values():
        prev_end = 0
        for s, e in doc.segments:
            assert prev_end <= s < e <= len(doc.text)
            assert doc.text[s:e] == doc.text[s:e].strip()
            prev_end = e


def test_boilerplate_removed_from_real_corpus(real):
    for doc in real[0].values():
        for text in kept(doc):
            for marker in BOILERPLATE:
                assert marker not in text, (doc.source, marker, text)


def test_repeated_headline_kept_once(real):
    doc = real[0]["000_1a2eb30073d68791.txt"]
    norm = HEADLINE.replace("’", "'")
    hits = [t for t in kept(doc) if norm in t.replace("’", "'")]
    assert hits == [HEADLINE]
    assert kept(doc)[0] == HEADLINE


def test_content_lines_are_kept(real):
    docs = real[0]
    # Every prose line of the originals survives as a whole segment.
    for doc in docs.values():
        segs = set(kept(doc))
        for line in doc.text.splitlines():
            line = line.strip()
            if len(line.split()) >= 8 and line.endswith((".", ":")) and not line.startswith("Your email"):
                assert line in segs, (doc.source, line)
    assert "A Powerhouse Collaboration" in kept(docs["001_07add878744182aa.txt"])
    assert "Контекст и последствия партнерства" in kept(docs["002_514f26c353995508.txt"])
    d3 = kept(docs["003_b9ba9737376ecf2c.txt"])
    assert d3[:3] == ["Elon Musk Announces Partnership with Oracle",
                      "By Anthony Burr | TH3FUS3 Managing Editor", "May 26, 2024 09:47 AM"]
    assert kept(docs["004_aa7a5d420b0d2dd0.txt"])[0].startswith("AI Infrastructure Partnership:")


def test_teaser_headline_dropped_without_metadata(tmp_path):
    shutil.copy(CORPUS / "000_1a2eb30073d68791.txt", tmp_path / "a.txt")
    (doc,), skipped = load_corpus(tmp_path)
    assert skipped == []
    assert doc.title == HEADLINE and doc.lang == "en"
    assert not any("Tecno" in t or "Dark Mode" in t for t in kept(doc))
    assert sum(HEADLINE in t for t in kept(doc)) == 1


def test_doubled_headline_keeps_first_copy(tmp_path):
    (tmp_path / "d.txt").write_text(
        "Big News About Widgets Big News About Widgets\n\nWidgets were sold today in large numbers.\n",
        encoding="utf-8",
    )
    (doc,), _ = load_corpus(tmp_path)
    assert kept(doc) == ["Big News About Widgets", "Widgets were sold today in large numbers."]
    assert doc.title == "Big News About Widgets"


def test_user_dropped_files_get_title_and_language(tmp_path):
    (tmp_path / "notes.md").write_text("# My Notes\n\nThe meeting is on Friday.\n", encoding="utf-8")
    (tmp_path / "ru.txt").write_text("Новости дня\nКомпания открыла офис в Москве.\n", encoding="utf-8")
    (tmp_path / "image.png").write_bytes(b"\x89PNG\r\n")
    (tmp_path / ".hidden.txt").write_text("secret", encoding="utf-8")
    docs, skipped = load_corpus(tmp_path)
    assert skipped == [SkippedFile("image.png", "unsupported file type '.png': the types indexed are "
                                                ".docx, .htm, .html, .markdown, .md, .pdf, .txt")]
    by = {d.source: d for d in docs}
    assert list(by) == ["notes.md", "ru.txt"]
    assert by["notes.md"].title == "My Notes" and by["notes.md"].lang == "en"
    assert by["ru.txt"].title == "Новости дня" and by["ru.txt"].lang == "ru"


def test_bad_files_are_skipped_with_reasons(tmp_path, monkeypatch):
    russian = "Привет, мир. Это обычный русский текст в кодировке Windows."
    (tmp_path / "01_empty.txt").write_bytes(b"")
    (tmp_path / "02_blank.txt").write_text(" \n\t\n", encoding="utf-8")
    (tmp_path / "03_nul.txt").write_bytes(b"abc\x00def" * 10)
    (tmp_path / "04_control.txt").write_bytes(bytes(range(1, 9)) * 5 + b"text")
    (tmp_path / "05_cp1251.txt").write_bytes(russian.encode("cp1251"))
    (tmp_path / "06_latin1.txt").write_bytes("Café déjà vu, garçon über alles.".encode("latin-1"))
    (tmp_path / "07_koi8.txt").write_bytes(russian.encode("koi8-r"))
    (tmp_path / "08_bom.txt").write_bytes("\ufeffHello world. Second sentence.".encode("utf-8"))
    (tmp_path / "09_big.txt").write_text("x" * 200, encoding="utf-8")
    (tmp_path / "10_only_boilerplate.txt").write_text("Dark Mode Light Mode\nLeave a Reply\n", encoding="utf-8")
    monkeypatch.setattr(corpus_mod, "MAX_FILE_BYTES", 100)

    docs, skipped = load_corpus(tmp_path)

    reasons = {s.source: s.reason for s in skipped}
    assert set(reasons) == {"01_empty.txt", "02_blank.txt", "03_nul.txt", "04_control.txt",
                            "06_latin1.txt", "07_koi8.txt", "09_big.txt", "10_only_boilerplate.txt"}
    assert reasons["01_empty.txt"] == "empty" and reasons["02_blank.txt"] == "empty"
    assert "binary" in reasons["03_nul.txt"] and "binary" in reasons["04_control.txt"]
    assert "UTF-8" in reasons["06_latin1.txt"] and "UTF-8" in reasons["07_koi8.txt"]
    assert "too large" in reasons["09_big.txt"]
    by = {d.source: d for d in docs}
    assert by["05_cp1251.txt"].text == russian and by["05_cp1251.txt"].lang == "ru"
    assert by["08_bom.txt"].text == "Hello world. Second sentence."


def test_invalid_metadata_is_reported_not_raised(tmp_path):
    (tmp_path / "metadata.json").write_text("{not json", encoding="utf-8")
    (tmp_path / "a.txt").write_text("Title line\nBody text here.\n", encoding="utf-8")
    docs, skipped = load_corpus(tmp_path)
    assert [d.title for d in docs] == ["Title line"]
    assert [s.source for s in skipped] == ["metadata.json"]
    assert isinstance(skipped[0], SkippedFile)


def test_script_and_style_blocks_removed(tmp_path):
    text = ("Page Title\n<script type='x'>\nvar tracking = 1;\n</script>\n"
            "First paragraph here. <style>p {color: red}</style>More text.\n")
    (tmp_path / "p.txt").write_text(text, encoding="utf-8")
    (doc,), _ = load_corpus(tmp_path)
    assert kept(doc) == ["Page Title", "First paragraph here.", "More text."]
    assert doc.text == text


def test_file_sha256_matches_raw_bytes(real):
    path = CORPUS / "002_514f26c353995508.txt"
    expected = hashlib.sha256(path.read_bytes()).hexdigest()
    assert file_sha256(path) == expected
    assert real[0][path.name].metadata["sha256"] == expected
