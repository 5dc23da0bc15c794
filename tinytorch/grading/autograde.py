"""Autograde: grade every latest submission that has no grading for its lesson's current checks.

For each such submission the grader parses the file (:mod:`.static`: a file that is not UTF-8 or
not Python is graded zero without starting anything), runs it in the sandbox (:mod:`.sandbox`,
scheduled by :mod:`.scheduling`), and judges what came back (:func:`judge`): each check's
outcome is compared with the framework's (:mod:`.compare`); a missing or malformed outcome fails
its check, with the reason the runner gave (timed out, killed by a limit, exited early). Each
grading is written in one transaction as its result arrives, so a run killed midway loses only the
submissions in flight; running again grades those and nothing twice. ``force`` regrades all.
"""

from __future__ import annotations

import json
import signal
from dataclasses import dataclass, field
from typing import Any, Callable

from tinytorch.lesson import Lesson

from .checks import Check, CheckSet
from .compare import Verdict, compare
from .course import Course
from .gradebook import Submission
from .plaindata import Malformed, load_bundle
from .runner import ERROR_NAME, OUTPUT_NAME
from .sandbox import Job, JobResult
from .scheduling import Failed, run_jobs, task_key
from .static import StaticReport, analyse

OUTPUT_CHARS = 4000
_SIGNALS = {
    signal.SIGXCPU: "its CPU time limit",
    signal.SIGXFSZ: "the file-size limit (output or files too large)",
    signal.SIGKILL: "SIGKILL (the memory limit, or killed from outside)",
    signal.SIGSEGV: "a segmentation fault",
}


@dataclass
class AutogradeSummary:
    graded: list[tuple[str, str]] = field(default_factory=list)  # (student, lesson)
    failed: list[tuple[str, str, str]] = field(default_factory=list)  # (student, lesson, why): not recorded, retried next run
    sandbox: dict = field(default_factory=dict)


def autograde(
    course: Course,
    lesson: str | None = None,
    student: str | None = None,
    workers: int | None = None,
    scheduler: Any = None,
    force: bool = False,
    on_result: Callable[[Submission, str], None] = lambda submission, status: None,
    on_start: Callable[[int], None] = lambda total: None,
) -> AutogradeSummary:
    """Grade what needs grading (see the module's docstring); ``on_result`` hears of each submission done."""
    gradebook = course.gradebook
    lesson_name = course.lesson(lesson).name if lesson else None
    pending = gradebook.latest_submissions(lesson_name, student) if force else gradebook.ungraded(lesson_name, student)
    lessons = {l.name: l for l in course.lessons()}
    summary = AutogradeSummary()
    on_start(len(pending))
    jobs: dict[str, tuple[Submission, StaticReport]] = {}
    job_list: list[Job] = []
    for submission in pending:
        lesson_obj = lessons[submission.lesson]
        checks = course.checks(lesson_obj)
        report = analyse(submission.content, lesson_obj)
        if report.problem:
            _record(course, submission, checks, judge_unrunnable(lesson_obj, checks, report, course.settings()))
            summary.graded.append((submission.student, submission.lesson))
            on_result(submission, "graded")
            continue
        job = Job(task_key(submission.id), lesson_obj.module, list(lesson_obj.exercises), f"{lesson_obj.name}.py", submission.content, course.inputs(lesson_obj), course.limits())
        jobs[job.key] = (submission, report)
        job_list.append(job)
    for result in run_jobs(job_list, workers, scheduler):
        submission, report = jobs[result.key]
        if isinstance(result, Failed):
            summary.failed.append((submission.student, submission.lesson, result.error))
            on_result(submission, "failed")
            continue
        lesson_obj = lessons[submission.lesson]
        grading = judge(lesson_obj, course.checks(lesson_obj), report, result, course.settings())
        _record(course, submission, course.checks(lesson_obj), grading)
        summary.graded.append((submission.student, submission.lesson))
        summary.sandbox = result.sandbox or summary.sandbox
        on_result(submission, "graded")
    return summary


@dataclass
class Grading:
    seconds: float
    sandbox: dict
    problem: str | None
    exercises: list[dict]
    checks: list[dict]


def _record(course: Course, submission: Submission, checks: CheckSet, grading: Grading) -> None:
    course.gradebook.record_grading(submission.id, checks.digest, grading.seconds, grading.sandbox, grading.problem, grading.exercises, grading.checks)


def _points(settings: dict, passed: int, total: int) -> float:
    if total == 0:
        return 0.0
    fraction = passed / total if settings.get("partial_credit", True) else float(passed == total)
    return round(settings["exercise_points"] * fraction, 6)


