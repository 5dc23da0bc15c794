"""Forward values of every op against NumPy, dtype behaviour, views, defined gradients at kinks, errors."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import tinytorch as tt
from tinytorch.core import kernels

from .strategies import broadcast_pairs, float64_arrays, reduction_axes, shapes

QUICK = settings(max_examples=10)
F32 = np.float32


def arrays(shape, low=-2.0, high=2.0, dtype=F32):
    return float64_arrays(shape, low, high, dtype=dtype)


@st.composite
def drawn(draw, low=-2.0, high=2.0, dtype=F32, min_dims=0):
    return draw(arrays(draw(shapes(min_dims=min_dims)), low, high, dtype))


def on_backend(name: str):
    """``kernels.use(name)``, skipping when the compiled kernels are not built."""
    if name == "compiled" and not kernels.compiled_available():
        pytest.skip("compiled kernels are not built (run pip install -e .)")
    return kernels.use(name)


def close(result: tt.Tensor, expected, dtype=F32, rtol=1e-6):
    """``result`` has ``dtype`` and matches NumPy's ``expected``."""
    assert isinstance(result, tt.Tensor)
    assert result.dtype == dtype, f"dtype {result.dtype}, expected {np.dtype(dtype)}"
    expected = np.asarray(expected)
    assert result.shape == expected.shape
    np.testing.assert_allclose(result.data, expected, rtol=rtol, atol=1e-6 if dtype == F32 else 1e-12)


# -- arithmetic -----------------------------------------------------------------------------------
BINARY = {
    "add": (lambda a, b: a + b, np.add),
    "sub": (lambda a, b: a - b, np.subtract),
    "mul": (lambda a, b: a * b, np.multiply),
    "div": (lambda a, b: a / b, np.divide),
    "pow": (lambda a, b: a ** b, np.power),
    "maximum": (tt.maximum, np.maximum),
    "minimum": (tt.minimum, np.minimum),
}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", list(BINARY))
@QUICK
@given(data=st.data())
def test_binary_broadcast_values(name, dtype, data):
    shape_a, shape_b = data.draw(broadcast_pairs())
    a, b = data.draw(arrays(shape_a, 0.5, 2.0, dtype)), data.draw(arrays(shape_b, 0.5, 2.0, dtype))
    ours, theirs = BINARY[name]
    close(ours(tt.from_numpy(a), tt.from_numpy(b)), theirs(a, b), dtype)


@pytest.mark.parametrize("name", ["add", "sub", "mul", "div", "pow", "maximum", "minimum"])
@QUICK
@given(a=drawn(0.5, 2.0), scalar=st.floats(0.5, 3.0))
def test_python_scalar_on_either_side_keeps_float32(name, a, scalar):
    ours, theirs = BINARY[name]
    close(ours(tt.from_numpy(a), scalar), theirs(a, np.float32(scalar)), rtol=1e-5)
    close(ours(scalar, tt.from_numpy(a)), theirs(np.float32(scalar), a), rtol=1e-5)


def test_neg_and_pos():
    a = np.array([[1.5, -2.0]], dtype=F32)
    close(-tt.from_numpy(a), -a)
    assert (+tt.from_numpy(a)).data is a


@pytest.mark.parametrize(
    "shape_a, shape_b",
    [((3,), (3,)), ((3,), (3, 2)), ((2, 3), (3,)), ((2, 3), (3, 4)), ((2, 1, 2, 3), (5, 3, 2)), ((4, 2, 3), (3,)),
     ((3,), (4, 3, 2))],
)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_matmul_values(shape_a, shape_b, dtype):
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal(shape_a).astype(dtype), rng.standard_normal(shape_b).astype(dtype)
    close(tt.from_numpy(a) @ tt.from_numpy(b), a @ b, dtype, rtol=1e-5)
    close(tt.matmul(tt.from_numpy(a), b), a @ b, dtype, rtol=1e-5)
    close(a @ tt.from_numpy(b), a @ b, dtype, rtol=1e-5)  # NumPy defers to Tensor.__rmatmul__


# -- element-wise ---------------------------------------------------------------------------------
def _sigmoid(x):
    return 1 / (1 + np.exp(-x.astype(np.float64)))


