"""ONNX Runtime sessions for the reader and the query encoder: answering without torch.

Importing onnxruntime and opening both sessions takes well under a second, where torch,
transformers and sentence-transformers take about 5 s to import on the 2-core target machine.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import ModelLoadError

RUNTIMES = ("auto", "onnx", "torch")


def check_runtime(runtime: str) -> str:
    if runtime not in RUNTIMES:
        raise ValueError(f"runtime must be one of {RUNTIMES}, got {runtime!r}")
    return runtime


def onnxruntime_available() -> bool:
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def open_session(model: Path | bytes, threads: int, what: str):
    """An ``InferenceSession`` on ``threads`` intra-op threads and one inter-op thread; ``ModelLoadError``
    naming ``what`` when onnxruntime is missing or the model cannot be read."""
    try:
        import onnxruntime as ort
    except ImportError as exc:
        raise ModelLoadError(f"The ONNX {what} needs onnxruntime: pip install onnxruntime ({exc})") from exc
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    # Idle worker threads sleep instead of spinning: on 2 shared cores a spinning thread takes the core
    # from whatever runs next (as FAISS's OpenMP threads did from torch). Reading three passages with
    # the int8 reader while other jobs kept the load average at 3.5: 209 ms median without spinning,
    # 263 ms with.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3  # errors only: no optimizer chatter on stderr
    try:
        return ort.InferenceSession(model if isinstance(model, bytes) else str(model), options,
                                    providers=["CPUExecutionProvider"])
    except Exception as exc:  # missing, truncated or foreign file
        where = "" if isinstance(model, bytes) else f" {model}"
        raise ModelLoadError(f"Cannot load the ONNX {what}{where}: {' '.join(str(exc).split())[:300]}") from exc
