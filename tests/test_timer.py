"""Timer, Measurement and Compare: the statistics on known block times, and the timing loop's rules."""

import numpy as np
import pytest

from tinytorch.core import kernels
from tinytorch.core.benchmarking import Compare, Measurement, Timer
from tinytorch.core.benchmarking.timer import TaskSpec


def measurement(times, number=10, **spec):
    return Measurement(number, [t * number for t in times], TaskSpec(spec.pop("stmt", "f()"), **spec))


def test_median_iqr_and_the_spread_warning():
    steady = measurement([1.00e-3, 1.01e-3, 1.02e-3, 0.99e-3, 1.00e-3])
    assert steady.median == pytest.approx(1.00e-3) and steady.times == pytest.approx([1.00e-3, 1.01e-3, 1.02e-3, 0.99e-3, 1.00e-3])
    assert steady.iqr == pytest.approx(np.quantile(steady.times, 0.75) - np.quantile(steady.times, 0.25))
    assert not steady.has_warnings and steady.meets_confidence(0.1)
    noisy = measurement([1e-3, 1.2e-3, 0.8e-3, 1.3e-3, 0.7e-3, 1e-3])
    assert noisy.spread > 0.25 and noisy.has_warnings
    assert "significant environmental influence" in noisy.warnings[0]
    mild = measurement([1e-3, 1.09e-3, 0.91e-3, 1e-3, 1.08e-3, 0.92e-3])
    assert 0.10 < mild.spread <= 0.25 and "system fluctuation" in mild.warnings[0]
    assert "WARNING: Interquartile range" in repr(noisy) and "6 measurements, 10 runs per measurement, 1 thread" in repr(noisy)


def test_significant_figures_follow_the_spread():
    tight = measurement([1e-3 * (1 + 1e-5 * i) for i in range(20)])
    loose = measurement([1e-3 * (1 + 0.05 * (i % 5)) for i in range(20)])
    assert tight.significant_figures == 4 and loose.significant_figures == 1


def test_blocked_autorange_grows_the_block_and_measures_long_enough():
    m = Timer("x + 1", globals={"x": 1}).blocked_autorange(min_run_time=0.05)
    assert m.number_per_run >= 100  # one addition is far below the clock's resolution: blocks of many calls
    assert sum(m.raw_times) >= 0.05
    assert m.task_spec.stmt == "x + 1" and m.task_spec.num_threads == 1


def test_a_callable_statement_and_timeit():
    calls = []
    m = Timer(lambda: calls.append(1)).timeit(number=25)
    assert m.number_per_run == 25 and len(m.raw_times) == 1 and len(calls) == 26  # one warm-up call first
    assert m.task_spec.stmt.endswith("<lambda>")


def test_adaptive_autorange_stops_when_the_spread_is_small_or_time_is_up():
    m = Timer("sum(range(200))").adaptive_autorange(threshold=0.5, min_run_time=0.01, max_run_time=2.0)
    assert len(m.times) >= 4 and (m.meets_confidence(0.5) or sum(m.raw_times) > 2.0)


def test_kernel_threads_are_set_while_timing_and_restored():
    if not kernels.compiled_available():
        pytest.skip("the thread count belongs to the compiled kernels, which are not built here")
    before = kernels.get_num_threads()
    seen = []
    Timer(lambda: seen.append(kernels.get_num_threads()), num_threads=2).timeit(3)
    assert set(seen) == {2} and kernels.get_num_threads() == before
    with pytest.raises(ValueError, match="num_threads must be a positive int"):
        Timer("pass", num_threads=0)


def test_compare_lays_out_labels_rows_and_columns():
    results = [
        measurement([2e-6] * 5, label="reduce", sub_label="sum", description="n=1k"),
        measurement([8e-6] * 5, label="reduce", sub_label="sum", description="n=1M"),
        measurement([3e-6] * 5, label="reduce", sub_label="max", description="n=1k"),
        measurement([9e-6] * 5, label="reduce", sub_label="max", description="n=1M"),
    ]
    lines = str(Compare(results)).splitlines()
    assert lines[0].startswith("[") and " reduce " in lines[0]
    assert [c.strip() for c in lines[1].split("|")] == ["", "n=1k", "n=1M"]
    assert lines[2].startswith("1 threads:")
    assert [c.strip() for c in lines[3].split("|")] == ["sum", "2.0", "8.0"]
    assert [c.strip() for c in lines[4].split("|")] == ["max", "3.0", "9.0"]
    assert lines[-1] == "Times are in microseconds (us)."
    noisy = measurement([1e-3, 1.3e-3, 0.7e-3, 1.2e-3, 0.8e-3], label="x", sub_label="noisy", description="d")
    compare = Compare([noisy])
    compare.highlight_warnings()
    compare.colorize()
    text = str(compare)
    assert "(! " in text and "\033[32m" in text
    with pytest.raises(ValueError, match="at least one Measurement"):
        Compare([])
