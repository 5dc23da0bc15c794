"""LoadGen's percentile and early-stopping rules, and the comparison statistics, against independent figures."""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tinytorch.core.benchmarking import (
    BenchmarkResult,
    BenchmarkScenario,
    StatisticalValidator,
    early_stopping_latency,
    early_stopping_odds,
    mann_whitney_p_value,
    min_passing_queries,
    percentile,
    server_early_stopping,
)


@given(st.lists(st.floats(0, 10, allow_nan=False), min_size=1, max_size=200), st.floats(0, 0.999))
def test_percentile_is_the_sorted_value_at_int_n_p(values, p):
    assert percentile(values, p) == sorted(values)[int(len(values) * p)]


def test_percentile_does_not_interpolate():
    values = [5.0, 1.0, 4.0, 2.0, 3.0]
    assert percentile(values, 0.9) == 5.0 and np.percentile(values, 90) == pytest.approx(4.6)
    assert percentile(list(range(100)), 0.9) == 90  # the 91st smallest
    with pytest.raises(ValueError, match=r"p must be a fraction in \[0, 1\), got 1.0"):
        percentile(values, 1.0)
    with pytest.raises(ValueError, match="at least one value"):
        percentile([], 0.5)


def test_odds_equal_the_regularized_incomplete_beta():
    special = pytest.importorskip("scipy.special", reason="scipy's betainc is the independent oracle for the binomial CDF")
    for h, t, p in [(1, 0, 0.9), (63, 1, 0.9), (64, 1, 0.9), (661, 1, 0.99), (2000, 10, 0.99), (12471, 100, 0.99), (500, 37, 0.9)]:
        assert early_stopping_odds(h, t, p) == pytest.approx(special.betainc(h, t + 1, p), rel=1e-9, abs=1e-300)


def test_minimum_queries_match_loadgen():
    assert min_passing_queries(1, 0.90) + 1 == 64  # "Processed at least 64 queries"
    assert min_passing_queries(1, 0.99) + 1 == 662  # MultiStream's min_query_count
    assert min_passing_queries(1, 0.999) + 1 == 6636
    assert [min_passing_queries(t, 0.99) + t for t in (0, 1, 10, 100)] == [459, 662, 2010, 12571]
    for t, p in [(0, 0.99), (5, 0.9), (40, 0.99)]:  # the first h whose odds fall below 1 %
        h = min_passing_queries(t, p)
        assert early_stopping_odds(h, t, p) < 0.01 <= early_stopping_odds(h - 1, t, p)


def loadgen_estimate(latencies, p):
    """LoadGen's loop, literally (results.cc, SingleStream/MultiStream): walk i upwards until n < h(i) + i."""
    n, ordered = len(latencies), sorted(latencies)
    h_min = min_passing_queries(1, p)
    if n < h_min + 1:
        return None
    t = 1
    for i in range(2, n + 1):
        if n < min_passing_queries(i, p) + i:
            t = i - 1
            break
    return ordered[n - t], t - 1


@pytest.mark.parametrize("n, p", [(64, 0.9), (65, 0.9), (100, 0.9), (333, 0.9), (1000, 0.9), (662, 0.99), (1500, 0.99)])
def test_early_stopping_estimate_matches_loadgens_loop(n, p):
    latencies = np.random.default_rng(n).lognormal(0, 0.5, n)
    estimate = early_stopping_latency(latencies, p)
    assert (estimate.latency, estimate.discarded) == loadgen_estimate(latencies, p)
    assert estimate.latency >= percentile(latencies, p)  # conservative: never below the plain percentile


def test_no_estimate_below_the_minimum():
    estimate = early_stopping_latency(np.ones(63), 0.9)
    assert not estimate.valid and estimate.latency is None and estimate.min_queries == 64
    assert early_stopping_latency(np.ones(661), 0.99).latency is None
    assert early_stopping_latency(np.ones(662), 0.99).latency == 1.0


def test_server_early_stopping_counts_late_queries():
    on_time = np.full(459, 0.01)
    assert server_early_stopping(on_time, 0.015).passed
    assert not server_early_stopping(on_time[:458], 0.015).passed
    late = np.concatenate([np.full(651, 0.01), np.full(10, 0.02)])  # 661 queries, 10 late: needs 2010
    verdict = server_early_stopping(late, 0.015)
    assert (verdict.overlatency, verdict.needed, verdict.passed) == (10, 2010, False)


def test_mann_whitney_matches_scipy_with_ties():
    stats = pytest.importorskip("scipy.stats", reason="scipy's mannwhitneyu is the oracle")
    rng = np.random.default_rng(0)
    for a, b in [
        (rng.normal(1, 0.1, 40), rng.normal(1.05, 0.1, 55)),
        (rng.integers(0, 5, 30).astype(float), rng.integers(1, 6, 25).astype(float)),  # many ties
        (rng.lognormal(0, 1, 200), rng.lognormal(0, 1, 200)),
    ]:
        expected = stats.mannwhitneyu(a, b, alternative="two-sided", method="asymptotic").pvalue
        assert mann_whitney_p_value(a, b) == pytest.approx(expected, rel=1e-9)


def test_validator_separates_real_differences_from_noise():
    rng = np.random.default_rng(1)
    fast, slow = rng.lognormal(np.log(0.010), 0.05, 200), rng.lognormal(np.log(0.012), 0.05, 200)
    verdict = StatisticalValidator().validate_comparison(fast, slow)
    assert verdict.is_significant and verdict.p_value < 1e-10
    assert verdict.effect_size == pytest.approx(np.median(slow) / np.median(fast) - 1)
    low, high = verdict.confidence_interval
    assert low < 0.2 < high and low > 0.1  # the true change is +20 %
    assert "higher than A's" in verdict.recommendation
    same = StatisticalValidator().validate_comparison(fast, rng.permutation(fast))
    assert not same.is_significant and same.confidence_interval[0] <= 0 <= same.confidence_interval[1]
    again = StatisticalValidator().validate_comparison(fast, slow)
    assert again.confidence_interval == verdict.confidence_interval  # seeded bootstrap


def test_validator_judges_a_single_result():
    steady = BenchmarkResult(BenchmarkScenario.SINGLE_STREAM, list(np.linspace(0.0100, 0.0104, 200)), 98.0)
    verdict = StatisticalValidator().validate_benchmark_result(steady)
    assert verdict.is_significant and math.isnan(verdict.p_value)
    assert verdict.confidence_interval[0] <= np.median(steady.latencies) <= verdict.confidence_interval[1]
    noisy = BenchmarkResult(BenchmarkScenario.SINGLE_STREAM, [0.01, 0.02] * 20, 66.0, valid=False, reasons=["too short"])
    verdict = StatisticalValidator().validate_benchmark_result(noisy)
    assert not verdict.is_significant
    assert "only 40 measurements" in verdict.recommendation and "above 10 %" in verdict.recommendation
    assert "too short" in verdict.recommendation
