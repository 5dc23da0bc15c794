"""Normalisation layers (lessons 04 and 06): LayerNorm, and BatchNorm through the kernel registry.

Both subtract a mean and divide by a standard deviation, then scale and shift by learned
``weight`` (gamma) and ``bias`` (beta):

    y = (x - mean) / sqrt(var + eps) * gamma + beta

They differ in *what* is averaged. LayerNorm averages over each sample's last dimensions, so it
behaves the same in training and evaluation. BatchNorm averages each channel over the batch (and
the image positions); evaluation uses running averages of those statistics instead, updated in
training with PyTorch's rule ``running = (1 - momentum) * running + momentum * batch`` (the
running variance takes the *unbiased* batch variance).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from . import kernels
from .autograd import Function
from .exercises import exercise
from .init import ones_, zeros_
from .module import Module, Parameter, as_input
from .tensor import Tensor


def _shape_tuple(name: str, shape: int | Sequence[int]) -> tuple[int, ...]:
    shape = (shape,) if isinstance(shape, (int, np.integer)) else tuple(shape)
    if not shape or not all(isinstance(n, (int, np.integer)) and n > 0 for n in shape):
        raise ValueError(f"{name}: normalized_shape must be positive integers, got {shape}")
    return tuple(int(n) for n in shape)


# -- LayerNorm --------------------------------------------------------------------------------------
class LayerNormFunction(Function):
    """y = xhat * gamma + beta, xhat = (x - mean) * invstd over the last ``ndim`` axes, on the layer-norm kernels.

    dL/dx = invstd * (gx - mean(gx) - xhat * mean(gx * xhat)), gx = g * gamma: the two means
    remove the parts of the gradient that only shift or rescale a sample, which the normalisation
    undoes anyway. The kernels see (samples, features): the leading axes and the normalised axes
    each flattened into one.
    """

    @staticmethod
    def forward(ctx, x, weight, bias, ndim, eps):
        features = int(np.prod(x.shape[x.ndim - ndim:]))
        rows = x.reshape(-1, features)
        flat = [None if p is None else p.reshape(-1) for p in (weight, bias)]
        y, mean, invstd = kernels.layer_norm_forward(rows, flat[0], flat[1], eps)
        ctx.save_for_backward(rows, mean, invstd, flat[0])
        ctx.shapes = (x.shape, None if weight is None else weight.shape, None if bias is None else bias.shape)
        return y.reshape(x.shape)

    @staticmethod
    def backward(ctx, grad):
        rows, mean, invstd, weight = ctx.saved
        x_shape, w_shape, b_shape = ctx.shapes
        dx, dweight, dbias = kernels.layer_norm_backward(grad.reshape(rows.shape), rows, mean, invstd, weight)
        _, need_w, need_b = ctx.needs_input_grad
        return (dx.reshape(x_shape), dweight.reshape(w_shape) if need_w else None,
                dbias.reshape(b_shape) if need_b else None)


@exercise
def layer_norm(
    x: Tensor,
    normalized_shape: int | Sequence[int],
    weight: Tensor | None = None,
    bias: Tensor | None = None,
    eps: float = 1e-5,
) -> Tensor:
    """Normalise each sample over its last dimensions ``normalized_shape``, then scale and shift.

    Parameters
    ----------
    x : Tensor
        Float input of shape (..., *normalized_shape).
    normalized_shape : int or tuple of int
        The trailing dimensions to normalise over (usually just the feature size).
    weight, bias : Tensor, optional
        gamma and beta, of shape ``normalized_shape``.
    eps : float
        Added to the variance before the square root (no division by zero for a constant sample).

    Returns
    -------
    Tensor
        The same shape as ``x``: each sample has mean 0 and variance 1 (before gamma and beta).
    """
    shape = _shape_tuple("layer_norm", normalized_shape)
    x_shape = np.shape(getattr(x, "data", x))
    if tuple(x_shape[len(x_shape) - len(shape):]) != shape or len(x_shape) < len(shape):
        raise ValueError(f"layer_norm: input of shape {x_shape} does not end with normalized_shape {shape}")
    return LayerNormFunction.apply(x, weight, bias, ndim=len(shape), eps=float(eps))


class LayerNorm(Module):
    """:func:`layer_norm` with learned ``weight`` (ones) and ``bias`` (zeros) of shape ``normalized_shape``.

    ``bias=False`` keeps the learned scale but no shift, as PyTorch's ``LayerNorm(..., bias=False)``
    (GPT-style models such as nanoGPT train without it).
    """

    def __init__(self, normalized_shape: int | Sequence[int], eps: float = 1e-5, elementwise_affine: bool = True,
                 bias: bool = True):
        super().__init__()
        self.normalized_shape = _shape_tuple("LayerNorm", normalized_shape)
        self.eps = float(eps)
        self.elementwise_affine = bool(elementwise_affine)
        if self.elementwise_affine:
            self.weight = Parameter(np.ones(self.normalized_shape, dtype=np.float32))
        else:
            self.register_parameter("weight", None)
        if self.elementwise_affine and bias:
            self.bias = Parameter(np.zeros(self.normalized_shape, dtype=np.float32))
        else:
            self.register_parameter("bias", None)

    def forward(self, x: Tensor) -> Tensor:
        x = as_input(self, x, self.weight.dtype if self.weight is not None else getattr(x, "dtype", np.float32))
        n = len(self.normalized_shape)
        if x.ndim < n or x.shape[x.ndim - n:] != self.normalized_shape:
            raise ValueError(
                f"{self.label()} got input of shape {x.shape}; its last dimensions must be {self.normalized_shape}"
            )
        return layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)  # a student's, when registered

    def extra_repr(self) -> str:
        affine = "" if self.elementwise_affine else ", elementwise_affine=False"
        return f"{self.normalized_shape}, eps={self.eps}{affine}" + ("" if self.bias is not None or not self.elementwise_affine else ", bias=False")


# -- BatchNorm --------------------------------------------------------------------------------------
def _channel_shape(x: np.ndarray) -> tuple[int, ...]:
    """(1, C, 1, ...): a per-channel array reshaped to broadcast against x."""
    return (1, x.shape[1]) + (1,) * (x.ndim - 2)


def _as_kernel_layout(x: np.ndarray) -> np.ndarray:
    """The kernels take (N, C) or (N, C, H, W); a sequence (N, C, L) is viewed as (N, C, L, 1)."""
    return x[..., None] if x.ndim == 3 else x


def _affine(x: np.ndarray, gamma: np.ndarray | None, beta: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    channels = x.shape[1]
    return (
        gamma if gamma is not None else np.ones(channels, dtype=x.dtype),
        beta if beta is not None else np.zeros(channels, dtype=x.dtype),
    )


class BatchNormTrainFunction(Function):
    """Batch statistics per channel (axis 1); updates the running statistics passed in, in place."""

    @staticmethod
    def forward(ctx, x, gamma, beta, running_mean, running_var, momentum, eps):
        shape = x.shape
        x4 = _as_kernel_layout(x)
        g, b = _affine(x, gamma, beta)
        y, mean, invstd = kernels.batchnorm_forward_train(x4, g, b, eps)
        if running_mean is not None:
            count = x.size // x.shape[1]
            biased_var = 1.0 / np.square(invstd, dtype=np.float64) - eps
            running_mean *= 1 - momentum
            running_mean += momentum * mean
            running_var *= 1 - momentum
            running_var += momentum * biased_var * (count / (count - 1))
        ctx.save_for_backward(x4, mean, invstd, g)
        return y.reshape(shape)

    @staticmethod
    def backward(ctx, grad):
        x4, mean, invstd, g = ctx.saved
        dx, dgamma, dbeta = kernels.batchnorm_backward(_as_kernel_layout(grad), x4, mean, invstd, g)
        return dx.reshape(grad.shape), dgamma, dbeta


class BatchNormEvalFunction(Function):
    """y = (x - running_mean) / sqrt(running_var + eps) * gamma + beta: a fixed per-channel affine map."""

    @staticmethod
    def forward(ctx, x, gamma, beta, running_mean, running_var, eps):
        g, b = _affine(x, gamma, beta)
        y = kernels.batchnorm_forward_eval(_as_kernel_layout(x), running_mean, running_var, g, b, eps)
        invstd = (1.0 / np.sqrt(running_var + eps)).astype(x.dtype)
        ctx.save_for_backward(x, running_mean, invstd, g)
        return y.reshape(x.shape)

    @staticmethod
    def backward(ctx, grad):
        x, mean, invstd, g = ctx.saved
        shape = _channel_shape(x)
        axes = (0,) + tuple(range(2, x.ndim))
        xhat = (x - mean.reshape(shape)) * invstd.reshape(shape)
        _, need_g, need_b = ctx.needs_input_grad
        dx = grad * (g * invstd).reshape(shape)
        return dx, ((grad * xhat).sum(axis=axes) if need_g else None), (grad.sum(axis=axes) if need_b else None)


def batch_norm(
    x: Tensor,
    running_mean: Tensor | None,
    running_var: Tensor | None,
    weight: Tensor | None = None,
    bias: Tensor | None = None,
    training: bool = False,
    momentum: float = 0.1,
    eps: float = 1e-5,
) -> Tensor:
    """Normalise each channel (axis 1) of (N, C), (N, C, L) or (N, C, H, W) input, as PyTorch's ``F.batch_norm``.

    In training, the statistics of this batch are used and ``running_mean``/``running_var`` (when
    given) are updated in place; in evaluation the running statistics are used.
    """
    data = x.data if isinstance(x, Tensor) else np.asarray(x)
    if data.ndim not in (2, 3, 4):
        raise ValueError(f"batch_norm: expected (N, C), (N, C, L) or (N, C, H, W) input, got shape {data.shape}")
    if training:
        if data.size // data.shape[1] <= 1:
            raise ValueError(f"batch_norm: input of shape {data.shape} has one value per channel; training needs more")
        rm = running_mean.data if running_mean is not None else None
        rv = running_var.data if running_var is not None else None
        return BatchNormTrainFunction.apply(x, weight, bias, running_mean=rm, running_var=rv, momentum=momentum, eps=eps)
    if running_mean is None or running_var is None:
        raise ValueError("batch_norm: evaluation (training=False) needs running_mean and running_var")
    return BatchNormEvalFunction.apply(x, weight, bias, running_mean=running_mean.data, running_var=running_var.data, eps=eps)


class BatchNorm(Module):
    """Shared by BatchNorm1D and BatchNorm2D; a subclass sets ``ranks``, the input ranks it accepts.

    Parameters
    ----------
    num_features : int
        C, the number of channels (axis 1 of the input).
    eps : float
        Added to the variance before the square root.
    momentum : float or None
        Weight of each new batch in the running statistics; None keeps a plain cumulative average.
    affine : bool
        Learn ``weight`` (gamma, ones) and ``bias`` (beta, zeros).
    track_running_stats : bool
        Keep ``running_mean``/``running_var`` buffers for evaluation; without them, evaluation
        uses batch statistics too.
    """

    ranks: tuple[int, ...] = ()
    layout = ""

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float | None = 0.1,
        affine: bool = True,
        track_running_stats: bool = True,
    ):
        super().__init__()
        if not isinstance(num_features, (int, np.integer)) or num_features <= 0:
            raise ValueError(f"{type(self).__name__}: num_features must be a positive integer, got {num_features!r}")
        self.num_features = int(num_features)
        self.eps, self.momentum = float(eps), momentum
        self.affine, self.track_running_stats = bool(affine), bool(track_running_stats)
        if self.affine:
            self.weight = Parameter(np.empty(self.num_features, dtype=np.float32))
            self.bias = Parameter(np.empty(self.num_features, dtype=np.float32))
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        if self.track_running_stats:
            self.register_buffer("running_mean", np.zeros(self.num_features, dtype=np.float32))
            self.register_buffer("running_var", np.ones(self.num_features, dtype=np.float32))
            self.register_buffer("num_batches_tracked", np.array(0, dtype=np.int64))
        else:
            for name in ("running_mean", "running_var", "num_batches_tracked"):
                self.register_buffer(name, None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        if self.affine:
            ones_(self.weight)
            zeros_(self.bias)
        if self.track_running_stats:
            zeros_(self.running_mean)
            ones_(self.running_var)
            zeros_(self.num_batches_tracked)

    def _check(self, x: Any) -> Tensor:
        dtype = self.weight.dtype if self.affine else (self.running_mean.dtype if self.track_running_stats else np.float32)
        x = as_input(self, x, dtype)
        if x.ndim not in self.ranks:
            raise ValueError(f"{self.label()} got input of shape {x.shape}; expected {self.layout}")
        if x.shape[1] != self.num_features:
            raise ValueError(
                f"{self.label()} got input of shape {x.shape} with {x.shape[1]} channels; expected {self.num_features}"
            )
        return x

    def _count_batch(self) -> float:
        """Count one more training batch; returns the weight it gets in the running statistics."""
        momentum = self.momentum
        if self.training and self.track_running_stats:
            self.num_batches_tracked.data += 1
            if momentum is None:
                momentum = 1.0 / float(self.num_batches_tracked.data)
        return momentum if momentum is not None else 0.0

    def forward(self, x: Tensor) -> Tensor:
        x = self._check(x)
        use_batch_stats = self.training or not self.track_running_stats
        momentum = self._count_batch()
        if use_batch_stats and x.size // x.shape[1] <= 1:
            raise ValueError(f"{self.label()} got input of shape {x.shape}: one value per channel; training needs a batch")
        update = self.training and self.track_running_stats
        return batch_norm(
            x,
            self.running_mean if update or not use_batch_stats else None,
            self.running_var if update or not use_batch_stats else None,
            self.weight,
            self.bias,
            training=use_batch_stats,
            momentum=momentum,
            eps=self.eps,
        )

    def eval_affine(self) -> tuple[np.ndarray, np.ndarray]:
        """The per-channel ``(scale, shift)`` of evaluation mode's map ``y = x * scale + shift``.

        With running statistics, BatchNorm in evaluation is a fixed affine map per channel:
        ``scale = gamma / sqrt(running_var + eps)`` and ``shift = beta - running_mean * scale``, so a
        layer before it can absorb it (a convolution scales each filter by ``scale``). Computed in
        float64 from the current statistics, returned in the layer's dtype. Raises ValueError when
        the layer keeps no running statistics (it then normalises with each batch's own).
        """
        if not self.track_running_stats:
            raise ValueError(f"{self.label()}.eval_affine: the layer keeps no running statistics, so its evaluation "
                             "mode normalises with each batch's own and is no fixed map")
        dtype = self.running_mean.dtype
        scale = 1.0 / np.sqrt(self.running_var.data.astype(np.float64) + self.eps)
        shift = np.zeros_like(scale)
        if self.affine:
            scale = scale * self.weight.data
            shift = self.bias.data.astype(np.float64)
        shift = shift - self.running_mean.data * scale
        return scale.astype(dtype), shift.astype(dtype)

    def extra_repr(self) -> str:
        return f"{self.num_features}, eps={self.eps}, momentum={self.momentum}"


class BatchNorm1D(BatchNorm):
    """Batch normalisation of (N, C) features or (N, C, L) sequences, per channel C (alias ``BatchNorm1d``)."""

    ranks = (2, 3)
    layout = "(N, C) or (N, C, L)"


BatchNorm1d = BatchNorm1D