UNARY = {
    "exp": (lambda t: t.exp(), np.exp),
    "log": (lambda t: t.log(), np.log),
    "sqrt": (lambda t: t.sqrt(), np.sqrt),
    "abs": (lambda t: t.abs(), np.abs),
    "tanh": (lambda t: t.tanh(), np.tanh),
    "sigmoid": (lambda t: t.sigmoid(), _sigmoid),
    "relu": (lambda t: t.relu(), lambda x: np.maximum(x, 0)),
}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", list(UNARY))
@QUICK
@given(data=st.data())
def test_unary_values(name, dtype, data):
    low = 0.1 if name in ("log", "sqrt") else -5.0
    x = data.draw(drawn(low, 5.0, dtype))
    ours, theirs = UNARY[name]
    close(ours(tt.from_numpy(x)), theirs(x), dtype, rtol=1e-6)
    close(getattr(tt, name)(tt.from_numpy(x)) if hasattr(tt, name) else ours(tt.from_numpy(x)), theirs(x), dtype)


def test_sigmoid_is_stable_at_extremes():
    x = tt.tensor([-1000.0, -50.0, 0.0, 50.0, 1000.0])
    y = x.sigmoid()
    assert y.dtype == np.float32 and np.all(np.isfinite(y.data))
    np.testing.assert_allclose(y.data, [0.0, _sigmoid(np.array(-50.0)), 0.5, 1.0, 1.0], rtol=1e-6, atol=0)


@QUICK
@given(x=drawn(), bounds=st.sampled_from([(-1.0, 0.5), (None, 0.5), (-0.5, None), (0.2, 0.2)]))
def test_clip_values(x, bounds):
    low, high = bounds
    close(tt.from_numpy(x).clip(low, high), np.clip(x, low, high))
    close(tt.clip(tt.from_numpy(x), min=low, max=high), np.clip(x, low, high))


@QUICK
@given(data=st.data())
def test_where_values(data):
    s = data.draw(hnp.mutually_broadcastable_shapes(num_shapes=3, max_dims=3, max_side=3)).input_shapes
    condition = data.draw(hnp.arrays(np.bool_, s[0]))
    a, b = data.draw(arrays(s[1])), data.draw(arrays(s[2]))
    close(tt.where(condition, tt.from_numpy(a), tt.from_numpy(b)), np.where(condition, a, b))
    close(tt.where(tt.tensor(condition), tt.from_numpy(a), 0.5), np.where(condition, a, F32(0.5)))


# -- reductions -----------------------------------------------------------------------------------
def _logsumexp(x, axis, keepdims):
    x = x.astype(np.float64)
    m = np.max(x, axis=axis, keepdims=True)
    return np.squeeze(m, axis) + np.log(np.sum(np.exp(x - m), axis=axis)) if not keepdims else (
        m + np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True))
    )


REDUCTIONS = {
    "sum": np.sum,
    "mean": np.mean,
    "var": np.var,
    "std": np.std,
    "max": np.max,
    "min": np.min,
    "logsumexp": lambda x, axis, keepdims: _logsumexp(x, axis if axis is not None else tuple(range(x.ndim)), keepdims),
}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", list(REDUCTIONS))
@QUICK
@given(data=st.data())
def test_reduction_values(name, dtype, data):
    x = data.draw(drawn(dtype=dtype))
    axis, keepdims = data.draw(reduction_axes(x.ndim)), data.draw(st.booleans())
    result = getattr(tt.from_numpy(x), name)(axis=axis, keepdims=keepdims)
    close(result, REDUCTIONS[name](x, axis=axis, keepdims=keepdims), dtype, rtol=1e-5)


def test_var_std_ddof_and_free_logsumexp():
    x = np.random.default_rng(0).standard_normal((4, 5)).astype(F32)
    close(tt.from_numpy(x).var(axis=1, ddof=1), np.var(x, axis=1, ddof=1), rtol=1e-5)
    close(tt.from_numpy(x).std(axis=0, ddof=1, keepdims=True), np.std(x, axis=0, ddof=1, keepdims=True), rtol=1e-5)
    close(tt.logsumexp(tt.from_numpy(x), axis=-1), _logsumexp(x, -1, False), rtol=1e-5)


