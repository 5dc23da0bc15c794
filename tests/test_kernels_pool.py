"""Pooling kernels (max, average, global average): reference against finite differences and PyTorch,
compiled against the reference."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinytorch._kernels import pool as compiled
from tinytorch._kernels import reference

from .kernel_checks import DTYPES, arrays, assert_close, assert_vjp, laid_out, numeric_vjp, torch_oracle

IMPLEMENTATIONS = [pytest.param(reference, id="reference"), pytest.param(compiled, id="compiled")]


@st.composite
def pool_geometries(draw, max_side: int = 9):
    """Input shape, window, stride and padding of a valid pooling: batch and channels from 1, odd
    sizes, strides up to 4 (often larger than the window), padding up to half the window."""
    n, c = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    h, w = draw(st.integers(1, max_side)), draw(st.integers(1, max_side))
    kh, kw = draw(st.integers(1, min(4, h))), draw(st.integers(1, min(4, w)))
    padding = (draw(st.integers(0, kh // 2)), draw(st.integers(0, kw // 2)))
    stride = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    return (n, c, h, w), (kh, kw), stride, padding


def out_shape(x_shape, window, stride, padding):
    n, c, h, w = x_shape
    return n, c, (h + 2 * padding[0] - window[0]) // stride[0] + 1, (w + 2 * padding[1] - window[1]) // stride[1] + 1


# The 2x2 stride-2 fast path (even and odd sides), windows covering the input, stride beyond the window.
EDGE_GEOMETRIES = [
    ((2, 3, 8, 6), (2, 2), (2, 2), (0, 0)),
    ((1, 1, 7, 5), (2, 2), (2, 2), (0, 0)),
    ((2, 2, 5, 4), (5, 4), (1, 1), (0, 0)),
    ((1, 2, 9, 9), (2, 2), (4, 3), (1, 1)),
    ((3, 1, 1, 1), (1, 1), (1, 1), (0, 0)),
]


def compare_maxpool(x, grad_out, window, stride, padding):
    out, argmax = compiled.maxpool2d_forward(x, window, stride, padding)
    ref_out, ref_argmax = reference.maxpool2d_forward(x, window, stride, padding)
    assert argmax.dtype == np.int64
    np.testing.assert_array_equal(argmax, ref_argmax)
    assert_close(out, ref_out, "maxpool2d_forward")
    assert_close(
        compiled.maxpool2d_backward(grad_out, argmax, x.shape),
        reference.maxpool2d_backward(grad_out, ref_argmax, x.shape),
        "maxpool2d_backward",
        scale=10,
    )


def compare_avgpool(x, grad_out, window, stride, padding):
    assert_close(
        compiled.avgpool2d_forward(x, window, stride, padding), reference.avgpool2d_forward(x, window, stride, padding), "avgpool2d_forward"
    )
    assert_close(
        compiled.avgpool2d_backward(grad_out, x.shape, window, stride, padding),
        reference.avgpool2d_backward(grad_out, x.shape, window, stride, padding),
        "avgpool2d_backward",
    )


@settings(max_examples=60)
@given(geometry=pool_geometries(), dtype=st.sampled_from(DTYPES), data=st.data())
def test_compiled_matches_reference(geometry, dtype, data):
    x_shape, window, stride, padding = geometry
    x = data.draw(arrays(x_shape, dtype))
    grad_out = data.draw(arrays(out_shape(x_shape, window, stride, padding), dtype))
    compare_maxpool(x, grad_out, window, stride, padding)
    compare_avgpool(x, grad_out, window, stride, padding)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("geometry", EDGE_GEOMETRIES, ids=str)
def test_compiled_matches_reference_on_edge_geometries(geometry, dtype):
    x_shape, window, stride, padding = geometry
    rng = np.random.default_rng(0)
    x = laid_out(rng.standard_normal(x_shape), dtype, "transposed")
    grad_out = rng.standard_normal(out_shape(x_shape, window, stride, padding)).astype(dtype)
    compare_maxpool(x, grad_out, window, stride, padding)
    compare_avgpool(x, grad_out, window, stride, padding)


@pytest.mark.parametrize("geometry", [((2, 3, 8, 8), (2, 2), (2, 2), (0, 0)), ((2, 3, 7, 7), (3, 3), (1, 1), (1, 1))], ids=str)
def test_max_ties_and_nans_follow_the_reference(geometry):
    # Small integers make ties in almost every window: the first maximum in row-major order wins,
    # and a NaN counts as the maximum (the first one), so it reaches the output.
    x_shape, window, stride, padding = geometry
    x = np.random.default_rng(5).integers(0, 3, size=x_shape).astype(np.float32)
    x[0, 0, 1, 1] = x[1, 2, 3, 2] = x[1, 2, 3, 3] = np.nan
    out, argmax = compiled.maxpool2d_forward(x, window, stride, padding)
    ref_out, ref_argmax = reference.maxpool2d_forward(x, window, stride, padding)
    np.testing.assert_array_equal(argmax, ref_argmax)
    np.testing.assert_array_equal(out, ref_out)  # NaN compares equal to NaN here
    assert np.isnan(out[0, 0, 0, 0])


@pytest.mark.parametrize("dtype", DTYPES)
@given(shape=st.tuples(st.integers(1, 3), st.integers(1, 4), st.integers(1, 6), st.integers(1, 6)), data=st.data())
@settings(max_examples=20)
def test_compiled_global_average_matches_reference(dtype, shape, data):
    x = data.draw(arrays(shape, dtype))
    grad_out = data.draw(arrays(shape[:2], dtype))
    assert_close(compiled.global_avgpool2d_forward(x), reference.global_avgpool2d_forward(x), "global_avgpool2d_forward")
    assert_close(
        compiled.global_avgpool2d_backward(grad_out, shape),
        reference.global_avgpool2d_backward(grad_out, shape),
        "global_avgpool2d_backward",
    )


def test_results_are_fresh_arrays_each_call():
    x = np.random.default_rng(6).standard_normal((2, 2, 4, 4)).astype(np.float32)
    first, first_argmax = compiled.maxpool2d_forward(x, (2, 2), (2, 2), (0, 0))
    second, second_argmax = compiled.maxpool2d_forward(x, (2, 2), (2, 2), (0, 0))
    assert not np.shares_memory(first, second) and not np.shares_memory(first_argmax, second_argmax)


@settings(max_examples=10)
@given(geometry=pool_geometries(max_side=6), seed=st.integers(0, 2**32 - 1))
def test_reference_backward_matches_finite_differences(geometry, seed):
    x_shape, window, stride, padding = geometry
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(x_shape)  # distinct values: no ties within a finite-difference step
    cotangent = rng.standard_normal(out_shape(x_shape, window, stride, padding))
    _, argmax = reference.maxpool2d_forward(x, window, stride, padding)
    numeric = numeric_vjp(lambda a: reference.maxpool2d_forward(a, window, stride, padding)[0], [x], cotangent)
    assert_vjp("maxpool2d", [reference.maxpool2d_backward(cotangent, argmax, x_shape)], numeric, ["x"])
    numeric = numeric_vjp(lambda a: reference.avgpool2d_forward(a, window, stride, padding), [x], cotangent)
    assert_vjp("avgpool2d", [reference.avgpool2d_backward(cotangent, x_shape, window, stride, padding)], numeric, ["x"])
    cotangent = rng.standard_normal(x_shape[:2])
    numeric = numeric_vjp(reference.global_avgpool2d_forward, [x], cotangent)
    assert_vjp("global_avgpool2d", [reference.global_avgpool2d_backward(cotangent, x_shape)], numeric, ["x"])


@pytest.mark.parametrize("geometry", [((2, 3, 9, 8), (3, 2), (2, 3), (1, 1)), *EDGE_GEOMETRIES], ids=str)
def test_reference_matches_torch(geometry):
    torch = torch_oracle()
    F = torch.nn.functional
    x_shape, window, stride, padding = geometry
    rng = np.random.default_rng(7)
    x = rng.standard_normal(x_shape)
    grad = rng.standard_normal(out_shape(x_shape, window, stride, padding))

    xt = torch.tensor(x, requires_grad=True)
    out_t, index_t = F.max_pool2d(xt, window, stride, padding, return_indices=True)
    out_t.backward(torch.tensor(grad))
    out, argmax = reference.maxpool2d_forward(x, window, stride, padding)
    np.testing.assert_array_equal(out, out_t.detach().numpy())
    np.testing.assert_array_equal(argmax, index_t.numpy())
    np.testing.assert_allclose(reference.maxpool2d_backward(grad, argmax, x_shape), xt.grad.numpy(), atol=1e-12)

    xt = torch.tensor(x, requires_grad=True)
    out_t = F.avg_pool2d(xt, window, stride, padding)  # count_include_pad=True, PyTorch's default
    out_t.backward(torch.tensor(grad))
    np.testing.assert_allclose(reference.avgpool2d_forward(x, window, stride, padding), out_t.detach().numpy(), atol=1e-12)
    np.testing.assert_allclose(reference.avgpool2d_backward(grad, x_shape, window, stride, padding), xt.grad.numpy(), atol=1e-12)

    xt = torch.tensor(x, requires_grad=True)
    out_t = F.adaptive_avg_pool2d(xt, 1)[:, :, 0, 0]
    out_t.backward(torch.tensor(grad[:, :, 0, 0]))
    np.testing.assert_allclose(reference.global_avgpool2d_forward(x), out_t.detach().numpy(), atol=1e-12)
    np.testing.assert_allclose(reference.global_avgpool2d_backward(grad[:, :, 0, 0], x_shape), xt.grad.numpy(), atol=1e-12)


@pytest.mark.parametrize("kernels", IMPLEMENTATIONS)
def test_bad_inputs_get_clear_errors(kernels):
    x = np.ones((1, 2, 5, 5))
    with pytest.raises(ValueError, match=r"maxpool2d_forward: x must be 4-D, got shape \(2, 5, 5\)"):
        kernels.maxpool2d_forward(x[0], (2, 2), (2, 2), (0, 0))
    with pytest.raises(ValueError, match=r"avgpool2d_forward: the 7x7 window is larger than the padded input 5x5"):
        kernels.avgpool2d_forward(x, (7, 7), (1, 1), (0, 0))
    with pytest.raises(ValueError, match=r"maxpool2d_forward: padding \(2, 2\) must be at most half the 3x3 window"):
        kernels.maxpool2d_forward(x, (3, 3), (1, 1), (2, 2))
    with pytest.raises(TypeError, match="maxpool2d_forward: x has dtype int64"):
        kernels.maxpool2d_forward(np.ones((1, 1, 4, 4), dtype=np.int64), (2, 2), (2, 2), (0, 0))
    out, argmax = kernels.maxpool2d_forward(x, (2, 2), (2, 2), (0, 0))
    with pytest.raises(TypeError, match="maxpool2d_backward: argmax must be an int64 array"):
        kernels.maxpool2d_backward(out, argmax.astype(np.int32), x.shape)
    with pytest.raises(ValueError, match="maxpool2d_backward: argmax holds indices outside the 5x5 input plane"):
        kernels.maxpool2d_backward(out, argmax + 25, x.shape)
    with pytest.raises(ValueError, match=r"maxpool2d_backward: grad_out has shape \(1, 2, 2, 2\); expected \(1, 3, 2, 2\)"):
        kernels.maxpool2d_backward(out, argmax, (1, 3, 5, 5))
    with pytest.raises(ValueError, match=r"avgpool2d_backward: grad_out has shape \(1, 2, 2, 2\); expected \(1, 2, 4, 4\)"):
        kernels.avgpool2d_backward(out, x.shape, (2, 2), (1, 1), (0, 0))
    with pytest.raises(ValueError, match="global_avgpool2d_backward: input_shape must be a shape of 4 non-negative ints"):
        kernels.global_avgpool2d_backward(np.ones((1, 2)), (1, 2, 5))
