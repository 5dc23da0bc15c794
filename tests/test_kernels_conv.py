"""Convolution kernels: the reference against finite differences and PyTorch, the compiled one against the reference."""

from contextlib import contextmanager

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinytorch._kernels import conv as compiled
from tinytorch._kernels import reference

from .kernel_checks import DTYPES, arrays, assert_close, assert_vjp, laid_out, numeric_vjp, torch_oracle

IMPLEMENTATIONS = [pytest.param(reference, id="reference"), pytest.param(compiled, id="compiled")]


@st.composite
def conv_geometries(draw, max_side: int = 7, max_channels: int = 3):
    """Shapes, stride and padding of a valid convolution: batch and channels from 1, odd sizes,
    strides up to 4 (often larger than the kernel), kernels up to the whole padded input."""
    n, c, f = (draw(st.integers(1, 3)), draw(st.integers(1, max_channels)), draw(st.integers(1, 4)))
    h, w = draw(st.integers(1, max_side)), draw(st.integers(1, max_side))
    ph, pw = draw(st.integers(0, 2)), draw(st.integers(0, 2))
    kh, kw = draw(st.integers(1, min(5, h + 2 * ph))), draw(st.integers(1, min(5, w + 2 * pw)))
    stride = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    return (n, c, h, w), (f, c, kh, kw), stride, (ph, pw)


def out_shape(x_shape, w_shape, stride, padding):
    (n, _, h, w), (f, _, kh, kw) = x_shape, w_shape
    return n, f, (h + 2 * padding[0] - kh) // stride[0] + 1, (w + 2 * padding[1] - kw) // stride[1] + 1


# Geometries a random draw may miss: the kernel covering the whole input, 1x1 kernels and 1x1
# inputs, strides larger than the kernel (input elements no window reads), padding wider than useful.
EDGE_GEOMETRIES = [
    ((2, 3, 5, 4), (2, 3, 5, 4), (1, 1), (0, 0)),
    ((2, 3, 6, 6), (4, 3, 1, 1), (1, 1), (0, 0)),
    ((3, 2, 1, 1), (4, 2, 3, 3), (1, 1), (1, 1)),
    ((1, 1, 9, 7), (1, 1, 2, 1), (4, 3), (0, 0)),
    ((2, 2, 8, 8), (3, 2, 1, 1), (3, 3), (0, 0)),
    ((1, 2, 3, 3), (2, 2, 3, 3), (2, 2), (2, 2)),
]


def compare(x, weight, bias, grad, stride, padding, need_input_grad=True, need_bias_grad=True):
    scale = weight.shape[1] * weight.shape[2] * weight.shape[3]  # products summed per output
    assert_close(
        compiled.conv2d_forward(x, weight, bias, stride, padding),
        reference.conv2d_forward(x, weight, bias, stride, padding),
        "conv2d_forward",
        scale,
    )
    got = compiled.conv2d_backward(x, weight, grad, stride, padding, need_input_grad, need_bias_grad)
    want = reference.conv2d_backward(x, weight, grad, stride, padding, need_input_grad, need_bias_grad)
    for label, a, b in zip(("grad_x", "grad_weight", "grad_bias"), got, want):
        if b is None:
            assert a is None, f"conv2d_backward returned {label} that was not asked for"
        else:
            assert_close(a, b, f"conv2d_backward {label}", scale * grad.shape[0] * grad.shape[2] * grad.shape[3])


# The compiled convolution's ways through a batch, whatever its size: whole-batch products (small
# batches, or no BLAS to call from the kernels' threads), or each thread doing its own images, with
# 3x3 stride-1 convolutions through Winograd's tiles or, like every other, through the windows.
PATHS = [pytest.param((10**9, True), id="whole batch"), pytest.param((0, True), id="image by image"),
         pytest.param((0, False), id="image by image, no Winograd")]


@contextmanager
def taking(path: tuple[int, bool]):
    """Run the compiled convolution with MIN_IMAGES_PER_THREAD and WINOGRAD set to ``path``."""
    saved = compiled.MIN_IMAGES_PER_THREAD, compiled.WINOGRAD
    compiled.MIN_IMAGES_PER_THREAD, compiled.WINOGRAD = path
    try:
        yield
    finally:
        compiled.MIN_IMAGES_PER_THREAD, compiled.WINOGRAD = saved


