"""int8 kernels: the reference against plain integer arithmetic, the compiled twin against the
reference bit for bit, on drawn shapes with values at the -128/127 extremes."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tinytorch._kernels import int8 as compiled
from tinytorch._kernels import reference
from tinytorch._kernels.int8_contracts import MAX_BIAS, MAX_DEPTH

from .kernel_checks import laid_out


@st.composite
def int8_arrays(draw, shape):
    """int8 values of ``shape``: uniform, all at one extreme, or mixed extremes, in a drawn layout."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    kind = draw(st.sampled_from(["uniform", "min", "max", "extremes"]))
    if kind == "uniform":
        values = rng.integers(-128, 128, size=shape)
    elif kind == "extremes":
        values = rng.choice([-128, 127], size=shape)
    else:
        values = np.full(shape, -128 if kind == "min" else 127)
    return laid_out(values, np.int8, draw(st.sampled_from(["contiguous", "transposed", "sliced"])))


zero_points = st.sampled_from([-128, 127, 0]) | st.integers(-128, 127)


@st.composite
def biases(draw, channels):
    if draw(st.booleans()):
        return None
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    extreme = draw(st.booleans())
    values = rng.choice([-MAX_BIAS, MAX_BIAS], size=channels) if extreme else rng.integers(-2**20, 2**20, size=channels)
    return values.astype(np.int32)


def exact_linear(x, x_zero, weight, bias):
    """Python integers, no NumPy integer arithmetic at all: the definition itself."""
    n, k = x.shape
    out = [[sum((int(x[i, j]) - x_zero) * int(weight[f, j]) for j in range(k)) + (int(bias[f]) if bias is not None else 0)
            for f in range(weight.shape[0])] for i in range(n)]
    return np.array(out, dtype=np.int64).reshape(n, weight.shape[0])


@given(st.data())
def test_int8_linear_matches_the_definition_and_its_twin(data):
    # rows on both sides of the compiled kernel's switch from integer dot products to exact float32 BLAS
    n = data.draw(st.sampled_from([1, 2, compiled.INTEGER_ROUTE_MAX_ROWS, compiled.INTEGER_ROUTE_MAX_ROWS + 1, 17]))
    k = data.draw(st.integers(1, 70))
    f = data.draw(st.integers(1, 9))
    x, weight = data.draw(int8_arrays((n, k))), data.draw(int8_arrays((f, k)))
    x_zero, bias = data.draw(zero_points), data.draw(biases(f))
    expected = reference.int8_linear(x, x_zero, weight, bias)
    assert expected.dtype == np.int32 and expected.shape == (n, f)
    np.testing.assert_array_equal(expected, exact_linear(x, x_zero, weight, bias))
    np.testing.assert_array_equal(compiled.int8_linear(x, x_zero, weight, bias), expected)


@pytest.mark.parametrize("n", [1, 40])
def test_int8_linear_long_reductions_stay_exact(n):
    # K beyond the 1,024 products a float32 chunk may hold, every product at its largest (128 * 128)
    k = 2 * compiled.EXACT_DEPTH + 37
    x = np.full((n, k), -128, np.int8)
    weight = np.full((3, k), -128, np.int8)
    weight[1] = 127
    expected = reference.int8_linear(x, 0, weight, None)
    assert expected[0, 0] == 128 * 128 * k
    np.testing.assert_array_equal(compiled.int8_linear(x, 0, weight, None), expected)
    # the largest reduction the contract allows, with the zero point at the other extreme: no wraparound
    x = np.full((2, MAX_DEPTH), -128, np.int8)
    weight = np.full((1, MAX_DEPTH), -128, np.int8)
    bias = np.array([MAX_BIAS], np.int32)
    assert reference.int8_linear(x, 127, weight, bias)[0, 0] == 255 * 128 * MAX_DEPTH + MAX_BIAS
    np.testing.assert_array_equal(compiled.int8_linear(x, 127, weight, bias), reference.int8_linear(x, 127, weight, bias))


