"""Softmax and log-softmax along an axis, computed by the kernels (compiled or reference).

The kernels work on the last axis; another axis is moved to the end and back.
"""

import numpy as np

from .. import kernels
from ..autograd import Function
from ._axes import normalize_axis


def _to_last(x: np.ndarray, axis: int) -> np.ndarray:
    return x if axis == x.ndim - 1 else np.moveaxis(x, axis, -1)


def _from_last(x: np.ndarray, axis: int) -> np.ndarray:
    return x if axis == x.ndim - 1 else np.moveaxis(x, -1, axis)


def _float(op: str, x: np.ndarray) -> np.ndarray:
    if x.dtype.kind != "f":
        raise TypeError(f"{op}: needs a float tensor, got dtype {x.dtype}")
    if x.ndim == 0:
        raise ValueError(f"{op}: needs at least one dimension, got a 0-d tensor")
    return x


class Softmax(Function):
    """y = e^x / Σ e^x along ``axis``;  dL/dx = y (g - Σ g y)."""

    @staticmethod
    def forward(ctx, x, axis=-1):
        x = _float("softmax", x)
        ctx.axis = normalize_axis("softmax", axis, x.ndim)
        y = kernels.softmax_forward(_to_last(x, ctx.axis))
        ctx.save_for_backward(y)
        return _from_last(y, ctx.axis)

    @staticmethod
    def backward(ctx, grad):
        (y,) = ctx.saved
        return _from_last(kernels.softmax_backward(y, _to_last(grad, ctx.axis)), ctx.axis)


class LogSoftmax(Function):
    """y = x - log Σ e^x along ``axis``;  dL/dx = g - e^y Σ g."""

    @staticmethod
    def forward(ctx, x, axis=-1):
        x = _float("log_softmax", x)
        ctx.axis = normalize_axis("log_softmax", axis, x.ndim)
        y = kernels.log_softmax_forward(_to_last(x, ctx.axis))
        ctx.save_for_backward(y)
        return _from_last(y, ctx.axis)

    @staticmethod
    def backward(ctx, grad):
        (y,) = ctx.saved
        return _from_last(kernels.log_softmax_backward(y, _to_last(grad, ctx.axis)), ctx.axis)
