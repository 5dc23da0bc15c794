"""Quantization arithmetic: int8 values, their scales and zero points (lesson 12).

A quantized number stands for ``real = scale * (q - zero_point)`` with ``q`` an integer of a few
bits. Weights are quantized *symmetrically* (zero point 0) with one scale per output channel,
activations *affinely* (a zero point shifts the int8 range onto the values seen) with one scale
per tensor, as PyTorch's x86 default does. The real number 0 is always exactly representable, so
zero padding and ReLU's zeros cost no error.

>>> w = np.array([[0.6, -1.0, 0.2], [0.03, 0.01, -0.04]], dtype=np.float32)
>>> q, scale = quantize_per_channel(w)
>>> q
array([[  76, -127,   25],
       [  95,   32, -127]], dtype=int8)
>>> bool(np.all(np.abs(dequantize(q, scale, axis=0) - w) <= scale[:, None] / 2))
True

Per-tensor scales (one for the whole array) are what per-channel scales are measured against:
the small second row above would keep only 3 distinct levels under the first row's scale.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..exercises import exercise

__all__ = [
    "QuantizedTensor",
    "quantize_per_channel",
    "quantize_per_tensor",
    "dequantize",
    "affine_qparams",
    "quantize_affine",
    "requantization_multiplier",
    "quantized_bias",
]

INT8_MIN, INT8_MAX = -128, 127
#: The largest magnitude of an int32 bias the int8 kernels accept (see tinytorch/_kernels/int8_contracts.py).
BIAS_LIMIT = 2**30


def _symmetric_levels(bits: int) -> int:
    if isinstance(bits, bool) or not isinstance(bits, (int, np.integer)) or not 2 <= bits <= 8:
        raise ValueError(f"quantize: bits must be an integer from 2 to 8 (values are stored as int8), got {bits!r}")
    return 2 ** (int(bits) - 1) - 1


def _float_array(op: str, x: Any) -> np.ndarray:
    array = np.asarray(getattr(x, "data", x))
    if array.dtype.kind != "f":
        raise TypeError(f"{op}: expected a float array, got dtype {array.dtype}")
    return array


@exercise
def quantize_per_channel(weight: np.ndarray, axis: int = 0, bits: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric quantization with one scale per slice along ``axis`` (per output channel).

    Each slice's scale maps its largest magnitude to the largest level, ``qmax = 2**(bits-1) - 1``
    (127 for int8): ``scale = max|w| / qmax``, and ``q = round(w / scale)`` (half to even), so every
    value lands in ``[-qmax, qmax]``; -128 is never used, which keeps the range symmetric. A slice
    that is all zeros gets scale 1.0 (any scale represents zeros exactly).

    Parameters
    ----------
    weight : numpy.ndarray or Tensor
        Float weights, e.g. Dense (out, in) or Conv2D (out, in, kh, kw).
    axis : int
        The channel axis, 0 for the output channels of Dense and Conv2D.
    bits : int
        2 to 8; the values are stored as int8 whatever the width.

    Returns
    -------
    (numpy.ndarray, numpy.ndarray)
        ``q`` (int8, the shape of ``weight``) and ``scale`` (float32, one per slice).
    """
    w = _float_array("quantize_per_channel", weight)
    qmax = _symmetric_levels(bits)
    axis = axis % w.ndim if w.ndim else 0
    others = tuple(i for i in range(w.ndim) if i != axis)
    peak = np.abs(w).max(axis=others) if w.size else np.zeros(w.shape[axis] if w.ndim else 1)
    scale = np.where(peak > 0, peak / qmax, 1.0).astype(np.float32)
    shape = [1] * w.ndim
    if w.ndim:
        shape[axis] = -1
    q = np.clip(np.rint(w / scale.reshape(shape)), -qmax, qmax).astype(np.int8)
    return q, scale


