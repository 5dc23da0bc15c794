"""Watching a served model: latency, errors, and whether its predictions still look like they used to.

:class:`ModelMonitor` keeps rolling windows of the most recent requests and predictions and
turns them into the numbers an on-call engineer looks at: latency percentiles, the error rate,
the population stability index (PSI) of the predicted classes against a reference (the
predictions on held-out data when the model shipped), the mean confidence and, on labelled
traffic, the accuracy. :meth:`ModelMonitor.alerts` lists every threshold crossed; a
:class:`~tinytorch.core.mlops.retraining.RetrainingTrigger` decides what to do about them.

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> monitor = ModelMonitor(reference_predictions=rng.integers(0, 10, 2000), num_classes=10, min_samples=100)
>>> for _ in range(200):
...     monitor.record_request(0.004)
>>> monitor.record_predictions(rng.integers(0, 10, 500))          # the same mix as the reference
>>> monitor.alerts()
[]
>>> monitor.record_predictions(np.full(500, 3))                    # suddenly everything is class 3
>>> [alert.name for alert in monitor.alerts()]
['prediction_psi']
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any

import numpy as np

from .drift import PSI_SIGNIFICANT, population_stability_index
from .percentiles import summarize

__all__ = ["Alert", "MonitorThresholds", "ModelMonitor"]


@dataclass(frozen=True)
class Alert:
    """A threshold crossed: what (``name``), the value seen, the threshold, and a sentence for a human."""

    name: str
    value: float
    threshold: float
    message: str


@dataclass(frozen=True)
class MonitorThresholds:
    """When the monitor alerts. None switches a check off.

    ``prediction_psi`` defaults to 0.25, the rule of thumb for "significant, act"; accuracy and
    confidence have no universal defaults (they depend on the model), so they are off until set.
    """

    latency_p99_s: float | None = None
    error_rate: float | None = 0.05
    prediction_psi: float | None = PSI_SIGNIFICANT
    min_confidence: float | None = None
    min_accuracy: float | None = None


class ModelMonitor:
    """Rolling statistics of a served model, and the alerts they raise.

    Parameters
    ----------
    reference_predictions : array of int, optional
        Predicted classes on reference data; without it there is no prediction PSI.
    num_classes : int, optional
        Counts per class are kept for every class even when it is never predicted.
    window : int
        How many recent requests (and predictions) the rolling statistics cover.
    min_samples : int
        No statistic alerts before it has this many samples in its window (a PSI of 20
        predictions is noise).
    thresholds : MonitorThresholds, optional
    """

    def __init__(self, reference_predictions: Any = None, num_classes: int | None = None, window: int = 1000,
                 min_samples: int = 100, thresholds: MonitorThresholds | None = None):
        if window < 1 or min_samples < 1:
            raise ValueError(f"ModelMonitor: window and min_samples must be positive, got {window} and {min_samples}")
        self.reference = None if reference_predictions is None else np.asarray(reference_predictions).ravel()
        self.num_classes = num_classes
        self.window, self.min_samples = int(window), int(min_samples)
        self.thresholds = thresholds or MonitorThresholds()
        self.latencies: deque[float] = deque(maxlen=window)
        self.failures: deque[bool] = deque(maxlen=window)
        self.predictions: deque[int] = deque(maxlen=window)
        self.confidences: deque[float] = deque(maxlen=window)
        self.correct: deque[bool] = deque(maxlen=window)
        self.requests_seen = 0
        self.predictions_seen = 0

    # -- recording --------------------------------------------------------------------------------
    def record_request(self, latency_s: float, failed: bool = False) -> None:
        """One answered request: its latency (seconds) and whether it failed (any 4xx or 5xx)."""
        self.latencies.append(float(latency_s))
        self.failures.append(bool(failed))
        self.requests_seen += 1

    def record_predictions(self, predicted: Any, confidences: Any = None, labels: Any = None) -> None:
        """Predicted classes of a batch, optionally their confidence (top probability) and the true labels."""
        predicted = np.asarray(predicted).ravel()
        self.predictions.extend(int(p) for p in predicted)
        self.predictions_seen += predicted.size
        if confidences is not None:
            self.confidences.extend(float(c) for c in np.asarray(confidences).ravel())
        if labels is not None:
            labels = np.asarray(labels).ravel()
            if labels.shape != predicted.shape:
                raise ValueError(f"ModelMonitor: {labels.size} labels for {predicted.size} predictions")
            self.correct.extend(bool(c) for c in predicted == labels)

    # -- statistics -------------------------------------------------------------------------------
    def latency_summary(self) -> dict[str, float]:
        """Count, mean, max, p50, p90, p99 and p99.9 of the window's latencies (seconds)."""
        return summarize(self.latencies)

    def error_rate(self) -> float | None:
        return float(np.mean(self.failures)) if self.failures else None

    def prediction_psi(self) -> float | None:
        """PSI of the window's predicted classes against the reference (None without either)."""
        if self.reference is None or self.reference.size == 0 or not self.predictions:
            return None
        return population_stability_index(self.reference, np.fromiter(self.predictions, np.int64), categorical=True)

    def mean_confidence(self) -> float | None:
        return float(np.mean(self.confidences)) if self.confidences else None

    def accuracy(self) -> float | None:
        """Accuracy on the labelled predictions of the window (None when none was labelled)."""
        return float(np.mean(self.correct)) if self.correct else None

    def class_shares(self) -> np.ndarray:
        """The share of each class among the window's predictions."""
        size = max(self.num_classes or 0, (max(self.predictions) + 1) if self.predictions else 0)
        counts = np.bincount(np.fromiter(self.predictions, np.int64), minlength=size)
        return counts / max(counts.sum(), 1)

    # -- alerts -----------------------------------------------------------------------------------
    def alerts(self) -> list[Alert]:
        """Every threshold the window crosses, once it holds ``min_samples`` samples of that statistic."""
        t, found = self.thresholds, []

        def check(name: str, samples: int, value: float | None, threshold: float | None, above: bool, text: str) -> None:
            if threshold is None or value is None or samples < self.min_samples:
                return
            if (value > threshold) if above else (value < threshold):
                found.append(Alert(name, value, threshold, text.format(value=value, threshold=threshold)))

        latency = self.latency_summary()
        check("latency_p99", len(self.latencies), latency.get("p99"), t.latency_p99_s, True,
              "p99 latency {value:.4f} s is above {threshold} s")
        check("error_rate", len(self.failures), self.error_rate(), t.error_rate, True,
              "{value:.1%} of recent requests failed (threshold {threshold:.1%})")
        check("prediction_psi", len(self.predictions), self.prediction_psi(), t.prediction_psi, True,
              "the predicted classes drifted from the reference: PSI {value:.3f} > {threshold}")
        check("low_confidence", len(self.confidences), self.mean_confidence(), t.min_confidence, False,
              "mean confidence {value:.3f} fell below {threshold}")
        check("accuracy", len(self.correct), self.accuracy(), t.min_accuracy, False,
              "accuracy on labelled traffic {value:.3f} fell below {threshold}")
        return found

    def snapshot(self) -> dict:
        """Everything above as JSON-able values."""
        return {
            "requests_seen": self.requests_seen,
            "predictions_seen": self.predictions_seen,
            "window": self.window,
            "latency_s": self.latency_summary(),
            "error_rate": self.error_rate(),
            "prediction_psi": self.prediction_psi(),
            "mean_confidence": self.mean_confidence(),
            "accuracy": self.accuracy(),
            "class_shares": [round(float(s), 6) for s in self.class_shares()],
            "alerts": [a.__dict__ for a in self.alerts()],
        }
