"""Input checks of the int8 kernels (the quantized Dense and Conv2D of lesson 12).

Both implementations, reference and compiled, call these before they compute, so a wrong dtype, a
zero point out of range or a reduction too deep for exact int32 accumulation is a clear error that
names the kernel, never a crash or a silently wrapped integer.
"""

import numpy as np

from .contracts import conv_weight_fits, int_pair, pool_padding, same_shape, window_output_size

#: Longest reduction (K = in_features, or C*KH*KW) an int8 kernel accepts. Each product
#: (x - x_zero) * w is at most 255 * 128 = 32,640 in magnitude, so K of them stay below 2**30 and,
#: with a bias of magnitude at most 2**30, the int32 result never overflows.
MAX_DEPTH = 32768
#: Largest bias magnitude: see MAX_DEPTH.
MAX_BIAS = 2**30


def int8_input(kernel: str, name: str, x, ndim: int) -> np.ndarray:
    """Return ``x`` as a C-contiguous int8 array of rank ``ndim``, or raise naming ``kernel``."""
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{kernel}: {name} must be a NumPy array, got {type(x).__name__}")
    if x.dtype != np.int8:
        raise TypeError(f"{kernel}: {name} has dtype {x.dtype}; expected int8")
    if x.ndim != ndim:
        raise ValueError(f"{kernel}: {name} must be {ndim}-D, got shape {x.shape}")
    return x if x.flags.c_contiguous else np.ascontiguousarray(x)


def int32_input(kernel: str, name: str, x, ndim: int | None = None) -> np.ndarray:
    """Return ``x`` as a C-contiguous int32 array (of rank ``ndim`` when given), or raise naming ``kernel``."""
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{kernel}: {name} must be a NumPy array, got {type(x).__name__}")
    if x.dtype != np.int32:
        raise TypeError(f"{kernel}: {name} has dtype {x.dtype}; expected int32")
    if ndim is not None and x.ndim != ndim:
        raise ValueError(f"{kernel}: {name} must be {ndim}-D, got shape {x.shape}")
    return x if x.flags.c_contiguous else np.ascontiguousarray(x)


def zero_point(kernel: str, name: str, value) -> int:
    """Return ``value`` as a Python int in [-128, 127] (an int8 zero point), or raise naming ``kernel``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not -128 <= value <= 127:
        raise ValueError(f"{kernel}: {name} must be an integer in [-128, 127], got {value!r}")
    return int(value)


def depth(kernel: str, k: int) -> None:
    """Raise unless a reduction over ``k`` products is short enough for exact int32 accumulation."""
    if k > MAX_DEPTH:
        raise ValueError(
            f"{kernel}: the reduction has {k} products per output; at most {MAX_DEPTH} fit an int32 accumulator"
        )


def int32_bias(kernel: str, bias, channels: int) -> np.ndarray | None:
    """Return ``bias`` as a C-contiguous int32 ``(channels,)`` array within +-2**30, None when it is None."""
    if bias is None:
        return None
    bias = int32_input(kernel, "bias", bias, ndim=1)
    same_shape(kernel, "bias", bias, (channels,))
    if bias.size and np.abs(bias.astype(np.int64)).max() > MAX_BIAS:
        raise ValueError(f"{kernel}: bias values must be within +-2**30, got {int(np.abs(bias.astype(np.int64)).max())}")
    return bias


def linear_inputs(kernel: str, x, x_zero, weight, bias):
    """Check an int8 matrix product's x (N, K), x_zero, weight (F, K) and bias (F,) or None."""
    x = int8_input(kernel, "x", x, 2)
    weight = int8_input(kernel, "weight", weight, 2)
    if weight.shape[1] != x.shape[1]:
        raise ValueError(
            f"{kernel}: x of shape {x.shape} does not fit weight of shape {weight.shape}; "
            f"the last dimensions must match"
        )
    depth(kernel, x.shape[1])
    return x, zero_point(kernel, "x_zero", x_zero), weight, int32_bias(kernel, bias, weight.shape[0])


def conv_inputs(kernel: str, x, x_zero, weight, bias, stride, padding):
    """Check an int8 convolution's inputs; returns ``(x, x_zero, weight, bias, stride, padding, (Ho, Wo))``."""
    x = int8_input(kernel, "x", x, 4)
    weight = int8_input(kernel, "weight", weight, 4)
    conv_weight_fits(kernel, x.shape, weight.shape)
    depth(kernel, weight.shape[1] * weight.shape[2] * weight.shape[3])
    stride = int_pair(kernel, "stride", stride, 1)
    padding = int_pair(kernel, "padding", padding, 0)
    out_size = window_output_size(kernel, x.shape[2:], weight.shape[2:], stride, padding)
    bias = int32_bias(kernel, bias, weight.shape[0])
    return x, zero_point(kernel, "x_zero", x_zero), weight, bias, stride, padding, out_size


def requantize_inputs(kernel: str, acc, multiplier, shift, out_zero):
    """Check int32 accumulators (N, F, ...) and per-channel multipliers and shifts.

    Returns ``(acc, multiplier, shift, out_zero)``; multipliers must lie in [0, 2**31) and shifts
    in [1, 62], so ``acc * multiplier`` plus the rounding term fits an int64.
    """
    acc = int32_input(kernel, "acc", acc)
    if acc.ndim < 2:
        raise ValueError(f"{kernel}: acc must be (N, F) or (N, F, ...), got shape {acc.shape}")
    channels = acc.shape[1]
    multiplier = int32_input(kernel, "multiplier", multiplier, ndim=1)
    shift = int32_input(kernel, "shift", shift, ndim=1)
    same_shape(kernel, "multiplier", multiplier, (channels,))
    same_shape(kernel, "shift", shift, (channels,))
    if multiplier.size and multiplier.min() < 0:
        raise ValueError(f"{kernel}: multipliers must be in [0, 2**31), got {int(multiplier.min())}")
    if shift.size and (shift.min() < 1 or shift.max() > 62):
        raise ValueError(f"{kernel}: shifts must be in [1, 62], got [{int(shift.min())}, {int(shift.max())}]")
    return acc, multiplier, shift, zero_point(kernel, "out_zero", out_zero)


def maxpool_inputs(kernel: str, x, window, stride, padding):
    """Check an int8 max pool; returns ``(x, window, stride, padding, (Ho, Wo))``."""
    x = int8_input(kernel, "x", x, 4)
    if min(x.shape[2:]) < 1:
        raise ValueError(f"{kernel}: the input of shape {x.shape} has empty (H, W) planes")
    window = int_pair(kernel, "kernel", window, 1)
    stride = int_pair(kernel, "stride", stride, 1)
    padding = int_pair(kernel, "padding", padding, 0)
    pool_padding(kernel, window, padding)
    return x, window, stride, padding, window_output_size(kernel, x.shape[2:], window, stride, padding)
