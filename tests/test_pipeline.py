"""End to end: index building and staleness, answers with exact citations, abstention, validation."""

import json

import pytest

from chatbot import pipeline
from chatbot.config import ChunkingSettings, Settings
from chatbot.pipeline import Chatbot, ensure_index
from chatbot.reader import Reader

# Accept any span: the tiny random reader is for plumbing, not for answers.
PERMISSIVE = dict(answer_threshold=0.0, min_similarity=-1.0)


@pytest.fixture
def make_bot(built_corpus, embedder, tiny_reader_dir):
    corpus, index_dir = built_corpus

    def make(**changes) -> Chatbot:
        settings = Settings().with_(corpus_dir=corpus, index_dir=index_dir, **changes)
        reader = Reader(tiny_reader_dir, no_answer_threshold=0.0 if changes else 0.1)
        return Chatbot(ensure_index(settings, embedder=embedder), settings, embedder, reader)
    return make


def test_citations_are_exact_slices_of_the_original_files(make_bot, built_corpus):
    corpus = built_corpus[0]
    answer = make_bot(**PERMISSIVE).ask("Which platform is Grok integrated into?", k=4)
    assert answer.text and 0 <= answer.score <= 1
    assert 1 <= len(answer.citations) <= 3
    for c in answer.citations:
        original = (corpus / c.source).read_text(encoding="utf-8")
        assert c.text == original[c.start:c.end]
    first = answer.citations[0]
    assert first.start <= first.answer_start < first.answer_end <= first.end
    original = (corpus / first.source).read_text(encoding="utf-8")
    assert original[first.answer_start:first.answer_end] == answer.text
    assert all(c.answer_start is None and c.answer_end is None for c in answer.citations[1:])
    assert answer.text not in [s.text for s in answer.alternatives]
    assert answer.to_dict()["answer"] == answer.text and answer.latency_ms > 0


def test_abstains_on_an_off_topic_question_and_cites_the_closest_passages(make_bot):
    answer = make_bot().ask("What is the boiling point of water at sea level in Fahrenheit?")
    assert answer.text is None
    assert answer.citations and all(c.answer_start is None for c in answer.citations)


def test_followup_is_searched_with_its_subject(make_bot):
    bot = make_bot(**PERMISSIVE)
    history = ["What is xAI's data center in Memphis called?"]
    answer = bot.ask("How many GPUs does it house?", history=history)
    assert answer.question == "How many GPUs does it house?"
    assert "Memphis" in answer.searched_for
    assert answer.searched_for == bot.rewrite(answer.question, history)


def test_input_validation(make_bot):
    bot = make_bot(max_question_chars=40)
    for bad in ("", "   \n\t"):
        with pytest.raises(ValueError, match="empty"):
            bot.ask(bad)
    for k in (0, 51, 2.5, True):
        with pytest.raises(ValueError, match="k must be"):
            bot.ask("Who is the CEO of OpenAI?", k=k)
        with pytest.raises(ValueError, match="k must be"):
            bot.search("OpenAI", k=k)
    answer = bot.ask("Who " + "really " * 5000 + "leads OpenAI?")
    assert len(answer.question) <= 40 and answer.question.startswith("Who really")
    assert len(bot.search("OpenAI CEO", k=2)) == 2


def test_index_is_built_once_and_rebuilt_when_the_corpus_or_settings_change(corpus_copy, tmp_path, embedder, monkeypatch):
    builds, updates = [], []
    real_build, real_update = pipeline.build_index, pipeline.update_index
    monkeypatch.setattr(pipeline, "build_index", lambda *a, **kw: builds.append(1) or real_build(*a, **kw))
    monkeypatch.setattr(pipeline, "update_index", lambda *a, **kw: updates.append(kw["remove"]) or real_update(*a, **kw))
    settings = Settings().with_(corpus_dir=corpus_copy, index_dir=tmp_path / "index")
    first = ensure_index(settings, embedder=embedder)
    manifest = json.loads((tmp_path / "index" / "manifest.json").read_text())
    assert manifest["embedder"] == settings.embedder and manifest["chunking"] == settings.chunking.as_dict()
    # every file but the web chat's chatbot.json, which is not a document
    assert set(manifest["files"]) == {p.name for p in corpus_copy.iterdir()} - {"chatbot.json"}
    ensure_index(settings, embedder=embedder)
    assert len(builds) == 1

    path = corpus_copy / "003_b9ba9737376ecf2c.txt"
    path.write_text(path.read_text(encoding="utf-8") + "\n\nThe quokka festival takes place in Perth every spring.\n",
                    encoding="utf-8")
    updated = ensure_index(settings, embedder=embedder)  # only the changed file is embedded again
    assert len(builds) == 1 and updates == [{"003_b9ba9737376ecf2c.txt"}]
    assert any("quokka" in p.text for p in updated.passages) and not any("quokka" in p.text for p in first.passages)
    rebuilt = updated

    ensure_index(settings.with_(chunking=ChunkingSettings(max_chars=300)), embedder=embedder)
    assert len(builds) == 2
    (tmp_path / "index" / "passages.jsonl").write_text("damaged")
    assert len(ensure_index(settings, embedder=embedder)) == len(rebuilt) and len(builds) == 3


