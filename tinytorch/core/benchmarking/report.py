"""Benchmark reports: Markdown for people, JSON for programs, both with the machine they ran on.

Every figure in a report is one that was measured in the run it describes; a scenario that did
not meet LoadGen's rules is marked INVALID with the reasons, never silently reported.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from ..atomic_write import write_text_atomic
from .environment import describe_environment
from .results import BenchmarkResult
from .settings import BenchmarkScenario


_LABELS = {
    "date": "Date", "cpu": "CPU", "logical_cores": "Logical cores", "memory": "Memory", "python": "Python",
    "numpy": "NumPy", "tinytorch": "TinyTorch", "kernels": "TinyTorch kernels", "thread_variables": "Thread variables",
}  # fmt: skip


def _ms(seconds: float | None) -> str:
    return "—" if seconds is None else f"{1000 * seconds:.3f}"


class PerformanceReporter:
    """Writes the results of a set of scenario runs as a Markdown report and as JSON."""

    def generate_project_report(
        self, benchmark_results: Mapping[str, BenchmarkResult], model_name: str = "TinyTorch model", command: str | None = None
    ) -> str:
        """A Markdown report: where it ran, one summary row per scenario, then each scenario's detail."""
        environment = describe_environment()
        lines = [f"# {model_name}: inference benchmark", ""]
        if command:
            lines.append(f"- Command: `{command}`")
        lines += [f"- {_LABELS.get(key, key)}: {value}" for key, value in environment.items()]
        lines += [
            "",
            "Scenarios as MLPerf LoadGen defines them; percentiles are `sorted[int(n * p)]` (no interpolation);",
            "latency runs from a query's scheduled time to its answer; a run that misses a rule is INVALID.",
            "",
            "| scenario | result | headline | p50 (ms) | p90 (ms) | p99 (ms) | samples/s | queries | accuracy |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for result in benchmark_results.values():
            name, value = result.metric
            p = result.percentiles if result.scenario is not BenchmarkScenario.OFFLINE else {}  # one query: no distribution
            headline = "—" if value is None else (f"{value:.2f} {name}" if "second" in name else f"{1000 * value:.3f} ms ({name.split(',')[0]})")
            accuracy = "—" if result.accuracy is None else f"{100 * result.accuracy:.2f} %"
            lines.append(
                f"| {result.scenario.value} | {'VALID' if result.valid else 'INVALID'} | {headline} | {_ms(p.get('50'))} | "
                f"{_ms(p.get('90'))} | {_ms(p.get('99'))} | {result.throughput:.1f} | {result.queries} | {accuracy} |"
            )
        lines += self._observations(benchmark_results)
        for key, result in benchmark_results.items():
            lines += ["", f"## {result.scenario.value} ({key})", "", "```", result.summary(), "```"]
            search = result.metadata.get("peak_search")
            if search:
                tried = ", ".join(f"{qps:.1f} ({'pass' if ok else 'fail'})" for qps, ok in search)
                lines += ["", f"Peak search, target QPS tried in order: {tried}."]
            lines += ["", "Settings: " + ", ".join(f"{k}={v}" for k, v in result.settings.items())]
        return "\n".join(lines) + "\n"

    @staticmethod
    def _observations(results: Mapping[str, BenchmarkResult]) -> list[str]:
        """Ratios between the scenarios, computed from the results (why they differ is lesson 14's topic)."""
        by_kind = {r.scenario: r for r in results.values()}
        single, offline = by_kind.get(BenchmarkScenario.SINGLE_STREAM), by_kind.get(BenchmarkScenario.OFFLINE)
        server = by_kind.get(BenchmarkScenario.SERVER)
        notes = []
        if single and offline and single.throughput > 0:
            notes.append(f"- Offline moves {offline.throughput / single.throughput:.1f}x the samples per second of SingleStream "
                         f"(batches of {offline.settings.get('offline_batch_size')} against one sample at a time).")
        if single and server and single.throughput > 0 and server.valid:
            notes.append(f"- The Server scenario sustained {server.metadata['scheduled_qps']:.1f} queries/s within its "
                         f"{1000 * server.metadata['latency_bound']:g} ms bound: {server.metadata['scheduled_qps'] / single.throughput:.2f}x "
                         "the queries per second of SingleStream's closed loop.")
        return ["", *notes] if notes else []

    def to_json(self, benchmark_results: Mapping[str, BenchmarkResult], model_name: str = "TinyTorch model", **extra: Any) -> dict:
        """Everything as JSON-able data: the environment, and each result's settings, latencies and verdict."""
        return {
            "model": model_name,
            "environment": describe_environment(),
            **extra,
            "results": {key: result.to_dict() for key, result in benchmark_results.items()},
        }

    def save_report(self, report: str, filename: str | Path = "benchmark_report.md") -> Path:
        """Write ``report`` (atomically); returns the path."""
        return write_text_atomic(filename, report)

    def save_json(self, benchmark_results: Mapping[str, BenchmarkResult], filename: str | Path, model_name: str = "TinyTorch model", **extra: Any) -> Path:
        data = self.to_json(benchmark_results, model_name, **extra)
        return write_text_atomic(filename, json.dumps(data, indent=1, default=_jsonable) + "\n")


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"cannot write {type(value).__name__} as JSON")
