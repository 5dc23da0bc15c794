"""The original course's names work where they do not contradict the framework's design; its
regularization module's penalties are differentiable and checked numerically and against PyTorch."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tinytorch as tt
from tinytorch.core import regularization
from tinytorch.core.regularization import L1Regularization, L2Regularization
from tinytorch.testing import gradcheck

from .layer_checks import TORCH_REASON
from .strategies import float64_arrays, leaf, shapes


def test_dense_takes_the_original_keywords():
    layer = tt.Dense(input_size=5, output_size=2)
    assert (layer.in_features, layer.out_features, layer.weight.shape) == (5, 2, (2, 5))  # PyTorch's (out, in)
    assert tt.Dense(5, output_size=2).weight.shape == (2, 5)
    with pytest.raises(TypeError, match="Dense: give in_features or input_size .*not both"):
        tt.Dense(5, 2, input_size=5)
    with pytest.raises(TypeError, match="Dense: missing out_features \\(also accepted as output_size\\)"):
        tt.Dense(input_size=5)
    with pytest.raises(ValueError, match="in_features"):
        tt.Dense(input_size=0, output_size=2)


def test_the_original_module_paths():
    from tinytorch.core.autograd import Variable
    from tinytorch.core.losses import BinaryCrossEntropy, MeanSquaredError
    from tinytorch.core.training import DataLoader

    assert Variable is tt.Tensor and DataLoader is tt.DataLoader
    p, t = tt.tensor([0.9, 0.2, 0.6]), tt.tensor([1.0, 0.0, 1.0])
    expected = -np.mean(np.log([0.9, 0.8, 0.6]))
    assert np.isclose(BinaryCrossEntropy()(p, t).item(), expected, rtol=1e-6)
    assert np.isclose(MeanSquaredError()(p, t).item(), np.mean(np.square([0.1, 0.2, 0.4])), rtol=1e-6)
    assert regularization.Dropout is tt.Dropout
    dropout = regularization.Dropout(0.5).eval()
    x = tt.randn(4, 3)
    assert np.array_equal(dropout(x).data, x.data)


@settings(max_examples=15)
@given(shapes(min_dims=1).flatmap(float64_arrays), st.floats(0.0, 3.0))
def test_penalties_are_differentiable(array, lambda_reg):
    array = np.where(np.abs(array) < 1e-3, 0.5, array)  # |w| has no derivative at 0: keep away from it
    for penalty in (L1Regularization(lambda_reg), L2Regularization(lambda_reg)):
        assert gradcheck(lambda w: penalty(w), leaf(array), name=repr(penalty))


@settings(max_examples=15)
@given(shapes(min_dims=1).flatmap(float64_arrays), st.floats(0.0, 3.0))
def test_penalties_match_pytorch(array, lambda_reg):
    torch = pytest.importorskip("torch", reason=TORCH_REASON)
    ours = [leaf(array), leaf(array)]
    theirs = [torch.tensor(array, requires_grad=True) for _ in range(2)]
    l1, l2 = L1Regularization(lambda_reg)(ours[0]), L2Regularization(lambda_reg)(ours[1])
    t1, t2 = lambda_reg * theirs[0].abs().sum(), lambda_reg * theirs[1].pow(2).sum()
    (l1 + l2).backward()
    (t1 + t2).backward()
    np.testing.assert_allclose([l1.item(), l2.item()], [t1.item(), t2.item()], rtol=1e-12, atol=1e-12)
    for mine, reference in zip(ours, theirs):
        np.testing.assert_allclose(mine.grad.data, reference.grad.numpy(), rtol=1e-12, atol=1e-12)


def test_a_module_is_penalised_on_its_weights_not_its_biases():
    net = tt.Sequential(tt.Dense(3, 4), tt.ReLU(), tt.Dense(4, 2))
    penalty = L2Regularization(0.5)(net)
    weights = sum(float((layer.weight.data.astype(np.float64) ** 2).sum()) for layer in (net[0], net[2]))
    assert np.isclose(penalty.item(), 0.5 * weights, rtol=1e-6)
    penalty.backward()
    assert net[0].bias.grad is None and np.allclose(net[0].weight.grad.data, net[0].weight.data)
    two = [tt.ones(2, requires_grad=True), tt.ones(3, requires_grad=True)]
    assert L1Regularization(1.0)(two).item() == 5.0


def test_regularization_shrinks_the_weights_a_model_learns():
    rng = np.random.default_rng(0)
    x = tt.tensor(rng.standard_normal((20, 10)))
    y = tt.tensor(rng.standard_normal((20, 1)))

    def fit(penalty):
        tt.manual_seed(0)
        model = tt.Dense(10, 1)
        optimizer = tt.SGD(model.parameters(), lr=0.05)
        for _ in range(300):
            optimizer.zero_grad()
            loss = tt.MSELoss()(model(x), y)
            (loss + penalty(model) if penalty else loss).backward()
            optimizer.step()
        return np.abs(model.weight.data)

    plain, l2, l1 = fit(None), fit(L2Regularization(0.5)), fit(L1Regularization(0.1))
    assert np.linalg.norm(l2) < 0.6 * np.linalg.norm(plain)
    assert (l1 < 1e-2).sum() > (plain < 1e-2).sum()  # L1 drives weights to (nearly) zero


@pytest.mark.parametrize("bad", [-0.1, float("nan"), float("inf"), "0.1", True])
def test_lambda_must_be_a_finite_non_negative_number(bad):
    with pytest.raises(ValueError, match=f"L2Regularization: lambda_reg must be a finite number >= 0, got {bad!r}"):
        L2Regularization(bad)


def test_a_penalty_needs_weights():
    with pytest.raises(TypeError, match="L1Regularization: expected a weight Tensor.*got ndarray"):
        L1Regularization(0.1)([np.ones(3)])
    with pytest.raises(TypeError, match="got nothing to penalise"):
        L1Regularization(0.1)([])
