"""A model's architecture as JSON, and the model built back from it (no pickle, no code in the file).

A package stores the weights in one file and the *architecture* in its manifest: for every layer,
its type and the arguments its constructor takes. :func:`model_from_config` calls those
constructors again, and the weights are then loaded by name, so nothing in a package is ever
executed. Only the layer types listed here (and TinyTorch models that describe themselves, below)
can be rebuilt; anything else is an error naming the layer.

>>> import tinytorch as tt
>>> net = tt.Sequential(tt.Dense(4, 8), tt.ReLU(), tt.Dense(8, 2))
>>> config = architecture_config(net)
>>> config["layers"][0]
{'type': 'Dense', 'in_features': 4, 'out_features': 8, 'bias': True}
>>> model_from_config(config)
Sequential(
  (0): Dense(4 -> 8)
  (1): ReLU()
  (2): Dense(8 -> 2)
)

A model class outside this table can describe itself: a method ``architecture_config()``, or a
``config`` attribute (TinyGPT has one), holding a JSON-able dict of its constructor's keyword
arguments, rebuilt with ``cls(**config)``. Its class is recorded by import path and, when the
package is loaded, imported only from the ``tinytorch`` package itself.
"""

from __future__ import annotations

import importlib
from typing import Any, Callable

from ..activations import GELU, LeakyReLU, LogSoftmax, ReLU, Sigmoid, Softmax, Tanh
from ..layers import Dense, Dropout, Embedding, Flatten, Identity
from ..module import Module
from ..networks import Sequential
from ..normalization import BatchNorm1D, LayerNorm
from ..spatial import AvgPool2D, BatchNorm2D, Conv2D, GlobalAvgPool2D, MaxPool2D

__all__ = ["ArchitectureError", "architecture_config", "model_from_config", "LAYER_TYPES"]


class ArchitectureError(ValueError):
    """A model that cannot be described as JSON, or a description that cannot be built."""


def _batch_norm(m: Any) -> dict:
    return {"num_features": m.num_features, "eps": m.eps, "momentum": m.momentum, "affine": m.affine,
            "track_running_stats": m.track_running_stats}


def _pool(m: Any) -> dict:
    return {"kernel_size": list(m.kernel_size), "stride": list(m.stride), "padding": list(m.padding)}


#: layer type name -> (class, its constructor's arguments read back from an instance)
LAYER_TYPES: dict[str, tuple[type[Module], Callable[[Any], dict]]] = {
    "Dense": (Dense, lambda m: {"in_features": m.in_features, "out_features": m.out_features, "bias": m.bias is not None}),
    "Conv2D": (Conv2D, lambda m: {
        "in_channels": m.in_channels, "out_channels": m.out_channels, "kernel_size": list(m.kernel_size),
        "stride": list(m.stride), "padding": list(m.padding), "bias": m.bias is not None}),
    "BatchNorm1D": (BatchNorm1D, _batch_norm),
    "BatchNorm2D": (BatchNorm2D, _batch_norm),
    "LayerNorm": (LayerNorm, lambda m: {"normalized_shape": list(m.normalized_shape), "eps": m.eps,
                                        "elementwise_affine": m.elementwise_affine, "bias": m.bias is not None}),
    "ReLU": (ReLU, lambda m: {}),
    "LeakyReLU": (LeakyReLU, lambda m: {"negative_slope": m.negative_slope}),
    "Sigmoid": (Sigmoid, lambda m: {}),
    "Tanh": (Tanh, lambda m: {}),
    "GELU": (GELU, lambda m: {"approximate": m.approximate}),
    "Softmax": (Softmax, lambda m: {"axis": m.axis}),
    "LogSoftmax": (LogSoftmax, lambda m: {"axis": m.axis}),
    "MaxPool2D": (MaxPool2D, _pool),
    "AvgPool2D": (AvgPool2D, _pool),
    "GlobalAvgPool2D": (GlobalAvgPool2D, lambda m: {}),
    "Flatten": (Flatten, lambda m: {"start_axis": m.start_axis, "end_axis": m.end_axis}),
    "Dropout": (Dropout, lambda m: {"p": m.p}),
    "Identity": (Identity, lambda m: {}),
    "Embedding": (Embedding, lambda m: {"num_embeddings": m.num_embeddings, "embedding_dim": m.embedding_dim}),
}
_TYPE_NAMES = {cls: name for name, (cls, _) in LAYER_TYPES.items()}


