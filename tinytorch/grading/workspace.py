"""A student's own progress: which exercises of their workspace pass (``tito module status``).

A workspace is a folder of ``NN_slug.py`` files written by ``tito module start NN``. For each
lesson whose file is there, the lesson runs against it (:func:`tinytorch.lesson.run_lesson`) and
each exercise counts as passed only when all of its examples pass. Each reflection answer is
counted in words; 150-300 words is the length asked for.

This runs the workspace in the calling process: it is for students on their own code. An
instructor grading other people's code uses ``tito grade``, which runs it in a sandbox.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from tinytorch.lesson import Lesson, load_workspace, run_lesson

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