@settings(max_examples=40)
@given(geometry=conv_geometries(), dtype=st.sampled_from(DTYPES), flags=st.tuples(st.booleans(), st.booleans(), st.booleans()), data=st.data())
@pytest.mark.parametrize("path", PATHS)
def test_compiled_matches_reference(path, geometry, dtype, flags, data):
    x_shape, w_shape, stride, padding = geometry
    with_bias, need_input_grad, need_bias_grad = flags
    x = data.draw(arrays(x_shape, dtype))
    weight = data.draw(arrays(w_shape, dtype))
    bias = data.draw(arrays((w_shape[0],), dtype)) if with_bias else None
    grad = data.draw(arrays(out_shape(x_shape, w_shape, stride, padding), dtype))
    with taking(path):
        compare(x, weight, bias, grad, stride, padding, need_input_grad, need_bias_grad)


@settings(max_examples=40)
@given(geometry=conv_geometries(), dtype=st.sampled_from(DTYPES), images=st.integers(1, 2), data=st.data())
def test_compiled_matches_reference_a_few_images_at_a_time(geometry, dtype, images, data):
    """A batch whose column buffer exceeds the budget is done in chunks of images; the results are the same."""
    x_shape, w_shape, stride, padding = geometry
    _, _, ho, wo = out_shape(x_shape, w_shape, stride, padding)
    x = data.draw(arrays(x_shape, dtype))
    weight, bias = data.draw(arrays(w_shape, dtype)), data.draw(arrays((w_shape[0],), dtype))
    grad = data.draw(arrays(out_shape(x_shape, w_shape, stride, padding), dtype))
    per_image = w_shape[1] * w_shape[2] * w_shape[3] * ho * wo * np.dtype(dtype).itemsize
    budget = compiled.COLS_BUDGET_BYTES
    compiled.COLS_BUDGET_BYTES = images * per_image  # chunks of one or two images
    try:
        compare(x, weight, bias, grad, stride, padding)
        assert_close(compiled.conv2d_fused_forward(x, weight, bias, stride, padding, relu=True),
                     reference.conv2d_fused_forward(x, weight, bias, stride, padding, relu=True),
                     "conv2d_fused_forward", w_shape[1] * w_shape[2] * w_shape[3])
    finally:
        compiled.COLS_BUDGET_BYTES = budget


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("batch", [9, 13, 41])
def test_image_by_image_groups_small_maps_and_matches_the_reference(batch, dtype):
    """Small output maps are done several images to a task (the last task may hold fewer, and a task of
    one image reads its output gradient in place); every gradient still matches the reference."""
    rng = np.random.default_rng(batch)
    x = laid_out(rng.standard_normal((batch, 5, 6, 6)), dtype, "sliced")
    weight, bias = rng.standard_normal((7, 5, 3, 3)).astype(dtype), rng.standard_normal(7).astype(dtype)
    grad = rng.standard_normal((batch, 7, 4, 4)).astype(dtype)
    group = compiled._task_images(batch, 16)
    assert group > 1 and batch % group, f"{batch} images in tasks of {group}: no group, or no short last group"
    compare(x, weight, bias, grad, (1, 1), (0, 0))
    assert_close(compiled.conv2d_fused_forward(x, weight, bias, (1, 1), (0, 0), relu=True, pool=(2, 2)),
                 reference.conv2d_fused_forward(x, weight, bias, (1, 1), (0, 0), relu=True, pool=(2, 2)),
                 "conv2d_fused_forward", 45)


