"""Every kernel in plain NumPy: the specification of each kernel, and the fallback backend.

A compiled module in this package defines some of these functions with the same names, arguments
and results; ``tinytorch.core.kernels`` picks which one runs. Read a docstring here to learn what a
kernel computes; read the function body to see how, in a few lines of NumPy.

Conventions for every kernel: inputs are NumPy arrays, float32 or float64 (one dtype per call);
results are new arrays of the same dtype unless a docstring says a kernel works in place.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .attention_contracts import backward_inputs as attention_backward_inputs
from .attention_contracts import cached_inputs as attention_cached_inputs
from .attention_contracts import dropout_scale
from .attention_contracts import forward_inputs as attention_forward_inputs
from .attention_contracts import packed_backward_inputs, packed_forward_inputs
from .contracts import (
    argmax_input,
    batchnorm_inputs,
    channel_vector,
    conv2d_fused_inputs,
    conv2d_inputs,
    epsilon,
    float_input,
    gelu_approximation,
    layer_norm_inputs,
    layer_norm_saved,
    matmul_inputs,
    pool_geometry,
    same_shape,
    shape_tuple,
)
from .int8_contracts import conv_inputs as int8_conv_inputs
from .int8_contracts import linear_inputs as int8_linear_inputs
from .int8_contracts import maxpool_inputs as int8_maxpool_inputs
from .int8_contracts import requantize_inputs
from .optim_contracts import adam_inputs, rmsprop_inputs, sgd_inputs

__all__ = [
    "matmul",
    "softmax_forward",
    "softmax_backward",
    "log_softmax_forward",
    "log_softmax_backward",
    "conv2d_forward",
    "conv2d_backward",
    "conv2d_fused_forward",
    "maxpool2d_forward",
    "maxpool2d_backward",
    "avgpool2d_forward",
    "avgpool2d_backward",
    "global_avgpool2d_forward",
    "global_avgpool2d_backward",
    "relu_forward",
    "relu_backward",
    "gelu_forward",
    "gelu_backward",
    "layer_norm_forward",
    "layer_norm_backward",
    "batchnorm_forward_train",
    "batchnorm_forward_eval",
    "batchnorm_backward",
    "attention_forward",
    "attention_backward",
    "attention_cached",
    "attention_packed_forward",
    "attention_packed_backward",
    "sgd_step",
    "adam_step",
    "rmsprop_step",
    "int8_linear",
    "int8_conv2d",
    "int8_requantize",
    "int8_maxpool2d",
]


def matmul(a: np.ndarray, b: np.ndarray, out: np.ndarray | None = None, accumulate: bool = False) -> np.ndarray:
    """Matrix product of 2-D arrays: ``a @ b`` (M, K) @ (K, N), into ``out`` when given, or ``out += a @ b``.

    Every product of the layers goes through this kernel. Here it is ``np.matmul``, which runs on
    NumPy's BLAS and its threads; the compiled twin (gemm.pyx) calls the same BLAS from the kernels'
    own threads. Returns the product (``out`` when given).
    """
    a, b = matmul_inputs("matmul", a, b, out, accumulate)
    if accumulate:
        out += np.matmul(a, b)
        return out
    return np.matmul(a, b, out=out)


def softmax_forward(x: np.ndarray) -> np.ndarray:
    """Softmax over the last axis.

    x: (..., n) float32/float64. Returns y of the same shape, y = exp(x - max) / sum(exp(x - max)),
    each row summing to 1. Subtracting the row maximum first keeps exp() from overflowing.
    """
    x = float_input("softmax_forward", "x", x)
    shifted = x - x.max(axis=-1, keepdims=True)
    e = np.exp(shifted)
    return e / e.sum(axis=-1, keepdims=True)


def softmax_backward(y: np.ndarray, grad: np.ndarray) -> np.ndarray:
    """Gradient of softmax over the last axis, from its output.

    y: (..., n) the forward result; grad: dL/dy of the same shape and dtype.
    Returns dL/dx = y * (grad - sum(grad * y, axis=-1)).
    """
    y = float_input("softmax_backward", "y", y)
    grad = float_input("softmax_backward", "grad", grad, dtype=y.dtype)
    same_shape("softmax_backward", "grad", grad, y.shape)
    return y * (grad - (grad * y).sum(axis=-1, keepdims=True))


def log_softmax_forward(x: np.ndarray) -> np.ndarray:
    """Log-softmax over the last axis.

    x: (..., n) float32/float64. Returns x - max - log(sum(exp(x - max))), computed without
    overflow or log(0).
    """
    x = float_input("log_softmax_forward", "x", x)
    shifted = x - x.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def log_softmax_backward(y: np.ndarray, grad: np.ndarray) -> np.ndarray:
    """Gradient of log-softmax over the last axis, from its output.

    y: (..., n) the forward result (log-probabilities); grad: dL/dy, same shape and dtype.
    Returns dL/dx = grad - exp(y) * sum(grad, axis=-1).
    """
    y = float_input("log_softmax_backward", "y", y)
    grad = float_input("log_softmax_backward", "grad", grad, dtype=y.dtype)
    same_shape("log_softmax_backward", "grad", grad, y.shape)
    return grad - np.exp(y) * grad.sum(axis=-1, keepdims=True)


# Convolution, pooling, ReLU and batch normalisation (NCHW). Stride, padding and pooling windows are
# (h, w) pairs of ints. A "window view" is every (KH, KW) window of the zero- (or -inf-) padded input,
# stride apart, as a (N, C, Ho, Wo, KH, KW) view without copying: the im2col of the textbooks.


def _pad(x: np.ndarray, padding: tuple[int, int], value: float = 0.0) -> np.ndarray:
    ph, pw = padding
    return np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=value)


def _windows(padded: np.ndarray, window: tuple[int, int], stride: tuple[int, int]) -> np.ndarray:
    """Every ``window`` of a padded (N, C, Hp, Wp) array, ``stride`` apart: a (N, C, Ho, Wo, KH, KW) view."""
    return sliding_window_view(padded, window, axis=(2, 3))[:, :, :: stride[0], :: stride[1]]


def _col2im(cols: np.ndarray, input_shape: tuple[int, ...], stride, padding) -> np.ndarray:
    """The adjoint of ``_windows``: add each (N, C, Ho, Wo, KH, KW) window value back where it was read.

    One strided slice-add per kernel offset (i, j), so overlapping windows accumulate; then the
    padding is cropped off. Returns a new (N, C, H, W) array.
    """
    n, c, h, w = input_shape
    (sh, sw), (ph, pw) = stride, padding
    ho, wo, kh, kw = cols.shape[2:]
    padded = np.zeros((n, c, h + 2 * ph, w + 2 * pw), dtype=cols.dtype)
    for i in range(kh):
        for j in range(kw):
            padded[:, :, i : i + sh * (ho - 1) + 1 : sh, j : j + sw * (wo - 1) + 1 : sw] += cols[..., i, j]
    return np.ascontiguousarray(padded[:, :, ph : ph + h, pw : pw + w])


def conv2d_forward(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None, stride, padding) -> np.ndarray:
    """2-D convolution (cross-correlation, as in every framework), zero padding, one group.

    x: (N, C, H, W); weight: (F, C, KH, KW); bias: (F,) or None; all one dtype (float32/float64).
    stride (sh, sw) >= 1 and padding (ph, pw) >= 0 are pairs of ints.
    Returns out (N, F, Ho, Wo), Ho = (H + 2 ph - KH) // sh + 1 (likewise Wo), with
    out[n, f, i, j] = bias[f] + sum over c, a, b of weight[f, c, a, b] * xpad[n, c, i sh + a, j sw + b].
    """
    x, weight, stride, padding, _ = conv2d_inputs("conv2d_forward", x, weight, stride, padding)
    cols = _windows(_pad(x, padding), weight.shape[2:], stride)  # (N, C, Ho, Wo, KH, KW)
    out = np.einsum("nchwab,fcab->nfhw", cols, weight, optimize=True)
    if bias is not None:
        out += channel_vector("conv2d_forward", "bias", bias, weight.shape[0], x.dtype)[:, None, None]
    return np.ascontiguousarray(out)


def conv2d_fused_forward(
    x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None, stride, padding, relu: bool = False, pool=(1, 1)
) -> np.ndarray:
    """A convolution, then ReLU (when ``relu``), then a max-pool, in one call: an evaluation-mode block.

    x, weight, bias, stride, padding: as for :func:`conv2d_forward` (a batch norm in evaluation mode is
    folded into weight and bias by the caller). ``pool`` (ph, pw): non-overlapping, unpadded max-pool
    windows, (1, 1) for none, at most the convolution's (Ho, Wo). Returns (N, F, Ho // ph, Wo // pw):
    out[n, f, i, j] = max over a < ph, b < pw of relu(conv[n, f, i ph + a, j pw + b]), NaN propagating
    as in ``relu_forward`` and ``maxpool2d_forward``; trailing rows and columns that fill no window are dropped.
    """
    kernel = "conv2d_fused_forward"
    x, weight, stride, padding, _, pool, (hq, wq) = conv2d_fused_inputs(kernel, x, weight, stride, padding, pool)
    out = conv2d_forward(x, weight, bias, stride, padding)
    if relu:
        out = np.maximum(out, 0)
    n, f = out.shape[:2]
    windows = out[:, :, : hq * pool[0], : wq * pool[1]].reshape(n, f, hq, pool[0], wq, pool[1])
    return np.ascontiguousarray(windows.max(axis=(3, 5)))


def conv2d_backward(
    x: np.ndarray,
    weight: np.ndarray,
    grad_out: np.ndarray,
    stride,
    padding,
    need_input_grad: bool = True,
    need_bias_grad: bool = True,
) -> tuple[np.ndarray | None, np.ndarray, np.ndarray | None]:
    """Gradients of :func:`conv2d_forward`.

    x, weight, stride, padding: as given to the forward; grad_out: dL/dout, (N, F, Ho, Wo), same dtype.
    Returns (grad_x (N, C, H, W) or None when ``need_input_grad`` is false, grad_weight (F, C, KH, KW),
    grad_bias (F,) or None when ``need_bias_grad`` is false).
    """
    kernel = "conv2d_backward"
    x, weight, stride, padding, (ho, wo) = conv2d_inputs(kernel, x, weight, stride, padding)
    grad_out = float_input(kernel, "grad_out", grad_out, ndim=4, dtype=x.dtype)
    same_shape(kernel, "grad_out", grad_out, (x.shape[0], weight.shape[0], ho, wo))
    cols = _windows(_pad(x, padding), weight.shape[2:], stride)  # (N, C, Ho, Wo, KH, KW)
    grad_weight = np.einsum("nfhw,nchwab->fcab", grad_out, cols, optimize=True)
    grad_bias = grad_out.sum(axis=(0, 2, 3)) if need_bias_grad else None
    grad_x = None
    if need_input_grad:
        grad_cols = np.einsum("nfhw,fcab->nchwab", grad_out, weight, optimize=True)
        grad_x = _col2im(grad_cols, x.shape, stride, padding)
    return grad_x, np.ascontiguousarray(grad_weight), grad_bias


def maxpool2d_forward(x: np.ndarray, kernel, stride, padding) -> tuple[np.ndarray, np.ndarray]:
    """Max pooling over (KH, KW) windows, ``stride`` apart; padding counts as -inf.

    x: (N, C, H, W) float32/float64; kernel, stride (>= 1) and padding (0 .. kernel // 2) are pairs of ints.
    Returns (out (N, C, Ho, Wo), argmax (N, C, Ho, Wo) int64), Ho = (H + 2 ph - KH) // sh + 1, where
    argmax is the flat index row * W + col, into the input's H*W plane, of the first maximum of each
    window in row-major order (a NaN counts as the maximum).
    """
    x = float_input("maxpool2d_forward", "x", x, ndim=4)
    window, stride, padding, (ho, wo) = pool_geometry("maxpool2d_forward", x.shape, kernel, stride, padding)
    n, c, h, w = x.shape
    kh, kw = window
    cols = _windows(_pad(x, padding, -np.inf), window, stride).reshape(n, c, ho, wo, kh * kw)
    best = cols.argmax(axis=-1)  # position inside each window, row-major
    out = np.take_along_axis(cols, best[..., None], axis=-1)[..., 0]
    rows = np.arange(ho)[:, None] * stride[0] - padding[0] + best // kw
    columns = np.arange(wo) * stride[1] - padding[1] + best % kw
    return out, (rows * w + columns).astype(np.int64)


def maxpool2d_backward(grad_out: np.ndarray, argmax: np.ndarray, input_shape) -> np.ndarray:
    """Gradient of :func:`maxpool2d_forward`: each output's gradient goes to the input element it took.

    grad_out: (N, C, Ho, Wo) float32/float64; argmax: the forward's (N, C, Ho, Wo) int64 indices;
    input_shape: (N, C, H, W). Returns grad_x of ``input_shape``; where windows overlap, an input
    element that was the maximum of several windows receives the sum of their gradients.
    """
    kernel = "maxpool2d_backward"
    grad_out = float_input(kernel, "grad_out", grad_out, ndim=4)
    n, c, h, w = shape_tuple(kernel, "input_shape", input_shape, 4)
    same_shape(kernel, "grad_out", grad_out, (n, c) + grad_out.shape[2:])
    argmax = argmax_input(kernel, argmax, grad_out.shape)
    if argmax.size and (argmax.min() < 0 or argmax.max() >= h * w):
        raise ValueError(f"{kernel}: argmax holds indices outside the {h}x{w} input plane")
    plane_start = np.arange(n * c).reshape(n, c, 1, 1) * (h * w)
    # bincount sums the gradients of repeated indices (overlapping windows), like a scatter-add.
    flat = np.bincount((argmax + plane_start).ravel(), weights=grad_out.ravel(), minlength=n * c * h * w)
    return flat.reshape(n, c, h, w).astype(grad_out.dtype)


def avgpool2d_forward(x: np.ndarray, kernel, stride, padding) -> np.ndarray:
    """Average pooling over (KH, KW) windows, ``stride`` apart, zero padding counted in the average.

    x: (N, C, H, W) float32/float64; kernel, stride (>= 1) and padding (0 .. kernel // 2) are pairs of ints.
    Returns out (N, C, Ho, Wo): each window's sum divided by KH * KW (PyTorch's count_include_pad=True).
    """
    x = float_input("avgpool2d_forward", "x", x, ndim=4)
    window, stride, padding, _ = pool_geometry("avgpool2d_forward", x.shape, kernel, stride, padding)
    cols = _windows(_pad(x, padding), window, stride)  # (N, C, Ho, Wo, KH, KW)
    return cols.sum(axis=(4, 5)) / (window[0] * window[1])


def avgpool2d_backward(grad_out: np.ndarray, input_shape, kernel, stride, padding) -> np.ndarray:
    """Gradient of :func:`avgpool2d_forward`: each output's gradient, divided by KH * KW, goes to every
    input element of its window (padding's share is dropped).

    grad_out: (N, C, Ho, Wo) float32/float64; input_shape: (N, C, H, W); kernel, stride, padding as in
    the forward. Returns grad_x of ``input_shape``.
    """
    name = "avgpool2d_backward"
    grad_out = float_input(name, "grad_out", grad_out, ndim=4)
    input_shape = shape_tuple(name, "input_shape", input_shape, 4)
    window, stride, padding, (ho, wo) = pool_geometry(name, input_shape, kernel, stride, padding)
    same_shape(name, "grad_out", grad_out, input_shape[:2] + (ho, wo))
    share = grad_out / (window[0] * window[1])
    return _col2im(np.broadcast_to(share[..., None, None], share.shape + window), input_shape, stride, padding)


def global_avgpool2d_forward(x: np.ndarray) -> np.ndarray:
    """Average of each (H, W) plane. x: (N, C, H, W) float32/float64 with H, W >= 1. Returns (N, C)."""
    x = float_input("global_avgpool2d_forward", "x", x, ndim=4)
    if x.shape[2] * x.shape[3] == 0:
        raise ValueError(f"global_avgpool2d_forward: x of shape {x.shape} has empty planes")
    return x.mean(axis=(2, 3))


def global_avgpool2d_backward(grad_out: np.ndarray, input_shape) -> np.ndarray:
    """Gradient of :func:`global_avgpool2d_forward`: grad_out[n, c] / (H * W) on every element of plane (n, c).

    grad_out: (N, C) float32/float64; input_shape: (N, C, H, W). Returns grad_x of ``input_shape``.
    """
    grad_out = float_input("global_avgpool2d_backward", "grad_out", grad_out, ndim=2)
    n, c, h, w = shape_tuple("global_avgpool2d_backward", "input_shape", input_shape, 4)
    same_shape("global_avgpool2d_backward", "grad_out", grad_out, (n, c))
    return np.broadcast_to(grad_out[:, :, None, None] / (h * w), (n, c, h, w)).copy()


def relu_forward(x: np.ndarray) -> np.ndarray:
    """ReLU: y = max(x, 0) elementwise (NaN stays NaN). x: any shape, float32/float64. Returns y, same shape."""
    x = float_input("relu_forward", "x", x)
    return np.maximum(x, 0, out=np.empty_like(x))  # out=: a 0-d x gives a 0-d array, not a NumPy scalar


def relu_backward(y: np.ndarray, grad: np.ndarray) -> np.ndarray:
    """Gradient of ReLU from its output: dx = grad where y > 0, else 0.

    y: the forward result; grad: dL/dy, same shape and dtype. Returns dx, same shape.
    """
    y = float_input("relu_backward", "y", y)
    grad = float_input("relu_backward", "grad", grad, dtype=y.dtype)
    same_shape("relu_backward", "grad", grad, y.shape)
    return np.where(y > 0, grad, 0).astype(y.dtype, copy=False)


_SQRT_2_OVER_PI = 0.7978845608028654
_INV_SQRT_2 = 0.7071067811865476
_INV_SQRT_2PI = 0.3989422804014327
_GELU_CUBIC = 0.044715


def gelu_forward(x: np.ndarray, approximate: str = "none") -> np.ndarray:
    """GELU, element-wise: y = x * Phi(x), Phi the standard normal CDF.

    x: any shape, float32/float64. ``approximate="none"`` computes Phi exactly through erf,
    Phi(x) = (1 + erf(x / sqrt(2))) / 2; ``"tanh"`` uses GPT-2's 0.5 x (1 + tanh(sqrt(2/pi) (x +
    0.044715 x^3))). Returns y, a new array of x's shape and dtype.
    """
    from ..core.erf import erf  # Cody's erf in NumPy: NumPy has none

    x = float_input("gelu_forward", "x", x)
    approximate = gelu_approximation("gelu_forward", approximate)
    if approximate == "tanh":
        return 0.5 * x * (1 + np.tanh(_SQRT_2_OVER_PI * (x + _GELU_CUBIC * x**3)))
    return 0.5 * x * (1 + erf(x * _INV_SQRT_2))


def gelu_backward(x: np.ndarray, grad: np.ndarray, approximate: str = "none") -> np.ndarray:
    """Gradient of GELU from its input: dx = grad * GELU'(x).

    x: the forward's input; grad: dL/dy of the same shape and dtype. GELU'(x) = Phi(x) + x phi(x),
    phi the normal density exp(-x^2/2)/sqrt(2 pi); for ``"tanh"`` the derivative of that formula.
    Returns dx, a new array of x's shape and dtype.
    """
    from ..core.erf import erf

    x = float_input("gelu_backward", "x", x)
    grad = float_input("gelu_backward", "grad", grad, dtype=x.dtype)
    same_shape("gelu_backward", "grad", grad, x.shape)
    approximate = gelu_approximation("gelu_backward", approximate)
    if approximate == "tanh":
        t = np.tanh(_SQRT_2_OVER_PI * (x + _GELU_CUBIC * x**3))
        slope = 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * _SQRT_2_OVER_PI * (1 + 3 * _GELU_CUBIC * x * x)
    else:
        slope = 0.5 * (1 + erf(x * _INV_SQRT_2)) + x * _INV_SQRT_2PI * np.exp(-0.5 * x * x)
    return grad * slope


def _channel_axes(x: np.ndarray) -> tuple[int, ...]:
    """Every axis but the channel axis 1: the axes batch normalisation averages over."""
    return (0, *range(2, x.ndim))


def _per_channel(v: np.ndarray, x: np.ndarray) -> np.ndarray:
    """A (C,) vector shaped to broadcast along axis 1 of ``x``: (C,) for (N, C), (C, 1, 1) for (N, C, H, W)."""
    return v.reshape((-1,) + (1,) * (x.ndim - 2))


def batchnorm_forward_train(
    x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, eps: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Batch normalisation with the batch's own statistics (training mode).

    x: (N, C) or (N, C, H, W) float32/float64 (any (N, C, ...) works); gamma, beta: (C,), same dtype;
    eps > 0. Statistics are per channel over every axis but 1 (M = N*H*W values each):
    mean = average of x, var = average of (x - mean)^2 (biased, as PyTorch normalises with),
    invstd = 1 / sqrt(var + eps). Returns (y = (x - mean) * invstd * gamma + beta, same shape as x;
    mean (C,); invstd (C,)). The running statistics are the layer's business, not the kernel's.
    """
    name = "batchnorm_forward_train"
    x, gamma, beta = batchnorm_inputs(name, x, gamma=gamma, beta=beta)
    eps = epsilon(name, eps)
    if x.size == 0:
        raise ValueError(f"{name}: x of shape {x.shape} has no values to take statistics of")
    axes = _channel_axes(x)
    mean = x.mean(axis=axes)
    invstd = (1 / np.sqrt(x.var(axis=axes) + eps)).astype(x.dtype)
    y = (x - _per_channel(mean, x)) * _per_channel(invstd * gamma, x) + _per_channel(beta, x)
    return y, mean, invstd


