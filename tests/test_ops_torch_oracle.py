"""Forward values and gradients against PyTorch (float64), one representative composite per op group.

PyTorch is a test-only oracle: the framework never imports it. The comparisons include the points
where the derivative is a convention (abs and relu at 0, clip at its bounds, ties in max/maximum),
so TinyTorch's conventions are PyTorch's.
"""

import numpy as np
import pytest

import tinytorch as tt
from tinytorch.core import kernels

torch = pytest.importorskip("torch", reason="PyTorch is not installed: the oracle comparison needs it (pip install torch==2.13.0)")


def compare(ours_fn, theirs_fn, *arrays, seed=0):
    """Run both on copies of ``arrays`` (float64); compare outputs and input gradients for a random cotangent."""
    ours = [tt.from_numpy(np.array(a, dtype=np.float64), requires_grad=True) for a in arrays]
    theirs = [torch.tensor(np.array(a, dtype=np.float64), requires_grad=True) for a in arrays]
    out, ref = ours_fn(*ours), theirs_fn(*theirs)
    assert out.dtype == np.float64 and tuple(ref.shape) == out.shape
    np.testing.assert_allclose(out.data, ref.detach().numpy(), rtol=1e-10, atol=1e-12)
    cotangent = np.random.default_rng(seed).standard_normal(out.shape)
    out.backward(cotangent)
    ref.backward(torch.tensor(cotangent))
    for i, (o, t) in enumerate(zip(ours, theirs)):
        expected = np.zeros(o.shape) if t.grad is None else t.grad.numpy()
        actual = np.zeros(o.shape) if o.grad is None else o.grad.data
        np.testing.assert_allclose(actual, expected, rtol=1e-10, atol=1e-12, err_msg=f"gradient of input {i}")


def rand(*shape, low=-2.0, high=2.0, seed=0):
    return np.random.default_rng(seed).uniform(low, high, size=shape)


def T(a):
    """torch.tensor of a constant array."""
    return torch.as_tensor(a)


# -- arithmetic and matmul ------------------------------------------------------------------------
def test_arithmetic_with_broadcasting():
    a, b, c = rand(3, 1, 4, seed=1), rand(2, 4, seed=2), rand(4, low=0.5, seed=3)
    compare(
        lambda a, b, c: (a + b) * c - a / (c + 1) + a**2 - (b.abs() + 0.5) ** c + 2.0**a - (-b) / 3.0 + 1.5 - a * 0.25,
        lambda a, b, c: (a + b) * c - a / (c + 1) + a**2 - (b.abs() + 0.5) ** c + 2.0**a - (-b) / 3.0 + 1.5 - a * 0.25,
        a, b, c,
    )


@pytest.mark.parametrize(
    "shape_a, shape_b",
    [((3,), (3,)), ((3,), (3, 2)), ((2, 3), (3,)), ((2, 3), (3, 4)), ((2, 1, 2, 3), (5, 3, 2)), ((4, 2, 3), (3,)),
     ((3,), (4, 3, 2))],
)
def test_matmul(shape_a, shape_b):
    compare(lambda a, b: a @ b, lambda a, b: a @ b, rand(*shape_a, seed=4), rand(*shape_b, seed=5))


# -- element-wise ---------------------------------------------------------------------------------
def test_elementwise_composite():
    x, y = rand(3, 4, seed=6), rand(3, 4, seed=7)
    x[0, :3] = [0.0, -1.0, 1.0]  # kinks: abs/relu at 0, clip at its bounds
    y[0, :3] = [0.0, 0.5, 1.0]  # ties with x for maximum/minimum
    compare(
        lambda x, y: (x.exp() + (y.abs() + 0.1).log() + (x * x + 1).sqrt() + x.abs() + y.tanh() + x.sigmoid() + x.relu()
                      + tt.maximum(x, y) * 2 + tt.minimum(x, y) * 3 + x.clip(-1.0, 1.0) * 5 + x.clip(min=0.0) * 7
                      + tt.where(x > y, x * y, y - x)),
        lambda x, y: (x.exp() + (y.abs() + 0.1).log() + (x * x + 1).sqrt() + x.abs() + y.tanh() + x.sigmoid() + x.relu()
                      + torch.maximum(x, y) * 2 + torch.minimum(x, y) * 3 + x.clamp(-1.0, 1.0) * 5 + x.clamp(min=0.0) * 7
                      + torch.where(x > y, x * y, y - x)),
        x, y,
    )


