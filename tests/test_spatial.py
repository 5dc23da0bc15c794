"""Conv2D, pooling, GlobalAvgPool2D, BatchNorm2D: values, PyTorch, gradients, modes, state, errors."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tinytorch as tt
import tinytorch.functional as F
from tinytorch.core.spatial import conv2d_output_shape, im2col
from tinytorch.testing import gradcheck

from .layer_checks import copy_into_torch, gradcheck_module, torch  # noqa: F401  (torch is a fixture)
from .strategies import float64_arrays, leaf


def _conv_loops(x, w, b, stride, padding):
    """Convolution by its definition: one dot product per output element."""
    (sh, sw), (ph, pw) = stride, padding
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    n, f, kh, kw = x.shape[0], w.shape[0], w.shape[2], w.shape[3]
    ho, wo = (xp.shape[2] - kh) // sh + 1, (xp.shape[3] - kw) // sw + 1
    out = np.zeros((n, f, ho, wo))
    for i in range(ho):
        for j in range(wo):
            patch = xp[:, :, i * sh : i * sh + kh, j * sw : j * sw + kw]
            out[:, :, i, j] = np.tensordot(patch, w, axes=([1, 2, 3], [1, 2, 3]))
    return out + (0 if b is None else b[:, None, None])


def _pool_loops(x, kernel, stride, padding, reduce, fill):
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=fill)
    ho, wo = (xp.shape[2] - kh) // sh + 1, (xp.shape[3] - kw) // sw + 1
    out = np.zeros(x.shape[:2] + (ho, wo))
    for i in range(ho):
        for j in range(wo):
            out[:, :, i, j] = reduce(xp[:, :, i * sh : i * sh + kh, j * sw : j * sw + kw], axis=(2, 3))
    return out


@st.composite
def conv_cases(draw):
    """Small convolution geometries: size-1 batch/channels, strides larger than the kernel, padding."""
    n, c, f = draw(st.integers(1, 2)), draw(st.integers(1, 2)), draw(st.integers(1, 2))
    kh, kw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 2)))
    padding = (draw(st.integers(0, 1)), draw(st.integers(0, 1)))
    h = draw(st.integers(max(1, kh - 2 * padding[0]), 5))
    w = draw(st.integers(max(1, kw - 2 * padding[1]), 5))
    return (n, c, h, w), (f, c, kh, kw), stride, padding


# -- Conv2D -----------------------------------------------------------------------------------------
def test_conv2d_output_shape():
    assert conv2d_output_shape((32, 32), 3) == (30, 30)
    assert conv2d_output_shape((32, 32), 3, stride=1, padding=1) == (32, 32)
    assert conv2d_output_shape((28, 28), kernel_size=5, stride=2, padding=2) == (14, 14)
    assert conv2d_output_shape((7, 10), kernel_size=(3, 1), stride=(2, 3), padding=(0, 1)) == (3, 4)
    with pytest.raises(ValueError, match="the 5x5 kernel is larger than the padded input 4x4"):
        conv2d_output_shape((4, 4), 5)
    with pytest.raises(ValueError, match="stride must be at least 1"):
        conv2d_output_shape((4, 4), 3, stride=0)


@settings(max_examples=20)
@given(case=conv_cases(), seed=st.integers(0, 999), bias=st.booleans())
def test_conv2d_matches_the_loop_definition(case, seed, bias):
    x_shape, w_shape, stride, padding = case
    rng = np.random.default_rng(seed)
    conv = tt.Conv2D(w_shape[1], w_shape[0], w_shape[2:], stride=stride, padding=padding, bias=bias).double()
    x = rng.standard_normal(x_shape)
    expected = _conv_loops(x, conv.weight.data, conv.bias.data if bias else None, stride, padding)
    np.testing.assert_allclose(conv(tt.from_numpy(x)).data, expected, rtol=1e-10, atol=1e-12)


@settings(max_examples=15)
@given(case=conv_cases(), seed=st.integers(0, 999))
def test_im2col_times_flat_filters_is_the_convolution(case, seed):
    x_shape, w_shape, stride, padding = case
    rng = np.random.default_rng(seed)
    x, w = rng.standard_normal(x_shape), rng.standard_normal(w_shape)
    cols = im2col(x, w_shape[2:], stride, padding)
    ho, wo = conv2d_output_shape(x_shape[2:], w_shape[2:], stride, padding)
    assert cols.shape == (x_shape[0] * ho * wo, w_shape[1] * w_shape[2] * w_shape[3])
    out = (cols @ w.reshape(w_shape[0], -1).T).reshape(x_shape[0], ho, wo, w_shape[0]).transpose(0, 3, 1, 2)
    np.testing.assert_allclose(out, _conv_loops(x, w, None, stride, padding), rtol=1e-10, atol=1e-12)


def test_im2col_rows_are_windows_and_errors_name_it():
    x = np.arange(2 * 9, dtype=np.float32).reshape(1, 2, 3, 3)
    cols = im2col(tt.tensor(x), 2)
    np.testing.assert_array_equal(cols[3], np.concatenate([x[0, 0, 1:, 1:].ravel(), x[0, 1, 1:, 1:].ravel()]))
    assert cols.dtype == np.float32
    with pytest.raises(ValueError, match=r"im2col got input of shape \(3, 3\); expected 4-D input"):
        im2col(x[0, 0], 2)
    with pytest.raises(ValueError, match="im2col got input of shape .* the 4x4 kernel is larger"):
        im2col(x, 4)


@settings(max_examples=10)
@given(case=conv_cases(), data=st.data())
def test_conv2d_gradients(case, data):
    x_shape, w_shape, stride, padding = case
    conv = tt.Conv2D(w_shape[1], w_shape[0], w_shape[2:], stride=stride, padding=padding, bias=data.draw(st.booleans()))
    assert gradcheck_module(conv, data.draw(float64_arrays(x_shape)))


def test_conv2d_matches_torch_in_float32(torch):
    ours = tt.Conv2D(3, 8, kernel_size=(3, 5), stride=(2, 1), padding=(1, 2))
    theirs = torch.nn.Conv2d(3, 8, kernel_size=(3, 5), stride=(2, 1), padding=(1, 2))
    copy_into_torch(theirs, ours)
    x = np.random.default_rng(0).standard_normal((2, 3, 9, 8)).astype(np.float32)
    xo, xt = tt.tensor(x, requires_grad=True), torch.from_numpy(x).requires_grad_()
    out_o, out_t = ours(xo), theirs(xt)
    np.testing.assert_allclose(out_o.data, out_t.detach().numpy(), rtol=1e-4, atol=1e-5)
    cot = np.random.default_rng(1).standard_normal(out_o.shape).astype(np.float32)
    out_o.backward(cot)
    out_t.backward(torch.from_numpy(cot))
    np.testing.assert_allclose(xo.grad.data, xt.grad.numpy(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(ours.weight.grad.data, theirs.weight.grad.numpy(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(ours.bias.grad.data, theirs.bias.grad.numpy(), rtol=1e-4, atol=1e-4)


def test_conv2d_same_padding_keeps_the_size():
    conv = tt.Conv2D(2, 3, kernel_size=(5, 3), padding="same")
    assert conv.padding == (2, 1)
    assert conv(tt.randn(1, 2, 7, 6)).shape == (1, 3, 7, 6)
    with pytest.raises(ValueError, match="padding='same' needs stride 1 and odd kernel sizes"):
        tt.Conv2D(2, 3, kernel_size=4, padding="same")
    with pytest.raises(ValueError, match="padding='same' needs stride 1"):
        tt.Conv2D(2, 3, kernel_size=3, stride=2, padding="same")


def test_conv2d_default_init_bounds():
    conv = tt.Conv2D(16, 32, kernel_size=3)
    bound = 1 / np.sqrt(16 * 9)
    for p in (conv.weight, conv.bias):
        assert np.abs(p.data).max() <= bound and np.abs(p.data).max() > 0.8 * bound


def test_conv2d_errors_name_the_layer_and_shapes():
    conv = tt.Conv2D(3, 32, kernel_size=3)
    label = r"Conv2D\(3 -> 32, kernel_size=\(3, 3\)\)"
    with pytest.raises(ValueError, match=label + r" got input of shape \(2, 1, 8, 8\) with 1 channels; expected 3"):
        conv(tt.randn(2, 1, 8, 8))
    with pytest.raises(ValueError, match=label + r" got input of shape \(3, 8, 8\); expected 4-D input \(N, 3, H, W\)"):
        conv(tt.randn(3, 8, 8))
    with pytest.raises(ValueError, match=label + r" got input of shape \(1, 3, 2, 5\): the 3x3 kernel is larger than the padded input 2x5"):
        conv(tt.randn(1, 3, 2, 5))
    with pytest.raises(TypeError, match="kernel_size must be an int or a pair of ints"):
        tt.Conv2D(3, 4, kernel_size=(3, 3, 3))
    with pytest.raises(ValueError, match="Conv2D: out_channels must be a positive integer"):
        tt.Conv2D(3, 0, kernel_size=3)
    with pytest.raises(ValueError, match=r"conv2d got input of shape \(1, 2, 4, 4\) with 2 channels; expected 3"):
        F.conv2d(tt.randn(1, 2, 4, 4), tt.randn(4, 3, 3, 3))


def test_conv2d_repr_and_alias():
    assert tt.Conv2d is tt.Conv2D
    assert repr(tt.Conv2D(1, 2, 3, stride=2, padding=1, bias=False)) == (
        "Conv2D(1 -> 2, kernel_size=(3, 3), stride=(2, 2), padding=(1, 1), bias=False)"
    )


def test_conv2d_state_dict_round_trip():
    a, b = tt.Conv2D(2, 3, 3), tt.Conv2D(2, 3, 3)
    b.load_state_dict(a.state_dict())
    x = tt.randn(1, 2, 5, 5)
    assert np.array_equal(a(x).data, b(x).data)


# -- pooling ----------------------------------------------------------------------------------------
@st.composite
def pool_cases(draw):
    kernel = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    padding = (draw(st.integers(0, kernel[0] // 2)), draw(st.integers(0, kernel[1] // 2)))
    shape = (draw(st.integers(1, 2)), draw(st.integers(1, 2)), draw(st.integers(kernel[0], 5)), draw(st.integers(kernel[1], 5)))
    return shape, kernel, stride, padding


def _distinct(shape, seed):
    """Values at least 0.05 apart, so no window has a near-tie that finite differences would cross."""
    rng = np.random.default_rng(seed)
    return (rng.permutation(int(np.prod(shape))).reshape(shape) * 0.05 - 1.0).astype(np.float64)


@settings(max_examples=20)
@given(case=pool_cases(), seed=st.integers(0, 999))
def test_pools_match_the_loop_definition(case, seed):
    shape, kernel, stride, padding = case
    x = _distinct(shape, seed)
    out = tt.MaxPool2D(kernel, stride, padding)(tt.from_numpy(x))
    np.testing.assert_array_equal(out.data, _pool_loops(x, kernel, stride, padding, np.max, -np.inf))
    out = tt.AvgPool2D(kernel, stride, padding)(tt.from_numpy(x))
    np.testing.assert_allclose(out.data, _pool_loops(x, kernel, stride, padding, np.mean, 0.0), rtol=1e-12, atol=1e-15)


@settings(max_examples=10)
@given(case=pool_cases(), seed=st.integers(0, 999), layout=st.sampled_from(["contiguous", "transposed"]))
def test_pool_gradients(case, seed, layout):
    shape, kernel, stride, padding = case
    x = _distinct(shape, seed)
    if layout == "transposed":
        x = np.ascontiguousarray(x.swapaxes(2, 3)).swapaxes(2, 3)  # same values, non-contiguous
    assert gradcheck(lambda t: F.max_pool2d(t, kernel, stride, padding), leaf(x), name="max_pool2d")
    assert gradcheck(lambda t: F.avg_pool2d(t, kernel, stride, padding), leaf(x), name="avg_pool2d")


def test_pools_match_torch(torch):
    x = np.random.default_rng(0).standard_normal((2, 3, 7, 6)).astype(np.float32)
    tx = torch.from_numpy(x)
    np.testing.assert_array_equal(
        tt.MaxPool2D(3, stride=2, padding=1)(x).data, torch.nn.MaxPool2d(3, stride=2, padding=1)(tx).numpy()
    )
    np.testing.assert_allclose(
        tt.AvgPool2D((2, 3), padding=(1, 1))(x).data,
        torch.nn.AvgPool2d((2, 3), padding=(1, 1))(tx).numpy(),
        rtol=1e-6,
    )
    np.testing.assert_allclose(tt.GlobalAvgPool2D()(x).data, tx.mean(dim=(2, 3)).numpy(), rtol=1e-6)


def test_max_pool_gradient_goes_to_the_maximum():
    x = tt.tensor([[[[1.0, 5.0], [3.0, 2.0]]]], requires_grad=True)
    F.max_pool2d(x, 2).backward(np.array([[[[4.0]]]], dtype=np.float32))
    assert x.grad.data.ravel().tolist() == [0.0, 4.0, 0.0, 0.0]


def test_global_avg_pool_values_and_gradient():
    x = np.random.default_rng(3).uniform(-1, 1, size=(2, 3, 4, 5))
    out = tt.GlobalAvgPool2D()(tt.from_numpy(x))
    np.testing.assert_allclose(out.data, x.mean(axis=(2, 3)), rtol=1e-12)
    assert gradcheck(F.global_avg_pool2d, leaf(x[:, :, ::2]), name="global_avg_pool2d")


def test_pool_defaults_repr_and_aliases():
    pool = tt.MaxPool2D(2)
    assert pool.stride == (2, 2)
    assert repr(pool) == "MaxPool2D(kernel_size=(2, 2), stride=(2, 2))"
    assert repr(tt.AvgPool2D(3, 1, 1)) == "AvgPool2D(kernel_size=(3, 3), stride=(1, 1), padding=(1, 1))"
    assert tt.MaxPool2d is tt.MaxPool2D and tt.AvgPool2d is tt.AvgPool2D


def test_pool_errors():
    with pytest.raises(ValueError, match=r"MaxPool2D: padding \(2, 2\) must be at most half the 3x3 window"):
        tt.MaxPool2D(3, padding=2)
    with pytest.raises(ValueError, match=r"MaxPool2D\(kernel_size=\(3, 3\), stride=\(3, 3\)\) got input of shape \(1, 1, 2, 2\): the 3x3 kernel is larger"):
        tt.MaxPool2D(3)(tt.randn(1, 1, 2, 2))
    with pytest.raises(ValueError, match=r"AvgPool2D\(.*\) got input of shape \(4, 4\); expected 4-D input \(N, C, H, W\)"):
        tt.AvgPool2D(2)(tt.randn(4, 4))
    with pytest.raises(ValueError, match=r"GlobalAvgPool2D\(\) got input of shape \(2, 3\)"):
        tt.GlobalAvgPool2D()(tt.randn(2, 3))


# -- BatchNorm2D ------------------------------------------------------------------------------------
def test_batch_norm_2d_matches_torch_in_training_and_eval(torch):
    ours, theirs = tt.BatchNorm2D(3), torch.nn.BatchNorm2d(3)
    ours.weight.data[...] = [0.5, 1.0, 2.0]
    ours.bias.data[...] = [0.1, -0.2, 0.3]
    copy_into_torch(theirs, ours)
    rng = np.random.default_rng(0)
    for _ in range(3):
        x = (rng.standard_normal((4, 3, 5, 5)) * 2 + 1).astype(np.float32)
        xo, xt = tt.tensor(x, requires_grad=True), torch.from_numpy(x).requires_grad_()
        out_o, out_t = ours(xo), theirs(xt)
        np.testing.assert_allclose(out_o.data, out_t.detach().numpy(), rtol=1e-4, atol=1e-5)
    cot = rng.standard_normal(x.shape).astype(np.float32)
    out_o.backward(cot)
    out_t.backward(torch.from_numpy(cot))
    np.testing.assert_allclose(xo.grad.data, xt.grad.numpy(), rtol=1e-3, atol=1e-5)
    np.testing.assert_allclose(ours.weight.grad.data, theirs.weight.grad.numpy(), rtol=1e-4, atol=1e-4)
    state = ours.state_dict()
    for name, value in theirs.state_dict().items():
        np.testing.assert_allclose(state[name], value.numpy(), rtol=1e-5, err_msg=name)
    ours.eval(), theirs.eval()
    x = rng.standard_normal((2, 3, 4, 4)).astype(np.float32)
    np.testing.assert_allclose(ours(x).data, theirs(torch.from_numpy(x)).detach().numpy(), rtol=1e-5, atol=1e-5)


def test_batch_norm_2d_normalises_each_channel():
    bn = tt.BatchNorm2D(2).double()
    x = np.random.default_rng(0).standard_normal((3, 2, 4, 4)) * [[[[3.0]], [[0.5]]]] + 2
    out = bn(tt.from_numpy(x)).data
    np.testing.assert_allclose(out.mean(axis=(0, 2, 3)), 0, atol=1e-12)
    np.testing.assert_allclose(out.var(axis=(0, 2, 3)), 1, rtol=1e-3)  # eps shrinks it a little
    count = 3 * 4 * 4
    np.testing.assert_allclose(bn.running_var.data, 0.9 + 0.1 * x.var(axis=(0, 2, 3)) * count / (count - 1), rtol=1e-10)


@settings(max_examples=8)
@given(data=st.data())
def test_batch_norm_2d_gradients(data):
    shape = (data.draw(st.integers(1, 3)), data.draw(st.integers(1, 2)), data.draw(st.integers(1, 3)), data.draw(st.integers(2, 3)))
    bn = tt.BatchNorm2D(shape[1]).double()
    bn.weight.data[...] = data.draw(float64_arrays((shape[1],), layout="contiguous"))
    bn.bias.data[...] = data.draw(float64_arrays((shape[1],), layout="contiguous"))
    x = data.draw(float64_arrays(shape))
    assert gradcheck_module(bn, x)
    bn.eval()
    assert gradcheck_module(bn, x)


def test_batch_norm_2d_errors():
    bn = tt.BatchNorm2D(4)
    with pytest.raises(ValueError, match=r"BatchNorm2D\(4, eps=1e-05, momentum=0.1\) got input of shape \(2, 3, 5, 5\) with 3 channels; expected 4"):
        bn(tt.randn(2, 3, 5, 5))
    with pytest.raises(ValueError, match=r"got input of shape \(2, 4\); expected \(N, C, H, W\)"):
        bn(tt.randn(2, 4))
    assert tt.BatchNorm2d is tt.BatchNorm2D


def test_a_small_cnn_trains_end_to_end_in_float64():
    net = tt.Sequential(
        tt.Conv2D(1, 2, 3, padding=1), tt.BatchNorm2D(2), tt.ReLU(), tt.MaxPool2D(2), tt.Flatten(), tt.Dense(8, 2)
    )
    assert gradcheck_module(net, np.random.default_rng(0).uniform(-1, 1, size=(2, 1, 4, 4)))
