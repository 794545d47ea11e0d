"""End to end: index building and staleness, answers with exact citations, abstention, validation."""

import json
from pathlib import Path

import pytest

from dataclasses import replace

from chatbot.index import sync
from chatbot.config import SHIPPED_READER_DIR, ChunkingSettings, Settings
from chatbot.index.sync import ensure_index
from chatbot.qa.chatbot import Chatbot
from chatbot.qa.policy import POLICY_FILE, AnswerPolicy
from chatbot.models.reader import Reader
from chatbot.types import Candidate, RetrievedPassage

SHIPPED_POLICY = AnswerPolicy.load(SHIPPED_READER_DIR / POLICY_FILE)
# Accept any span: the tiny random reader is for plumbing, not for answers.
PERMISSIVE = dict(policy=replace(SHIPPED_POLICY, threshold=0.0))


@pytest.fixture
def make_bot(built_corpus, embedder, tiny_reader_dir):
    corpus, index_dir = built_corpus

    def make(policy: AnswerPolicy | None = None, **changes) -> Chatbot:
        settings = Settings().with_(corpus_dir=corpus, index_dir=index_dir, relevance_encoder="", **changes)
        return Chatbot(ensure_index(settings, embedder=embedder), settings, embedder, Reader(tiny_reader_dir),
                       policy=policy)
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


def test_abstains_under_the_policy_threshold_and_cites_the_closest_passages(make_bot):
    strict = replace(SHIPPED_POLICY, threshold=1.0)  # no candidate is that sure
    answer = make_bot(policy=strict).ask("What is the boiling point of water at sea level in Fahrenheit?",
                                         explain=True)
    assert answer.text is None and 0 <= answer.score < 1
    assert answer.citations and all(c.answer_start is None for c in answer.citations)
    assert answer.explanation.decision.startswith("abstained") and answer.explanation.threshold == 1.0


def test_the_confidence_is_the_policys_probability_for_the_answer(make_bot):
    bot = make_bot(**PERMISSIVE, read_every_passage=True)
    answer = bot.ask("Who is the CEO of OpenAI?", k=5, explain=True)
    best = next(c for c in answer.explanation.candidates if c.text == answer.text)
    assert answer.score == round(bot.policy.probability(best.features), 4) == round(best.confidence, 4)
    confidences = [c.confidence for c in answer.explanation.candidates]
    assert confidences == sorted(confidences, reverse=True)
    assert set(best.features) == set(bot.policy.weights) <= set(SHIPPED_POLICY.mean)
    data = answer.to_dict()
    assert data["explanation"]["candidates"][0]["features"] and len(data["explanation"]["passages"]) == 5
    assert all(p["read"] for p in data["explanation"]["passages"])
    assert bot.ask("Who is the CEO of OpenAI?").to_dict()["explanation"] is None


def test_a_passage_that_cannot_beat_the_answer_found_is_not_read(make_bot, monkeypatch):
    every = make_bot(**PERMISSIVE, read_every_passage=True)
    bot = make_bot(policy=replace(SHIPPED_POLICY, threshold=0.0, bias=SHIPPED_POLICY.bias,
                                  weights={**SHIPPED_POLICY.weights, "passage_rank": -20.0}))
    read = []
    real_read = bot.reader.read
    monkeypatch.setattr(bot.reader, "read", lambda q, texts, top_k: read.append(texts) or real_read(q, texts, top_k))
    answer = bot.ask("Who is the CEO of OpenAI?", k=5, explain=True)
    # Passage 1 first (the heavy rank weight puts it first); no later passage can then beat its best span.
    assert len(read) == 1 and read[0] == [answer.explanation.passages[0].text]
    assert [p["read"] for p in answer.to_dict()["explanation"]["passages"]] == [True, False, False, False, False]
    every.policy = bot.policy
    assert every.ask("Who is the CEO of OpenAI?", k=5).text == answer.text
    # Every passage is read, one reader call each, when asked to.
    read.clear()
    bot.settings = bot.settings.with_(read_every_passage=True)
    bot.ask("Who is the CEO of OpenAI?", k=5)
    assert len(read) == 5 and all(len(texts) == 1 for texts in read)


