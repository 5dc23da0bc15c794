"""A load generator after MLPerf's LoadGen: issue queries to a system under test, time the answers.

The *system under test* (SUT) is any callable that takes a batch of samples (an array whose first
axis is the batch) and returns the outputs: :class:`ModelSUT` wraps a TinyTorch model. The samples
come from a *query sample library*: an array of inputs (and, optionally, their labels, to report
accuracy). Which samples go into which query, and when a Server query arrives, is drawn from a
seeded generator, so a run is reproducible from its settings.

Latency is measured from the moment a query was *scheduled* to the moment its answer came back.
In the Server scenario a query that arrives while the system is busy waits, and that wait is part
of its latency: timing from when the system got round to it would hide the queue ("coordinated
omission", the error of closed-loop load testers).
"""

from __future__ import annotations

import math
import time
from typing import Any, Callable, Protocol

import numpy as np

from ..exercises import exercise
from .results import BenchmarkResult
from .settings import BenchmarkScenario, TestSettings
from .statistics import early_stopping_latency, percentile, server_early_stopping


@exercise
def poisson_arrivals(qps: float, count: int, seed: int | np.random.Generator = 0) -> np.ndarray:
    """Arrival times (seconds from the start) of ``count`` queries of a Poisson process at ``qps`` per second.

    In a Poisson process the gaps between arrivals are independent and exponentially distributed
    with mean ``1 / qps``: arrivals come at random, sometimes in bursts, never on a beat. Arrival i
    is the sum of the first i + 1 gaps, so the first query arrives after one gap and the times only
    grow.

    Parameters
    ----------
    qps : float
        The average rate, queries per second.
    count : int
        How many arrivals.
    seed : int or numpy.random.Generator
        The same seed gives the same arrivals.

    Returns
    -------
    numpy.ndarray
        float64, shape (count,), increasing.
    """
    if not qps > 0:
        raise ValueError(f"poisson_arrivals: qps must be positive, got {qps}")
    if count < 0:
        raise ValueError(f"poisson_arrivals: count must not be negative, got {count}")
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    # Unit-rate gaps divided by the rate: the same seed at twice the rate gives exactly half the times,
    # so a search over rates compares like with like.
    return np.cumsum(rng.standard_exponential(int(count)) / qps)


# -- time -------------------------------------------------------------------------------------------------
class Clock(Protocol):
    def now(self) -> float: ...

    def sleep_until(self, moment: float) -> None: ...


class RealClock:
    """``time.perf_counter``; waits sleep until ~1 ms before the moment, then spin, for sub-millisecond accuracy."""

    def now(self) -> float:
        return time.perf_counter()

    def sleep_until(self, moment: float) -> None:
        while True:
            left = moment - time.perf_counter()
            if left <= 0:
                return
            if left > 0.002:
                time.sleep(left - 0.001)


class VirtualClock:
    """A clock that only moves when told: simulated systems advance it by their service time (for tests)."""

    def __init__(self) -> None:
        self.time = 0.0

    def now(self) -> float:
        return self.time

    def sleep_until(self, moment: float) -> None:
        self.time = max(self.time, moment)

    def advance(self, seconds: float) -> None:
        self.time += seconds


# -- the system under test ------------------------------------------------------------------------------------
class ModelSUT:
    """A TinyTorch model as a system under test: no graph, arrays in and out.

    The model is put in evaluation mode (batch norm on its running statistics, no dropout) when
    the SUT is made: inference is what the scenarios measure.
    """

    def __init__(self, model: Any, dtype: Any = None):
        self.model = model
        parameters = model.parameters() if hasattr(model, "parameters") else []
        self.dtype = np.dtype(dtype) if dtype is not None else (parameters[0].dtype if parameters else np.float32)
        if hasattr(model, "eval"):
            model.eval()

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        from ..autograd import no_grad
        from ..tensor import Tensor

        with no_grad():
            out = self.model(Tensor(batch, dtype=self.dtype) if batch.dtype.kind == "f" else Tensor(batch, dtype=batch.dtype))
        return out.data if isinstance(out, Tensor) else np.asarray(out)


