"""Loss functions: one number that says how wrong the model is (taught in lesson 11).

Each loss is a function (``cross_entropy``, ``mse_loss``, ...; also in ``tinytorch.functional``)
and a :class:`~tinytorch.core.module.Module` that calls it (``CrossEntropyLoss()``, ...). Every
loss takes ``reduction``: ``"mean"`` (default), ``"sum"`` or ``"none"`` (one loss per sample).

Cross-entropy is fused: :func:`softmax_cross_entropy` computes the per-sample losses *and* their
gradient ``softmax(logits) - target`` in one pass from a stable log-softmax, so training never
forms ``log(softmax(x))`` (which overflows for large logits) nor a graph of small ops.

>>> import tinytorch as tt
>>> logits = tt.tensor([[2.0, 0.5, -1.0], [0.1, 0.2, 3.0]], requires_grad=True)
>>> loss = CrossEntropyLoss()(logits, tt.tensor([0, 2]))
>>> round(loss.item(), 4)
0.1755
>>> loss.backward()
>>> logits.grad.shape
(2, 3)
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import kernels
from .autograd import Function
from .exercises import exercise
from .module import Module
from .tensor import Tensor, log, relu

__all__ = [
    "softmax_cross_entropy",
    "cross_entropy",
    "nll_loss",
    "mse_loss",
    "binary_cross_entropy",
    "binary_cross_entropy_with_logits",
    "CrossEntropyLoss",
    "NLLLoss",
    "MSELoss",
    "MeanSquaredError",
    "BinaryCrossEntropyLoss",
    "BinaryCrossEntropy",
    "BCELoss",
    "BCEWithLogitsLoss",
]

REDUCTIONS = ("mean", "sum", "none")
# log(p) is clamped at -100 as in PyTorch's BCE, so p = 0 gives a large finite loss, not inf.
LOG_FLOOR = -100.0
BCE_EPS = float(np.float32(1e-12))  # PyTorch's floor on p (1 - p) in the gradient of BCE (a float32 constant there)


@exercise
def softmax_cross_entropy(
    logits: np.ndarray, labels: np.ndarray, label_smoothing: float = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    """Cross-entropy of ``softmax(logits)`` against integer class labels, and its gradient.

    Parameters
    ----------
    logits : ndarray, shape (N, C), float32 or float64
        Unnormalised scores, one row per sample.
    labels : ndarray, shape (N,), integers in ``[0, C)``
        The true class of each sample.
    label_smoothing : float in [0, 1]
        The target puts ``1 - label_smoothing`` on the true class and spreads ``label_smoothing``
        evenly over all C classes: ``target = (1 - s) * onehot + s / C``.

    Returns
    -------
    losses : ndarray, shape (N,)
        ``losses[i] = -sum_j target[i, j] * log_softmax(logits)[i, j]``, in the logits' dtype.
    grad : ndarray, shape (N, C)
        ``d losses[i] / d logits[i] = softmax(logits[i]) - target[i]``.

    The log-softmax is computed stably, as ``x - max(x) - log(sum(exp(x - max(x))))``.
    """
    log_probs = kernels.log_softmax_forward(logits)
    n, c = log_probs.shape
    rows = np.arange(n)
    picked = log_probs[rows, labels]
    if label_smoothing:
        losses = -(1.0 - label_smoothing) * picked - (label_smoothing / c) * log_probs.sum(axis=1)
    else:
        losses = -picked
    grad = np.exp(log_probs)
    if label_smoothing:
        grad -= label_smoothing / c
    grad[rows, labels] -= 1.0 - label_smoothing
    return losses.astype(logits.dtype, copy=False), grad


def _reduce(op: str, losses: Tensor, reduction: str) -> Tensor:
    if reduction == "mean":
        return losses.mean()
    if reduction == "sum":
        return losses.sum()
    if reduction == "none":
        return losses
    raise ValueError(f"{op}: reduction must be one of {REDUCTIONS}, got {reduction!r}")


def _tensor(x: Any, like: Tensor | None = None) -> Tensor:
    """``x`` as a Tensor; float data not yet a Tensor takes the dtype of ``like`` (targets follow predictions)."""
    if isinstance(x, Tensor):
        return x
    array = np.asarray(x)
    float_like = like is not None and array.dtype.kind in "fiub" and like.dtype.kind == "f"
    return Tensor(array, dtype=like.dtype if float_like else None)


def _class_labels(op: str, scores: Tensor, labels: Any) -> np.ndarray:
    """Check (N, C) scores and (N,) integer labels in [0, C); return the labels as an int64 array."""
    if scores.ndim != 2:
        raise ValueError(f"{op}: expected scores of shape (N, C), got shape {scores.shape}")
    labels = np.asarray(labels.data if isinstance(labels, Tensor) else labels)
    if labels.dtype.kind not in "iu":
        raise TypeError(f"{op}: labels must be integer class indices, got dtype {labels.dtype}")
    if labels.shape != scores.shape[:1]:
        raise ValueError(
            f"{op}: scores of shape {scores.shape} need labels of shape ({scores.shape[0]},), got {labels.shape}"
        )
    if labels.size and (labels.min() < 0 or labels.max() >= scores.shape[1]):
        raise ValueError(
            f"{op}: labels must be in [0, {scores.shape[1]}), got values from {labels.min()} to {labels.max()}"
        )
    return labels.astype(np.int64, copy=False)


def _same_shapes(op: str, predictions: Tensor, targets: Tensor) -> None:
    if predictions.shape != targets.shape:
        raise ValueError(
            f"{op}: predictions of shape {predictions.shape} and targets of shape {targets.shape} must match "
            "(reshape one of them; broadcasting here would silently compare every pair)"
        )


class _SoftmaxCrossEntropy(Function):
    """losses = softmax_cross_entropy(logits, labels);  dL/dlogits = g[:, None] * (softmax - target)."""

    @staticmethod
    def forward(ctx, logits, labels, label_smoothing=0.0):
        losses, grad = softmax_cross_entropy(logits, labels, label_smoothing)
        ctx.save_for_backward(grad)
        return losses

    @staticmethod
    def backward(ctx, grad):
        (dlogits,) = ctx.saved
        return grad[:, None] * dlogits, None


class _BinaryCrossEntropy(Function):
    """l = -(t log p + (1 - t) log(1 - p)), logs clamped at -100;  dl/dp = (p - t) / max(p (1 - p), 1e-12),
    dl/dt = log(1 - p) - log p: PyTorch's formulas, so a saturated p = 0 or 1 still gets a gradient."""

    @staticmethod
    def forward(ctx, p, t):
        with np.errstate(divide="ignore"):  # log(0) = -inf, clamped just below
            log_p = np.maximum(np.log(p), LOG_FLOOR)
            log_not_p = np.maximum(np.log(1 - p), LOG_FLOOR)
        ctx.save_for_backward(p, t, log_p, log_not_p)
        return -(t * log_p + (1 - t) * log_not_p)

    @staticmethod
    def backward(ctx, grad):
        p, t, log_p, log_not_p = ctx.saved
        return grad * (p - t) / np.maximum(p * (1 - p), BCE_EPS), grad * (log_not_p - log_p)


