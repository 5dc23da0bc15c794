"""z = a + b, a - b, a * b, a / b, a ** b, -a and matrix products, broadcasting like NumPy.

Each backward returns gradients of the *output's* shape; the engine sums them back down to each
input's shape (``unbroadcast``), so no op here deals with broadcasting itself.
"""

import numpy as np

from .. import kernels
from ..autograd import Function


def _mismatch(op: str, a, b) -> str:
    return f"{op}: shapes {np.shape(a)} and {np.shape(b)} cannot be broadcast together"


def broadcasting(op: str, ufunc: np.ufunc, a, b) -> np.ndarray:
    """``ufunc(a, b)``, or a ValueError naming ``op`` and both shapes when they do not broadcast.

    Asking NumPy first and explaining only on failure keeps the check off the common path.
    """
    try:
        return ufunc(a, b)
    except ValueError:
        raise ValueError(_mismatch(op, a, b)) from None


def promote_ints(a, b) -> tuple:
    """PyTorch's rule for an integer array meeting a float array: it takes the float's dtype.

    NumPy would make ``float32 + int64`` a float64 array, silently doubling memory downstream.
    """
    if isinstance(a, np.ndarray) and isinstance(b, np.ndarray):
        kind_a, kind_b = a.dtype.kind, b.dtype.kind
        if kind_a == "f" and kind_b in "iu":
            b = b.astype(a.dtype)
        elif kind_b == "f" and kind_a in "iu":
            a = a.astype(b.dtype)
    return a, b


def _float64_array(x) -> bool:
    return isinstance(x, np.ndarray) and x.dtype.char == "d"


def default_float(out: np.ndarray, a, b) -> np.ndarray:
    """Make a float64 result float32 unless an operand asked for float64 (was a float64 array).

    Integer arrays and Python floats combine to float64 in NumPy (``int_labels / 2``,
    ``where(mask, 1.0, 0.0)``); PyTorch, and TinyTorch, give the default float dtype instead.
    """
    if out.dtype.char != "d" or _float64_array(a) or _float64_array(b):
        return out
    return out.astype(np.float32)


def binary(op: str, ufunc: np.ufunc, a, b) -> tuple:
    """``(ufunc(a, b), a, b)`` with PyTorch's result dtype; a ValueError naming ``op`` when the shapes do not broadcast.

    The common case, where NumPy's dtype is PyTorch's, costs one look at the result (one call per
    op matters here: these are the most frequent ops).
    """
    try:
        out = ufunc(a, b)
    except ValueError:
        raise ValueError(_mismatch(op, a, b)) from None
    if out.dtype.char != "d":
        return out, a, b
    return pytorch_dtype(ufunc, out, a, b)


def pytorch_dtype(ufunc: np.ufunc, out: np.ndarray, a, b) -> tuple:
    """``(out, a, b)`` for ``out = ufunc(a, b)``, redone where PyTorch's result dtype differs from NumPy's.

    They disagree only where NumPy answers float64 without being asked to (no operand is a float64
    array): an integer array meeting a float array takes the float's dtype (:func:`promote_ints`,
    and ``a``, ``b`` come back promoted), and integers meeting a Python float give float32
    (:func:`default_float`). So the common case costs one look at the result's dtype.
    """
    if out.dtype.char != "d" or _float64_array(a) or _float64_array(b):
        return out, a, b
    promoted_a, promoted_b = promote_ints(a, b)
    if promoted_a is not a or promoted_b is not b:
        return ufunc(promoted_a, promoted_b), promoted_a, promoted_b
    return out.astype(np.float32), a, b


class Add(Function):
    """z = a + b"""

    @staticmethod
    def forward(ctx, a, b):
        return binary("add", np.add, a, b)[0]

    @staticmethod
    def backward(ctx, grad):
        return grad, grad


class Sub(Function):
    """z = a - b"""

    @staticmethod
    def forward(ctx, a, b):
        return binary("sub", np.subtract, a, b)[0]

    @staticmethod
    def backward(ctx, grad):
        return grad, -grad


class Mul(Function):
    """z = a * b;  dz/da = b,  dz/db = a"""

    @staticmethod
    def forward(ctx, a, b):
        z, a, b = binary("mul", np.multiply, a, b)
        needs_a, needs_b = ctx.needs_input_grad
        # Each factor's gradient reads only the other factor: keep just what a wanted gradient needs.
        ctx.save_for_backward(a if needs_b else None, b if needs_a else None)
        return z

    @staticmethod
    def backward(ctx, grad):
        a, b = ctx.saved
        da, db = ctx.needs_input_grad
        return (grad * b if da else None), (grad * a if db else None)


class Div(Function):
    """z = a / b;  dz/da = 1/b,  dz/db = -a/b² = -z/b"""

    @staticmethod
    def forward(ctx, a, b):
        z, a, b = binary("div", np.true_divide, a, b)
        ctx.save_for_backward(b, z if ctx.needs_input_grad[1] else None)
        return z

    @staticmethod
    def backward(ctx, grad):
        b, z = ctx.saved
        ga = grad / b
        return ga, (-ga * z if ctx.needs_input_grad[1] else None)