class QuerySampleLibrary:
    """The samples queries are made of, with optional labels for an accuracy figure."""

    def __init__(self, samples: Any, labels: Any = None):
        from ..tensor import Tensor

        self.samples = np.asarray(samples.data if isinstance(samples, Tensor) else samples)
        if self.samples.ndim < 1 or len(self.samples) == 0:
            raise ValueError(f"QuerySampleLibrary: needs at least one sample, got an array of shape {self.samples.shape}")
        self.labels = None if labels is None else np.asarray(labels.data if isinstance(labels, Tensor) else labels)
        if self.labels is not None and len(self.labels) != len(self.samples):
            raise ValueError(f"QuerySampleLibrary: {len(self.samples)} samples but {len(self.labels)} labels")

    def __len__(self) -> int:
        return len(self.samples)


class _Accuracy:
    """Counts correct top-1 answers of a classifier's outputs, when there are labels."""

    def __init__(self, library: QuerySampleLibrary):
        self.labels = library.labels
        self.correct = self.seen = 0

    def add(self, indices: np.ndarray, outputs: np.ndarray) -> None:
        if self.labels is None or outputs.ndim != 2 or outputs.shape[0] != len(indices):
            return
        self.correct += int(np.count_nonzero(outputs.argmax(axis=1) == self.labels[indices]))
        self.seen += len(indices)

    @property
    def value(self) -> float | None:
        return self.correct / self.seen if self.seen else None


# -- running a scenario ----------------------------------------------------------------------------------------
def run_scenario(
    sut: Callable[[np.ndarray], Any], library: QuerySampleLibrary, settings: TestSettings, clock: Clock | None = None
) -> BenchmarkResult:
    """Run one scenario on ``sut`` with samples from ``library``; returns what was measured and the verdict."""
    clock = clock or RealClock()
    runner = {
        BenchmarkScenario.SINGLE_STREAM: _closed_loop,
        BenchmarkScenario.MULTI_STREAM: _closed_loop,
        BenchmarkScenario.SERVER: _server,
        BenchmarkScenario.OFFLINE: _offline,
    }[settings.scenario]
    return runner(sut, library, settings, clock)


def _enough(settings: TestSettings, queries: int, elapsed: float) -> bool:
    return queries >= settings.min_query_count and elapsed >= settings.min_duration


def _cut_short(settings: TestSettings, queries: int, elapsed: float) -> bool:
    over_count = settings.max_query_count is not None and queries >= settings.max_query_count
    over_time = settings.max_duration is not None and elapsed >= settings.max_duration
    return over_count or over_time


def _minimum_reasons(settings: TestSettings, queries: int, elapsed: float) -> list[str]:
    reasons = []
    if queries < settings.min_query_count:
        reasons.append(f"only {queries} queries; the settings ask for at least {settings.min_query_count}")
    if elapsed < settings.min_duration:
        reasons.append(f"ran {elapsed:.3f} s; the settings ask for at least {settings.min_duration} s")
    return reasons


def _closed_loop(sut: Callable, library: QuerySampleLibrary, settings: TestSettings, clock: Clock) -> BenchmarkResult:
    """SingleStream and MultiStream: the next query is issued the moment the previous one is answered."""
    rng = np.random.default_rng(settings.seed)
    accuracy = _Accuracy(library)
    per_query = settings.samples_per_query
    latencies: list[float] = []
    start = clock.now()
    while not _enough(settings, len(latencies), clock.now() - start):
        if _cut_short(settings, len(latencies), clock.now() - start):
            break
        indices = rng.integers(0, len(library), size=per_query)
        issued = clock.now()
        outputs = sut(library.samples[indices])
        latencies.append(clock.now() - issued)
        accuracy.add(indices, np.asarray(outputs))
    elapsed = clock.now() - start
    estimate = early_stopping_latency(latencies, settings.percentile)
    reasons = _minimum_reasons(settings, len(latencies), elapsed)
    if not estimate.valid:
        reasons.append(
            f"early stopping needs at least {estimate.min_queries} queries for a {100 * settings.percentile:g}th "
            f"percentile estimate; the run had {estimate.queries}"
        )
    return BenchmarkResult(
        settings.scenario, latencies, len(latencies) * per_query / elapsed if elapsed > 0 else math.inf,
        accuracy.value, {"target_percentile": settings.percentile,
                         "percentile_latency": percentile(latencies, settings.percentile)},
        settings.to_dict(), not reasons, reasons, _estimate_dict(estimate), len(latencies), len(latencies) * per_query, elapsed,
    )  # fmt: skip