def cross_entropy(logits: Tensor, labels: Any, label_smoothing: float = 0.0, reduction: str = "mean") -> Tensor:
    """Cross-entropy from unnormalised ``logits`` (N, C) and integer ``labels`` (N,).

    See :func:`softmax_cross_entropy` for the formula; ``reduction`` is ``"mean"``, ``"sum"`` or ``"none"``.
    """
    logits = _tensor(logits)
    if logits.dtype.kind != "f":
        raise TypeError(f"cross_entropy: logits must be float, got dtype {logits.dtype}")
    labels = _class_labels("cross_entropy", logits, labels)
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"cross_entropy: label_smoothing must be in [0, 1], got {label_smoothing!r}")
    losses = _SoftmaxCrossEntropy.apply(logits, labels, label_smoothing=float(label_smoothing))
    return _reduce("cross_entropy", losses, reduction)


def nll_loss(log_probs: Tensor, labels: Any, reduction: str = "mean") -> Tensor:
    """Negative log-likelihood: ``-log_probs[i, labels[i]]`` for log-probabilities (N, C) (after ``log_softmax``)."""
    log_probs = _tensor(log_probs)
    labels = _class_labels("nll_loss", log_probs, labels)
    return _reduce("nll_loss", -log_probs[np.arange(len(labels)), labels], reduction)


