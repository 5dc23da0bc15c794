"""Element-wise functions: exp, log, sqrt, abs, tanh, sigmoid, relu, maximum, minimum, clip, where, casts."""

import numpy as np

from .. import kernels
from ..autograd import Function
from .arithmetic import broadcasting, default_float, promote_ints


class Exp(Function):
    """y = eˣ;  dy/dx = y"""

    @staticmethod
    def forward(ctx, x):
        y = np.exp(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, grad):
        (y,) = ctx.saved
        return grad * y


class Log(Function):
    """y = ln x;  dy/dx = 1/x"""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return np.log(x)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved
        return grad / x


class Sqrt(Function):
    """y = √x;  dy/dx = 1 / (2y)"""

    @staticmethod
    def forward(ctx, x):
        y = np.sqrt(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, grad):
        (y,) = ctx.saved
        return grad / (2 * y)


class Abs(Function):
    """y = |x|;  dy/dx = sign(x) (0 at 0, as in PyTorch)"""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return np.abs(x)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved
        return grad * np.sign(x)


class Tanh(Function):
    """y = tanh x;  dy/dx = 1 - y²"""

    @staticmethod
    def forward(ctx, x):
        y = np.tanh(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, grad):
        (y,) = ctx.saved
        return grad * (1 - y * y)


def stable_sigmoid(x: np.ndarray) -> np.ndarray:
    """1 / (1 + e⁻ˣ) without overflow: for x < 0 use eˣ / (1 + eˣ), which is the same number."""
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e))


class Sigmoid(Function):
    """y = 1 / (1 + e⁻ˣ);  dy/dx = y (1 - y)"""

    @staticmethod
    def forward(ctx, x):
        y = stable_sigmoid(x).astype(x.dtype, copy=False)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, grad):
        (y,) = ctx.saved
        return grad * y * (1 - y)


class ReLU(Function):
    """y = max(x, 0);  dy/dx = 1 where x > 0, else 0.  Float input runs on the relu kernels."""

    @staticmethod
    def forward(ctx, x):
        y = kernels.relu_forward(x) if x.dtype.kind == "f" else np.maximum(x, 0)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, grad):
        (y,) = ctx.saved
        return kernels.relu_backward(y, grad)


class Maximum(Function):
    """z = max(a, b) element-wise; where a == b the gradient is split evenly, as in PyTorch."""

    @staticmethod
    def forward(ctx, a, b):
        a, b = promote_ints(a, b)
        ctx.save_for_backward(a, b)
        return broadcasting("maximum", np.maximum, a, b)

    @staticmethod
    def backward(ctx, grad):
        a, b = ctx.saved
        share_a = ((a > b) + 0.5 * (a == b)).astype(grad.dtype, copy=False)
        return grad * share_a, grad * (1 - share_a)


class Minimum(Function):
    """z = min(a, b) element-wise; where a == b the gradient is split evenly."""

    @staticmethod
    def forward(ctx, a, b):
        a, b = promote_ints(a, b)
        ctx.save_for_backward(a, b)
        return broadcasting("minimum", np.minimum, a, b)

    @staticmethod
    def backward(ctx, grad):
        a, b = ctx.saved
        share_a = ((a < b) + 0.5 * (a == b)).astype(grad.dtype, copy=False)
        return grad * share_a, grad * (1 - share_a)


class Clip(Function):
    """y = min(max(x, low), high);  the gradient passes where low <= x <= high (either bound may be None)."""

    @staticmethod
    def forward(ctx, x, low=None, high=None):
        # NumPy scalar bounds act like Python numbers (as op inputs do), so float32 stays float32
        low, high = (v.item() if isinstance(v, np.generic) else v for v in (low, high))
        if low is None and high is None:
            raise ValueError("clip: give at least one of low and high")
        if low is not None and high is not None and low > high:
            raise ValueError(f"clip: low ({low}) must not exceed high ({high})")
        ctx.save_for_backward(x)
        ctx.low, ctx.high = low, high
        return np.clip(x, low, high)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved
        inside = np.ones(x.shape, dtype=bool)
        if ctx.low is not None:
            inside &= x >= ctx.low
        if ctx.high is not None:
            inside &= x <= ctx.high
        return grad * inside


class Where(Function):
    """z = a where condition else b (condition is a constant boolean array)."""

    @staticmethod
    def forward(ctx, condition, a, b):
        condition = np.asarray(condition)
        if condition.dtype != bool:
            raise TypeError(f"where: condition must be boolean, got dtype {condition.dtype}")
        try:
            np.broadcast_shapes(condition.shape, np.shape(a), np.shape(b))
        except ValueError:
            raise ValueError(
                f"where: condition {condition.shape}, a {np.shape(a)} and b {np.shape(b)} cannot be broadcast together"
            ) from None
        ctx.save_for_backward(condition)
        a, b = promote_ints(a, b)
        return default_float(np.where(condition, a, b), a, b)

    @staticmethod
    def backward(ctx, grad):
        (condition,) = ctx.saved
        return None, np.where(condition, grad, 0), np.where(condition, 0, grad)


class Cast(Function):
    """y = x as another dtype; the gradient is cast back to x's dtype (by the engine)."""

    @staticmethod
    def forward(ctx, x, dtype):
        return x.astype(dtype)

    @staticmethod
    def backward(ctx, grad):
        return grad
