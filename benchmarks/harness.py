"""What every benchmark here shares: a quiet machine, the same thread count for everyone, warm-up,
interleaved repeats, medians, ratios measured in one run, and a results file.

The rules (DESIGN §8): compare ratios measured back to back in the same process, never absolute
times across runs; give every implementation the same threads (2 by default); and say how busy the
machine was, because on a shared 2-core VM another process's compile can halve a measurement.

A benchmark script builds :class:`Case` objects, then::

    pin_threads()                    # first: may restart the process with the thread variables set
    idle = wait_for_idle()
    results = [run_case(case) for case in cases]
    print(format_table(results))
    write_results("kernels", results, idle)

Each case maps implementation labels ("compiled", "reference", "torch") to zero-argument
callables. They run in rounds (compiled, reference, torch; compiled, reference, torch; ...), and a
round during which other processes were busy is dropped and run again. Each label's median time
is reported, and a ratio such as "compiled vs torch 1.30x" is the median over rounds of torch's
time over compiled's in the same round: above 1, compiled is faster.
"""

from __future__ import annotations

import datetime
import gc
import math
import os
import platform
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

THREADS = 2
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
# Idle OpenMP threads sleep instead of spinning, in TinyTorch's kernels and in PyTorch alike: the
# implementations take turns, and a spinning thread left behind by one would take a core from the
# next (measured with spinning threads: PyTorch's conv 2.4x slower, TinyTorch's 1.9x, taking turns).
WAIT_POLICY = ("OMP_WAIT_POLICY", "PASSIVE")
RESULTS_DIR = Path(__file__).resolve().parent / "results"
_RESTARTED = "TINYTORCH_BENCHMARK_RESTARTED"


def log(message: str) -> None:
    """Progress goes to stderr, so stdout holds only the table."""
    print(message, file=sys.stderr, flush=True)


def optional_torch():
    """PyTorch when it is installed, else None (its column then stays empty)."""
    try:
        import torch
    except ImportError:
        return None
    return torch


def pin_threads(threads: int = THREADS) -> None:
    """Give NumPy's BLAS, TinyTorch's kernels and PyTorch ``threads`` threads each, all waiting passively.

    BLAS sizes its thread pool when NumPy is first imported, and OpenMP reads its wait policy when it
    is loaded, so these variables must already be in the environment then. When they are missing
    or different, the same command is started again (``os.execve``) in a fresh process with them
    set; call this before anything imports NumPy.
    """
    wanted = {**{name: str(threads) for name in THREAD_VARIABLES}, WAIT_POLICY[0]: WAIT_POLICY[1]}
    if any(os.environ.get(name) != value for name, value in wanted.items()):
        settings = ", ".join(f"{name}={value}" for name, value in wanted.items())
        if os.environ.get(_RESTARTED):
            raise RuntimeError(f"pin_threads: the environment still lacks {settings} after a restart")
        log(f"restarting with {settings}, so BLAS and OpenMP start with them")
        os.execve(sys.executable, [sys.executable, *sys.orig_argv[1:]], {**os.environ, **wanted, _RESTARTED: "1"})
    from tinytorch.core import kernels

    if kernels.compiled_available():
        kernels.set_num_threads(threads)
    torch = optional_torch()
    if torch is not None:
        torch.set_num_threads(threads)


def _cpu_jiffies() -> tuple[int, int] | None:
    """(busy, total) CPU time of all cores since boot, from /proc/stat; None where it does not exist."""
    try:
        with open("/proc/stat") as stat:
            values = [int(v) for v in stat.readline().split()[1:9]]
    except OSError:
        return None
    idle = values[3] + values[4]  # idle + iowait
    return sum(values) - idle, sum(values)


class LoadMeter:
    """Measures how many cores *other* processes keep busy between :meth:`start` and :meth:`stop`.

    All cores' busy time comes from /proc/stat; this process's own CPU time is subtracted, so a
    benchmark's own threads do not count as outside load.
    """

    def start(self) -> "LoadMeter":
        self._jiffies, self._own, self._wall = _cpu_jiffies(), _own_cpu_seconds(), time.perf_counter()
        return self

    def stop(self) -> float | None:
        """Average number of cores other processes used (None without /proc/stat)."""
        end = _cpu_jiffies()
        if end is None or self._jiffies is None:
            return None
        busy, total = end[0] - self._jiffies[0], end[1] - self._jiffies[1]
        if total <= 0:
            return 0.0
        cores = os.cpu_count() or 1
        wall = time.perf_counter() - self._wall
        all_busy_cores = cores * busy / total
        own_cores = (_own_cpu_seconds() - self._own) / wall if wall > 0 else 0.0
        return max(0.0, all_busy_cores - own_cores)


def _own_cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system


