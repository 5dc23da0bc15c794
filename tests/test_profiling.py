"""MemoryProfiler measures real NumPy allocations through tracemalloc."""

import tracemalloc

import numpy as np
import pytest

from tinytorch import MemoryProfiler

MIB = 2**20
SLACK = 0.05  # MiB of interpreter bookkeeping allowed around a known allocation


def test_sees_a_known_numpy_allocation():
    profiler = MemoryProfiler()
    with profiler.measure("ones") as record:
        kept = np.ones((1024, 1024))  # exactly 8 MiB of float64
    assert record is profiler.records["ones"]
    assert record.calls == 1
    assert record.peak_mb == pytest.approx(8.0, abs=SLACK)
    assert record.net_mb == pytest.approx(8.0, abs=SLACK)  # still alive after the block
    assert record.seconds > 0
    assert profiler.peak_memory_mb == record.peak_mb
    del kept


def test_peak_counts_temporaries_that_net_does_not():
    profiler = MemoryProfiler()
    with profiler.measure("temporary"):
        total = float(np.ones(2 * MIB // 8).sum())  # 2 MiB allocated and freed inside the block
    record = profiler.records["temporary"]
    assert total == 2 * MIB // 8
    assert record.peak_mb == pytest.approx(2.0, abs=SLACK)
    assert abs(record.net_mb) < SLACK


def test_nested_blocks_outer_peak_includes_inner():
    profiler = MemoryProfiler()
    with profiler.measure("outer"):
        a = np.ones(MIB // 8)  # 1 MiB, kept
        with profiler.measure("inner"):
            b = np.ones(4 * MIB // 8)  # 4 MiB, freed after the inner block
        del b
        c = np.ones(2 * MIB // 8)  # 2 MiB, after the inner peak
    outer, inner = profiler.records["outer"], profiler.records["inner"]
    assert inner.peak_mb == pytest.approx(4.0, abs=SLACK)
    assert outer.peak_mb == pytest.approx(5.0, abs=SLACK)  # 1 MiB held + the inner 4 MiB at once
    assert outer.net_mb == pytest.approx(3.0, abs=SLACK)
    assert profiler.peak_memory_mb == pytest.approx(5.0, abs=SLACK)
    del a, c


def test_sibling_blocks_inside_an_outer_block():
    profiler = MemoryProfiler()
    with profiler.measure("outer"):
        with profiler.measure("first"):
            np.ones(3 * MIB // 8).sum()
        kept = np.ones(MIB // 8)
        with profiler.measure("second"):
            np.ones(MIB // 8).sum()
    assert profiler.records["first"].peak_mb == pytest.approx(3.0, abs=SLACK)
    assert profiler.records["second"].peak_mb == pytest.approx(1.0, abs=SLACK)
    assert profiler.records["outer"].peak_mb == pytest.approx(3.0, abs=SLACK)
    del kept


def test_repeated_label_keeps_the_largest_peak_and_counts_calls():
    profiler = MemoryProfiler()
    for mib in (1, 3, 2):
        with profiler.measure("step"):
            np.ones(mib * MIB // 8).sum()
    record = profiler.records["step"]
    assert record.calls == 3
    assert record.peak_mb == pytest.approx(3.0, abs=SLACK)


def test_report_lists_every_label():
    profiler = MemoryProfiler()
    with profiler.measure("forward"):
        kept = np.ones(MIB // 8)
    with profiler.measure("adam_step"):
        np.ones(2 * MIB // 8).sum()
    lines = profiler.report().splitlines()
    assert lines[0].split() == ["label", "calls", "peak", "MB", "net", "MB", "seconds"]
    rows = {line.split()[0]: line.split()[1:] for line in lines[1:]}
    assert set(rows) == {"forward", "adam_step"}
    assert rows["forward"][0] == "1" and float(rows["forward"][1]) == pytest.approx(1.0, abs=SLACK)
    assert float(rows["adam_step"][1]) == pytest.approx(2.0, abs=SLACK)
    profiler.reset()
    assert profiler.records == {} and profiler.peak_memory_mb == 0.0
    del kept


def test_works_when_tracemalloc_was_already_running_and_leaves_it_running():
    tracemalloc.start()
    try:
        profiler = MemoryProfiler()
        with profiler.measure("traced"):
            kept = np.ones(MIB // 8)
        assert tracemalloc.is_tracing()
        assert profiler.records["traced"].peak_mb == pytest.approx(1.0, abs=SLACK)
    finally:
        tracemalloc.stop()
    del kept


def test_stops_tracemalloc_it_started_even_when_the_block_raises():
    assert not tracemalloc.is_tracing()
    profiler = MemoryProfiler()
    with pytest.raises(ZeroDivisionError):
        with profiler.measure("fails"):
            np.ones(MIB // 8).sum()
            1 / 0
    assert not tracemalloc.is_tracing()
    assert profiler.records["fails"].calls == 1
    assert profiler.records["fails"].peak_mb == pytest.approx(1.0, abs=SLACK)


def test_tensor_ops_are_measured_too():
    import tinytorch as tt

    x = tt.ones(512, 512)  # float32: 1 MiB
    profiler = MemoryProfiler()
    with profiler.measure("add"):
        y = x + 1.0
    assert profiler.records["add"].net_mb == pytest.approx(1.0, abs=SLACK)  # float32 stays float32: 1 MiB, not 2
    del y
