"""The cosine of a sentence with the question (chatbot.qa.relevance): the closeness the policy judges by."""

import numpy as np
import pytest

from chatbot.config import SHIPPED_ENCODER_DIR, Settings
from chatbot.errors import ModelLoadError
from chatbot.models.embedding import OnnxEmbedder
from chatbot.qa.relevance import SentenceRelevance

RU_PASSAGE = (
    "Массовые инвестиции в инфраструктуру XAI сильно укрепит позицию стартапа Маск, который уже собрал "
    "12 миллиардов долларов и стремится привлечь еще 10 миллиардов. Одним из крупнейших проектов XAI является "
    "центр обработки данных в Мемфисе, который называется Colossus. XAI подвергся критике за использование "
    "газовых турбин, проблематичный фактор окружающей среды."
)


@pytest.fixture(scope="module")
def shipped():
    return SentenceRelevance.load(SHIPPED_ENCODER_DIR)


class FixedEncoder:
    """Every text's vector from a table: cosines chosen by the test."""

    name, dimension = "fixed", 2

    def __init__(self, vectors: dict[str, tuple[float, float]]):
        self.vectors = vectors

    def embed(self, texts, *, query=False, batch_size=32, show_progress=False):
        return np.array([self.vectors[t] for t in texts], dtype=np.float32)


def test_the_shipped_encoder_puts_the_sentence_that_answers_closest_in_either_language(shipped):
    colossus = "Одним из крупнейших проектов XAI является центр обработки данных в Мемфисе, который называется Colossus."
    turbines = "XAI подвергся критике за использование газовых турбин, проблематичный фактор окружающей среды."
    assert colossus in RU_PASSAGE and turbines in RU_PASSAGE
    for question in ("What is the Memphis data center called?", "Как называется центр обработки данных в Мемфисе?"):
        close, far = shipped.cosines(question, [colossus, turbines])
        assert close > far
    english = shipped.cosines("What is the Memphis data center called?",
                              ["The Memphis data center is called Colossus.", "Oracle will build the supercomputer."])
    assert english[0] > english[1]
    unrelated = shipped.cosines("What is the boiling point of water in Fahrenheit?", ["The Memphis data center is called Colossus."])
    assert unrelated[0] < english[0]


def test_cosines_are_those_of_the_encoders_vectors():
    question, english, other = "Where is it?", "It is in Memphis.", "Nothing here."
    encoder = FixedEncoder({question: (1.0, 0.0), english: (0.6, 0.8), other: (0.0, 1.0)})
    relevance = SentenceRelevance(encoder)
    assert relevance.cosines(question, [english, other]) == pytest.approx([0.6, 0.0])
    assert relevance.cosines(question, []) == []


def test_a_missing_or_damaged_encoder_names_its_setting(tmp_path):
    with pytest.raises(ModelLoadError, match="CHATBOT_RELEVANCE_ENCODER"):
        SentenceRelevance.load(tmp_path / "nowhere")
    (tmp_path / "query_encoder.json").write_text((SHIPPED_ENCODER_DIR / "query_encoder.json").read_text())
    (tmp_path / "model.onnx").write_bytes(b"not a model")
    (tmp_path / "tokenizer.json").write_text((SHIPPED_ENCODER_DIR / "tokenizer.json").read_text())
    with pytest.raises(ModelLoadError, match="encoder in .* cannot be used"):
        SentenceRelevance.load(tmp_path).cosines("x", ["Some text."])
    (tmp_path / "model.onnx").unlink()
    (tmp_path / "model.onnx").symlink_to(SHIPPED_ENCODER_DIR / "model.onnx")
    (tmp_path / "tokenizer.json").write_text('{"not": "a tokenizer"}')
    with pytest.raises(ModelLoadError, match="encoder in .* cannot be used"):
        SentenceRelevance.load(tmp_path).cosines("x", ["Some text."])


def test_the_relevance_encoder_setting(monkeypatch):
    assert Settings().relevance_encoder == str(SHIPPED_ENCODER_DIR)
    monkeypatch.setenv("CHATBOT_RELEVANCE_ENCODER", "")
    assert Settings.from_env().relevance_encoder == ""