def mse_loss(predictions: Tensor, targets: Any, reduction: str = "mean") -> Tensor:
    """Mean squared error: ``(predictions - targets) ** 2``, averaged over every element by default."""
    predictions = _tensor(predictions)
    targets = _tensor(targets, like=predictions)
    _same_shapes("mse_loss", predictions, targets)
    return _reduce("mse_loss", (predictions - targets) ** 2, reduction)


def binary_cross_entropy(probabilities: Tensor, targets: Any, reduction: str = "mean") -> Tensor:
    """Binary cross-entropy of probabilities in [0, 1] (after a sigmoid) against targets in [0, 1].

    ``-(t log p + (1 - t) log(1 - p))``, each log clamped at -100 as PyTorch does, so a
    confident wrong answer costs a large finite loss instead of infinity.
    """
    p = _tensor(probabilities)
    t = _tensor(targets, like=p)
    _same_shapes("binary_cross_entropy", p, t)
    if p.size and (p.data.min() < 0 or p.data.max() > 1):
        raise ValueError(
            "binary_cross_entropy: expects probabilities in [0, 1] (apply a sigmoid first, or use "
            f"binary_cross_entropy_with_logits); got values from {p.data.min()} to {p.data.max()}"
        )
    return _reduce("binary_cross_entropy", _BinaryCrossEntropy.apply(p, t), reduction)


def binary_cross_entropy_with_logits(logits: Tensor, targets: Any, reduction: str = "mean") -> Tensor:
    """Binary cross-entropy of ``sigmoid(logits)``, computed stably from the logits:
    ``max(x, 0) - x t + log(1 + exp(-|x|))``."""
    x = _tensor(logits)
    t = _tensor(targets, like=x)
    _same_shapes("binary_cross_entropy_with_logits", x, t)
    losses = relu(x) - x * t + log(1.0 + (-abs(x)).exp())
    return _reduce("binary_cross_entropy_with_logits", losses, reduction)


class _Loss(Module):
    """A loss as a module: ``loss_fn(predictions, targets)`` returns a scalar tensor (or per-sample losses)."""

    def __init__(self, reduction: str = "mean") -> None:
        super().__init__()
        if reduction not in REDUCTIONS:
            raise ValueError(f"{type(self).__name__}: reduction must be one of {REDUCTIONS}, got {reduction!r}")
        self.reduction = reduction

    def extra_repr(self) -> str:
        return f"reduction={self.reduction!r}"


class CrossEntropyLoss(_Loss):
    """Cross-entropy from logits (N, C) and integer labels (N,), with optional label smoothing."""

    def __init__(self, label_smoothing: float = 0.0, reduction: str = "mean") -> None:
        super().__init__(reduction)
        if not 0.0 <= label_smoothing <= 1.0:
            raise ValueError(f"CrossEntropyLoss: label_smoothing must be in [0, 1], got {label_smoothing!r}")
        self.label_smoothing = label_smoothing

    def forward(self, logits: Tensor, labels: Any) -> Tensor:
        return cross_entropy(logits, labels, self.label_smoothing, self.reduction)


class NLLLoss(_Loss):
    """Negative log-likelihood of log-probabilities (N, C) and integer labels (N,)."""

    def forward(self, log_probs: Tensor, labels: Any) -> Tensor:
        return nll_loss(log_probs, labels, self.reduction)


class MSELoss(_Loss):
    """Mean squared error between predictions and targets of the same shape."""

    def forward(self, predictions: Tensor, targets: Any) -> Tensor:
        return mse_loss(predictions, targets, self.reduction)


class BinaryCrossEntropyLoss(_Loss):
    """Binary cross-entropy of probabilities (after a sigmoid) against targets in [0, 1]."""

    def forward(self, probabilities: Tensor, targets: Any) -> Tensor:
        return binary_cross_entropy(probabilities, targets, self.reduction)


class BCEWithLogitsLoss(_Loss):
    """Binary cross-entropy from logits (the sigmoid is folded in, stably)."""

    def forward(self, logits: Tensor, targets: Any) -> Tensor:
        return binary_cross_entropy_with_logits(logits, targets, self.reduction)


#: the seed course's names for the same losses
MeanSquaredError = MSELoss
BinaryCrossEntropy = BinaryCrossEntropyLoss
BCELoss = BinaryCrossEntropyLoss