def test_ask_is_its_five_steps(make_bot):
    bot = make_bot(**PERMISSIVE)
    question = bot.prepare("How many GPUs does it house?", ["What is xAI's data center in Memphis called?"])
    assert question.clarification is None and "Memphis" in question.searched_for and question.language == "en"
    passages = bot.retriever.retrieve(question.searched_for, 4)
    assert [p.rank for p in passages] == [0, 1, 2, 3]
    assert sorted(p.dense_rank for p in passages) == sorted(p.bm25_rank for p in passages) == [0, 1, 2, 3]
    candidates = bot.read(question, passages)
    assert candidates and all(c.passage in passages and c.passage.text[c.start:c.end] == c.text for c in candidates)
    ranked, best = bot.decide(question, candidates)
    answer = bot.build_answer(question, passages, ranked, best, started=0.0)
    direct = bot.ask("How many GPUs does it house?", history=["What is xAI's data center in Memphis called?"], k=4)
    assert (answer.text, answer.score, answer.searched_for) == (direct.text, direct.score, direct.searched_for)
    assert [c.to_dict() for c in answer.citations] == [c.to_dict() for c in direct.citations]


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
    real_build, real_update = sync.build_index, sync.update_index
    monkeypatch.setattr(sync, "build_index", lambda *a, **kw: builds.append(1) or real_build(*a, **kw))
    monkeypatch.setattr(sync, "update_index", lambda *a, **kw: updates.append(kw["remove"]) or real_update(*a, **kw))
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
    answer = bot.ask("Who is the CEO of OpenAI?")
    assert answer.text is not None and "Altman" in answer.text
    assert answer.citations[0].source == "000_1a2eb30073d68791.txt"
    answer = bot.ask("Сколько денег уже собрал стартап Маска?", explain=True)  # the reader finds it (the policy abstains)
    best = answer.explanation.candidates[0]
    assert "12" in best.text and best.passage.source == "002_514f26c353995508.txt"
    assert bot.ask("What is the capital of France?").text is None


@pytest.mark.xfail(strict=True, reason="a known miss of the shipped reader and policy: the Russian article's span "
                                       "(“Мемфисе”) outranks the English one (the web chat's and README's example "
                                       "questions are in test_examples.py)")
def test_known_miss_of_the_shipped_reader(corpus_copy, tmp_path, trained_reader):
    bot = Chatbot.load(index_dir=tmp_path / "index", corpus_dir=corpus_copy, settings=Settings().with_(reader=trained_reader))
    answer = bot.ask("Where is the Colossus data center?")
    assert answer.text is not None and "Memphis" in answer.text.split()


def _candidate(text: str, lang: str, confidence: float) -> Candidate:
    passage = RetrievedPassage(text=text, source=lang, title="t", start=0, end=len(text), lang=lang)
    return Candidate(text=text, start=0, end=len(text), passage=passage, reader_probability=0.5, confidence=confidence)


def test_an_answer_both_languages_give_is_cited_in_the_question_language():
    from chatbot.qa.chatbot import in_question_language

    ranked = [_candidate("X", "ru", 0.2), _candidate("X platform", "en", 0.15), _candidate(" x ", "en", 0.1)]
    chosen = in_question_language(ranked[0], ranked, "en")
    assert chosen is ranked[2] and chosen.confidence == 0.2  # the policy judged the answer; only where it is cited moves
    assert in_question_language(ranked[0], ranked, "ru") is ranked[0]
    # No English passage gives the same answer: the Russian one stays.
    twitter = _candidate("Twitter", "en", 0.15)
    assert in_question_language(ranked[0], [ranked[0], twitter], "en") is ranked[0]
    # The same answer in other words: every Latin word of the Russian answer is in the English span.
    russian = _candidate("платформу X", "ru", 0.2)
    platform = _candidate("X platform", "en", 0.15)
    assert in_question_language(russian, [russian, platform], "en") is platform
    # Sharing only a number is not the same answer.
    amount, months = _candidate("12 миллиардов", "ru", 0.2), _candidate("12 months", "en", 0.1)
    assert in_question_language(amount, [amount, months], "en") is amount


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
    from chatbot.qa.chatbot import balanced

    start = passage.index(answer)
    a, e = balanced(passage, start, start + len(answer))
    assert passage[a:e] == expected


class KeywordEncoder:
    """A text's vector says whether it names Memphis: the question and the Memphis sentences coincide."""

    name, dimension = "keyword", 2

    def embed(self, texts, *, query=False, batch_size=32, show_progress=False):
        import numpy as np

        return np.array([(1.0, 0.0) if "Memphis" in t else (0.0, 1.0) for t in texts], dtype=np.float32)


def _passage(text: str, rank: int) -> RetrievedPassage:
    return RetrievedPassage(text=text, source=f"{rank}.txt", title="t", start=0, end=len(text), lang="en", rank=rank)


