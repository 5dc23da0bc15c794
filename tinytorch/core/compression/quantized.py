"""Quantized layers: int8 weights in memory and on disk, int8 kernels at run time (lesson 12).

Static quantization (:func:`~tinytorch.core.compression.quantize_static`) builds a chain of these:
``Quantize`` turns the float input into a :class:`QuantizedTensor`, each ``QuantizedConv2D`` /
``QuantizedDense`` multiplies int8 by int8 into int32 (``kernels.int8_conv2d`` /
``kernels.int8_linear``) and requantizes to the next layer's int8 scale with integer arithmetic
(``kernels.int8_requantize``, with the ReLU fused in), pooling runs on int8 directly, and the last
layer returns float32 logits. Dynamic quantization (:class:`DynamicQuantizedDense`) keeps float
input and output and quantizes each batch's input on the fly.

What a quantized layer stores: ``weight`` (int8), ``weight_scale`` (float32, one per output
channel) and ``bias`` (float32): the only float32 arrays in a saved quantized model are scales and
biases. Biases are quantized to int32 at run time, in the accumulator's units.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import kernels
from ..module import Module
from ..spatial import _pair, _pool_geometry
from ..tensor import Tensor
from .quantization import (
    QuantizedTensor,
    affine_qparams,
    dequantize,
    quantize_affine,
    quantize_per_channel,
    quantized_bias,
    requantization_multiplier,
)

__all__ = [
    "Quantize",
    "DeQuantize",
    "QuantizedConv2D",
    "QuantizedDense",
    "QuantizedMaxPool2D",
    "QuantizedFlatten",
    "QuantizedReLU",
    "DynamicQuantizedDense",
    "DynamicQuantizedConv2D",
    "QUANTIZED_MODULES",
]


def _quantized_input(layer: Module, x: Any) -> QuantizedTensor:
    if not isinstance(x, QuantizedTensor):
        raise TypeError(
            f"{layer.label()} got a {type(x).__name__}; it takes a QuantizedTensor. Put a Quantize(scale, zero_point) "
            "layer before it (quantize_static does), or use a dynamically quantized layer for float input"
        )
    return x


def _float_input(layer: Module, x: Any) -> np.ndarray:
    array = np.asarray(x.data if isinstance(x, Tensor) else x)
    if array.dtype.kind != "f":
        raise TypeError(f"{layer.label()} got input of dtype {array.dtype}; it takes float input")
    return array


class Quantize(Module):
    """Float input -> :class:`QuantizedTensor` with a fixed (calibrated) scale and zero point."""

    def __init__(self, scale: float, zero_point: int):
        super().__init__()
        QuantizedTensor(np.zeros(0, np.int8), scale, zero_point)  # checks the parameters
        self.scale, self.zero_point = float(scale), int(zero_point)

    def forward(self, x: Any) -> QuantizedTensor:
        return QuantizedTensor.quantize(_float_input(self, x), self.scale, self.zero_point)

    def config(self) -> dict[str, Any]:
        return {"scale": self.scale, "zero_point": self.zero_point}

    def extra_repr(self) -> str:
        return f"scale={self.scale:.6g}, zero_point={self.zero_point}"


class DeQuantize(Module):
    """:class:`QuantizedTensor` -> the float32 Tensor it stands for."""

    def forward(self, x: QuantizedTensor) -> Tensor:
        return _quantized_input(self, x).dequantize()

    def config(self) -> dict[str, Any]:
        return {}


class _Int8Weights(Module):
    """What QuantizedConv2D and QuantizedDense share: int8 weights with per-channel scales, a float
    bias, and the output stage (requantize to int8, or dequantize to float), each optionally with ReLU."""

    def __init__(self, weight: np.ndarray, weight_scale: np.ndarray, bias: np.ndarray | None,
                 out_scale: float | None, out_zero_point: int, relu: bool):
        super().__init__()
        weight = np.ascontiguousarray(weight)
        if weight.dtype != np.int8:
            raise TypeError(f"{type(self).__name__}: weight must be int8, got {weight.dtype}")
        channels = weight.shape[0]
        weight_scale = np.asarray(weight_scale, dtype=np.float32).reshape(-1)
        if weight_scale.shape != (channels,) or not np.all(weight_scale > 0):
            raise ValueError(f"{type(self).__name__}: weight_scale must hold {channels} positive scales, got {weight_scale.shape}")
        if bias is not None:
            bias = np.asarray(bias, dtype=np.float32).reshape(-1)
            if bias.shape != (channels,):
                raise ValueError(f"{type(self).__name__}: bias must have {channels} values, got shape {bias.shape}")
        if out_scale is not None:
            QuantizedTensor(np.zeros(0, np.int8), out_scale, out_zero_point)  # checks the parameters
        self.register_buffer("weight", weight)
        self.register_buffer("weight_scale", weight_scale)
        self.register_buffer("bias", bias)
        self.out_scale = None if out_scale is None else float(out_scale)
        self.out_zero_point = int(out_zero_point)
        self.relu = bool(relu)
        self._cached: tuple = (None, None)  # (key, (int32 bias, multiplier, shift)), see _integer_parameters

    def _integer_parameters(self, input_scale: float) -> tuple:
        """int32 bias and requantization (multiplier, shift) for inputs of ``input_scale``.

        Kept for the next call with the same input scale and float parameters (static models see one
        input scale forever); the key holds the parameters' bytes, so loading new ones is noticed.
        """
        bias = None if self.bias is None else self.bias.data
        key = (input_scale, self.out_scale, self.weight_scale.data.tobytes(), None if bias is None else bias.tobytes())
        if self._cached[0] != key:
            accumulator_scale = input_scale * self.weight_scale.data.astype(np.float64)
            multiplier, shift = (None, None)
            if self.out_scale is not None:
                multiplier, shift = requantization_multiplier(accumulator_scale / self.out_scale)
            self._cached = (key, (quantized_bias(bias, accumulator_scale), multiplier, shift))
        return self._cached[1]

    def _output(self, acc: np.ndarray, x: QuantizedTensor, multiplier, shift) -> QuantizedTensor | Tensor:
        if self.out_scale is not None:
            values = kernels.int8_requantize(acc, multiplier, shift, self.out_zero_point, self.relu)
            return QuantizedTensor(values, self.out_scale, self.out_zero_point)
        out = dequantize(acc, (x.scale * self.weight_scale.data.astype(np.float64)).astype(np.float32), axis=1)
        return Tensor(np.maximum(out, 0) if self.relu else out)

    def _output_config(self) -> dict[str, Any]:
        return {"out_scale": self.out_scale, "out_zero_point": self.out_zero_point, "relu": self.relu}

    def _output_repr(self) -> str:
        out = "float" if self.out_scale is None else f"scale={self.out_scale:.6g}, zero_point={self.out_zero_point}"
        return f", out={out}" + (", relu" if self.relu else "")


class QuantizedConv2D(_Int8Weights):
    """An int8 convolution: ``kernels.int8_conv2d`` then requantization (or float output).

    Parameters
    ----------
    weight : numpy.ndarray
        (F, C, KH, KW) int8, symmetric (zero point 0).
    weight_scale : numpy.ndarray
        (F,) float32: channel f's real weights are ``weight_scale[f] * weight[f]``.
    bias : numpy.ndarray or None
        (F,) float32 (a batch norm folded in lands here).
    stride, padding : int or (int, int)
    out_scale, out_zero_point : float or None, int
        The int8 parameters of the output; ``out_scale=None`` returns float32 instead.
    relu : bool
        Apply ReLU to the output (fused: the requantization clamps at the zero point).
    """

    def __init__(self, weight: np.ndarray, weight_scale: np.ndarray, bias: np.ndarray | None = None, stride: Any = 1,
                 padding: Any = 0, out_scale: float | None = None, out_zero_point: int = 0, relu: bool = False):
        if np.ndim(weight) != 4:
            raise ValueError(f"QuantizedConv2D: weight must be (F, C, KH, KW), got shape {np.shape(weight)}")
        super().__init__(weight, weight_scale, bias, out_scale, out_zero_point, relu)
        self.stride = _pair("QuantizedConv2D", "stride", stride, 1)
        self.padding = _pair("QuantizedConv2D", "padding", padding, 0)

    def forward(self, x: QuantizedTensor) -> QuantizedTensor | Tensor:
        x = _quantized_input(self, x)
        if x.values.ndim != 4 or x.shape[1] != self.weight.shape[1]:
            raise ValueError(f"{self.label()} got input of shape {x.shape}; expected (N, {self.weight.shape[1]}, H, W)")
        bias, multiplier, shift = self._integer_parameters(x.scale)
        acc = kernels.int8_conv2d(x.values, x.zero_point, self.weight.data, bias, self.stride, self.padding)
        return self._output(acc, x, multiplier, shift)

    def config(self) -> dict[str, Any]:
        return {"stride": list(self.stride), "padding": list(self.padding), **self._output_config()}

    def extra_repr(self) -> str:
        f, c, kh, kw = self.weight.shape
        text = f"{c} -> {f}, kernel_size={(kh, kw)}"
        text += f", stride={self.stride}" if self.stride != (1, 1) else ""
        text += f", padding={self.padding}" if self.padding != (0, 0) else ""
        return text + self._output_repr()


class QuantizedDense(_Int8Weights):
    """An int8 fully connected layer: ``kernels.int8_linear`` then requantization (or float output).

    Takes (N, in_features) input, or (N, ...) whose trailing dimensions multiply to in_features
    (flattened first, as :class:`~tinytorch.core.layers.Dense` does). Parameters as
    :class:`QuantizedConv2D`, with ``weight`` of shape (out_features, in_features).
    """

    def __init__(self, weight: np.ndarray, weight_scale: np.ndarray, bias: np.ndarray | None = None,
                 out_scale: float | None = None, out_zero_point: int = 0, relu: bool = False):
        if np.ndim(weight) != 2:
            raise ValueError(f"QuantizedDense: weight must be (out_features, in_features), got shape {np.shape(weight)}")
        super().__init__(weight, weight_scale, bias, out_scale, out_zero_point, relu)

    def forward(self, x: QuantizedTensor) -> QuantizedTensor | Tensor:
        x = _quantized_input(self, x)
        features = self.weight.shape[1]
        if x.values.ndim != 2 or x.shape[1] != features:
            if x.values.ndim >= 2 and int(np.prod(x.shape[1:])) == features:
                x = x.reshape(x.shape[0], features)
            else:
                raise ValueError(f"{self.label()} got input of shape {x.shape}; the last dimension must be {features}")
        bias, multiplier, shift = self._integer_parameters(x.scale)
        acc = kernels.int8_linear(x.values, x.zero_point, self.weight.data, bias)
        return self._output(acc, x, multiplier, shift)

    def config(self) -> dict[str, Any]:
        return self._output_config()

    def extra_repr(self) -> str:
        f, k = self.weight.shape
        return f"{k} -> {f}" + self._output_repr()


class QuantizedMaxPool2D(Module):
    """Max pooling on int8 values (``kernels.int8_maxpool2d``); the scale and zero point pass through."""

    def __init__(self, kernel_size: Any, stride: Any = None, padding: Any = 0):
        super().__init__()
        self.kernel_size, self.stride, self.padding = _pool_geometry("QuantizedMaxPool2D", kernel_size, stride, padding)

    def forward(self, x: QuantizedTensor) -> QuantizedTensor:
        x = _quantized_input(self, x)
        values = kernels.int8_maxpool2d(x.values, self.kernel_size, self.stride, self.padding)
        return QuantizedTensor(values, x.scale, x.zero_point)

    def config(self) -> dict[str, Any]:
        return {"kernel_size": list(self.kernel_size), "stride": list(self.stride), "padding": list(self.padding)}

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}"


class QuantizedFlatten(Module):
    """(N, C, H, W) -> (N, C*H*W) on int8 values: a reshape, nothing to requantize."""

    def forward(self, x: QuantizedTensor) -> QuantizedTensor:
        x = _quantized_input(self, x)
        return x.reshape(x.shape[0], -1)

    def config(self) -> dict[str, Any]:
        return {}


class QuantizedReLU(Module):
    """ReLU on int8 values: nothing below the zero point (the quantized real 0)."""

    def forward(self, x: QuantizedTensor) -> QuantizedTensor:
        x = _quantized_input(self, x)
        return QuantizedTensor(np.maximum(x.values, np.int8(x.zero_point)), x.scale, x.zero_point)

    def config(self) -> dict[str, Any]:
        return {}


def _dynamic_input(layer: Module, x: np.ndarray) -> QuantizedTensor:
    """Quantize a float batch over its own range: dynamic quantization's per-batch calibration."""
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{layer.label()} got input holding NaN or infinity")
    scale, zero = affine_qparams(float(x.min(initial=0.0)), float(x.max(initial=0.0)))
    return QuantizedTensor(quantize_affine(x, scale, zero), scale, zero)


