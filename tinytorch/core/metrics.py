"""Metrics: how good the predictions are, in numbers people read (taught in lesson 11).

Functions work on whole arrays (``accuracy``, ``compute_confusion_matrix``,
``precision_recall_f1``). Metric objects accumulate over the batches of an epoch, so an epoch's
accuracy is the fraction of *all* its samples that are right, not an average of batch averages:

>>> acc = Accuracy()
>>> acc.update(np.array([[0.1, 0.9], [0.8, 0.2]]), np.array([1, 1]))   # 1 of 2 right
>>> acc.update(np.array([[0.3, 0.7]]), np.array([1]))                  # 1 of 1 right
>>> round(acc.compute(), 4)
0.6667

Predictions may be scores of shape (N, C) (the class is the argmax of each row), predicted
classes of shape (N,), or, for binary problems, probabilities of shape (N,) or (N, 1) compared
with a threshold (``Accuracy(threshold=0.5)``).
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np

from .exercises import exercise
from .tensor import Tensor

__all__ = [
    "accuracy",
    "compute_confusion_matrix",
    "precision_recall_f1",
    "predicted_classes",
    "Metric",
    "Accuracy",
    "Precision",
    "Recall",
    "F1Score",
]


def _array(x: Any) -> np.ndarray:
    return np.asarray(x.data if isinstance(x, Tensor) else x)


def predicted_classes(predictions: Any, threshold: float = 0.5) -> np.ndarray:
    """The predicted class of each sample, as int64 of shape (N,).

    Scores (N, C) with C > 1: the argmax of each row. Floats of shape (N,) or (N, 1): 1 where
    ``>= threshold`` (binary probabilities), else 0. Integers of shape (N,): already classes.
    """
    p = _array(predictions)
    if p.ndim == 2 and p.shape[1] > 1:
        return p.argmax(axis=1).astype(np.int64)
    if p.ndim == 2:
        p = p[:, 0]
    if p.ndim != 1:
        raise ValueError(f"predicted_classes: expected scores (N, C) or predictions (N,), got shape {p.shape}")
    if p.dtype.kind == "f":
        return (p >= threshold).astype(np.int64)
    return p.astype(np.int64)


def _labels(op: str, labels: Any, n: int) -> np.ndarray:
    y = _array(labels)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.shape != (n,):
        raise ValueError(f"{op}: {n} predictions need labels of shape ({n},), got shape {y.shape}")
    if y.dtype.kind == "f" and not np.array_equal(y, np.round(y)):
        raise ValueError(f"{op}: labels must be whole class numbers, got fractional values")
    return y.astype(np.int64)


@exercise
def accuracy(predictions: Any, labels: Any) -> float:
    """The fraction of samples whose predicted class equals the label.

    ``predictions`` are scores of shape (N, C), whose argmax along the last axis is the predicted
    class, or predicted classes of shape (N,). ``labels`` are the true classes, shape (N,).
    Returns a Python float in [0, 1] (0.0 for no samples).
    """
    predicted = predicted_classes(predictions)
    truth = _labels("accuracy", labels, len(predicted))
    return float(np.mean(predicted == truth)) if len(truth) else 0.0


@exercise
def compute_confusion_matrix(y_true: Any, y_pred: Any, num_classes: int | None = None) -> np.ndarray:
    """Count each (true class, predicted class) pair.

    ``y_true`` and ``y_pred`` are class numbers of shape (N,). Returns an int64 array ``M`` of
    shape (num_classes, num_classes) where ``M[i, j]`` is the number of samples of true class
    ``i`` predicted as class ``j``: the diagonal holds the correct predictions. ``num_classes``
    defaults to one more than the largest class seen.
    """
    truth, pred = _array(y_true).astype(np.int64).ravel(), _array(y_pred).astype(np.int64).ravel()
    if truth.shape != pred.shape:
        raise ValueError(f"compute_confusion_matrix: y_true has {truth.size} entries but y_pred has {pred.size}")
    seen = int(max(truth.max(initial=-1), pred.max(initial=-1))) + 1
    n = seen if num_classes is None else num_classes
    if min(truth.min(initial=0), pred.min(initial=0)) < 0 or seen > n:
        raise ValueError(f"compute_confusion_matrix: classes must be in [0, {n}), got classes up to {seen - 1}")
    return np.bincount(truth * n + pred, minlength=n * n).reshape(n, n).astype(np.int64)


def precision_recall_f1(confusion: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-class precision, recall and F1 from a confusion matrix (rows: true class, columns: predicted).

    precision = TP / (TP + FP) (of the samples predicted as the class, how many are);
    recall = TP / (TP + FN) (of the samples of the class, how many were found);
    F1 = their harmonic mean. A ratio with nothing to count (0 / 0) is 0, as in scikit-learn.
    """
    m = np.asarray(confusion, dtype=np.float64)
    tp = np.diag(m)
    predicted, actual = m.sum(axis=0), m.sum(axis=1)
    precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    recall = np.divide(tp, actual, out=np.zeros_like(tp), where=actual > 0)
    both = precision + recall
    f1 = np.divide(2 * precision * recall, both, out=np.zeros_like(tp), where=both > 0)
    return precision, recall, f1


