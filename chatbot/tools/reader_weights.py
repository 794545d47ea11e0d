"""``chatbot torch-reader``: rebuild a transformers checkpoint from a shipped int8 ONNX reader.

A developer step for the comparison with Haystack 2 (``chatbot bench --vs-haystack``), whose
``TransformersExtractiveReader`` reads with torch weights, while the package ships the reader as
ONNX only (the training run's output is not kept). The int8 graph is ONNX Runtime's dynamic
quantization of a ``BertForQuestionAnswering`` export (chatbot.models.export): each quantized
linear layer is a ``MatMulInteger`` whose weight is ``(q - zero_point) * scale``, the layers kept in
float are ``MatMul`` nodes, and some tensors are stored in fp16 (``*_fp16``, cast at load). The
module a weight belongs to is read from the name of the node's output
(``/model/bert/encoder/layer.0/attention/self/query/MatMul_output_0...``), the other tensors keep
their torch names. The checkpoint holds the int8 model's weights exactly (in fp32); only the
activations, quantized per run by ONNX Runtime, differ, so its answers are the shipped reader's
up to that rounding.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np

from ..errors import ChatbotError
from ..models.reader import ONNX_FILES

_MODULE = re.compile(r"^/model/(.+)/MatMul(?:_output_0.*)?$")
# Files copied beside the weights: the tokenizer and the architecture.
_COPIED = ("config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")


def _array(initializers: dict, name: str) -> np.ndarray:
    from onnx import numpy_helper

    return numpy_helper.to_array(initializers[name])


def _stored_weight(name: str, initializers: dict, produced_by: dict) -> str | None:
    """The initializer behind the node input ``name``, following Casts from fp16 storage and the Identity
    nodes by which the exporter shares equal tensors; None when it is an activation."""
    while name not in initializers:
        node = produced_by.get(name)
        if node is None or node.op_type not in ("Cast", "Identity"):
            return None
        name = node.input[0]
    return name


def state_dict_from_onnx(model_file: Path) -> dict[str, np.ndarray]:
    """The torch state dict (names without the ``model.`` prefix of the export wrapper) of a reader graph."""
    import onnx

    graph = onnx.load(str(model_file)).graph
    initializers = {t.name: t for t in graph.initializer}
    produced_by = {out: node for node in graph.node for out in node.output}

    state: dict[str, np.ndarray] = {}
    used: set[str] = set()
    for node in graph.node:
        if node.op_type not in ("MatMul", "MatMulInteger"):
            continue
        module = _MODULE.match(node.output[0])
        weight = node.input[1]
        source = _stored_weight(weight, initializers, produced_by)
        if module is None or source is None:
            continue  # attention's activation-by-activation products
        key = module.group(1).replace("/", ".")
        key = key[len("model."):] if key.startswith("model.") else key
        if node.op_type == "MatMulInteger":
            stem = weight[: -len("_quantized")]
            q = _array(initializers, weight).astype(np.float32)
            matrix = (q - _array(initializers, f"{stem}_zero_point").astype(np.float32)) * _array(
                initializers, f"{stem}_scale").astype(np.float32)
            used.update({weight, f"{stem}_zero_point", f"{stem}_scale"})
        else:
            matrix = _array(initializers, source).astype(np.float32)
            used.add(source)
        state[f"{key}.weight"] = np.ascontiguousarray(matrix.T)  # ONNX: [in, out]; torch Linear: [out, in]
    named = [t for t in initializers if t not in used] + [n.output[0] for n in graph.node if n.op_type == "Identity"]
    for name in named:
        if name.startswith("model."):
            source = _stored_weight(name, initializers, produced_by)
            state[name[len("model."):].removesuffix("_fp16")] = _array(initializers, source).astype(np.float32)
    return state


def torch_reader_from_onnx(reader_dir: str | Path, out: str | Path) -> Path:
    """Write ``out``: a transformers QA checkpoint (safetensors, fp32) with the weights of the ONNX
    reader in ``reader_dir``, its config and tokenizer beside them. Every weight of the architecture
    must be found in the graph (a missing or unexpected one is an error, not a random init)."""
    import torch
    from transformers import AutoConfig, AutoModelForQuestionAnswering

    reader_dir, out = Path(reader_dir), Path(out)
    model_file = next((reader_dir / f for f in ONNX_FILES.values() if (reader_dir / f).is_file()), None)
    if model_file is None or not (reader_dir / "config.json").is_file():
        raise ChatbotError(f"{reader_dir}: no ONNX reader with its config.json (expected one of {', '.join(ONNX_FILES.values())})")
    state = {k: torch.from_numpy(v) for k, v in state_dict_from_onnx(model_file).items()}
    model = AutoModelForQuestionAnswering.from_config(AutoConfig.from_pretrained(reader_dir))
    expected = model.state_dict()
    tied = {k for k in expected if k.endswith("position_ids")}
    missing = sorted(set(expected) - set(state) - tied)
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise ChatbotError(f"{model_file}: the graph's weights do not match {reader_dir / 'config.json'}: "
                           f"missing {missing[:5]}, unexpected {unexpected[:5]}")
    for key, value in state.items():
        if tuple(value.shape) != tuple(expected[key].shape):
            raise ChatbotError(f"{model_file}: {key} has shape {tuple(value.shape)}, the config wants "
                               f"{tuple(expected[key].shape)}")
    model.load_state_dict(state, strict=False)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    for name in _COPIED:
        if (reader_dir / name).is_file():
            shutil.copy2(reader_dir / name, out / name)
    return out
