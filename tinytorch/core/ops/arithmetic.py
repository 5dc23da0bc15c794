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


class Add(Function):
    """z = a + b"""

    @staticmethod
    def forward(ctx, a, b):
        _check_broadcast("add", a, b)
        return np.add(a, b)

    @staticmethod
    def backward(ctx, grad):
        return grad, grad


class Sub(Function):
    """z = a - b"""

    @staticmethod
    def forward(ctx, a, b):
        _check_broadcast("sub", a, b)
        return np.subtract(a, b)

    @staticmethod
    def backward(ctx, grad):
        return grad, -grad


class Mul(Function):
    """z = a * b"""

    @staticmethod
    def forward(ctx, a, b):
        _check_broadcast("mul", a, b)
        ctx.save_for_backward(a, b)
        return np.multiply(a, b)

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
        z = np.true_divide(a, b)
        ctx.save_for_backward(b, z)
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
        z = np.power(a, b)
        ctx.save_for_backward(a, b, z)
        return z

    @staticmethod
    def backward(ctx, grad):
        a, b, z = ctx.saved
        da = grad * b * np.power(a, np.subtract(b, 1)) if ctx.needs_input_grad[0] else None
        db = None
        if ctx.needs_input_grad[1]:
            with np.errstate(divide="ignore", invalid="ignore"):
                # a^b with a == 0 contributes nothing to d/db (the limit of z ln a is 0)
                db = grad * np.where(a > 0, z * np.log(np.where(a > 0, a, 1)), 0)
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
        ctx.save_for_backward(a, b)
        return np.matmul(a, b)

    @staticmethod
    def backward(ctx, grad):
        a, b = ctx.saved
        # Treat 1-D operands as a row (a) or a column (b) so one formula covers every case.
        a2 = a[None, :] if a.ndim == 1 else a
        b2 = b[:, None] if b.ndim == 1 else b
        g = grad
        if a.ndim == 1:
            g = np.expand_dims(g, -2)
        if b.ndim == 1:
            g = np.expand_dims(g, -1)
        da = db = None
        if ctx.needs_input_grad[0]:
            da = g @ _swap_last(b2)
            if a.ndim == 1:
                da = da[..., 0, :]
        if ctx.needs_input_grad[1]:
            db = _swap_last(a2) @ g
            if b.ndim == 1:
                db = db[..., :, 0]
        return da, db