def _estimate_dict(estimate: Any) -> dict[str, Any]:
    return {
        "percentile": estimate.percentile, "latency": estimate.latency, "min_queries": estimate.min_queries,
        "queries": estimate.queries, "discarded_slowest": estimate.discarded,
    }  # fmt: skip


def server_schedule(settings: TestSettings) -> np.ndarray:
    """The Server scenario's arrival times, as LoadGen generates them: queries are added until there are
    ``min_query_count`` of them *and* the last one is scheduled at or after ``min_duration``.

    The draws come from one seeded stream of unit-rate gaps, so the same seed at twice the rate
    gives the same pattern twice as fast: a search over rates compares like with like.
    """
    rng = np.random.default_rng(settings.seed)
    unit = np.cumsum(rng.standard_exponential(max(settings.min_query_count, 64)))
    horizon = settings.min_duration * settings.server_target_qps  # min_duration in unit-rate time
    while unit[-1] < horizon:
        unit = np.concatenate([unit, unit[-1] + np.cumsum(rng.standard_exponential(len(unit)))])
    count = max(settings.min_query_count, int(np.searchsorted(unit, horizon)) + 1)
    arrivals = unit[:count] / settings.server_target_qps
    if settings.max_query_count is not None:
        arrivals = arrivals[: settings.max_query_count]
    if settings.max_duration is not None:
        kept = arrivals[arrivals <= settings.max_duration]
        arrivals = kept if kept.size else arrivals[:1]
    return arrivals


def _server(sut: Callable, library: QuerySampleLibrary, settings: TestSettings, clock: Clock) -> BenchmarkResult:
    """Queries arrive on a Poisson schedule; each one's latency runs from its scheduled arrival to its answer.

    One query (or, with ``server_max_batch > 1``, every query already waiting, up to that many) is
    answered at a time; queries that arrive meanwhile wait their turn.
    """
    arrivals = server_schedule(settings)
    rng = np.random.default_rng([settings.seed, 1])
    samples = rng.integers(0, len(library), size=len(arrivals))
    accuracy = _Accuracy(library)
    latencies = np.empty(len(arrivals))
    batches: list[int] = []
    start = clock.now()
    i = 0
    while i < len(arrivals):
        clock.sleep_until(start + arrivals[i])
        now = clock.now() - start
        j = i + 1
        while j < len(arrivals) and j - i < settings.server_max_batch and arrivals[j] <= now:
            j += 1
        outputs = sut(library.samples[samples[i:j]])
        done = clock.now() - start
        latencies[i:j] = done - arrivals[i:j]
        accuracy.add(samples[i:j], np.asarray(outputs))
        batches.append(j - i)
        i = j
    n = len(arrivals)
    finished = float(np.max(arrivals + latencies))
    verdict = server_early_stopping(latencies, settings.server_target_latency, settings.percentile)
    measured = percentile(latencies, settings.percentile)
    reasons = _minimum_reasons(settings, n, float(arrivals[-1]))
    if measured > settings.server_target_latency:
        reasons.append(
            f"the {100 * settings.percentile:g}th percentile latency {1000 * measured:.3f} ms is over the "
            f"{1000 * settings.server_target_latency:g} ms bound: lower the target rate"
        )
    if not verdict.passed:
        reasons.append(
            f"early stopping: {verdict.overlatency} queries were over the bound, so at least {verdict.needed} "
            f"queries are needed; the run had {n}"
        )
    metadata = {
        "target_qps": settings.server_target_qps,
        "scheduled_qps": (n - 1) / float(arrivals[-1] - arrivals[0]) if n > 1 else math.nan,
        "completed_qps": n / finished if finished > 0 else math.inf,
        "percentile_latency": measured,
        "latency_bound": settings.server_target_latency,
        "mean_batch": float(np.mean(batches)),
    }
    early = {"overlatency_queries": verdict.overlatency, "queries_needed": verdict.needed, "passed": verdict.passed,
             "percentile": settings.percentile, "latency": measured if verdict.passed else None}  # fmt: skip
    return BenchmarkResult(
        settings.scenario, latencies.tolist(), n / finished if finished > 0 else math.inf, accuracy.value, metadata,
        settings.to_dict(), not reasons, reasons, early, n, n, finished,
    )  # fmt: skip