@dataclass
class IdleCheck:
    """What :func:`wait_for_idle` saw: the outside load (busy cores) of its last look, and how long it waited."""

    busy_cores: float | None
    waited_s: float
    idle: bool
    threshold: float

    def describe(self) -> str:
        if self.busy_cores is None:
            return "machine load unknown (no /proc/stat)"
        state = "idle" if self.idle else "NOT idle (timed out)"
        return f"{state}: {self.busy_cores:.2f} cores busy (threshold {self.threshold}) after waiting {self.waited_s:.0f} s"


def wait_for_idle(max_busy_cores: float = 0.3, timeout: float = 900.0, window: float = 3.0) -> IdleCheck:
    """Wait until other processes keep fewer than ``max_busy_cores`` cores busy over a ``window`` of seconds.

    Gives up after ``timeout`` seconds and says so (the run goes on, and the results file records
    the load). Logs what it sees while waiting.
    """
    start = time.perf_counter()
    while True:
        meter = LoadMeter().start()
        time.sleep(window)
        busy = meter.stop()
        waited = time.perf_counter() - start
        if busy is None or busy < max_busy_cores or waited >= timeout:
            check = IdleCheck(busy, waited, busy is not None and busy < max_busy_cores, max_busy_cores)
            log(check.describe())
            return check
        log(f"waiting for an idle machine: {busy:.2f} cores busy (want < {max_busy_cores}), {waited:.0f} s so far")


@dataclass(frozen=True)
class Target:
    """A goal for the speed of ``of`` against ``baseline``: baseline's time / of's time >= ``at_least``."""

    baseline: str
    at_least: float
    of: str = "compiled"

    def describe(self) -> str:
        return f"{self.of} >= {self.at_least:g}x {self.baseline}"


@dataclass
class Case:
    """One benchmark: ``build()`` allocates the inputs and returns {label: zero-argument callable}.

    Building is deferred until the case runs, so only one case's arrays are alive at a time.
    """

    name: str
    build: Callable[[], dict[str, Callable[[], object]]]
    targets: tuple[Target, ...] = ()


@dataclass
class Result:
    case: Case
    seconds: dict[str, list[float]]  # time per call, by label, one entry per kept round
    outside_load: float | None  # mean cores other processes kept busy during the kept rounds
    dropped: int = 0  # rounds thrown away because other processes were busy during them
    load_limit: float = 0.0  # the outside load (cores) above which a round was dropped
    labels: list[str] = field(default_factory=list)

    def median(self, label: str) -> float | None:
        samples = self.seconds.get(label)
        return statistics.median(samples) if samples else None

    def speedup(self, baseline: str, of: str = "compiled") -> float | None:
        """Median over rounds of baseline's time / of's time in the same round (above 1: ``of`` is faster).

        Pairing the two samples of a round cancels slow drifts in the machine's speed that would
        distort a ratio of two medians taken over the whole run. None if either label is missing.
        """
        mine, theirs = self.seconds.get(of), self.seconds.get(baseline)
        if not mine or not theirs:
            return None
        return statistics.median(t / m for t, m in zip(theirs, mine))

    def met(self, target: Target) -> bool | None:
        ratio = self.speedup(target.baseline, target.of)
        return None if ratio is None else ratio >= target.at_least


def _calls_per_sample(fn: Callable[[], object], min_sample_s: float) -> int:
    """How many calls make one sample last at least ``min_sample_s`` (timer noise stays small)."""
    start = time.perf_counter()
    fn()
    once = time.perf_counter() - start
    return max(1, math.ceil(min_sample_s / max(once, 1e-9)))


def run_case(
    case: Case,
    repeats: int = 15,
    warmup: int = 2,
    min_sample_s: float = 0.02,
    max_outside_load: float = 0.35,
    max_dropped: int | None = None,
) -> Result:
    """Warm every implementation up, then time them in turn, round after round, until ``repeats``
    rounds are kept.

    A round during which other processes kept more than ``max_outside_load`` cores busy is dropped
    and run again after a pause (on a shared 2-core machine one compile halves a measurement), up to
    ``max_dropped`` times (default ``4 * repeats``); after that the busy rounds are kept, and the
    result says how many were dropped and how busy the kept ones were. The GC is off while timing.
    """
    log(f"running {case.name}")
    implementations = case.build()
    for fn in implementations.values():
        for _ in range(warmup):
            fn()
    calls = {label: _calls_per_sample(fn, min_sample_s) for label, fn in implementations.items()}
    seconds: dict[str, list[float]] = {label: [] for label in implementations}
    loads: list[float] = []
    dropped, budget = 0, 4 * repeats if max_dropped is None else max_dropped
    while len(loads) < repeats:
        round_times = {}
        meter = LoadMeter().start()
        gc.collect()
        gc.disable()
        try:
            for label, fn in implementations.items():
                start = time.perf_counter()
                for _ in range(calls[label]):
                    fn()
                round_times[label] = (time.perf_counter() - start) / calls[label]
        finally:
            gc.enable()
        load = meter.stop()
        if load is not None and load > max_outside_load and dropped < budget:
            dropped += 1
            time.sleep(0.5)
            continue
        loads.append(0.0 if load is None else load)
        for label, value in round_times.items():
            seconds[label].append(value)
    if dropped:
        log(f"  dropped {dropped} rounds during which other processes were busy")
    mean_load = statistics.fmean(loads) if _cpu_jiffies() is not None else None
    return Result(case, seconds, mean_load, dropped, max_outside_load, list(implementations))


