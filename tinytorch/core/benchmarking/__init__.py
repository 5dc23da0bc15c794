"""Benchmarking (lesson 14): timing code, MLPerf's four inference scenarios, their statistics and reports.

- ``Timer``, ``Measurement``, ``Compare`` (``timer.py``): time a piece of code as
  ``torch.utils.benchmark`` does: warm-up, blocks of calls, median and IQR, a warning when noisy.
- ``BenchmarkScenario``, ``TestSettings`` (``settings.py``) and the load generator (``loadgen.py``):
  SingleStream, MultiStream, Server and Offline as MLPerf LoadGen runs them, on any model.
- ``percentile``, early stopping, ``StatisticalValidator`` (``statistics.py``): LoadGen's rules for
  how many queries a percentile needs, and comparisons of two runs.
- ``BenchmarkResult`` (``results.py``), ``PerformanceReporter`` (``report.py``): what a run
  measured, as a summary, Markdown and JSON.
- ``TinyTorchPerf``, ``BenchmarkScenarios`` (``harness.py``): all of it on one model.

The op profiler and the FLOP counter live in ``tinytorch.core.profiling`` (``conv2d_flops`` is
re-exported here for lesson 14's exercises); ``tito benchmark`` runs the scenarios on a saved model.
"""

from ..flops import conv2d_flops
from .harness import BenchmarkScenarios, TinyTorchPerf, as_sut
from .loadgen import (
    ModelSUT,
    QuerySampleLibrary,
    RealClock,
    VirtualClock,
    find_peak_server_qps,
    poisson_arrivals,
    run_scenario,
    server_schedule,
)
from .report import PerformanceReporter
from .results import BenchmarkResult
from .settings import MULTI_STREAM_MIN_QUERIES, BenchmarkScenario, TestSettings
from .statistics import (
    EarlyStoppingEstimate,
    StatisticalValidation,
    StatisticalValidator,
    early_stopping_latency,
    early_stopping_odds,
    mann_whitney_p_value,
    min_passing_queries,
    percentile,
    server_early_stopping,
)
from .timer import Compare, Measurement, Timer

__all__ = [
    "Timer", "Measurement", "Compare",
    "BenchmarkScenario", "TestSettings", "MULTI_STREAM_MIN_QUERIES",
    "run_scenario", "poisson_arrivals", "server_schedule", "find_peak_server_qps",
    "ModelSUT", "QuerySampleLibrary", "RealClock", "VirtualClock",
    "percentile", "early_stopping_odds", "min_passing_queries", "early_stopping_latency", "EarlyStoppingEstimate",
    "server_early_stopping", "mann_whitney_p_value", "StatisticalValidation", "StatisticalValidator",
    "BenchmarkResult", "PerformanceReporter", "BenchmarkScenarios", "TinyTorchPerf", "as_sut", "conv2d_flops",
]  # fmt: skip
