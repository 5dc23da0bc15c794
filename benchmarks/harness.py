"""What every benchmark here shares: one process per implementation, the same threads for everyone, a
quiet machine, alternating rounds, medians of per-round ratios, and a results file with the raw times.

The rules (DESIGN §8). Two libraries in one process fight over the cores: each brings its own
thread pool (PyTorch's OpenMP, TinyTorch's OpenMP, NumPy's OpenBLAS), a pool's threads spin for a
while after each parallel region, and on two cores a spinning thread takes the core the other
library needs (measured: TinyTorch's convolution 1.8x slower with PyTorch loaded beside it). So
each implementation of a case runs in a worker process of its own (``python -m benchmarks.worker``),
which imports only its own framework, and this module, which runs the show, imports neither.

A suite is a list of :class:`Case` objects and a call to :func:`suite_main`::

    CASES = [
        Case("conv2d fwd+bwd 32->64 @16x16", {"c_in": 32, "c_out": 64, "side": 16},
             {"compiled": Impl("benchmarks.tinytorch_side:conv2d", backend="compiled"),
              "torch": Impl("benchmarks.torch_side:conv2d")},
             targets=(Target("torch", 1.0),)),
    ]
    if __name__ == "__main__":
        suite_main("kernels", CASES)

An :class:`Impl` names a zero-argument-callable factory as ``"module:function"``; the worker calls
``function(**case.params, **impl.kwargs)`` and times what it returns. A side module (one per
framework) holds the factories and, optionally, ``pin_threads(n)`` and ``describe() -> dict``.

How a case runs: a fresh worker per implementation, all started with ``OMP_NUM_THREADS``,
``OPENBLAS_NUM_THREADS`` and ``MKL_NUM_THREADS`` set to the same count (and each side's
``pin_threads``); each builds its inputs, runs twice untimed (thread start-up, first-touch page
faults) and picks how many calls make a sample last 20 ms. Then rounds: in each, every worker
takes one sample in turn (the first to go rotates from round to round), after a pause that lets
the previous worker's spinning threads fall asleep. A sample is thus the first work after a rest,
unless ``--warm-calls N`` asks for N untimed calls right before it (calls back to back, as a loop
makes them; benchmarks/README.md says why that moves TinyTorch's figures more than PyTorch's). A
round during which *other* processes kept more than 0.35 cores busy (the workers' own CPU time is subtracted) is dropped and run again. A
ratio such as "compiled vs torch 1.30x" is the median over rounds of torch's time over
compiled's in the same round: above 1, compiled is faster.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

THREADS = 2
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
RESULTS_DIR = Path(__file__).resolve().parent / "results"
PROJECT_ROOT = Path(__file__).resolve().parent.parent
# After a worker's sample, its pools' threads keep spinning for a while (libgomp's default spin, and
# OpenBLAS's, ~0.1 s at this clock); the next worker starts only after they have gone to sleep.
SETTLE_S = 0.2
MIN_SAMPLE_S = 0.02
_RESTARTED = "TINYTORCH_BENCHMARK_RESTARTED"


def log(message: str) -> None:
    """Progress goes to stderr, so stdout holds only the table."""
    print(message, file=sys.stderr, flush=True)


# -- load -------------------------------------------------------------------------------------------
def _cpu_jiffies() -> tuple[int, int] | None:
    """(busy, total) CPU time of all cores since boot, from /proc/stat; None where it does not exist."""
    try:
        with open("/proc/stat") as stat:
            values = [int(v) for v in stat.readline().split()[1:9]]
    except OSError:
        return None
    idle = values[3] + values[4]  # idle + iowait
    return sum(values) - idle, sum(values)


def _process_cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` (all its threads), from /proc; 0 where unreadable."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class LoadMeter:
    """How many cores processes *other* than this one and ``pids`` keep busy between start and stop."""

    def __init__(self, pids: tuple[int, ...] = ()):
        self.pids = pids

    def _own(self) -> float:
        times = os.times()
        return times.user + times.system + sum(_process_cpu_seconds(pid) for pid in self.pids)

    def start(self) -> "LoadMeter":
        self._jiffies, self._own_start, self._wall = _cpu_jiffies(), self._own(), time.perf_counter()
        return self

    def stop(self) -> float | None:
        """Average number of cores the others used (None without /proc/stat)."""
        end = _cpu_jiffies()
        if end is None or self._jiffies is None:
            return None
        busy, total = end[0] - self._jiffies[0], end[1] - self._jiffies[1]
        if total <= 0:
            return 0.0
        wall = time.perf_counter() - self._wall
        all_busy = (os.cpu_count() or 1) * busy / total
        ours = (self._own() - self._own_start) / wall if wall > 0 else 0.0
        return max(0.0, all_busy - ours)


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
    """Wait until other processes keep fewer than ``max_busy_cores`` cores busy over ``window`` seconds.

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


