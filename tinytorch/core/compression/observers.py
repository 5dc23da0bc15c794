"""Observers: how the range of an activation is chosen before it is quantized (calibration).

A static int8 model fixes each activation's scale and zero point ahead of time, from a few
batches of real inputs run through the float model. An observer watches one activation during
those batches and then proposes the range ``[low, high]`` that int8 will cover:

* :class:`MinMaxObserver` covers everything seen. One outlier stretches the range and every
  other value gets coarser steps.
* :class:`PercentileObserver` drops the rarest tail (by default the top and bottom 0.01 %),
  read off a histogram, so the steps stay fine where the values are.
* :class:`HistogramObserver` picks the range that minimises the expected squared quantization
  error over the histogram: clipping error outside the range against rounding error
  (``scale**2 / 12`` per value) inside, as PyTorch's HistogramObserver does.

>>> x = np.concatenate([np.linspace(0, 1, 10_000), [50.0]]).astype(np.float32)
>>> minmax, pct = MinMaxObserver(), PercentileObserver(99.9)
>>> minmax.observe(x); pct.observe(x)
>>> minmax.range()
(0.0, 50.0)
>>> round(pct.range()[1], 2)
1.0
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .quantization import affine_qparams

__all__ = ["Observer", "MinMaxObserver", "HistogramObserver", "PercentileObserver", "make_observer", "OBSERVERS"]


def _finite_values(owner: str, x: Any) -> np.ndarray:
    values = np.asarray(getattr(x, "data", x))
    if values.dtype.kind != "f":
        raise TypeError(f"{owner}.observe: expected float values, got dtype {values.dtype}")
    if values.size and not np.all(np.isfinite(values)):
        raise ValueError(f"{owner}.observe: the values hold NaN or infinity; calibrate on finite activations")
    return values


class Observer:
    """Watches the values of one activation; proposes the range and int8 parameters that cover them."""

    def __init__(self) -> None:
        self.count = 0  # values observed

    def observe(self, x: Any) -> None:
        """Take one batch of values (array or Tensor) into account."""
        raise NotImplementedError

    def range(self) -> tuple[float, float]:
        """The range ``(low, high)`` to quantize over."""
        raise NotImplementedError

    def qparams(self) -> tuple[float, int]:
        """``(scale, zero_point)`` of int8 affine quantization over :meth:`range` (widened to include 0)."""
        if self.count == 0:
            raise RuntimeError(f"{type(self).__name__}: no values observed yet; run calibration batches first")
        return affine_qparams(*self.range())


class MinMaxObserver(Observer):
    """The smallest and largest value ever seen."""

    def __init__(self) -> None:
        super().__init__()
        self.low, self.high = np.inf, -np.inf

    def observe(self, x: Any) -> None:
        values = _finite_values(type(self).__name__, x)
        if values.size:
            self.low, self.high = min(self.low, float(values.min())), max(self.high, float(values.max()))
            self.count += values.size

    def range(self) -> tuple[float, float]:
        return self.low, self.high


class HistogramObserver(Observer):
    """A histogram of every value seen (``bins`` equal bins over the range seen so far), and the range
    that minimises the expected squared int8 quantization error over it.

    When a batch reaches beyond the current range, the histogram is re-binned onto the wider range
    (each old bin's count moves to the new bin holding its centre), so memory stays ``bins``
    counts however many batches are observed.
    """

    def __init__(self, bins: int = 2048) -> None:
        super().__init__()
        if not isinstance(bins, int) or bins < 16:
            raise ValueError(f"{type(self).__name__}: bins must be an integer >= 16, got {bins!r}")
        self.bins = bins
        self.counts = np.zeros(bins, dtype=np.float64)
        self.low, self.high = 0.0, 0.0

    def observe(self, x: Any) -> None:
        values = _finite_values(type(self).__name__, x).ravel()
        if not values.size:
            return
        low, high = min(float(values.min()), self.low), max(float(values.max()), self.high)
        if self.count == 0:
            low, high = float(values.min()), float(values.max())
        if high <= low:
            high = low + 1e-8
        if self.count and (low < self.low or high > self.high):
            centres = self.low + (np.arange(self.bins) + 0.5) * (self.high - self.low) / self.bins
            self.counts = np.histogram(centres, bins=self.bins, range=(low, high), weights=self.counts)[0]
        self.low, self.high = low, high
        self.counts += np.histogram(values, bins=self.bins, range=(low, high))[0]
        self.count += values.size

    def _edges(self) -> np.ndarray:
        return np.linspace(self.low, self.high, self.bins + 1)

    def _error(self, centres: np.ndarray, low: float, high: float) -> float:
        """Expected squared error of int8 over [low, high]: clipping outside, scale**2 / 12 inside."""
        step = (high - low) / 255.0
        clipped = np.clip(centres, low, high)
        return float(np.sum(self.counts * ((centres - clipped) ** 2 + step**2 / 12.0)))

    def range(self) -> tuple[float, float]:
        """The least-error range: each end shrunk toward 0 by a factor in (0.05, 1], the two ends
        chosen in turn (the other held) for two rounds, so a one-sided tail is clipped on its side only."""
        centres = 0.5 * (self._edges()[:-1] + self._edges()[1:])
        factors = np.linspace(1.0, 0.05, 96)
        low, high = min(self.low, 0.0), max(self.high, 0.0)
        for _ in range(2):
            if high > 0:
                high = min((self.high * f for f in factors), key=lambda h: self._error(centres, low, h))
            if low < 0:
                low = min((self.low * f for f in factors), key=lambda v: self._error(centres, v, high))
        return float(low), float(high)


class PercentileObserver(HistogramObserver):
    """The range between the ``100 - percentile`` and ``percentile`` percentiles of the values seen,
    read off the histogram (linear within a bin)."""

    def __init__(self, percentile: float = 99.99, bins: int = 2048) -> None:
        super().__init__(bins)
        if not 50.0 < float(percentile) <= 100.0:
            raise ValueError(f"PercentileObserver: percentile must be in (50, 100], got {percentile!r}")
        self.percentile = float(percentile)

    def range(self) -> tuple[float, float]:
        cumulative = np.concatenate([[0.0], np.cumsum(self.counts)]) / max(self.counts.sum(), 1.0)
        edges = self._edges()
        tail = 1.0 - self.percentile / 100.0
        low, high = np.interp([tail, 1.0 - tail], cumulative, edges)
        return float(low), float(high)


OBSERVERS = {"minmax": MinMaxObserver, "percentile": PercentileObserver, "histogram": HistogramObserver}


def make_observer(kind: str | Observer | type) -> Observer:
    """A fresh observer from a name (``"minmax"``, ``"percentile"``, ``"histogram"``), a class, or an instance to copy."""
    if isinstance(kind, Observer):
        import copy

        return copy.deepcopy(kind)
    if isinstance(kind, type) and issubclass(kind, Observer):
        return kind()
    if kind in OBSERVERS:
        return OBSERVERS[kind]()
    raise ValueError(f"unknown observer {kind!r}; expected one of {sorted(OBSERVERS)} or an Observer")
