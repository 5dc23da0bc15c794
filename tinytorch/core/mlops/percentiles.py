"""Latency summaries for the load generator, the monitor and the A/B report.

The percentiles are MLPerf LoadGen's (:func:`tinytorch.core.benchmarking.statistics.percentile`,
lesson 14): ``sorted(values)[int(n * p)]``, a latency that was really measured, never an
interpolation (NumPy's default ``np.percentile`` interpolates, which makes small-n tails look
better than any request actually was).

>>> summarize([0.010, 0.012, 0.011, 0.050])["p99"]
0.05
"""

from __future__ import annotations

from typing import Iterable

import numpy as np

from ..benchmarking.statistics import percentile

__all__ = ["summarize", "QUANTILES"]

#: the percentiles the load test and the monitor report
QUANTILES = {"p50": 0.50, "p90": 0.90, "p99": 0.99, "p99.9": 0.999}


def summarize(values: Iterable[float], quantiles: dict[str, float] = QUANTILES) -> dict[str, float]:
    """Count, mean, max and the named LoadGen percentiles of ``values`` (empty: just the count 0)."""
    array = np.fromiter(values, dtype=np.float64)
    if array.size == 0:
        return {"count": 0}
    out = {"count": int(array.size), "mean": float(array.mean()), "max": float(array.max())}
    out.update({name: percentile(array, q) for name, q in quantiles.items()})
    return out
