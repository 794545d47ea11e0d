"""The language-independent sentence reader, and Russian answers through the pipeline."""

import pytest

from chatbot.config import Settings
from chatbot.embedding import UseEmbedder
from chatbot.pipeline import Chatbot
from chatbot.reader import Reader
from chatbot.sentence_reader import QuestionCues, SentenceReader, choose_spans

RU_ARTICLE = "002_514f26c353995508.txt"
RU_PASSAGE = (
    "Массовые инвестиции в инфраструктуру XAI сильно укрепит позицию стартапа Маск, который уже собрал "
    "12 миллиардов долларов и стремится привлечь еще 10 миллиардов. Одним из крупнейших проектов XAI является "
    "центр обработки данных в Мемфисе, который называется Colossus. XAI подвергся критике за использование "
    "газовых турбин, проблематичный фактор окружающей среды."
)


@pytest.fixture(scope="module")
def sentence_reader():
    return SentenceReader(UseEmbedder())


def _best(question: str, sentence: str) -> str:
    spans = choose_spans(sentence, QuestionCues.of(question))
    start, end, _ = max(spans, key=lambda s: s[2])
    return sentence[start:end]


@pytest.mark.parametrize("question, expected", [
    ("Сколько денег уже собрал стартап?", "12 миллиардов долларов"),   # a whole amount, unit words included
    ("Как называется центр обработки данных?", "Colossus"),           # a name right after its anchor
    ("За использование чего критиковали XAI?", "газовых турбин"),     # an adjective keeps its noun
])
def test_the_span_inside_a_sentence_has_the_shape_the_question_asks_for(question, expected):
    sentence = next(s for s in RU_PASSAGE.split(". ") if expected in s)
    assert _best(question, sentence) == expected


def test_the_noun_after_which_may_close_the_answer():
    assert _best("Какую энергию будут использовать центры обработки данных?",
                 "Есть надежда, что такие центры будут использовать ядерную энергию, ускоряя переход.") == "ядерную энергию"


def test_probabilities_leave_room_for_no_answer():
    spans = choose_spans("Компания росла.", QuestionCues.of("Сколько стоит проект?"))
    assert 0 < sum(p for _, _, p in spans) < 0.5  # no amount in the sentence: mostly "no answer here"


def test_reader_returns_exact_passage_offsets_for_russian_and_english_questions(sentence_reader):
    passages = ["An unrelated English passage about the weather in Paris.", RU_PASSAGE]
    for question, expected in [("Сколько денег уже собрал стартап Маска?", "12 миллиардов долларов"),
                               ("What is xAI's data center in Memphis called?", "Colossus")]:
        best = sentence_reader.read(question, passages, top_k=3)[0]
        assert best.passage_index == 1 and best.text == expected
        assert passages[1][best.start:best.end] == best.text and 0 < best.score <= 1


def test_unrelated_question_scores_low(sentence_reader):
    spans = sentence_reader.read("Какая столица у Японии?", [RU_PASSAGE], top_k=1)
    assert not spans or spans[0].score < Settings().answer_threshold


def test_shipped_readers_split_the_languages(trained_reader):
    """The main reader reads English only; the shipped multilingual reader reads Russian (for questions in
    either language), and the sentence reader is what remains when it is turned off."""
    from chatbot.config import SHIPPED_MULTILINGUAL_READER_DIR

    reader = Reader(trained_reader)
    assert reader.reads("en") and not reader.reads("ru")
    assert Reader(SHIPPED_MULTILINGUAL_READER_DIR, precision=Settings().multilingual_reader_precision).reads("ru")


def test_russian_questions_are_answered_in_russian_from_the_russian_article(built_corpus, embedder, trained_reader):
    corpus, index = built_corpus
    bot = Chatbot.load(index_dir=index, corpus_dir=corpus, embedder=embedder,
                       settings=Settings().with_(reader=trained_reader))
    original = (corpus / RU_ARTICLE).read_text(encoding="utf-8")
    for question, expected in [("Сколько денег уже собрал стартап Маска?", {"12 миллиардов долларов", "12 миллиардов"}),
                               ("Как называется центр обработки данных XAI в Мемфисе?", {"Colossus"})]:
        answer = bot.ask(question)
        assert answer.text in expected
        cited = answer.citations[0]
        assert cited.source == RU_ARTICLE and original[cited.answer_start:cited.answer_end] == answer.text
    assert bot.ask("Какая столица у Японии?").text is None


def test_english_question_anchors_on_the_russian_words_that_translate_it(sentence_reader):
    """Stems cannot anchor an English question in a Russian sentence; aligned word vectors can."""
    sentence = ("Маск, кажется, эффективно использует политические отношения для привлечения сильных "
                "инвесторов, включая суверенные фонды и заинтересованных инвесторов.")
    question = "What kind of funds is Musk attracting as investors?"
    plain = QuestionCues.of(question)
    aligned = sentence_reader._align(question, plain, [sentence])
    assert {"фонды", "инвесторов", "привлечения"} <= aligned.aligned and "фонды" in aligned.aligned_focus
    assert not plain.aligned
    best = sentence_reader.read(question, [sentence], top_k=1)[0]
    assert best.text == "суверенные фонды" and sentence[best.start:best.end] == best.text