def test_logsumexp_does_not_overflow():
    x = tt.tensor([[1000.0, 1000.0], [-1000.0, -1000.0]])
    np.testing.assert_allclose(x.logsumexp(axis=1).data, [1000 + np.log(2), -1000 + np.log(2)], rtol=1e-6)


def test_argmax_argmin_and_comparisons_return_tensors_without_grad():
    x = tt.tensor([[3.0, 1.0, 2.0], [0.0, 5.0, 4.0]], requires_grad=True)
    for result, expected in [
        (x.argmax(), 4),
        (x.argmin(axis=1), [1, 0]),
        (x.argmax(axis=0, keepdims=True), [[0, 1, 1]]),
    ]:
        assert result.dtype == np.int64 and not result.requires_grad
        assert result.tolist() == expected
    for result, expected in [
        (x > 2, [[True, False, False], [False, True, True]]),
        (x <= 1.0, [[False, True, False], [True, False, False]]),
        (x == tt.tensor([3.0, 5.0, 0.0]), [[True, False, False], [False, True, False]]),
        (x != 0, [[True, True, True], [False, True, True]]),
        (x >= 4, [[False, False, False], [False, True, True]]),
        (x < 1, [[False, False, False], [True, False, False]]),
    ]:
        assert result.dtype == np.bool_ and not result.requires_grad and result.grad_fn is None
        assert result.tolist() == expected
    assert (x > 4).any().item() is True and (x > -1).all().item() is True
    assert (x > 2).any(axis=1).tolist() == [True, True]


# -- softmax --------------------------------------------------------------------------------------
def _softmax(x, axis):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


