"""Grading at scale: a run killed midway, and grading on a Dask cluster."""

import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

from tinytorch.grading import synthetic
from tinytorch.grading.autograde import autograde
from tinytorch.grading.collect import collect
from tinytorch.grading.course import open_course, setup
from tinytorch.grading.gradebook import now
from tinytorch.grading.sandbox import Limits
from tinytorch.grading.scheduling import task_key


def make_course(root, students, kinds=("correct", "partial")):
    course = setup(root / "course", lessons=["02"], limits=Limits(cpu_seconds=2, wall_seconds=10))
    synthetic.write_class(root / "submissions", students, kinds=kinds)
    collect(course.gradebook, root / "submissions", course.lessons(), now())
    return course


def count(db_path, table):
    with sqlite3.connect(f"file:{db_path}?mode=ro", uri=True) as db:
        return db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]


def children(pid):
    """The processes started by any thread of ``pid`` (runners are started from a thread of their own)."""
    found = []
    try:
        for task in os.scandir(f"/proc/{pid}/task"):
            with open(f"{task.path}/children") as f:
                found += [int(p) for p in f.read().split()]
    except OSError:
        pass
    return found


def gone(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads child processes from /proc (Linux)")
def test_a_run_killed_midway_is_completed_by_the_next_and_nothing_counts_twice(tmp_path):
    course = make_course(tmp_path, 4)
    db_path = course.gradebook.path
    course.close()
    command = [sys.executable, "-m", "tinytorch.cli", "grade", "autograde", f"--course={tmp_path / 'course'}", "--jobs=1"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    runners = set()
    deadline = time.monotonic() + 120
    while count(db_path, "gradings") < 1:
        assert process.poll() is None, "the run ended before it could be killed"
        assert time.monotonic() < deadline, "no grading was recorded in time"
        runners.update(children(process.pid))
        time.sleep(0.05)
    runners.update(children(process.pid))
    process.send_signal(signal.SIGKILL)
    process.wait()
    done_before = count(db_path, "gradings")
    assert 1 <= done_before < 4
    assert runners, "the grader's sandboxed runner was not seen"
    time.sleep(0.5)
    assert all(gone(pid) for pid in runners), "a sandboxed runner outlived the grader that started it"

    course = open_course(tmp_path / "course")
    summary = autograde(course, workers=2)
    assert len(summary.graded) == 4 - done_before and summary.failed == []
    rows = course.gradebook.db.execute("SELECT submission, COUNT(*) AS n FROM gradings GROUP BY submission").fetchall()
    assert len(rows) == 4 and all(r["n"] == 1 for r in rows)
    checks = course.checks(course.lesson("02"))
    assert count(db_path, "exercise_results") == 4 * 2
    assert count(db_path, "check_results") == 4 * len(checks.checks)
    assert len(autograde(course).graded) == 0
    course.close()


def test_task_keys_are_unique_per_attempt():
    assert task_key(7) != task_key(7) and task_key(7).startswith("tinytorch-grade-7-")


def test_grading_on_a_dask_cluster_matches_threads_and_regrades_run_again(tmp_path):
    pytest.importorskip("distributed", reason="the cluster extra (dask[distributed]) is not installed")
    from distributed import LocalCluster

    token = "import os\nprint('TOKEN', os.urandom(8).hex())\n"
    course = make_course(tmp_path, 2)
    for submission in course.gradebook.latest_submissions():  # a submission whose output differs on every run
        course.gradebook.add_submission(submission.student, submission.lesson, "changed-" + submission.sha256, token.encode() + submission.content, now(), "test", [])
    local = autograde(course, workers=2)
    assert len(local.graded) == 2

    def outcome():
        out = {}
        for s in course.gradebook.latest_submissions():
            grading = course.gradebook.grading(s.id)
            out[s.student] = [(r["exercise"], r["status"], r["passed"], r["output"]) for r in course.gradebook.exercise_results(grading["id"])]
        return out

    on_threads = outcome()
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None) as cluster:
        first = autograde(course, scheduler=cluster.scheduler_address, force=True)
        on_dask = outcome()
        second = autograde(course, scheduler=cluster.scheduler_address, force=True)
        again = outcome()
    assert len(first.graded) == len(second.graded) == 2 and not first.failed and not second.failed
    strip = lambda o: {k: [row[:3] for row in v] for k, v in o.items()}  # noqa: E731
    assert strip(on_dask) == strip(on_threads) == strip(again)
    assert on_dask != again, "a forced regrade on the cluster returned the earlier task's result"
    course.close()
