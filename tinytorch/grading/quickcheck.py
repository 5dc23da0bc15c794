"""``tito grade check``: grade workspace folders in the sandbox, without a course or a gradebook.

For an instructor trying a submission, or a teaching assistant checking a few folders: every
lesson file found in each folder is graded exactly as ``autograde`` would (sandboxed, judged in
this process) on the lesson's public checks and hidden variants drawn from a fixed seed, and the
reflection answers are counted. Nothing is recorded.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from tinytorch.lesson import find_lessons

from .autograde import judge, judge_unrunnable
from .checks import build_checks
from .collect import MAX_FILE_BYTES
from .plaindata import save_bundle
from .sandbox import Job, Limits
from .scheduling import Failed, run_jobs, task_key
from .static import analyse, reflection_rows
from .workspace import REFLECTION_WORDS

SEED = 0
SETTINGS = {"exercise_points": 1.0, "partial_credit": True}


def check_workspaces(folders: list[Path], workers: int | None = None, limits: Limits | None = None) -> list[dict]:
    """One entry per folder: each lesson's exercises (status, checks passed) and reflection lengths."""
    for folder in folders:
        if not folder.is_dir():
            raise NotADirectoryError(f"{folder} is not a workspace folder")
    lessons = [lesson for lesson in find_lessons() if lesson.exercises]
    found = [(folder, lesson) for folder in folders for lesson in lessons if (folder / f"{lesson.name}.py").is_file()]
    checksets, inputs = {}, {}
    with tempfile.TemporaryDirectory(prefix="tinytorch-check-") as scratch:
        for lesson in {lesson.name: lesson for _, lesson in found}.values():
            checksets[lesson.name] = build_checks(lesson, SEED)
            path = Path(scratch) / f"{lesson.name}.npz"
            save_bundle(path, checksets[lesson.name].inputs_documents())
            inputs[lesson.name] = path.read_bytes()
    entries: dict[tuple[str, str], dict] = {}
    jobs, waiting = [], {}
    for number, (folder, lesson) in enumerate(found):
        path = folder / f"{lesson.name}.py"
        content = path.read_bytes()[: MAX_FILE_BYTES + 1]
        report = analyse(content, lesson) if len(content) <= MAX_FILE_BYTES else None
        low, high = REFLECTION_WORDS
        entry = {
            "lesson": lesson.name,
            "problem": None if report else f"larger than {MAX_FILE_BYTES} bytes",
            "exercises": {},
            "reflections": [{"number": n, "words": w, "ok": low <= w <= high} for n, _, _, w in reflection_rows(report, lesson)] if report else [],
        }
        entries[(str(folder), lesson.name)] = entry
        if report is None:
            continue
        if report.problem:
            entry["problem"] = report.problem
            _fill(entry, judge_unrunnable(lesson, checksets[lesson.name], report, SETTINGS).exercises)
            continue
        job = Job(task_key(number), lesson.module, list(lesson.exercises), path.name, content, inputs[lesson.name], limits or Limits())
        jobs.append(job)
        waiting[job.key] = (folder, lesson, report)
    for result in run_jobs(jobs, workers):
        folder, lesson, report = waiting[result.key]
        entry = entries[(str(folder), lesson.name)]
        if isinstance(result, Failed):
            entry["problem"] = f"not graded: {result.error}"
            continue
        _fill(entry, judge(lesson, checksets[lesson.name], report, result, SETTINGS).exercises)
    return [
        {"workspace": str(folder), "lessons": [e for (f, _), e in entries.items() if f == str(folder)]}
        for folder in folders
    ]


def _fill(entry: dict, exercises: list[dict]) -> None:
    entry["exercises"] = {e["exercise"]: {"status": e["status"], "passed": e["passed"], "total": e["total"], "message": e["message"]} for e in exercises}
