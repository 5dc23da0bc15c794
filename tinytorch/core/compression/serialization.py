"""Saving and loading quantized models: int8 arrays and JSON, never pickle (lesson 12).

A quantized model file is a TinyTorch checkpoint (``.npz`` + a JSON entry, read with
``allow_pickle=False``; see :mod:`tinytorch.core.checkpoint`) holding

* ``quantized_model/architecture``: the layers as JSON, ``{"type": "Sequential", "layers": [...]}``
  with ``{"type": "QuantizedConv2D", "config": {"stride": [1, 1], ..., "out_scale": 0.031,
  "out_zero_point": -128, "relu": true}}`` per layer (scales and zero points of activations are
  JSON numbers: a float32 scale converts to a JSON double exactly);
* ``quantized_model/tensors``: every layer's arrays by dotted name (``"1.weight"`` int8,
  ``"1.weight_scale"`` and ``"1.bias"`` float32): the only float32 arrays are scales and biases,
  which both saving and loading check.

So the file rebuilds the model alone, without the float model's code:

>>> import os, tempfile
>>> import tinytorch as tt
>>> from tinytorch.core.compression import QuantizedDense, Quantize
>>> model = tt.Sequential(Quantize(0.1, 0), QuantizedDense(np.ones((2, 3), np.int8), np.full(2, 0.5, np.float32)))
>>> path = os.path.join(tempfile.mkdtemp(), "model.npz")
>>> save_quantized(path, model, note="demo")
>>> loaded, extra = load_quantized(path)
>>> loaded
Sequential(
  (0): Quantize(scale=0.1, zero_point=0)
  (1): QuantizedDense(3 -> 2, out=float)
)
>>> loaded(np.array([[1.0, 2.0, 3.0]], dtype=np.float32))
Tensor([[3., 3.]])
>>> extra
{'note': 'demo'}

Other formats (the mlops packages write safetensors) use the same two pieces:
:func:`architecture` (JSON-able) and ``model.state_dict()`` (name -> int8/float32 array), and
:func:`build_quantized` turns them back into a model.
"""

from __future__ import annotations

import os
from typing import Any, Mapping

import numpy as np

from ..activations import ReLU
from ..checkpoint import CheckpointError, load_state, save_state
from ..layers import Dropout, Flatten, Identity
from ..module import Module
from ..networks import Sequential
from .quantized import QUANTIZED_MODULES, _Int8Weights

__all__ = ["architecture", "build_quantized", "save_quantized", "load_quantized", "FORMAT_VERSION"]

FORMAT_VERSION = 1
KEY = "quantized_model"
#: Float layers without parameters that may sit between quantized ones (their configuration, and how to rebuild them).
PLAIN_LAYERS = {
    "ReLU": (ReLU, lambda m: {}),
    "Identity": (Identity, lambda m: {}),
    "Dropout": (Dropout, lambda m: {"p": m.p}),
    "Flatten": (Flatten, lambda m: {"start_axis": m.start_axis, "end_axis": m.end_axis}),
}
FLOAT_NAMES = ("weight_scale", "bias")  # the only float32 arrays a quantized model may hold


def architecture(model: Module) -> dict[str, Any]:
    """The JSON-able description of a quantized model's layers (no arrays): see the module docstring."""
    kind = type(model).__name__
    if type(model) is Sequential:
        return {"type": "Sequential", "layers": [architecture(layer) for layer in model]}
    if QUANTIZED_MODULES.get(kind) is type(model):
        return {"type": kind, "config": model.config()}
    if kind in PLAIN_LAYERS and type(model) is PLAIN_LAYERS[kind][0]:
        return {"type": kind, "config": PLAIN_LAYERS[kind][1](model)}
    raise TypeError(
        f"save_quantized: {model.label()} is neither a quantized layer nor a parameter-free one "
        f"({', '.join(PLAIN_LAYERS)}); quantize the model first (quantize_static or quantize_dynamic)"
    )


