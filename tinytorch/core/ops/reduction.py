"""Reductions over axes: sum, mean, var, max, min, logsumexp.

Each backward first puts the reduced axes back (size 1) so the gradient broadcasts against the
input: every element that fed a sum receives the sum's gradient.
"""

import numpy as np

from ..autograd import Function
from ._axes import normalize_axes


def _restore_axes(grad: np.ndarray, axes: tuple[int, ...], keepdims: bool) -> np.ndarray:
    """Give ``grad`` (a reduction's gradient) back the reduced axes as size-1 axes."""
    return grad if keepdims else np.expand_dims(grad, axes)


class Sum(Function):
    """y = Σ x over ``axis``;  dy/dx = 1 for every element summed."""

    @staticmethod
    def forward(ctx, x, axis=None, keepdims=False):
        ctx.axes = normalize_axes("sum", axis, x.ndim)
        ctx.keepdims, ctx.shape = keepdims, x.shape
        return np.sum(x, axis=ctx.axes, keepdims=keepdims)

    @staticmethod
    def backward(ctx, grad):
        return np.broadcast_to(_restore_axes(grad, ctx.axes, ctx.keepdims), ctx.shape)


class Mean(Function):
    """y = Σ x / n over ``axis``;  dy/dx = 1/n."""

    @staticmethod
    def forward(ctx, x, axis=None, keepdims=False):
        ctx.axes = normalize_axes("mean", axis, x.ndim)
        if any(x.shape[a] == 0 for a in ctx.axes):
            raise ValueError(f"mean: cannot average over an empty axis of a tensor of shape {x.shape}")
        ctx.keepdims, ctx.shape = keepdims, x.shape
        ctx.count = int(np.prod([x.shape[a] for a in ctx.axes]))
        return np.mean(x, axis=ctx.axes, keepdims=keepdims)

    @staticmethod
    def backward(ctx, grad):
        return np.broadcast_to(_restore_axes(grad, ctx.axes, ctx.keepdims) / ctx.count, ctx.shape)


class Var(Function):
    """y = Σ (x - mean)² / (n - ddof);  dy/dx = 2 (x - mean) / (n - ddof).  ``ddof=0`` as in NumPy."""

    @staticmethod
    def forward(ctx, x, axis=None, keepdims=False, ddof=0):
        ctx.axes = normalize_axes("var", axis, x.ndim)
        ctx.keepdims = keepdims
        count = int(np.prod([x.shape[a] for a in ctx.axes]))
        if count - ddof <= 0:
            raise ValueError(f"var: {count} element(s) per reduction with ddof={ddof}; need more than ddof")
        centred = x - x.mean(axis=ctx.axes, keepdims=True)
        ctx.save_for_backward(centred)
        ctx.divisor = count - ddof
        return np.sum(centred * centred, axis=ctx.axes, keepdims=keepdims) / ctx.divisor

    @staticmethod
    def backward(ctx, grad):
        (centred,) = ctx.saved
        return _restore_axes(grad, ctx.axes, ctx.keepdims) * (2 / ctx.divisor) * centred


class _Extreme(Function):
    """Shared by Max and Min: the gradient goes to the extreme element(s), split evenly among ties."""

    name = ""
    reduce = None

    @staticmethod
    def forward(ctx, x, axis=None, keepdims=False):
        op = ctx.fn
        ctx.axes = normalize_axes(op.name, axis, x.ndim)
        if x.size == 0:
            raise ValueError(f"{op.name}: the tensor of shape {x.shape} is empty")
        ctx.keepdims = keepdims
        y = op.reduce(x, axis=ctx.axes, keepdims=True)
        ctx.save_for_backward(x, y)
        return y if keepdims else np.squeeze(y, axis=ctx.axes)

    @staticmethod
    def backward(ctx, grad):
        x, y = ctx.saved
        winners = x == y
        share = (winners / winners.sum(axis=ctx.axes, keepdims=True)).astype(x.dtype)
        return _restore_axes(grad, ctx.axes, ctx.keepdims) * share


class Max(_Extreme):
    """y = max x over ``axis``."""

    name = "max"
    reduce = staticmethod(np.max)


class Min(_Extreme):
    """y = min x over ``axis``."""

    name = "min"
    reduce = staticmethod(np.min)


class LogSumExp(Function):
    """y = log Σ eˣ over ``axis``, computed as m + log Σ e^(x - m) with m the maximum;  dy/dx = softmax(x)."""

    @staticmethod
    def forward(ctx, x, axis=None, keepdims=False):
        ctx.axes = normalize_axes("logsumexp", axis, x.ndim)
        ctx.keepdims = keepdims
        m = np.max(x, axis=ctx.axes, keepdims=True)
        m = np.where(np.isfinite(m), m, 0)
        y = m + np.log(np.sum(np.exp(x - m), axis=ctx.axes, keepdims=True))
        ctx.save_for_backward(x, y)
        return y if keepdims else np.squeeze(y, axis=ctx.axes)

    @staticmethod
    def backward(ctx, grad):
        x, y = ctx.saved
        return _restore_axes(grad, ctx.axes, ctx.keepdims) * np.exp(x - y)