def test_real_corpus_and_reader_answer_with_citation(corpus_copy, tmp_path, trained_reader):
    settings = Settings().with_(reader=trained_reader)
    bot = Chatbot.load(index_dir=tmp_path / "index", corpus_dir=corpus_copy, settings=settings)
    bot.warm_up()
    answer = bot.ask("Which platform is Grok integrated into?")
    assert answer.text is not None and "X" in answer.text.split()
    assert answer.citations[0].source == "000_1a2eb30073d68791.txt"
    answer = bot.ask("Where is the Colossus data center?")
    assert answer.text is not None and "Memphis" in answer.text
    assert answer.citations[0].source == "000_1a2eb30073d68791.txt"
    assert bot.ask("What is the capital of France?").text is None


def test_best_ranks_takes_the_best_of_fused_dense_and_bm25_order():
    from chatbot.pipeline import best_ranks
    from chatbot.retrieval import RetrievedPassage

    def passage(dense, bm25):
        return RetrievedPassage(text="t", source="s", title="t", start=0, end=1, dense_score=dense, bm25_score=bm25)

    # fused order 0..3; passage 2 is first by BM25, passage 3 second by dense
    passages = [passage(0.9, 1.0), passage(0.5, 0.5), passage(0.1, 3.0), passage(0.6, 0.0)]
    assert best_ranks(passages, "en") == [0, 1, 0, 1]


def test_best_ranks_ranks_other_language_passages_among_themselves_by_the_multilingual_embedder():
    from chatbot.pipeline import best_ranks
    from chatbot.retrieval import RetrievedPassage

    def passage(lang, dense, bm25, multilingual):
        return RetrievedPassage(text="t", source="s", title="t", start=0, end=1, lang=lang, dense_score=dense,
                                bm25_score=bm25, multilingual_score=multilingual)

    # The Russian passages are last by MiniLM and BM25, and the multilingual cosine puts an English
    # passage above them (it favours the question's language); among the Russian ones the closer
    # is rank 0, the other rank 1. The English passages keep their own orders.
    passages = [passage("en", 0.9, 2.0, 0.30), passage("en", 0.6, 1.0, 0.45), passage("en", 0.5, 0.5, 0.20),
                passage("ru", 0.0, 0.0, 0.25), passage("ru", 0.0, 0.0, 0.40)]
    assert best_ranks(passages, "en") == [0, 1, 2, 1, 0]
    # A Russian question: the English passages are the other language, ranked among themselves
    # (the one closest by the multilingual cosine is rank 0); the Russian one keeps its own orders.
    assert best_ranks(passages[:4], "ru") == [0, 0, 2, 3]



def test_an_answer_both_languages_give_is_cited_in_the_question_language():
    from chatbot.pipeline import _in_question_language
    from chatbot.retrieval import RetrievedPassage
    from chatbot.types import Span

    def passage(lang):
        return RetrievedPassage(text="t", source=lang, title="t", start=0, end=1, lang=lang, dense_score=0, bm25_score=0)

    passages = [passage("ru"), passage("en"), passage("en")]
    ranked = [Span("X", 0.2, 0, 0, 1), Span("X platform", 0.15, 1, 0, 10), Span(" x ", 0.1, 2, 0, 3)]
    assert _in_question_language(ranked[0], ranked, passages, "en") is ranked[2]
    assert _in_question_language(ranked[0], ranked, passages, "ru") is ranked[0]
    # No English passage gives the same answer: the Russian one stays.
    twitter = Span("Twitter", 0.15, 1, 0, 7)
    assert _in_question_language(ranked[0], [ranked[0], twitter], passages, "en") is ranked[0]
    # The same answer in other words: every Latin word of the Russian answer is in the English span.
    russian = Span("платформу X", 0.2, 0, 0, 11)
    assert _in_question_language(russian, [russian, ranked[1]], passages, "en") is ranked[1]
    # Sharing only a number is not the same answer.
    amount, months = Span("12 миллиардов", 0.2, 0, 0, 13), Span("12 months", 0.1, 1, 0, 9)
    assert _in_question_language(amount, [amount, months], passages, "en") is amount