def _check_tensor(name: str, array: np.ndarray, source: str) -> None:
    allowed = ("float32", "int8") if name.rsplit(".", 1)[-1] in FLOAT_NAMES else ("int8",)
    if str(array.dtype) not in allowed:
        raise CheckpointError(f"{source}: {name} has dtype {array.dtype}; a quantized model holds {' or '.join(allowed)} there")


def build_quantized(arch: Mapping[str, Any], tensors: Mapping[str, np.ndarray], prefix: str = "") -> Module:
    """The model :func:`architecture` described, holding ``tensors`` (name -> array, as ``state_dict()``).

    Every tensor must be used exactly once and have a quantized model's dtype (int8, or float32 for
    scales and biases); anything else is an error naming it.
    """
    used: set[str] = set()
    model = _build(arch, tensors, prefix, used)
    unused = sorted(set(tensors) - used)
    if unused:
        raise CheckpointError(f"build_quantized: tensors no layer uses: {', '.join(unused)}")
    return model


def _build(arch: Mapping[str, Any], tensors: Mapping[str, np.ndarray], prefix: str, used: set[str]) -> Module:
    if not isinstance(arch, Mapping) or "type" not in arch:
        raise CheckpointError(f"build_quantized: a layer description must be a dict with a 'type', got {arch!r}")
    kind, config = arch["type"], dict(arch.get("config", {}))
    if kind == "Sequential":
        return Sequential([_build(layer, tensors, f"{prefix}{i}.", used) for i, layer in enumerate(arch["layers"])])
    if kind in PLAIN_LAYERS:
        return PLAIN_LAYERS[kind][0](**config)
    if kind not in QUANTIZED_MODULES:
        raise CheckpointError(f"build_quantized: unknown layer type {kind!r}")
    cls = QUANTIZED_MODULES[kind]
    if issubclass(cls, _Int8Weights):
        for name in ("weight", "weight_scale"):
            if prefix + name not in tensors:
                raise CheckpointError(f"build_quantized: {kind} at {prefix or 'the top'} needs the tensor {prefix + name}")
        arrays = {name: tensors.get(prefix + name) for name in ("weight", "weight_scale", "bias")}
        for name, array in arrays.items():
            if array is not None:
                _check_tensor(prefix + name, array, "build_quantized")
                used.add(prefix + name)
        config.update(arrays)
    try:
        return cls(**config)
    except (TypeError, ValueError) as error:
        raise CheckpointError(f"build_quantized: cannot rebuild {kind} at {prefix or 'the top'}: {error}") from None


def save_quantized(path: str | os.PathLike, model: Module, **extra: Any) -> None:
    """Write a quantized model to ``path`` (atomically; ``.npz`` + JSON, no pickle), with JSON-able ``extra`` values."""
    arch = architecture(model)
    tensors = model.state_dict()
    for name, array in tensors.items():
        _check_tensor(name, array, "save_quantized")
    save_state(path, {KEY: {"version": FORMAT_VERSION, "architecture": arch, "tensors": tensors}, "extra": extra})


def read_section(op: str, path: str | os.PathLike, key: str, what: str, version: int) -> tuple[dict, dict]:
    """The ``key`` section of a checkpoint file and its ``extra`` values; an error names ``op`` when
    the file holds no such section or a newer version of it than ``version``."""
    state = load_state(path)
    saved = state.get(key)
    if not isinstance(saved, dict):
        raise CheckpointError(f"{op}: {path} is a TinyTorch checkpoint but not a {what}")
    if not isinstance(saved.get("version"), int) or saved["version"] > version:
        raise CheckpointError(f"{op}: {path} has {what} version {saved.get('version')!r}; this TinyTorch reads up to {version}")
    return saved, state.get("extra", {})


def load_quantized(path: str | os.PathLike) -> tuple[Module, dict[str, Any]]:
    """Read what :func:`save_quantized` wrote: ``(model, extra)``. Nothing in the file can run code."""
    saved, extra = read_section("load_quantized", path, KEY, "quantized model", FORMAT_VERSION)
    return build_quantized(saved["architecture"], saved.get("tensors", {})), extra