class Metric:
    """A quantity accumulated over batches: ``reset()``, ``update(predictions, labels)``, ``compute()``.

    ``name`` is the key it gets in a training history (``train_accuracy``, ``val_accuracy``).
    Calling a metric, ``metric(predictions, labels)``, scores one batch without touching what it
    has accumulated.
    """

    name = "metric"

    def reset(self) -> None:
        raise NotImplementedError

    def update(self, predictions: Any, labels: Any) -> None:
        raise NotImplementedError

    def compute(self) -> float:
        raise NotImplementedError

    def state_dict(self) -> dict[str, Any]:
        """What the metric has accumulated, as counts (numbers and integer arrays).

        Counts add up: the state of two parts of the data, summed (arrays padded with zeros to the
        larger shape), is the state of the whole. That is how a checkpoint taken mid-epoch keeps a
        metric and how data-parallel training combines the metrics of its processes.
        """
        raise NotImplementedError(
            f"{type(self).__name__} has no state_dict(): a mid-epoch checkpoint or data-parallel training needs one"
        )

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Replace what the metric has accumulated with ``state`` (from :meth:`state_dict`)."""
        raise NotImplementedError(f"{type(self).__name__} has no load_state_dict()")

    def __call__(self, predictions: Any, labels: Any) -> float:
        fresh = copy.copy(self)
        fresh.reset()
        fresh.update(predictions, labels)
        return fresh.compute()

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class Accuracy(Metric):
    """The fraction of samples predicted correctly (see :func:`predicted_classes` for the inputs)."""

    name = "accuracy"

    def __init__(self, threshold: float = 0.5) -> None:
        self.threshold = threshold
        self.reset()

    def reset(self) -> None:
        self.correct = 0
        self.total = 0

    def update(self, predictions: Any, labels: Any) -> None:
        predicted = predicted_classes(predictions, self.threshold)
        truth = _labels("Accuracy", labels, len(predicted))
        self.correct += round(accuracy(predicted, truth) * len(predicted))  # the exercise counts, so a student's runs here
        self.total += len(predicted)

    def compute(self) -> float:
        return self.correct / self.total if self.total else 0.0

    def state_dict(self) -> dict[str, Any]:
        return {"correct": self.correct, "total": self.total}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.correct, self.total = int(state["correct"]), int(state["total"])


class _ConfusionMetric(Metric):
    """A macro-averaged metric computed from a confusion matrix accumulated over batches."""

    _which = 0  # index into precision_recall_f1's result

    def __init__(self, num_classes: int | None = None, threshold: float = 0.5) -> None:
        self.num_classes = num_classes
        self.threshold = threshold
        self.reset()

    def reset(self) -> None:
        self.confusion = np.zeros((self.num_classes or 0,) * 2, dtype=np.int64)

    def update(self, predictions: Any, labels: Any) -> None:
        scores = _array(predictions)
        predicted = predicted_classes(scores, self.threshold)
        truth = _labels(type(self).__name__, labels, len(predicted))
        width = scores.shape[1] if scores.ndim == 2 and scores.shape[1] > 1 else 2 if scores.dtype.kind == "f" else 0
        n = max(len(self.confusion), width, int(max(truth.max(initial=-1), predicted.max(initial=-1))) + 1)
        if n > len(self.confusion):  # a class not seen before: grow the matrix
            grown = np.zeros((n, n), dtype=np.int64)
            grown[: len(self.confusion), : len(self.confusion)] = self.confusion
            self.confusion = grown
        self.confusion += compute_confusion_matrix(truth, predicted, n)

    def state_dict(self) -> dict[str, Any]:
        return {"confusion": self.confusion.copy()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.confusion = np.array(state["confusion"], dtype=np.int64)

    def compute(self) -> float:
        # Average over the classes that occur (as label or as prediction), as scikit-learn does.
        present = (self.confusion.sum(axis=0) + self.confusion.sum(axis=1)) > 0
        if not present.any():
            return 0.0
        return float(np.mean(precision_recall_f1(self.confusion)[self._which][present]))


class Precision(_ConfusionMetric):
    """Precision per class, averaged over the classes (macro)."""

    name = "precision"
    _which = 0


class Recall(_ConfusionMetric):
    """Recall per class, averaged over the classes (macro)."""

    name = "recall"
    _which = 1


class F1Score(_ConfusionMetric):
    """F1 per class, averaged over the classes (macro)."""

    name = "f1"
    _which = 2