@pytest.mark.parametrize("backend", ["reference", "compiled"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@QUICK
@given(data=st.data())
def test_softmax_values_any_axis(backend, dtype, data):
    x = data.draw(drawn(-10.0, 10.0, dtype, min_dims=1))
    axis = data.draw(st.integers(-x.ndim, x.ndim - 1))
    with on_backend(backend):
        close(tt.from_numpy(x).softmax(axis), _softmax(x, axis), dtype, rtol=1e-5)
        close(tt.log_softmax(tt.from_numpy(x), axis=axis), np.log(_softmax(x.astype(np.float64), axis)), dtype, rtol=1e-5)


def test_softmax_is_stable_for_large_logits():
    x = tt.tensor([[1000.0, 0.0, -1000.0]])
    np.testing.assert_allclose(x.softmax().data, [[1.0, 0.0, 0.0]])
    np.testing.assert_allclose(x.log_softmax().data, [[0.0, -1000.0, -2000.0]])


@pytest.mark.parametrize("backend", ["reference", "compiled"])
@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
def test_softmax_backward_accepts_read_only_gradients(backend, name):
    # batch of one, summed over the batch axis: sum's backward hands over a read-only view
    x = tt.tensor([[0.5, -1.0, 2.0]], requires_grad=True)
    with on_backend(backend):
        getattr(x, name)(axis=-1).sum(axis=0)[0].backward()
    assert x.grad is not None and np.all(np.isfinite(x.grad.data))


@pytest.mark.parametrize("backend", ["reference", "compiled"])
def test_relu_backward_accepts_read_only_gradients(backend):
    x = tt.tensor([[0.5, -1.0, 2.0]], requires_grad=True)
    with on_backend(backend):
        x.relu().sum(axis=0).sum().backward()
    assert x.grad.tolist() == [[1.0, 0.0, 1.0]]


# -- shape ----------------------------------------------------------------------------------------
def test_shape_ops_match_numpy_and_are_views():
    x = np.random.default_rng(1).standard_normal((2, 1, 3, 4)).astype(F32)
    t = tt.from_numpy(x)
    cases = [
        (t.reshape(6, 4), x.reshape(6, 4)),
        (t.reshape((-1, 2)), x.reshape(-1, 2)),
        (t.view(2, 12), x.reshape(2, 12)),
        (t.flatten(), x.reshape(-1)),
        (t.flatten(1, 2), x.reshape(2, 3, 4)),
        (t.flatten(-2), x.reshape(2, 1, 12)),
        (t.squeeze(), x.squeeze()),
        (t.squeeze(1), x.squeeze(1)),
        (t.unsqueeze(-1), np.expand_dims(x, -1)),
        (t.expand_dims(0), np.expand_dims(x, 0)),
        (t.transpose(), x.transpose()),
        (t.transpose(1, 0, 3, 2), x.transpose(1, 0, 3, 2)),
        (t.permute((3, 2, 1, 0)), x.transpose(3, 2, 1, 0)),
        (t.swapaxes(0, -1), x.swapaxes(0, -1)),
        (t.T, x.T),
        (t.mT, np.swapaxes(x, -1, -2)),
        (t.expand(5, 2, 3, 3, 4), np.broadcast_to(x, (5, 2, 3, 3, 4))),
        (t.expand(-1, 2, -1, -1), np.broadcast_to(x, (2, 2, 3, 4))),
        (t.broadcast_to((2, 2, 3, 4)), np.broadcast_to(x, (2, 2, 3, 4))),
        (t[0, :, ::-1, 1:3], x[0, :, ::-1, 1:3]),
    ]
    for ours, theirs in cases:
        close(ours, theirs)
        assert np.shares_memory(ours.data, x), "a shape op or basic index should be a view, as in NumPy"


def test_copies_are_copies():
    x = tt.tensor([1.0, 2.0])
    for copy in (x.clone(), x.astype(tt.float32), x[[0, 1]], x[x > 0]):
        assert not np.shares_memory(copy.data, x.data)
    assert x.astype(tt.float64).dtype == np.float64 and x.astype(tt.int64).tolist() == [1, 2]
    assert x.clone().dtype == np.float32


# -- indexing and joining -------------------------------------------------------------------------
@QUICK
@given(data=st.data())
def test_getitem_matches_numpy(data):
    x = data.draw(drawn(min_dims=1))
    kind = data.draw(st.sampled_from(["basic", "integer", "mask"]))
    if kind == "basic":
        index = data.draw(hnp.basic_indices(x.shape, allow_newaxis=True, allow_ellipsis=True))
    elif kind == "integer":
        index = data.draw(hnp.integer_array_indices(x.shape))
    else:
        index = data.draw(hnp.arrays(np.bool_, x.shape))
    close(tt.from_numpy(x)[index], x[index])


def test_getitem_index_forms():
    x = np.arange(24, dtype=F32).reshape(2, 3, 4)
    t = tt.from_numpy(x)
    close(t[[1, 1, 0]], x[[1, 1, 0]])
    close(t[tt.tensor([1, 0])], x[[1, 0]])
    close(t[tt.tensor(x > 10)], x[x > 10])
    close(t[:, [2, 0], 1:], x[:, [2, 0], 1:])
    close(t[..., None, -1], x[..., None, -1])
    close(t[1, (t.data[1] > 15)], x[1, x[1] > 15])


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_concatenate_stack_split_values(axis):
    rng = np.random.default_rng(2)
    parts = [rng.standard_normal((2, 3)).astype(F32) for _ in range(3)]
    tensors = [tt.from_numpy(p) for p in parts]
    close(tt.concatenate(tensors, axis=axis), np.concatenate(parts, axis=axis))
    close(tt.cat(tensors, axis), np.concatenate(parts, axis=axis))
    close(tt.stack(tensors, axis=axis), np.stack(parts, axis=axis))
    joined = np.concatenate(parts, axis=axis)
    for how in (3, [1, 2], [0, 2, 2]):
        if isinstance(how, int) and joined.shape[axis] % how:
            continue
        ours, theirs = tt.split(tt.from_numpy(joined), how, axis=axis), np.split(joined, how, axis=axis)
        assert len(ours) == len(theirs)
        for o, t in zip(ours, theirs):
            close(o, t)
    assert [p.shape for p in tt.from_numpy(joined).split(3, axis)] == [p.shape for p in np.split(joined, 3, axis)]


@pytest.mark.parametrize("width", [1, (1, 2), ((0, 1), (2, 0)), ((1, 1),)])
def test_pad_values(width):
    x = np.arange(6, dtype=F32).reshape(2, 3)
    close(tt.pad(tt.from_numpy(x), width), np.pad(x, width))
    close(tt.pad(tt.from_numpy(x), width, value=-1.5), np.pad(x, width, constant_values=-1.5))


# -- dtype behaviour ------------------------------------------------------------------------------
def test_float32_stays_float32():
    x = tt.ones(2, 3)
    results = {
        "python float": x * 0.5 + 1.5,
        "python int": 2 * x - 1,
        "numpy float64 scalar": x * np.float64(2.0) / np.sqrt(64),
        "int64 tensor": x + tt.tensor([1, 2, 3]),
        "int32 tensor": x * tt.tensor([1, 2, 3], dtype=tt.int32),
        "int tensor divisor": x / tt.tensor([1, 2, 4]),
        "bool mask": x * (x > 0),
        "int exponent tensor": x ** tt.tensor([1, 2, 3]),
        "rpow": 2.0 ** x,
        "matmul int": x @ tt.ones(3, 2, dtype=tt.int64),
        "maximum int": tt.maximum(x, tt.tensor([0, 2, 0])),
        "where int branch": tt.where(x > 0, x, tt.tensor([0, 1, 2])),
        "mean": x.mean(),
        "var": x.var(axis=0),
        "clip": x.clip(0.5, 1.5),
        "clip numpy bounds": x.clip(np.float64(0.5), np.float64(1.5)),
        "softmax": x.softmax(),
        "sigmoid": x.sigmoid(),
    }
    wrong = {name: str(r.dtype) for name, r in results.items() if r.dtype != np.float32}
    assert not wrong, f"float32 was upcast: {wrong}"


def test_float64_stays_float64_and_mixing_promotes_as_numpy_does():
    x = tt.ones(2, 3, dtype=tt.float64)
    for r in (x * 0.5, x @ x.T, x.softmax(), x.sum(), x[0], x.exp(), x + tt.tensor([1, 2, 3])):
        assert r.dtype == np.float64
    assert (x + tt.ones(3)).dtype == np.float64  # float32 with float64: the wider float, as in NumPy/PyTorch


def test_integer_tensors_for_labels():
    labels = tt.tensor([0, 2, 1])
    assert labels.dtype == np.int64 and not labels.requires_grad
    assert (labels + 1).dtype == np.int64 and (labels * 2).tolist() == [0, 4, 2]
    assert labels.sum().dtype == np.int64
    logits = tt.randn(3, 4, requires_grad=True)
    picked = logits[tt.arange(3), labels]
    assert picked.shape == (3,) and picked.requires_grad
    np.testing.assert_array_equal(picked.data, logits.data[[0, 1, 2], [0, 2, 1]])


OPS_FOR_GRAD_DTYPE = {
    "pow scalar": lambda a, b: a ** 2.5,
    "rpow": lambda a, b: 2.0 ** a,
    "pow tensor": lambda a, b: a ** b,
    "div": lambda a, b: a / b,
    "matmul": lambda a, b: a @ b.T,
    "maximum": tt.maximum,
    "minimum": tt.minimum,
    "where": lambda a, b: tt.where(a.data > 1, a, b),
    "max": lambda a, b: a.max(axis=1),
    "var": lambda a, b: a.var(axis=0),
    "logsumexp": lambda a, b: a.logsumexp(axis=1),
    "softmax": lambda a, b: a.softmax(axis=0),
    "log_softmax": lambda a, b: a.log_softmax(),
    "sigmoid": lambda a, b: a.sigmoid(),
    "clip": lambda a, b: a.clip(0.7, 1.5),
    "getitem": lambda a, b: a[[0, 0, 2]],
    "pad": lambda a, b: tt.pad(a, 1),
}


@pytest.mark.parametrize("name", list(OPS_FOR_GRAD_DTYPE))
def test_backward_of_float32_ops_returns_float32(name):
    # The engine would cast a float64 gradient back, hiding the cost; check the op's own backward.
    rng = np.random.default_rng(3)
    a = tt.tensor(rng.uniform(0.5, 2.0, (3, 4)), requires_grad=True)
    b = tt.tensor(rng.uniform(0.5, 2.0, (3, 4)), requires_grad=True)
    out = OPS_FOR_GRAD_DTYPE[name](a, b)
    assert out.dtype == np.float32
    node = out.grad_fn
    grads = node.fn.backward(node, rng.standard_normal(out.shape).astype(np.float32))
    grads = grads if isinstance(grads, tuple) else (grads,)
    dtypes = [np.asarray(g).dtype for g in grads if g is not None]
    assert dtypes and all(d == np.float32 for d in dtypes), dtypes


# -- gradients at the points where ops have no derivative: defined as in PyTorch ----------------
def grad_of(fn, values):
    x = tt.tensor(values, requires_grad=True)
    fn(x).sum().backward()
    return x.grad.tolist()


def test_defined_gradients_at_kinks_and_ties():
    assert grad_of(lambda x: x.abs(), [0.0, -2.0, 3.0]) == [0.0, -1.0, 1.0]
    assert grad_of(lambda x: x.relu(), [0.0, -2.0, 3.0]) == [0.0, 0.0, 1.0]
    assert grad_of(lambda x: x.clip(-1.0, 1.0), [-1.0, 1.0, 2.0, 0.0]) == [1.0, 1.0, 0.0, 1.0]
    assert grad_of(lambda x: tt.maximum(x, 1.0), [1.0, 2.0, 0.0]) == [0.5, 1.0, 0.0]
    assert grad_of(lambda x: tt.minimum(x, 1.0), [1.0, 2.0, 0.0]) == [0.5, 0.0, 1.0]
    assert grad_of(lambda x: x.max(), [1.0, 3.0, 3.0]) == [0.0, 0.5, 0.5]
    assert grad_of(lambda x: x.min(axis=1), [[2.0, 2.0], [1.0, 4.0]]) == [[0.5, 0.5], [1.0, 0.0]]


# -- errors name the op and what it got -----------------------------------------------------------
@pytest.mark.parametrize(
    "call, error, message",
    [
        (lambda: tt.zeros(32, 100) @ tt.zeros(784, 10), ValueError,
         r"matmul: shapes \(32, 100\) and \(784, 10\) do not align: 100 != 784"),
        (lambda: tt.zeros(3) @ tt.zeros(4), ValueError, r"matmul: shapes \(3,\) and \(4,\) do not align: 3 != 4"),
        (lambda: tt.zeros(2, 2, 3) @ tt.zeros(3, 3, 4), ValueError,
         r"matmul: batch shapes of \(2, 2, 3\) and \(3, 3, 4\) cannot be broadcast together"),
        (lambda: tt.tensor(2.0) @ tt.zeros(2), ValueError, r"matmul: operands must have at least one dimension"),
        (lambda: tt.zeros(2, 3) + tt.zeros(4), ValueError, r"add: shapes \(2, 3\) and \(4,\) cannot be broadcast together"),
        (lambda: tt.zeros(2, 3) - tt.zeros(2, 2), ValueError, r"sub: shapes \(2, 3\) and \(2, 2\) cannot be broadcast"),
        (lambda: tt.zeros(2, 3) * tt.zeros(3, 2), ValueError, r"mul: shapes \(2, 3\) and \(3, 2\) cannot be broadcast"),
        (lambda: tt.zeros(2) / tt.zeros(3), ValueError, r"div: shapes \(2,\) and \(3,\)"),
        (lambda: tt.zeros(2) ** tt.zeros(3), ValueError, r"pow: shapes \(2,\) and \(3,\)"),
        (lambda: tt.maximum(tt.zeros(2), tt.zeros(3)), ValueError, r"maximum: shapes \(2,\) and \(3,\)"),
        (lambda: tt.where(tt.zeros(2) > 0, tt.zeros(3), 0.0), ValueError,
         r"where: condition \(2,\), a \(3,\) and b \(\) cannot be broadcast together"),
        (lambda: tt.where(tt.zeros(2), tt.zeros(2), 0.0), TypeError, r"where: condition must be boolean, got dtype float32"),
        (lambda: tt.zeros(2, 3).reshape(4, 2), ValueError,
         r"reshape: cannot reshape a tensor of shape \(2, 3\) \(6 elements\) into \(4, 2\)"),
        (lambda: tt.zeros(2, 3).sum(axis=2), ValueError, r"sum: axis 2 is out of range for a tensor with 2 dimensions"),
        (lambda: tt.zeros(2, 3).mean(axis=(0, -2)), ValueError, r"mean: axis \(0, -2\) names an axis twice"),
        (lambda: tt.zeros(2, 3).max(axis=-3), ValueError, r"max: axis -3 is out of range"),
        (lambda: tt.zeros(2, 3).softmax(axis=2), ValueError, r"softmax: axis 2 is out of range"),
        (lambda: tt.zeros(2, 3).sum(axis=1.5), TypeError, r"sum: axis must be an int, got 1.5"),
        (lambda: tt.zeros(2, 3).unsqueeze(4), ValueError, r"unsqueeze: axis 4 is out of range"),
        (lambda: tt.zeros(2, 3).squeeze(0), ValueError, r"squeeze: axis 0 has size 2, not 1 \(shape \(2, 3\)\)"),
        (lambda: tt.zeros(2, 3).transpose(0), ValueError, r"transpose: got 1 axes \(0,\) for a tensor of shape \(2, 3\)"),
        (lambda: tt.zeros(2, 3).transpose(0, 0), ValueError, r"transpose: axes \(0, 0\) are not a permutation"),
        (lambda: tt.zeros(2, 3).expand(4, 3), ValueError,
         r"expand: shape \(2, 3\) cannot be expanded to \(4, 3\): only size-1 axes can grow"),
        (lambda: tt.zeros(2, 3).flatten(1, 0), ValueError, r"flatten: start_axis 1 comes after end_axis 0"),
        (lambda: tt.concatenate([tt.zeros(2, 3), tt.zeros(3, 2)]), ValueError,
         r"concatenate: tensor 1 has shape \(3, 2\), but tensor 0 has \(2, 3\); all shapes must match except along axis 0"),
        (lambda: tt.concatenate([tt.tensor(1.0), tt.tensor(2.0)]), ValueError, r"concatenate: 0-d tensors"),
        (lambda: tt.concatenate([]), ValueError, r"concatenate: needs at least one tensor"),
        (lambda: tt.stack([tt.zeros(2), tt.zeros(3)]), ValueError,
         r"stack: all tensors must have the same shape, got \[\(2,\), \(3,\)\]"),
        (lambda: tt.split(tt.zeros(5), 2), ValueError,
         r"split: axis 0 of length 5 does not divide into 2 equal sections"),
        (lambda: tt.pad(tt.zeros(2, 3), ((1, 1), (1, 1), (1, 1))), ValueError,
         r"pad: pad_width \(\(1, 1\), \(1, 1\), \(1, 1\)\) does not fit a tensor with 2 dimensions"),
        (lambda: tt.pad(tt.zeros(2), -1), ValueError, r"pad: pad_width must not be negative"),
        (lambda: tt.zeros(2, 3)[5], IndexError, r"getitem: index 5 is invalid for a tensor of shape \(2, 3\)"),
        (lambda: tt.zeros(2).clip(), ValueError, r"clip: give at least one of low and high"),
        (lambda: tt.zeros(2).clip(1.0, 0.0), ValueError, r"clip: low \(1.0\) must not exceed high \(0.0\)"),
        (lambda: tt.arange(3).softmax(), TypeError, r"softmax: needs a float tensor, got dtype int64"),
        (lambda: tt.tensor(1.0).log_softmax(), ValueError, r"log_softmax: needs at least one dimension"),
        (lambda: tt.zeros(0).mean(), ValueError, r"mean: cannot average over an empty axis"),
        (lambda: tt.zeros(0).max(), ValueError, r"max: the tensor of shape \(0,\) is empty"),
        (lambda: tt.zeros(1).var(ddof=1), ValueError, r"var: 1 element\(s\) per reduction with ddof=1"),
    ],
)
def test_errors_name_the_op_and_what_it_got(call, error, message):
    with pytest.raises(error, match=message):
        call()


def test_numpy_integer_axes_are_accepted():
    x = np.arange(6, dtype=F32).reshape(2, 3)
    axis = np.argmax([0, 5])  # a NumPy integer, as computed axes often are
    close(tt.from_numpy(x).sum(axis=axis), x.sum(axis=1))
    close(tt.from_numpy(x).softmax(axis=axis), _softmax(x, 1))
    close(tt.from_numpy(x).swapaxes(np.int64(0), axis), x.T)
