"""From a float model to an int8 one: static and dynamic post-training quantization (lesson 12).

Static quantization (:func:`quantize_static`), PyTorch's "eager mode" recipe without the stubs:

1. **Fold and fuse.** Each Conv2D/Dense absorbs the BatchNorm after it (``w' = w * gamma /
   sqrt(var + eps)``, ``b' = (b - mean) * gamma / sqrt(var + eps) + beta``) and the ReLU after
   that, so int8 runs one layer where float ran three.
2. **Calibrate.** A few batches run through the folded float model; an observer at the input and
   after every layer records the values (min-max, percentile or histogram).
3. **Convert.** Weights become int8 with one scale per output channel (or one per tensor, for
   the ablation), activations get the observed int8 scale and zero point, and the model becomes
   a chain of quantized modules ending in float logits.

Dynamic quantization (:func:`quantize_dynamic`) only swaps Dense (or Conv2D) layers for ones with
int8 weights that quantize each batch's input on the fly: no calibration, any architecture.

Supported layers for static quantization: Conv2D, Dense, BatchNorm2D/BatchNorm1D right after one
of them, ReLU, MaxPool2D, Flatten, Dropout and Identity (the last two vanish in inference),
inside a Sequential (nested ones are flattened).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any, Iterable

import numpy as np

from .. import kernels
from ..activations import ReLU
from ..layers import Dense, Dropout, Flatten, Identity
from ..module import Module, Parameter
from ..networks import Sequential
from ..normalization import BatchNorm1D
from ..spatial import BatchNorm2D, Conv2D, MaxPool2D
from ..tensor import Tensor
from .observers import Observer, make_observer
from .quantization import quantize_per_channel, quantize_per_tensor
from .quantized import (
    DeQuantize,
    DynamicQuantizedConv2D,
    DynamicQuantizedDense,
    Quantize,
    QuantizedConv2D,
    QuantizedDense,
    QuantizedFlatten,
    QuantizedMaxPool2D,
    QuantizedReLU,
)

__all__ = ["fold_batchnorm", "fold_batchnorms", "quantize_static", "quantize_dynamic", "quantize_layer_weights", "calibration_inputs",
           "flat_layers"]

SUPPORTED = "Conv2D, Dense, BatchNorm2D/BatchNorm1D after them, ReLU, MaxPool2D, Flatten, Dropout, Identity"


def fold_batchnorm(layer: Conv2D | Dense, bn: Module | None) -> tuple[np.ndarray, np.ndarray | None]:
    """The weight and bias of ``layer`` followed by ``bn`` in evaluation mode, as one layer.

    BatchNorm in evaluation is a fixed per-channel affine map ``y = (x - mean) * g + beta`` with
    ``g = gamma / sqrt(running_var + eps)``, so it scales each output channel's weights by ``g`` and
    moves the bias to ``(b - mean) * g + beta``. Returns float32 ``(weight, bias)``; with ``bn=None``
    the layer's own (bias may be None).
    """
    weight = layer.weight.data.astype(np.float64)
    bias = None if layer.bias is None else layer.bias.data.astype(np.float64)
    if bn is None:
        return weight.astype(np.float32), None if bias is None else bias.astype(np.float32)
    if not bn.track_running_stats:
        raise ValueError(f"fold_batchnorm: {bn.label()} keeps no running statistics, so it has no fixed evaluation form")
    gain = 1.0 / np.sqrt(bn.running_var.data.astype(np.float64) + bn.eps)
    shift = np.zeros_like(gain) if not bn.affine else bn.bias.data.astype(np.float64)
    if bn.affine:
        gain = gain * bn.weight.data.astype(np.float64)
    folded_w = weight * gain.reshape((-1,) + (1,) * (weight.ndim - 1))
    folded_b = ((0.0 if bias is None else bias) - bn.running_mean.data.astype(np.float64)) * gain + shift
    return folded_w.astype(np.float32), folded_b.astype(np.float32)


def fold_batchnorms(model: Module) -> Sequential:
    """A float copy of ``model`` for inference, every BatchNorm folded into the Conv2D or Dense before it.

    Batch norm in evaluation is a fixed per-channel affine map (see :func:`fold_batchnorm`), so
    the folded model computes the same function with one layer fewer per block: the batch norm's
    pass over the activations is gone. ``model`` is left as it was; the copy is in evaluation
    mode (it has no batch statistics to train with). Nested Sequentials are flattened.

    Parameters
    ----------
    model : Module
        A Sequential (or one layer); a batch norm that does not follow a Conv2D/Dense stays.

    Returns
    -------
    Sequential
    """
    layers = flat_layers(model)
    folded: list[Module] = []
    i = 0
    while i < len(layers):
        layer = copy.deepcopy(layers[i])
        after = layers[i + 1] if i + 1 < len(layers) else None
        bn_kind = BatchNorm2D if isinstance(layer, Conv2D) else BatchNorm1D if isinstance(layer, Dense) else None
        if bn_kind is not None and isinstance(after, bn_kind):
            weight, bias = fold_batchnorm(layers[i], after)
            layer.weight.data = weight
            if layer.bias is None:
                layer.register_parameter("bias", Parameter(bias))
            else:
                layer.bias.data = bias
            i += 1
        folded.append(layer)
        i += 1
    return Sequential(*folded).eval()


# -- the folded float model ---------------------------------------------------------------------------
@dataclass
class _Weighted:
    """A Conv2D or Dense with its batch norm folded in and its ReLU fused."""

    source: Module
    weight: np.ndarray
    bias: np.ndarray | None
    relu: bool
    observer: Observer | None = None  # watches the output (None: the output stays float)

    def run(self, x: np.ndarray) -> np.ndarray:
        if isinstance(self.source, Conv2D):
            out = kernels.conv2d_forward(np.ascontiguousarray(x), self.weight, self.bias, self.source.stride, self.source.padding)
        else:
            out = x.reshape(x.shape[0], -1) @ self.weight.T
            if self.bias is not None:
                out += self.bias
        return np.maximum(out, 0) if self.relu else out

    def convert(self, per_channel: bool, bits: int) -> Module:
        if per_channel:
            q, scale = quantize_per_channel(self.weight, axis=0, bits=bits)
        else:
            q, one_scale = quantize_per_tensor(self.weight, bits=bits)
            scale = np.full(self.weight.shape[0], one_scale, dtype=np.float32)
        out_scale, out_zero = self.observer.qparams() if self.observer is not None else (None, 0)
        if isinstance(self.source, Conv2D):
            return QuantizedConv2D(q, scale, self.bias, self.source.stride, self.source.padding, out_scale, out_zero, self.relu)
        return QuantizedDense(q, scale, self.bias, out_scale, out_zero, self.relu)


@dataclass
class _Shape:
    """A step that moves int8 values without rescaling them: max pooling, flattening, ReLU."""

    source: Module
    observer: Observer | None = field(default=None)

    def run(self, x: np.ndarray) -> np.ndarray:
        if isinstance(self.source, MaxPool2D):
            s = self.source
            return kernels.maxpool2d_forward(np.ascontiguousarray(x), s.kernel_size, s.stride, s.padding)[0]
        if isinstance(self.source, Flatten):
            return x.reshape(x.shape[0], -1)
        return np.maximum(x, 0)

    def convert(self, per_channel: bool, bits: int) -> Module:
        if isinstance(self.source, MaxPool2D):
            return QuantizedMaxPool2D(self.source.kernel_size, self.source.stride, self.source.padding)
        return QuantizedFlatten() if isinstance(self.source, Flatten) else QuantizedReLU()


def flat_layers(model: Module) -> list[Module]:
    """The layers of a Sequential in order, nested Sequentials opened up (a model that is not one: itself)."""
    if isinstance(model, Sequential):
        return [layer for child in model for layer in flat_layers(child)]
    return [model]


def _plan(model: Module) -> list[_Weighted | _Shape]:
    """The model as int8 will run it: BatchNorm folded, ReLU fused, Dropout and Identity dropped."""
    layers = flat_layers(model)
    steps: list[_Weighted | _Shape] = []
    i = 0
    while i < len(layers):
        layer = layers[i]
        if isinstance(layer, (Conv2D, Dense)):
            bn_kind = BatchNorm2D if isinstance(layer, Conv2D) else BatchNorm1D
            bn = layers[i + 1] if i + 1 < len(layers) and isinstance(layers[i + 1], bn_kind) else None
            i += 1 + (bn is not None)
            relu = i < len(layers) and isinstance(layers[i], ReLU)
            i += relu
            steps.append(_Weighted(layer, *fold_batchnorm(layer, bn), relu=relu))
            continue
        if isinstance(layer, Flatten) and (layer.start_axis, layer.end_axis) != (1, -1):
            raise ValueError(f"quantize_static: {layer.label()} is not supported; only Flatten() over every axis after the batch")
        if isinstance(layer, (MaxPool2D, Flatten, ReLU)):
            steps.append(_Shape(layer))
        elif not isinstance(layer, (Dropout, Identity)):
            raise ValueError(f"quantize_static: layer {i} ({layer.label()}) has no int8 version; supported: {SUPPORTED}")
        i += 1
    if not any(isinstance(s, _Weighted) for s in steps):
        raise ValueError("quantize_static: the model has no Conv2D or Dense layer to quantize")
    return steps


def calibration_inputs(batches: Iterable[Any], num_batches: int | None) -> Iterable[np.ndarray]:
    """The float input arrays of up to ``num_batches`` calibration batches.

    A batch is an input (array or Tensor) or a tuple/list whose first item is the input, as a
    DataLoader yields ``(images, labels)``.
    """
    for count, batch in enumerate(batches):
        if num_batches is not None and count >= num_batches:
            return
        x = batch[0] if isinstance(batch, (tuple, list)) else batch
        array = np.asarray(x.data if isinstance(x, Tensor) else x)
        if array.dtype.kind != "f":
            raise TypeError(f"quantize_static: calibration batch {count} has dtype {array.dtype}; expected float input")
        yield array.astype(np.float32, copy=False)


def quantize_static(
    model: Module,
    calibration_data: Iterable[Any],
    observer: str | Observer | type = "percentile",
    per_channel: bool = True,
    num_batches: int | None = 32,
    bits: int = 8,
) -> Sequential:
    """An int8 copy of ``model`` (static post-training quantization); ``model`` is left as it was.

    Parameters
    ----------
    model : Module
        A float Sequential (nested ones are fine) of the supported layers (see the module docstring).
    calibration_data : iterable
        Batches of real inputs (a DataLoader, a list of arrays): their activations set every scale.
    observer : str, Observer or Observer class
        ``"percentile"`` (default, 99.99 %), ``"histogram"`` (least squared error), ``"minmax"``,
        or an observer to copy for every activation.
    per_channel : bool
        One weight scale per output channel (default) or one per tensor.
    num_batches : int or None
        Calibrate on at most this many batches (None: all of them).
    bits : int
        Weight width, 2 to 8 (stored as int8 either way); activations are always 8-bit.

    Returns
    -------
    Sequential
        ``Quantize`` first, then the quantized layers; the last Conv2D/Dense returns float32 logits.
    """
    steps = _plan(model)
    last_weighted = max(i for i, s in enumerate(steps) if isinstance(s, _Weighted))
    float_output = last_weighted == len(steps) - 1  # else pooling or ReLU follow: stay int8 to the end
    for i, step in enumerate(steps):
        if isinstance(step, _Weighted) and (i != last_weighted or not float_output):
            step.observer = make_observer(observer)
    input_observer = make_observer(observer)
    seen = 0
    for x in calibration_inputs(calibration_data, num_batches):
        input_observer.observe(x)
        for step in steps:
            x = step.run(x)
            if step.observer is not None:
                step.observer.observe(x)
        seen += 1
    if seen == 0:
        raise ValueError("quantize_static: calibration_data yielded no batches")
    converted = [Quantize(*input_observer.qparams()), *(s.convert(per_channel, bits) for s in steps)]
    return Sequential(converted if float_output else [*converted, DeQuantize()])


def _replace_children(module: Module, replace) -> None:
    """Swap every child ``c`` of every module for ``replace(c)`` when that is not None, in place.

    Children are replaced at their position (a Sequential runs them in registration order, which
    re-registering would change), so this writes the module's registry directly.
    """
    for parent in module.modules():
        for name, child in list(parent._modules.items()):
            new = replace(child) if child is not None else None
            if new is not None:
                parent._modules[name] = new
                object.__setattr__(parent, name, new)


def quantize_dynamic(model: Module, layers: tuple[type, ...] = (Dense,), bits: int = 8) -> Module:
    """A copy of ``model`` whose Dense (and, when asked, Conv2D) layers hold int8 weights (dynamic quantization).

    Each swapped layer quantizes its float input per batch, multiplies in int8 with int32
    accumulation and returns float32, so the rest of the model is untouched. ``model`` itself is
    not changed. ``layers`` may hold ``Dense`` and ``Conv2D``.
    """
    makers = {Dense: DynamicQuantizedDense.from_float, Conv2D: DynamicQuantizedConv2D.from_float}
    unknown = [t for t in layers if t not in makers]
    if unknown:
        raise ValueError(f"quantize_dynamic: layers may be Dense and Conv2D, got {[t.__name__ for t in unknown]}")
    copied = copy.deepcopy(model)

    def swap(child: Module) -> Module | None:
        kind = next((t for t in layers if type(child) is t), None)
        return makers[kind](child, bits) if kind is not None else None

    if type(copied) in layers:
        return swap(copied)
    _replace_children(copied, swap)
    return copied


def quantize_layer_weights(layer: Module, bits: int = 8) -> tuple[Module, dict[str, Any]]:
    """The original course's entry point: ``layer`` with int8 weights, and what that did.

    Unlike the original (which rounded the float32 weights and kept them float32), the result
    really stores int8 values and runs on the int8 kernels: a :class:`DynamicQuantizedDense` for a
    Dense layer, a :class:`DynamicQuantizedConv2D` for a Conv2D, with one scale per output
    channel. ``layer`` itself is not changed.

    Returns
    -------
    (Module, dict)
        The quantized layer and ``info``: ``bits``, ``scale`` (per-channel scales), ``total_weights``,
        ``original_bytes`` and ``quantized_bytes`` (the arrays' real sizes, scales included),
        ``memory_reduction``, ``mse_error`` and ``max_error`` (of the dequantized weights), ``original_dtype``.
    """
    makers = {Dense: DynamicQuantizedDense.from_float, Conv2D: DynamicQuantizedConv2D.from_float}
    maker = makers.get(type(layer))
    if maker is None:
        raise TypeError(f"quantize_layer_weights: expected a Dense or Conv2D layer, got {type(layer).__name__}")
    quantized = maker(layer, bits)
    weight = layer.weight.data
    error = quantized.weight.data.astype(np.float32) * quantized.weight_scale.data.reshape((-1,) + (1,) * (weight.ndim - 1)) - weight
    stored = quantized.weight.nbytes + quantized.weight_scale.nbytes
    info = {
        "bits": bits,
        "scale": quantized.weight_scale.data.copy(),
        "total_weights": int(weight.size),
        "original_bytes": int(weight.nbytes),
        "quantized_bytes": int(stored),
        "memory_reduction": weight.nbytes / stored,
        "mse_error": float(np.mean(error.astype(np.float64) ** 2)),
        "max_error": float(np.abs(error).max()),
        "original_dtype": str(weight.dtype),
    }
    return quantized, info