def test_each_passage_is_read_by_the_reader_of_its_language(built_corpus, embedder, tiny_reader_dir):
    from chatbot.types import Span

    corpus, index_dir = built_corpus
    settings = Settings().with_(corpus_dir=corpus, index_dir=index_dir)
    index = ensure_index(settings, embedder=embedder)
    english = Reader(tiny_reader_dir, languages=("en",), no_answer_threshold=0.1)
    multilingual = Reader(tiny_reader_dir, languages=("en", "ru"), no_answer_threshold=0.5)
    bot = Chatbot(index, settings, embedder, english, multilingual)
    passages = bot.retriever.retrieve("Сколько денег уже собрал стартап Маска?", 5)
    assert {p.lang for p in passages} == {"en", "ru"}
    groups = {reader: {passages[i].lang for i in chosen} for reader, chosen in bot._readers(range(5), passages)}
    assert groups == {english: {"en"}, multilingual: {"ru"}}
    # Each answer is judged by the no-answer threshold of the reader that found it.
    russian = next(i for i, p in enumerate(passages) if p.lang == "ru")
    english_passage = next(i for i, p in enumerate(passages) if p.lang == "en")
    assert not bot._good_enough(1.0, Span("x", 0.3, russian, 0, 1), passages)
    assert bot._good_enough(1.0, Span("x", 0.3, english_passage, 0, 1), passages)
    # Without a multilingual reader, the sentence reader reads them.
    plain = Chatbot(index, settings.with_(multilingual_reader=""), embedder, english)
    assert plain.multilingual_reader is None
    groups = {type(reader).__name__: {passages[i].lang for i in chosen} for reader, chosen in plain._readers(range(5), passages)}
    assert groups == {"Reader": {"en"}, "SentenceReader": {"ru"}}


def test_the_multilingual_reader_runs_its_shipped_int8_export_and_names_its_setting_otherwise(built_corpus, embedder,
                                                                                              tiny_reader_dir):
    from chatbot.config import SHIPPED_MULTILINGUAL_READER_DIR
    from chatbot.errors import ModelLoadError

    corpus, index_dir = built_corpus
    settings = Settings().with_(corpus_dir=corpus, index_dir=index_dir)
    index = ensure_index(settings, embedder=embedder)
    english = Reader(tiny_reader_dir, languages=("en",))
    bot = Chatbot(index, settings, embedder, english)
    assert settings.multilingual_reader_precision == "int8"
    spans = bot.multilingual_reader.read("Сколько денег уже собрал стартап?",
                                         ["Стартап уже собрал 12 миллиардов долларов."], top_k=1)
    assert bot.multilingual_reader.runtime == "onnx" and spans and "12" in spans[0].text
    # fp32 needs a model.onnx the package does not ship: the error says which setting to change.
    assert not (SHIPPED_MULTILINGUAL_READER_DIR / "model.onnx").exists()
    fp32 = Chatbot(index, settings.with_(multilingual_reader_precision="fp32"), embedder, english)
    with pytest.raises(ModelLoadError, match="CHATBOT_MULTILINGUAL_READER"):
        fp32.multilingual_reader.load()


@pytest.mark.parametrize("passage, answer, expected", [
    ("Grok встроен в платформу X (бывший Twitter), которой владеет Маск.", "платформу X (бывший Twitter",
     "платформу X (бывший Twitter)"),
    ("It runs on X (formerly Twitter, a social network bought in 2022 by Elon Musk for $44 billion).",
     "X (formerly Twitter", "X"),
    ("The fund (about $30 billion) was renamed.", "$30 billion)", "$30 billion"),
    ("He called it «Colossus» in Memphis.", "«Colossus", "«Colossus»"),
    ("Grok is integrated into the X platform.", "X platform", "X platform"),
    ("Nvidia (the technical advisor) joined.", "Nvidia (the technical advisor)", "Nvidia (the technical advisor)"),
])
def test_candidate_answers_have_balanced_brackets(passage, answer, expected):
    from chatbot.pipeline import balanced
    from chatbot.types import Span

    start = passage.index(answer)
    span = balanced(Span(answer, 0.5, 0, start, start + len(answer)), passage)
    assert span.text == expected and passage[span.start:span.end] == span.text