def pin_threads(threads: int = THREADS) -> None:
    """Give this process's libraries ``threads`` threads each, for a benchmark that times in its own process.

    BLAS sizes its pool when NumPy is first imported, and OpenMP when it is loaded, so the thread
    variables must be in the environment before that: when they are missing or different, the same
    command starts again (``os.execve``) with them set. Call it before anything imports NumPy.
    """
    wanted = {name: str(threads) for name in THREAD_VARIABLES}
    if any(os.environ.get(name) != value for name, value in wanted.items()):
        if os.environ.get(_RESTARTED):
            raise RuntimeError(f"pin_threads: the environment still lacks {wanted} after a restart")
        log(f"restarting with {', '.join(f'{k}={v}' for k, v in wanted.items())}, so BLAS and OpenMP start with them")
        os.execve(sys.executable, [sys.executable, *sys.orig_argv[1:]], {**os.environ, **wanted, _RESTARTED: "1"})


# -- workers ----------------------------------------------------------------------------------------
def worker_environment(threads: int) -> dict[str, str]:
    """The environment of every worker: the same thread count for every library, the project importable.

    OpenMP's wait policy is left to each framework (TinyTorch sets PASSIVE for its own kernels;
    PyTorch keeps its default, which is what makes it fastest): each runs as a user would run it.
    """
    env = {**os.environ, **{name: str(threads) for name in THREAD_VARIABLES}}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PROJECT_ROOT), os.environ.get("PYTHONPATH", "")]))
    return env


class WorkerError(RuntimeError):
    """A worker process failed; the message holds its traceback."""


