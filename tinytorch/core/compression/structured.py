"""Structured pruning: remove whole channels, so every matrix product gets smaller (lesson 12).

Dropping output channel ``c`` of a Conv2D removes its filter ``weight[c]`` and bias, channel ``c``
of the BatchNorm after it, and everything the next layer reads from that channel: the next
Conv2D's input channel ``c``, or, after a Flatten, the block of the next Dense's columns that
channel ``c`` fills. The result is an ordinary, smaller dense model, which is why this kind of
pruning (unlike zeroing single weights) makes inference faster.

Channels are ranked by the L1 norm of their filter (Li et al. 2017, "Pruning Filters for Efficient
ConvNets") after the batch norm that follows is folded in, since the folded filter is what the
channel computes.

>>> import tinytorch as tt
>>> _ = tt.manual_seed(0)
>>> net = tt.Sequential(tt.Conv2D(3, 8, 3), tt.BatchNorm2D(8), tt.ReLU(), tt.Flatten(), tt.Dense(8 * 4 * 4, 10))
>>> prune_channels(net, 0.5)
Sequential(
  (0): Conv2D(3 -> 4, kernel_size=(3, 3))
  (1): BatchNorm2D(4, eps=1e-05, momentum=0.1)
  (2): ReLU()
  (3): Flatten(start_axis=1, end_axis=-1)
  (4): Dense(64 -> 10)
)
"""

from __future__ import annotations

import copy
from typing import Any, Mapping

import numpy as np

from ..activations import ReLU
from ..layers import Dense, Dropout, Flatten, Identity
from ..module import Module
from ..networks import Sequential
from ..normalization import BatchNorm, BatchNorm1D
from ..random import generator
from ..spatial import AvgPool2D, BatchNorm2D, Conv2D, MaxPool2D
from .convert import flat_layers, fold_batchnorm
from .pruning import MASK

__all__ = ["channel_importance", "prune_channels", "compute_neuron_importance", "prune_layer_neurons"]

#: Layers a channel passes through unchanged on its way to the next Conv2D/Dense.
CHANNEL_PRESERVING = (ReLU, MaxPool2D, AvgPool2D, Dropout, Identity)


def channel_importance(layer: Conv2D | Dense, bn: BatchNorm | None = None, norm: int = 1) -> np.ndarray:
    """How much each output channel of ``layer`` matters: the Lp norm of its (batch-norm-folded) weights."""
    weight, _ = fold_batchnorm(layer, bn)
    return np.linalg.norm(weight.reshape(weight.shape[0], -1).astype(np.float64), ord=norm, axis=1)


def _kept(importance: np.ndarray, amount: float, where: str) -> np.ndarray:
    if isinstance(amount, bool) or not isinstance(amount, (int, float, np.floating)) or not 0 <= amount < 1:
        raise ValueError(f"prune_channels: the amount for {where} must be in [0, 1), got {amount!r}")
    keep = max(1, importance.size - int(round(amount * importance.size)))
    return np.sort(np.argsort(-importance, kind="stable")[:keep])


def _slice_weight(new: Conv2D | Dense, index: tuple) -> None:
    """Keep ``weight[index]`` (and the same entries of an unstructured-pruning mask, when there is one)."""
    new.weight.data = np.ascontiguousarray(new.weight.data[index])
    mask = getattr(new, MASK, None)
    if mask is not None:
        new.register_buffer(MASK, mask.data[index], persistent=False)


def _slice_producer(layer: Conv2D | Dense, keep: np.ndarray) -> Conv2D | Dense:
    new = copy.deepcopy(layer)
    _slice_weight(new, (keep,))
    if layer.bias is not None:
        new.bias.data = layer.bias.data[keep].copy()
    if isinstance(new, Conv2D):
        new.out_channels = keep.size
    else:
        new.out_features = keep.size
    return new


def _slice_batchnorm(bn: BatchNorm, keep: np.ndarray) -> BatchNorm:
    new = copy.deepcopy(bn)
    for name in ("weight", "bias", "running_mean", "running_var"):
        tensor = getattr(bn, name, None)
        if tensor is not None:
            getattr(new, name).data = tensor.data[keep].copy()
    new.num_features = keep.size
    return new


def _slice_consumer(layer: Conv2D | Dense, keep: np.ndarray, channels: int, flattened: bool) -> Conv2D | Dense:
    new = copy.deepcopy(layer)
    if isinstance(layer, Conv2D):
        _slice_weight(new, (slice(None), keep))
        new.in_channels = keep.size
        return new
    columns = keep
    if flattened:  # channel c of a (C, H, W) map fills columns c*H*W .. (c+1)*H*W - 1 after Flatten
        if layer.in_features % channels:
            raise ValueError(f"prune_channels: {layer.label()} cannot read a flattened map of {channels} channels")
        spatial = layer.in_features // channels
        columns = (keep[:, None] * spatial + np.arange(spatial)).ravel()
    _slice_weight(new, (slice(None), columns))
    new.in_features = columns.size
    return new