# -- reductions -----------------------------------------------------------------------------------
@pytest.mark.parametrize("axis, keepdims", [(None, False), (1, False), (-1, True), ((0, 2), False), ((0, -1), True)])
def test_reductions(axis, keepdims):
    x = rand(2, 3, 4, seed=8)
    x[0, 0, :2] = x[0, 0, 3]  # ties for max: the gradient is shared, as torch.amax shares it
    x[1, 2, 1] = x[1, 2, 0] = x.min() - 1.0
    dims = tuple(range(3)) if axis is None else axis
    compare(
        lambda x: (x.sum(axis, keepdims) + x.mean(axis, keepdims) * 2 + x.var(axis, keepdims) * 3
                   + x.var(axis, keepdims, ddof=1) + x.std(axis, keepdims) * 5 + x.max(axis, keepdims) * 7
                   + x.min(axis, keepdims) * 11 + x.logsumexp(axis, keepdims) * 13),
        lambda x: (x.sum(dims, keepdims) + x.mean(dims, keepdims) * 2 + x.var(dims, correction=0, keepdim=keepdims) * 3
                   + x.var(dims, correction=1, keepdim=keepdims) + x.std(dims, correction=0, keepdim=keepdims) * 5
                   + x.amax(dims, keepdims) * 7 + x.amin(dims, keepdims) * 11 + x.logsumexp(dims, keepdims) * 13),
        x,
    )


# -- softmax --------------------------------------------------------------------------------------
@pytest.mark.parametrize("backend", ["reference", "compiled"])
@pytest.mark.parametrize("axis", [0, 1, -1])
def test_softmax_and_log_softmax(backend, axis):
    if backend == "compiled" and not kernels.compiled_available():
        pytest.skip("compiled kernels are not built (run pip install -e .)")
    x = rand(3, 4, 5, low=-5.0, high=5.0, seed=9)
    with kernels.use(backend):
        compare(
            lambda x: x.softmax(axis) * 3 + tt.log_softmax(x * 2, axis=axis),
            lambda x: torch.softmax(x, axis) * 3 + torch.log_softmax(x * 2, dim=axis),
            x,
        )


def test_cross_entropy_composite():
    logits, w = rand(4, 5, seed=10), rand(5, 5, seed=11)
    labels = np.array([0, 3, 3, 1])
    compare(
        lambda z, w: -(z @ w).log_softmax(-1)[np.arange(4), labels].mean(),
        lambda z, w: torch.nn.functional.cross_entropy(z @ w, T(labels)),
        logits, w,
    )


# -- shape ----------------------------------------------------------------------------------------
def test_shape_ops():
    x = rand(2, 1, 3, 4, seed=12)
    compare(
        lambda x: (x.reshape(6, 4).reshape(2, 1, 3, 4).transpose(3, 0, 1, 2).permute((1, 2, 0, 3)).swapaxes(0, -1)
                   .squeeze().unsqueeze(0).flatten(1, 2).expand(5, 12, 2).mT.T * 1.0),
        lambda x: (x.reshape(6, 4).reshape(2, 1, 3, 4).permute(3, 0, 1, 2).permute(1, 2, 0, 3).transpose(0, -1)
                   .squeeze().unsqueeze(0).flatten(1, 2).expand(5, 12, 2).mT.permute(2, 1, 0) * 1.0),
        x,
    )


# -- indexing, joining, splitting -----------------------------------------------------------------
def test_indexing():
    x = rand(4, 3, 5, seed=13)
    rows = np.array([0, 2, 0, 0, -1])
    cols = np.array([1, 1, 2, 1, 0])
    mask = x[:, 0, 0] > 0
    compare(
        lambda x: (x[rows].sum(axis=0) + x[rows, :, cols].sum(axis=0)[:, None] * 2 + x[1:3, ::2, -1].sum() * 3
                   + x[mask].sum(axis=0) * 5 + x[..., None, 1].sum(axis=(0, 2))[:, None] * 7 + x[[3, 3]].sum(axis=0)[:, :1]),
        lambda x: (x[T(rows)].sum(0) + x[T(rows), :, T(cols)].sum(0)[:, None] * 2 + x[1:3, ::2, -1].sum() * 3
                   + x[T(mask)].sum(0) * 5 + x[..., None, 1].sum((0, 2))[:, None] * 7 + x[[3, 3]].sum(0)[:, :1]),
        x,
    )