def test_a_batch_goes_image_by_image_only_with_a_blas_and_enough_images():
    from tinytorch._kernels import gemm
    from tinytorch.core import kernels

    threads = compiled.get_num_threads()
    assert compiled._task_images(4 * threads, 256) == 1
    assert compiled._task_images(4 * threads - 1, 256) == 0  # a thread would sit idle part of the time
    assert compiled._task_images(64, 64) == 4  # four 8x8 maps make a task of 256 output positions
    gemm.install(None, None, None, None, True)
    try:
        assert compiled._task_images(64, 256) == 0
        rng = np.random.default_rng(6)
        x, weight = rng.standard_normal((16, 3, 5, 5)), rng.standard_normal((4, 3, 3, 3))
        compare(x, weight, None, rng.standard_normal((16, 4, 5, 5)), (1, 1), (1, 1))  # np.matmul's products
    finally:
        kernels._install_blas()
    assert gemm.installed()


@taking((10**9, True))  # the whole-batch path, which has a column buffer
def test_a_large_batch_keeps_the_column_buffer_within_its_budget():
    from tinytorch._kernels import workspace

    workspace.release()
    x = np.random.default_rng(4).standard_normal((256, 24, 31, 31), dtype=np.float32)  # airbench's first stage
    weight = np.random.default_rng(5).standard_normal((32, 24, 3, 3), dtype=np.float32)
    grad = compiled.conv2d_forward(x, weight, None, (1, 1), (1, 1))
    compiled.conv2d_backward(x, weight, grad, (1, 1), (1, 1))
    unchunked = 24 * 9 * 31 * 31 * 256 * 4  # 212 MB in one piece
    assert workspace.held_bytes() <= compiled.COLS_BUDGET_BYTES * (1 + 32 / (24 * 9)) < unchunked / 2
    workspace.release()


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("geometry", EDGE_GEOMETRIES, ids=str)
def test_compiled_matches_reference_on_edge_geometries(path, geometry, dtype):
    x_shape, w_shape, stride, padding = geometry
    rng = np.random.default_rng(1)
    x = laid_out(rng.standard_normal(x_shape), dtype, "sliced")
    weight, bias = rng.standard_normal(w_shape).astype(dtype), rng.standard_normal(w_shape[0]).astype(dtype)
    grad = rng.standard_normal(out_shape(x_shape, w_shape, stride, padding)).astype(dtype)
    with taking(path):
        compare(x, weight, bias, grad, stride, padding)


@st.composite
def winograd_geometries(draw):
    """3x3 stride-1 convolutions that go through Winograd's tiles: odd and even sides from 4, which
    leave the last 2x2 block of outputs overhanging or not, padding 0 to 2, batches that make
    tasks of one or several images, any number of filters."""
    least = compiled.WINOGRAD_MIN_CHANNELS
    n, c, f = draw(st.integers(1, 9)), draw(st.integers(least, least + 3)), draw(st.integers(1, 5))
    ph, pw = draw(st.integers(0, 2)), draw(st.integers(0, 2))
    h, w = draw(st.integers(6 if ph == 0 else 4, 11)), draw(st.integers(6 if pw == 0 else 4, 11))
    return (n, c, h, w), (f, c, 3, 3), (1, 1), (ph, pw)


@settings(max_examples=60)
@given(geometry=winograd_geometries(), dtype=st.sampled_from(DTYPES), flags=st.tuples(st.booleans(), st.booleans(), st.booleans()), data=st.data())
def test_winograd_matches_reference(geometry, dtype, flags, data):
    x_shape, w_shape, stride, padding = geometry
    with_bias, need_input_grad, need_bias_grad = flags
    x = data.draw(arrays(x_shape, dtype))
    weight = data.draw(arrays(w_shape, dtype))
    bias = data.draw(arrays((w_shape[0],), dtype)) if with_bias else None
    out = out_shape(x_shape, w_shape, stride, padding)
    grad = data.draw(arrays(out, dtype))
    assert compiled._by_tiles(x, weight, stride, padding, out[2:])
    with taking((0, True)):
        compare(x, weight, bias, grad, stride, padding, need_input_grad, need_bias_grad)
        pool = (2, 2) if min(out[2:]) >= 2 else (1, 1)
        assert_close(compiled.conv2d_fused_forward(x, weight, bias, stride, padding, relu=True, pool=pool),
                     reference.conv2d_fused_forward(x, weight, bias, stride, padding, relu=True, pool=pool),
                     "conv2d_fused_forward", w_shape[1] * 9)


