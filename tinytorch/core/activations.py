"""Activation functions (lesson 03): the non-linearities between layers, as functions and as modules.

Without a non-linearity, a stack of Dense layers is one matrix product in disguise. Each
activation here exists twice: a function (``relu(x)``, also in ``tinytorch.functional``) and a
:class:`~tinytorch.core.module.Module` (``ReLU()``) to put in a ``Sequential``.

>>> import tinytorch as tt
>>> x = tt.tensor([-2.0, -0.5, 0.0, 1.5])
>>> relu(x)
Tensor([0. , 0. , 0. , 1.5])
>>> leaky_relu(x, 0.1)
Tensor([-0.2 , -0.05,  0.  ,  1.5 ])
>>> softmax(tt.tensor([1.0, 2.0, 3.0])).numpy().round(3)
array([0.09 , 0.245, 0.665], dtype=float32)
"""

from __future__ import annotations

import numpy as np

from . import kernels
from .._kernels.contracts import GELU_APPROXIMATIONS
from .autograd import Function
from .exercises import exercise
from .module import Module
from .ops.elementwise import ReLU as _ReLUOp
from .ops.elementwise import Sigmoid as _SigmoidOp
from .ops.elementwise import Tanh as _TanhOp
from .ops.softmax import LogSoftmax as _LogSoftmaxOp
from .ops.softmax import Softmax as _SoftmaxOp
from .tensor import Tensor


def _float_array(op: str, x: np.ndarray) -> np.ndarray:
    if x.dtype.kind != "f":
        raise TypeError(f"{op}: needs a float tensor, got dtype {x.dtype}")
    return x


class LeakyReLUFunction(Function):
    """y = x where x > 0, else slope * x;  dy/dx = 1 or slope."""

    @staticmethod
    def forward(ctx, x, negative_slope):
        positive = _float_array("leaky_relu", x) > 0  # one byte per element, kept for backward
        ctx.save_for_backward(positive)
        ctx.slope = negative_slope
        return _scale_negatives(x, positive, negative_slope)

    @staticmethod
    def backward(ctx, grad):
        (positive,) = ctx.saved
        return _scale_negatives(grad, positive, ctx.slope)


def _scale_negatives(values: np.ndarray, keep: np.ndarray, slope: float) -> np.ndarray:
    """``values`` where ``keep``, else ``slope * values``: one new array, no temporaries."""
    out = np.multiply(values, values.dtype.type(slope))
    np.copyto(out, values, where=keep)
    return out


class GELUFunction(Function):
    """y = x * Phi(x) (exact, through erf) or its tanh approximation, on the GELU kernels."""

    @staticmethod
    def forward(ctx, x, approximate):
        ctx.save_for_backward(_float_array("gelu", x))
        ctx.approximate = approximate
        return kernels.gelu_forward(x, approximate)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved
        return kernels.gelu_backward(x, grad, ctx.approximate)


# -- functions --------------------------------------------------------------------------------------
def relu(x: Tensor) -> Tensor:
    """max(x, 0) element-wise. Its gradient is 1 where x > 0 and 0 elsewhere (0 at x = 0 itself).

    >>> relu(Tensor([-1.0, 0.0, 2.0]))
    Tensor([0., 0., 2.])
    """
    return _ReLUOp.apply(x)


@exercise
def leaky_relu(x: Tensor, negative_slope: float = 0.01) -> Tensor:
    """x where x > 0, else ``negative_slope * x``: like ReLU, but negative inputs keep a small gradient.

    Parameters
    ----------
    x : Tensor
        Float input of any shape.
    negative_slope : float
        The slope for x <= 0 (0.01 by default, as in PyTorch).

    Returns
    -------
    Tensor
        The same shape and dtype as ``x``.
    """
    return LeakyReLUFunction.apply(x, negative_slope=float(negative_slope))


def sigmoid(x: Tensor) -> Tensor:
    """1 / (1 + exp(-x)), computed without overflow for large negative x; squashes into (0, 1)."""
    return _SigmoidOp.apply(x)


def tanh(x: Tensor) -> Tensor:
    """The hyperbolic tangent, squashing into (-1, 1): ``2 * sigmoid(2x) - 1``."""
    return _TanhOp.apply(x)


