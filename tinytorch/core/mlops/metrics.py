"""Metrics in the Prometheus text exposition format (version 0.0.4), the format every scraper reads.

Counters only go up, gauges are set, histograms count observations into cumulative ``le``
buckets, and summaries publish precomputed quantiles. Each metric renders as ``# HELP`` and
``# TYPE`` lines followed by one sample per label set:

>>> registry = MetricsRegistry()
>>> requests = registry.add(Counter("demo_requests_total", "Requests answered.", ["status"]))
>>> requests.inc(status="200")
>>> requests.inc(2, status="422")
>>> print(registry.render(), end="")
# HELP demo_requests_total Requests answered.
# TYPE demo_requests_total counter
demo_requests_total{status="200"} 1
demo_requests_total{status="422"} 2
"""

from __future__ import annotations

import bisect
import math
import threading
from typing import Iterable, Sequence

__all__ = ["Counter", "Gauge", "Histogram", "Summary", "MetricsRegistry", "CONTENT_TYPE", "LATENCY_BUCKETS"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
#: seconds; from 1 ms to 10 s, denser where a CPU model's latency lies
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def _number(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(int(value)) if float(value).is_integer() and abs(value) < 2**53 else repr(float(value))


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(names: Sequence[str], values: Sequence[str], extra: str = "") -> str:
    parts = [f'{n}="{_escape(str(v))}"' for n, v in zip(names, values)] + ([extra] if extra else [])
    return "{" + ",".join(parts) + "}" if parts else ""


class _Metric:
    kind = ""

    def __init__(self, name: str, help: str, labelnames: Sequence[str] = ()):
        self.name, self.help, self.labelnames = name, help, tuple(labelnames)
        self._lock = threading.Lock()

    def _key(self, labels: dict[str, str]) -> tuple[str, ...]:
        try:
            key = tuple([str(labels[n]) for n in self.labelnames])
        except KeyError:
            key = None
        if key is None or len(labels) != len(self.labelnames):
            raise ValueError(f"metric {self.name}: labels {sorted(labels)}; expected {list(self.labelnames)}")
        return key

    def samples(self) -> Iterable[str]:
        raise NotImplementedError

    def render(self) -> str:
        head = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} {self.kind}"]
        return "\n".join(head + list(self.samples())) + "\n"


class Counter(_Metric):
    """A count that only increases (requests, errors, predictions per class)."""

    kind = "counter"

    def __init__(self, name: str, help: str, labelnames: Sequence[str] = ()):
        super().__init__(name, help, labelnames)
        self.values: dict[tuple[str, ...], float] = {}

    def inc(self, amount: float = 1, **labels: str) -> None:
        if amount < 0:
            raise ValueError(f"counter {self.name}: cannot decrease (got {amount})")
        key = self._key(labels)
        with self._lock:
            self.values[key] = self.values.get(key, 0) + amount

    def get(self, **labels: str) -> float:
        return self.values.get(self._key(labels), 0)

    def samples(self) -> Iterable[str]:
        for key, value in sorted(self.values.items()):
            yield f"{self.name}{_labels(self.labelnames, key)} {_number(value)}"


class Gauge(Counter):
    """A value that is set (a rolling error rate, the PSI of recent predictions)."""

    kind = "gauge"

    def set(self, value: float, **labels: str) -> None:
        key = self._key(labels)
        with self._lock:
            self.values[key] = float(value)


class Histogram(_Metric):
    """Observations counted into cumulative buckets ``le`` (upper bounds), with their sum and count."""

    kind = "histogram"

    def __init__(self, name: str, help: str, buckets: Sequence[float], labelnames: Sequence[str] = ()):
        super().__init__(name, help, labelnames)
        self.buckets = tuple(sorted(buckets))
        self.counts: dict[tuple[str, ...], list[int]] = {}
        self.sums: dict[tuple[str, ...], float] = {}

    def observe(self, value: float, **labels: str) -> None:
        key = self._key(labels)
        with self._lock:
            counts = self.counts.setdefault(key, [0] * (len(self.buckets) + 1))
            # the first bound >= value; len(buckets) is +Inf, where a NaN goes too (it is <= no bound)
            index = bisect.bisect_left(self.buckets, value) if value == value else len(self.buckets)
            counts[index] += 1
            self.sums[key] = self.sums.get(key, 0.0) + value

    def count(self, **labels: str) -> int:
        return sum(self.counts.get(self._key(labels), []))

    def samples(self) -> Iterable[str]:
        for key in sorted(self.counts):
            running = 0
            for bound, count in zip((*self.buckets, math.inf), self.counts[key]):
                running += count
                le = 'le="' + _number(bound) + '"'
                yield f"{self.name}_bucket{_labels(self.labelnames, key, le)} {running}"
            yield f"{self.name}_sum{_labels(self.labelnames, key)} {_number(self.sums[key])}"
            yield f"{self.name}_count{_labels(self.labelnames, key)} {running}"


class Summary(_Metric):
    """Quantiles computed elsewhere (the monitor's rolling window), published with their count and sum."""

    kind = "summary"

    def __init__(self, name: str, help: str, labelnames: Sequence[str] = ()):
        super().__init__(name, help, labelnames)
        self.values: dict[tuple[str, ...], tuple[dict[float, float], int, float]] = {}

    def set(self, quantiles: dict[float, float], count: int, total: float, **labels: str) -> None:
        key = self._key(labels)
        with self._lock:
            self.values[key] = (dict(quantiles), int(count), float(total))

    def samples(self) -> Iterable[str]:
        for key, (quantiles, count, total) in sorted(self.values.items()):
            for q, value in sorted(quantiles.items()):
                quantile = 'quantile="' + _number(q) + '"'
                yield f"{self.name}{_labels(self.labelnames, key, quantile)} {_number(value)}"
            yield f"{self.name}_sum{_labels(self.labelnames, key)} {_number(total)}"
            yield f"{self.name}_count{_labels(self.labelnames, key)} {count}"


class MetricsRegistry:
    """The metrics a server exposes at ``/metrics``, rendered in registration order."""

    def __init__(self) -> None:
        self.metrics: list[_Metric] = []

    def add(self, metric: _Metric) -> _Metric:
        if any(m.name == metric.name for m in self.metrics):
            raise ValueError(f"MetricsRegistry: a metric named {metric.name} is already registered")
        self.metrics.append(metric)
        return metric

    def render(self) -> str:
        return "".join(m.render() for m in self.metrics)