def test_winograd_takes_3x3_stride_1_convolutions_of_planes_from_4_pixels_and_8_channels():
    assert not compiled._by_tiles(np.zeros((2, 3, 15, 15)), np.zeros((4, 3, 3, 3)), (1, 1), (1, 1), (15, 15))
    x, weight = np.zeros((2, 8, 15, 15)), np.zeros((4, 8, 3, 3))
    assert compiled._by_tiles(x, weight, (1, 1), (1, 1), (15, 15))
    assert compiled._by_tiles(x, weight, (1, 1), (0, 0), (13, 13))
    assert not compiled._by_tiles(x, weight, (2, 2), (1, 1), (8, 8))  # strided
    assert not compiled._by_tiles(x, np.zeros((4, 8, 5, 5)), (1, 1), (2, 2), (15, 15))  # not 3x3
    assert not compiled._by_tiles(x[..., :3, :3], weight, (1, 1), (1, 1), (3, 3))  # a 3x3 map: 4x4 of tiles
    assert not compiled._by_tiles(x, weight, (1, 1), (3, 3), (19, 19))  # its input gradient would need padding -1
    compiled.WINOGRAD = False
    try:
        assert not compiled._by_tiles(x, weight, (1, 1), (1, 1), (15, 15))
    finally:
        compiled.WINOGRAD = True


def test_winograd_filter_transform_is_g_g_gt():
    rng = np.random.default_rng(7)
    weight = rng.standard_normal((3, 2, 3, 3))
    g = np.array([[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]])
    u, flipped = compiled._winograd_filters(weight), compiled._winograd_filters(weight, flipped=True)
    assert u.shape == (16, 2, 3) and flipped.shape == (16, 3, 2)
    for fi in range(3):
        for ci in range(2):
            np.testing.assert_allclose(u[:, ci, fi].reshape(4, 4), g @ weight[fi, ci] @ g.T, rtol=1e-14, atol=1e-14)
            np.testing.assert_allclose(flipped[:, fi, ci].reshape(4, 4), g @ weight[fi, ci, ::-1, ::-1] @ g.T,
                                       rtol=1e-14, atol=1e-14)
    # the filters' gradient is the adjoint: <du, U(w)> = <G^T du G, w>, the parts summed
    du_parts = rng.standard_normal((2, 16, 2, 3))
    lhs = np.sum(du_parts.sum(axis=0) * u)
    rhs = np.sum(compiled._winograd_filter_grads(du_parts) * weight)
    np.testing.assert_allclose(lhs, rhs, rtol=1e-13)


def test_stride_larger_than_kernel_leaves_unread_inputs_without_gradient():
    rng = np.random.default_rng(2)
    x, weight = rng.standard_normal((1, 1, 7, 7)), rng.standard_normal((1, 1, 2, 2))
    grad = rng.standard_normal((1, 1, 2, 2))
    for kernels in (reference, compiled):
        grad_x = kernels.conv2d_backward(x, weight, grad, (3, 3), (0, 0))[0]
        assert np.all(grad_x[0, 0, 2::3, :] == 0) and np.all(grad_x[0, 0, :, 2::3] == 0)
        assert np.count_nonzero(grad_x) == 16


def test_results_never_alias_the_reused_workspace():
    rng = np.random.default_rng(3)
    x1, x2 = rng.standard_normal((2, 2, 2, 6, 6)).astype(np.float32)
    weight, grad = rng.standard_normal((3, 2, 3, 3)).astype(np.float32), rng.standard_normal((2, 3, 6, 6)).astype(np.float32)
    out1 = compiled.conv2d_forward(x1, weight, None, (1, 1), (1, 1))
    grads1 = compiled.conv2d_backward(x1, weight, grad, (1, 1), (1, 1))
    expected = out1.copy(), [g.copy() for g in grads1]
    compiled.conv2d_forward(x2, weight, None, (1, 1), (1, 1))
    compiled.conv2d_backward(x2, weight, 2 * grad, (1, 1), (1, 1))
    np.testing.assert_array_equal(out1, expected[0])
    for g, e in zip(grads1, expected[1]):
        np.testing.assert_array_equal(g, e)


