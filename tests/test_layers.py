"""Dense, Flatten, Identity, Dropout, Embedding, LayerNorm, BatchNorm1D: values, PyTorch, gradients, modes, errors."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tinytorch as tt
import tinytorch.functional as F
from tinytorch.testing import gradcheck

from .layer_checks import copy_into_torch, gradcheck_module, torch  # noqa: F401  (torch is a fixture)
from .strategies import float64_arrays, leaf, shapes


def _randn(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


# -- Dense ------------------------------------------------------------------------------------------
def test_dense_computes_x_wT_plus_b():
    layer = tt.Dense(5, 3)
    x = _randn(4, 5).astype(np.float32)
    expected = x @ layer.weight.data.T + layer.bias.data
    np.testing.assert_allclose(layer(tt.tensor(x)).data, expected, rtol=1e-6)
    assert layer(tt.tensor(x)).dtype == np.float32


def test_dense_applies_to_the_last_axis():
    layer = tt.Dense(5, 3)
    x = tt.randn(2, 7, 5)
    out = layer(x)
    assert out.shape == (2, 7, 3)
    np.testing.assert_allclose(out.data[1, 4], layer(x[1, 4]).data, rtol=1e-6)


def test_dense_flattens_image_shaped_input():
    layer = tt.Dense(2 * 3 * 4, 6)
    x = tt.randn(5, 2, 3, 4)
    np.testing.assert_allclose(layer(x).data, layer(x.reshape(5, 24)).data, rtol=1e-6)


def test_dense_without_bias():
    layer = tt.Dense(4, 2, bias=False)
    assert layer.bias is None and [n for n, _ in layer.named_parameters()] == ["weight"]
    assert repr(layer) == "Dense(4 -> 2, bias=False)"
    x = tt.randn(3, 4)
    np.testing.assert_allclose(layer(x).data, x.data @ layer.weight.data.T, rtol=1e-6)


def test_dense_matches_torch_linear(torch):
    ours = tt.Dense(6, 4).double()
    theirs = torch.nn.Linear(6, 4)
    copy_into_torch(theirs, ours)
    x = _randn(3, 2, 6)
    xt = torch.from_numpy(x).requires_grad_()
    xo = tt.from_numpy(x.copy(), requires_grad=True)
    cot = _randn(3, 2, 4, seed=1)
    ours(xo).backward(cot)
    theirs(xt).backward(torch.from_numpy(cot))
    np.testing.assert_allclose(xo.grad.data, xt.grad.numpy(), rtol=1e-12)
    np.testing.assert_allclose(ours.weight.grad.data, theirs.weight.grad.numpy(), rtol=1e-12)
    np.testing.assert_allclose(ours.bias.grad.data, theirs.bias.grad.numpy(), rtol=1e-12)


def test_dense_default_init_matches_pytorch_bounds():
    layer = tt.Dense(400, 300)
    bound = 1 / math.sqrt(400)
    for p in (layer.weight, layer.bias):
        assert np.abs(p.data).max() <= bound and np.abs(p.data).max() > 0.9 * bound
    # U(-b, b) has standard deviation b / sqrt(3)
    assert layer.weight.data.std() == pytest.approx(bound / math.sqrt(3), rel=0.02)


@settings(max_examples=15)
@given(data=st.data())
def test_dense_gradients(data):
    lead = data.draw(shapes(min_dims=1, max_dims=2, max_side=3))
    n_in, n_out = data.draw(st.integers(1, 4)), data.draw(st.integers(1, 4))
    bias = data.draw(st.booleans())
    x = data.draw(float64_arrays(lead + (n_in,)))
    assert gradcheck_module(tt.Dense(n_in, n_out, bias=bias), x)


def test_dense_gradient_through_image_flattening():
    x = np.random.default_rng(2).uniform(-1, 1, size=(2, 2, 3, 2)).transpose(0, 1, 3, 2)  # non-contiguous
    assert gradcheck_module(tt.Dense(12, 3), x)


def test_dense_errors_name_the_layer_and_shapes():
    with pytest.raises(ValueError, match=r"^Dense\(784 -> 10\) got input of shape \(32, 100\); the last dimension must be 784$"):
        tt.Dense(784, 10)(tt.randn(32, 100))
    with pytest.raises(ValueError, match=r"Dense\(12 -> 2\) got input of shape \(2, 3, 5\)"):
        tt.Dense(12, 2)(tt.randn(2, 3, 5))
    with pytest.raises(TypeError, match=r"Dense\(3 -> 2\) got input of dtype float64 but its parameters are float32"):
        tt.Dense(3, 2)(tt.from_numpy(np.zeros((1, 3))))
    with pytest.raises(TypeError, match=r"Dense\(3 -> 2\) got input of dtype int64; it needs float32"):
        tt.Dense(3, 2)(tt.tensor([[1, 2, 3]]))
    with pytest.raises(ValueError, match="Dense: in_features must be a positive integer, got 0"):
        tt.Dense(0, 3)


def test_dense_accepts_numpy_input():
    layer = tt.Dense(3, 2)
    out = layer(np.ones((1, 3), dtype=np.uint8))
    np.testing.assert_allclose(out.data, layer(tt.ones(1, 3)).data)


def test_linear_alias_and_functional():
    assert tt.Linear is tt.Dense
    w, b, x = tt.randn(3, 4), tt.randn(3), tt.randn(2, 4)
    np.testing.assert_allclose(F.linear(x, w, b).data, x.data @ w.data.T + b.data, rtol=1e-6)
    with pytest.raises(ValueError, match=r"linear: input of shape \(2, 4\) does not fit weight \(4, 3\)"):
        F.linear(x, w.T)
    with pytest.raises(ValueError, match=r"linear: bias has shape \(4,\); expected \(3,\)"):
        F.linear(x, w, tt.randn(4))


# -- Identity and Flatten ---------------------------------------------------------------------------
def test_identity_returns_its_input():
    x = tt.randn(2, 3)
    assert tt.Identity()(x) is x


def test_flatten_merges_axes():
    x = tt.randn(2, 3, 4, 5, requires_grad=True)
    assert tt.Flatten()(x).shape == (2, 60)
    assert tt.Flatten(start_axis=2)(x).shape == (2, 3, 20)
    assert tt.Flatten(0, 1)(x).shape == (6, 4, 5)
    tt.Flatten()(x).sum().backward()
    assert x.grad.shape == x.shape
    with pytest.raises(ValueError, match=r"Flatten\(start_axis=1, end_axis=-1\) got input of shape \(5,\)"):
        tt.Flatten()(tt.randn(5))


# -- Dropout ----------------------------------------------------------------------------------------
def test_dropout_zeroes_about_p_and_scales_the_rest():
    x = tt.ones(200, 500)
    out = tt.Dropout(0.3)(x).data
    kept = out != 0
    assert kept.mean() == pytest.approx(0.7, abs=0.01)
    np.testing.assert_allclose(out[kept], 1 / 0.7, rtol=1e-6)
    assert out.dtype == np.float32


def test_dropout_is_seeded_by_the_framework_generator():
    tt.manual_seed(5)
    a = tt.Dropout(0.5)(tt.ones(50)).data
    tt.manual_seed(5)
    b = tt.Dropout(0.5)(tt.ones(50)).data
    assert np.array_equal(a, b)


def test_dropout_gradient_uses_the_same_mask():
    x = tt.randn(40, 30, requires_grad=True)
    out = F.dropout(x, 0.4)
    cot = _randn(40, 30).astype(np.float32)
    out.backward(cot)
    mask = out.data / x.data
    np.testing.assert_allclose(x.grad.data, cot * mask, rtol=1e-5, atol=1e-6)


def test_dropout_is_the_identity_in_eval_mode_and_for_p_zero():
    x = tt.randn(4, 4)
    layer = tt.Dropout(0.5)
    assert layer.eval()(x) is x
    assert F.dropout(x, 0.0) is x
    assert np.all(F.dropout(x, 1.0).data == 0)
    assert repr(layer) == "Dropout(p=0.5)"


def test_dropout_rejects_bad_p():
    with pytest.raises(ValueError, match="Dropout: p must be a probability in \\[0, 1\\], got 1.5"):
        tt.Dropout(1.5)
    with pytest.raises(ValueError, match="dropout: p must be"):
        F.dropout(tt.randn(2), -0.1)


# -- Embedding --------------------------------------------------------------------------------------
def test_embedding_looks_up_rows():
    emb = tt.Embedding(10, 4)
    idx = np.array([[1, 3], [3, 9]])
    out = emb(tt.tensor(idx))
    assert out.shape == (2, 2, 4)
    np.testing.assert_array_equal(out.data, emb.weight.data[idx])
    assert repr(emb) == "Embedding(10, 4)"


def test_embedding_gradient_accumulates_for_repeated_indices():
    emb = tt.Embedding(5, 3)
    idx = np.array([2, 0, 2, 2])
    cot = _randn(4, 3).astype(np.float32)
    emb(idx).backward(cot)
    expected = np.zeros((5, 3), dtype=np.float32)
    for i, row in zip(idx, cot):
        expected[i] += row
    np.testing.assert_allclose(emb.weight.grad.data, expected, rtol=1e-6)


@settings(max_examples=10)
@given(idx_shape=shapes(min_dims=1, max_dims=2, max_side=4), num=st.integers(1, 4), dim=st.integers(1, 3), seed=st.integers(0, 99))
def test_embedding_gradcheck(idx_shape, num, dim, seed):
    emb = tt.Embedding(num, dim).double()
    idx = np.random.default_rng(seed).integers(0, num, size=idx_shape)
    assert gradcheck(lambda w: emb(idx), emb.weight, name="Embedding")


def test_embedding_matches_torch(torch):
    ours = tt.Embedding(7, 3)
    theirs = torch.nn.Embedding(7, 3)
    copy_into_torch(theirs, ours)
    idx = np.array([[0, 6, 6], [2, 2, 1]])
    np.testing.assert_allclose(ours(idx).data, theirs(torch.from_numpy(idx)).detach().numpy())
    assert ours.weight.data.std() == pytest.approx(1.0, abs=0.6)  # N(0, 1) init, as in PyTorch


def test_embedding_errors():
    emb = tt.Embedding(100, 16)
    with pytest.raises(IndexError, match=r"Embedding\(100, 16\) got index 120; indices must be in \[0, 100\)"):
        emb(tt.tensor([3, 120]))
    with pytest.raises(IndexError, match="got index -1"):
        emb(np.array([-1]))
    with pytest.raises(TypeError, match="got indices of dtype float32; expected integers"):
        emb(tt.tensor([1.0]))
    with pytest.raises(IndexError, match=r"embedding got index 3; indices must be in \[0, 3\)"):
        F.embedding(np.array([3]), tt.randn(3, 2))


# -- LayerNorm --------------------------------------------------------------------------------------
def _layer_norm(x, axes, w, b, eps=1e-5):
    mean = x.mean(axis=axes, keepdims=True)
    var = x.var(axis=axes, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * w + b


def test_layer_norm_matches_the_formula():
    ln = tt.LayerNorm((3, 4)).double()
    ln.weight.data[...] = _randn(3, 4)
    ln.bias.data[...] = _randn(3, 4, seed=1)
    x = _randn(2, 3, 4, seed=2) * 5 + 3
    np.testing.assert_allclose(ln(tt.from_numpy(x)).data, _layer_norm(x, (1, 2), ln.weight.data, ln.bias.data), rtol=1e-12)


def test_layer_norm_matches_torch(torch):
    ours = tt.LayerNorm(6, eps=1e-3)
    ours.weight.data[...] = _randn(6)
    theirs = torch.nn.LayerNorm(6, eps=1e-3)
    copy_into_torch(theirs, ours)
    x = _randn(4, 6).astype(np.float32)
    np.testing.assert_allclose(ours(tt.tensor(x)).data, theirs(torch.from_numpy(x)).detach().numpy(), rtol=1e-5, atol=1e-6)


def test_layer_norm_without_bias_matches_torch(torch):
    ours = tt.LayerNorm(6, bias=False).double()
    assert ours.bias is None and [name for name, _ in ours.named_parameters()] == ["weight"]
    ours.weight.data[...] = _randn(6)
    theirs = torch.nn.LayerNorm(6, bias=False).double()
    theirs.load_state_dict({"weight": torch.from_numpy(ours.weight.data.copy())})
    x = _randn(4, 6)
    np.testing.assert_allclose(ours(tt.from_numpy(x)).data, theirs(torch.from_numpy(x)).detach().numpy(), rtol=1e-12)
    assert repr(ours) == "LayerNorm((6,), eps=1e-05, bias=False)"
    assert gradcheck_module(ours, _randn(3, 6, seed=3))


@settings(max_examples=15)
@given(data=st.data())
def test_layer_norm_gradients(data):
    lead = data.draw(shapes(min_dims=1, max_dims=2, max_side=3))
    features = data.draw(shapes(min_dims=1, max_dims=2, min_side=2, max_side=3))
    affine = data.draw(st.booleans())
    ln = tt.LayerNorm(features, elementwise_affine=affine).double()
    if affine:
        ln.weight.data[...] = data.draw(float64_arrays(features, layout="contiguous"))
        ln.bias.data[...] = data.draw(float64_arrays(features, layout="contiguous"))
        x = data.draw(float64_arrays(lead + features))
        assert gradcheck_module(ln, x)
    else:
        x = data.draw(float64_arrays(lead + features))
        assert gradcheck(ln, leaf(x), name="LayerNorm")


def test_layer_norm_errors_and_repr():
    ln = tt.LayerNorm(64)
    assert repr(ln) == "LayerNorm((64,), eps=1e-05)"
    with pytest.raises(ValueError, match=r"LayerNorm\(\(64,\), eps=1e-05\) got input of shape \(2, 32\); its last dimensions must be \(64,\)"):
        ln(tt.randn(2, 32))
    with pytest.raises(ValueError, match="layer_norm: input of shape"):
        F.layer_norm(tt.randn(2, 3), 4)
    with pytest.raises(ValueError, match="normalized_shape must be positive integers"):
        tt.LayerNorm(0)


# -- BatchNorm1D ------------------------------------------------------------------------------------
def test_batch_norm_1d_training_normalises_each_feature():
    bn = tt.BatchNorm1D(3).double()
    bn.weight.data[...] = [1.0, 2.0, 0.5]
    bn.bias.data[...] = [0.0, -1.0, 3.0]
    x = _randn(8, 3) * [1, 10, 0.1] + [5, -2, 0]
    expected = _layer_norm(x, 0, bn.weight.data, bn.bias.data)
    np.testing.assert_allclose(bn(tt.from_numpy(x)).data, expected, rtol=1e-10)


def test_batch_norm_1d_running_statistics_and_eval_match_torch(torch):
    ours = tt.BatchNorm1D(4, momentum=0.2)
    theirs = torch.nn.BatchNorm1d(4, momentum=0.2)
    rng = np.random.default_rng(0)
    for _ in range(3):
        x = (rng.standard_normal((6, 4)) * 3 + 1).astype(np.float32)
        np.testing.assert_allclose(ours(tt.tensor(x)).data, theirs(torch.from_numpy(x)).detach().numpy(), rtol=1e-4, atol=1e-5)
    state = ours.state_dict()
    for name, value in theirs.state_dict().items():
        np.testing.assert_allclose(state[name], value.numpy(), rtol=1e-5, err_msg=name)
    ours.eval(), theirs.eval()
    x = rng.standard_normal((5, 4)).astype(np.float32)
    np.testing.assert_allclose(ours(tt.tensor(x)).data, theirs(torch.from_numpy(x)).detach().numpy(), rtol=1e-5, atol=1e-6)


def test_batch_norm_1d_accepts_sequences():
    bn = tt.BatchNorm1D(2).double()
    x = _randn(3, 2, 5)
    np.testing.assert_allclose(bn(tt.from_numpy(x)).data, _layer_norm(x, (0, 2), 1.0, 0.0), rtol=1e-10)


def test_batch_norm_momentum_none_is_a_cumulative_average():
    bn = tt.BatchNorm1D(1, momentum=None)
    means = []
    for seed in range(3):
        x = _randn(4, 1, seed=seed).astype(np.float32)
        means.append(x.mean())
        bn(tt.tensor(x))
    assert float(bn.running_mean.data[0]) == pytest.approx(np.mean(means), rel=1e-5)
    assert int(bn.num_batches_tracked.item()) == 3


@settings(max_examples=10)
@given(data=st.data())
def test_batch_norm_1d_gradients_in_training_and_eval(data):
    n, c = data.draw(st.integers(2, 4)), data.draw(st.integers(1, 3))
    x = data.draw(float64_arrays((n, c)))
    bn = tt.BatchNorm1D(c).double()
    bn.weight.data[...] = data.draw(float64_arrays((c,), layout="contiguous"))
    assert gradcheck_module(bn, x)
    bn.running_var.data[...] = 0.5 + np.arange(c)
    bn.running_mean.data[...] = 0.1 * np.arange(c)
    bn.eval()
    assert gradcheck_module(bn, x)


def test_batch_norm_without_running_stats_uses_batch_statistics_in_eval():
    bn = tt.BatchNorm1D(2, track_running_stats=False, affine=False).eval()
    assert bn.state_dict() == {} and bn.parameters() == []
    x = _randn(5, 2).astype(np.float32)
    np.testing.assert_allclose(bn(tt.tensor(x)).data, _layer_norm(x, 0, 1.0, 0.0), rtol=1e-5, atol=1e-6)


def test_batch_norm_1d_errors():
    bn = tt.BatchNorm1D(3)
    with pytest.raises(ValueError, match=r"BatchNorm1D\(3, eps=1e-05, momentum=0.1\) got input of shape \(4, 5\) with 5 channels; expected 3"):
        bn(tt.randn(4, 5))
    with pytest.raises(ValueError, match=r"got input of shape \(3,\); expected \(N, C\) or \(N, C, L\)"):
        bn(tt.randn(3))
    with pytest.raises(ValueError, match="one value per channel"):
        bn(tt.randn(1, 3))
    assert bn.eval()(tt.randn(1, 3)).shape == (1, 3)  # eval on one sample is fine
    with pytest.raises(ValueError, match="batch_norm: evaluation"):
        F.batch_norm(tt.randn(2, 3), None, None)


def test_batch_norm_state_dict_round_trip():
    a = tt.BatchNorm1D(3)
    a(tt.randn(8, 3) * 4 + 2)
    b = tt.BatchNorm1D(3)
    b.load_state_dict(a.state_dict())
    x = tt.randn(2, 3)
    assert np.array_equal(a.eval()(x).data, b.eval()(x).data)
    assert list(a.state_dict()) == ["weight", "bias", "running_mean", "running_var", "num_batches_tracked"]


# -- every layer ------------------------------------------------------------------------------------
LAYERS = {
    "Dense": (lambda: tt.Dense(4, 3), lambda: tt.randn(2, 4)),
    "LayerNorm": (lambda: tt.LayerNorm(4), lambda: tt.randn(2, 4)),
    "Embedding": (lambda: tt.Embedding(6, 3), lambda: np.array([[0, 5, 2]])),
    "BatchNorm1D": (lambda: tt.BatchNorm1D(4), lambda: tt.randn(5, 4)),
    "Conv2D": (lambda: tt.Conv2D(2, 3, 3, padding=1), lambda: tt.randn(2, 2, 4, 4)),
    "BatchNorm2D": (lambda: tt.BatchNorm2D(2), lambda: tt.randn(3, 2, 4, 4)),
}


@pytest.mark.parametrize("name", LAYERS)
def test_state_dict_round_trip_of_every_layer(name):
    make, data = LAYERS[name]
    a, b = make(), make()
    x = data()
    for p in a.parameters():  # make the state differ from a fresh layer's
        p.data += 0.5
    a(x)  # a training pass moves BatchNorm's running statistics
    b.load_state_dict(a.state_dict())
    a.eval(), b.eval()
    assert np.array_equal(a(x).data, b(x).data)
    assert all(np.array_equal(v, b.state_dict()[k]) for k, v in a.state_dict().items())


@pytest.mark.parametrize("name", ["Dense", "LayerNorm", "Embedding", "Conv2D"])
def test_layers_without_modes_give_the_same_output_in_train_and_eval(name):
    make, data = LAYERS[name]
    layer, x = make(), data()
    assert np.array_equal(layer.train()(x).data, layer.eval()(x).data)
