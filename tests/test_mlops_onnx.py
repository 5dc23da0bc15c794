"""ONNX export: every exportable layer, checked by onnx.checker and run in onnxruntime with a dynamic batch axis."""

from __future__ import annotations

import numpy as np
import pytest

import tinytorch as tt
from tinytorch.core.mlops import check_onnx, export_onnx

from .mlops_helpers import randomize_batch_norm, small_cnn

onnx = pytest.importorskip("onnx", reason="ONNX export needs the interchange extra (onnx); it is not installed")
ort = pytest.importorskip("onnxruntime", reason="the exported files are checked in onnxruntime (interchange extra)")


def rng_input(shape, seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


MODELS = {
    "cnn": (small_cnn, (3, 8, 8)),
    "mlp-activations": (lambda: tt.Sequential(tt.Dense(6, 8), tt.LeakyReLU(0.1), tt.Dense(8, 8), tt.Sigmoid(),
                                              tt.Dense(8, 8), tt.Tanh(), tt.Dense(8, 5), tt.Softmax()), (6,)),
    "gelu-layernorm": (lambda: tt.Sequential(tt.Dense(6, 8), tt.GELU(), tt.LayerNorm(8), tt.Dense(8, 8),
                                             tt.GELU("tanh"), tt.LayerNorm(8, elementwise_affine=False), tt.LayerNorm(8, bias=False), tt.Dense(8, 3),
                                             tt.LogSoftmax()), (6,)),
    "pools": (lambda: tt.Sequential(tt.Conv2D(2, 4, 3, stride=2, padding=1), tt.AvgPool2D(3, stride=1, padding=1),
                                    tt.MaxPool2D(2, stride=1, padding=1), tt.BatchNorm2D(4, affine=False),
                                    tt.GlobalAvgPool2D(), tt.BatchNorm1D(4), tt.Dense(4, 3)), (2, 9, 7)),
    "flatten-variants": (lambda: tt.Sequential(tt.Conv2D(2, 3, 1), tt.Flatten(start_axis=2), tt.Dropout(0.5),
                                               tt.Identity(), tt.Flatten(), tt.Dense(3 * 20, 4)), (2, 4, 5)),
    "dense-3d": (lambda: tt.Sequential(tt.Dense(5, 7), tt.ReLU(), tt.Dense(7, 2, bias=False)), (4, 5)),
    "nested": (lambda: tt.Sequential(tt.Sequential(tt.Dense(3, 4), tt.ReLU()), tt.Sequential(tt.Dense(4, 2))), (3,)),
}


@pytest.mark.parametrize("name", MODELS)
def test_export_matches_the_framework_in_onnxruntime_at_every_batch_size(name, tmp_path):
    build, shape = MODELS[name]
    tt.manual_seed(1)
    model = build()
    randomize_batch_norm(model)
    path = export_onnx(model, rng_input((1, *shape)), tmp_path / f"{name}.onnx")
    proto = onnx.load(str(path))
    onnx.checker.check_model(proto, full_check=True)
    assert proto.opset_import[0].version >= 17 and proto.producer_name == "tinytorch"
    batch_dim = proto.graph.input[0].type.tensor_type.shape.dim[0]
    assert batch_dim.dim_param == "batch"  # a dynamic axis, not a fixed size
    for batch in (1, 7):
        error = check_onnx(path, model, rng_input((batch, *shape), seed=batch), rtol=1e-3, atol=1e-5)
        assert error < 1e-4


def test_the_model_keeps_its_mode_and_dropout_is_off_in_the_file(tmp_path):
    model = tt.Sequential(tt.Dense(4, 4), tt.Dropout(0.9))
    model.train()
    path = export_onnx(model, rng_input((2, 4)), tmp_path / "d.onnx")
    assert model.training
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = rng_input((3, 4))
    model.eval()
    with tt.no_grad():
        np.testing.assert_allclose(session.run(None, {"input": x})[0], model(tt.tensor(x)).numpy(), rtol=1e-5, atol=1e-6)


def test_check_onnx_catches_a_wrong_file(tmp_path):
    model = tt.Sequential(tt.Dense(4, 3))
    path = export_onnx(model, rng_input((1, 4)), tmp_path / "m.onnx")
    model[0].weight.data[0, 0] += 1.0  # the model changed after export
    with pytest.raises(ValueError, match="outputs differ beyond rtol=0.001, atol=1e-05"):
        check_onnx(path, model, rng_input((5, 4)))


def test_what_cannot_be_exported_is_named(tmp_path):
    class Custom(tt.Module):
        def forward(self, x):
            return x * 2

    with pytest.raises(TypeError, match=r"cannot export 1 \(Custom\(\)\)"):
        export_onnx(tt.Sequential(tt.Dense(2, 2), Custom()), rng_input((1, 2)), tmp_path / "x.onnx")
    with pytest.raises(ValueError, match="keeps no running statistics"):
        export_onnx(tt.Sequential(tt.BatchNorm1D(2, track_running_stats=False)), rng_input((3, 2)), tmp_path / "y.onnx")
    assert not list(tmp_path.iterdir())  # nothing half-written


def test_embedding_exports_with_integer_input(tmp_path):
    model = tt.Sequential(tt.Embedding(10, 4), tt.Dense(4, 3))
    tokens = np.array([[1, 2, 3], [9, 0, 5]], np.int64)
    path = export_onnx(model, tokens, tmp_path / "e.onnx")
    assert check_onnx(path, model, np.array([[4, 4, 4]], np.int64)) < 1e-5