class DynamicQuantizedDense(QuantizedDense):
    """A Dense layer with int8 weights whose float input is quantized batch by batch (dynamic quantization).

    Each call quantizes its input over that batch's own range (int8 affine), runs
    ``kernels.int8_linear`` and returns float32: ``out = x_scale * weight_scale * acc`` (the bias is
    in ``acc``, as int32). Nothing is calibrated ahead of time, so any float model's Dense layers can
    be swapped for these (:func:`~tinytorch.core.compression.quantize_dynamic`). Leading axes of
    the input are kept: (..., in_features) -> (..., out_features).
    """

    def __init__(self, weight: np.ndarray, weight_scale: np.ndarray, bias: np.ndarray | None = None):
        super().__init__(weight, weight_scale, bias)

    @classmethod
    def from_float(cls, layer: Module, bits: int = 8) -> "DynamicQuantizedDense":
        """Quantize a float Dense layer's weights per output channel."""
        q, scale = quantize_per_channel(layer.weight.data, axis=0, bits=bits)
        return cls(q, scale, None if layer.bias is None else layer.bias.data)

    def forward(self, x: Any) -> Tensor:
        array = _float_input(self, x)
        features = self.weight.shape[1]
        if array.ndim == 0 or array.shape[-1] != features:
            raise ValueError(f"{self.label()} got input of shape {array.shape}; the last dimension must be {features}")
        out = super().forward(_dynamic_input(self, array.reshape(-1, features)))
        return Tensor(out.data.reshape(*array.shape[:-1], self.weight.shape[0]))

    def config(self) -> dict[str, Any]:
        return {}

    def extra_repr(self) -> str:
        f, k = self.weight.shape
        return f"{k} -> {f}, int8 weights, dynamic int8 input"


