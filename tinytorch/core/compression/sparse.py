"""Compact storage of pruned models: a bitmask and the surviving values (lesson 12).

A pruned weight array saved as it is costs as much as the dense one: zeros are four bytes too.
Stored as one bit per weight (kept or not) plus only the kept values, it costs per original
weight ``density * 4 + 1/8`` bytes with float32 values (7.6x smaller at 90 % sparsity) and
``density + 1/8`` with int8 values (17.8x). CSR with int32 column indices and float32 values
needs about ``8 * density`` bytes, more than the bitmask at any density above 3 %.

>>> import os, tempfile
>>> import tinytorch as tt
>>> from tinytorch.core.compression import prune_magnitude
>>> _ = tt.manual_seed(0)
>>> net = tt.Sequential(tt.Dense(256, 256), tt.ReLU(), tt.Dense(256, 10))
>>> _ = prune_magnitude(net, 0.9)
>>> folder = tempfile.mkdtemp()
>>> dense, compact = os.path.join(folder, "dense.npz"), os.path.join(folder, "sparse.npz")
>>> tt.save_checkpoint(dense, net); save_sparse(compact, net)
>>> os.path.getsize(dense) / os.path.getsize(compact) > 6
True
>>> copy = tt.Sequential(tt.Dense(256, 256), tt.ReLU(), tt.Dense(256, 10))
>>> _ = load_sparse(compact, copy)
>>> all(np.array_equal(a, b) for a, b in zip(net.state_dict().values(), copy.state_dict().values()))
True

The file is a TinyTorch checkpoint (``.npz`` + JSON, no pickle). Each stored array is either
``{"dense": array}`` or ``{"shape": [...], "mask": uint8 packbits of the kept positions (row-major),
"values": the kept values in that order}``, and with int8 values also ``"scale"`` (float32, one per
output channel: value = scale[channel] * int8).
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from ..checkpoint import CheckpointError, save_state
from ..module import Module
from .pruning import MASK
from .quantization import quantize_per_channel
from .serialization import read_section

__all__ = ["save_sparse", "load_sparse", "encode_sparse", "decode_sparse", "VALUE_FORMATS"]

KEY = "sparse_model"
FORMAT_VERSION = 1
VALUE_FORMATS = ("float32", "int8")


def encode_sparse(array: np.ndarray, values: str = "float32") -> dict[str, Any]:
    """One array in compact form: a bitmask of its non-zero entries and those entries.

    With ``values="int8"`` the kept values are quantized symmetrically per output channel (axis
    0), so the array comes back approximately; with float32 it comes back exactly.
    """
    if values not in VALUE_FORMATS:
        raise ValueError(f"encode_sparse: values must be one of {VALUE_FORMATS}, got {values!r}")
    kept = array != 0
    encoded: dict[str, Any] = {"shape": list(array.shape), "mask": np.packbits(kept.ravel())}
    if values == "int8":
        q, scale = quantize_per_channel(array, axis=0)
        encoded.update(values=q[kept], scale=scale)
    else:
        encoded["values"] = array[kept].astype(np.float32)
    return encoded


def decode_sparse(encoded: dict[str, Any]) -> np.ndarray:
    """The dense float32 array :func:`encode_sparse` encoded."""
    shape = tuple(int(n) for n in encoded["shape"])
    size = int(np.prod(shape))
    kept = np.unpackbits(np.asarray(encoded["mask"], dtype=np.uint8), count=size).astype(bool)
    values = np.asarray(encoded["values"])
    if values.size != np.count_nonzero(kept):
        raise CheckpointError(f"decode_sparse: the mask keeps {np.count_nonzero(kept)} values but {values.size} are stored")
    dense = np.zeros(size, dtype=np.float32)
    if "scale" in encoded:
        scale = np.asarray(encoded["scale"], dtype=np.float32)
        channel = np.repeat(np.arange(shape[0]), size // shape[0]) if shape and shape[0] else np.zeros(0, int)
        dense[kept] = values.astype(np.float32) * scale[channel[kept]]
    else:
        dense[kept] = values
    return dense.reshape(shape)


def _worth_encoding(array: np.ndarray, values: str) -> bool:
    """Compact form for weight arrays (2-D and up) that it makes smaller: density below 97 % for
    float32 values (4 d + 1/8 < 4 bytes per weight); always for int8 values, which are the point."""
    if array.ndim < 2 or array.dtype.kind != "f":
        return False
    return values == "int8" or np.count_nonzero(array) / max(array.size, 1) < 0.97


def save_sparse(path: str | os.PathLike, model: Module, values: str = "float32", **extra: Any) -> None:
    """Save ``model``'s state compactly (atomically; ``.npz`` + JSON, no pickle).

    Weight arrays (2-D and up) are stored as bitmask + values when that is smaller, or always
    when ``values="int8"`` (lossy: the kept values become int8 with per-channel scales). Biases,
    batch-norm statistics and other vectors stay dense. ``extra``: JSON-able values to keep.
    """
    tensors = {
        name: encode_sparse(array, values) if _worth_encoding(array, values) else {"dense": array}
        for name, array in model.state_dict().items()
    }
    save_state(path, {KEY: {"version": FORMAT_VERSION, "values": values, "tensors": tensors}, "extra": extra})


def load_sparse(path: str | os.PathLike, model: Module) -> dict[str, Any]:
    """Load what :func:`save_sparse` wrote into ``model`` (which must have the saved architecture).

    Every layer whose weight comes back with zeros gets a ``weight_mask`` again, so fine-tuning
    with :class:`~tinytorch.core.compression.KeepPruned` keeps it pruned. Returns the ``extra`` values.
    """
    saved, extra = read_section("load_sparse", path, KEY, "sparse model", FORMAT_VERSION)
    arrays = {name: item["dense"] if "dense" in item else decode_sparse(item) for name, item in saved["tensors"].items()}
    try:
        model.load_state_dict(arrays)
    except ValueError as error:
        raise CheckpointError(f"load_sparse: {path} does not fit this model: {error}") from None
    for name, module in model.named_modules():
        key = f"{name}.weight" if name else "weight"
        if key in saved["tensors"] and "mask" in saved["tensors"][key]:
            module.register_buffer(MASK, module.weight.data != 0, persistent=False)
    return extra