def _ms(value: float | None) -> str:
    return "—" if value is None else f"{value * 1e3:.2f}"


def _ratio(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}x"


def format_table(results: list[Result], baselines: tuple[str, ...] = ("reference", "torch")) -> str:
    """A Markdown table: median ms per label, compiled's speed ratio against each baseline, targets, outside load."""
    labels = list(dict.fromkeys(label for r in results for label in r.labels))
    header = [
        "case",
        *(f"{label} (ms)" for label in labels),
        *(f"compiled vs {b}" for b in baselines),
        "targets",
        "outside load (cores)",
        "rounds dropped",
    ]
    rows = []
    for r in results:
        targets = "; ".join(
            f"{t.describe()}: {'—' if r.met(t) is None else ('met' if r.met(t) else 'MISSED')}" for t in r.case.targets
        )
        load = "—" if r.outside_load is None else f"{r.outside_load:.2f}"
        rows.append(
            [
                r.case.name,
                *(_ms(r.median(label)) for label in labels),
                *(_ratio(r.speedup(b)) for b in baselines),
                targets or "—",
                load,
                str(r.dropped),
            ]
        )
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def machine_description() -> list[str]:
    """CPU model, cores, memory, and the versions and thread settings of everything measured."""
    import numpy as np

    from tinytorch.core import kernels

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as info:
            cpu = next((line.split(":", 1)[1].strip() for line in info if line.startswith("model name")), cpu)
    except OSError:
        pass
    memory = "unknown"
    try:
        with open("/proc/meminfo") as info:
            kb = int(next(line.split()[1] for line in info if line.startswith("MemTotal")))
            memory = f"{kb / 2**20:.1f} GiB"
    except (OSError, StopIteration):
        pass
    blas = np.show_config(mode="dicts").get("Build Dependencies", {}).get("blas", {})
    torch = optional_torch()
    return [
        f"CPU: {cpu}; {os.cpu_count()} logical cores; memory {memory}",
        f"Python {platform.python_version()} on {platform.system()} {platform.release()}",
        f"NumPy {np.__version__} (BLAS: {blas.get('name', '?')} {blas.get('version', '')})",
        f"PyTorch {torch.__version__} ({torch.get_num_threads()} threads)" if torch is not None else "PyTorch: not installed",
        f"TinyTorch kernels: backend {kernels.backend()}, OpenMP {'on' if kernels.openmp_enabled() else 'off'}, "
        f"{kernels.get_num_threads()} threads",
        "Thread variables: " + ", ".join(f"{name}={os.environ.get(name, 'unset')}" for name in (*THREAD_VARIABLES, WAIT_POLICY[0])),
    ]


def write_results(name: str, results: list[Result], idle: IdleCheck, notes: str = "", directory: Path = RESULTS_DIR) -> Path:
    """Write ``<directory>/<name>.md`` (atomically: a temporary file, then a rename) and return its path."""
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    repeats = max((len(s) for r in results for s in r.seconds.values()), default=0)
    load_limit = max((r.load_limit for r in results), default=0.0)
    text = "\n".join(
        [
            f"# Benchmark: {name}",
            "",
            f"- Date: {stamp}",
            f"- Command: `{' '.join(['python', *sys.orig_argv[1:]])}`",  # not the interpreter's path on this machine
            *(f"- {line}" for line in machine_description()),
            f"- Machine before the run: {idle.describe()}",
            f"- Method: {repeats} kept rounds per case after warm-up; in a round each implementation runs in turn.",
            "  Times are medians per call. A ratio is the median over rounds of the baseline's time over compiled's",
            "  in the same round (above 1: compiled is faster). Rounds during which other processes kept more than",
            f"  {load_limit} cores busy were dropped and rerun (column 'rounds dropped').",
            "",
            format_table(results),
            "",
            *([notes.strip(), ""] if notes.strip() else []),
        ]
    )
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.md"
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(text)
    os.replace(temporary, path)
    return path
