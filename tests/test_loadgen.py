"""The four LoadGen scenarios, driven by a virtual clock and simulated systems (exact), and once on a real model."""

import json

import numpy as np
import pytest

import tinytorch as tt
from tinytorch.core.benchmarking import (
    BenchmarkResult,
    BenchmarkScenario,
    BenchmarkScenarios,
    QuerySampleLibrary,
    TestSettings,
    TinyTorchPerf,
    VirtualClock,
    early_stopping_latency,
    find_peak_server_qps,
    min_passing_queries,
    poisson_arrivals,
    run_scenario,
    server_schedule,
)

SAMPLES = np.arange(40, dtype=np.float32).reshape(20, 2)
LABELS = np.arange(20) % 3


class SimulatedSystem:
    """Answers a batch after ``base + per_sample * batch`` seconds of virtual time; outputs one-hot of label."""

    def __init__(self, clock, base=0.004, per_sample=0.001, jitter=0.0, seed=0, wrong_every=0):
        self.clock, self.base, self.per_sample, self.jitter = clock, base, per_sample, jitter
        self.rng = np.random.default_rng(seed)
        self.batches = []
        self.wrong_every = wrong_every

    def __call__(self, batch):
        self.batches.append(len(batch))
        self.clock.advance(self.base + self.per_sample * len(batch) + self.jitter * self.rng.random())
        rows = (batch[:, 0] / 2).astype(int)  # the sample's index in SAMPLES
        labels = LABELS[rows].copy()
        if self.wrong_every:
            labels[rows % self.wrong_every == 0] += 1
        return np.eye(4)[labels]


def run(scenario, system_kwargs=None, **settings):
    clock = VirtualClock()
    system = SimulatedSystem(clock, **(system_kwargs or {}))
    result = run_scenario(system, QuerySampleLibrary(SAMPLES, LABELS), TestSettings(scenario, **settings), clock)
    return result, system


def test_single_stream_runs_until_both_minimums_and_reports_loadgens_p90():
    result, system = run("SingleStream", {"jitter": 0.002}, min_duration=0.5, min_query_count=64)
    assert set(system.batches) == {1}
    assert result.queries == len(result.latencies) >= 64 and result.duration >= 0.5
    assert result.queries == pytest.approx(0.5 / 0.006, abs=2)  # ~6 ms per query on average
    assert result.valid and result.reasons == []
    estimate = early_stopping_latency(result.latencies, 0.9)
    assert result.early_stopping["latency"] == estimate.latency == result.metric[1]
    assert result.metadata["percentile_latency"] == sorted(result.latencies)[int(0.9 * result.queries)]
    assert result.throughput == pytest.approx(result.queries / result.duration)
    assert result.accuracy == 1.0


def test_a_short_single_stream_run_is_invalid_and_says_why():
    result, _ = run("SingleStream", min_duration=0.0, min_query_count=20)
    assert result.queries == 20 and not result.valid and result.early_stopping["latency"] is None
    assert "early stopping needs at least 64 queries for a 90th percentile estimate; the run had 20" in result.reasons
    cut, _ = run("SingleStream", min_duration=10.0, min_query_count=64, max_query_count=70)
    assert cut.queries == 70 and not cut.valid and any("at least 10.0 s" in r for r in cut.reasons)


def test_multi_stream_needs_662_queries_of_8_samples():
    with pytest.raises(ValueError, match="MultiStream needs at least 662 queries"):
        TestSettings("MultiStream", min_query_count=100)
    result, system = run("MultiStream", {"base": 0.0001, "per_sample": 0.0, "jitter": 0.0003}, min_duration=0.0)
    assert result.queries == 662 and set(system.batches) == {8} and result.samples == 662 * 8
    assert result.valid and result.settings["percentile"] == 0.99
    assert result.early_stopping["latency"] == max(result.latencies)  # at n = 662, t = 1: the slowest query


