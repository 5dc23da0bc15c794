"""What one scenario run measured (``BenchmarkResult``), its LoadGen-style summary and its JSON form."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .settings import BenchmarkScenario
from .statistics import percentile

REPORTED_PERCENTILES = (0.50, 0.90, 0.95, 0.97, 0.99, 0.999)  # LoadGen's summary lists these


def percentile_table(latencies: list[float]) -> dict[str, float]:
    """LoadGen's percentiles (no interpolation) of ``latencies``, keyed ``"50"``, ``"90"`` ... ``"99.9"``."""
    if not latencies:
        return {}
    return {f"{100 * p:g}": percentile(latencies, p) for p in REPORTED_PERCENTILES}


@dataclass
class BenchmarkResult:
    """The measurements of one scenario run and the verdict on them.

    ``latencies`` are per query, in seconds, in the order the queries were issued (a MultiStream
    query's latency is its slowest sample's; Offline has one query). ``throughput`` is samples per
    second. ``valid`` is False when a LoadGen rule was not met, and ``reasons`` says which.
    """

    scenario: BenchmarkScenario
    latencies: list[float]
    throughput: float
    accuracy: float | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    valid: bool = True
    reasons: list[str] = field(default_factory=list)
    early_stopping: dict[str, Any] | None = None
    queries: int = 0
    samples: int = 0
    duration: float = 0.0

    @property
    def percentiles(self) -> dict[str, float]:
        return percentile_table(self.latencies)

    @property
    def metric(self) -> tuple[str, float | None]:
        """The scenario's headline: (what it is, its value), as MLPerf reports it."""
        if self.scenario is BenchmarkScenario.OFFLINE:
            return "samples per second", self.throughput
        if self.scenario is BenchmarkScenario.SERVER:
            return "scheduled queries per second", self.metadata.get("scheduled_qps")
        p = self.settings.get("percentile", 0.9)
        estimate = (self.early_stopping or {}).get("latency")
        return f"{100 * p:g}th percentile latency, early-stopping estimate (s)", estimate

    def to_dict(self) -> dict[str, Any]:
        """Everything, JSON-able: settings, per-query latencies, percentiles, early stopping, verdict."""
        return {
            "scenario": self.scenario.value,
            "valid": self.valid,
            "reasons": list(self.reasons),
            "metric": {"name": self.metric[0], "value": self.metric[1]},
            "throughput_samples_per_s": self.throughput,
            "accuracy": self.accuracy,
            "queries": self.queries,
            "samples": self.samples,
            "duration_s": self.duration,
            "percentiles_s": self.percentiles,
            "mean_latency_s": float(np.mean(self.latencies)) if self.latencies else None,
            "early_stopping": self.early_stopping,
            "settings": self.settings,
            "metadata": self.metadata,
            "latencies_s": list(self.latencies),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BenchmarkResult:
        return cls(
            BenchmarkScenario.parse(data["scenario"]), list(data["latencies_s"]), data["throughput_samples_per_s"],
            data.get("accuracy"), data.get("metadata", {}), data.get("settings", {}), data["valid"],
            list(data.get("reasons", [])), data.get("early_stopping"), data.get("queries", 0), data.get("samples", 0),
            data.get("duration_s", 0.0),
        )  # fmt: skip

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1)

    def summary(self) -> str:
        """A LoadGen-style summary: the verdict, the headline metric, then the detail."""
        lines = [f"Scenario : {self.scenario.value}", f"Result is : {'VALID' if self.valid else 'INVALID'}"]
        lines += [f"  * {reason}" for reason in self.reasons]
        name, value = self.metric
        lines.append(f"{name} : {_number(value)}")
        lines.append(f"Queries : {self.queries}   Samples : {self.samples}   Duration (s) : {self.duration:.3f}")
        lines.append(f"Samples per second : {self.throughput:.2f}")
        if self.accuracy is not None:
            lines.append(f"Accuracy : {100 * self.accuracy:.2f} %")
        if self.latencies and self.scenario is not BenchmarkScenario.OFFLINE:  # Offline is one query
            lines.append(f"Mean latency (ms) : {1000 * float(np.mean(self.latencies)):.3f}")
            for key, seconds in self.percentiles.items():
                lines.append(f"{key} percentile latency (ms) : {1000 * seconds:.3f}")
        return "\n".join(lines)


def _number(value: float | None) -> str:
    if value is None:
        return "none (see the reasons above)"
    return f"{value:.6g}" if math.isfinite(value) else str(value)
