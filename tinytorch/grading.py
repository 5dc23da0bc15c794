"""Grading a student's workspace: which exercises pass, and the reflection answers (``tito grade``).

A workspace is a folder of ``NN_slug.py`` files written by ``tito module start NN``. For each
lesson whose file is there, the lesson runs against it (:func:`tinytorch.lesson.run_lesson`) and
each exercise counts as passed only when all of its examples pass. Each reflection answer is
counted in words; 150-300 words is the length asked for.

Running a workspace executes the student's code, as any autograder must: grade on a machine and
account you are prepared to run that code on.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .lesson import Lesson, find_lessons, load_workspace, run_lesson

REFLECTION_WORDS = (150, 300)
WORKSPACE_ENV = "TINYTORCH_WORKSPACE"


def default_workspace() -> Path:
    """``TINYTORCH_WORKSPACE`` when set, else ``./workspace``."""
    return Path(os.environ.get(WORKSPACE_ENV, "workspace"))


def workspace_path(lesson: Lesson, workspace: Path | None = None) -> Path:
    """Where lesson ``lesson``'s workspace file lives."""
    return (workspace or default_workspace()) / f"{lesson.name}.py"


@dataclass
class Reflection:
    number: int
    question: str
    words: int

    @property
    def ok(self) -> bool:
        low, high = REFLECTION_WORDS
        return low <= self.words <= high


@dataclass
class LessonGrade:
    lesson: str
    title: str
    exercises: dict[str, str]  # name -> "passed" / "failed" / "not written"
    reflections: list[Reflection] = field(default_factory=list)
    error: str | None = None  # the workspace could not be loaded at all

    @property
    def passed(self) -> int:
        return sum(status == "passed" for status in self.exercises.values())

    @property
    def total(self) -> int:
        return len(self.exercises)


def count_words(text: str) -> int:
    return len(re.findall(r"\b\w[\w'-]*\b", text))


def reflections_of(path: Path, lesson: Lesson) -> list[Reflection]:
    """The answers in a workspace's ``REFLECTIONS`` dictionary, one per question of the lesson."""
    answers = getattr(load_workspace(path), "REFLECTIONS", {}) or {}
    return [
        Reflection(i, question, count_words(str(answers.get(i, ""))))
        for i, question in enumerate(lesson.reflection_questions(), 1)
    ]


def grade_lesson(lesson: Lesson, path: Path) -> LessonGrade:
    """Grade one workspace file; a file that does not even import is graded zero, with the error."""
    try:
        result = run_lesson(lesson, path)
        reflections = reflections_of(path, lesson)
    except Exception as error:  # a student's file may fail in any way at import; the grade says how
        return LessonGrade(lesson.name, lesson.title, {name: "failed" for name in lesson.exercises}, error=repr(error))
    statuses = {name: ex.status for name, ex in result.exercises.items()}
    return LessonGrade(lesson.name, lesson.title, statuses, reflections)


def grade_workspace(workspace: Path) -> list[LessonGrade]:
    """Grade every lesson (with exercises) whose file is in ``workspace``."""
    if not workspace.is_dir():
        raise NotADirectoryError(f"grade: {workspace} is not a workspace folder")
    return [
        grade_lesson(lesson, workspace_path(lesson, workspace))
        for lesson in find_lessons()
        if lesson.exercises and workspace_path(lesson, workspace).is_file()
    ]


def summary(grades: list[LessonGrade]) -> dict:
    """Totals over a workspace: exercises passed of those attempted, reflections of the right length."""
    reflections = [r for g in grades for r in g.reflections]
    return {
        "lessons_graded": len(grades),
        "exercises_passed": sum(g.passed for g in grades),
        "exercises_total": sum(g.total for g in grades),
        "reflections_ok": sum(r.ok for r in reflections),
        "reflections_total": len(reflections),
    }


def report(workspace: Path) -> dict:
    """A JSON-ready report of one workspace: totals and each lesson's exercises and reflections."""
    grades = grade_workspace(workspace)
    lessons = []
    for grade in grades:
        entry = asdict(grade)
        entry["reflections"] = [{**asdict(r), "ok": r.ok} for r in grade.reflections]
        lessons.append(entry)
    return {"workspace": str(workspace), **summary(grades), "lessons": lessons}


def write_report(path: Path, content: dict | list) -> None:
    """Write a JSON report atomically (temporary file, then rename)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(content, indent=2), encoding="utf-8")
    tmp.replace(path)
