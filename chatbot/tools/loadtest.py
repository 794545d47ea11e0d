"""A bounded load test on loopback: many concurrent chat sessions against the web app and the HTTP API.

Each session asks a scripted conversation (follow-ups included, passed as ``history``) through the
Gradio app's ``/ask`` endpoint (gradio_client) or ``POST /ask`` (httpx). Every answer is compared
with the single-user answer to the same turn; the figures are errors, mismatches, latency
percentiles, throughput and the process's resident memory before and after. ``scripts/load_test.py``
runs it from the command line; ``tests/test_load.py`` runs a smaller version in CI.
"""

from __future__ import annotations

import socket
import subprocess
import threading
import time
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

# Conversations over the demo corpus; later turns are follow-ups of earlier ones.
SCRIPTS = [
    ["What is xAI's data center in Memphis called?", "How many GPUs does it house?",
     "Which platform is Grok integrated into?", "Who is the CEO of OpenAI?"],
    ["How much funding did Musk aim to secure for xAI in April?", "At what valuation?",
     "In what year was xAI founded?", "What about Oracle?"],
    ["Who is the technical advisor of the AI Infrastructure Partnership?", "How much will it invest?",
     "Where will it primarily focus its investments?", "What is the capital of France?"],
    ["Сколько денег уже собрал стартап Маска?", "Кто его основал?",
     "Which city granted xAI concessions?", "And when?"],
]



class Session:
    """One user: ``ask(question, earlier questions)`` returns the ``/ask`` answer object; ``close()``."""

    def __init__(self, ask: Callable[[str, list[str]], dict], close: Callable[[], object]):
        self.ask, self.close = ask, close


def process_memory_mb(pid: int | None = None, field: str = "VmRSS") -> float | None:
    """``field`` of /proc/PID/status in MiB (Linux): ``VmRSS`` resident now, ``VmHWM`` the peak; ``pid``
    defaults to this process. None once the process has exited."""
    try:
        with open(f"/proc/{pid or 'self'}/status", encoding="ascii") as fh:
            return next(int(line.split()[1]) / 1024 for line in fh if line.startswith(field + ":"))
    except (OSError, StopIteration, ValueError):
        return None


def free_port() -> int:
    """A loopback TCP port that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_process(argv: list[str], probe_url: str, log_path: Path, *, cwd: Path | None = None,
                  env: dict | None = None, startup_s: float = 600) -> subprocess.Popen:
    """Start a server process (output to ``log_path``) and return it once ``probe_url`` answers;
    ``RuntimeError`` with the log's tail if it exits or does not answer in ``startup_s``."""
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + startup_s
    while True:
        problem = f"exited with {proc.returncode}" if proc.poll() is not None else None
        if problem is None and time.monotonic() > deadline:
            proc.kill()
            problem = f"did not answer {probe_url} in {startup_s:.0f}s"
        if problem:
            raise RuntimeError(f"{' '.join(argv[:3])} {problem}:\n{log_path.read_text(errors='replace')[-3000:]}")
        try:
            with urllib.request.urlopen(probe_url, timeout=5):
                return proc
        except OSError:
            time.sleep(1)


class LocalServers:
    """Servers run in this process on free loopback ports; all stopped by :meth:`close`."""

    def __init__(self):
        self._stops: list[Callable[[], object]] = []

    def http(self, app) -> str:
        """Serve an ASGI ``app`` with uvicorn in a thread; its base URL."""
        import uvicorn

        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + 30
        while not server.started:
            if time.monotonic() > deadline or not thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.05)
        self._stops.append(lambda: (setattr(server, "should_exit", True), thread.join(10)))
        return f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"

    def gradio(self, blocks) -> str:
        """Launch a Gradio ``blocks`` app without blocking; its base URL (with a trailing slash)."""
        port = free_port()
        blocks.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
        self._stops.append(blocks.close)
        return f"http://127.0.0.1:{port}/"

    def close(self) -> None:
        for stop in reversed(self._stops):
            stop()
        self._stops.clear()


def http_session(base_url: str) -> Session:
    """One user of the HTTP API (its own connection)."""
    import httpx

    client = httpx.Client(base_url=base_url, timeout=600, verify=False)  # plain http on loopback: no CA bundle

    def ask(question: str, history: list[str]) -> dict:
        response = client.post("/ask", json={"question": question, "history": history})
        response.raise_for_status()
        return response.json()

    return Session(ask, client.close)


def gradio_session(url: str) -> Session:
    """One user of the web app's ``/ask`` endpoint (its own gradio_client session)."""
    from gradio_client import Client

    client = Client(url, verbose=False)
    return Session(lambda question, history: client.predict(question, history, api_name="/ask"), client.close)