def _offline(sut: Callable, library: QuerySampleLibrary, settings: TestSettings, clock: Clock) -> BenchmarkResult:
    """One query holding every sample; the system answers it in batches of ``offline_batch_size``."""
    rng = np.random.default_rng(settings.seed)
    count = settings.offline_sample_count
    indices = rng.permutation(np.resize(np.arange(len(library)), count))  # every sample as often as the count allows
    accuracy = _Accuracy(library)
    batch_times = []
    start = clock.now()
    for begin in range(0, count, settings.offline_batch_size):
        chunk = indices[begin : begin + settings.offline_batch_size]
        t0 = clock.now()
        outputs = sut(library.samples[chunk])
        batch_times.append(clock.now() - t0)
        accuracy.add(chunk, np.asarray(outputs))
    elapsed = clock.now() - start
    reasons = []
    if elapsed < settings.min_duration:
        reasons.append(
            f"ran {elapsed:.3f} s; the settings ask for at least {settings.min_duration} s: raise offline_sample_count "
            "(tito benchmark --offline-samples)"
        )
    metadata = {"batch_size": settings.offline_batch_size, "batches": len(batch_times), "batch_latencies": batch_times}
    return BenchmarkResult(
        settings.scenario, [elapsed], count / elapsed if elapsed > 0 else math.inf, accuracy.value, metadata,
        settings.to_dict(), not reasons, reasons, None, 1, count, elapsed,
    )  # fmt: skip


# -- the Server scenario's search ---------------------------------------------------------------------------------
def find_peak_server_qps(
    run_at: Callable[[float], BenchmarkResult], start_qps: float, tolerance: float = 0.05, max_runs: int = 30
) -> tuple[float | None, list[BenchmarkResult]]:
    """The highest target rate at which ``run_at(qps)`` gives a valid Server result, within ``tolerance``.

    Like LoadGen's ``FindPeakPerformance`` mode: from ``start_qps`` the rate is halved until a run
    passes (or doubled until one fails), then the bracket is bisected (geometrically) until the
    failing rate is within ``tolerance`` of the passing one. Returns (the highest passing rate, or
    None when even the lowest tried failed; every run, in order).
    """
    if not start_qps > 0:
        raise ValueError(f"find_peak_server_qps: start_qps must be positive, got {start_qps}")
    runs: list[BenchmarkResult] = []

    def passes(qps: float) -> bool:
        result = run_at(qps)
        runs.append(result)
        return result.valid

    low, high = None, None
    qps = start_qps
    if passes(qps):
        low = qps
        while high is None and len(runs) < max_runs:
            qps *= 2
            if passes(qps):
                low = qps
            else:
                high = qps
    else:
        high = qps
        while low is None and len(runs) < max_runs:
            qps /= 2
            if passes(qps):
                low = qps
            else:
                high = qps
    if low is None or high is None:
        return low, runs
    while high > low * (1 + tolerance) and len(runs) < max_runs:
        middle = math.sqrt(low * high)
        if passes(middle):
            low = middle
        else:
            high = middle
    return low, runs