def batchnorm_forward_eval(
    x: np.ndarray, running_mean: np.ndarray, running_var: np.ndarray, gamma: np.ndarray, beta: np.ndarray, eps: float
) -> np.ndarray:
    """Batch normalisation with fixed statistics (evaluation mode).

    x: (N, C, ...) float32/float64; running_mean, running_var, gamma, beta: (C,), same dtype.
    Returns y = (x - running_mean) / sqrt(running_var + eps) * gamma + beta, same shape as x.
    """
    name = "batchnorm_forward_eval"
    x, mean, var, gamma, beta = batchnorm_inputs(
        name, x, running_mean=running_mean, running_var=running_var, gamma=gamma, beta=beta
    )
    scale = gamma / np.sqrt(var + epsilon(name, eps))
    return x * _per_channel(scale, x) + _per_channel(beta - mean * scale, x)


def batchnorm_backward(
    grad: np.ndarray, x: np.ndarray, mean: np.ndarray, invstd: np.ndarray, gamma: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gradients of :func:`batchnorm_forward_train` (the batch statistics depend on x too).

    grad: dL/dy, shape of x; x: the forward's input; mean, invstd: its (C,) results; gamma: (C,).
    With xhat = (x - mean) * invstd and M values per channel:
    dbeta = sum of grad, dgamma = sum of grad * xhat (per channel, over every axis but 1),
    dx = gamma * invstd / M * (M * grad - dbeta - xhat * dgamma). Returns (dx, dgamma, dbeta).
    """
    name = "batchnorm_backward"
    x, mean, invstd, gamma = batchnorm_inputs(name, x, mean=mean, invstd=invstd, gamma=gamma)
    grad = float_input(name, "grad", grad, dtype=x.dtype)
    same_shape(name, "grad", grad, x.shape)
    axes = _channel_axes(x)
    count = x.size // x.shape[1]
    xhat = (x - _per_channel(mean, x)) * _per_channel(invstd, x)
    dbeta = grad.sum(axis=axes)
    dgamma = (grad * xhat).sum(axis=axes)
    dx = _per_channel(gamma * invstd / count, x) * (count * grad - _per_channel(dbeta, x) - xhat * _per_channel(dgamma, x))
    return dx, dgamma, dbeta


def layer_norm_forward(
    x: np.ndarray, weight: np.ndarray | None, bias: np.ndarray | None, eps: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Layer normalisation of each row: y = (x - mean) * invstd * weight + bias.

    x: (N, D) float32/float64, one sample per row (callers flatten the leading axes and the
    normalised axes); weight, bias: (D,) or None (no scale, no shift). mean and the biased variance
    are taken over each row; invstd = 1 / sqrt(var + eps). Returns (y (N, D), mean (N,),
    invstd (N,)), all of x's dtype; pass mean and invstd to :func:`layer_norm_backward`.
    """
    x, weight, bias = layer_norm_inputs("layer_norm_forward", x, weight, bias)
    eps = epsilon("layer_norm_forward", eps)
    mean = x.mean(axis=1)
    centred = x - mean[:, None]
    invstd = 1.0 / np.sqrt((centred * centred).mean(axis=1) + eps)
    y = centred * invstd[:, None]
    if weight is not None:
        y = y * weight
    if bias is not None:
        y = y + bias
    return y.astype(x.dtype, copy=False), mean, invstd.astype(x.dtype, copy=False)


def layer_norm_backward(
    grad: np.ndarray, x: np.ndarray, mean: np.ndarray, invstd: np.ndarray, weight: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Gradients of :func:`layer_norm_forward` with respect to x, weight and bias.

    grad: dL/dy (N, D); x, mean, invstd as the forward saw and returned them; weight (D,) or None.
    With xhat = (x - mean) * invstd and gx = grad * weight (grad when weight is None):

        dx = invstd * (gx - mean(gx) - xhat * mean(gx * xhat))      (means over each row)
        dweight = sum over rows of grad * xhat,   dbias = sum over rows of grad

    Returns (dx, dweight, dbias): dweight is None when weight is None; dbias is always the row sum of
    grad (a caller whose forward had no bias ignores it).
    """
    grad, x, mean, invstd, weight = layer_norm_saved("layer_norm_backward", grad, x, mean, invstd, weight)
    xhat = (x - mean[:, None]) * invstd[:, None]
    gx = grad if weight is None else grad * weight
    dx = invstd[:, None] * (gx - gx.mean(axis=1, keepdims=True) - xhat * (gx * xhat).mean(axis=1, keepdims=True))
    dweight = None if weight is None else (grad * xhat).sum(axis=0)
    return dx.astype(x.dtype, copy=False), dweight, grad.sum(axis=0)


def attention_forward(
    q: np.ndarray,
    k: np.ndarray,
    v: np.ndarray,
    mask: np.ndarray | None = None,
    causal: bool = False,
    scale: float | None = None,
    dropout_p: float = 0.0,
    seed=None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Scaled dot-product attention: softmax(q kᵀ · scale + mask) v, with optional dropout.

    Shapes: q (..., Tq, D), k (..., Tk, D), v (..., Tk, Dv), one float dtype, the same leading
    (batch) axes in all three: any number of them, e.g. (B, H) for multi-head attention, or none.

    - ``scale`` multiplies the scores ``q @ kᵀ``; None means 1/sqrt(D).
    - ``mask`` broadcasts to the scores' shape (..., Tq, Tk). A boolean mask says where a query may
      attend (True = may attend, as PyTorch's boolean ``attn_mask``); a float mask is added to the
      scaled scores (use -inf to forbid).
    - ``causal=True`` lets query i see key j only when j <= i + (Tk - Tq): the mask is aligned to
      the bottom right, so a single new query (Tq = 1) attending to a KV cache of Tk keys sees all
      of them. (PyTorch's ``is_causal`` is aligned top-left; the two agree when Tq == Tk.) ``mask``
      and ``causal`` may be combined: a score must pass both.
    - A row whose keys are all masked has probabilities 0 (not NaN), so its output row is 0 and no
      gradient flows through it.
    - ``dropout_p`` drops probabilities after the softmax with inverted scaling: each is kept with
      probability 1 - p and multiplied by 1/(1 - p) (0 when p == 1). The keep-mask is
      ``np.random.default_rng(seed).random(probs.shape, dtype=np.float32) >= p`` in every
      implementation, so a seed gives the same result in the reference and the compiled kernel.
      ``seed`` is anything ``np.random.default_rng`` takes: an int for a reproducible mask (a layer
      can draw one from the framework's generator), None for fresh entropy.

    Returns ``(out, probs, keep)``: out (..., Tq, Dv); probs (..., Tq, Tk), the softmax
    probabilities BEFORE dropout; keep, the boolean keep-mask of probs' shape, or None when
    dropout_p == 0. All three are new arrays; pass probs and keep to :func:`attention_backward`.
    """
    q, k, v, mask, scale, p, keep = attention_forward_inputs(
        "attention_forward", q, k, v, mask, scale, dropout_p, seed
    )
    out, probs = _attend(q, k, v, mask, causal, scale, p, keep)
    return out, probs, keep


def _attend(q, k, v, mask, causal, scale, p, keep) -> tuple[np.ndarray, np.ndarray]:
    """The arithmetic of :func:`attention_forward` on checked inputs: (out, probs)."""
    tq, tk = q.shape[-2], k.shape[-2]
    scores = (q @ np.swapaxes(k, -1, -2)) * scale  # (..., Tq, Tk)
    allowed = np.tril(np.ones((tq, tk), dtype=bool), k=tk - tq) if causal else None
    if mask is not None and mask.dtype == np.bool_:
        allowed = mask if allowed is None else allowed & mask
    elif mask is not None:
        scores = scores + mask
    if allowed is not None:
        scores = np.where(allowed, scores, -np.inf)
    row_max = scores.max(axis=-1, keepdims=True, initial=-np.inf)
    row_max = np.where(np.isfinite(row_max), row_max, 0)  # a fully masked row is all -inf
    e = np.exp(scores - row_max)
    total = e.sum(axis=-1, keepdims=True)
    probs = e / np.where(total > 0, total, 1)  # a fully masked row stays 0

    dropped = probs if keep is None else probs * keep * dropout_scale(p)
    return dropped @ v, probs


def attention_backward(
    grad_out: np.ndarray,
    q: np.ndarray,
    k: np.ndarray,
    v: np.ndarray,
    probs: np.ndarray,
    keep: np.ndarray | None,
    scale: float | None,
    dropout_p: float,
    causal: bool = False,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gradients of :func:`attention_forward` with respect to q, k and v.

    grad_out: dL/d(out), (..., Tq, Dv). q, k, v as given to the forward; probs and keep as it
    returned them; scale and dropout_p the values it used (scale None means 1/sqrt(D)). The mask
    is not needed: masked probabilities are 0, and so are their gradients. ``causal`` changes no
    result: it tells an implementation that the forward was causal, so it may skip the products
    of the masked blocks (the compiled kernel does; this one ignores it). With P = probs and
    P' = probs * keep / (1 - p) (P' = P without dropout):

        dV = P'ᵀ dO,   dP = (dO Vᵀ) * keep / (1 - p),   dS = P * (dP - rowsum(dP * P)) * scale,
        dQ = dS K,     dK = dSᵀ Q

    Returns (dq, dk, dv), new arrays of the shapes of q, k, v. No gradient is defined for a mask.
    """
    grad_out, q, k, v, probs, keep, scale, factor = attention_backward_inputs(
        "attention_backward", grad_out, q, k, v, probs, keep, scale, dropout_p
    )
    return _attend_backward(grad_out, q, k, v, probs, keep, scale, factor)


def _attend_backward(grad_out, q, k, v, probs, keep, scale, factor) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The arithmetic of :func:`attention_backward` on checked inputs: (dq, dk, dv)."""
    dropped = probs if keep is None else probs * keep * factor
    dv = np.swapaxes(dropped, -1, -2) @ grad_out  # (..., Tk, Dv)
    dprobs = grad_out @ np.swapaxes(v, -1, -2)  # (..., Tq, Tk)
    if keep is not None:
        dprobs = dprobs * keep * factor
    dscores = probs * (dprobs - (dprobs * probs).sum(axis=-1, keepdims=True)) * scale
    return dscores @ k, np.swapaxes(dscores, -1, -2) @ q, dv


def _split_packed(qkv: np.ndarray, num_heads: int) -> list[np.ndarray]:
    """(B, T, 3E) -> [q, k, v], each (B, H, T, D)."""
    b, t, three_e = qkv.shape
    return list(qkv.reshape(b, t, 3, num_heads, three_e // (3 * num_heads)).transpose(2, 0, 3, 1, 4))


def attention_packed_forward(
    qkv: np.ndarray,
    num_heads: int,
    mask: np.ndarray | None = None,
    causal: bool = False,
    scale: float | None = None,
    dropout_p: float = 0.0,
    seed=None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Multi-head self-attention on a packed projection, heads split and merged: what a Transformer layer runs.

    qkv: (B, T, 3E), every token's query, key and value side by side ([q | k | v], each E = H * D
    wide; head h is features h*D .. (h+1)*D - 1 of each part). The same as :func:`attention_forward`
    on the (B, H, T, D) heads, with the output's heads put side by side again: ``mask``, ``causal``,
    ``scale`` (1/sqrt(D) when None) and dropout as there, over the (B, H, T, T) scores.

    Returns ``(out, probs, keep)``: out (B, T, E), probs (B, H, T, T) before dropout, keep or None.
    """
    qkv, num_heads, mask, scale, p, keep = packed_forward_inputs(
        "attention_packed_forward", qkv, num_heads, mask, scale, dropout_p, seed
    )
    out, probs = _attend(*_split_packed(qkv, num_heads), mask, causal, scale, p, keep)
    b, h, t, d = out.shape
    return out.transpose(0, 2, 1, 3).reshape(b, t, h * d), probs, keep


def attention_packed_backward(
    grad_out: np.ndarray,
    qkv: np.ndarray,
    num_heads: int,
    probs: np.ndarray,
    keep: np.ndarray | None,
    scale: float | None,
    dropout_p: float,
    causal: bool = False,
) -> np.ndarray:
    """Gradient of :func:`attention_packed_forward` with respect to ``qkv``: dqkv (B, T, 3E).

    grad_out: dL/d(out), (B, T, E); the rest as for :func:`attention_backward` (``causal`` lets an
    implementation skip the masked blocks; it changes no result).
    """
    grad_out, qkv, num_heads, probs, keep, scale, factor = packed_backward_inputs(
        "attention_packed_backward", grad_out, qkv, num_heads, probs, keep, scale, dropout_p
    )
    b, t, e = grad_out.shape
    heads_grad = grad_out.reshape(b, t, num_heads, e // num_heads).transpose(0, 2, 1, 3)
    grads = _attend_backward(heads_grad, *_split_packed(qkv, num_heads), probs, keep, scale, factor)
    return np.stack([g.transpose(0, 2, 1, 3) for g in grads], axis=2).reshape(b, t, 3 * e)


def attention_cached(
    q: np.ndarray, k_cache: np.ndarray, v_cache: np.ndarray, length: int, scale: float | None = None
) -> np.ndarray:
    """Attention of the newest tokens to a KV cache, for generation (no gradient, no mask array).

    q: (..., t, D), the queries of the t newest tokens, at positions length - t .. length - 1.
    k_cache: (..., S, D) and v_cache: (..., S, Dv), the keys and values of every position so far
    (positions 0 .. length - 1 filled, the new tokens' included; the rest is ignored). New query i
    attends to positions 0 .. length - t + i, as causal attention over the whole sequence would.
    ``scale`` multiplies the scores, 1/sqrt(D) when None. Returns (..., t, Dv), a new array.
    """
    q, k_cache, v_cache, length, scale = attention_cached_inputs("attention_cached", q, k_cache, v_cache, length, scale)
    keys, values = k_cache[..., :length, :], v_cache[..., :length, :]
    scores = (q @ np.swapaxes(keys, -1, -2)) * scale  # (..., t, length)
    t = q.shape[-2]
    scores = np.where(np.tri(t, length, k=length - t, dtype=bool), scores, -np.inf)
    e = np.exp(scores - scores.max(axis=-1, keepdims=True, initial=-np.inf))  # every row sees key 0 at least
    return (e / e.sum(axis=-1, keepdims=True)) @ values


def sgd_step(
    param: np.ndarray,
    grad: np.ndarray,
    momentum_buffer: np.ndarray | None,
    lr: float,
    momentum: float = 0.0,
    dampening: float = 0.0,
    weight_decay: float = 0.0,
    nesterov: bool = False,
    first_step: bool = False,
) -> None:
    """One SGD step, in place, exactly as torch.optim.SGD computes it.

    param, grad, momentum_buffer: arrays of one shape and float dtype; param and momentum_buffer
    are C-contiguous and updated in place (a strided view is rejected: a copy would be updated
    instead); grad is only read. momentum_buffer may be None when momentum == 0. Per element:

        d = grad + weight_decay * param
        if momentum != 0:
            buf = d                                         (first_step: PyTorch's buffer starts as a copy of d)
            buf = momentum * buf + (1 - dampening) * d      (every later step)
            d = d + momentum * buf if nesterov else buf
        param -= lr * d

    Nesterov needs momentum > 0 and dampening == 0. Returns None.
    """
    param, grad, buf = sgd_inputs("sgd_step", param, grad, momentum_buffer, momentum, dampening, nesterov)
    d = grad + weight_decay * param if weight_decay != 0 else grad
    if momentum != 0:
        if first_step:
            buf[...] = d
        else:
            buf *= momentum
            buf += (1 - dampening) * d
        d = d + momentum * buf if nesterov else buf
    param -= lr * d


def adam_step(
    param: np.ndarray,
    grad: np.ndarray,
    exp_avg: np.ndarray,
    exp_avg_sq: np.ndarray,
    step: int,
    lr: float,
    beta1: float,
    beta2: float,
    eps: float,
    weight_decay: float = 0.0,
    decoupled_weight_decay: bool = False,
    max_exp_avg_sq: np.ndarray | None = None,
) -> None:
    """One Adam (or AdamW, or AMSGrad) step, in place, exactly as torch.optim.Adam/AdamW compute it.

    param, exp_avg, exp_avg_sq (and max_exp_avg_sq): C-contiguous arrays of grad's shape and
    dtype, updated in place (the moments start at zeros); grad is only read. ``step`` is the
    1-based count of this step (the count after incrementing). Per element:

        if weight_decay:  param *= 1 - lr * weight_decay         (decoupled_weight_decay: AdamW)
                          or grad = grad + weight_decay * param  (Adam's L2 penalty)
        exp_avg    += (1 - beta1) * (grad - exp_avg)
        exp_avg_sq  = beta2 * exp_avg_sq + (1 - beta2) * grad²
        second      = max_exp_avg_sq = max(max_exp_avg_sq, exp_avg_sq)   (AMSGrad, when given)
                      or exp_avg_sq
        denom       = sqrt(second) / sqrt(1 - beta2**step) + eps
        param      -= lr / (1 - beta1**step) * exp_avg / denom

    Returns None.
    """
    param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, step = adam_inputs(
        "adam_step", param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, step
    )
    if weight_decay != 0 and decoupled_weight_decay:
        param *= 1 - lr * weight_decay
    elif weight_decay != 0:
        grad = grad + weight_decay * param
    exp_avg += (1 - beta1) * (grad - exp_avg)
    exp_avg_sq *= beta2
    exp_avg_sq += (1 - beta2) * grad * grad
    second = exp_avg_sq
    if max_exp_avg_sq is not None:
        second = np.maximum(max_exp_avg_sq, exp_avg_sq, out=max_exp_avg_sq)
    denom = np.sqrt(second) / np.sqrt(1 - beta2**step) + eps
    param -= lr / (1 - beta1**step) * exp_avg / denom


def rmsprop_step(
    param: np.ndarray,
    grad: np.ndarray,
    square_avg: np.ndarray,
    lr: float,
    alpha: float = 0.99,
    eps: float = 1e-8,
    weight_decay: float = 0.0,
    momentum: float = 0.0,
    momentum_buffer: np.ndarray | None = None,
    centered: bool = False,
    grad_avg: np.ndarray | None = None,
) -> None:
    """One RMSprop step, in place, exactly as torch.optim.RMSprop computes it.

    param, square_avg, momentum_buffer (needed when momentum > 0) and grad_avg (needed when
    centered): C-contiguous arrays of grad's shape and dtype, updated in place (all start at
    zeros); grad is only read. Per element:

        g = grad + weight_decay * param
        square_avg = alpha * square_avg + (1 - alpha) * g²
        if centered:  grad_avg += (1 - alpha) * (g - grad_avg)
                      avg = sqrt(square_avg - grad_avg²) + eps
        else:         avg = sqrt(square_avg) + eps
        if momentum > 0:  buf = momentum * buf + g / avg;  param -= lr * buf
        else:             param -= lr * g / avg

    Returns None.
    """
    param, grad, square_avg, buf, grad_avg = rmsprop_inputs(
        "rmsprop_step", param, grad, square_avg, momentum, momentum_buffer, centered, grad_avg
    )
    if weight_decay != 0:
        grad = grad + weight_decay * param
    square_avg *= alpha
    square_avg += (1 - alpha) * grad * grad
    if centered:
        grad_avg += (1 - alpha) * (grad - grad_avg)
        avg = np.sqrt(square_avg - grad_avg * grad_avg) + eps
    else:
        avg = np.sqrt(square_avg) + eps
    if momentum > 0:
        buf *= momentum
        buf += grad / avg
        param -= lr * buf
    else:
        param -= lr * grad / avg


# Integer kernels of the quantized layers (lesson 12). Values are int8; products are accumulated
# exactly in int32 (computed here in int64, which cannot overflow, then narrowed: the contracts
# bound the reduction depth so the narrowing never wraps). A compiled twin must match these
# bit for bit, whatever route it takes to the same integers.


def int8_linear(x: np.ndarray, x_zero: int, weight: np.ndarray, bias: np.ndarray | None) -> np.ndarray:
    """Integer matrix product of an affine-quantized input and symmetric int8 weights.

    x: (N, K) int8, the input's quantized values; x_zero: its zero point, an int in [-128, 127];
    weight: (F, K) int8 (zero point 0); bias: (F,) int32 within +-2**30, or None. K <= 32,768.
    Returns out (N, F) int32, out[n, f] = bias[f] + sum over k of (x[n, k] - x_zero) * weight[f, k],
    exactly (no rounding, no wraparound).
    """
    x, x_zero, weight, bias = int8_linear_inputs("int8_linear", x, x_zero, weight, bias)
    acc = (x.astype(np.int64) - x_zero) @ weight.astype(np.int64).T
    if bias is not None:
        acc += bias
    return acc.astype(np.int32)


def int8_conv2d(x: np.ndarray, x_zero: int, weight: np.ndarray, bias: np.ndarray | None, stride, padding) -> np.ndarray:
    """Integer 2-D convolution (cross-correlation) of an affine-quantized input and symmetric int8 weights.

    x: (N, C, H, W) int8 with zero point x_zero in [-128, 127]; weight: (F, C, KH, KW) int8;
    bias: (F,) int32 within +-2**30, or None; stride (sh, sw) >= 1 and padding (ph, pw) >= 0 are
    pairs of ints; C * KH * KW <= 32,768. Padding holds x_zero, the quantized value of a real zero,
    so it adds nothing. Returns out (N, F, Ho, Wo) int32 (Ho as in conv2d_forward), with
    out[n, f, i, j] = bias[f] + sum over c, a, b of (xpad[n, c, i sh + a, j sw + b] - x_zero) * weight[f, c, a, b].
    """
    x, x_zero, weight, bias, stride, padding, _ = int8_conv_inputs("int8_conv2d", x, x_zero, weight, bias, stride, padding)
    centred = _pad(x.astype(np.int64) - x_zero, padding)  # a real zero is 0 once the zero point is taken off
    cols = _windows(centred, weight.shape[2:], stride)  # (N, C, Ho, Wo, KH, KW)
    acc = np.einsum("nchwab,fcab->nfhw", cols, weight.astype(np.int64), optimize=True)
    if bias is not None:
        acc += bias[:, None, None]
    return np.ascontiguousarray(acc.astype(np.int32))


def int8_requantize(acc: np.ndarray, multiplier: np.ndarray, shift: np.ndarray, out_zero: int, relu: bool = False) -> np.ndarray:
    """Rescale int32 accumulators to int8 with integer arithmetic only (gemmlowp's fixed-point scheme).

    acc: (N, F) or (N, F, ...) int32; multiplier, shift: (F,) int32, one pair per channel (axis 1),
    multiplier in [0, 2**31) and shift in [1, 62], standing for the real factor multiplier / 2**shift
    (= input scale * weight scale / output scale); out_zero: the output's zero point in [-128, 127].
    Returns int8 of acc's shape: clamp(round_half_up(acc * multiplier / 2**shift) + out_zero, low, 127),
    where round_half_up(v / 2**s) = (v + 2**(s-1)) >> s (an arithmetic shift: floor division) and
    low = out_zero with ``relu`` (a fused ReLU: nothing below the real zero), else -128.
    """
    acc, multiplier, shift, out_zero = requantize_inputs("int8_requantize", acc, multiplier, shift, out_zero)
    per_channel = (1, acc.shape[1]) + (1,) * (acc.ndim - 2)
    m = multiplier.astype(np.int64).reshape(per_channel)
    s = shift.astype(np.int64).reshape(per_channel)
    scaled = (acc.astype(np.int64) * m + (np.int64(1) << (s - 1))) >> s
    return np.clip(scaled + out_zero, out_zero if relu else -128, 127).astype(np.int8)


def int8_maxpool2d(x: np.ndarray, kernel, stride, padding) -> np.ndarray:
    """Max pooling of int8 values over (KH, KW) windows, ``stride`` apart; padding never wins.

    x: (N, C, H, W) int8; kernel, stride (>= 1) and padding (0 .. kernel // 2) are pairs of ints.
    Returns (N, C, Ho, Wo) int8, Ho = (H + 2 ph - KH) // sh + 1. Quantization is monotonic, so the
    maximum of quantized values is the quantized maximum: the pool needs no scale or zero point.
    """
    x, window, stride, padding, _ = int8_maxpool_inputs("int8_maxpool2d", x, kernel, stride, padding)
    cols = _windows(_pad(x, padding, -128), window, stride)  # -128 is never above a real value
    return np.ascontiguousarray(cols.max(axis=(-2, -1)))