@dataclass
class LoadResult:
    face: str
    sessions: int
    questions: int = 0
    errors: list[str] = field(default_factory=list)
    mismatches: list[str] = field(default_factory=list)
    latencies_ms: list[float] = field(default_factory=list)
    single_user_ms: list[float] = field(default_factory=list)
    hostile_sessions: int = 0
    hostile_latencies_ms: list[float] = field(default_factory=list)
    wall_s: float = 0.0
    rss_before_mb: float = 0.0
    rss_after_mb: float = 0.0

    def percentile(self, values: list[float], q: float) -> float:
        ordered = sorted(values)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")

    def summary(self) -> dict:
        lat = self.latencies_ms
        return {
            "face": self.face, "sessions": self.sessions, "questions": self.questions,
            "errors": len(self.errors), "mismatches": len(self.mismatches),
            "single_user_p50_ms": round(self.percentile(self.single_user_ms, 0.5)),
            "p50_ms": round(self.percentile(lat, 0.5)), "p95_ms": round(self.percentile(lat, 0.95)),
            "max_ms": round(max(lat, default=float("nan"))),
            "throughput_qps": round(self.questions / self.wall_s, 2) if self.wall_s else 0.0,
            "wall_s": round(self.wall_s, 1),
            "rss_before_mb": round(self.rss_before_mb), "rss_after_mb": round(self.rss_after_mb),
        } | ({"hostile_sessions": self.hostile_sessions,
              "hostile_p50_ms": round(self.percentile(self.hostile_latencies_ms, 0.5)),
              "hostile_p95_ms": round(self.percentile(self.hostile_latencies_ms, 0.95))}
             if self.hostile_sessions else {})


def _comparable(answer: dict) -> dict:
    return {k: v for k, v in answer.items() if k != "latency_ms"}


def run_load(face: str, new_session: Callable[[], Session], sessions: int = 50, questions: int = 3,
             scripts: list[list[str]] = SCRIPTS, pid: int | None = None, hostile: int = 0,
             hostile_history: list[str] | None = None) -> LoadResult:
    """Ask every script once as a single user, then run ``sessions`` sessions at once (session ``i``
    asks the first ``questions`` turns of ``scripts[i % len(scripts)]``) and compare. RSS is that of
    the server process ``pid`` (default: this process, for servers run in it).

    ``hostile`` more sessions run beside them, each sending ``hostile_history`` (the largest history a
    face accepts) as the history of every question: their answers are not compared and their latencies
    are kept apart, so that the figures say what they do to everyone else's questions."""
    result = LoadResult(face, sessions, hostile_sessions=hostile)
    scripts = [script[:questions] for script in scripts[: min(len(scripts), sessions)]]
    reference: list[list[dict]] = []
    for script in scripts:  # single user, one turn at a time (also warms everything up)
        user, history, answers = new_session(), [], []
        for question in script:
            started = time.perf_counter()
            answers.append(_comparable(user.ask(question, list(history))))
            result.single_user_ms.append((time.perf_counter() - started) * 1000)
            history.append(question)
        user.close()
        reference.append(answers)

    lock = threading.Lock()
    start = threading.Barrier(sessions + hostile)

    def session(i: int) -> None:
        script, expected = scripts[i % len(scripts)], reference[i % len(scripts)]
        attacker = i >= sessions
        try:
            user = new_session()
        except Exception as exc:  # noqa: BLE001 - every failure is counted, none stops the run
            with lock:
                result.errors.append(f"session {i}: {type(exc).__name__}: {exc}")
            start.wait()
            return
        start.wait()
        history: list[str] = []
        for turn, question in enumerate(script):
            started = time.perf_counter()
            try:
                answer = _comparable(user.ask(question, list(hostile_history or []) if attacker else list(history)))
            except Exception as exc:  # noqa: BLE001
                with lock:
                    result.errors.append(f"session {i} turn {turn}: {type(exc).__name__}: {exc}")
                history.append(question)
                continue
            elapsed = (time.perf_counter() - started) * 1000
            with lock:
                if attacker:
                    result.hostile_latencies_ms.append(elapsed)
                    history.append(question)
                    continue
                result.questions += 1
                result.latencies_ms.append(elapsed)
                if answer != expected[turn]:
                    result.mismatches.append(f"session {i} turn {turn}: {answer} != {expected[turn]}")
            history.append(question)
        user.close()

    result.rss_before_mb = process_memory_mb(pid) or 0.0
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=sessions + hostile) as pool:
        list(pool.map(session, range(sessions + hostile)))
    result.wall_s = time.perf_counter() - started
    result.rss_after_mb = process_memory_mb(pid) or 0.0
    return result
