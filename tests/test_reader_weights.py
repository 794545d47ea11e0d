"""`chatbot torch-reader`: a transformers checkpoint rebuilt from an int8 ONNX reader holds that reader's weights."""

import shutil

import numpy as np
import pytest

from chatbot.errors import ChatbotError
from chatbot.tools.reader_weights import torch_reader_from_onnx


@pytest.fixture(scope="module")
def onnx_only_reader(tiny_reader_dir, tmp_path_factory):
    """The tiny checkpoint exported to int8 ONNX, then its torch weights removed (as the shipped reader is)."""
    pytest.importorskip("onnxruntime")
    from chatbot.models.export import export_reader

    folder = tmp_path_factory.mktemp("onnx-reader") / "reader"
    shutil.copytree(tiny_reader_dir, folder)
    export_reader(folder, int8=True)
    (folder / "model.onnx").unlink()
    (folder / "model.safetensors").unlink()
    return folder


def _params(model) -> dict[str, np.ndarray]:
    return {k: v.detach().numpy() for k, v in model.state_dict().items() if not k.endswith("position_ids")}


def test_rebuilt_weights_are_the_originals_up_to_int8_rounding(tiny_reader_dir, onnx_only_reader, tmp_path):
    from transformers import AutoModelForQuestionAnswering

    out = torch_reader_from_onnx(onnx_only_reader, tmp_path / "torch")
    original = _params(AutoModelForQuestionAnswering.from_pretrained(tiny_reader_dir))
    rebuilt = _params(AutoModelForQuestionAnswering.from_pretrained(out))
    assert rebuilt.keys() == original.keys()
    quantized = [k for k in original if k.endswith(".weight") and original[k].ndim == 2
                 and "embeddings" not in k and not np.array_equal(original[k], rebuilt[k])]
    assert quantized, "the int8 export quantizes the encoder's linear layers"
    for key, value in original.items():
        if key in quantized:  # one int8 step of the tensor's range at most
            assert np.abs(rebuilt[key] - value).max() <= np.abs(value).max() / 127 + 1e-6, key
            assert np.corrcoef(rebuilt[key].ravel(), value.ravel())[0, 1] > 0.999, key
        else:
            np.testing.assert_array_equal(rebuilt[key], value, err_msg=key)
    assert (out / "tokenizer.json").is_file() or (out / "vocab.txt").is_file()


def test_the_rebuilt_checkpoint_reads_as_the_onnx_reader_does(onnx_only_reader, tmp_path):
    import onnxruntime as ort
    import torch
    from transformers import AutoModelForQuestionAnswering, AutoTokenizer

    out = torch_reader_from_onnx(onnx_only_reader, tmp_path / "torch")
    tokenizer = AutoTokenizer.from_pretrained(out)
    enc = tokenizer("Who signed the deal?", "Oracle signed a deal with xAI worth ten billion dollars.",
                    return_tensors="np")
    with torch.no_grad():
        logits = AutoModelForQuestionAnswering.from_pretrained(out).eval()(
            **{k: torch.tensor(v) for k, v in enc.items()}).start_logits.numpy()
    session = ort.InferenceSession(str(onnx_only_reader / "model_int8.onnx"))
    onnx_logits = session.run(["start_logits"], {i.name: enc[i.name].astype(np.int64) for i in session.get_inputs()})[0]
    assert np.corrcoef(logits.ravel(), onnx_logits.ravel())[0, 1] > 0.99


def test_a_folder_without_an_onnx_reader_is_refused_with_what_to_pass(tiny_reader_dir, tmp_path):
    with pytest.raises(ChatbotError, match="no ONNX reader"):
        torch_reader_from_onnx(tiny_reader_dir, tmp_path / "out")