def quantize_per_tensor(weight: np.ndarray, bits: int = 8) -> tuple[np.ndarray, np.float32]:
    """Symmetric quantization with one scale for the whole array: ``scale = max|w| / qmax``.

    Returns ``(q int8, scale float32)``; see :func:`quantize_per_channel` for the rounding rule.
    """
    w = _float_array("quantize_per_tensor", weight)
    qmax = _symmetric_levels(bits)
    peak = float(np.abs(w).max()) if w.size else 0.0
    scale = np.float32(peak / qmax if peak > 0 else 1.0)
    return np.clip(np.rint(w / scale), -qmax, qmax).astype(np.int8), scale


@exercise
def dequantize(q: np.ndarray, scale: Any, zero_point: Any = 0, axis: int | None = None) -> np.ndarray:
    """The real values that quantized ``q`` stands for: ``scale * (q - zero_point)``, as float32.

    Parameters
    ----------
    q : numpy.ndarray
        Integer values (int8 from the quantizers here).
    scale : float or numpy.ndarray
        One scale, or one per slice along ``axis``.
    zero_point : int or numpy.ndarray
        Likewise; 0 for symmetric quantization.
    axis : int, optional
        The axis ``scale`` (and ``zero_point``) run along when they are arrays.

    Returns
    -------
    numpy.ndarray
        float32, the shape of ``q``.
    """
    q = np.asarray(q)
    if q.dtype.kind not in "iu":
        raise TypeError(f"dequantize: expected integer values, got dtype {q.dtype}")
    scale = np.asarray(scale, dtype=np.float32)
    zero = np.asarray(zero_point, dtype=np.int32)
    if axis is not None and (scale.ndim or zero.ndim):
        shape = [1] * q.ndim
        shape[axis % q.ndim] = -1
        scale = scale.reshape(shape) if scale.ndim else scale
        zero = zero.reshape(shape) if zero.ndim else zero
    elif scale.ndim or zero.ndim:
        raise ValueError("dequantize: per-channel scales or zero points need the axis they run along (axis=...)")
    return (scale * (q.astype(np.int32) - zero)).astype(np.float32)


def affine_qparams(low: float, high: float) -> tuple[float, int]:
    """Scale and zero point of int8 affine quantization covering ``[low, high]`` (widened to include 0).

    The 256 levels -128..127 are spread over the range: ``scale = (high - low) / 255`` and the zero
    point is the level that stands for the real 0, ``round(-128 - low / scale)``, so 0 is exact.
    After a ReLU (``low = 0``) the zero point is -128 and every level is spent on values >= 0.

    Returns
    -------
    (float, int)
        ``scale`` (a float32 value, as a Python float) and ``zero_point`` in [-128, 127].
    """
    low, high = min(float(low), 0.0), max(float(high), 0.0)
    if not (np.isfinite(low) and np.isfinite(high)):
        raise ValueError(f"affine_qparams: the range [{low}, {high}] is not finite")
    # the smallest normal float32 keeps a vanishing range from dividing by zero
    scale = max(float(np.float32((high - low) / 255.0)), float(np.finfo(np.float32).tiny)) if high > low else 1.0
    zero = int(np.clip(np.rint(INT8_MIN - low / scale), INT8_MIN, INT8_MAX))
    return scale, zero


