"""Ops that move elements without changing them: reshape, transpose, expand.

Their gradients move the gradient back: reshape it to the input's shape, transpose it by the
inverse permutation, or sum it over the expanded axes (which the engine does).
"""

import numpy as np

from ..autograd import Function
from ._axes import normalize_axis


class Reshape(Function):
    """y = x with a new shape (a view when the memory layout allows, as in NumPy)."""

    @staticmethod
    def forward(ctx, x, shape):
        ctx.shape = x.shape
        try:
            return np.reshape(x, shape)
        except ValueError:
            raise ValueError(f"reshape: cannot reshape a tensor of shape {x.shape} ({x.size} elements) into {shape}") from None

    @staticmethod
    def backward(ctx, grad):
        return np.reshape(grad, ctx.shape)


class Transpose(Function):
    """y = x with its axes permuted: y.shape[i] == x.shape[axes[i]]."""

    @staticmethod
    def forward(ctx, x, axes):
        axes = tuple(axes)
        if sorted(normalize_axis("transpose", a, x.ndim) for a in axes) != list(range(x.ndim)):
            raise ValueError(f"transpose: axes {axes} are not a permutation of the {x.ndim} axes of shape {x.shape}")
        ctx.axes = axes
        return np.transpose(x, axes)

    @staticmethod
    def backward(ctx, grad):
        return np.transpose(grad, np.argsort([a % grad.ndim for a in ctx.axes]))


class Expand(Function):
    """y = x broadcast to ``shape`` (no copy); -1 keeps an axis's size. The engine sums the gradient back."""

    @staticmethod
    def forward(ctx, x, shape):
        shape = tuple(shape)
        lead = len(shape) - x.ndim
        if lead < 0:
            raise ValueError(f"expand: cannot expand shape {x.shape} to fewer dimensions {shape}")
        target = tuple(x.shape[i - lead] if n == -1 and i >= lead else n for i, n in enumerate(shape))
        try:
            return np.broadcast_to(x, target)
        except ValueError:
            raise ValueError(f"expand: shape {x.shape} cannot be expanded to {shape}: only size-1 axes can grow") from None

    @staticmethod
    def backward(ctx, grad):
        return grad