class Pow(Function):
    """z = a ** b;  dz/da = b a^(b-1),  dz/db = z ln a"""

    @staticmethod
    def forward(ctx, a, b):
        z, a, b = binary("pow", np.power, a, b)
        needs_a, needs_b = ctx.needs_input_grad
        ctx.save_for_backward(a, b if needs_a else None, z if needs_b else None)
        return z

    @staticmethod
    def backward(ctx, grad):
        a, b, z = ctx.saved
        da = None
        if ctx.needs_input_grad[0]:
            # b a^(b-1) is 0 * inf at a == 0, b == 0; the derivative of a^0 is 0 there (as in PyTorch).
            with np.errstate(divide="ignore", invalid="ignore"):
                da = np.where(np.equal(b, 0), 0, grad * b * np.power(a, b - 1)).astype(grad.dtype, copy=False)
        db = None
        if ctx.needs_input_grad[1]:
            with np.errstate(divide="ignore", invalid="ignore"):
                # a^b with a == 0 contributes nothing to d/db (the limit of z ln a is 0)
                log_a = np.log(np.where(a > 0, a, 1)).astype(z.dtype, copy=False)  # a may be a Python number
                db = grad * np.where(a > 0, z * log_a, 0)
        return da, db


class Neg(Function):
    """z = -a"""

    @staticmethod
    def forward(ctx, a):
        return np.negative(a)

    @staticmethod
    def backward(ctx, grad):
        return -grad


def _array(x) -> np.ndarray:
    return x if isinstance(x, np.ndarray) else np.asarray(x)


def _matmul_mismatch(shape_a: tuple, shape_b: tuple) -> str:
    """Why NumPy refused ``a @ b``, said with the shapes."""
    if not shape_a or not shape_b:
        return f"matmul: operands must have at least one dimension, got shapes {shape_a} and {shape_b}"
    k_a, k_b = shape_a[-1], shape_b[-2] if len(shape_b) > 1 else shape_b[0]
    if k_a != k_b:
        return f"matmul: shapes {shape_a} and {shape_b} do not align: {k_a} != {k_b}"
    return f"matmul: batch shapes of {shape_a} and {shape_b} cannot be broadcast together"


def _swap_last(x: np.ndarray) -> np.ndarray:
    return np.swapaxes(x, -1, -2)


# Multiply-adds from which a 2-D product goes to the matmul kernel: below, waking its threads costs
# more than it saves, and np.matmul keeps a tiny product on the calling thread anyway (the compiled
# kernel has the same floor, gemm.MIN_WORK; this one also spares small products the kernel lookup).
KERNEL_PRODUCT = 1 << 18


def _product(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``x @ y``, through the matmul kernel when both are 2-D and the product is large."""
    if x.ndim == 2 == y.ndim and x.size * y.shape[-1] >= KERNEL_PRODUCT:
        return kernels.matmul(x, y)
    return x @ y


class MatMul(Function):
    """z = a @ b: (..., m, k) @ (..., k, n) -> (..., m, n), batch axes broadcast; 1-D operands as in NumPy.

    dL/da = dL/dz @ bᵀ and dL/db = aᵀ @ dL/dz: each entry z[i, j] = Σ_k a[i, k] b[k, j] sends its
    gradient to a row of a and a column of b.
    """

    @staticmethod
    def forward(ctx, a, b):
        # Type checks inline, not through _array and pytorch_dtype: a small product is dominated by
        # the calls around it, and tensors always hand over ndarrays of a float dtype.
        if type(a) is not np.ndarray or type(b) is not np.ndarray:
            a, b = _array(a), _array(b)
        try:
            z = _product(a, b)
        except ValueError:
            raise ValueError(_matmul_mismatch(a.shape, b.shape)) from None
        if z.dtype.char == "d":
            z, a, b = pytorch_dtype(np.matmul, z, a, b)
        needs_a, needs_b = ctx.needs_input_grad
        ctx.save_for_backward(a if needs_b else None, b if needs_a else None)  # dL/da reads b, dL/db reads a
        if a.ndim == 1 or b.ndim == 1:  # only then: an attribute of its own costs the node a dictionary
            ctx.vectors = (a.ndim == 1, b.ndim == 1)
        return z

    @staticmethod
    def backward(ctx, grad):
        a, b = ctx.saved
        vector_a, vector_b = getattr(ctx, "vectors", (False, False))
        # Treat 1-D operands as a row (a) or a column (b) so one formula covers every case.
        g = grad
        if vector_b:  # before a's axis: with two 1-D operands grad is 0-d and has no axis -2 yet
            g = np.expand_dims(g, -1)
        if vector_a:
            g = np.expand_dims(g, -2)
        da = db = None
        if ctx.needs_input_grad[0]:
            da = _product(g, _swap_last(b[:, None] if vector_b else b))
            if vector_a:
                da = da[..., 0, :]
        if ctx.needs_input_grad[1]:
            db = _product(_swap_last(a[None, :] if vector_a else a), g)
            if vector_b:
                db = db[..., :, 0]
        return da, db
