"""A few dedicated threads that do all the answering of a server.

Servers take requests on many threads (uvicorn's and Gradio's pools hold dozens). If each of them
ran the models, each would keep its own allocator arena and scratch buffers sized for a forward
pass, and memory would grow with the number of threads that ever answered (measured: +550 MB for
50 concurrent sessions). Handing the work to ``settings.concurrency`` fixed threads, first come
first served, keeps memory flat and latency fair (docs/hardening.md, "Load").
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")


class AnswerWorkers:
    """``run(fn)`` calls ``fn()`` on one of ``n`` dedicated threads and returns (or raises) its result."""

    def __init__(self, n: int):
        self._pool = ThreadPoolExecutor(max_workers=max(1, n), thread_name_prefix="chatbot-answer")

    def run(self, fn: Callable[[], T]) -> T:
        return self._pool.submit(fn).result()