def quantize_affine(x: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """int8 values of ``x``: ``clip(round(x / scale) + zero_point, -128, 127)`` (round half to even)."""
    x = _float_array("quantize_affine", x)
    return np.clip(np.rint(x / np.float32(scale)) + zero_point, INT8_MIN, INT8_MAX).astype(np.int8)


def requantization_multiplier(real: Any) -> tuple[np.ndarray, np.ndarray]:
    """Integer ``(multiplier, shift)`` pairs with ``multiplier / 2**shift`` closest to each ``real`` factor.

    A quantized layer's int32 accumulators are rescaled to the output's int8 scale by
    ``real = input_scale * weight_scale / output_scale``; ``int8_requantize`` does it with integer
    arithmetic only, which is what makes the compiled kernel and its NumPy twin agree bit for bit.
    ``multiplier`` is in [2**30, 2**31) (31 bits of precision); factors too small for a shift of 62
    become 0.

    Returns
    -------
    (numpy.ndarray, numpy.ndarray)
        int32 multipliers and int32 shifts in [1, 62], one per factor.
    """
    real = np.atleast_1d(np.asarray(real, dtype=np.float64))
    if real.size and not (np.all(np.isfinite(real)) and real.min() >= 0):
        raise ValueError("requantization_multiplier: factors must be finite and non-negative")
    mantissa, exponent = np.frexp(real)  # real = mantissa * 2**exponent, mantissa in [0.5, 1)
    multiplier = np.rint(mantissa * 2.0**31).astype(np.int64)
    shift = 31 - exponent.astype(np.int64)
    carry = multiplier == 2**31  # the mantissa rounded up to 1.0
    multiplier[carry] //= 2
    shift[carry] -= 1
    if real.size and shift.min() < 1:
        raise ValueError(f"requantization_multiplier: a factor of {real.max():.3g} is too large (at most 2**30)")
    tiny = (shift > 62) | (real == 0)
    multiplier[tiny], shift[tiny] = 0, 62
    return multiplier.astype(np.int32), shift.astype(np.int32)


def quantized_bias(bias: np.ndarray | None, accumulator_scale: np.ndarray) -> np.ndarray | None:
    """A float bias as int32 in the accumulator's units (``round(bias / (input_scale * weight_scale))``).

    Clipped to +-2**30, the kernels' limit; a bias that large would mean a weight scale so small
    that the channel is effectively all zeros.
    """
    if bias is None:
        return None
    q = np.rint(np.asarray(bias, dtype=np.float64) / accumulator_scale)
    return np.clip(q, -BIAS_LIMIT, BIAS_LIMIT).astype(np.int32)


class QuantizedTensor:
    """int8 values with the scale and zero point that give them meaning: ``real = scale * (values - zero_point)``.

    What quantized layers pass to each other (one scale per tensor). It holds no graph: quantized
    models are for inference.

    >>> qt = QuantizedTensor.quantize(np.array([[-1.0, 0.0, 2.0]], dtype=np.float32), *affine_qparams(-1.0, 2.0))
    >>> qt
    QuantizedTensor(shape=(1, 3), scale=0.0117647, zero_point=-43)
    >>> qt.values
    array([[-128,  -43,  127]], dtype=int8)
    >>> qt.dequantize().numpy().round(2)
    array([[-1.,  0.,  2.]], dtype=float32)
    """

    __slots__ = ("values", "scale", "zero_point")

    def __init__(self, values: np.ndarray, scale: float, zero_point: int):
        if not isinstance(values, np.ndarray) or values.dtype != np.int8:
            raise TypeError(f"QuantizedTensor: values must be an int8 array, got {getattr(values, 'dtype', type(values).__name__)}")
        if not (np.isfinite(scale) and scale > 0):
            raise ValueError(f"QuantizedTensor: scale must be a positive number, got {scale!r}")
        if not INT8_MIN <= int(zero_point) <= INT8_MAX:
            raise ValueError(f"QuantizedTensor: zero_point must be in [-128, 127], got {zero_point!r}")
        self.values, self.scale, self.zero_point = values, float(scale), int(zero_point)

    @classmethod
    def quantize(cls, x: Any, scale: float, zero_point: int) -> "QuantizedTensor":
        """Quantize float ``x`` (array or Tensor) with the given scale and zero point."""
        return cls(quantize_affine(x, scale, zero_point), scale, zero_point)

    def dequantize(self):
        """The float32 Tensor these values stand for."""
        from ..tensor import Tensor

        return Tensor(dequantize(self.values, self.scale, self.zero_point))

    @property
    def shape(self) -> tuple[int, ...]:
        return self.values.shape

    @property
    def nbytes(self) -> int:
        return self.values.nbytes

    def reshape(self, *shape: int) -> "QuantizedTensor":
        return QuantizedTensor(self.values.reshape(*shape), self.scale, self.zero_point)

    def __repr__(self) -> str:
        return f"QuantizedTensor(shape={self.shape}, scale={self.scale:.6g}, zero_point={self.zero_point})"
