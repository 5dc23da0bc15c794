"""Measure the memory that NumPy actually allocates while a block of code runs.

NumPy reports every array allocation to Python's ``tracemalloc``, so the numbers here are
measured, not computed from shapes. ``MemoryProfiler.measure(label)`` records, for each run of a
block, its *peak* (the most memory the block held above what was allocated when it started) and
its *net* allocation (what it left allocated when it ended), plus wall time.

>>> import numpy as np
>>> profiler = MemoryProfiler()
>>> with profiler.measure("ones"):
...     a = np.ones((1024, 1024))            # 8 MiB of float64
>>> round(profiler.peak_memory_mb)
8

MB here means MiB, 2**20 bytes.

This module is also where the course looks for the other measuring tools of lesson 14: the op
profiler (:class:`Profiler`, in ``op_profiler.py``) and the FLOP counter (:func:`count_flops`, in
``flops.py``).
"""

from __future__ import annotations

import time
import tracemalloc
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

from .flops import CONVENTION, FlopCount, FlopCounter, conv2d_flops, count_flops, matmul_flops
from .op_profiler import Profiler, record_function

__all__ = [
    "MemoryProfiler", "MemoryRecord", "Profiler", "record_function",
    "count_flops", "FlopCount", "FlopCounter", "conv2d_flops", "matmul_flops", "CONVENTION",
]  # fmt: skip

MB = float(2**20)


@dataclass
class MemoryRecord:
    """What was measured for one label, over all its runs."""

    calls: int = 0
    peak_mb: float = 0.0  # the largest peak of any run
    net_mb: float = 0.0  # net allocation of the latest run
    seconds: float = 0.0  # total wall time of all runs


class _Frame:
    def __init__(self, start_bytes: int):
        self.start = start_bytes
        self.peak = start_bytes


class MemoryProfiler:
    """Per-label memory measurements; blocks may nest (an outer block's peak includes its inner ones)."""

    def __init__(self) -> None:
        self.records: dict[str, MemoryRecord] = {}
        self._frames: list[_Frame] = []

    @contextmanager
    def measure(self, label: str) -> Iterator[MemoryRecord]:
        """Measure the block; yields the label's record (filled in when the block ends)."""
        started_tracing = not tracemalloc.is_tracing()
        if started_tracing:
            tracemalloc.start()
        current, peak = tracemalloc.get_traced_memory()
        for frame in self._frames:  # reset_peak() below would hide the outer blocks' peaks
            frame.peak = max(frame.peak, peak)
        tracemalloc.reset_peak()
        frame = _Frame(current)
        self._frames.append(frame)
        record = self.records.setdefault(label, MemoryRecord())
        t0 = time.perf_counter()
        try:
            yield record
        finally:
            elapsed = time.perf_counter() - t0
            current, peak = tracemalloc.get_traced_memory()
            self._frames.pop()
            frame.peak = max(frame.peak, peak)
            for outer in self._frames:
                outer.peak = max(outer.peak, frame.peak)
            if started_tracing:
                tracemalloc.stop()
            record.calls += 1
            record.peak_mb = max(record.peak_mb, (frame.peak - frame.start) / MB)
            record.net_mb = (current - frame.start) / MB
            record.seconds += elapsed

    @property
    def peak_memory_mb(self) -> float:
        """The largest peak measured under any label (0.0 before any measurement)."""
        return max((r.peak_mb for r in self.records.values()), default=0.0)

    def reset(self) -> None:
        self.records.clear()

    def report(self) -> str:
        """A table of every label: runs, peak MB, net MB of the latest run, total seconds."""
        width = max([len("label"), *(len(k) for k in self.records)])
        lines = [f"{'label':<{width}}  {'calls':>5}  {'peak MB':>9}  {'net MB':>9}  {'seconds':>8}"]
        for label, r in self.records.items():
            lines.append(f"{label:<{width}}  {r.calls:>5}  {r.peak_mb:>9.2f}  {r.net_mb:>9.2f}  {r.seconds:>8.4f}")
        return "\n".join(lines)
