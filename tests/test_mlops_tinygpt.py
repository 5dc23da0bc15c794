"""TinyGPT leaves the framework too: packaged, exported to ONNX with free batch and sequence axes, served."""

from __future__ import annotations

import numpy as np
import pytest

import tinytorch as tt
from tinytorch.core.mlops import (BackgroundServer, Signature, ServerSettings, check_onnx, create_app, export_onnx,
                                  load_package, package)
from tinytorch.tinygpt import TinyGPT

pytest.importorskip("safetensors", reason="packages need the interchange extra (safetensors)")


@pytest.fixture(params=[True, False], ids=["bias", "no-bias"])
def gpt(request):
    """A small TinyGPT with biases, and one without (nanoGPT's layout: no shift in any Dense or LayerNorm)."""
    tt.manual_seed(2)
    model = TinyGPT(13, d_model=16, num_heads=2, num_layers=2, max_length=10, dropout=0.1, bias=request.param)
    model.eval()
    return model


def tokens(shape, seed=0):
    return np.random.default_rng(seed).integers(0, 13, size=shape)


def test_onnx_export_matches_in_onnxruntime_for_every_batch_and_length(gpt, tmp_path):
    pytest.importorskip("onnxruntime", reason="the exported file is checked in onnxruntime (interchange extra)")
    onnx = pytest.importorskip("onnx", reason="ONNX export needs the interchange extra")
    path = export_onnx(gpt, tokens((2, 6)), tmp_path / "gpt.onnx")
    graph = onnx.load(str(path)).graph
    assert [d.dim_param for d in graph.input[0].type.tensor_type.shape.dim] == ["batch", "sequence"]
    assert [d.dim_param or d.dim_value for d in graph.output[0].type.tensor_type.shape.dim] == ["batch", "sequence", 13]
    for i, shape in enumerate([(1, 1), (3, 4), (2, 10)]):
        assert check_onnx(path, gpt, tokens(shape, seed=i), rtol=1e-3, atol=1e-5) < 1e-4


def signature(model):
    return Signature.infer(model, tokens((1, 4)), value_range=(0, 12), dynamic_axes=(0, 1), max_shape=(-1, 10))


def test_package_round_trip_keeps_the_tied_head(gpt, tmp_path):
    folder = package(gpt, tmp_path / "gpt", signature=signature(gpt))
    loaded = load_package(folder)
    assert type(loaded.model) is TinyGPT and loaded.model.config == gpt.config
    assert loaded.model.head.weight is loaded.model.token_embedding.weight
    x = tokens((2, 7))
    with tt.no_grad():
        np.testing.assert_array_equal(loaded.model(x).numpy(), gpt(x).numpy())
    assert loaded.signature.input.to_json() == {"name": "input", "dtype": "int64", "shape": [-1, -1],
                                                "value_range": [0, 12], "max_shape": [-1, 10]}


def test_served_tokens_are_checked_against_vocabulary_and_context(gpt, tmp_path):
    httpx = pytest.importorskip("httpx", reason="the server needs the serve extra")
    pytest.importorskip("uvicorn", reason="the server needs the serve extra")
    loaded = load_package(package(gpt, tmp_path / "gpt", signature=signature(gpt)))
    with BackgroundServer(create_app(loaded, ServerSettings(max_batch=4))) as url, httpx.Client(base_url=url) as client:
        ok = client.post("/predict", json={"inputs": tokens((1, 5)).tolist()})
        assert ok.status_code == 200 and np.array(ok.json()["outputs"]).shape == (1, 5, 13)
        assert "predictions" not in ok.json()  # a sequence model: logits only
        for bad, message in (([[1, 2, 13]], "expected values in [0, 12]"), ([[1] * 11], "at most [-1, 10]"),
                             ([[0.5, 1.0]], "expected integers")):
            response = client.post("/predict", json={"inputs": bad})
            assert response.status_code == 422 and message in response.json()["error"], response.text
        assert client.post("/predict", json={"inputs": tokens((2, 3)).tolist()}).status_code == 200
