"""Timing small pieces of code properly (lesson 14), in the spirit of ``torch.utils.benchmark``.

One timing of one call says little: the first call pays for page faults and thread start-up, a
short call is shorter than the clock's resolution, and another process may steal the CPU for a
few milliseconds. :class:`Timer` warms up, picks a *block* of calls long enough for the clock,
times many blocks, and reports the **median** and the **interquartile range** (IQR) of the
per-call times, which a few disturbed blocks do not move. When the IQR is more than 10 % of the
median the measurement carries a warning: the machine was noisy, and the number is not to be
trusted to more than a digit or so.

>>> import numpy as np
>>> a = np.ones((64, 64), dtype=np.float32)
>>> m = Timer("a @ a", globals={"a": a}, label="matmul", description="64x64").blocked_autorange(min_run_time=0.05)
>>> m.number_per_run >= 1 and len(m.times) >= 1 and m.median > 0
True
>>> m.task_spec.num_threads
1

``Compare([m1, m2, ...])`` prints the medians of many measurements as one table.
"""

from __future__ import annotations

import math
import os
import re
import time
import timeit
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

import numpy as np

#: as torch.utils.benchmark's
_MIN_CONFIDENCE_INTERVAL = 25e-9  # seconds: below this a finer figure is clock noise
_MAX_SIGNIFICANT_FIGURES = 4
SPREAD_WARNING = 0.10  # IQR / median above which a measurement is flagged
SPREAD_SEVERE = 0.25
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


@dataclass(frozen=True)
class TaskSpec:
    """What was timed and under which names it is shown."""

    stmt: str
    setup: str = "pass"
    label: str | None = None
    sub_label: str | None = None
    description: str | None = None
    num_threads: int = 1  # threads of TinyTorch's compiled kernels while timing
    environment: dict[str, str] = field(default_factory=dict)  # BLAS/OpenMP thread variables at the time

    @property
    def title(self) -> str:
        return self.label or self.stmt


def _select_unit(seconds: float) -> tuple[str, float]:
    """The unit a time is best shown in, and the factor to multiply seconds by."""
    for unit, scale in (("ns", 1e9), ("us", 1e6), ("ms", 1e3)):
        if seconds * scale < 1000:
            return unit, scale
    return "s", 1.0


