"""The benchmark harness: one worker process per implementation, rounds, ratios, records, and the README table.

Timing itself is never asserted (a shared machine's speed is not a test result); what is tested is
that the machinery measures what it says: separate processes, the pinned threads, paired ratios,
raw times kept, the README's table equal to what the records give.
"""

from __future__ import annotations

import ast
import json
import math
import time
from pathlib import Path

import pytest

from benchmarks import harness, readme_table
from benchmarks.harness import Case, Impl, Result, Target, TimeLimit, Worker, WorkerError

BENCHMARKS = Path(harness.__file__).resolve().parent
TINY_CONV = {"c_in": 1, "c_out": 1, "side": 2}


def imported_modules(path: Path) -> set[str]:
    """Top-level names of every module ``path`` imports, wherever the import statement is."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_no_benchmark_module_imports_both_frameworks():
    both = [p.name for p in BENCHMARKS.glob("*.py") if {"torch", "tinytorch"} <= imported_modules(p)]
    assert both == []
    # the orchestrator and the worker import neither, so a worker holds only the framework it times
    for name in ("harness.py", "worker.py", "specs.py", "kernels.py", "training_step.py", "same_process.py", "winograd.py"):
        assert not {"torch", "tinytorch"} & imported_modules(BENCHMARKS / name), name


def test_worker_runs_in_its_own_process_with_pinned_threads():
    with Worker(threads=3, label="probe") as worker:
        env = worker.request(op="call", target="os:getenv", kwargs={"key": "OPENBLAS_NUM_THREADS"})["value"]
        pid = worker.request(op="call", target="os:getpid")["value"]
        assert env == "3"
        assert pid == worker.pid != __import__("os").getpid()


def test_worker_failure_names_the_target():
    with Worker(threads=1, label="broken") as worker, pytest.raises(WorkerError, match="no_such_factory"):
        worker.request(op="build", target="benchmarks.numpy_side:no_such_factory", kwargs={}, preload=[], min_sample_s=0.0)


def test_run_case_alternates_separate_workers_and_keeps_raw_times():
    floor = Impl("benchmarks.numpy_side:conv2d_blas_floor")
    case = Case("tiny", TINY_CONV, {"compiled": floor, "other": floor}, (Target("other", 0.01),))
    result = harness.run_case(case, threads=1, repeats=3, max_outside_load=math.inf, settle_s=0.0)
    assert result.labels == ["compiled", "other"]
    assert all(len(result.seconds[label]) == 3 and min(result.seconds[label]) > 0 for label in result.labels)
    assert result.met(case.targets[0]) is True
    record = result.to_json()
    assert record["seconds"] == result.seconds and set(record["workers"]) == {"compiled", "other"}
    assert "NumPy" in record["workers"]["compiled"]


def test_warm_calls_run_untimed_right_before_each_sample(tmp_path):
    log = tmp_path / "calls.txt"
    with Worker(threads=1, label="warm") as worker:
        reply = worker.request(op="build", target="tests.benchmark_probe:counting_calls", kwargs={"path": str(log)},
                               preload=[], min_sample_s=0.0, warm_calls=3)
        built = len(log.read_text().splitlines())  # two untimed warm-up calls and one to size the sample
        worker.request(op="sample")
        worker.request(op="sample")
    assert reply["calls"] == 1 and built == 3
    assert len(log.read_text().splitlines()) - built == 2 * (3 + 1)


def test_warm_calls_are_left_out_of_the_timed_sample():
    with Worker(threads=1, label="warm") as worker:
        worker.request(op="build", target="tests.benchmark_probe:sleeping_calls", kwargs={"seconds": 0.05},
                       preload=[], min_sample_s=0.0, warm_calls=3)
        started = time.perf_counter()
        seconds = worker.request(op="sample")["seconds"]
        waited = time.perf_counter() - started
    assert waited >= 4 * 0.05  # the three warm calls ran, then the timed one
    assert 0.05 <= seconds < 0.15  # the time of one call: timed with the warm calls it would be 0.2


@pytest.mark.parametrize("value", ["-1", "two"])
def test_warm_calls_must_be_a_count(value, capsys):
    parser = harness.suite_arguments("python -m benchmarks.trial", "trial", "trial")
    with pytest.raises(SystemExit):
        parser.parse_args(["--warm-calls", value])
    assert f"expected a whole number of calls, 0 or more; got {value!r}" in capsys.readouterr().err


def test_results_say_how_a_sample_starts(tmp_path):
    case = Case("paired", {}, {"compiled": Impl("m:f"), "torch": Impl("m:g")})
    idle = harness.IdleCheck(0.05, 3.0, True, 0.3)
    cold = Result(case, {"compiled": [1.0], "torch": [1.0]}, [0.1])
    warm = Result(case, {"compiled": [1.0], "torch": [1.0]}, [0.1], warm_calls=2)
    assert "first call after a pause" in harness.write_results("cold", [cold], idle, 2, directory=tmp_path).read_text()
    assert "right after 2 untimed calls" in harness.write_results("warm", [warm], idle, 2, directory=tmp_path).read_text()
    assert json.loads((tmp_path / "warm.json").read_text())["results"][0]["warm_calls_per_sample"] == 2


def test_ratio_is_the_median_of_per_round_ratios():
    case = Case("paired", {}, {"compiled": Impl("m:f"), "torch": Impl("m:g")})
    # a drifting machine: every round torch takes twice as long as compiled, though the medians of
    # each column alone would give 4 / 2.5 = 1.6
    result = Result(case, {"compiled": [1.0, 2.5, 10.0], "torch": [2.0, 5.0, 20.0]}, [0.0] * 3)
    assert result.speedup("torch") == pytest.approx(2.0)
    assert result.median("torch") / result.median("compiled") == pytest.approx(2.0)
    uneven = Result(case, {"compiled": [1.0, 1.0, 4.0], "torch": [3.0, 1.0, 2.0]}, [0.0] * 3)
    assert uneven.speedup("torch") == pytest.approx(1.0)  # ratios 3, 1, 0.5; the ratio of medians would be 2


def test_write_results_records_the_raw_times(tmp_path):
    case = Case("paired", {"n": 1}, {"compiled": Impl("m:f"), "torch": Impl("m:g")}, (Target("torch", 1.5),))
    result = Result(case, {"compiled": [1.0, 2.0], "torch": [2.0, 2.0]}, [0.1, 0.2])
    idle = harness.IdleCheck(0.05, 3.0, True, 0.3)
    path = harness.write_results("trial", [result], idle, threads=2, directory=tmp_path)
    record = json.loads((tmp_path / "trial.json").read_text())
    assert record["results"][0]["seconds"] == {"compiled": [1.0, 2.0], "torch": [2.0, 2.0]}
    assert record["results"][0]["ratios"]["compiled vs torch"] == pytest.approx(1.5)
    assert record["results"][0]["targets"][0]["met"] is True
    assert record["threads"] == 2 and record["command"].startswith("python")
    assert "| paired |" in path.read_text() and "1.50x" in path.read_text()


def test_readme_speed_table_is_generated_from_the_records():
    readme = readme_table.README.read_text(encoding="utf-8")
    assert readme_table.replace_block(readme, readme_table.table()) == readme, (
        "README.md's speed table is stale or edited by hand; run python -m benchmarks.readme_table"
    )


def test_readme_table_refuses_a_case_missing_from_the_records(tmp_path):
    for name in dict.fromkeys(record for record, _, _ in readme_table.ROWS):
        record = readme_table.load(name)
        record["results"] = [r for r in record["results"] if "conv2d" not in r["case"]]
        (tmp_path / f"{name}.json").write_text(json.dumps(record))
    with pytest.raises(SystemExit, match="no case 'conv2d"):
        readme_table.table(tmp_path)


def test_time_limit_judges_the_median_per_unit_of_work(tmp_path):
    limit = TimeLimit(3e-6, "tinytorch", per=1000, what="op")
    case = Case("per op", {"ops": 1000}, {"tinytorch": Impl("m:f"), "torch": Impl("m:g")}, (limit,))
    # medians 2.9 ms and 3.1 ms per call of 1000 ops: 2.9 µs per op meets 3 µs, 3.1 µs does not
    under = Result(case, {"tinytorch": [2.5e-3, 2.9e-3, 9.0e-3], "torch": [2e-3] * 3}, [0.0] * 3)
    over = Result(case, {"tinytorch": [1.0e-3, 3.1e-3, 3.2e-3], "torch": [2e-3] * 3}, [0.0] * 3)
    assert under.met(limit) is True and over.met(limit) is False
    assert harness.comparisons([under]) == []  # a time limit names no pair to compare
    idle = harness.IdleCheck(0.05, 3.0, True, 0.3)
    harness.write_results("limit", [over], idle, threads=1, directory=tmp_path)
    result = json.loads((tmp_path / "limit.json").read_text())["results"][0]
    assert result["targets"] == [{"of": "tinytorch", "at_most_seconds": 3e-6, "per": 1000, "what": "op", "met": False}]
    assert readme_table._target(result["targets"][0], result) == "≤ 3 µs per op: missed, 3.1 µs"


def test_winograd_benchmark_times_the_same_kernel_both_ways():
    """Its two sides differ only in the switch, and the factory sets it in the worker that runs it."""
    from benchmarks import tinytorch_side, winograd
    from tinytorch._kernels import conv

    for case in winograd.CASES:
        on, off = case.impls["compiled"], case.impls["windows"]
        assert on.target == off.target and off.kwargs == {**on.kwargs, "winograd": False}
    try:
        for switch in (False, True):
            run = tinytorch_side.conv2d("compiled", 8, 4, 6, batch=8, winograd=switch)
            assert conv.WINOGRAD is switch
            run()
    finally:
        conv.WINOGRAD = True
