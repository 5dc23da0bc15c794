"""Unstructured magnitude pruning: zero the smallest weights and keep them zero (lesson 12).

The weights of the Conv2D and Dense layers whose magnitude is smallest are set to zero, either
across the whole model at once (*global*: one threshold, so layers with many small weights lose
more) or layer by layer (each loses the same fraction). Each pruned layer keeps a boolean
``weight_mask`` buffer (True = kept; not saved by ``state_dict``), and :func:`apply_masks` or the
:class:`KeepPruned` callback puts the zeros back after every optimizer step, so fine-tuning cannot
regrow them (momentum would otherwise move a pruned weight off zero at the next step).

>>> import tinytorch as tt
>>> _ = tt.manual_seed(0)
>>> net = tt.Sequential(tt.Dense(100, 50), tt.ReLU(), tt.Dense(50, 10))
>>> report = prune_magnitude(net, 0.8)
>>> round(sparsity(net), 3)
0.8
>>> sorted(report)
['0', '2']

Zeros alone make no dense kernel faster (it multiplies by zero as fast as by anything else); they
make the model compressible (:mod:`~tinytorch.core.compression.sparse`), and structured pruning
(:mod:`~tinytorch.core.compression.structured`) is what removes work.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..callbacks import Callback
from ..exercises import exercise
from ..layers import Dense
from ..module import Module
from ..spatial import Conv2D

__all__ = [
    "PRUNABLE",
    "magnitude_mask",
    "prune_magnitude",
    "apply_masks",
    "remove_masks",
    "pruned_layers",
    "sparsity",
    "layer_sparsity",
    "KeepPruned",
    "prune_weights_by_magnitude",
    "calculate_sparsity",
]

#: The layers whose weights magnitude pruning considers (biases and batch norms are left alone).
PRUNABLE = (Dense, Conv2D)
MASK = "weight_mask"


def _fraction(op: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)) or not 0 <= value <= 1:
        raise ValueError(f"{op}: sparsity must be a number in [0, 1], got {value!r}")
    return float(value)


def _count(fraction: float, size: int) -> int:
    """How many of ``size`` weights a fraction prunes: Python's round, as torch.nn.utils.prune."""
    return int(round(fraction * size))


@exercise
def magnitude_mask(weight: np.ndarray, sparsity: float) -> np.ndarray:
    """The mask that prunes the ``sparsity`` fraction of ``weight`` with the smallest magnitude.

    Exactly ``round(sparsity * weight.size)`` entries are pruned (False): those with the smallest
    ``|w|``; among equal magnitudes, the one with the lower flat (row-major) index goes first.

    Parameters
    ----------
    weight : numpy.ndarray or Tensor
        Any shape.
    sparsity : float
        Fraction in [0, 1] to prune.

    Returns
    -------
    numpy.ndarray
        bool, the shape of ``weight``: True where the weight is kept.
    """
    w = np.asarray(getattr(weight, "data", weight))
    pruned = _count(_fraction("magnitude_mask", sparsity), w.size)
    order = np.argsort(np.abs(w), axis=None, kind="stable")  # smallest first; ties keep index order
    mask = np.ones(w.size, dtype=bool)
    mask[order[:pruned]] = False
    return mask.reshape(w.shape)


def pruned_layers(model: Module, layers: tuple[type, ...] = PRUNABLE) -> list[tuple[str, Module]]:
    """``(name, layer)`` for every layer of ``model`` (itself included) that is one of ``layers``."""
    return [(name, m) for name, m in model.named_modules() if isinstance(m, layers)]


def _set_mask(layer: Module, mask: np.ndarray) -> None:
    old = getattr(layer, MASK, None)
    if old is not None:
        mask = mask & old.data  # pruned once, pruned for good
    layer.register_buffer(MASK, mask, persistent=False)
    layer.weight.data *= mask


