"""Ranking candidate answers by their sentence's closeness to the question (chatbot.relevance)."""

import dataclasses
import json
import math

import numpy as np
import pytest

from chatbot.config import SHIPPED_RELEVANCE_ENCODER_DIR, Settings
from chatbot.errors import ModelLoadError
from chatbot.relevance import OnnxSentenceEncoder, RelevanceSettings, SentenceRelevance

RU_PASSAGE = (
    "Массовые инвестиции в инфраструктуру XAI сильно укрепит позицию стартапа Маск, который уже собрал "
    "12 миллиардов долларов и стремится привлечь еще 10 миллиардов. Одним из крупнейших проектов XAI является "
    "центр обработки данных в Мемфисе, который называется Colossus. XAI подвергся критике за использование "
    "газовых турбин, проблематичный фактор окружающей среды."
)
EN_PASSAGE = "Oracle will build the supercomputer. The Memphis data center is called Colossus. It runs Grok."


@pytest.fixture(scope="module")
def shipped():
    return SentenceRelevance.load(SHIPPED_RELEVANCE_ENCODER_DIR)


class FixedEncoder:
    """Every text's vector from a table: cosines chosen by the test."""

    name, dimension = "fixed", 2

    def __init__(self, vectors: dict[str, tuple[float, float]]):
        self.vectors = vectors

    def embed(self, texts, *, query=False, batch_size=32, show_progress=False):
        return np.array([self.vectors[t] for t in texts], dtype=np.float32)


def test_the_shipped_encoder_puts_the_sentence_that_answers_closest_in_either_language(shipped):
    for question in ("What is the Memphis data center called?", "Как называется центр обработки данных в Мемфисе?"):
        colossus, turbines = RU_PASSAGE.index("Colossus"), RU_PASSAGE.index("газовых")
        closeness = shipped.closeness(question, [(RU_PASSAGE, colossus), (RU_PASSAGE, turbines)])
        weights = shipped.weights(closeness)
        assert weights[0] == 1.0 and 0 < weights[1] < 0.5
    english = shipped.closeness("What is the Memphis data center called?", [(EN_PASSAGE, EN_PASSAGE.index("Colossus")),
                                                                            (EN_PASSAGE, 0)])
    assert english[0] > english[1]


def test_the_shipped_settings_abstain_on_a_sentence_that_does_not_say_what_was_asked(shipped):
    floor = shipped.settings.min_closeness
    asked = shipped.closeness("What is the Memphis data center called?", [(EN_PASSAGE, EN_PASSAGE.index("Colossus"))])
    unrelated = shipped.closeness("What is the boiling point of water in Fahrenheit?", [(EN_PASSAGE, 0)])
    assert shipped.close_enough(asked[0]) and not shipped.close_enough(unrelated[0])
    assert floor is not None and unrelated[0] < floor <= asked[0]


def test_closeness_adds_the_language_offset_to_sentences_in_another_language():
    question, english, russian = "Where is it?", "It is in Memphis.", "Он в Мемфисе."
    encoder = FixedEncoder({question: (1.0, 0.0), english: (0.6, 0.8), russian: (0.6, 0.8)})
    relevance = SentenceRelevance(encoder, RelevanceSettings(temperature=0.1, language_offset=0.05))
    en, ru = relevance.closeness(question, [(english, 0), (russian, 0)])
    assert en == pytest.approx(0.6) and ru == pytest.approx(0.65)
    assert relevance.weights([en, ru]) == pytest.approx([math.exp(-0.05 / 0.1), 1.0])
    # whole_passage: the closest sentence of each passage, wherever the offset points.
    both = f"{english} Nothing here."
    encoder.vectors["Nothing here."] = (0.0, 1.0)
    assert relevance.closeness(question, [(both, len(both) - 1)], whole_passage=True) == pytest.approx([0.6])
    assert relevance.closeness(question, [(both, len(both) - 1)]) == pytest.approx([0.0])


def test_temperature_zero_turns_the_ranking_off_and_no_floor_keeps_every_answer():
    relevance = SentenceRelevance(FixedEncoder({}), RelevanceSettings(temperature=0.0))
    assert relevance.weights([0.1, 0.9]) == [1.0, 1.0]
    assert relevance.close_enough(-1.0)