def architecture_config(model: Module) -> dict:
    """The JSON description of ``model``: its type and constructor arguments, and a Sequential's layers in order.

    Parameters
    ----------
    model : Module
        A layer of :data:`LAYER_TYPES`, a Sequential (or MLP) of such layers (nested Sequentials
        too), or a TinyTorch model with an ``architecture_config()`` method.

    Returns
    -------
    dict
        ``{"type": name, **arguments}``; a Sequential is ``{"type": "Sequential", "layers": [...]}``,
        each layer also carrying its ``"name"`` when the names are not ``"0"``, ``"1"``, ...
    """
    if isinstance(model, Sequential):
        names = [name for name, _ in model.named_children()]
        layers = [architecture_config(layer) for layer in model.children()]
        if names != [str(i) for i in range(len(names))]:
            layers = [{"name": name, **layer} for name, layer in zip(names, layers)]
        return {"type": "Sequential", "layers": layers}
    name = _TYPE_NAMES.get(type(model))
    if name is not None:
        return {"type": name, **LAYER_TYPES[name][1](model)}
    describe = getattr(model, "architecture_config", None)
    config = describe() if callable(describe) else getattr(model, "config", None)
    module = type(model).__module__
    if isinstance(config, dict) and module.split(".")[0] == "tinytorch":
        return {"type": f"{module}.{type(model).__qualname__}", "config": dict(config)}
    known = ", ".join(LAYER_TYPES)
    raise ArchitectureError(
        f"architecture_config: cannot describe a {type(model).__name__} ({model.label()}); a package holds "
        f"Sequential models of {known}, or a TinyTorch model that describes itself (an architecture_config() "
        "method or a config dict of its constructor's arguments, as TinyGPT has)"
    )


def _self_described_class(path: str) -> type:
    """The class at ``path``, imported only from inside the tinytorch package (a manifest is untrusted input)."""
    module_name, _, class_name = path.rpartition(".")
    if module_name.split(".")[0] != "tinytorch" or not class_name:
        raise ArchitectureError(f"model_from_config: unknown layer type {path!r}; known: {', '.join(LAYER_TYPES)}")
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError):
        raise ArchitectureError(f"model_from_config: {path!r} is not a class of this TinyTorch version") from None
    if not (isinstance(cls, type) and issubclass(cls, Module)):
        raise ArchitectureError(f"model_from_config: {path!r} is not a TinyTorch model")
    return cls


def model_from_config(config: dict) -> Module:
    """Build the model :func:`architecture_config` described (fresh weights; load them by name afterwards).

    Raises
    ------
    ArchitectureError
        For an unknown type or arguments its constructor rejects, naming the layer.
    """
    if not isinstance(config, dict) or not isinstance(config.get("type"), str):
        raise ArchitectureError(f"model_from_config: expected a dict with a 'type', got {config!r:.200}")
    kind = config["type"]
    arguments = {k: v for k, v in config.items() if k not in ("type", "name")}
    if kind == "Sequential":
        layers = config.get("layers")
        if not isinstance(layers, list):
            raise ArchitectureError("model_from_config: a Sequential needs a list of 'layers'")
        built = [model_from_config(layer) for layer in layers]
        if any(isinstance(layer, dict) and "name" in layer for layer in layers):
            return Sequential({layer.get("name", str(i)): module for i, (layer, module) in enumerate(zip(layers, built))})
        return Sequential(built)
    if kind in LAYER_TYPES:
        cls = LAYER_TYPES[kind][0]
    else:
        cls = _self_described_class(kind)
        arguments = config.get("config", {})
    try:
        return cls(**arguments)
    except (TypeError, ValueError) as error:
        raise ArchitectureError(f"model_from_config: cannot build {kind} with {arguments}: {error}") from None