def prune_magnitude(model: Module, sparsity: float, scope: str = "global",
                    layers: tuple[type, ...] = PRUNABLE) -> dict[str, float]:
    """Prune ``model``'s Conv2D and Dense weights by magnitude, in place; returns each layer's sparsity.

    Parameters
    ----------
    model : Module
        A model or a single layer.
    sparsity : float
        The fraction of weights to prune, in [0, 1].
    scope : str
        ``"global"``: the smallest weights across every layer together (one threshold);
        ``"layer"``: the same fraction in each layer.
    layers : tuple of type
        The layer types to prune.

    Returns
    -------
    dict
        Layer name -> the fraction of its weights that are now zero. Weights pruned before (a
        ``weight_mask`` already there) stay pruned.
    """
    fraction = _fraction("prune_magnitude", sparsity)
    targets = pruned_layers(model, layers)
    if not targets:
        raise ValueError(f"prune_magnitude: {model.label()} has no {'/'.join(t.__name__ for t in layers)} layer")
    if scope == "layer":
        for _, layer in targets:
            _set_mask(layer, magnitude_mask(layer.weight.data, fraction))
    elif scope == "global":
        flat = magnitude_mask(np.concatenate([layer.weight.data.ravel() for _, layer in targets]), fraction)
        start = 0
        for _, layer in targets:
            size = layer.weight.data.size
            _set_mask(layer, flat[start:start + size].reshape(layer.weight.shape))
            start += size
    else:
        raise ValueError(f"prune_magnitude: scope must be 'global' or 'layer', got {scope!r}")
    return layer_sparsity(model, layers)


def apply_masks(model: Module) -> None:
    """Zero every weight a ``weight_mask`` prunes, in place (after each optimizer step while fine-tuning)."""
    for module in model.modules():
        mask = getattr(module, MASK, None)
        if mask is not None:
            module.weight.data *= mask.data


def remove_masks(model: Module) -> None:
    """Forget the masks (the zeros stay in the weights, but training may now change them)."""
    for module in model.modules():
        if getattr(module, MASK, None) is not None:
            delattr(module, MASK)


def sparsity(model: Module, layers: tuple[type, ...] = PRUNABLE) -> float:
    """The fraction of zeros among the weights of ``model``'s prunable layers (0.0 when it has none)."""
    targets = pruned_layers(model, layers)
    total = sum(layer.weight.data.size for _, layer in targets)
    zeros = sum(int(np.count_nonzero(layer.weight.data == 0)) for _, layer in targets)
    return zeros / total if total else 0.0


def layer_sparsity(model: Module, layers: tuple[type, ...] = PRUNABLE) -> dict[str, float]:
    """Layer name -> the fraction of its weights that are zero."""
    return {name: float(np.mean(layer.weight.data == 0)) for name, layer in pruned_layers(model, layers)}


class KeepPruned(Callback):
    """A Trainer callback: after every optimizer step, zero the pruned weights again (:func:`apply_masks`).

    Use it as ``Trainer(model, loss, optimizer, callbacks=[KeepPruned()])``; in a loop of your own,
    call ``apply_masks(model)`` after each ``optimizer.step()``.
    """

    def on_train_begin(self, trainer: Any) -> None:
        apply_masks(trainer.model)

    def on_batch_end(self, trainer: Any, step: int, logs: Any) -> None:
        apply_masks(trainer.model)


def calculate_sparsity(layer: Module) -> float:
    """The original course's name for :func:`sparsity`: the fraction of a layer's (or model's) weights that are zero."""
    return sparsity(layer)


def prune_weights_by_magnitude(layer: Module, pruning_ratio: float = 0.5) -> tuple[Module, dict[str, Any]]:
    """The original course's entry point: prune ``pruning_ratio`` of ``layer``'s smallest weights, in place.

    ``layer`` is a Dense or Conv2D (or a whole model, pruned globally). Unlike the original, the
    pruned layer keeps a mask, so :class:`KeepPruned` holds the zeros through fine-tuning.

    Returns
    -------
    (Module, dict)
        ``layer`` itself and ``info``: ``pruning_ratio``, ``threshold`` (the largest pruned
        magnitude), ``total_weights``, ``weights_removed`` (newly zero), ``remaining_weights``,
        ``sparsity`` and ``compression_ratio`` (total / remaining weights).
    """
    targets = pruned_layers(layer)
    if not targets:
        raise TypeError(f"prune_weights_by_magnitude: {layer.label()} has no Dense or Conv2D weights")
    before = np.concatenate([m.weight.data.ravel() for _, m in targets])
    prune_magnitude(layer, pruning_ratio)
    after = np.concatenate([m.weight.data.ravel() for _, m in targets])
    removed = (before != 0) & (after == 0)
    zeros = int(np.count_nonzero(after == 0))
    total = int(after.size)
    info = {
        "pruning_ratio": float(pruning_ratio),
        "threshold": float(np.abs(before[removed]).max()) if removed.any() else 0.0,
        "total_weights": total,
        "weights_removed": int(np.count_nonzero(removed)),
        "remaining_weights": total - zeros,
        "sparsity": zeros / total,
        "compression_ratio": total / (total - zeros) if zeros < total else float("inf"),
    }
    return layer, info
