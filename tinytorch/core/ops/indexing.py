"""Ops that select or assemble elements: indexing, concatenate, stack, pad.

The gradient of a selection goes back to the positions selected. An integer-array index may pick
the same element twice, so its gradient is scatter-*added* (``np.add.at``), not assigned.
"""

import numpy as np

from ..autograd import Function
from ._axes import normalize_axis

_BASIC = (int, np.integer, slice, type(None), type(Ellipsis))


def is_basic_index(index) -> bool:
    """True for indices made only of ints, slices, None and Ellipsis: they never pick an element twice."""
    parts = index if isinstance(index, tuple) else (index,)
    return all(isinstance(p, _BASIC) and not isinstance(p, (bool, np.bool_)) for p in parts)


class GetItem(Function):
    """y = x[index] (basic, integer-array or boolean indexing, as in NumPy)."""

    @staticmethod
    def forward(ctx, x, index):
        ctx.index, ctx.shape, ctx.dtype = index, x.shape, x.dtype
        try:
            return x[index]
        except IndexError as error:
            raise IndexError(f"getitem: index {index!r} is invalid for a tensor of shape {x.shape}: {error}") from None

    @staticmethod
    def backward(ctx, grad):
        full = np.zeros(ctx.shape, dtype=grad.dtype)
        if is_basic_index(ctx.index):
            full[ctx.index] = grad
        else:
            np.add.at(full, ctx.index, grad)
        return full


class SetItem(Function):
    """y = a copy of x with y[index] = value: what ``x[index] = value`` records when it is part of the graph.

    The overwritten positions of x no longer reach the output, so x's gradient is the output's with
    them zeroed; value's gradient is the output's gradient at those positions (summed over what
    value was broadcast along, by the engine).
    """

    @staticmethod
    def forward(ctx, x, value, index):
        out = np.array(x, copy=True)
        try:
            out[index] = value
        except (IndexError, ValueError) as error:
            raise type(error)(
                f"setitem: cannot assign a value of shape {np.shape(value)} to index {index!r} of a tensor of "
                f"shape {x.shape}: {error}"
            ) from None
        ctx.index, ctx.value_ndim = index, np.ndim(value)
        return out

    @staticmethod
    def backward(ctx, grad):
        dx = dvalue = None
        if ctx.needs_input_grad[0]:
            dx = np.array(grad, copy=True)
            dx[ctx.index] = 0
        if ctx.needs_input_grad[1]:
            dvalue = grad[ctx.index]
            if ctx.value_ndim > dvalue.ndim:  # NumPy lets value carry extra leading size-1 axes
                dvalue = dvalue.reshape((1,) * (ctx.value_ndim - dvalue.ndim) + dvalue.shape)
        return dx, dvalue


class Concatenate(Function):
    """y = the inputs joined along ``axis``; each input's gradient is its slice of y's gradient."""

    @staticmethod
    def forward(ctx, *arrays, axis=0):
        if not arrays:
            raise ValueError("concatenate: needs at least one tensor")
        first = np.asarray(arrays[0])
        if first.ndim == 0:
            raise ValueError("concatenate: 0-d tensors have no axis to join along; use stack()")
        axis = normalize_axis("concatenate", axis, first.ndim)
        for i, a in enumerate(arrays):
            a = np.asarray(a)
            if a.ndim != first.ndim or a.shape[:axis] + a.shape[axis + 1:] != first.shape[:axis] + first.shape[axis + 1:]:
                raise ValueError(
                    f"concatenate: tensor {i} has shape {a.shape}, but tensor 0 has {first.shape}; "
                    f"all shapes must match except along axis {axis}"
                )
        ctx.axis = axis
        ctx.bounds = np.cumsum([np.shape(a)[axis] for a in arrays])[:-1]
        return np.concatenate(arrays, axis=axis)

    @staticmethod
    def backward(ctx, grad):
        return tuple(np.split(grad, ctx.bounds, axis=ctx.axis))


class Stack(Function):
    """y = the inputs stacked along a new axis ``axis``; input i's gradient is y's gradient at position i."""

    @staticmethod
    def forward(ctx, *arrays, axis=0):
        if not arrays:
            raise ValueError("stack: needs at least one tensor")
        shapes = {np.shape(a) for a in arrays}
        if len(shapes) > 1:
            raise ValueError(f"stack: all tensors must have the same shape, got {sorted(shapes)}")
        ctx.axis = normalize_axis("stack", axis, np.ndim(arrays[0]) + 1)
        return np.stack(arrays, axis=ctx.axis)

    @staticmethod
    def backward(ctx, grad):
        return tuple(np.moveaxis(grad, ctx.axis, 0))


class Pad(Function):
    """y = x padded with ``value``; ``pad_width`` as in ``np.pad`` ((before, after) per axis). The gradient is the inner slice."""

    @staticmethod
    def forward(ctx, x, pad_width, value=0.0):
        try:
            widths = np.broadcast_to(np.asarray(pad_width, dtype=np.int64), (x.ndim, 2))
        except ValueError:
            raise ValueError(f"pad: pad_width {pad_width!r} does not fit a tensor with {x.ndim} dimensions") from None
        if (widths < 0).any():
            raise ValueError(f"pad: pad_width must not be negative, got {pad_width!r}")
        ctx.inner = tuple(slice(int(b), int(b) + n) for (b, _), n in zip(widths, x.shape))
        return np.pad(x, widths, mode="constant", constant_values=value)

    @staticmethod
    def backward(ctx, grad):
        return grad[ctx.inner]
