"""A/B comparison of two model versions: deterministic routing, per-arm latency, paired accuracy.

Routing hashes the request id, so the same user (or request) always reaches the same model,
across restarts and across servers, without any shared state: the hash's first 8 bytes, read as a
fraction of 2**64, fall into one arm's share of [0, 1).

>>> [route_request(f"user-{i}") for i in range(8)]
[0, 1, 1, 1, 1, 0, 1, 1]
>>> shares = np.bincount([route_request(str(i)) for i in range(10_000)]) / 10_000
>>> bool(abs(shares[0] - 0.5) < 0.02)
True

Accuracy is compared on *paired* data: both models predict the same labelled examples (the arm a
request was routed to answers it; the other runs in shadow), so the comparison only counts the
examples on which they disagree, and its confidence interval is much tighter than comparing
two independent samples:

>>> a = np.array([1, 1, 0, 1, 0, 1, 1, 0] * 50, bool)      # model A right or wrong, per example
>>> b = np.array([1, 1, 1, 1, 0, 1, 1, 1] * 50, bool)      # model B, on the same examples
>>> result = paired_accuracy_comparison(a, b)
>>> round(result.difference, 3), [round(v, 3) for v in result.ci]
(0.25, [0.208, 0.292])
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from statistics import NormalDist
from typing import Any, Sequence

import numpy as np

from ..exercises import exercise
from .extras import require
from .percentiles import summarize

__all__ = ["route_request", "paired_accuracy_comparison", "PairedComparison", "ABRecorder"]


@exercise
def route_request(request_id: str, weights: Sequence[float] = (0.5, 0.5), salt: str = "") -> int:
    """The arm (0, 1, ...) a request goes to, decided by its id alone.

    Parameters
    ----------
    request_id : str
        Any identifier that should always reach the same arm: a user id, a session id, a request id.
    weights : sequence of float
        Each arm's share of the traffic (they are normalised to sum to 1).
    salt : str
        Changes the assignment for a new experiment, so the same users do not always land in the
        same arm.

    Returns
    -------
    int
        The SHA-256 of the UTF-8 bytes of ``salt + ":" + request_id``; its first 8 bytes as a
        big-endian unsigned integer divided by 2**64 give ``u`` in [0, 1); the arm is the first
        ``i`` with ``u < (weights[0] + ... + weights[i]) / sum(weights)``.
    """
    weights = [float(w) for w in weights]  # plain floats: this runs once per request
    total = sum(weights)
    if not weights or min(weights) < 0 or total <= 0:
        raise ValueError(f"route_request: weights must be non-negative with a positive sum, got {weights}")
    digest = hashlib.sha256(f"{salt}:{request_id}".encode("utf-8")).digest()
    u = int.from_bytes(digest[:8], "big") / 2**64
    cumulative = 0.0
    for arm, weight in enumerate(weights):
        cumulative += weight / total
        if u < cumulative:
            return arm
    return len(weights) - 1  # u within rounding of 1


@dataclass(frozen=True)
class PairedComparison:
    """Accuracy of A and B on the same ``n`` examples, B minus A with a confidence interval, and McNemar's p-value.

    ``only_a``: examples only A got right; ``only_b``: only B got right (the discordant pairs).
    """

    n: int
    accuracy_a: float
    accuracy_b: float
    difference: float
    ci: tuple[float, float]
    confidence: float
    only_a: int
    only_b: int
    p_value: float
    method: str

    @property
    def significant(self) -> bool:
        """The interval excludes 0: at this confidence, the two models' accuracies differ."""
        return self.ci[0] > 0 or self.ci[1] < 0

    def to_json(self) -> dict:
        return {**self.__dict__, "ci": list(self.ci), "significant": self.significant}