def test_the_shipped_encoder_embeds_the_question_once_for_retrieval_and_closeness(built_corpus, embedder,
                                                                                tiny_reader_dir):
    from chatbot.index.sync import ensure_index
    from chatbot.models.reader import Reader
    from chatbot.qa.chatbot import Chatbot

    corpus, index_dir = built_corpus
    settings = Settings().with_(corpus_dir=corpus, index_dir=index_dir)
    bot = Chatbot(ensure_index(settings, embedder=embedder), settings, embedder, Reader(tiny_reader_dir))
    assert bot.relevance.encoder is bot.query_vectors
    calls = []
    real = embedder.embed
    embedder.embed = lambda texts, **kw: calls.append(list(texts)) or real(texts, **kw)
    try:
        bot.ask("Where is the Colossus data center?")
    finally:
        del embedder.embed
    assert sum(t == "Where is the Colossus data center?" for call in calls for t in call) == 1


def test_without_a_sentence_encoder_every_closeness_is_0_and_passages_are_read_whole(built_corpus, embedder,
                                                                                     tiny_reader_dir):
    from chatbot.index.sync import ensure_index
    from chatbot.qa.chatbot import Chatbot
    from chatbot.models.reader import Reader

    corpus, index_dir = built_corpus
    settings = Settings().with_(corpus_dir=corpus, index_dir=index_dir, relevance_encoder="", read_sentences=3)
    bot = Chatbot(ensure_index(settings, embedder=embedder), settings, embedder, Reader(tiny_reader_dir))
    assert bot.relevance is None
    answer = bot.ask("Where is the Colossus data center?", explain=True)
    assert answer.explanation.candidates
    assert all(c.features["closeness"] == 0.0 for c in answer.explanation.candidates)
    passages = bot.retriever.retrieve("Where is the Colossus data center?")
    sentences = bot.sentences(bot.prepare("Where is the Colossus data center?"), passages)
    assert all(s.closeness == 0.0 for of_passage in sentences for s in of_passage)
    assert [[(w.start, w.end) for w in of_passage] for of_passage in bot.windows(passages, sentences)] == [
        [(0, len(p.text))] for p in passages]


def test_export_encoder_writes_an_encoder_that_embeds_as_sentence_transformers_does(tiny_reader_dir, tmp_path):
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.base.modules.normalize import Normalize
    from sentence_transformers.base.modules.transformer import Transformer
    from sentence_transformers.sentence_transformer.modules.pooling import Pooling

    from chatbot.models.embedding import is_onnx_encoder_folder, make_embedder
    from chatbot.models.export import export_encoder

    texts = ["Where is Colossus?", "The Memphis data center is called Colossus, and it runs Grok."]
    transformer = Transformer(str(tiny_reader_dir))
    reference = SentenceTransformer(modules=[transformer, Pooling(transformer.get_embedding_dimension(), "mean"),
                                             Normalize()], device="cpu")
    for int8, tolerance in ((False, 2e-3), (True, 0.05)):
        out = tmp_path / f"encoder-{int8}"
        config = export_encoder(tiny_reader_dir, out, int8=int8)
        assert config["prompt"] == "query: " and config["passage_prompt"] == "passage: " and config["normalize"]
        assert is_onnx_encoder_folder(str(out)) and isinstance(make_embedder(str(out)), OnnxEmbedder)
        for query, prompt in ((True, "query: "), (False, "passage: ")):
            onnx = make_embedder(str(out)).embed(texts, query=query)
            expected = reference.encode([prompt + t for t in texts])
            assert onnx.shape == expected.shape and np.allclose(onnx, expected, atol=tolerance)


def test_cosines_are_those_of_whole_sentences_with_the_question():
    question, near, far = "Where is it?", "It is in Memphis.", "Nothing here."
    relevance = SentenceRelevance(FixedEncoder({question: (1.0, 0.0), near: (0.6, 0.8), far: (0.0, 1.0)}))
    assert relevance.cosines(question, [far, near]) == pytest.approx([0.0, 0.6])
    assert relevance.cosines(question, []) == []