@st.composite
def conv_geometries(draw):
    n, c, f = draw(st.integers(1, 3)), draw(st.integers(1, 4)), draw(st.integers(1, 4))
    h, w = draw(st.integers(1, 8)), draw(st.integers(1, 8))
    padding = (draw(st.integers(0, 2)), draw(st.integers(0, 2)))
    kh, kw = draw(st.integers(1, h + 2 * padding[0])), draw(st.integers(1, w + 2 * padding[1]))
    stride = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    return (n, c, h, w), (f, c, kh, kw), stride, padding


@given(conv_geometries(), st.data())
def test_int8_conv2d_matches_its_twin(geometry, data):
    x_shape, w_shape, stride, padding = geometry
    x, weight = data.draw(int8_arrays(x_shape)), data.draw(int8_arrays(w_shape))
    x_zero, bias = data.draw(zero_points), data.draw(biases(w_shape[0]))
    expected = reference.int8_conv2d(x, x_zero, weight, bias, stride, padding)
    np.testing.assert_array_equal(compiled.int8_conv2d(x, x_zero, weight, bias, stride, padding), expected)


def test_int8_conv2d_reference_is_the_definition():
    rng = np.random.default_rng(1)
    x = rng.integers(-128, 128, (2, 3, 5, 4)).astype(np.int8)
    weight = rng.integers(-128, 128, (2, 3, 3, 2)).astype(np.int8)
    bias = np.array([7, -9], np.int32)
    x_zero, (sh, sw), (ph, pw) = -5, (2, 1), (1, 1)
    padded = np.full((2, 3, 5 + 2 * ph, 4 + 2 * pw), x_zero, np.int64)
    padded[:, :, ph:ph + 5, pw:pw + 4] = x
    out = reference.int8_conv2d(x, x_zero, weight, bias, (sh, sw), (ph, pw))
    for n, f, i, j in np.ndindex(*out.shape):
        window = padded[n, :, i * sh:i * sh + 3, j * sw:j * sw + 2] - x_zero
        assert out[n, f, i, j] == int(np.sum(window * weight[f].astype(np.int64))) + bias[f]


def test_int8_conv2d_deep_reduction_crosses_float_chunks():
    # C * KH * KW = 1,152 > 1,024: two float32 chunks, all products at the extreme
    x = np.full((2, 128, 4, 4), -128, np.int8)
    weight = np.full((3, 128, 3, 3), -128, np.int8)
    for x_zero in (0, 127):
        expected = reference.int8_conv2d(x, x_zero, weight, None, (1, 1), (1, 1))
        np.testing.assert_array_equal(compiled.int8_conv2d(x, x_zero, weight, None, (1, 1), (1, 1)), expected)


@given(st.data())
def test_int8_requantize_matches_its_twin_and_rounds_half_up(data):
    shape = data.draw(st.sampled_from([(3, 4), (2, 3, 5), (1, 2, 3, 3)]))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    acc = rng.choice([-(2**31), 2**31 - 1, 0, -1, 1], size=shape) if data.draw(st.booleans()) else \
        rng.integers(-(2**31), 2**31, size=shape)
    acc = acc.astype(np.int32)
    multiplier = rng.integers(0, 2**31, size=shape[1]).astype(np.int32)
    shift = rng.integers(1, 63, size=shape[1]).astype(np.int32)
    out_zero, relu = data.draw(zero_points), data.draw(st.booleans())
    expected = reference.int8_requantize(acc, multiplier, shift, out_zero, relu)
    np.testing.assert_array_equal(compiled.int8_requantize(acc, multiplier, shift, out_zero, relu), expected)
    exact = np.array([[(int(a) * int(m) + (1 << (int(s) - 1))) >> int(s) for a, m, s in
                       zip(row, multiplier, shift)] for row in acc.reshape(shape[0], shape[1], -1)[:, :, 0]])
    low = out_zero if relu else -128
    np.testing.assert_array_equal(expected.reshape(shape[0], shape[1], -1)[:, :, 0], np.clip(exact + out_zero, low, 127))


