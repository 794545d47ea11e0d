"""Embed the retriever in your own program: cited passages in three lines.

    python examples/embed_retriever.py "Where is the Colossus supercomputer?"

``Retriever.load()`` indexes ``corpus/`` into ``index/`` in the current directory (or the folders
that CHATBOT_CORPUS / CHATBOT_INDEX name, or pass ``corpus_dir=``/``index_dir=``); the index is
built on first use and rebuilt when the files change.
"""

import sys

from chatbot import Retriever

retriever = Retriever.load()
for passage in retriever.search(" ".join(sys.argv[1:]) or "Where is the Colossus supercomputer?", k=3):
    print(f"{passage.source} chars {passage.start}-{passage.end} (score {passage.score:.4f}): {passage.title}")
    print(f"    {' '.join(passage.text.split())[:200]}")
