import pytest

from chatbot.embedding import Embedder


@pytest.fixture(scope="session")
def embedder():
    """The real bundled all-MiniLM-L6-v2, loaded once for the whole test session."""
    return Embedder()
