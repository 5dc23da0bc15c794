"""ReLU and batch-norm kernels (reference against finite differences and PyTorch, compiled against the
reference), and the compiled kernels' thread control."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinytorch._kernels import elementwise as compiled
from tinytorch._kernels import reference
from tinytorch.core import kernels

from .kernel_checks import DTYPES, arrays, assert_close, assert_vjp, numeric_vjp, torch_oracle
from .strategies import shapes

IMPLEMENTATIONS = [pytest.param(reference, id="reference"), pytest.param(compiled, id="compiled")]

# (N, C) as after a dense layer, and (N, C, H, W) activations; size-1 axes drawn often.
batchnorm_shapes = st.one_of(
    st.tuples(st.integers(1, 5), st.integers(1, 4)),
    st.tuples(st.integers(1, 3), st.integers(1, 4), st.integers(1, 5), st.integers(1, 5)),
)


def channel_vectors(rng, channels, dtype, count):
    return [rng.uniform(0.5, 2.0, channels).astype(dtype) for _ in range(count)]


@given(shape=shapes(min_dims=0, max_dims=4, max_side=7), dtype=st.sampled_from(DTYPES), data=st.data())
def test_compiled_relu_matches_reference(shape, dtype, data):
    x = data.draw(arrays(shape, dtype))
    grad = data.draw(arrays(shape, dtype))
    y = compiled.relu_forward(x)
    assert_close(y, reference.relu_forward(x), "relu_forward")
    assert_close(compiled.relu_backward(y, grad), reference.relu_backward(y, grad), "relu_backward")


@pytest.mark.parametrize("kernels_module", IMPLEMENTATIONS)
def test_relu_of_a_0d_array_is_a_0d_array(kernels_module):
    """Not a NumPy scalar: the op saves y for relu_backward, which accepts arrays only."""
    y = kernels_module.relu_forward(np.array(-1.5, dtype=np.float32))
    assert type(y) is np.ndarray and y.shape == () and y.dtype == np.float32
    assert kernels_module.relu_backward(y, np.array(2.0, dtype=np.float32)) == 0


@pytest.mark.parametrize("dtype", DTYPES)
def test_compiled_relu_on_arrays_split_across_threads(dtype):
    # Large enough for the parallel path, and not a multiple of its chunk size.
    x = np.random.default_rng(0).standard_normal(100_003).astype(dtype)
    x[17] = np.nan
    y = compiled.relu_forward(x)
    np.testing.assert_array_equal(y, reference.relu_forward(x))
    np.testing.assert_array_equal(compiled.relu_backward(y, -x), reference.relu_backward(y, -x))


@settings(max_examples=40)
@given(shape=batchnorm_shapes, dtype=st.sampled_from(DTYPES), data=st.data())
def test_compiled_batchnorm_matches_reference(shape, dtype, data):
    x = data.draw(arrays(shape, dtype))
    grad = data.draw(arrays(shape, dtype))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    gamma, beta, running_var = channel_vectors(rng, shape[1], dtype, 3)
    running_mean = rng.standard_normal(shape[1]).astype(dtype)
    got, want = compiled.batchnorm_forward_train(x, gamma, beta, 1e-5), reference.batchnorm_forward_train(x, gamma, beta, 1e-5)
    for label, a, b in zip(("y", "mean", "invstd"), got, want):
        assert_close(a, b, f"batchnorm_forward_train {label}")
    _, mean, invstd = want
    for label, a, b in zip(
        ("dx", "dgamma", "dbeta"),
        compiled.batchnorm_backward(grad, x, mean, invstd, gamma),
        reference.batchnorm_backward(grad, x, mean, invstd, gamma),
    ):
        # Rounding in x - mean is multiplied by invstd, which is 1/sqrt(eps) for a channel of one value.
        assert_close(a, b, f"batchnorm_backward {label}", scale=float(invstd.max()))
    assert_close(
        compiled.batchnorm_forward_eval(x, running_mean, running_var, gamma, beta, 1e-5),
        reference.batchnorm_forward_eval(x, running_mean, running_var, gamma, beta, 1e-5),
        "batchnorm_forward_eval",
    )


def test_compiled_batchnorm_statistics_survive_a_large_mean():
    # sum(x^2)/M - mean^2 would cancel away the variance here; the kernel subtracts the mean first.
    rng = np.random.default_rng(1)
    x = (1000 + rng.standard_normal((16, 3, 8, 8))).astype(np.float32)
    ones, zeros = np.ones(3, np.float32), np.zeros(3, np.float32)
    _, mean, invstd = compiled.batchnorm_forward_train(x, ones, zeros, 0.0)
    exact = x.astype(np.float64)
    np.testing.assert_allclose(mean, exact.mean(axis=(0, 2, 3)), rtol=1e-7)
    np.testing.assert_allclose(invstd, 1 / exact.std(axis=(0, 2, 3)), rtol=1e-5)


@settings(max_examples=10)
@given(shape=batchnorm_shapes.filter(lambda s: s[0] * int(np.prod(s[2:])) > 1), seed=st.integers(0, 2**32 - 1))
def test_reference_batchnorm_backward_matches_finite_differences(shape, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape)
    gamma, beta = channel_vectors(rng, shape[1], np.float64, 2)
    cotangent = rng.standard_normal(shape)
    numeric = numeric_vjp(lambda *a: reference.batchnorm_forward_train(*a, 1e-5)[0], [x, gamma, beta], cotangent)
    _, mean, invstd = reference.batchnorm_forward_train(x, gamma, beta, 1e-5)
    analytic = reference.batchnorm_backward(cotangent, x, mean, invstd, gamma)
    assert_vjp("batchnorm", list(analytic), numeric, ["x", "gamma", "beta"])


@settings(max_examples=10)
@given(shape=shapes(min_dims=1, max_dims=3, max_side=5), seed=st.integers(0, 2**32 - 1))
def test_reference_relu_backward_matches_finite_differences(shape, seed):
    rng = np.random.default_rng(seed)
    x = rng.uniform(0.01, 1, shape) * rng.choice([-1, 1], shape)  # away from the kink at 0
    cotangent = rng.standard_normal(shape)
    numeric = numeric_vjp(reference.relu_forward, [x], cotangent)
    assert_vjp("relu", [reference.relu_backward(reference.relu_forward(x), cotangent)], numeric, ["x"])


@pytest.mark.parametrize("shape", [(6, 3), (4, 3, 5, 2)], ids=str)
def test_reference_matches_torch(shape):
    torch = torch_oracle()
    F = torch.nn.functional
    rng = np.random.default_rng(2)
    x, grad = rng.standard_normal(shape), rng.standard_normal(shape)
    gamma, beta, running_var = channel_vectors(rng, shape[1], np.float64, 3)
    running_mean = rng.standard_normal(shape[1])

    xt, gt, bt = (torch.tensor(a, requires_grad=True) for a in (x, gamma, beta))
    yt = F.batch_norm(xt, None, None, gt, bt, training=True, eps=1e-5)
    yt.backward(torch.tensor(grad))
    y, mean, invstd = reference.batchnorm_forward_train(x, gamma, beta, 1e-5)
    np.testing.assert_allclose(y, yt.detach().numpy(), atol=1e-12)
    for label, a, t in zip(("dx", "dgamma", "dbeta"), reference.batchnorm_backward(grad, x, mean, invstd, gamma), (xt, gt, bt)):
        np.testing.assert_allclose(a, t.grad.numpy(), atol=1e-11, err_msg=label)
    y_eval = F.batch_norm(torch.tensor(x), torch.tensor(running_mean), torch.tensor(running_var), torch.tensor(gamma), torch.tensor(beta), eps=1e-5)
    np.testing.assert_allclose(reference.batchnorm_forward_eval(x, running_mean, running_var, gamma, beta, 1e-5), y_eval.numpy(), atol=1e-12)

    xt = torch.tensor(x, requires_grad=True)
    yt = F.relu(xt)
    yt.backward(torch.tensor(grad))
    y = reference.relu_forward(x)
    np.testing.assert_array_equal(y, yt.detach().numpy())
    np.testing.assert_array_equal(reference.relu_backward(y, grad), xt.grad.numpy())


@pytest.mark.parametrize("kernels_module", IMPLEMENTATIONS)
def test_bad_inputs_get_clear_errors(kernels_module):
    k = kernels_module
    x, ones = np.ones((2, 3, 4, 4)), np.ones(3)
    with pytest.raises(TypeError, match="relu_forward: x has dtype int64"):
        k.relu_forward(np.arange(3))
    with pytest.raises(ValueError, match=r"relu_backward: grad has shape \(3,\); expected \(2,\)"):
        k.relu_backward(np.ones(2), np.ones(3))
    with pytest.raises(ValueError, match=r"batchnorm_forward_train: x must be \(N, C\) or \(N, C, H, W\), got shape \(3,\)"):
        k.batchnorm_forward_train(ones, ones, ones, 1e-5)
    with pytest.raises(ValueError, match=r"batchnorm_forward_train: gamma has shape \(4,\); expected \(3,\)"):
        k.batchnorm_forward_train(x, np.ones(4), ones, 1e-5)
    with pytest.raises(TypeError, match="batchnorm_forward_eval: running_var has dtype float32 but the other inputs are float64"):
        k.batchnorm_forward_eval(x, ones, ones.astype(np.float32), ones, ones, 1e-5)
    with pytest.raises(ValueError, match="batchnorm_forward_train: eps must be a non-negative number"):
        k.batchnorm_forward_train(x, ones, ones, -1.0)
    with pytest.raises(ValueError, match=r"batchnorm_backward: grad has shape \(2, 3\); expected \(2, 3, 4, 4\)"):
        k.batchnorm_backward(np.ones((2, 3)), x, ones, ones, ones)


def test_thread_count_can_be_set_and_read_back():
    before = kernels.get_num_threads()
    try:
        kernels.set_num_threads(1)
        assert kernels.get_num_threads() == 1
        if kernels.openmp_enabled():
            kernels.set_num_threads(2)
            assert kernels.get_num_threads() == 2
    finally:
        kernels.set_num_threads(before)
    with pytest.raises(ValueError, match="set_num_threads: n must be a positive int, got 0"):
        kernels.set_num_threads(0)


def test_results_do_not_depend_on_the_thread_count():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((8, 4, 16, 16)).astype(np.float32)
    gamma, beta = np.ones(4, np.float32), np.zeros(4, np.float32)
    before = kernels.get_num_threads()
    try:
        results = []
        for threads in (1, 2):
            kernels.set_num_threads(threads)
            results.append((compiled.relu_forward(x), *compiled.batchnorm_forward_train(x, gamma, beta, 1e-5)))
    finally:
        kernels.set_num_threads(before)
    for one, two in zip(*results):
        np.testing.assert_array_equal(one, two)
