"""Layers (lesson 04): Dense, Dropout, Embedding, Flatten, Identity, and the normalisation layers.

A layer is a :class:`~tinytorch.core.module.Module` that owns :class:`~tinytorch.core.module.Parameter`
tensors and computes something with them. The workhorse is :class:`Dense` (alias ``Linear``):

    y = x @ W.T + b        x: (N, in_features)   W: (out_features, in_features)   b: (out_features,)

>>> import tinytorch as tt
>>> _ = tt.manual_seed(0)
>>> layer = Dense(784, 10)
>>> layer
Dense(784 -> 10)
>>> layer(tt.randn(32, 784)).shape
(32, 10)
>>> layer.num_parameters()                          # 784 * 10 weights + 10 biases
7850

Module and Parameter live in ``core/module.py`` (lesson 03's activations need them already),
initialisation in ``core/init.py`` and LayerNorm/BatchNorm1D in ``core/normalization.py``; this
module re-exports them, so everything lesson 04 teaches can be imported from here.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import kernels
from .autograd import Function
from .exercises import exercise
from .init import (
    calculate_fan_in_and_fan_out,
    calculate_gain,
    constant_,
    default_weight_init_,
    kaiming_normal_,
    kaiming_uniform_,
    kaiming_uniform_bound,
    normal_,
    ones_,
    uniform_,
    xavier_normal_,
    xavier_uniform_,
    zeros_,
)
from .module import Module, Parameter, as_input
from .normalization import BatchNorm1D, BatchNorm1d, LayerNorm, batch_norm, layer_norm
from .random import generator
from .tensor import Tensor

__all__ = [
    "Module", "Parameter", "Dense", "Linear", "Identity", "Flatten", "Dropout", "Embedding",
    "LayerNorm", "BatchNorm1D", "BatchNorm1d", "linear", "dropout", "embedding", "layer_norm", "batch_norm",
    "calculate_fan_in_and_fan_out", "calculate_gain", "kaiming_uniform_bound", "kaiming_uniform_", "kaiming_normal_",
    "xavier_uniform_", "xavier_normal_", "uniform_", "normal_", "constant_", "zeros_", "ones_",
]


def _positive_int(layer: str, name: str, value: Any) -> int:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value <= 0:
        raise ValueError(f"{layer}: {name} must be a positive integer, got {value!r}")
    return int(value)


# -- Dense ------------------------------------------------------------------------------------------
def _one_of(layer: str, name: str, value: Any, old_name: str, old_value: Any) -> Any:
    """An argument given under its name or under the original course's name for it, not both, not neither."""
    if value is not None and old_value is not None:
        raise TypeError(f"{layer}: give {name} or {old_name} (the original course's name for it), not both")
    if value is None and old_value is None:
        raise TypeError(f"{layer}: missing {name} (also accepted as {old_name})")
    return value if value is not None else old_value


class LinearFunction(Function):
    """y = x @ W.T + b over the last axis of x.

    dL/dx = g @ W,  dL/dW = g.T @ x,  dL/db = sum of g over every row: each output feature j is
    ``sum_k W[j, k] x[k] + b[j]``. Leading axes are merged first so that each product is one
    matrix multiplication, done by the ``matmul`` kernel (``np.matmul`` in the reference; the
    compiled one runs it on the kernels' own threads, see gemm.pyx).
    """

    @staticmethod
    def forward(ctx, x, weight, bias):
        lead, features = x.shape[:-1], x.shape[-1]
        rows = x.reshape(-1, features)
        out = kernels.matmul(rows, weight.T)
        if bias is not None:
            out += bias
        ctx.save_for_backward(rows, weight)
        ctx.lead = lead
        return out.reshape(*lead, weight.shape[0])

    @staticmethod
    def backward(ctx, grad):
        rows, weight = ctx.saved
        g = grad.reshape(-1, weight.shape[0])
        need_x, need_w, need_b = ctx.needs_input_grad
        dx = kernels.matmul(g, weight).reshape(*ctx.lead, weight.shape[1]) if need_x else None
        dw = kernels.matmul(g.T, rows) if need_w else None
        db = g.sum(axis=0) if need_b else None
        return dx, dw, db


