"""Grading throughput: submissions per minute for a synthetic class, by where the jobs run.

    python -m benchmarks.grading_throughput                      # 200 submissions, 3 rounds; writes results/grading.md
    python -m benchmarks.grading_throughput --students 40 --rounds 1 --output grading_trial

One course (lesson 02) is set up and a synthetic class collected (correct, partly correct and stub
workspaces in turn; see ``tinytorch.grading.synthetic``). Then, round after round, each
configuration grades the whole class again (``autograde --force``) in a process of its own:

- ``--jobs 1`` and ``--jobs 2``: sandboxed children started from threads on this machine;
- ``dask``: a ``LocalCluster(n_workers=2, threads_per_worker=1, processes=False)`` in that process.

A round times each configuration once, in turn; the table reports the median time, the
throughput it gives, and each configuration's speed against ``--jobs 1`` as the median over
rounds of the paired ratio. The machine's load from other processes during each run (all busy
cores minus the run's own process tree) is recorded: rerun on a quiet machine when it is high.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.harness import RESULTS_DIR, _cpu_jiffies, log, machine_description, wait_for_idle

CONFIGS = ("jobs1", "jobs2", "dask")


def grade_once(course_dir: Path, config: str) -> float:
    """Grade every submission again with one configuration; the wall-clock seconds it took."""
    from tinytorch.grading.autograde import autograde
    from tinytorch.grading.course import open_course

    course = open_course(course_dir)
    start = time.perf_counter()
    if config == "dask":
        from distributed import LocalCluster

        with LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None) as cluster:
            start = time.perf_counter()  # the cluster's start-up is not grading
            summary = autograde(course, scheduler=cluster.scheduler_address, force=True)
    else:
        summary = autograde(course, workers=int(config[len("jobs"):]), force=True)
    seconds = time.perf_counter() - start
    if summary.failed:
        raise RuntimeError(f"{len(summary.failed)} submissions could not be graded: {summary.failed[:3]}")
    course.close()
    return seconds


def run_config(course_dir: Path, config: str) -> tuple[float, float | None]:
    """Run one configuration in its own process: (seconds, cores other processes kept busy meanwhile)."""
    command = [sys.executable, "-m", "benchmarks.grading_throughput", "--run", config, "--course", str(course_dir)]
    before_jiffies, before_children, wall = _cpu_jiffies(), os.times(), time.perf_counter()
    out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    after_jiffies, after_children, wall = _cpu_jiffies(), os.times(), time.perf_counter() - wall
    seconds = json.loads(out.strip().splitlines()[-1])["seconds"]
    load = None
    if before_jiffies and after_jiffies:
        busy, total = after_jiffies[0] - before_jiffies[0], after_jiffies[1] - before_jiffies[1]
        tree = (after_children.children_user + after_children.children_system) - (before_children.children_user + before_children.children_system)
        load = max(0.0, (os.cpu_count() or 1) * busy / max(total, 1) - tree / wall)
    return seconds, load


def prepare(folder: Path, students: int) -> Path:
    from tinytorch.grading import synthetic
    from tinytorch.grading.collect import collect
    from tinytorch.grading.course import setup
    from tinytorch.grading.gradebook import now

    course = setup(folder / "course", lessons=["02"])
    synthetic.write_class(folder / "submissions", students, kinds=("correct", "partial", "stub"))
    report = collect(course.gradebook, folder / "submissions", course.lessons(), now())
    log(f"collected {len(report.new)} submissions")
    course.close()
    return folder / "course"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.grading_throughput", description=__doc__.split("\n")[0])
    parser.add_argument("--students", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--configs", default=",".join(CONFIGS), help=f"comma-separated, of {', '.join(CONFIGS)}")
    parser.add_argument("--output", default="grading", help="results/<output>.md (default: grading)")
    parser.add_argument("--no-wait", action="store_true", help="skip the idle-machine wait")
    parser.add_argument("--run", help=argparse.SUPPRESS)
    parser.add_argument("--course", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.run:  # one configuration, in this fresh process
        print(json.dumps({"seconds": grade_once(args.course, args.run)}))
        return 0
    configs = [c for c in args.configs.split(",") if c]
    unknown = set(configs) - set(CONFIGS)
    if unknown:
        parser.error(f"unknown configurations {sorted(unknown)}; expected some of {CONFIGS}")
    with tempfile.TemporaryDirectory(prefix="tinytorch-grading-bench-") as scratch:
        course_dir = prepare(Path(scratch), args.students)
        idle = None if args.no_wait else wait_for_idle()
        times: dict[str, list[float]] = {c: [] for c in configs}
        loads: dict[str, list[float]] = {c: [] for c in configs}
        for round_number in range(args.rounds):
            for config in configs:
                seconds, load = run_config(course_dir, config)
                times[config].append(seconds)
                if load is not None:
                    loads[config].append(load)
                log(f"round {round_number + 1}: {config} graded {args.students} in {seconds:.1f} s ({60 * args.students / seconds:.0f}/min)")
    write(args, configs, times, loads, idle)
    return 0


def write(args, configs, times, loads, idle) -> None:
    lines = [
        "# Benchmark: grading throughput",
        "",
        f"- Date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC",
        f"- Command: `{shlex.join(['python', '-m', 'benchmarks.grading_throughput', *sys.argv[1:]])}`",
        *(f"- {line}" for line in machine_description().values()),
        f"- Machine before the run: {idle.describe() if idle else 'not checked (--no-wait)'}",
        f"- Class: {args.students} synthetic submissions of lesson 02 (correct, partly correct and stub in turn), "
        f"{args.rounds} round(s); each run grades all of them again (autograde --force) in a fresh process.",
        "- Each worker starts one sandboxed runner (Python, NumPy and TinyTorch imported once; its start-up is in the time), "
        "which forks a confined process per submission and per exercise.",
        "",
        "| configuration | median time (s) | submissions per minute | speed vs --jobs 1 (median of per-round ratios) | outside load (cores) |",
        "|---|---|---|---|---|",
    ]
    names = {"jobs1": "--jobs 1", "jobs2": "--jobs 2", "dask": "Dask LocalCluster (2 workers, 1 thread each, processes=False)"}
    for config in configs:
        median = statistics.median(times[config])
        ratio = statistics.median(a / b for a, b in zip(times["jobs1"], times[config])) if "jobs1" in times else None
        load = f"{statistics.fmean(loads[config]):.2f}" if loads[config] else "—"
        lines.append(f"| {names[config]} | {median:.1f} | {60 * args.students / median:.0f} | {'—' if ratio is None else f'{ratio:.2f}x'} | {load} |")
    text = "\n".join(lines) + "\n"
    print(text)
    path = RESULTS_DIR / f"{args.output}.md"
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    log(f"wrote {path}")


if __name__ == "__main__":
    sys.exit(main())
