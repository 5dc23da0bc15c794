"""Activations: values against NumPy formulas and PyTorch, gradients, stability, modules and errors."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tinytorch as tt
import tinytorch.functional as F
from tinytorch.core import activations as act
from tinytorch.core.erf import erf
from tinytorch.testing import gradcheck

from .layer_checks import torch  # noqa: F401  (fixture)
from .strategies import float64_arrays, leaf, shapes

X = np.linspace(-5, 5, 41)


def _sigmoid(x):
    return 1 / (1 + np.exp(-x))


def _phi(x):
    return 0.5 * (1 + np.array([math.erf(v / math.sqrt(2)) for v in x.ravel()]).reshape(x.shape))


FORMULAS = {
    "relu": (act.relu, lambda x: np.maximum(x, 0)),
    "leaky_relu": (lambda x: act.leaky_relu(x, 0.2), lambda x: np.where(x > 0, x, 0.2 * x)),
    "sigmoid": (act.sigmoid, _sigmoid),
    "tanh": (act.tanh, np.tanh),
    "gelu": (act.gelu, lambda x: x * _phi(x)),
    "gelu_tanh": (
        lambda x: act.gelu(x, approximate="tanh"),
        lambda x: 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3))),
    ),
    "softmax": (act.softmax, lambda x: np.exp(x) / np.exp(x).sum(-1, keepdims=True)),
    "log_softmax": (act.log_softmax, lambda x: x - np.log(np.exp(x).sum(-1, keepdims=True))),
}


@pytest.mark.parametrize("name", FORMULAS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_values_match_the_numpy_formula(name, dtype):
    fn, formula = FORMULAS[name]
    x = X.reshape(1, -1).astype(dtype)
    out = fn(tt.from_numpy(x))
    assert out.dtype == dtype
    tol = 1e-6 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(out.data, formula(x.astype(np.float64)), rtol=tol, atol=tol)


@pytest.mark.parametrize("name", FORMULAS)
@settings(max_examples=15)
@given(data=st.data())
def test_gradients(name, data):
    fn, _ = FORMULAS[name]
    shape = data.draw(shapes(min_dims=1, max_dims=3))
    x = data.draw(float64_arrays(shape))
    if name in ("relu", "leaky_relu"):
        x = np.where(np.abs(x) < 1e-3, 0.5, x)  # the kink at 0 has no derivative
    assert gradcheck(fn, leaf(x), name=name)


def test_torch_agrees_on_every_activation(torch):
    x64 = np.random.default_rng(0).normal(0, 3, size=(4, 7))
    tx = torch.from_numpy(x64)
    pairs = [
        (act.relu(tt.from_numpy(x64)), torch.relu(tx)),
        (act.leaky_relu(tt.from_numpy(x64), 0.1), torch.nn.functional.leaky_relu(tx, 0.1)),
        (act.sigmoid(tt.from_numpy(x64)), torch.sigmoid(tx)),
        (act.tanh(tt.from_numpy(x64)), torch.tanh(tx)),
        (act.gelu(tt.from_numpy(x64)), torch.nn.functional.gelu(tx)),
        (act.gelu(tt.from_numpy(x64), "tanh"), torch.nn.functional.gelu(tx, approximate="tanh")),
        (act.softmax(tt.from_numpy(x64), axis=0), torch.softmax(tx, dim=0)),
        (act.log_softmax(tt.from_numpy(x64)), torch.log_softmax(tx, dim=-1)),
    ]
    for ours, theirs in pairs:
        np.testing.assert_allclose(ours.data, theirs.numpy(), rtol=1e-13, atol=1e-14)


def test_gelu_gradient_matches_torch(torch):
    x = np.linspace(-6, 6, 97)
    for approximate in ("none", "tanh"):
        ours = tt.from_numpy(x.copy(), requires_grad=True)
        act.gelu(ours, approximate).sum().backward()
        theirs = torch.from_numpy(x.copy()).requires_grad_()
        torch.nn.functional.gelu(theirs, approximate=approximate).sum().backward()
        np.testing.assert_allclose(ours.grad.data, theirs.grad.numpy(), rtol=1e-12, atol=1e-14)


def test_erf_is_accurate_in_float64_and_float32(torch):
    x = np.concatenate([np.linspace(-7, 7, 20001), [0.0, 0.46875, -4.0, 6.0, np.inf, -np.inf]])
    exact = np.array([math.erf(v) for v in x])
    assert np.max(np.abs(erf(x) - exact)) <= 4.5e-16
    x32 = x.astype(np.float32)
    ours32 = erf(x32)
    assert ours32.dtype == np.float32
    np.testing.assert_allclose(ours32, torch.erf(torch.from_numpy(x32)).numpy(), rtol=0, atol=3e-7)
    assert np.isnan(erf(np.array([np.nan]))[0])


def test_gelu_tanh_approximation_is_close_to_exact():
    x = tt.from_numpy(np.linspace(-8, 8, 2001))
    assert np.max(np.abs(act.gelu(x).data - act.gelu(x, "tanh").data)) < 1e-3


def test_softmax_is_stable_for_huge_logits():
    x = tt.tensor([[1000.0, 1001.0, 1002.0], [-1000.0, -1000.0, -1000.0]])
    p = act.softmax(x)
    assert np.all(np.isfinite(p.data))
    np.testing.assert_allclose(p.data[0], act.softmax(tt.tensor([0.0, 1.0, 2.0])).data, rtol=1e-6)
    np.testing.assert_allclose(p.data[1], [1 / 3] * 3, rtol=1e-6)
    logp = act.log_softmax(tt.tensor([0.0, -200.0]))
    assert np.all(np.isfinite(logp.data)) and logp.data[1] == pytest.approx(-200.0)


def test_sigmoid_does_not_overflow():
    y = act.sigmoid(tt.tensor([-1000.0, 0.0, 1000.0]))
    assert y.tolist() == [0.0, 0.5, 1.0]


@pytest.mark.parametrize(
    "module, function",
    [
        (tt.ReLU(), act.relu),
        (tt.LeakyReLU(0.3), lambda x: act.leaky_relu(x, 0.3)),
        (tt.Sigmoid(), act.sigmoid),
        (tt.Tanh(), act.tanh),
        (tt.GELU(), act.gelu),
        (tt.GELU("tanh"), lambda x: act.gelu(x, "tanh")),
        (tt.Softmax(axis=0), lambda x: act.softmax(x, 0)),
        (tt.LogSoftmax(), act.log_softmax),
    ],
)
def test_modules_compute_their_function(module, function):
    x = tt.randn(3, 5)
    assert np.array_equal(module(x).data, function(x).data)
    assert module.parameters() == []


def test_module_reprs():
    assert repr(tt.LeakyReLU(0.2)) == "LeakyReLU(negative_slope=0.2)"
    assert repr(tt.GELU("tanh")) == "GELU(approximate='tanh')"
    assert repr(tt.Softmax()) == "Softmax(axis=-1)"
    assert repr(tt.LogSoftmax(1)) == "LogSoftmax(axis=1)"


def test_functional_namespace_exports_them():
    x = tt.randn(2, 3)
    for name in ("relu", "leaky_relu", "sigmoid", "tanh", "gelu", "softmax", "log_softmax"):
        assert np.array_equal(getattr(F, name)(x).data, getattr(act, name)(x).data)


def test_bad_arguments_are_clear_errors():
    with pytest.raises(ValueError, match="gelu: approximate must be one of"):
        act.gelu(tt.randn(3), approximate="erf")
    with pytest.raises(ValueError, match="GELU: approximate must be one of"):
        tt.GELU("fast")
    with pytest.raises(TypeError, match="leaky_relu: needs a float tensor, got dtype int64"):
        act.leaky_relu(tt.tensor([1, -2]))
    with pytest.raises(TypeError, match="gelu: needs a float tensor"):
        act.gelu(tt.tensor([1, -2]))