@exercise
def linear(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """``x @ weight.T + bias`` over the last axis of ``x``: the computation of a Dense layer.

    Parameters
    ----------
    x : Tensor
        Input of shape (..., in_features).
    weight : Tensor
        Shape (out_features, in_features), PyTorch's layout: row j holds the weights of output j.
    bias : Tensor, optional
        Shape (out_features,), added to every row.

    Returns
    -------
    Tensor
        Shape (..., out_features).
    """
    x_shape, w_shape = np.shape(getattr(x, "data", x)), np.shape(getattr(weight, "data", weight))
    if len(w_shape) != 2:
        raise ValueError(f"linear: weight must be 2-D (out_features, in_features), got shape {w_shape}")
    if not x_shape or x_shape[-1] != w_shape[1]:
        raise ValueError(f"linear: input of shape {x_shape} does not fit weight {w_shape}; the last dimension must be {w_shape[1]}")
    if bias is not None and np.shape(getattr(bias, "data", bias)) != (w_shape[0],):
        raise ValueError(f"linear: bias has shape {np.shape(getattr(bias, 'data', bias))}; expected ({w_shape[0]},)")
    return LinearFunction.apply(x, weight, bias)


class Dense(Module):
    """A fully connected layer: ``y = x @ W.T + b`` (alias ``Linear``, PyTorch's name).

    It applies to the last axis of (N, ..., in_features) input. Because a classifier head often
    follows a convolution directly (``Dense(64 * 28 * 28, 128)`` on a (N, 64, 28, 28) input), input
    of 3 or more dimensions whose last axis does not match but whose non-batch dimensions
    multiply to ``in_features`` is flattened to (N, in_features) first. Any other shape is an error.

    Parameters
    ----------
    in_features, out_features : int
        Sizes of each input and output vector (the original course's keywords ``input_size`` and
        ``output_size`` name them too).
    bias : bool
        Learn an additive bias (default True).

    Attributes
    ----------
    weight : Parameter
        (out_features, in_features), initialised as PyTorch does: Kaiming-uniform with
        ``a = sqrt(5)``, i.e. U(-1/sqrt(in_features), 1/sqrt(in_features)). (The original course kept
        ``weights`` as (in, out); the layout here is PyTorch's, so state dicts move between the two.)
    bias : Parameter or None
        (out_features,), U(-1/sqrt(in_features), 1/sqrt(in_features)).
    """

    def __init__(
        self,
        in_features: int | None = None,
        out_features: int | None = None,
        bias: bool = True,
        *,
        input_size: int | None = None,
        output_size: int | None = None,
    ):
        super().__init__()
        in_features = _one_of("Dense", "in_features", in_features, "input_size", input_size)
        out_features = _one_of("Dense", "out_features", out_features, "output_size", output_size)
        self.in_features = _positive_int("Dense", "in_features", in_features)
        self.out_features = _positive_int("Dense", "out_features", out_features)
        self.weight = Parameter(np.empty((self.out_features, self.in_features), dtype=np.float32))
        self.register_parameter("bias", Parameter(np.empty(self.out_features, dtype=np.float32)) if bias else None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        default_weight_init_(self.weight, self.bias)

    def forward(self, x: Tensor) -> Tensor:
        x = as_input(self, x, self.weight.dtype)
        if x.ndim == 0 or x.shape[-1] != self.in_features:
            if x.ndim >= 3 and int(np.prod(x.shape[1:])) == self.in_features:
                x = x.reshape(x.shape[0], self.in_features)
            else:
                raise ValueError(
                    f"{self.label()} got input of shape {x.shape}; the last dimension must be {self.in_features}"
                )
        return linear(x, self.weight, self.bias)  # the exercise: a student's linear runs here when registered

    def extra_repr(self) -> str:
        return f"{self.in_features} -> {self.out_features}" + ("" if self.bias is not None else ", bias=False")


Linear = Dense


# -- shape layers -----------------------------------------------------------------------------------
class Identity(Module):
    """Returns its input unchanged: a placeholder (e.g. a layer switched off by configuration)."""

    def forward(self, x: Tensor) -> Tensor:
        return x


class Flatten(Module):
    """Merge axes ``start_axis..end_axis`` into one: (N, C, H, W) -> (N, C*H*W) by default."""

    def __init__(self, start_axis: int = 1, end_axis: int = -1):
        super().__init__()
        self.start_axis, self.end_axis = start_axis, end_axis

    def forward(self, x: Tensor) -> Tensor:
        if not isinstance(x, Tensor):
            x = Tensor(x)
        if not -x.ndim <= self.start_axis < x.ndim:
            raise ValueError(f"{self.label()} got input of shape {x.shape}; it has no axis {self.start_axis}")
        return x.flatten(self.start_axis, self.end_axis)

    def extra_repr(self) -> str:
        return f"start_axis={self.start_axis}, end_axis={self.end_axis}"


# -- Dropout ----------------------------------------------------------------------------------------
class DropoutFunction(Function):
    """y = x * keep / (1 - p), keep ~ Bernoulli(1 - p);  dL/dx = g * keep / (1 - p)."""

    @staticmethod
    def forward(ctx, x, p):
        keep = generator().random(x.shape, dtype=x.dtype) >= p
        scale = x.dtype.type(1.0 / (1.0 - p)) if p < 1 else x.dtype.type(0)
        ctx.save_for_backward(keep)
        ctx.scale = scale
        out = np.multiply(x, keep)
        out *= scale
        return out

    @staticmethod
    def backward(ctx, grad):
        (keep,) = ctx.saved
        out = np.multiply(grad, keep)
        out *= ctx.scale
        return out


def dropout(x: Tensor, p: float = 0.5, training: bool = True) -> Tensor:
    """Zero each element with probability ``p`` and scale the rest by ``1 / (1 - p)`` ("inverted" dropout).

    The scaling keeps the expected value of every element unchanged, so nothing needs rescaling at
    evaluation time, when dropout is the identity (``training=False`` returns ``x`` itself). The
    random draw comes from the framework's generator (``tinytorch.manual_seed``).
    """
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout: p must be a probability in [0, 1], got {p}")
    if not training or p == 0.0:
        return x
    if np.dtype(getattr(x, "dtype", np.float32)).kind != "f":
        raise TypeError(f"dropout: needs a float tensor, got dtype {x.dtype}")
    return DropoutFunction.apply(x, p=float(p))


class Dropout(Module):
    """:func:`dropout` as a layer: active in training mode, the identity after ``eval()``."""

    def __init__(self, p: float = 0.5):
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"Dropout: p must be a probability in [0, 1], got {p}")
        self.p = float(p)

    def forward(self, x: Tensor) -> Tensor:
        return dropout(x, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}"


# -- Embedding --------------------------------------------------------------------------------------
class EmbeddingFunction(Function):
    """y = weight[indices] (one row per index);  dL/dweight[i] = the sum of g over every position holding i.

    A token that appears twice receives both gradients, so they are added, never assigned: the
    positions are sorted by index and each run of equal indices is summed at once (``np.add.reduceat``;
    ``np.add.at``, one element at a time, took 20x longer on a batch of 4,096 tokens).
    """

    @staticmethod
    def forward(ctx, weight, indices):
        ctx.save_for_backward(indices)
        ctx.shape = weight.shape
        return np.take(weight, indices, axis=0)

    @staticmethod
    def backward(ctx, grad):
        (indices,) = ctx.saved
        dweight = np.zeros(ctx.shape, dtype=grad.dtype)
        flat = indices.reshape(-1)
        if flat.size:
            order = np.argsort(flat, kind="stable")
            ids = flat[order]
            starts = np.flatnonzero(np.concatenate(([True], ids[1:] != ids[:-1])))
            dweight[ids[starts]] = np.add.reduceat(grad.reshape(-1, ctx.shape[1])[order], starts, axis=0)
        return dweight, None


def _indices(op: str, indices: Any, count: int) -> np.ndarray:
    array = np.asarray(indices.data if isinstance(indices, Tensor) else indices)
    if array.dtype.kind not in "iu":
        raise TypeError(f"{op} got indices of dtype {array.dtype}; expected integers")
    if array.size and (array.min() < 0 or array.max() >= count):
        bad = array.min() if array.min() < 0 else array.max()
        raise IndexError(f"{op} got index {int(bad)}; indices must be in [0, {count})")
    return array


def embedding(indices: Any, weight: Tensor) -> Tensor:
    """Rows of ``weight`` (num_embeddings, dim) picked by integer ``indices`` of any shape: shape (*indices.shape, dim)."""
    w_shape = np.shape(getattr(weight, "data", weight))
    if len(w_shape) != 2:
        raise ValueError(f"embedding: weight must be 2-D (num_embeddings, dim), got shape {w_shape}")
    return EmbeddingFunction.apply(weight, _indices("embedding", indices, w_shape[0]))


class Embedding(Module):
    """A lookup table of learned vectors: index i -> row i of ``weight`` (num_embeddings, embedding_dim).

    ``weight`` starts as N(0, 1) draws, as in PyTorch.
    """

    def __init__(self, num_embeddings: int, embedding_dim: int):
        super().__init__()
        self.num_embeddings = _positive_int("Embedding", "num_embeddings", num_embeddings)
        self.embedding_dim = _positive_int("Embedding", "embedding_dim", embedding_dim)
        self.weight = Parameter(np.empty((self.num_embeddings, self.embedding_dim), dtype=np.float32))
        normal_(self.weight)

    def forward(self, indices: Any) -> Tensor:
        return EmbeddingFunction.apply(self.weight, _indices(self.label(), indices, self.num_embeddings))

    def extra_repr(self) -> str:
        return f"{self.num_embeddings}, {self.embedding_dim}"