class Measurement:
    """The times of many blocks of calls, and the statistics a reader needs: median, IQR, warnings.

    ``raw_times`` hold each block's total seconds; ``times`` the per-call seconds of each block.
    """

    def __init__(self, number_per_run: int, raw_times: list[float], task_spec: TaskSpec):
        if not raw_times:
            raise ValueError("Measurement: needs at least one timed block")
        self.number_per_run = int(number_per_run)
        self.raw_times = list(raw_times)
        self.task_spec = task_spec
        self.times = [t / self.number_per_run for t in self.raw_times]
        ordered = np.sort(self.times)
        self._sorted = ordered
        self.median = float(np.median(ordered))
        self.mean = float(np.mean(ordered))
        self.iqr = float(np.quantile(ordered, 0.75) - np.quantile(ordered, 0.25))

    @property
    def title(self) -> str:
        return self.task_spec.title

    @property
    def spread(self) -> float:
        """IQR / median: 0.02 means the middle half of the blocks lay within 2 % of each other."""
        return self.iqr / self.median if self.median > 0 else math.inf

    @property
    def warnings(self) -> list[str]:
        if len(self.times) < 4 or self.spread <= SPREAD_WARNING:
            return []
        cause = "This suggests significant environmental influence." if self.spread > SPREAD_SEVERE else (
            "This could indicate system fluctuation.")  # fmt: skip
        return [f"WARNING: Interquartile range is {100 * self.spread:.1f}% of the median measurement. {cause}"]

    @property
    def has_warnings(self) -> bool:
        return bool(self.warnings)

    def meets_confidence(self, threshold: float = 0.1) -> bool:
        return self.spread < threshold

    @property
    def significant_figures(self) -> int:
        """How many digits of the median the spread supports (1 to 4), as torch.utils.benchmark estimates it."""
        n = len(self._sorted)
        middle = self._sorted[n // 4 : int(math.ceil(3 * n / 4))]
        interval = max(1.645 * float(np.std(middle)) / math.sqrt(len(middle)), _MIN_CONFIDENCE_INTERVAL)
        digits = int(math.floor(math.log10(self.median / interval))) if self.median > 0 else 1
        return min(max(digits, 1), _MAX_SIGNIFICANT_FIGURES)

    def __repr__(self) -> str:
        unit, scale = _select_unit(self.median)
        spec = self.task_spec
        lines = [f"<Measurement: {spec.label}{': ' + spec.sub_label if spec.sub_label else ''}>" if spec.label else "<Measurement>"]
        lines += [f"  {spec.stmt}"] + ([f"  {spec.description}"] if spec.description else [])
        low, high = np.quantile(self._sorted, [0.25, 0.75])
        lines += [
            f"  Median: {self.median * scale:.2f} {unit}",
            f"  IQR:    {self.iqr * scale:.2f} {unit} ({low * scale:.2f} to {high * scale:.2f})",
            f"  {len(self.times)} measurements, {self.number_per_run} runs per measurement, {spec.num_threads} thread"
            + ("s" if spec.num_threads != 1 else ""),
        ]
        lines += [f"  {w}" for w in self.warnings]
        return "\n".join(lines)


class Timer:
    """Time ``stmt`` (a string of code, or a zero-argument callable) after running ``setup`` once.

    Parameters
    ----------
    stmt : str or callable
        What to time. A string runs in a copy of ``globals`` after ``setup``.
    setup : str
        Code run once before timing (imports, inputs).
    globals : dict, optional
        Names ``stmt`` and ``setup`` may use.
    label, sub_label, description : str, optional
        How :class:`Compare` groups and names the measurement (table, row, column).
    num_threads : int
        Threads for TinyTorch's compiled kernels while timing (restored afterwards), recorded in the
        measurement; BLAS keeps the pool it started with, so its thread variables are recorded too.
    """

    def __init__(
        self,
        stmt: str | Callable[[], Any] = "pass",
        setup: str = "pass",
        globals: dict[str, Any] | None = None,
        label: str | None = None,
        sub_label: str | None = None,
        description: str | None = None,
        num_threads: int = 1,
    ):
        if not isinstance(num_threads, int) or num_threads < 1:
            raise ValueError(f"Timer: num_threads must be a positive int, got {num_threads!r}")
        text = stmt if isinstance(stmt, str) else getattr(stmt, "__qualname__", repr(stmt))
        self._timer = timeit.Timer(stmt, setup, timer=time.perf_counter, globals=dict(globals or {}))
        environment = {name: os.environ[name] for name in THREAD_VARIABLES if name in os.environ}
        self.task_spec = TaskSpec(text, setup, label, sub_label, description, num_threads, environment)

    def _timeit(self, number: int) -> float:
        return max(self._timer.timeit(number), 1e-12)  # the garbage collector is off while timing

    def _with_threads(self, run: Callable[[], Measurement]) -> Measurement:
        from .. import kernels

        if not kernels.compiled_available():
            return run()
        previous = kernels.get_num_threads()
        kernels.set_num_threads(self.task_spec.num_threads)
        try:
            return run()
        finally:
            kernels.set_num_threads(previous)

    def timeit(self, number: int = 1000000) -> Measurement:
        """One block of ``number`` calls, after one warm-up call (like ``timeit.timeit``, as a Measurement)."""

        def run() -> Measurement:
            self._timeit(1)
            return Measurement(number, [self._timeit(number)], self.task_spec)

        return self._with_threads(run)

    def _block_size(self, min_run_time: float) -> int:
        """Calls per block: grown tenfold until the clock's own cost is negligible and the block long enough."""
        overhead = float(np.median([self._timeit(0) for _ in range(5)]))
        number = 1
        while True:
            taken = self._timeit(number)
            if (overhead / taken <= 1e-4 and taken >= min_run_time / 1000) or taken > min_run_time:
                return number
            number *= 10

    def _loop(self, number: int, min_run_time: float, stop: Callable[[list[float]], bool], max_run_time: float | None) -> Measurement:
        times: list[float] = []
        total = 0.0
        while total < min_run_time or not stop(times):
            taken = self._timeit(number)
            times.append(taken)
            total += taken
            if max_run_time is not None and total > max_run_time:
                break
        return Measurement(number, times, self.task_spec)

    def blocked_autorange(self, min_run_time: float = 0.2) -> Measurement:
        """Warm up, choose a block size, then time blocks until ``min_run_time`` seconds have been measured."""

        def run() -> Measurement:
            self._timeit(1)
            number = self._block_size(min_run_time)
            return self._loop(number, min_run_time, lambda times: True, None)

        return self._with_threads(run)

    def adaptive_autorange(self, threshold: float = 0.1, min_run_time: float = 0.01, max_run_time: float = 10.0) -> Measurement:
        """Time blocks until the IQR is below ``threshold`` of the median (at least 4 blocks), or ``max_run_time``."""

        def stop(times: list[float]) -> bool:
            return len(times) > 3 and Measurement(1, times, self.task_spec).meets_confidence(threshold)

        def run() -> Measurement:
            self._timeit(1)
            number = self._block_size(min_run_time)
            return self._loop(number, min_run_time, stop, max_run_time)

        return self._with_threads(run)


class Compare:
    """The medians of many measurements as tables: one per label, a row per sub_label, a column per description.

    >>> import numpy as np
    >>> x = np.ones(1000)
    >>> results = [Timer(stmt, globals={"x": x}, label="reduce", sub_label=stmt, description="n=1000").timeit(200)
    ...            for stmt in ("x.sum()", "x.max()")]
    >>> print(Compare(results))                                   # doctest: +SKIP
    [--------- reduce ----------]
                   |  n=1000
    1 threads: ------------------
          x.sum()  |    2.1
          x.max()  |    2.9
    <BLANKLINE>
    Times are in microseconds (us).
    """

    _UNIT_NAMES = {"ns": "nanoseconds", "us": "microseconds", "ms": "milliseconds", "s": "seconds"}

    def __init__(self, results: Iterable[Measurement]):
        self.results = list(results)
        if not self.results:
            raise ValueError("Compare: needs at least one Measurement")
        self._trim = False
        self._colorize: str | None = None
        self._highlight = False

    def trim_significant_figures(self) -> None:
        """Show each median only to the digits its spread supports."""
        self._trim = True

    def colorize(self, rowwise: bool = False) -> None:
        """Bold green for the fastest in each column (each row with ``rowwise=True``), red for 2x slower or more."""
        self._colorize = "row" if rowwise else "column"

    def highlight_warnings(self) -> None:
        """Mark noisy measurements with their spread: ``12.3 (! 15%)``."""
        self._highlight = True

    def print(self) -> None:
        print(str(self))

    def __str__(self) -> str:
        unit, scale = _select_unit(min(m.median for m in self.results))
        groups: dict[str, list[Measurement]] = {}
        for m in self.results:
            groups.setdefault(m.title, []).append(m)
        blocks = [self._table(label, measurements, scale) for label, measurements in groups.items()]
        return "\n\n".join(blocks) + f"\n\nTimes are in {self._UNIT_NAMES[unit]} ({unit})."

    def _cell(self, m: Measurement, scale: float, best: float) -> str:
        value = m.median * scale
        if self._trim:
            digits = m.significant_figures - int(math.floor(math.log10(abs(value)))) - 1 if value > 0 else 0
            text = f"{round(value, digits):.{max(digits, 0)}f}"
        else:
            text = f"{value:.1f}"
        if self._highlight and m.has_warnings:
            text += f" (! {100 * m.spread:.0f}%)"
        if self._colorize:
            if m.median <= best:
                text = f"\033[1m\033[32m{text}\033[0m"
            elif m.median >= 2 * best:
                text = f"\033[31m{text}\033[0m"
        return text

    def _table(self, label: str, measurements: list[Measurement], scale: float) -> str:
        columns = list(dict.fromkeys(m.task_spec.description or "" for m in measurements))
        rows = list(dict.fromkeys(m.task_spec.sub_label or m.task_spec.stmt for m in measurements))
        threads = sorted({m.task_spec.num_threads for m in measurements})
        lookup = {(m.task_spec.sub_label or m.task_spec.stmt, m.task_spec.description or "", m.task_spec.num_threads): m for m in measurements}

        def best(row: str, column: str, n: int) -> float:
            pool = [m for (r, c, t), m in lookup.items() if t == n and (r == row if self._colorize == "row" else c == column)]
            return min(m.median for m in pool)

        body: list[tuple[str, list[str]]] = []
        for n in threads:
            body.append((f"{n} threads:", []))
            for row in rows:
                cells = [self._cell(lookup[(row, c, n)], scale, best(row, c, n)) if (row, c, n) in lookup else "" for c in columns]
                if any(cells):
                    body.append((row, cells))
        name_width = max(len(r) for r, cells in body if cells) + 4
        widths = [max(len(c), *(len(_visible(cells[i])) for _, cells in body if cells)) + 2 for i, c in enumerate(columns)]
        header = " " * name_width + "|" + "|".join(f"{c:^{w}}" for c, w in zip(columns, widths))
        lines = [header]
        for row, cells in body:
            if not cells:
                lines.append(f"{row} " + "-" * (len(header) - len(row) - 1))
                continue
            padded = [" " * (w - len(_visible(c)) - 1) + c + " " for c, w in zip(cells, widths)]
            lines.append(f"{row:>{name_width - 2}}  |" + "|".join(padded))
        title = f" {label} "
        rule = f"[{title:-^{len(header) - 2}}]"
        return "\n".join([rule, *lines])


def _visible(text: str) -> str:
    """The text without ANSI colour codes (for widths)."""
    return re.sub(r"\033\[[0-9;]*m", "", text)
