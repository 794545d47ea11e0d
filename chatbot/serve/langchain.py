"""LangChain adapter: the chatbot's retriever as a ``BaseRetriever``; needs ``pip install '.[langchain]'``.

    from chatbot import Retriever
    from chatbot.serve.langchain import ChatbotRetriever

    docs = ChatbotRetriever(retriever=Retriever.load(), k=3).invoke("Where is the Colossus supercomputer?")
"""

from __future__ import annotations

try:
    from langchain_core.callbacks import CallbackManagerForRetrieverRun
    from langchain_core.documents import Document
    from langchain_core.retrievers import BaseRetriever
except ImportError as exc:
    raise ImportError(
        "chatbot.serve.langchain needs langchain-core: pip install '.[langchain]' "
        "from the repository (or pip install 'langchain-core>=0.3')."
    ) from exc
from pydantic import ConfigDict, Field

from ..qa.chatbot import Retriever
from ..qa.retrieval import MAX_K


class ChatbotRetriever(BaseRetriever):
    """LangChain retriever over a loaded :class:`chatbot.Retriever` (or ``Chatbot``).

    Returns one ``Document`` per passage: ``page_content`` is the passage text, ``metadata``
    holds ``source``, ``title``, ``start``, ``end`` (character offsets in the original file, or
    in the extracted text stored with the index for PDF, DOCX and HTML), ``page`` (a PDF's page,
    1 = first; else None) and ``score``.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    retriever: Retriever
    k: int = Field(5, ge=1, le=MAX_K, description="Passages returned per query.")

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun) -> list[Document]:
        return [
            Document(page_content=p.text,
                     metadata={"source": p.source, "title": p.title, "start": p.start, "end": p.end, "page": p.page,
                               "score": p.score})
            for p in self.retriever.search(query, self.k)
        ]