def test_negative_step_slices():
    x = rand(4, 5, seed=14)
    compare(lambda x: x[::-1, 3:0:-2] * 1.0, lambda x: x.flip(0)[:, 1:5:2].flip(1), x)


def test_concatenate_stack_split_pad():
    a, b = rand(2, 3, seed=15), rand(2, 2, seed=16)

    def ours(a, b):
        joined = tt.concatenate([a, b, a], axis=1)  # (2, 8)
        first, second, third = tt.split(joined, [3, 5], axis=1)
        stacked = tt.stack([first, third[:, :3] * 2], axis=-1)  # (2, 3, 2)
        return tt.pad(stacked, ((1, 0), (0, 2), (1, 1)), value=0.5).sum(axis=-1) + second.sum() + tt.pad(b, 1).sum()

    def theirs(a, b):
        joined = torch.cat([a, b, a], dim=1)
        first, second, third = torch.split(joined, [3, 2, 3], dim=1)
        stacked = torch.stack([first, third[:, :3] * 2], dim=-1)
        F = torch.nn.functional
        return F.pad(stacked, (1, 1, 0, 2, 1, 0), value=0.5).sum(-1) + second.sum() + F.pad(b, (1, 1, 1, 1)).sum()

    compare(ours, theirs, a, b)


def test_checkpoint_matches_plain_autograd():
    x, w = rand(3, 4, seed=17), rand(4, 4, seed=18)
    compare(
        lambda x, w: tt.checkpoint(lambda x, w: (x @ w).tanh() @ w, x, w).sum(axis=1),
        lambda x, w: ((x @ w).tanh() @ w).sum(1),
        x, w,
    )


# -- result dtypes: PyTorch's promotion rules, for every mix of operands ----------------------------
OPERANDS = {
    "float32 tensor": lambda fw: fw.tensor([[1.5, 2.0], [0.5, 3.0]], dtype=fw.float32),
    "float64 tensor": lambda fw: fw.tensor([[1.5, 2.0], [0.5, 3.0]], dtype=fw.float64),
    "int64 tensor": lambda fw: fw.tensor([[1, 2], [3, 4]], dtype=fw.int64),
    "int32 tensor": lambda fw: fw.tensor([[1, 2], [3, 4]], dtype=fw.int32),
    "bool tensor": lambda fw: fw.tensor([[True, True], [False, True]]),
    "python float": lambda fw: 2.5,
    "python int": lambda fw: 3,
}
BINARY = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b, "/": lambda a, b: a / b}


# PyTorch refuses to subtract booleans, and dividing by a boolean divides by zero where it is False.
MIXES = [
    (left, op, right)
    for op in BINARY
    for left in OPERANDS
    for right in OPERANDS
    if "tensor" in right and not (op == "-" and "bool" in left + right) and not (op == "/" and right == "bool tensor")
]


@pytest.mark.parametrize("left, op, right", MIXES)
def test_arithmetic_result_dtype_and_values_are_pytorchs(left, op, right):
    ours = BINARY[op](OPERANDS[left](tt), OPERANDS[right](tt))
    theirs = BINARY[op](OPERANDS[left](torch), OPERANDS[right](torch))
    assert str(ours.dtype) == str(theirs.dtype).removeprefix("torch."), (left, op, right)
    np.testing.assert_allclose(ours.data, theirs.numpy(), rtol=1e-6)


@pytest.mark.parametrize("left", ["float32 tensor", "float64 tensor", "int64 tensor"])
@pytest.mark.parametrize("right", ["float32 tensor", "float64 tensor", "int64 tensor"])
def test_matmul_result_dtype_is_pytorchs(left, right):
    ours = OPERANDS[left](tt) @ OPERANDS[right](tt)
    a, b = OPERANDS[left](torch), OPERANDS[right](torch)
    expected = torch.promote_types(a.dtype, b.dtype)  # torch's matmul itself refuses mixed dtypes
    assert str(ours.dtype) == str(expected).removeprefix("torch.")
    np.testing.assert_allclose(ours.data, (a.to(expected) @ b.to(expected)).numpy(), rtol=1e-6)