class Worker:
    """One ``python -m benchmarks.worker`` process, spoken to in JSON lines over its stdin and stdout."""

    def __init__(self, threads: int, label: str = "worker"):
        self.label = label
        self.process = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.worker", "--threads", str(threads)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=PROJECT_ROOT,
            env=worker_environment(threads),
        )

    @property
    def pid(self) -> int:
        return self.process.pid

    def request(self, **message: Any) -> dict:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(json.dumps(message) + "\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        if not line:
            raise WorkerError(f"the {self.label} worker exited (status {self.process.wait()}) during {message.get('op')}")
        reply = json.loads(line)
        if "error" in reply:
            raise WorkerError(f"the {self.label} worker failed during {message.get('op')}:\n{reply['error']}")
        return reply

    def close(self) -> None:
        if self.process.poll() is None:
            try:
                self.request(op="exit")
            except (WorkerError, BrokenPipeError, OSError):
                pass
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def __enter__(self) -> "Worker":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def call_in_fresh_process(target: str, threads: int = THREADS, **kwargs: Any) -> Any:
    """Run ``module:function(**kwargs)`` in a fresh worker with the pinned threads; return its JSON result.

    For measurements that need a process of their own but no timing rounds: peak memory, a
    framework's first losses, a profile.
    """
    with Worker(threads, label=target) as worker:
        return worker.request(op="call", target=target, kwargs=kwargs)["value"]


# -- cases ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Impl:
    """One implementation of a case: the factory ``"module:function"`` and keyword arguments of its own.

    ``preload`` names ``"module:function"`` calls the worker makes first, before importing the
    factory (used only to show what a second framework in the same process costs).
    """

    target: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    preload: tuple[str, ...] = ()

    def __init__(self, target: str, preload: tuple[str, ...] = (), **kwargs: Any):
        object.__setattr__(self, "target", target)
        object.__setattr__(self, "kwargs", kwargs)
        object.__setattr__(self, "preload", tuple(preload))


@dataclass(frozen=True)
class Target:
    """A goal: ``baseline``'s time / ``of``'s time >= ``at_least`` (median of per-round ratios)."""

    baseline: str
    at_least: float
    of: str = "compiled"

    def describe(self) -> str:
        return f"{self.of} >= {self.at_least:g}x {self.baseline}"

    def met_by(self, result: Result) -> bool | None:
        ratio = result.speedup(self.baseline, self.of)
        return None if ratio is None else ratio >= self.at_least

    def to_json(self) -> dict:
        return {"of": self.of, "baseline": self.baseline, "at_least": self.at_least}


@dataclass(frozen=True)
class TimeLimit:
    """A goal in absolute time: ``of``'s median time per call, divided by ``per``, at most ``seconds``.

    For costs stated per unit of work rather than against another library (issue 9: a recorded op
    at most 3 µs), where one timed call does ``per`` units (``what``: "op", "node").
    """

    seconds: float
    of: str = "compiled"
    per: int = 1
    what: str = "call"

    def describe(self) -> str:
        return f"{self.of} <= {self.seconds * 1e6:g} µs per {self.what}"

    def met_by(self, result: Result) -> bool | None:
        median = result.median(self.of)
        return None if median is None else median / self.per <= self.seconds

    def to_json(self) -> dict:
        return {"of": self.of, "at_most_seconds": self.seconds, "per": self.per, "what": self.what}


@dataclass
class Case:
    """A benchmark: its name, the parameters every implementation gets, and the implementations by label.

    The table compares "compiled" with every other label, plus each target's pair and each
    ``(of, baseline)`` pair in ``compare``.
    """

    name: str
    params: dict[str, Any]
    impls: dict[str, Impl]
    targets: tuple[Target | TimeLimit, ...] = ()
    compare: tuple[tuple[str, str], ...] = ()


@dataclass
class Result:
    case: Case
    seconds: dict[str, list[float]]  # time per call, by label, one entry per kept round
    loads: list[float | None]  # cores other processes kept busy, per kept round
    dropped: int = 0  # rounds thrown away because other processes were busy during them
    load_limit: float = 0.0
    calls: dict[str, int] = field(default_factory=dict)  # calls per sample, by label
    workers: dict[str, dict] = field(default_factory=dict)  # what each worker said about itself
    warm_calls: int = 0  # untimed calls each worker made right before each sample

    @property
    def labels(self) -> list[str]:
        return list(self.seconds)

    @property
    def outside_load(self) -> float | None:
        known = [load for load in self.loads if load is not None]
        return statistics.fmean(known) if known else None

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

    def met(self, target: Target | TimeLimit) -> bool | None:
        return target.met_by(self)

    def to_json(self) -> dict:
        return {
            "case": self.case.name,
            "params": self.case.params,
            "implementations": {label: {"target": impl.target, "kwargs": impl.kwargs, "preload": list(impl.preload)}
                                for label, impl in self.case.impls.items()},
            "seconds": self.seconds,
            "median_seconds": {label: self.median(label) for label in self.seconds},
            "calls_per_sample": self.calls,
            "warm_calls_per_sample": self.warm_calls,
            "outside_load": self.loads,
            "rounds_dropped": self.dropped,
            "load_limit": self.load_limit,
            "ratios": {f"{of} vs {baseline}": self.speedup(baseline, of) for of, baseline in comparisons([self])},
            "targets": [
                {**t.to_json(), "met": self.met(t)} for t in self.case.targets
            ],
            "workers": self.workers,
        }


def run_case(
    case: Case,
    threads: int = THREADS,
    repeats: int = 15,
    max_outside_load: float = 0.35,
    max_dropped: int | None = None,
    settle_s: float = SETTLE_S,
    warm_calls: int = 0,
) -> Result:
    """Start one worker per implementation, build and warm up each, then take samples in rounds.

    By default a sample is the first work a worker does after its pause: the first call after a
    rest, as in a notebook or a server between requests. ``warm_calls`` untimed calls right before
    each sample time the call as a loop runs it instead (a training loop calls back to back).

    A round during which other processes kept more than ``max_outside_load`` cores busy is dropped
    and run again after a pause, up to ``max_dropped`` times (default ``4 * repeats``); after that
    busy rounds are kept, and the result says how many were dropped and how busy the kept ones were.
    """
    log(f"running {case.name}")
    workers = {label: Worker(threads, label) for label in case.impls}
    try:
        calls, described = {}, {}
        for label, impl in case.impls.items():
            reply = workers[label].request(
                op="build", target=impl.target, kwargs={**case.params, **impl.kwargs}, preload=list(impl.preload),
                min_sample_s=MIN_SAMPLE_S, warm_calls=warm_calls,
            )
            calls[label], described[label] = reply["calls"], reply["describe"]
        labels = list(case.impls)
        pids = tuple(w.pid for w in workers.values())
        seconds: dict[str, list[float]] = {label: [] for label in labels}
        loads: list[float | None] = []
        dropped, budget = 0, 4 * repeats if max_dropped is None else max_dropped
        while len(loads) < repeats:
            start = (len(loads) + dropped) % len(labels)
            order = labels[start:] + labels[:start]
            round_times, busy = {}, []
            for label in order:
                time.sleep(settle_s)
                meter = LoadMeter(pids).start()
                round_times[label] = workers[label].request(op="sample")["seconds"]
                busy.append(meter.stop())
            known = [b for b in busy if b is not None]
            load = max(known) if known else None
            if load is not None and load > max_outside_load and dropped < budget:
                dropped += 1
                time.sleep(0.5)
                continue
            loads.append(load)
            for label in labels:
                seconds[label].append(round_times[label])
        if dropped:
            log(f"  dropped {dropped} rounds during which other processes were busy")
        return Result(case, seconds, loads, dropped, max_outside_load, calls, described, warm_calls)
    finally:
        for worker in workers.values():
            worker.close()


# -- reports ----------------------------------------------------------------------------------------
def _ms(value: float | None) -> str:
    return "—" if value is None else f"{value * 1e3:.2f}"


def _ratio(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}x"


def comparisons(results: list[Result]) -> list[tuple[str, str]]:
    """The (of, baseline) pairs a table shows: every target's, and compiled against every other label."""
    pairs = [(t.of, t.baseline) for r in results for t in r.case.targets if isinstance(t, Target)]
    pairs += [pair for r in results for pair in r.case.compare]
    pairs += [("compiled", label) for r in results for label in r.labels if "compiled" in r.labels and label != "compiled"]
    return list(dict.fromkeys(pairs))


def format_table(results: list[Result]) -> str:
    """A Markdown table: median ms per label, the ratios, the targets, the outside load."""
    labels = list(dict.fromkeys(label for r in results for label in r.labels))
    pairs = comparisons(results)
    header = [
        "case",
        *(f"{label} (ms)" for label in labels),
        *(f"{of} vs {baseline}" for of, baseline in pairs),
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
                *(_ratio(r.speedup(baseline, of)) for of, baseline in pairs),
                targets or "—",
                load,
                str(r.dropped),
            ]
        )
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def machine_description() -> dict[str, str]:
    """The CPU, its cores and memory, and Python: what every record says about the machine."""
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
    return {
        "cpu": f"{cpu}; {os.cpu_count()} logical cores; memory {memory}",
        "python": f"Python {platform.python_version()} on {platform.system()} {platform.release()}",
    }