def prune_channels(model: Module, amount: float | Mapping[int, float], norm: int = 1) -> Sequential:
    """A smaller copy of ``model`` with the least important channels of its Conv2D/Dense layers removed.

    Parameters
    ----------
    model : Module
        A Sequential (nested ones are flattened) of Conv2D, Dense, BatchNorm2D/1D, ReLU, pooling,
        Dropout, Identity and Flatten layers.
    amount : float or dict
        The fraction of output channels to remove from every Conv2D/Dense except the last (whose
        outputs are the model's), or ``{layer index: fraction}`` for chosen layers (indices into
        the flattened list of layers).
    norm : int
        The p of the Lp norm that ranks channels (1 by default).

    Returns
    -------
    Sequential
        The pruned model; ``model`` is not changed. Fine-tune it: removing channels changes
        what the next layer sees.
    """
    layers = [copy.deepcopy(layer) for layer in flat_layers(model)]
    producers = [i for i, layer in enumerate(layers) if isinstance(layer, (Conv2D, Dense))]
    if not producers:
        raise ValueError(f"prune_channels: {model.label()} has no Conv2D or Dense layer")
    if isinstance(amount, Mapping):
        plan = dict(amount)
        wrong = [i for i in plan if i not in producers[:-1]]
        if wrong:
            raise ValueError(f"prune_channels: layers {wrong} are not prunable; choose among {producers[:-1]} "
                             "(Conv2D/Dense layers other than the last)")
    else:
        plan = {i: amount for i in producers[:-1]}
    for index in sorted(plan):
        layer = layers[index]
        bn_kind = BatchNorm2D if isinstance(layer, Conv2D) else BatchNorm1D
        bn_index = index + 1 if index + 1 < len(layers) and isinstance(layers[index + 1], bn_kind) else None
        bn = layers[bn_index] if bn_index is not None else None
        keep = _kept(channel_importance(layer, bn, norm), plan[index], f"layer {index} ({layer.label()})")
        channels = layer.weight.shape[0]
        consumer, flattened = None, False
        for j in range(index + 1 + (bn is not None), len(layers)):
            if isinstance(layers[j], (Conv2D, Dense)):
                consumer = j
                break
            if isinstance(layers[j], Flatten):
                flattened = True
            elif not isinstance(layers[j], CHANNEL_PRESERVING):
                raise ValueError(f"prune_channels: cannot follow channels through layer {j} ({layers[j].label()})")
        layers[index] = _slice_producer(layer, keep)
        if bn is not None:
            layers[bn_index] = _slice_batchnorm(bn, keep)
        layers[consumer] = _slice_consumer(layers[consumer], keep, channels, flattened and isinstance(layer, Conv2D))
    return Sequential(layers)


def compute_neuron_importance(layer: Dense, method: str = "weight_magnitude") -> np.ndarray:
    """The original course's neuron scores for a Dense layer, one per output neuron.

    ``"weight_magnitude"``: the L1 norm of the neuron's weights; ``"weight_variance"``: their
    variance; ``"random"``: uniform draws from the framework's generator (a baseline).
    """
    weight = layer.weight.data.astype(np.float64)
    if method == "weight_magnitude":
        return np.abs(weight).sum(axis=1)
    if method == "weight_variance":
        return weight.var(axis=1)
    if method == "random":
        return generator().random(weight.shape[0])
    raise ValueError(f"compute_neuron_importance: unknown method {method!r}; expected 'weight_magnitude', "
                     "'weight_variance' or 'random'")


def prune_layer_neurons(layer: Dense, keep_ratio: float = 0.7,
                        importance_method: str = "weight_magnitude") -> tuple[Dense, dict[str, Any]]:
    """The original course's entry point: a copy of Dense ``layer`` keeping its most important neurons.

    Only this layer shrinks; in a model, use :func:`prune_channels`, which also removes the next
    layer's matching inputs. Returns ``(new_layer, info)`` with ``original_neurons``,
    ``remaining_neurons``, ``kept_indices`` and ``parameter_reduction``.
    """
    if not isinstance(layer, Dense):
        raise TypeError(f"prune_layer_neurons: expected a Dense layer, got {type(layer).__name__}")
    if not 0 < keep_ratio <= 1:
        raise ValueError(f"prune_layer_neurons: keep_ratio must be in (0, 1], got {keep_ratio!r}")
    keep = _kept(compute_neuron_importance(layer, importance_method), 1 - keep_ratio, layer.label())
    new = _slice_producer(layer, keep)
    info = {
        "original_neurons": layer.out_features,
        "remaining_neurons": new.out_features,
        "kept_indices": keep,
        "parameter_reduction": 1 - new.num_parameters() / layer.num_parameters(),
    }
    return new, info