def paired_accuracy_comparison(correct_a: Any, correct_b: Any, confidence: float = 0.95, method: str = "mcnemar",
                               resamples: int = 10_000, seed: int = 0) -> PairedComparison:
    """Compare two models' accuracy on the same labelled examples.

    Parameters
    ----------
    correct_a, correct_b : array of bool
        Whether A (and B) got each example right; the same examples, in the same order.
    confidence : float
        Of the interval (0.95: a 95 % interval).
    method : str
        ``"mcnemar"``: the Wald interval of a paired difference of proportions,
        ``d +- z * sqrt(b + c - (c - b)**2 / n) / n`` with ``b``, ``c`` the discordant counts, and
        McNemar's exact test (a binomial test of ``c`` out of ``b + c`` at 1/2) for the p-value.
        ``"bootstrap"``: the percentile interval of the difference over ``resamples`` resamplings
        of the examples (p-value still McNemar's).
    """
    a, b = np.asarray(correct_a, dtype=bool).ravel(), np.asarray(correct_b, dtype=bool).ravel()
    if a.shape != b.shape or a.size == 0:
        raise ValueError(f"paired_accuracy_comparison: needs two equally long non-empty arrays, got {a.size} and {b.size}")
    if not 0 < confidence < 1:
        raise ValueError(f"paired_accuracy_comparison: confidence must be in (0, 1), got {confidence}")
    n = a.size
    only_a, only_b = int(np.sum(a & ~b)), int(np.sum(~a & b))
    difference = (only_b - only_a) / n
    discordant = only_a + only_b
    stats = require("scipy.stats", "paired_accuracy_comparison")
    p_value = float(stats.binomtest(only_b, discordant, 0.5).pvalue) if discordant else 1.0
    if method == "mcnemar":
        z = NormalDist().inv_cdf(0.5 + confidence / 2)
        half = z * math.sqrt(max(discordant - (only_b - only_a) ** 2 / n, 0.0)) / n
        ci = (difference - half, difference + half)
    elif method == "bootstrap":
        rng = np.random.default_rng(seed)
        delta = b.astype(np.int8) - a.astype(np.int8)
        means = np.array([delta[rng.integers(0, n, n)].mean() for _ in range(resamples)])
        tail = (1 - confidence) / 2
        ci = (float(np.quantile(means, tail)), float(np.quantile(means, 1 - tail)))
    else:
        raise ValueError(f"paired_accuracy_comparison: method must be 'mcnemar' or 'bootstrap', got {method!r}")
    return PairedComparison(n, float(a.mean()), float(b.mean()), difference, (float(ci[0]), float(ci[1])), confidence,
                            only_a, only_b, p_value, method)


@dataclass
class ABRecorder:
    """What an A/B server has seen: requests and latencies per arm, and paired correctness on labelled traffic."""

    arms: tuple[str, ...]
    weights: tuple[float, ...]
    requests: dict[str, int] = field(default_factory=dict)
    latencies: dict[str, list[float]] = field(default_factory=dict)
    correct: dict[str, list[bool]] = field(default_factory=dict)
    max_latencies: int = 100_000

    def __post_init__(self) -> None:
        for arm in self.arms:
            self.requests.setdefault(arm, 0)
            self.latencies.setdefault(arm, [])
            self.correct.setdefault(arm, [])

    def record_request(self, arm: str, latency_s: float) -> None:
        self.requests[arm] += 1
        if len(self.latencies[arm]) < self.max_latencies:
            self.latencies[arm].append(latency_s)

    def record_labelled(self, correct_by_arm: dict[str, np.ndarray]) -> None:
        """Correctness of every arm on the same labelled examples (the routed arm and the shadow)."""
        for arm in self.arms:
            self.correct[arm].extend(bool(c) for c in correct_by_arm[arm])

    def report(self, confidence: float = 0.95) -> dict:
        total = sum(self.requests.values())
        out: dict[str, Any] = {
            "arms": {arm: {"weight": w, "requests": self.requests[arm],
                           "share": self.requests[arm] / total if total else None,
                           "latency_s": summarize(self.latencies[arm])}
                     for arm, w in zip(self.arms, self.weights)},
            "labelled_examples": len(self.correct[self.arms[0]]),
        }
        if len(self.arms) == 2 and self.correct[self.arms[0]]:
            result = paired_accuracy_comparison(self.correct[self.arms[0]], self.correct[self.arms[1]], confidence)
            out["paired_accuracy"] = {**result.to_json(), "difference_is": f"{self.arms[1]} minus {self.arms[0]}"}
        return out
