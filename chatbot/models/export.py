"""Export torch models to ONNX, so that answering runs on ONNX Runtime without torch.

Two exports, both with torch's TorchScript-based exporter (``dynamo=False``: it needs only the
``onnx`` package, where the dynamo exporter also needs onnxscript):

- the reader (a developer step, ``chatbot export-reader``): ``model.onnx`` (fp32 compute) and,
  on request, ``model_int8.onnx`` (onnxruntime dynamic quantization, :func:`quantize_reader`),
  beside the weights;
- the index's query encoder (at index build, chatbot.index.store): the sentence-transformers model's
  transformer alone; pooling and normalisation run in numpy (chatbot.models.embedding.OnnxQueryEmbedder).
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
import warnings
from contextlib import contextmanager
from pathlib import Path

from ..errors import ChatbotError
from .reader import ONNX_FILES
from .tokenization import TOKENIZER_FILE

log = logging.getLogger(__name__)

_INPUTS = ["input_ids", "attention_mask", "token_type_ids"]
OPSET = 17
QUERY_ENCODER_FILE = "model.onnx"
QUERY_ENCODER_CONFIG = "query_encoder.json"
POOLINGS = ("mean", "cls")  # sentence-transformers pooling modes that OnnxQueryEmbedder implements


def export_onnx(model, out: Path, outputs: dict[str, str]) -> None:
    """Write ``model`` (a transformers model taking input ids, attention mask and token type ids)
    to ``out``, with batch and sequence length left free; ``outputs`` maps the ONNX output names to
    the model's output fields."""
    import torch

    class Outputs(torch.nn.Module):  # keyword inputs in, the chosen output fields out
        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, input_ids, attention_mask, token_type_ids):
            out = self.model(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids)
            return tuple(out[field] for field in outputs.values())

    ids = torch.ones(2, 16, dtype=torch.long)
    mask = torch.ones_like(ids)
    mask[1, 12:] = 0  # a padded row, so that no "nothing is padded" shortcut is traced
    names = _INPUTS + list(outputs)
    # The tracer warns that transformers' mask code turns shape checks into constants; those checks are
    # about cached keys, which these encoders never have (tests/test_onnx.py compares the outputs).
    with torch.inference_mode(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            Outputs().eval(), (ids, mask, torch.zeros_like(ids)), str(out), dynamo=False,
            input_names=_INPUTS, output_names=list(outputs), opset_version=OPSET,
            dynamic_axes={name: {0: "batch", 1: "sequence"} for name in names},
        )


@contextmanager
def _eager_attention(model):
    """``model`` with plain matmul-softmax attention while exporting: its graph runs about 10 %
    faster on ONNX Runtime than the exported scaled-dot-product attention."""
    before = model.config._attn_implementation
    model.config._attn_implementation = "eager"
    try:
        yield model.eval()
    finally:
        model.config._attn_implementation = before


