"""Memory-saving training: recompute activations instead of keeping them, and keep them in half precision.

Training keeps every layer's output until the backward pass has used it; for a CNN those
activations, not the weights, are most of the memory (the reference CIFAR CNN at batch 128: about
77 MiB of activations against 2.4 MiB of weights). Two trades, both measured in lesson 12 with
:class:`~tinytorch.core.profiling.MemoryProfiler`:

* **Recomputation** (``tt.checkpoint``, Chen et al. 2016): run a segment of the model without
  recording its graph, keep only its input, and run it again during backward. Memory falls to the
  segment boundaries plus one segment's activations; each checkpointed segment is computed twice.
* **Half-precision storage**: the activations kept between segments are stored as float16 (half
  the bytes) while every computation stays float32 and the parameters (the *master* weights the
  optimizer updates) stay float32, as mixed-precision training keeps them. float16 holds about
  3 significant digits and values up to 65,504, which activations after batch norm are far from.

>>> import tinytorch as tt
>>> _ = tt.manual_seed(0)
>>> net = tt.Sequential(tt.Dense(8, 16), tt.ReLU(), tt.Dense(16, 16), tt.ReLU(), tt.Dense(16, 3))
>>> x = tt.randn(4, 8)
>>> plain = net(x)
>>> np.allclose(checkpoint_sequential(net, x, segments=2).numpy(), plain.numpy())
True
>>> np.allclose(checkpoint_sequential(net, x, segments=2, half_precision=True).numpy(), plain.numpy(), atol=1e-2)
True
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..autograd import checkpoint
from ..module import Module
from ..networks import Sequential
from ..tensor import Tensor

__all__ = ["checkpoint_sequential", "segment_bounds"]

HALF = np.dtype(np.float16)


def segment_bounds(layers: int, segments: int) -> list[tuple[int, int]]:
    """``segments`` consecutive ``(start, stop)`` ranges covering ``layers`` layers, as even as possible."""
    if isinstance(segments, bool) or not isinstance(segments, int) or not 1 <= segments <= max(layers, 1):
        raise ValueError(f"checkpoint_sequential: segments must be an integer from 1 to {layers}, got {segments!r}")
    edges = np.linspace(0, layers, segments + 1).round().astype(int)
    return [(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:])]


def _run(layers: list[Module], widen: bool, narrow: bool):
    def segment(x: Tensor) -> Tensor:
        if widen:
            x = x.astype(np.float32)  # compute in float32 whatever the stored dtype
        for layer in layers:
            x = layer(x)
        return x.astype(HALF) if narrow else x

    return segment


def checkpoint_sequential(model: Sequential, x: Any, segments: int, half_precision: bool = False) -> Tensor:
    """``model(x)`` run in ``segments`` checkpointed segments (PyTorch's ``checkpoint_sequential``).

    Every segment but the last runs under :func:`tinytorch.checkpoint`: its inner activations are
    dropped after the forward pass and recomputed during backward. With ``half_precision`` the
    activations kept between two checkpointed segments are stored as float16 (every segment
    computes in float32; the input and the result stay float32, since the caller and the last
    segment keep them anyway). Gradients reach every parameter as in a plain forward pass.

    Parameters
    ----------
    model : Sequential
    x : Tensor or array
        The input batch.
    segments : int
        How many segments to cut the layers into (1 .. number of layers).
    half_precision : bool
        Store the activations between checkpointed segments as float16.

    Returns
    -------
    Tensor
        The model's output.
    """
    if not isinstance(model, Sequential):
        raise TypeError(f"checkpoint_sequential: expected a Sequential, got {type(model).__name__}")
    layers = list(model)
    bounds = segment_bounds(len(layers), segments)
    x = x if isinstance(x, Tensor) else Tensor(x)
    last = len(bounds) - 1
    for i, (start, stop) in enumerate(bounds):
        # float16 only between two checkpointed segments: the last one is not checkpointed, so its
        # input is kept by its own graph and a float32 copy of a float16 boundary would cost more
        widen = half_precision and 0 < i < last
        narrow = half_precision and i < last - 1
        run = _run(layers[start:stop], widen, narrow)
        x = run(x) if i == last else checkpoint(run, x)
    return x