def command_line() -> str:
    """The command that ran this program, without the interpreter's path on this machine."""
    return " ".join(["python", *sys.orig_argv[1:]])


def _worker_lines(results: list[Result]) -> list[str]:
    """One line per distinct worker description (library versions, threads, wait policy), by label."""
    seen: dict[str, str] = {}
    for r in results:
        for label, info in r.workers.items():
            impl = r.case.impls[label]
            arguments = ", ".join(f"{k}={v}" for k, v in impl.kwargs.items())
            seen.setdefault(label, f"`{impl.target}`{f' ({arguments})' if arguments else ''}: "
                            + "; ".join(f"{k} {v}" for k, v in info.items()))
    return [f"{label}: {text}" for label, text in seen.items()]


def write_results(
    name: str,
    results: list[Result],
    idle: IdleCheck,
    threads: int,
    notes: str = "",
    extra: dict | None = None,
    directory: Path = RESULTS_DIR,
) -> Path:
    """Write ``<directory>/<name>.md`` (the table) and ``<name>.json`` (every raw time), each atomically."""
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    machine = machine_description()
    repeats = max((len(s) for r in results for s in r.seconds.values()), default=0)
    load_limit = max((r.load_limit for r in results), default=0.0)
    text = "\n".join(
        [
            f"# Benchmark: {name}",
            "",
            f"- Date: {stamp}",
            f"- Command: `{command_line()}`",
            f"- CPU: {machine['cpu']}",
            f"- {machine['python']}",
            f"- Threads: {threads} for every library ({', '.join(f'{v}={threads}' for v in THREAD_VARIABLES)}, and each "
            "framework's own setting)",
            *(f"- {line}" for line in _worker_lines(results)),
            f"- Machine before the run: {idle.describe()}",
            f"- Method: each implementation in its own worker process; {repeats} kept rounds per case after warm-up, in",
            f"  each of which every worker takes one sample in turn, {_sample_start(results)}. Times are medians per call. A ratio is the median",
            "  over rounds of the baseline's time over the other's in the same round (above 1: the first is faster).",
            f"  Rounds during which other processes kept more than {load_limit} cores busy were dropped and rerun.",
            f"  Raw times: `{name}.json`.",
            "",
            format_table(results),
            "",
            *([notes.strip(), ""] if notes.strip() else []),
        ]
    )
    record = {
        "name": name,
        "date": stamp,
        "command": command_line(),
        "machine": machine,
        "threads": threads,
        "idle_check": idle.describe(),
        "results": [r.to_json() for r in results],
        **(extra or {}),
    }
    directory.mkdir(parents=True, exist_ok=True)
    _write_atomically(directory / f"{name}.json", json.dumps(record, indent=1) + "\n")
    path = directory / f"{name}.md"
    _write_atomically(path, text)
    return path


