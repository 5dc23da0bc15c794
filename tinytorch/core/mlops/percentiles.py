"""Latency percentiles as MLPerf LoadGen reports them: a sample value, never an interpolation.

``percentile(values, 0.99)`` is ``sorted(values)[int(n * 0.99)]`` (capped at the last value):
the smallest sample that at least 99 % of the samples do not exceed (nearest rank, no
interpolation; NumPy's default ``np.percentile`` interpolates, which makes small-n tails look
better than any request actually was).

>>> percentile([5, 1, 4, 2, 3], 0.5)
3.0
>>> summarize([0.010, 0.012, 0.011, 0.050])["p99"]
0.05
"""

from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np

__all__ = ["percentile", "summarize", "QUANTILES"]

#: the percentiles the load test and the monitor report
QUANTILES = {"p50": 0.50, "p90": 0.90, "p99": 0.99, "p99.9": 0.999}


def percentile(values: Sequence[float] | np.ndarray, q: float) -> float:
    """The nearest-rank ``q``-quantile (``0 <= q <= 1``) of ``values``: ``sorted(values)[min(int(n * q), n - 1)]``."""
    if not 0 <= q <= 1:
        raise ValueError(f"percentile: q must be in [0, 1], got {q}")
    array = np.sort(np.asarray(values, dtype=np.float64))
    if array.size == 0:
        raise ValueError("percentile: no values")
    return _nearest_rank(array, q)


def _nearest_rank(ordered: np.ndarray, q: float) -> float:
    return float(ordered[min(int(ordered.size * q), ordered.size - 1)])


def summarize(values: Iterable[float], quantiles: dict[str, float] = QUANTILES) -> dict[str, float]:
    """Count, mean, max and the named quantiles of ``values`` (empty: just the count 0)."""
    array = np.sort(np.fromiter(values, dtype=np.float64))
    if array.size == 0:
        return {"count": 0}
    out = {"count": int(array.size), "mean": float(array.mean()), "max": float(array[-1])}
    out.update({name: _nearest_rank(array, q) for name, q in quantiles.items()})
    return out