class DynamicQuantizedConv2D(QuantizedConv2D):
    """A Conv2D with int8 weights whose float input is quantized batch by batch; returns float32."""

    def __init__(self, weight: np.ndarray, weight_scale: np.ndarray, bias: np.ndarray | None = None,
                 stride: Any = 1, padding: Any = 0):
        super().__init__(weight, weight_scale, bias, stride, padding)

    @classmethod
    def from_float(cls, layer: Module, bits: int = 8) -> "DynamicQuantizedConv2D":
        """Quantize a float Conv2D layer's weights per output channel."""
        q, scale = quantize_per_channel(layer.weight.data, axis=0, bits=bits)
        return cls(q, scale, None if layer.bias is None else layer.bias.data, layer.stride, layer.padding)

    def forward(self, x: Any) -> Tensor:
        return super().forward(_dynamic_input(self, _float_input(self, x)))

    def config(self) -> dict[str, Any]:
        return {"stride": list(self.stride), "padding": list(self.padding)}

    def extra_repr(self) -> str:
        f, c, kh, kw = self.weight.shape
        return f"{c} -> {f}, kernel_size={(kh, kw)}, int8 weights, dynamic int8 input"


#: Every quantized module by its class name: what a saved quantized model's architecture names.
QUANTIZED_MODULES = {
    cls.__name__: cls
    for cls in (Quantize, DeQuantize, QuantizedConv2D, QuantizedDense, QuantizedMaxPool2D, QuantizedFlatten,
                QuantizedReLU, DynamicQuantizedDense, DynamicQuantizedConv2D)
}
