"""The statistics behind a benchmark result (lesson 14): MLPerf LoadGen's percentile and early stopping,
and comparisons of two sets of latencies.

**Percentile.** LoadGen sorts the latencies and takes ``sorted[int(n * p)]``, with no interpolation:
the reported 90th percentile is a latency that was really measured. (``np.percentile``
interpolates between neighbours, so for small runs the two differ.)

**Early stopping.** A 90th percentile measured on 100 queries is itself uncertain: the next run
may well give a slower one. LoadGen answers with a binomial bound (``inference_rules.adoc``,
appendix "Early Stopping"; ``loadgen/early_stopping.cc``): if the true p-quantile were the
latency L, each query would exceed L with probability 1 - p, so seeing only t queries above L in
n = h + t is unlikely (probability ``I_p(h, t + 1)``, the binomial CDF) unless L is really at or above
the quantile. :func:`min_passing_queries` finds the smallest h with that probability below
1 - confidence (0.01). A run of n queries can then vouch for the (t-1)-th largest latency dropped
and the t-th largest kept, with t as large as n allows:

>>> min_passing_queries(1, 0.90) + 1           # queries needed before any p90 estimate
64
>>> min_passing_queries(1, 0.99) + 1           # ... and for p99 (MultiStream)
662
>>> [min_passing_queries(t, 0.99) + t for t in (0, 1, 10, 100)]   # Server: queries needed with t late ones
[459, 662, 2010, 12571]
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Sequence

import numpy as np

from ..exercises import exercise

#: LoadGen's early-stopping confidence and tolerance (``results.cc``: ``confidence = 0.99``, ``tolerance = 0``)
CONFIDENCE = 0.99
TOLERANCE = 0.0


def _sorted_values(op: str, values: Any) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64).ravel()
    if array.size == 0:
        raise ValueError(f"{op}: needs at least one value, got none")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{op}: values must be finite numbers")
    return np.sort(array)


@exercise
def percentile(values: Sequence[float], p: float) -> float:
    """The ``p`` quantile (0 <= p < 1) as MLPerf LoadGen computes it: ``sorted(values)[int(n * p)]``.

    No interpolation: the result is always one of the values, the one at index ``int(n * p)`` of the
    sorted list (``results.cc``, ``ProcessLatencies``). The 90th percentile of 100 latencies is the
    91st smallest.

    Parameters
    ----------
    values : sequence of float
        Latencies (or any measurements); their order does not matter.
    p : float
        The quantile, as a fraction: 0.9 for the 90th percentile.

    Returns
    -------
    float

    >>> percentile([0.30, 0.10, 0.20], 0.5)
    0.2
    """
    if not 0.0 <= p < 1.0:
        raise ValueError(f"percentile: p must be a fraction in [0, 1), got {p}")
    ordered = _sorted_values("percentile", values)
    return float(ordered[int(ordered.size * p)])


# -- early stopping -------------------------------------------------------------------------------------
def early_stopping_odds(h: int, t: int, p: float, tolerance: float = TOLERANCE) -> float:
    """The chance of at most ``t`` queries above the true ``p`` quantile among ``h + t``: ``I_{p-d}(h, t + 1)``.

    That is the binomial CDF ``P(X <= t)`` for ``X ~ Binomial(h + t, 1 - (p - d))``, summed here in
    logarithms so that it stays exact for tens of thousands of queries. ``scipy.special.betainc(h,
    t + 1, p - d)`` gives the same number.
    """
    if h < 1 or t < 0:
        raise ValueError(f"early_stopping_odds: needs h >= 1 and t >= 0, got h={h}, t={t}")
    q = 1.0 - (p - tolerance)  # chance that one query is over the quantile
    n = h + t
    x = np.arange(t + 1)
    log_choose = np.concatenate([[0.0], np.cumsum(np.log(n - x[:-1]) - np.log(x[1:]))])
    terms = log_choose + x * math.log(q) + (n - x) * math.log1p(-q)
    top = terms.max()
    return float(math.exp(top) * np.exp(terms - top).sum())


@lru_cache(maxsize=4096)
def min_passing_queries(t: int, p: float, confidence: float = CONFIDENCE, tolerance: float = TOLERANCE) -> int:
    """The smallest h with ``early_stopping_odds(h, t, p) < 1 - confidence`` (LoadGen's ``find_min_passing``).

    With ``t`` queries over a latency, ``h + t`` queries in all are enough to say, with the given
    confidence, that the ``p`` quantile is at most that latency.
    """
    if not 0.0 < p < 1.0:
        raise ValueError(f"min_passing_queries: p must be in (0, 1), got {p}")
    limit = 1.0 - confidence
    high = 1
    while early_stopping_odds(high, t, p, tolerance) >= limit:
        high *= 2
    low = high // 2 + 1 if high > 1 else 1
    while low < high:  # the odds fall as h grows: find the first h below the limit
        middle = (low + high) // 2
        if early_stopping_odds(middle, t, p, tolerance) < limit:
            high = middle
        else:
            low = middle + 1
    return low


@dataclass(frozen=True)
class EarlyStoppingEstimate:
    """LoadGen's early-stopping estimate of a latency percentile, or why there is none.

    ``latency`` is None when the run had fewer than ``min_queries`` queries: LoadGen refuses the
    estimate then ("Need to process at least ... queries for early stopping").
    """

    percentile: float
    queries: int
    min_queries: int
    latency: float | None
    discarded: int | None  # how many of the slowest latencies the estimate passes over (t - 1)

    @property
    def valid(self) -> bool:
        return self.latency is not None


def early_stopping_latency(
    latencies: Sequence[float], p: float, confidence: float = CONFIDENCE, tolerance: float = TOLERANCE
) -> EarlyStoppingEstimate:
    """LoadGen's early-stopping estimate of the ``p`` latency quantile (SingleStream, MultiStream).

    The largest ``t`` with ``n >= min_passing_queries(t) + t`` is found (LoadGen walks t upwards;
    ``h(t) + t`` only grows with t, so a binary search finds the same one), the ``t - 1`` slowest
    latencies are passed over and the next one is the estimate: ``sorted[n - t]``. Below
    ``min_passing_queries(1) + 1`` queries (64 for p90, 662 for p99) there is no estimate.
    """
    ordered = _sorted_values("early_stopping_latency", latencies)
    n = ordered.size
    needed = min_passing_queries(1, p, confidence, tolerance) + 1
    if n < needed:
        return EarlyStoppingEstimate(p, n, needed, None, None)
    low, high = 2, n  # the smallest i with n < h(i) + i (true at i = n since h >= 1); then t = i - 1
    while low < high:
        middle = (low + high) // 2
        if n < min_passing_queries(middle, p, confidence, tolerance) + middle:
            high = middle
        else:
            low = middle + 1
    t = low - 1
    return EarlyStoppingEstimate(p, n, needed, float(ordered[n - t]), t - 1)


@dataclass(frozen=True)
class ServerEarlyStopping:
    """LoadGen's early-stopping verdict for the Server scenario: were enough queries on time?"""

    percentile: float
    queries: int
    overlatency: int  # queries slower than the bound (t)
    needed: int  # h + t: the queries the run needed for its t late ones
    passed: bool


def server_early_stopping(
    latencies: Sequence[float], latency_bound: float, p: float = 0.99, confidence: float = CONFIDENCE
) -> ServerEarlyStopping:
    """Count the queries over ``latency_bound`` (t) and check ``n >= min_passing_queries(t, p) + t``.

    With no late query, 459 queries are needed at p99; each late one raises the bar.
    """
    ordered = _sorted_values("server_early_stopping", latencies)
    late = int(np.count_nonzero(ordered > latency_bound))
    needed = min_passing_queries(late, p, confidence) + late
    return ServerEarlyStopping(p, int(ordered.size), late, needed, ordered.size >= needed)


# -- comparing two sets of measurements ---------------------------------------------------------------
@dataclass
class StatisticalValidation:
    """The verdict on a comparison (or on one result), with the numbers behind it.

    For a comparison: ``p_value`` of a two-sided Mann-Whitney U test, ``effect_size`` the relative
    change of the median (``median(b) / median(a) - 1``: 0.25 means B is 25 % slower) and
    ``confidence_interval`` a bootstrap interval for it. For one result: ``effect_size`` is the
    spread (IQR / median), ``confidence_interval`` brackets the median, ``p_value`` is NaN.
    """

    is_significant: bool
    p_value: float
    effect_size: float
    confidence_interval: tuple[float, float]
    recommendation: str


def _average_ranks(values: np.ndarray) -> np.ndarray:
    """Ranks 1..n, ties sharing the mean of their ranks (``scipy.stats.rankdata``'s default)."""
    order = np.argsort(values, kind="mergesort")
    ordered = values[order]
    starts = np.flatnonzero(np.concatenate([[True], ordered[1:] != ordered[:-1], [True]]))
    ranks = np.empty(values.size)
    for begin, end in zip(starts[:-1], starts[1:]):
        ranks[order[begin:end]] = (begin + end + 1) / 2
    return ranks


def mann_whitney_p_value(a: Sequence[float], b: Sequence[float]) -> float:
    """Two-sided p-value of the Mann-Whitney U test, normal approximation with tie and continuity
    corrections (``scipy.stats.mannwhitneyu(a, b, method="asymptotic")``).

    It asks whether one sample tends to be larger than the other without assuming a distribution,
    which suits latencies: skewed, with a long tail.
    """
    x, y = np.asarray(a, dtype=np.float64).ravel(), np.asarray(b, dtype=np.float64).ravel()
    n1, n2 = x.size, y.size
    if n1 < 1 or n2 < 1:
        raise ValueError(f"mann_whitney_p_value: both samples need values, got {n1} and {n2}")
    ranks = _average_ranks(np.concatenate([x, y]))
    u = ranks[:n1].sum() - n1 * (n1 + 1) / 2
    n = n1 + n2
    _, counts = np.unique(np.concatenate([x, y]), return_counts=True)
    tie_term = float((counts**3 - counts).sum()) / (n * (n - 1)) if n > 1 else 0.0
    sigma = math.sqrt(n1 * n2 / 12 * ((n + 1) - tie_term))
    if sigma == 0:
        return 1.0
    z = (abs(u - n1 * n2 / 2) - 0.5) / sigma
    return float(min(1.0, math.erfc(max(z, 0.0) / math.sqrt(2))))


class StatisticalValidator:
    """Says whether a difference between two runs, or a single run, can be trusted.

    Parameters
    ----------
    confidence_level : float
        For the intervals and the significance threshold (0.95: p < 0.05).
    bootstrap_samples : int
        Resamples for the interval of the median difference.
    seed : int
        The bootstrap's seed: the same inputs give the same verdict.
    """

    def __init__(self, confidence_level: float = 0.95, bootstrap_samples: int = 2000, seed: int = 0):
        if not 0.5 < confidence_level < 1.0:
            raise ValueError(f"StatisticalValidator: confidence_level must be in (0.5, 1), got {confidence_level}")
        self.confidence_level = confidence_level
        self.alpha = 1.0 - confidence_level
        self.bootstrap_samples = int(bootstrap_samples)
        self.seed = seed

    def validate_comparison(self, results_a: Sequence[float], results_b: Sequence[float]) -> StatisticalValidation:
        """Is B's median different from A's? Mann-Whitney U, and a bootstrap interval for ``median(b)/median(a) - 1``."""
        a = _sorted_values("validate_comparison", results_a)
        b = _sorted_values("validate_comparison", results_b)
        if np.median(a) <= 0:
            raise ValueError("validate_comparison: A's median must be positive (it divides the change)")
        change = float(np.median(b) / np.median(a) - 1.0)
        rng = np.random.default_rng(self.seed)
        resampled_a = np.median(rng.choice(a, size=(self.bootstrap_samples, a.size)), axis=1)
        resampled_b = np.median(rng.choice(b, size=(self.bootstrap_samples, b.size)), axis=1)
        ratios = resampled_b / np.where(resampled_a > 0, resampled_a, np.nan) - 1.0
        low, high = np.nanquantile(ratios, [self.alpha / 2, 1 - self.alpha / 2])
        p_value = mann_whitney_p_value(a, b)
        significant = p_value < self.alpha
        level = f"{100 * self.confidence_level:g} %"
        direction = "higher" if change > 0 else "lower"
        text = (
            f"B's median is {100 * abs(change):.1f} % {direction} than A's ({level} interval {100 * low:+.1f} % to "
            f"{100 * high:+.1f} %); Mann-Whitney p = {p_value:.2g}: "
            + ("a real difference." if significant else "not distinguishable from noise; measure more or accept no difference.")
        )
        return StatisticalValidation(significant, p_value, change, (float(low), float(high)), text)

    def validate_benchmark_result(self, result: Any, min_samples: int = 100) -> StatisticalValidation:
        """Can one result be trusted? Enough queries, a tight spread, and LoadGen's validity rules.

        ``result`` is a :class:`~tinytorch.core.benchmarking.results.BenchmarkResult` (or anything
        with ``latencies`` and, optionally, ``valid`` and ``reasons``).
        """
        latencies = _sorted_values("validate_benchmark_result", result.latencies)
        n = latencies.size
        median = float(np.median(latencies))
        spread = float((np.quantile(latencies, 0.75) - np.quantile(latencies, 0.25)) / median) if median > 0 else math.inf
        # A distribution-free interval for the median: order statistics around n/2 (binomial, normal approx.)
        z = math.sqrt(2) * _erfinv(self.confidence_level)
        half = z * math.sqrt(n) / 2
        low_i, high_i = max(0, int(math.floor(n / 2 - half)) - 1), min(n - 1, int(math.ceil(n / 2 + half)))
        problems = []
        if n < min_samples:
            problems.append(f"only {n} measurements (want at least {min_samples})")
        if spread > 0.10:
            problems.append(f"the spread (IQR / median) is {100 * spread:.0f} %, above 10 %: the machine was noisy")
        problems += list(getattr(result, "reasons", []) or [])
        trustworthy = not problems and getattr(result, "valid", True)
        text = "Trustworthy: " + ("enough measurements, spread within 10 %." if trustworthy else "no; " + "; ".join(problems) + ".")
        return StatisticalValidation(trustworthy, math.nan, spread, (float(latencies[low_i]), float(latencies[high_i])), text)


def _erfinv(y: float) -> float:
    """The inverse of ``math.erf`` on (-1, 1), by Newton's method (no SciPy needed)."""
    x = 0.0
    for _ in range(60):
        step = (math.erf(x) - y) / (2 / math.sqrt(math.pi) * math.exp(-x * x))
        x -= step
        if abs(step) < 1e-15:
            break
    return x
