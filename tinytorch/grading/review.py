"""Manual review: the instructor's points and comments on reflections and flagged exercises.

Reflection answers are scored only by the instructor; answers outside 150-300 words are flagged
to help, not scored. Exercises flagged by the grader (the framework's function imported or copied,
or called while grading) keep their automatic score until the instructor sets points for them.
Items are named ``reflection-N``, an exercise's name, or ``general`` (a comment on the whole
submission). Points and comments belong to the submission they were given on: a new submission of
the lesson is reviewed afresh.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

from .course import Course
from .workspace import REFLECTION_WORDS


@dataclass
class ReviewItem:
    student: str
    lesson: str
    item: str  # "reflection-2", an exercise name, or "general"
    what: str  # the question, or the exercise's flags
    detail: str  # the answer, or the exercise's result
    flagged: str  # why it wants attention ("" when it does not)
    points: float | None
    maximum: float
    comment: str


def _key(item: str, exercises: list[str]) -> str:
    """The gradebook's name of an item given on the command line or in a CSV file."""
    if item.startswith("reflection-") and item[len("reflection-"):].isdigit():
        return f"reflection {int(item[len('reflection-'):])}"
    if item == "general":
        return "general"
    if item in exercises:
        return f"exercise {item}"
    raise ValueError(f"review: {item!r} is not an item; expected reflection-N, general, or one of: {', '.join(exercises)}")


def items(course: Course, lesson: str | None = None, student: str | None = None, everything: bool = False) -> list[ReviewItem]:
    """What needs review: every reflection answer, and the flagged exercises (all exercises with ``everything``)."""
    gradebook = course.gradebook
    settings = gradebook.settings()
    low, high = REFLECTION_WORDS
    lesson_name = course.lesson(lesson).name if lesson else None
    out = []
    for submission in gradebook.latest_submissions(lesson_name, student):
        manual = gradebook.manual_scores(submission.id)
        for r in gradebook.reflections(submission.id):
            mark = manual.get(f"reflection {r['number']}")
            flag = "" if low <= r["words"] <= high else f"{r['words']} words (asked: {low}-{high})"
            out.append(ReviewItem(
                submission.student, submission.lesson, f"reflection-{r['number']}", r["question"], r["answer"], flag,
                mark["points"] if mark else None, settings.get("reflection_points", 0), mark["comment"] if mark else "",
            ))
        grading = gradebook.grading(submission.id)
        points = {e["name"]: e["points"] for e in gradebook.exercises(submission.lesson)}
        for result in gradebook.exercise_results(grading["id"]) if grading else []:
            flags = json.loads(result["flags"])
            if not flags and not everything:
                continue
            mark = manual.get(f"exercise {result['exercise']}")
            out.append(ReviewItem(
                submission.student, submission.lesson, result["exercise"], "; ".join(flags) or "-",
                f"{result['status']}: {result['passed']}/{result['total']} checks, {result['score']:g} points automatically",
                "flagged" if flags else "", mark["points"] if mark else None, points[result["exercise"]], mark["comment"] if mark else "",
            ))
        general = manual.get("general")
        if general is not None:
            out.append(ReviewItem(submission.student, submission.lesson, "general", "the whole submission", "", "", general["points"], 0.0, general["comment"]))
    return out


def set_review(course: Course, student: str, lesson: str, item: str, points: float | None, comment: str | None) -> None:
    """Give points (None: leave them) and a comment (None: leave it) on one item of a student's latest submission."""
    course.gradebook.set_manual([_resolve(course, student, lesson, item, points, comment)])


def _resolve(course: Course, student: str, lesson: str, item: str, points: float | None, comment: str | None) -> tuple:
    """Check a review against the course; returns the gradebook's (submission, item, points, comment)."""
    gradebook = course.gradebook
    lesson_obj = course.lesson(lesson)
    submission = gradebook.latest(student, lesson_obj.name)
    if submission is None:
        raise LookupError(f"review: {student} has no submission of {lesson_obj.name}")
    key = _key(item, list(lesson_obj.exercises))
    settings = gradebook.settings()
    if key.startswith("reflection "):
        number = int(key.split()[1])
        if not 1 <= number <= len(lesson_obj.reflection_questions()):
            raise ValueError(f"review: lesson {lesson_obj.name} has reflection questions 1-{len(lesson_obj.reflection_questions())}, not {number}")
        maximum = settings.get("reflection_points", 0)
    elif key.startswith("exercise "):
        maximum = next(e["points"] for e in gradebook.exercises(lesson_obj.name) if e["name"] == key.split(" ", 1)[1])
    else:
        maximum = None
    if points is not None:
        if maximum is None:
            raise ValueError("review: a general comment takes no points")
        if not 0 <= points <= maximum:
            raise ValueError(f"review: {item} of {lesson_obj.name} is worth 0 to {maximum:g} points, not {points:g}")
    return submission.id, key, points, comment


def import_reviews(course: Course, path: Path) -> int:
    """Apply a CSV file with columns ``student, lesson, item, points, comment`` (points may be empty).

    Every row is checked before any is applied, so a mistake on line 40 leaves the gradebook as it
    was. Returns the number of rows applied.
    """
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing = {"student", "lesson", "item"} - set(reader.fieldnames or [])
        if missing:
            raise ValueError(f"review import: {path} lacks the columns {', '.join(sorted(missing))}")
        rows = list(reader)
    resolved = []
    for line, row in enumerate(rows, start=2):
        points_text = (row.get("points") or "").strip()
        try:
            points = float(points_text) if points_text else None
            resolved.append(_resolve(course, (row["student"] or "").strip(), (row["lesson"] or "").strip(), (row["item"] or "").strip(), points, row.get("comment")))
        except (ValueError, LookupError) as error:
            raise ValueError(f"review import: {path}, line {line}: {error}") from None
    course.gradebook.set_manual(resolved)
    return len(resolved)
