"""Every kernel in plain NumPy: the specification of each kernel, and the fallback backend.

A compiled module in this package defines some of these functions with the same names, arguments
and results; ``tinytorch.core.kernels`` picks which one runs. Read a docstring here to learn what a
kernel computes; read the function body to see how, in a few lines of NumPy.

Conventions for every kernel: inputs are NumPy arrays, float32 or float64 (one dtype per call);
results are new arrays of the same dtype unless a docstring says a kernel works in place.
"""

import numpy as np

from .contracts import float_input, same_shape

__all__ = [
    "softmax_forward",
    "softmax_backward",
    "log_softmax_forward",
    "log_softmax_backward",
]


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
