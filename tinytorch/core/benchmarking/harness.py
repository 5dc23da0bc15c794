"""Running the scenarios on a model: ``BenchmarkScenarios`` (one call per scenario) and ``TinyTorchPerf``.

>>> import numpy as np
>>> import tinytorch as tt
>>> model = tt.Sequential(tt.Dense(16, 8), tt.ReLU(), tt.Dense(8, 3))
>>> inputs = np.random.default_rng(0).standard_normal((32, 16)).astype(np.float32)
>>> perf = TinyTorchPerf(model, inputs, min_duration=0.0)
>>> result = perf.run_single_stream(min_query_count=70)
>>> result.queries, result.valid          # 70 queries: enough for LoadGen's p90 estimate (64)
(70, True)
>>> perf.run_offline(offline_sample_count=256, offline_batch_size=64).samples
256
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np

from .loadgen import Clock, ModelSUT, QuerySampleLibrary, find_peak_server_qps, run_scenario
from .report import PerformanceReporter
from .results import BenchmarkResult
from .settings import BenchmarkScenario, TestSettings
from .statistics import StatisticalValidation, StatisticalValidator


def as_sut(model: Any) -> Callable[[np.ndarray], Any]:
    """A TinyTorch module becomes a :class:`ModelSUT`; any other callable on arrays is used as it is."""
    if hasattr(model, "parameters") and hasattr(model, "forward"):
        return ModelSUT(model)
    if not callable(model):
        raise TypeError(f"a benchmark needs a model or a callable on arrays, got {type(model).__name__}")
    return model


def _shorthand(settings: dict[str, Any], num_queries: int | None = None, duration: float | None = None) -> dict[str, Any]:
    """The original course's arguments: ``num_queries`` exactly that many queries, ``duration`` seconds at least."""
    if num_queries is not None:
        settings.update(min_query_count=num_queries, max_query_count=num_queries, min_duration=0.0)
    if duration is not None:
        settings["min_duration"] = duration
    return settings


class BenchmarkScenarios:
    """The four MLPerf scenarios, one method each; every method returns a :class:`BenchmarkResult`.

    ``model`` is a TinyTorch module or any callable taking a batch array; ``dataset`` an array of
    samples (first axis: samples), ``labels`` their classes (optional, for accuracy). Keyword
    arguments are :class:`TestSettings` fields (``min_duration``, ``min_query_count``, ``seed`` ...).
    """

    def __init__(self, clock: Clock | None = None):
        self.clock = clock
        self.results: list[BenchmarkResult] = []

    def run(self, scenario: Any, model: Any, dataset: Any, labels: Any = None, **settings: Any) -> BenchmarkResult:
        result = run_scenario(as_sut(model), QuerySampleLibrary(dataset, labels), TestSettings(scenario, **settings), self.clock)
        self.results.append(result)
        return result

    def single_stream(self, model: Any, dataset: Any, labels: Any = None, num_queries: int | None = None, **settings: Any) -> BenchmarkResult:
        """One query of one sample at a time; the next as soon as the last is answered. Reports the p90 latency."""
        return self.run(BenchmarkScenario.SINGLE_STREAM, model, dataset, labels, **_shorthand(settings, num_queries))

    def multi_stream(self, model: Any, dataset: Any, labels: Any = None, num_queries: int | None = None, **settings: Any) -> BenchmarkResult:
        """Queries of 8 samples in a closed loop, at least 662 of them. Reports the p99 query latency."""
        return self.run(BenchmarkScenario.MULTI_STREAM, model, dataset, labels, **_shorthand(settings, num_queries))

    def server(
        self, model: Any, dataset: Any, labels: Any = None, target_qps: float = 10.0, duration: float | None = None, **settings: Any
    ) -> BenchmarkResult:
        """Poisson arrivals at ``target_qps``; valid when the p99 latency (from arrival) is within the bound."""
        return self.run(BenchmarkScenario.SERVER, model, dataset, labels, server_target_qps=target_qps, **_shorthand(settings, None, duration))

    def offline(self, model: Any, dataset: Any, labels: Any = None, batch_size: int = 64, **settings: Any) -> BenchmarkResult:
        """Every sample in one query, answered in batches. Reports samples per second."""
        return self.run(BenchmarkScenario.OFFLINE, model, dataset, labels, offline_batch_size=batch_size, **settings)


