"""LangChain adapter: Documents with cited-passage metadata; a clear message without the extra."""

import subprocess
import sys
from pathlib import Path

import pytest

from chatbot import Retriever

ROOT = Path(__file__).resolve().parents[1]


def test_missing_langchain_names_the_extra():
    code = "import sys; sys.modules['langchain_core'] = None; import chatbot.serve.langchain"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 1 and "pip install '.[langchain]'" in out.stderr


def test_invoke_returns_documents_with_passage_metadata(built_corpus, embedder):
    pytest.importorskip("langchain_core", reason="langchain-core not installed (pip install '.[langchain]')")
    from langchain_core.documents import Document
    from pydantic import ValidationError

    from chatbot.serve.langchain import ChatbotRetriever

    corpus, index_dir = built_corpus
    retriever = Retriever.load(index_dir=index_dir, corpus_dir=corpus, embedder=embedder)
    docs = ChatbotRetriever(retriever=retriever, k=3).invoke("Colossus Memphis")
    assert len(docs) == 3 and all(isinstance(d, Document) for d in docs)
    expected = retriever.search("Colossus Memphis", 3)
    assert [d.page_content for d in docs] == [p.text for p in expected]
    assert [d.metadata for d in docs] == [{k: v for k, v in p.to_dict().items() if k != "text"} for p in expected]
    with pytest.raises(ValidationError):
        ChatbotRetriever(retriever=retriever, k=0)
    with pytest.raises(ValueError, match="empty"):
        ChatbotRetriever(retriever=retriever).invoke("  ")