def gelu(x: Tensor, approximate: str = "none") -> Tensor:
    """Gaussian Error Linear Unit: ``x * Phi(x)``, with Phi the standard normal CDF.

    ``approximate="none"`` computes Phi exactly through erf; ``"tanh"`` uses
    ``0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x**3)))`` (the form GPT-2 used), which differs by
    less than 1e-3.
    """
    if approximate not in GELU_APPROXIMATIONS:
        raise ValueError(f"gelu: approximate must be one of {GELU_APPROXIMATIONS}, got {approximate!r}")
    return GELUFunction.apply(x, approximate=approximate)


@exercise
def softmax(x: Tensor, axis: int = -1) -> Tensor:
    """Probabilities along ``axis``: ``exp(x) / sum(exp(x))``, each slice summing to 1.

    Computed as ``exp(x - max) / sum(exp(x - max))``: the same number (the factor ``exp(-max)``
    cancels), but ``exp`` never sees a large positive input, so it cannot overflow.

    Parameters
    ----------
    x : Tensor
        Float scores (logits), at least 1-D.
    axis : int
        The axis whose entries become a probability distribution (the last by default).

    Returns
    -------
    Tensor
        The same shape and dtype as ``x``, with entries in [0, 1].
    """
    return _SoftmaxOp.apply(x, axis=axis)


@exercise
def log_softmax(x: Tensor, axis: int = -1) -> Tensor:
    """log(softmax(x)) along ``axis``, computed stably as ``x - max - log(sum(exp(x - max)))``.

    Taking the log of a softmax would give ``log(0) = -inf`` for probabilities that underflow;
    this form stays finite.

    Parameters
    ----------
    x : Tensor
        Float scores (logits), at least 1-D.
    axis : int
        The axis to normalise over (the last by default).

    Returns
    -------
    Tensor
        Log-probabilities, the same shape and dtype as ``x``; ``exp`` of each slice sums to 1.
    """
    return _LogSoftmaxOp.apply(x, axis=axis)


# -- modules ----------------------------------------------------------------------------------------
class ReLU(Module):
    """:func:`relu` as a layer."""

    def forward(self, x: Tensor) -> Tensor:
        return relu(x)


class LeakyReLU(Module):
    """:func:`leaky_relu` as a layer."""

    def __init__(self, negative_slope: float = 0.01):
        super().__init__()
        self.negative_slope = float(negative_slope)

    def forward(self, x: Tensor) -> Tensor:
        return leaky_relu(x, self.negative_slope)

    def extra_repr(self) -> str:
        return f"negative_slope={self.negative_slope}"


class Sigmoid(Module):
    """:func:`sigmoid` as a layer."""

    def forward(self, x: Tensor) -> Tensor:
        return sigmoid(x)


class Tanh(Module):
    """:func:`tanh` as a layer."""

    def forward(self, x: Tensor) -> Tensor:
        return tanh(x)


class GELU(Module):
    """:func:`gelu` as a layer; ``approximate`` is ``"none"`` (exact) or ``"tanh"``."""

    def __init__(self, approximate: str = "none"):
        super().__init__()
        if approximate not in GELU_APPROXIMATIONS:
            raise ValueError(f"GELU: approximate must be one of {GELU_APPROXIMATIONS}, got {approximate!r}")
        self.approximate = approximate

    def forward(self, x: Tensor) -> Tensor:
        return gelu(x, self.approximate)

    def extra_repr(self) -> str:
        return f"approximate={self.approximate!r}"


class Softmax(Module):
    """:func:`softmax` along ``axis`` as a layer."""

    def __init__(self, axis: int = -1):
        super().__init__()
        self.axis = axis

    def forward(self, x: Tensor) -> Tensor:
        return softmax(x, self.axis)

    def extra_repr(self) -> str:
        return f"axis={self.axis}"


class LogSoftmax(Softmax):
    """:func:`log_softmax` along ``axis`` as a layer (pair it with a negative log-likelihood loss)."""

    def forward(self, x: Tensor) -> Tensor:
        return log_softmax(x, self.axis)