def test_int8_requantize_rounding_cases():
    half = np.array([2**30], np.int32), np.array([31], np.int32)  # multiplier / 2**shift = 0.5
    acc = np.array([[3], [-3], [1], [-1], [255], [-257]], np.int32)
    for kernels in (reference, compiled):
        np.testing.assert_array_equal(kernels.int8_requantize(acc, *half, 0).ravel(), [2, -1, 1, 0, 127, -128])
        np.testing.assert_array_equal(kernels.int8_requantize(acc, *half, -20, relu=True).ravel(), [-18, -20, -19, -20, 108, -20])


@given(st.data())
def test_int8_maxpool2d_matches_its_twin_and_the_float_pool(data):
    n, c, h, w = data.draw(st.integers(1, 3)), data.draw(st.integers(1, 3)), data.draw(st.integers(1, 8)), data.draw(st.integers(1, 8))
    kh, kw = data.draw(st.integers(1, min(4, h))), data.draw(st.integers(1, min(4, w)))
    padding = (data.draw(st.integers(0, kh // 2)), data.draw(st.integers(0, kw // 2)))
    stride = (data.draw(st.integers(1, 4)), data.draw(st.integers(1, 4)))
    x = data.draw(int8_arrays((n, c, h, w)))
    expected = reference.int8_maxpool2d(x, (kh, kw), stride, padding)
    np.testing.assert_array_equal(compiled.int8_maxpool2d(x, (kh, kw), stride, padding), expected)
    as_float = reference.maxpool2d_forward(x.astype(np.float64), (kh, kw), stride, padding)[0]
    np.testing.assert_array_equal(expected, as_float.astype(np.int8))


@pytest.mark.parametrize("kernels", [reference, compiled], ids=["reference", "compiled"])
def test_int8_kernels_refuse_bad_input(kernels):
    x, w = np.zeros((2, 3), np.int8), np.zeros((4, 3), np.int8)
    with pytest.raises(TypeError, match="int8_linear: x has dtype float32; expected int8"):
        kernels.int8_linear(x.astype(np.float32), 0, w, None)
    with pytest.raises(ValueError, match=r"int8_linear: x_zero must be an integer in \[-128, 127\], got 128"):
        kernels.int8_linear(x, 128, w, None)
    with pytest.raises(ValueError, match="does not fit weight of shape"):
        kernels.int8_linear(x, 0, np.zeros((4, 2), np.int8), None)
    with pytest.raises(ValueError, match="at most 32768 fit an int32 accumulator"):
        kernels.int8_linear(np.zeros((1, MAX_DEPTH + 1), np.int8), 0, np.zeros((1, MAX_DEPTH + 1), np.int8), None)
    with pytest.raises(ValueError, match=r"bias values must be within \+-2\*\*30"):
        kernels.int8_linear(x, 0, w, np.full(4, MAX_BIAS + 1, np.int32))
    with pytest.raises(TypeError, match="int8_conv2d: bias has dtype int64; expected int32"):
        kernels.int8_conv2d(np.zeros((1, 1, 3, 3), np.int8), 0, np.zeros((2, 1, 2, 2), np.int8), np.zeros(2, np.int64), (1, 1), (0, 0))
    with pytest.raises(ValueError, match=r"int8_requantize: shifts must be in \[1, 62\]"):
        kernels.int8_requantize(np.zeros((1, 2), np.int32), np.ones(2, np.int32), np.zeros(2, np.int32), 0)
    with pytest.raises(ValueError, match="int8_maxpool2d: padding"):
        kernels.int8_maxpool2d(np.zeros((1, 1, 4, 4), np.int8), (2, 2), (2, 2), (2, 2))