class TinyTorchPerf:
    """The benchmark harness: a model, a dataset, the four scenarios, statistics and a report.

    Parameters
    ----------
    model : Module or callable, optional
        What to benchmark (``set_model`` can give it later).
    dataset, labels : array, optional
        The samples queries are made of, and their classes for an accuracy figure.
    clock : Clock, optional
        Where time comes from (a ``VirtualClock`` simulates a system in tests).
    **defaults
        :class:`TestSettings` fields applied to every run (``min_duration=2.0`` for a quick look).
    """

    def __init__(self, model: Any = None, dataset: Any = None, labels: Any = None, clock: Clock | None = None, **defaults: Any):
        self.scenarios = BenchmarkScenarios(clock)
        self.validator = StatisticalValidator()
        self.reporter = PerformanceReporter()
        self.model, self.dataset, self.labels = model, dataset, labels
        self.defaults = defaults
        self.results: dict[str, BenchmarkResult] = {}
        self.server_search: list[BenchmarkResult] = []

    def set_model(self, model: Any) -> None:
        self.model = model

    def set_dataset(self, dataset: Any, labels: Any = None) -> None:
        self.dataset, self.labels = dataset, labels

    def _run(self, key: str, scenario: BenchmarkScenario, model: Any = None, **settings: Any) -> BenchmarkResult:
        if (model or self.model) is None or self.dataset is None:
            raise ValueError("TinyTorchPerf: set a model and a dataset (set_model, set_dataset) before running a scenario")
        merged = {**self.defaults, **settings}
        result = self.scenarios.run(scenario, model or self.model, self.dataset, self.labels, **merged)
        if model is None:
            self.results[key] = result
        return result

    def run_single_stream(self, num_queries: int | None = None, **settings: Any) -> BenchmarkResult:
        return self._run("single_stream", BenchmarkScenario.SINGLE_STREAM, **_shorthand(settings, num_queries))

    def run_multi_stream(self, num_queries: int | None = None, **settings: Any) -> BenchmarkResult:
        return self._run("multi_stream", BenchmarkScenario.MULTI_STREAM, **_shorthand(settings, num_queries))

    def run_server(self, target_qps: float = 10.0, duration: float | None = None, **settings: Any) -> BenchmarkResult:
        return self._run("server", BenchmarkScenario.SERVER, server_target_qps=target_qps, **_shorthand(settings, None, duration))

    def run_offline(self, batch_size: int | None = None, **settings: Any) -> BenchmarkResult:
        if batch_size is not None:
            settings["offline_batch_size"] = batch_size
        return self._run("offline", BenchmarkScenario.OFFLINE, **settings)

    def find_peak_server_qps(self, start_qps: float | None = None, tolerance: float = 0.05, **settings: Any) -> float | None:
        """The highest Poisson rate whose run is valid (p99 within the bound, LoadGen's early stopping met).

        Starts from half the rate a SingleStream run suggests (one over its median latency) unless
        ``start_qps`` is given. The best valid run is kept as ``results["server"]``, every run in
        ``server_search``.
        """
        if start_qps is None:
            probe = self.results.get("single_stream") or self.run_single_stream(**settings)
            start_qps = 0.5 / max(float(np.median(probe.latencies)), 1e-9)
        peak, runs = find_peak_server_qps(lambda qps: self._run("server_probe", BenchmarkScenario.SERVER, server_target_qps=qps, **settings), start_qps, tolerance)
        self.results.pop("server_probe", None)
        self.server_search = runs
        passing = [r for r in runs if r.valid]
        if passing:
            best = max(passing, key=lambda r: r.settings["server_target_qps"])
            best.metadata["peak_search"] = [(r.settings["server_target_qps"], r.valid) for r in runs]
            self.results["server"] = best
        return peak

    def run_all_scenarios(self, quick_test: bool = False, **settings: Any) -> dict[str, BenchmarkResult]:
        """SingleStream, MultiStream, the Server peak search, Offline; ``quick_test`` runs each for a moment (not valid)."""
        if quick_test:
            settings = {"min_duration": 0.0, "min_query_count": 8, **settings}
            self.run_single_stream(**settings)
            self.run_multi_stream(**{**settings, "min_query_count": 662})
            self.run_server(target_qps=0.25 / max(float(np.median(self.results["single_stream"].latencies)), 1e-9), **settings)
            self.run_offline(**{"offline_sample_count": 64, **settings})
            return dict(self.results)
        self.run_single_stream(**settings)
        self.run_multi_stream(**settings)
        self.find_peak_server_qps(**settings)
        self.run_offline(**settings)
        return dict(self.results)

    def compare_models(self, model_a: Any, model_b: Any, scenario: str = "single_stream", **settings: Any) -> StatisticalValidation:
        """Run one scenario on both models (same settings, same seed) and compare their latencies."""
        kind = BenchmarkScenario.parse(scenario)
        a = self._run("compare_a", kind, model=model_a, **settings)
        b = self._run("compare_b", kind, model=model_b, **settings)
        return self.validator.validate_comparison(a.latencies, b.latencies)

    def validate(self) -> dict[str, StatisticalValidation]:
        """Each result's trustworthiness (enough queries, spread, LoadGen's rules)."""
        return {key: self.validator.validate_benchmark_result(result) for key, result in self.results.items()}

    def generate_report(self, model_name: str = "TinyTorch model") -> str:
        return self.reporter.generate_project_report(self.results, model_name)

    def save(self, directory: str | Path, model_name: str = "TinyTorch model") -> tuple[Path, Path]:
        """Write ``report.md`` and ``results.json`` into ``directory``; returns their paths."""
        directory = Path(directory)
        markdown = self.reporter.save_report(self.generate_report(model_name), directory / "report.md")
        return markdown, self.reporter.save_json(self.results, directory / "results.json", model_name)