def test_the_reader_reads_windows_around_the_sentences_closest_to_the_question(make_bot, monkeypatch):
    from chatbot.qa.relevance import SentenceRelevance
    from chatbot.types import Question

    sentences = ["Oracle builds it.", "The site is in Memphis.", "It holds GPUs.", "Power is scarce.",
                 "Turbines run on gas.", "Memphis residents object.", "A court will decide."]
    first, second = _passage(" ".join(sentences), 0), _passage("Nothing here. Memphis again.", 1)
    bot = make_bot(**PERMISSIVE, read_sentences=2, window_context=1, read_every_passage=True)
    bot.relevance = SentenceRelevance(KeywordEncoder())
    question = Question(text="Where is Memphis?", searched_for="Where is Memphis?", language="en")

    def windows():
        return [[w.text for w in of_passage] for of_passage in bot.windows([first, second], bot.sentences(question, [first, second]))]

    # The first two Memphis sentences in ranking order, each with one sentence either side; the third is not read.
    assert windows() == [[" ".join(sentences[0:3]), " ".join(sentences[4:7])], []]
    # Windows that meet are read as one.
    bot.settings = bot.settings.with_(window_context=2)
    assert windows() == [[first.text], []]
    # Candidates found in a window are offsets into their passage, as if the passage had been read whole.
    read = []
    real_read = bot.reader.read
    monkeypatch.setattr(bot.reader, "read", lambda q, texts, top_k: read.append(texts) or real_read(q, texts, top_k))
    candidates = bot.read(question, [first, second])
    assert read == [[first.text]] and candidates
    assert all(c.passage.text[c.start:c.end] == c.text for c in candidates)
    # 0 reads every passage whole, as does a bot with no sentence encoder.
    bot.settings = bot.settings.with_(read_sentences=0)
    assert windows() == [[first.text], [second.text]]
    bot.settings, bot.relevance = bot.settings.with_(read_sentences=2), None
    assert windows() == [[first.text], [second.text]]


def test_reading_windows_answers_as_reading_whole_passages_does_on_the_tuning_set(trained_reader, corpus_copy,
                                                                                   tmp_path):
    """Reading windows (``read_sentences``, a speed setting) is not exact, the reader sees less context: on the
    tuning set, with the shipped policy, it must answer about as well as reading every passage whole (the
    default), and mostly with the same answers. (F1 within 2 points: the 7-bit reader measured 63.9 against 65.5,
    the 8-bit one within 1.)"""
    from chatbot.tools.evaluation import load_questions, run

    settings = Settings().with_(reader=trained_reader, corpus_dir=corpus_copy, index_dir=tmp_path / "index")
    bot = Chatbot.load(settings=settings, progress=False)
    bot.warm_up()
    rows = load_questions(Path(__file__).resolve().parents[1] / "evals" / "questions.jsonl")
    reports, answers = {}, {}
    assert settings.read_sentences == 0  # the default reads passages whole
    for name, reading in (("windows", settings.with_(read_sentences=3, window_context=2)), ("whole", settings)):
        bot.settings = reading
        with open(tmp_path / f"{name}.jsonl", "w", encoding="utf-8") as predictions:
            reports[name] = run(bot, rows, predictions=predictions, progress=False)["overall"]
        answers[name] = [json.loads(line)["answer"] for line in (tmp_path / f"{name}.jsonl").read_text().splitlines()]
    windows, whole = reports["windows"], reports["whole"]
    assert windows["f1"] >= whole["f1"] - 2.0
    assert windows["citation_accuracy"] >= whole["citation_accuracy"] - 1.0
    assert windows["abstention_recall"] >= whole["abstention_recall"]
    same = sum(a == b for a, b in zip(answers["windows"], answers["whole"]))
    assert same >= 0.85 * len(rows)


def test_leaving_passages_unread_gives_the_answers_of_reading_every_passage_on_the_tuning_set(trained_reader,
                                                                                           corpus_copy, tmp_path):
    """The passages ``Chatbot.read`` leaves unread could not have changed the answer: on the tuning set, with the
    shipped reader and policy, every answer, abstention and confidence is the one reading every passage gives."""
    from chatbot.tools.evaluation import load_questions

    settings = Settings().with_(reader=trained_reader, corpus_dir=corpus_copy, index_dir=tmp_path / "index")
    bot = Chatbot.load(settings=settings, progress=False)
    bot.warm_up()
    rows = load_questions(Path(__file__).resolve().parents[1] / "evals" / "questions.jsonl")
    read = []
    real_read = bot.reader.read
    bot.reader.read = lambda q, texts, top_k: read.append(texts) or real_read(q, texts, top_k)
    answers, passages_read = {}, {}
    for every in (False, True):
        bot.settings = settings.with_(read_every_passage=every)
        read.clear()
        answers[every] = [bot.ask(r["question"], history=r.get("history") or []) for r in rows]
        passages_read[every] = len(read)  # one reader call a passage
    skipping, everything = answers[False], answers[True]
    assert [(a.text, a.score) for a in skipping] == [(a.text, a.score) for a in everything]
    assert [[c.to_dict() for c in a.citations] for a in skipping] == [[c.to_dict() for c in a.citations] for a in everything]
    asked = sum(a.clarification is None for a in everything)
    assert passages_read[True] == asked * settings.top_k
    assert passages_read[False] < 0.7 * passages_read[True]  # 52.7 % of them on 2026-12-08