def quantize_reader(fp32: Path, out: Path) -> None:
    """int8 weights, one scale per output channel (dynamic quantization: activations are quantized
    on the fly), for the attention projections and feed-forward input layers; the feed-forward output
    layers, the span head and the attention products stay fp32. Of the int8 variants measured, the
    one within 1 F1 of fp32 that keeps the eval gate's abstentions (model card, "Runtime").

    The weights use 7 of the 8 bits (``reduce_range``): on x86 CPUs with AVX2 but no VNNI, ONNX Runtime adds
    pairs of 8-bit products in 16 bits, which full-range weights overflow, so the same model answered
    differently there (gate F1 45.2 against 50.1 on a CPU without AVX2; evals/README.md, "The int8 reader on
    AVX2 CPUs")."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    graph = onnx.load(str(fp32)).graph
    weights = {t.name for t in graph.initializer}
    keep_fp32 = [n.name for n in graph.node if n.op_type == "MatMul" and _keeps_fp32(n.name, weights & set(n.input))]
    quantize_dynamic(str(fp32), str(out), weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul"],
                     nodes_to_exclude=keep_fp32, per_channel=True, reduce_range=True)


def _keeps_fp32(node: str, weights: set[str]) -> bool:
    """Whether the exported MatMul ``node`` (e.g. ``/model/bert/encoder/layer.0/output/dense/MatMul``) stays fp32."""
    return not weights or "/qa_outputs/" in node or ("/output/dense/" in node and "/attention/" not in node)


def export_reader(model_dir: str | Path, int8: bool = False) -> dict[str, Path]:
    """Export the transformers QA checkpoint in ``model_dir`` to ``model.onnx`` beside it (fp32
    compute, see :func:`store_weights_in_fp16`) and, when ``int8``, to ``model_int8.onnx``
    (:func:`quantize_reader`, its fp32 weights stored as fp16 where exact too); returns ``{precision: file}``."""
    import torch
    from transformers import AutoModelForQuestionAnswering

    model_dir = Path(model_dir)
    try:
        model = AutoModelForQuestionAnswering.from_pretrained(model_dir, dtype=torch.float32)
    except Exception as exc:
        raise ChatbotError(f"Cannot load the reader checkpoint in {model_dir}: {exc}") from exc
    written = {"fp32": model_dir / ONNX_FILES["fp32"]}
    with tempfile.TemporaryDirectory() as tmp:
        fp32 = Path(tmp) / ONNX_FILES["fp32"]
        with _eager_attention(model):
            export_onnx(model, fp32, {"start_logits": "start_logits", "end_logits": "end_logits"})
        store_weights_in_fp16(fp32, written["fp32"])
        if int8:
            written["int8"] = model_dir / ONNX_FILES["int8"]
            int8_weights = Path(tmp) / ONNX_FILES["int8"]
            quantize_reader(fp32, int8_weights)
            store_weights_in_fp16(int8_weights, written["int8"])  # the layers left fp32 (embeddings, head)
    return written


def store_weights_in_fp16(fp32: Path, out: Path, exact: bool = True) -> None:
    """``fp32`` with every large weight that fp16 holds exactly (all of them for the shipped reader,
    whose checkpoint is fp16) stored in fp16 and cast back to fp32 when the session loads: half the
    file, the same logits. With ``exact=False`` every large fp32 weight is rounded to fp16."""
    import numpy as np
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(fp32))
    graph, casts, initializers = model.graph, [], []
    for tensor in graph.initializer:
        weights = numpy_helper.to_array(tensor)
        half = weights.astype(np.float16)
        if weights.dtype != np.float32 or weights.size <= 1024 or (
                exact and not np.array_equal(half.astype(np.float32), weights)):
            initializers.append(tensor)
            continue
        initializers.append(numpy_helper.from_array(half, f"{tensor.name}_fp16"))
        casts.append(helper.make_node("Cast", [f"{tensor.name}_fp16"], [tensor.name], to=onnx.TensorProto.FLOAT,
                                      name=f"{tensor.name}_cast"))
    nodes = casts + list(graph.node)
    del graph.initializer[:], graph.node[:]
    graph.initializer.extend(initializers)
    graph.node.extend(nodes)
    onnx.save(model, str(out))


def export_encoder(model_dir: str | Path, out_dir: str | Path, query_prompt: str = "query: ",
                   passage_prompt: str = "passage: ", int8: bool = True) -> dict:
    """Export the transformers encoder in ``model_dir`` (mean pooling, normalised; e5's prompts) as an
    encoder folder that :class:`~chatbot.models.embedding.OnnxEmbedder` runs for passages, queries and
    sentences: ``model.onnx`` (with ``int8``, every matrix product's weights int8, the rest rounded to fp16,
    computed in fp32: :func:`quantize_encoder`), ``tokenizer.json`` and ``query_encoder.json`` in
    ``out_dir``. Returns the encoder config."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.base.modules.normalize import Normalize
    from sentence_transformers.base.modules.transformer import Transformer
    from sentence_transformers.sentence_transformer.modules.pooling import Pooling

    try:
        transformer = Transformer(str(model_dir))
    except Exception as exc:
        raise ChatbotError(f"Cannot load the encoder in {model_dir}: {exc}") from exc
    st_model = SentenceTransformer(
        modules=[transformer, Pooling(transformer.get_embedding_dimension(), "mean"), Normalize()],
        prompts={"query": query_prompt}, device="cpu")
    out_dir = Path(out_dir)
    with tempfile.TemporaryDirectory() as tmp:
        config = export_query_encoder(st_model, Path(tmp))
        if config is None:
            raise ChatbotError(f"The encoder in {model_dir} cannot be exported (see the log).")
        config["passage_prompt"] = passage_prompt
        out_dir.mkdir(parents=True, exist_ok=True)
        exported = Path(tmp) / QUERY_ENCODER_FILE
        if int8:
            quantize_encoder(exported, Path(tmp) / "int8.onnx")
            exported = Path(tmp) / "int8.onnx"
        store_weights_in_fp16(exported, out_dir / QUERY_ENCODER_FILE, exact=False)
        shutil.copyfile(Path(tmp) / TOKENIZER_FILE, out_dir / TOKENIZER_FILE)
        (out_dir / QUERY_ENCODER_CONFIG).write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    return config


def quantize_encoder(fp32: Path, out: Path) -> None:
    """int8 weights, one scale per output channel, for every matrix product with a weight (dynamic
    quantization). On the 2-core target it embeds passages about 2.2 times as fast as fp32; the cosine
    between its vectors and fp32's is 0.995 on average (the encoder's card)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(str(fp32), str(out), weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul"],
                     per_channel=True)


def query_encoder_config(st_model) -> dict | None:
    """What :class:`~chatbot.models.embedding.OnnxQueryEmbedder` needs to reproduce ``st_model.encode_query``,
    or None (with a log line saying why) when the model has modules or settings it does not reproduce."""
    from sentence_transformers.base.modules.normalize import Normalize
    from sentence_transformers.base.modules.transformer import Transformer
    from sentence_transformers.sentence_transformer.modules.pooling import Pooling

    modules = list(st_model)
    kinds = [type(m) for m in modules]
    prompt = (st_model.prompts or {}).get("query", "")
    reasons = [
        kinds not in ([Transformer, Pooling], [Transformer, Pooling, Normalize]) and f"modules {kinds}",
        Pooling in kinds and modules[1].pooling_mode not in POOLINGS and f"pooling {modules[1].pooling_mode!r}",
        Pooling in kinds and prompt and not modules[1].include_prompt and "a query prompt left out of pooling",
        Transformer in kinds and modules[0].do_lower_case and "do_lower_case",
        Transformer in kinds and not getattr(modules[0].tokenizer, "is_fast", False) and "no fast tokenizer",
        Transformer in kinds and getattr(modules[0], "query_length", None) and "a query length",
    ]
    if any(reasons):
        log.info("no ONNX query encoder for this embedder (%s): queries are embedded by sentence-transformers",
                 ", ".join(r for r in reasons if r))
        return None
    return {"pooling": modules[1].pooling_mode, "normalize": Normalize in kinds, "prompt": prompt,
            "max_length": int(st_model.max_seq_length), "dimension": int(st_model.get_embedding_dimension())}


def export_query_encoder(st_model, out_dir: Path) -> dict | None:
    """Write ``st_model``'s transformer (``model.onnx``, its output the token embeddings), its
    ``tokenizer.json`` and ``query_encoder.json`` into ``out_dir``; returns that config, or None when
    the model is not one :func:`query_encoder_config` accepts (nothing is written then)."""
    config = query_encoder_config(st_model)
    if config is None:
        return None
    transformer = st_model[0]
    out_dir.mkdir(parents=True, exist_ok=True)
    with _eager_attention(transformer.auto_model) as model:
        export_onnx(model, out_dir / QUERY_ENCODER_FILE, {"token_embeddings": "last_hidden_state"})
    transformer.tokenizer.backend_tokenizer.save(str(out_dir / TOKENIZER_FILE))
    (out_dir / QUERY_ENCODER_CONFIG).write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    return config
