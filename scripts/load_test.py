"""Load test on loopback: ``python scripts/load_test.py [--sessions 50] [--questions 3] [--rounds 2]``.

Starts the two servers as they are deployed, each in its own process on a free loopback port
(``chatbot serve`` for the web app, ``chatbot serve-api`` for the HTTP API, over ``--corpus`` and
``--index``, with the shipped or ``CHATBOT_READER`` reader), then runs ``--sessions`` concurrent
sessions against each, ``--rounds`` times (chatbot/loadtest.py). Prints one JSON line per round:
errors, answers differing from the single-user ones, latency p50/p95/max under load, throughput,
and the *server process's* RSS before and after. Exit status 1 on any error or mismatch.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing


def start(command: str, args, log_dir: Path):
    """``chatbot COMMAND`` on a free loopback port: the process and its base URL, once it answers."""
    from chatbot.tools.loadtest import free_port, start_process

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = os.environ | {"PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
                        "GRADIO_ANALYTICS_ENABLED": "False", "NO_PROXY": "127.0.0.1,localhost"}
    proc = start_process([sys.executable, "-m", "chatbot", command, "--port", str(port), "--corpus", args.corpus,
                          "--index", args.index], url + ("/health" if command == "serve-api" else "/"),
                         log_dir / f"{command}.log", env=env)
    return proc, url


def hostile_history(settings) -> list[str]:
    """The largest history every face accepts: ``max_history_turns`` questions of ``max_question_chars``
    characters, full of names (each one a candidate subject of a follow-up)."""
    names = " ".join(f"Colossus{i} Memphis{i} Oracle{i}" for i in range(200))
    return [names[: settings.max_question_chars].rsplit(" ", 1)[0] + "?"] * settings.max_history_turns


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=50)
    parser.add_argument("--questions", type=int, default=3, help="turns per session (at most 4)")
    parser.add_argument("--rounds", type=int, default=2, help="load runs per server (memory should stay flat)")
    parser.add_argument("--corpus", default=str(ROOT / "corpus"))
    parser.add_argument("--index", default=str(ROOT / "index"))
    parser.add_argument("--faces", nargs="+", default=["gradio", "http"], choices=["gradio", "http"])
    parser.add_argument("--hostile", type=int, default=0,
                        help="more sessions that send the largest history a face accepts with every question")
    args = parser.parse_args()
    from chatbot.config import Settings
    from chatbot.tools.loadtest import gradio_session, http_session, run_load

    settings = Settings.from_env()
    print(json.dumps({"sessions": args.sessions, "questions": args.questions, "concurrency": settings.concurrency,
                      "web_queue_size": settings.web_queue_size, "threads": settings.threads,
                      "cpus": os.cpu_count()}), flush=True)
    subprocess.run([sys.executable, "-m", "chatbot", "index", "--corpus", args.corpus, "--index", args.index],
                   check=True, cwd=ROOT, env=os.environ | {"PYTHONPATH": str(ROOT)}, stdout=subprocess.DEVNULL)
    failed = False
    with tempfile.TemporaryDirectory() as logs:
        for face in args.faces:
            proc, url = start("serve" if face == "gradio" else "serve-api", args, Path(logs))
            try:
                new_session = (lambda: gradio_session(url + "/")) if face == "gradio" else (lambda: http_session(url))
                for n in range(args.rounds):
                    result = run_load(face, new_session, args.sessions, args.questions, pid=proc.pid,
                                      hostile=args.hostile, hostile_history=hostile_history(settings))
                    print(json.dumps({"round": n + 1, **result.summary()}, ensure_ascii=False), flush=True)
                    for problem in (result.errors + result.mismatches)[:5]:
                        print("  " + problem[:500], file=sys.stderr)
                    failed |= bool(result.errors or result.mismatches)
            finally:
                proc.terminate()
                proc.wait(30)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
