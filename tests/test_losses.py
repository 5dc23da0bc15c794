"""Losses: values and gradients against PyTorch, gradient checks, stability, and clear errors."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tinytorch as tt
import tinytorch.functional as F
from tinytorch.core.losses import (
    BCELoss,
    BCEWithLogitsLoss,
    BinaryCrossEntropyLoss,
    CrossEntropyLoss,
    MeanSquaredError,
    MSELoss,
    NLLLoss,
    softmax_cross_entropy,
)
from tinytorch.testing import gradcheck

from .layer_checks import torch  # noqa: F401  (fixture)
from .strategies import float64_arrays, leaf, shapes

REDUCTIONS = ["mean", "sum", "none"]


@st.composite
def logits_and_labels(draw, max_n=5, max_c=5):
    n, c = draw(st.integers(1, max_n)), draw(st.integers(1, max_c))
    logits = draw(float64_arrays((n, c), low=-4, high=4))
    labels = np.array(draw(st.lists(st.integers(0, c - 1), min_size=n, max_size=n)), dtype=np.int64)
    return logits, labels


def _numpy_cross_entropy(logits, labels, smoothing):
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_p = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    target = np.full(logits.shape, smoothing / logits.shape[1])
    target[np.arange(len(labels)), labels] += 1 - smoothing
    return -(target * log_p).sum(axis=1), np.exp(log_p) - target


@settings(max_examples=30)
@given(logits_and_labels(), st.sampled_from([0.0, 0.1, 1.0]))
def test_softmax_cross_entropy_is_the_formula(case, smoothing):
    logits, labels = case
    losses, grad = softmax_cross_entropy(np.ascontiguousarray(logits), labels, smoothing)
    expected_losses, expected_grad = _numpy_cross_entropy(logits, labels, smoothing)
    np.testing.assert_allclose(losses, expected_losses, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(grad, expected_grad, rtol=1e-10, atol=1e-12)


@settings(max_examples=15)
@given(logits_and_labels(), st.sampled_from([0.0, 0.2]), st.sampled_from(REDUCTIONS))
def test_cross_entropy_gradcheck(case, smoothing, reduction):
    logits, labels = case
    assert gradcheck(lambda x: F.cross_entropy(x, labels, smoothing, reduction), leaf(logits), name="cross_entropy")


@settings(max_examples=10)
@given(logits_and_labels(), st.sampled_from(REDUCTIONS))
def test_nll_loss_gradcheck(case, reduction):
    logits, labels = case
    assert gradcheck(lambda x: F.nll_loss(x.log_softmax(axis=1), labels, reduction), leaf(logits), name="nll_loss")


@settings(max_examples=10)
@given(
    shapes(min_dims=1, max_dims=3).flatmap(lambda s: st.tuples(float64_arrays(s), float64_arrays(s))),
    st.sampled_from(REDUCTIONS),
)
def test_mse_loss_gradcheck(pair, reduction):
    prediction, target = pair
    assert gradcheck(lambda p, t: F.mse_loss(p, t, reduction), leaf(prediction), leaf(target), name="mse_loss")


@settings(max_examples=10)
@given(
    shapes(min_dims=1, max_dims=2).flatmap(lambda s: st.tuples(float64_arrays(s, 0.05, 0.95), float64_arrays(s, 0, 1)))
)
def test_binary_cross_entropy_gradcheck(pair):
    p, t = pair
    assert gradcheck(lambda a, b: F.binary_cross_entropy(a, b), leaf(p), leaf(t), name="binary_cross_entropy")


@settings(max_examples=10)
@given(shapes(min_dims=1, max_dims=2).flatmap(lambda s: st.tuples(float64_arrays(s, -6, 6), float64_arrays(s, 0, 1))))
def test_binary_cross_entropy_with_logits_gradcheck(pair):
    x, t = pair
    assert gradcheck(lambda a, b: F.binary_cross_entropy_with_logits(a, b), leaf(x), leaf(t), name="bce_with_logits")


def _compare(torch, ours, theirs, inputs, reduction):
    """Run our loss and torch's on the same float64 inputs (the first requires grad); compare value and gradient."""
    mine = tt.tensor(inputs[0], dtype=np.float64, requires_grad=True)
    ref = torch.tensor(inputs[0], requires_grad=True)
    out = ours(mine, *inputs[1:])
    expected = theirs(ref, *(torch.tensor(a) for a in inputs[1:]))
    np.testing.assert_allclose(out.data, expected.detach().numpy(), rtol=1e-10, atol=1e-12)
    cotangent = np.linspace(-1, 1, out.size).reshape(out.shape)
    out.backward(cotangent)
    expected.backward(torch.tensor(cotangent))
    np.testing.assert_allclose(mine.grad.data, ref.grad.numpy(), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_losses_match_pytorch(torch, reduction):
    rng = np.random.default_rng(0)
    logits, labels = rng.standard_normal((6, 4)) * 3, rng.integers(0, 4, 6)
    nn = torch.nn
    _compare(
        torch,
        CrossEntropyLoss(0.1, reduction),
        nn.CrossEntropyLoss(label_smoothing=0.1, reduction=reduction),
        (logits, labels),
        reduction,
    )
    log_p = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    _compare(torch, NLLLoss(reduction), nn.NLLLoss(reduction=reduction), (log_p, labels), reduction)
    pred, target = rng.standard_normal((3, 2)), rng.standard_normal((3, 2))
    _compare(torch, MSELoss(reduction), nn.MSELoss(reduction=reduction), (pred, target), reduction)
    probs, bits = rng.uniform(0.01, 0.99, (5, 2)), rng.integers(0, 2, (5, 2)).astype(np.float64)
    _compare(torch, BinaryCrossEntropyLoss(reduction), nn.BCELoss(reduction=reduction), (probs, bits), reduction)
    _compare(
        torch,
        BCEWithLogitsLoss(reduction),
        nn.BCEWithLogitsLoss(reduction=reduction),
        (logits, rng.uniform(0, 1, logits.shape)),
        reduction,
    )


def test_binary_cross_entropy_at_zero_and_one_is_finite_as_in_pytorch(torch):
    probs, targets = np.array([0.0, 1.0, 0.0, 1.0]), np.array([1.0, 0.0, 0.0, 1.0])
    _compare(torch, BCELoss("none"), torch.nn.BCELoss(reduction="none"), (probs, targets), "none")


def test_cross_entropy_is_stable_for_huge_logits():
    logits = tt.tensor([[1e4, 0.0, -1e4], [-3e4, 3e4, 0.0]], requires_grad=True)
    loss = CrossEntropyLoss(reduction="none")(logits, tt.tensor([2, 1]))
    np.testing.assert_allclose(loss.data, [2e4, 0.0], rtol=1e-6)
    loss.sum().backward()
    assert np.isfinite(logits.grad.data).all()
    np.testing.assert_allclose(logits.grad.data, [[1, 0, -1], [0, 0, 0]], atol=1e-6)


def test_cross_entropy_keeps_float32():
    loss = CrossEntropyLoss()(tt.randn(4, 3, requires_grad=True), np.array([0, 1, 2, 0]))
    assert loss.dtype == np.float32 and loss.shape == ()


def test_seed_course_names_are_the_same_losses():
    assert MeanSquaredError is MSELoss and BCELoss is BinaryCrossEntropyLoss


@pytest.mark.parametrize(
    "call, error, message",
    [
        (
            lambda: CrossEntropyLoss()(tt.randn(4), np.array([0, 1, 2, 3])),
            ValueError,
            r"expected scores of shape \(N, C\), got shape \(4,\)",
        ),
        (
            lambda: CrossEntropyLoss()(tt.randn(4, 3), np.array([0, 1])),
            ValueError,
            r"need labels of shape \(4,\), got \(2,\)",
        ),
        (
            lambda: CrossEntropyLoss()(tt.randn(2, 3), np.array([0, 3])),
            ValueError,
            r"labels must be in \[0, 3\), got values from 0 to 3",
        ),
        (
            lambda: CrossEntropyLoss()(tt.randn(2, 3), np.array([0.0, 1.0])),
            TypeError,
            "labels must be integer class indices",
        ),
        (lambda: CrossEntropyLoss()(tt.tensor([[1, 2]]), np.array([0])), TypeError, "logits must be float"),
        (lambda: CrossEntropyLoss(label_smoothing=1.5), ValueError, r"label_smoothing must be in \[0, 1\]"),
        (lambda: MSELoss(reduction="avg"), ValueError, "reduction must be one of"),
        (
            lambda: F.mse_loss(tt.randn(4, 1), tt.randn(4)),
            ValueError,
            r"predictions of shape \(4, 1\) and targets of shape \(4,\) must match",
        ),
        (
            lambda: F.binary_cross_entropy(tt.tensor([0.5, 2.0]), tt.tensor([1.0, 0.0])),
            ValueError,
            "expects probabilities in",
        ),
        (
            lambda: F.cross_entropy(tt.randn(2, 3), np.array([0, 1]), reduction="max"),
            ValueError,
            "reduction must be one of",
        ),
    ],
)
def test_bad_input_is_a_clear_error(call, error, message):
    with pytest.raises(error, match=message):
        call()