def test_settings_are_read_beside_the_encoder_and_a_bad_file_says_what_to_do(tmp_path):
    assert RelevanceSettings.load(tmp_path) == RelevanceSettings()  # none: USE's defaults
    (tmp_path / "relevance.json").write_text(json.dumps({"temperature": 0.05, "min_closeness": 0.8, "note": "x"}))
    assert RelevanceSettings.load(tmp_path) == RelevanceSettings(temperature=0.05, min_closeness=0.8)
    (tmp_path / "relevance.json").write_text("{not json")
    with pytest.raises(ModelLoadError, match="relevance.json.*CHATBOT_RELEVANCE_ENCODER"):
        RelevanceSettings.load(tmp_path)


def test_a_missing_or_damaged_encoder_names_its_setting(tmp_path):
    with pytest.raises(ModelLoadError, match="CHATBOT_RELEVANCE_ENCODER"):
        OnnxSentenceEncoder(tmp_path / "nowhere")
    (tmp_path / "query_encoder.json").write_text((SHIPPED_RELEVANCE_ENCODER_DIR / "query_encoder.json").read_text())
    (tmp_path / "model.onnx").write_bytes(b"not a model")
    (tmp_path / "tokenizer.json").write_text((SHIPPED_RELEVANCE_ENCODER_DIR / "tokenizer.json").read_text())
    with pytest.raises(ModelLoadError, match="sentence encoder in .* cannot be used"):
        OnnxSentenceEncoder(tmp_path).embed(["x"])


def test_the_relevance_encoder_setting(monkeypatch):
    assert Settings().relevance_encoder == str(SHIPPED_RELEVANCE_ENCODER_DIR)
    monkeypatch.setenv("CHATBOT_RELEVANCE_ENCODER", "")
    assert Settings.from_env().relevance_encoder == ""


def test_the_pipeline_abstains_when_the_answer_sentence_is_under_the_floor(built_corpus, embedder, tiny_reader_dir):
    from chatbot.pipeline import Chatbot, ensure_index
    from chatbot.reader import Reader

    corpus, index_dir = built_corpus
    settings = Settings().with_(corpus_dir=corpus, index_dir=index_dir, answer_threshold=0.0, min_similarity=-1.0)
    bot = Chatbot(ensure_index(settings, embedder=embedder), settings, embedder,
                  Reader(tiny_reader_dir, no_answer_threshold=0.0))
    question = "Which platform is Grok integrated into?"
    bot.relevance.settings = dataclasses.replace(bot.relevance.settings, min_closeness=None)
    assert bot.ask(question).text
    bot.relevance.settings = dataclasses.replace(bot.relevance.settings, min_closeness=1.5)
    answer = bot.ask(question)
    assert answer.text is None and answer.citations and all(c.answer_start is None for c in answer.citations)
    # Without an encoder of its own, the multilingual embedder ranks, with USE's settings.
    plain = Chatbot(bot.index, settings.with_(relevance_encoder=""), embedder, bot.reader)
    assert plain.relevance.settings == RelevanceSettings() and plain.relevance.encoder.name == plain.retriever.multilingual.name


def test_export_encoder_writes_an_encoder_that_embeds_as_sentence_transformers_does(tiny_reader_dir, tmp_path):
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.base.modules.normalize import Normalize
    from sentence_transformers.base.modules.transformer import Transformer
    from sentence_transformers.sentence_transformer.modules.pooling import Pooling

    from chatbot.export import export_sentence_encoder

    config = export_sentence_encoder(tiny_reader_dir, tmp_path / "encoder")
    assert config["prompt"] == "query: " and config["pooling"] == "mean" and config["normalize"]
    texts = ["Where is Colossus?", "The Memphis data center is called Colossus, and it runs Grok."]
    onnx = OnnxSentenceEncoder(tmp_path / "encoder").embed(texts)
    transformer = Transformer(str(tiny_reader_dir))
    reference = SentenceTransformer(modules=[transformer, Pooling(transformer.get_embedding_dimension(), "mean"),
                                             Normalize()], device="cpu").encode(["query: " + t for t in texts])
    assert onnx.shape == reference.shape and np.allclose(onnx, reference, atol=2e-3)