@settings(max_examples=10)
@given(geometry=conv_geometries(max_side=5, max_channels=2), seed=st.integers(0, 2**32 - 1))
def test_reference_backward_matches_finite_differences(geometry, seed):
    x_shape, w_shape, stride, padding = geometry
    rng = np.random.default_rng(seed)
    x, weight, bias = rng.standard_normal(x_shape), rng.standard_normal(w_shape), rng.standard_normal(w_shape[0])
    cotangent = rng.standard_normal(out_shape(x_shape, w_shape, stride, padding))
    numeric = numeric_vjp(lambda *a: reference.conv2d_forward(*a, stride, padding), [x, weight, bias], cotangent)
    analytic = reference.conv2d_backward(x, weight, cotangent, stride, padding)
    assert_vjp("conv2d", list(analytic), numeric, ["x", "weight", "bias"])


@pytest.mark.parametrize("geometry", [((2, 3, 7, 6), (4, 3, 3, 2), (2, 3), (1, 1)), *EDGE_GEOMETRIES], ids=str)
def test_reference_matches_torch(geometry):
    torch = torch_oracle()
    x_shape, w_shape, stride, padding = geometry
    rng = np.random.default_rng(4)
    x, weight, bias = rng.standard_normal(x_shape), rng.standard_normal(w_shape), rng.standard_normal(w_shape[0])
    xt, wt, bt = (torch.tensor(a, requires_grad=True) for a in (x, weight, bias))
    out_t = torch.nn.functional.conv2d(xt, wt, bt, stride, padding)
    grad = rng.standard_normal(out_t.shape)
    out_t.backward(torch.tensor(grad))
    np.testing.assert_allclose(reference.conv2d_forward(x, weight, bias, stride, padding), out_t.detach().numpy(), atol=1e-12)
    got = reference.conv2d_backward(x, weight, grad, stride, padding)
    for label, a, t in zip(("grad_x", "grad_weight", "grad_bias"), got, (xt, wt, bt)):
        np.testing.assert_allclose(a, t.grad.numpy(), atol=1e-12, err_msg=label)


@pytest.mark.parametrize("kernels", IMPLEMENTATIONS)
def test_bad_inputs_get_clear_errors(kernels):
    x, weight = np.ones((1, 3, 5, 5)), np.ones((2, 3, 3, 3))
    with pytest.raises(ValueError, match=r"conv2d_forward: x must be 4-D, got shape \(3, 5, 5\)"):
        kernels.conv2d_forward(x[0], weight, None, (1, 1), (0, 0))
    with pytest.raises(ValueError, match="conv2d_forward: weight of shape .* expects 2 input channels, but x .* has 3"):
        kernels.conv2d_forward(x, np.ones((2, 2, 3, 3)), None, (1, 1), (0, 0))
    with pytest.raises(TypeError, match="conv2d_forward: weight has dtype float32 but the other inputs are float64"):
        kernels.conv2d_forward(x, weight.astype(np.float32), None, (1, 1), (0, 0))
    with pytest.raises(ValueError, match=r"conv2d_forward: the 7x7 window is larger than the padded input 6x6"):
        kernels.conv2d_forward(x[:, :, :4, :4], np.ones((2, 3, 7, 7)), None, (1, 1), (1, 1))
    with pytest.raises(ValueError, match=r"conv2d_forward: bias has shape \(3,\); expected \(2,\)"):
        kernels.conv2d_forward(x, weight, np.ones(3), (1, 1), (0, 0))
    with pytest.raises(ValueError, match="conv2d_forward: stride must be at least 1"):
        kernels.conv2d_forward(x, weight, None, (0, 1), (0, 0))
    with pytest.raises(TypeError, match=r"conv2d_forward: padding must be an \(h, w\) pair of ints"):
        kernels.conv2d_forward(x, weight, None, (1, 1), 1)
    with pytest.raises(ValueError, match=r"conv2d_backward: grad_out has shape \(1, 2, 5, 5\); expected \(1, 2, 3, 3\)"):
        kernels.conv2d_backward(x, weight, np.ones((1, 2, 5, 5)), (1, 1), (0, 0))