def lindley(arrivals, service):
    """Completion times of a single FIFO server with a fixed service time (independent of the load generator)."""
    done, previous = [], 0.0
    for arrival in arrivals:
        previous = max(arrival, previous) + service
        done.append(previous)
    return np.array(done)


def test_server_latency_runs_from_the_scheduled_arrival_so_queues_count():
    settings = dict(server_target_qps=180.0, min_duration=2.0, min_query_count=100, seed=3, server_target_latency=0.05)
    result, system = run("Server", {"base": 0.005, "per_sample": 0.0}, **settings)
    arrivals = server_schedule(TestSettings("Server", **settings))
    expected = lindley(arrivals, 0.005) - arrivals
    assert np.allclose(result.latencies, expected, rtol=0, atol=1e-12)
    assert max(result.latencies) > 0.01  # at 90 % load queries really waited: timing from dispatch would hide it
    assert result.queries == len(arrivals) and arrivals[-1] >= 2.0 > arrivals[-2]  # stops once 2 s are scheduled


def test_server_schedule_is_poisson_at_the_target_rate_and_reproducible():
    stats = pytest.importorskip("scipy.stats", reason="the KS test against the exponential is scipy's")
    arrivals = poisson_arrivals(250.0, 10_000, seed=7)
    gaps = np.diff(np.concatenate([[0.0], arrivals]))
    assert stats.kstest(gaps, "expon", args=(0, 1 / 250.0)).pvalue > 0.01
    assert (len(arrivals) - 1) / (arrivals[-1] - arrivals[0]) == pytest.approx(250.0, rel=0.02)
    assert np.array_equal(poisson_arrivals(250.0, 100, seed=7), arrivals[:100])
    assert np.allclose(poisson_arrivals(500.0, 100, seed=7), arrivals[:100] / 2)  # same draws, twice the rate


def test_server_validity_follows_the_bound_and_early_stopping():
    easy, _ = run("Server", {"base": 0.002, "per_sample": 0.0}, server_target_qps=50, min_duration=10.0, server_target_latency=0.01)
    assert easy.valid, easy.reasons
    assert easy.metadata["scheduled_qps"] == pytest.approx(50, rel=0.1)
    hard, _ = run("Server", {"base": 0.002, "per_sample": 0.0}, server_target_qps=480, min_duration=2.0, server_target_latency=0.01)
    assert not hard.valid and any("over the 10 ms bound" in r for r in hard.reasons)


def test_server_batching_answers_waiting_queries_together():
    result, system = run("Server", {"base": 0.004, "per_sample": 0.0005}, server_target_qps=400, min_duration=1.0, server_max_batch=8)
    assert max(system.batches) > 1 and max(system.batches) <= 8
    assert result.metadata["mean_batch"] == pytest.approx(np.mean(system.batches))


def test_peak_search_finds_the_highest_passing_rate_within_five_percent():
    settings = dict(min_duration=1.0, min_query_count=500, server_target_latency=0.02, seed=11)

    def at(qps):
        return run("Server", {"base": 0.004, "per_sample": 0.0}, server_target_qps=qps, **settings)[0]

    def passes(qps):  # the rules applied to an independent queue simulation of the same schedule
        arrivals = server_schedule(TestSettings("Server", server_target_qps=qps, **settings))
        latencies = np.sort(lindley(arrivals, 0.004) - arrivals)
        late = int(np.sum(latencies > 0.02))
        return latencies[int(0.99 * len(latencies))] <= 0.02 and len(latencies) >= min_passing_queries(late, 0.99) + late

    peak, runs = find_peak_server_qps(at, start_qps=20.0, tolerance=0.05)
    grid = np.arange(60.0, 200.0, 0.5)
    verdicts = [passes(q) for q in grid]
    best = grid[np.flatnonzero(verdicts)].max()
    assert all(verdicts[: verdicts.index(False)]) and not any(verdicts[verdicts.index(False):])  # one threshold
    assert passes(peak) and at(peak).valid
    assert best / 1.05 <= peak <= best + 0.5
    assert [r.settings["server_target_qps"] for r in runs][:3] == [20.0, 40.0, 80.0]