def _sample_start(results: list[Result]) -> str:
    """How a worker's sample begins, for the method line: after its pause, or after untimed calls."""
    warm = sorted({r.warm_calls for r in results})
    if warm == [0]:
        return "its first call after a pause (no untimed calls before it)"
    return f"right after {' or '.join(map(str, warm))} untimed calls (`--warm-calls`: calls back to back, as a loop makes them)"


def _write_atomically(path: Path, text: str) -> None:
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(text)
    os.replace(temporary, path)


# -- the command line every suite shares ---------------------------------------------------------------
def _call_count(text: str) -> int:
    """``--warm-calls``'s value: a whole number of calls, 0 or more."""
    try:
        count = int(text)
    except ValueError:
        count = -1
    if count < 0:
        raise argparse.ArgumentTypeError(f"expected a whole number of calls, 0 or more; got {text!r}")
    return count


def suite_arguments(prog: str, description: str, default_output: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--repeats", type=int, default=15, help="kept rounds per case (default 15)")
    parser.add_argument("--only", default="", help="run only the cases whose name contains this text")
    parser.add_argument("--output", help=f"results name under benchmarks/results/ (default: {default_output}; with --only: none)")
    parser.add_argument("--no-wait", action="store_true", help="do not wait for an idle machine (the load is still recorded)")
    parser.add_argument("--threads", type=int, default=THREADS, help=f"threads for every library (default {THREADS})")
    parser.add_argument("--warm-calls", type=_call_count, default=0, metavar="N",
                        help="untimed calls right before each sample, to time calls as a loop makes them "
                             "(default 0: each sample is the first call after a pause)")
    return parser


def suite_main(name: str, cases: list[Case], argv: list[str] | None = None, notes: str = "", description: str = "") -> list[Result]:
    """The command line of a benchmark program: pick cases, wait for an idle machine, run, record.

    Writes ``benchmarks/results/<name>.md`` and ``.json`` unless ``--only`` picked a subset (then
    only ``--output NAME`` records it). Returns the results.
    """
    parser = suite_arguments(f"python -m benchmarks.{name}", description or f"The {name} benchmarks.", name)
    args = parser.parse_args(argv)
    chosen = [case for case in cases if args.only in case.name]
    if not chosen:
        parser.error(f"no case name contains {args.only!r}")
    idle = wait_for_idle(timeout=0) if args.no_wait else wait_for_idle()
    results = [run_case(case, threads=args.threads, repeats=args.repeats, warm_calls=args.warm_calls) for case in chosen]
    print(format_table(results))
    output = args.output or (None if args.only else name)
    if output:
        log(f"wrote {write_results(output, results, idle, args.threads, notes)}")
    return results
