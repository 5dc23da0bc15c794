"""GELU and layer-norm kernels: compiled against the reference, the reference against finite differences and
PyTorch, the layers on top of them against finite differences."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tinytorch as tt
import tinytorch.functional as F
from tinytorch._kernels import gelu as compiled_gelu
from tinytorch._kernels import layernorm as compiled_layernorm
from tinytorch._kernels import reference
from tinytorch.core import kernels
from tinytorch.testing import gradcheck

from .kernel_checks import DTYPES, arrays, assert_close, assert_vjp, numeric_vjp, torch_oracle
from .strategies import float64_arrays, leaf, shapes

APPROXIMATIONS = ("none", "tanh")


# -- GELU ---------------------------------------------------------------------------------------------
@settings(max_examples=25)
@given(shape=shapes(min_dims=0, max_dims=3, max_side=6), dtype=st.sampled_from(DTYPES),
       approximate=st.sampled_from(APPROXIMATIONS), data=st.data())
def test_compiled_gelu_matches_reference(shape, dtype, approximate, data):
    x = data.draw(arrays(shape, dtype, low=-6.0, high=6.0))
    grad = data.draw(arrays(shape, dtype))
    y = compiled_gelu.gelu_forward(x, approximate)
    assert_close(y, reference.gelu_forward(x, approximate), "gelu_forward")
    assert_close(compiled_gelu.gelu_backward(x, grad, approximate), reference.gelu_backward(x, grad, approximate), "gelu_backward")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("approximate", APPROXIMATIONS)
def test_compiled_gelu_on_arrays_split_across_threads_and_at_the_extremes(dtype, approximate):
    x = np.concatenate([np.random.default_rng(0).standard_normal(100_003) * 3, [-1e4, -40.0, 0.0, 40.0, 1e4]]).astype(dtype)
    y = compiled_gelu.gelu_forward(x, approximate)
    assert np.isfinite(y).all()
    assert_close(y, reference.gelu_forward(x, approximate), "gelu_forward")
    assert_close(compiled_gelu.gelu_backward(x, -x, approximate), reference.gelu_backward(x, -x, approximate), "gelu_backward", scale=10)


@settings(max_examples=8)
@given(shape=shapes(min_dims=1, max_dims=2, max_side=5), approximate=st.sampled_from(APPROXIMATIONS), seed=st.integers(0, 2**32 - 1))
def test_reference_gelu_backward_matches_finite_differences(shape, approximate, seed):
    rng = np.random.default_rng(seed)
    x, cotangent = rng.uniform(-4, 4, shape), rng.standard_normal(shape)
    numeric = numeric_vjp(lambda a: reference.gelu_forward(a, approximate), [x], cotangent)
    assert_vjp("gelu", [reference.gelu_backward(x, cotangent, approximate)], numeric, ["x"])


@pytest.mark.parametrize("approximate", APPROXIMATIONS)
def test_reference_gelu_matches_torch(approximate):
    torch = torch_oracle()
    x, grad = np.random.default_rng(1).uniform(-7, 7, (2, 50)), np.random.default_rng(2).standard_normal((2, 50))
    xt = torch.tensor(x, requires_grad=True)
    yt = torch.nn.functional.gelu(xt, approximate=approximate)
    yt.backward(torch.tensor(grad))
    np.testing.assert_allclose(reference.gelu_forward(x, approximate), yt.detach().numpy(), rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(reference.gelu_backward(x, grad, approximate), xt.grad.numpy(), rtol=1e-13, atol=1e-13)


# -- layer norm ------------------------------------------------------------------------------------
@settings(max_examples=30)
@given(n=st.integers(1, 70), d=st.integers(1, 70), dtype=st.sampled_from(DTYPES), affine=st.sampled_from(["both", "weight", "none"]),
       data=st.data())
def test_compiled_layer_norm_matches_reference(n, d, dtype, affine, data):
    # up to 70 columns: more than one block of the weight gradient's column sums
    x = data.draw(arrays((n, d), dtype))
    grad = data.draw(arrays((n, d), dtype))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    weight = rng.uniform(0.5, 2.0, d).astype(dtype) if affine != "none" else None
    bias = rng.standard_normal(d).astype(dtype) if affine == "both" else None
    got, want = compiled_layernorm.layer_norm_forward(x, weight, bias, 1e-5), reference.layer_norm_forward(x, weight, bias, 1e-5)
    for label, a, b in zip(("y", "mean", "invstd"), got, want):
        assert_close(a, b, f"layer_norm_forward {label}")
    _, mean, invstd = want
    got = compiled_layernorm.layer_norm_backward(grad, x, mean, invstd, weight)
    want = reference.layer_norm_backward(grad, x, mean, invstd, weight)
    for label, a, b in zip(("dx", "dweight", "dbias"), got, want):
        if b is None:
            assert a is None, label
        else:  # rounding in x - mean is multiplied by invstd, 1/sqrt(eps) for a row of one value
            assert_close(a, b, f"layer_norm_backward {label}", scale=float(invstd.max()) * max(1, n / 10))


def test_compiled_layer_norm_on_many_rows_split_across_threads():
    rng = np.random.default_rng(3)
    x, grad, w, b = rng.standard_normal((1000, 130)), rng.standard_normal((1000, 130)), rng.uniform(0.5, 2, 130), rng.standard_normal(130)
    x = 1000 + x.astype(np.float32)  # a large mean: statistics must subtract it before squaring
    grad, w, b = grad.astype(np.float32), w.astype(np.float32), b.astype(np.float32)
    y, mean, invstd = compiled_layernorm.layer_norm_forward(x, w, b, 1e-5)
    exact = x.astype(np.float64)
    np.testing.assert_allclose(invstd, 1 / np.sqrt(exact.var(axis=1) + 1e-5), rtol=1e-5)
    for label, a, r in zip(("dx", "dweight", "dbias"), compiled_layernorm.layer_norm_backward(grad, x, mean, invstd, w),
                           reference.layer_norm_backward(grad, x, mean, invstd, w)):
        np.testing.assert_allclose(a, r, rtol=2e-4, atol=2e-3, err_msg=label)


def test_compiled_layer_norm_backward_is_the_same_on_one_and_two_threads():
    # The weight and bias gradients are sums over rows, taken in fixed chunks: not in one chunk per thread.
    rng = np.random.default_rng(4)
    x, grad = rng.standard_normal((999, 96)).astype(np.float32), rng.standard_normal((999, 96)).astype(np.float32)
    w = rng.uniform(0.5, 2, 96).astype(np.float32)
    _, mean, invstd = compiled_layernorm.layer_norm_forward(x, w, None, 1e-5)
    before = kernels.get_num_threads()
    try:
        results = []
        for threads in (1, 2):
            kernels.set_num_threads(threads)
            results.append(compiled_layernorm.layer_norm_backward(grad, x, mean, invstd, w))
    finally:
        kernels.set_num_threads(before)
    for one, two in zip(*results):
        np.testing.assert_array_equal(one, two)


@settings(max_examples=8)
@given(n=st.integers(1, 3), d=st.integers(2, 5), seed=st.integers(0, 2**32 - 1))
def test_reference_layer_norm_backward_matches_finite_differences(n, d, seed):
    rng = np.random.default_rng(seed)
    x, w, b, cotangent = rng.standard_normal((n, d)), rng.uniform(0.5, 2, d), rng.standard_normal(d), rng.standard_normal((n, d))
    numeric = numeric_vjp(lambda *a: reference.layer_norm_forward(*a, 1e-5)[0], [x, w, b], cotangent)
    _, mean, invstd = reference.layer_norm_forward(x, w, b, 1e-5)
    assert_vjp("layer_norm", list(reference.layer_norm_backward(cotangent, x, mean, invstd, w)), numeric, ["x", "weight", "bias"])


def test_reference_layer_norm_matches_torch():
    torch = torch_oracle()
    rng = np.random.default_rng(4)
    x, grad, w, b = rng.standard_normal((5, 7)), rng.standard_normal((5, 7)), rng.uniform(0.5, 2, 7), rng.standard_normal(7)
    xt, wt, bt = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    yt = torch.nn.functional.layer_norm(xt, (7,), wt, bt, eps=1e-5)
    yt.backward(torch.tensor(grad))
    y, mean, invstd = reference.layer_norm_forward(x, w, b, 1e-5)
    np.testing.assert_allclose(y, yt.detach().numpy(), atol=1e-12)
    for label, a, t in zip(("dx", "dweight", "dbias"), reference.layer_norm_backward(grad, x, mean, invstd, w), (xt, wt, bt)):
        np.testing.assert_allclose(a, t.grad.numpy(), atol=1e-11, err_msg=label)


@pytest.mark.parametrize("impl", [reference, compiled_gelu, compiled_layernorm], ids=["reference", "gelu", "layernorm"])
def test_bad_inputs_get_clear_errors(impl):
    if hasattr(impl, "gelu_forward"):
        with pytest.raises(ValueError, match=r"gelu_forward: approximate must be one of \('none', 'tanh'\), got 'fast'"):
            impl.gelu_forward(np.ones(3), "fast")
        with pytest.raises(ValueError, match=r"gelu_backward: grad has shape \(2,\); expected \(3,\)"):
            impl.gelu_backward(np.ones(3), np.ones(2))
    if hasattr(impl, "layer_norm_forward"):
        with pytest.raises(ValueError, match=r"layer_norm_forward: x must be 2-D, got shape \(3,\)"):
            impl.layer_norm_forward(np.ones(3), None, None, 1e-5)
        with pytest.raises(ValueError, match=r"layer_norm_forward: weight has shape \(4,\); expected \(3,\)"):
            impl.layer_norm_forward(np.ones((2, 3)), np.ones(4), None, 1e-5)
        with pytest.raises(TypeError, match="layer_norm_backward: invstd has dtype float32 but the other inputs are float64"):
            impl.layer_norm_backward(np.ones((2, 3)), np.ones((2, 3)), np.ones(2), np.ones(2, np.float32), None)


# -- the layers on the kernels ---------------------------------------------------------------------
@pytest.mark.parametrize("backend", ["compiled", "reference"])
@settings(max_examples=6)
@given(data=st.data())
def test_gelu_and_layer_norm_layers_gradcheck_on_both_backends(backend, data):
    shape = data.draw(shapes(min_dims=1, max_dims=3, max_side=4))
    x = data.draw(float64_arrays(shape))  # contiguous, transposed or sliced
    approximate = data.draw(st.sampled_from(APPROXIMATIONS))
    norm = tt.LayerNorm(shape[-1:]).double()
    norm.weight.data[...] = np.linspace(0.5, 1.5, shape[-1])
    with kernels.use(backend):
        gradcheck(lambda t: F.gelu(t, approximate), leaf(x), name=f"gelu {approximate}")
        gradcheck(lambda t, *p: norm(t), leaf(x), *norm.parameters(), name="LayerNorm")