def judge_unrunnable(lesson: Lesson, checks: CheckSet, report: StaticReport, settings: dict) -> Grading:
    """A file that cannot run: every check fails with the file's problem."""
    exercises, results = [], []
    for name in lesson.exercises:
        mine = checks.of(name)
        exercises.append({"exercise": name, "status": "error", "passed": 0, "total": len(mine), "score": 0.0, "message": report.problem, "flags": report.flags.get(name, []), "output": ""})
        results += [{"check_id": c.id, "exercise": name, "visibility": c.visibility, "passed": False, "message": report.problem} for c in mine]
    return Grading(0.0, {}, report.problem, exercises, results)


def judge(lesson: Lesson, checks: CheckSet, report: StaticReport, result: JobResult, settings: dict) -> Grading:
    """Compare each check's outcome in ``result`` with the framework's; the grade of each exercise."""
    exercises, results = [], []
    index = {id(c): i for i, c in enumerate(checks.checks)}
    for k, name in enumerate(lesson.exercises):
        error = _error_text(result.files.get(f"{k}/{ERROR_NAME}"))
        why_missing = error or _why_missing(result, name)
        verdicts = []
        for check in checks.of(name):
            data = result.files.get(f"{k}/{index[id(check)]}.npz")
            verdict = _verdict(check, data, why_missing)
            verdicts.append(verdict)
            results.append({"check_id": check.id, "exercise": name, "visibility": check.visibility, "passed": verdict.passed, "message": verdict.message})
        passed = sum(v.passed for v in verdicts)
        flags = list(report.flags.get(name, []))
        if any(v.delegated for v in verdicts):
            flags.append(f"called the framework's own {name} while being graded")
        exercises.append({
            "exercise": name,
            "status": _status(verdicts, error, result.message(name)),
            "passed": passed,
            "total": len(verdicts),
            "score": _points(settings, passed, len(verdicts)),
            "message": _first_failure(checks.of(name), verdicts),
            "flags": flags,
            "output": result.files.get(f"{k}/{OUTPUT_NAME}", b"").decode("utf-8", errors="replace")[:OUTPUT_CHARS],
        })
    return Grading(result.seconds, result.sandbox, None, exercises, results)


def _verdict(check: Check, data: bytes | None, why_missing: str) -> Verdict:
    if data is None:
        return Verdict(False, f"no result: {why_missing}")
    try:
        documents = load_bundle(data)
    except Malformed as error:
        return Verdict(False, f"the result is malformed: {error}")
    if len(documents) != 1:
        return Verdict(False, "the result is malformed: expected one outcome")
    return compare(check.expected, documents[0])


def _error_text(data: bytes | None) -> str | None:
    if data is None:
        return None
    try:
        return str(json.loads(data.decode("utf-8"))["error"])[:2000]
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        return "the exercise's process reported an error that could not be read"


def _why_missing(result: JobResult, exercise: str) -> str:
    message = result.message(exercise)
    if not message:
        return "the grading run ended before this exercise" + (" (the whole run timed out)" if result.timed_out else "")
    if message.get("timed_out"):
        return f"timed out after {message.get('seconds', 0):.1f} s"
    number = message.get("signal")
    if number:
        try:
            name = _SIGNALS.get(signal.Signals(number), signal.Signals(number).name)
        except ValueError:
            name = f"signal {number}"
        return f"killed by {name}"
    return f"the exercise's process exited before finishing (exit code {message.get('exit')})"


def _status(verdicts: list[Verdict], error: str | None, message: dict) -> str:
    passed = sum(v.passed for v in verdicts)
    if verdicts and passed == len(verdicts):
        return "passed"
    if error and passed == 0:
        return "error"
    if verdicts and all(v.not_written for v in verdicts if not v.passed) and passed == 0:
        return "not written"
    if message.get("timed_out"):
        return "timed out"
    if message.get("signal"):
        return "killed"
    return "partial" if passed else "failed"


def _first_failure(checks: list[Check], verdicts: list[Verdict]) -> str:
    """The first failing public check's call and difference; a hidden one is only named (its
    message would show the hidden inputs' expected values)."""
    failing = [(c, v) for c, v in zip(checks, verdicts) if not v.passed]
    for check, verdict in failing:
        if check.visibility == "public":
            return f"`{check.source}`: {verdict.message}" if check.source else verdict.message
    return f"hidden check {failing[0][0].id} ({failing[0][0].origin}) failed" if failing else ""
