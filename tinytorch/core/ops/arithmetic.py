"""z = a + b, a - b, a * b, a / b, a ** b, -a and matrix products, broadcasting like NumPy.

Each backward returns gradients of the *output's* shape; the engine sums them back down to each
input's shape (``unbroadcast``), so no op here deals with broadcasting itself.
"""

import numpy as np

from ..autograd import Function


def _shape(x) -> tuple:
    return np.shape(x)


def _check_broadcast(op: str, a, b) -> None:
    try:
        np.broadcast_shapes(_shape(a), _shape(b))
    except ValueError:
        raise ValueError(f"{op}: shapes {_shape(a)} and {_shape(b)} cannot be broadcast together") from None


def promote_ints(a, b) -> tuple:
    """PyTorch's rule for an integer array meeting a float array: it takes the float's dtype.

    NumPy would make ``float32 + int64`` a float64 array, silently doubling memory downstream.
    """
    if isinstance(a, np.ndarray) and isinstance(b, np.ndarray):
        if a.dtype.kind == "f" and b.dtype.kind in "iu":
            b = b.astype(a.dtype)
        elif b.dtype.kind == "f" and a.dtype.kind in "iu":
            a = a.astype(b.dtype)
    return a, b


def default_float(out: np.ndarray, *operands) -> np.ndarray:
    """Make a float64 result float32 unless an operand asked for float64 (was a float64 array).

    Integer arrays and Python floats combine to float64 in NumPy (``int_labels / 2``,
    ``where(mask, 1.0, 0.0)``); PyTorch, and TinyTorch, give the default float dtype instead.
    """
    if out.dtype == np.float64 and not any(isinstance(x, np.ndarray) and x.dtype == np.float64 for x in operands):
        return out.astype(np.float32)
    return out


class Add(Function):
    """z = a + b"""

    @staticmethod
    def forward(ctx, a, b):
        _check_broadcast("add", a, b)
        a, b = promote_ints(a, b)
        return default_float(np.add(a, b), a, b)

    @staticmethod
    def backward(ctx, grad):
        return grad, grad


class Sub(Function):
    """z = a - b"""

    @staticmethod
    def forward(ctx, a, b):
        _check_broadcast("sub", a, b)
        a, b = promote_ints(a, b)
        return default_float(np.subtract(a, b), a, b)

    @staticmethod
    def backward(ctx, grad):
        return grad, -grad


class Mul(Function):
    """z = a * b;  dz/da = b,  dz/db = a"""

    @staticmethod
    def forward(ctx, a, b):
        _check_broadcast("mul", a, b)
        a, b = promote_ints(a, b)
        needs_a, needs_b = ctx.needs_input_grad
        # Each factor's gradient reads only the other factor: keep just what a wanted gradient needs.
        ctx.save_for_backward(a if needs_b else None, b if needs_a else None)
        return default_float(np.multiply(a, b), a, b)

    @staticmethod
    def backward(ctx, grad):
        a, b = ctx.saved
        da, db = ctx.needs_input_grad
        return (grad * b if da else None), (grad * a if db else None)


class Div(Function):
    """z = a / b;  dz/da = 1/b,  dz/db = -a/b² = -z/b"""

    @staticmethod
    def forward(ctx, a, b):
        _check_broadcast("div", a, b)
        a, b = promote_ints(a, b)
        z = default_float(np.true_divide(a, b), a, b)
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
        _check_broadcast("pow", a, b)
        a, b = promote_ints(a, b)
        z = default_float(np.power(a, b), a, b)
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


def _swap_last(x: np.ndarray) -> np.ndarray:
    return np.swapaxes(x, -1, -2)


class MatMul(Function):
    """z = a @ b: (..., m, k) @ (..., k, n) -> (..., m, n), batch axes broadcast; 1-D operands as in NumPy.

    dL/da = dL/dz @ bᵀ and dL/db = aᵀ @ dL/dz: each entry z[i, j] = Σ_k a[i, k] b[k, j] sends its
    gradient to a row of a and a column of b.
    """

    @staticmethod
    def forward(ctx, a, b):
        a, b = np.asarray(a), np.asarray(b)
        if a.ndim == 0 or b.ndim == 0:
            raise ValueError(f"matmul: operands must have at least one dimension, got shapes {a.shape} and {b.shape}")
        k_a, k_b = a.shape[-1], b.shape[-2] if b.ndim > 1 else b.shape[0]
        if k_a != k_b:
            raise ValueError(f"matmul: shapes {a.shape} and {b.shape} do not align: {k_a} != {k_b}")
        try:
            np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
        except ValueError:
            raise ValueError(f"matmul: batch shapes of {a.shape} and {b.shape} cannot be broadcast together") from None
        a, b = promote_ints(a, b)
        needs_a, needs_b = ctx.needs_input_grad
        ctx.save_for_backward(a if needs_b else None, b if needs_a else None)  # dL/da reads b, dL/db reads a
        ctx.vector_a, ctx.vector_b = a.ndim == 1, b.ndim == 1
        return np.matmul(a, b)

    @staticmethod
    def backward(ctx, grad):
        a, b = ctx.saved
        # Treat 1-D operands as a row (a) or a column (b) so one formula covers every case.
        g = grad
        if ctx.vector_b:  # before a's axis: with two 1-D operands grad is 0-d and has no axis -2 yet
            g = np.expand_dims(g, -1)
        if ctx.vector_a:
            g = np.expand_dims(g, -2)
        da = db = None
        if ctx.needs_input_grad[0]:
            da = g @ _swap_last(b[:, None] if ctx.vector_b else b)
            if ctx.vector_a:
                da = da[..., 0, :]
        if ctx.needs_input_grad[1]:
            db = _swap_last(a[None, :] if ctx.vector_a else a) @ g
            if ctx.vector_b:
                db = db[..., :, 0]
        return da, db