def test_offline_sends_every_sample_in_one_query_in_batches():
    result, system = run("Offline", {"base": 0.001, "per_sample": 0.0001, "wrong_every": 4}, offline_sample_count=100, offline_batch_size=32, min_duration=0.0)
    assert system.batches == [32, 32, 32, 4] and result.samples == 100 and result.queries == 1
    assert result.duration == pytest.approx(4 * 0.001 + 100 * 0.0001)
    assert result.throughput == pytest.approx(100 / result.duration)
    assert result.accuracy == pytest.approx(0.75, abs=0.06)
    short, _ = run("Offline", offline_sample_count=10, min_duration=1.0)
    assert not short.valid and "raise offline_sample_count" in short.reasons[0]


def test_runs_are_reproducible_from_the_seed_and_round_trip_through_json():
    first, _ = run("SingleStream", {"jitter": 0.001}, min_duration=0.2, min_query_count=64, seed=5)
    second, _ = run("SingleStream", {"jitter": 0.001}, min_duration=0.2, min_query_count=64, seed=5)
    assert first.latencies == second.latencies and first.to_dict() == second.to_dict()
    data = json.loads(first.to_json())
    assert data["settings"]["seed"] == 5 and data["percentiles_s"]["90"] == sorted(first.latencies)[int(0.9 * first.queries)]
    assert BenchmarkResult.from_dict(data).to_dict() == first.to_dict()


def test_a_real_model_through_the_harness_and_its_report(tmp_path):
    model = tt.Sequential(tt.Dense(2, 8), tt.ReLU(), tt.Dense(8, 3))
    perf = TinyTorchPerf(model, SAMPLES, LABELS, min_duration=0.0)
    results = perf.run_all_scenarios(quick_test=True)
    assert list(results) == ["single_stream", "multi_stream", "server", "offline"]
    assert results["multi_stream"].queries == 662 and results["multi_stream"].valid
    assert not results["single_stream"].valid  # a quick test is too short for LoadGen's rules, and says so
    assert 0.0 <= results["offline"].accuracy <= 1.0
    markdown, data = perf.save(tmp_path, "tiny MLP")
    text = markdown.read_text()
    assert "| MultiStream | VALID |" in text and "| SingleStream | INVALID |" in text
    saved = json.loads(data.read_text())
    assert saved["model"] == "tiny MLP" and saved["results"]["offline"]["samples"] == 64
    assert {"cpu", "numpy", "kernels", "date"} <= set(saved["environment"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.md", "results.json"]


def test_compare_models_uses_the_same_settings_for_both():
    clock = VirtualClock()
    fast, slow = SimulatedSystem(clock, 0.004, 0.0, 0.001, seed=1), SimulatedSystem(clock, 0.005, 0.0, 0.001, seed=2)
    perf = TinyTorchPerf(dataset=SAMPLES, clock=clock)
    verdict = perf.compare_models(fast, slow, "single_stream", min_duration=0.0, min_query_count=100)
    assert verdict.is_significant and verdict.effect_size == pytest.approx(0.2, abs=0.05)
    assert len(fast.batches) == len(slow.batches) == 100


def test_scenarios_accept_the_original_courses_arguments():
    clock = VirtualClock()
    scenarios = BenchmarkScenarios(clock)
    system = SimulatedSystem(clock)
    result = scenarios.single_stream(system, SAMPLES, num_queries=30)
    assert result.scenario is BenchmarkScenario.SINGLE_STREAM and result.queries == 30
    assert scenarios.server(system, SAMPLES, target_qps=20.0, duration=1.0).settings["server_target_qps"] == 20.0
    assert scenarios.offline(system, SAMPLES, batch_size=5, offline_sample_count=20).metadata["batches"] == 4
    with pytest.raises(ValueError, match="unknown scenario 'Batch'"):
        TestSettings("Batch")
    with pytest.raises(ValueError, match="20 samples but 3 labels"):
        QuerySampleLibrary(SAMPLES, [1, 2, 3])
